"""AnomalyCLIP's object-agnostic prompt learner on open_clip's text tower.

Two prompts are learned once and used for every product: "[V1..Vn] object." (normal) and "[W1..Wn] damaged object."
(anomalous), n = 12 context vectors each, which replace the token embeddings of n placeholder words. Deep text
prompts: before each of the text blocks 2..depth (1-based), the token positions 1..t (t = 4, right after the
start token) of the residual stream are overwritten with learned vectors of that layer (``depth - 1`` sets of ``t``
vectors). The CLIP model stays frozen; only the learner's parameters train.

This follows the official code (zqhang/AnomalyCLIP): ``prompt_ensemble.py: AnomalyCLIP_PromptLearner`` builds the
token sequences and the learned context, ``AnomalyCLIP_lib/AnomalyCLIP.py: AnomalyCLIP.encode_text_learn`` and
``ResidualAttentionBlock_learnable_token.forward`` run the text transformer with the deep prompts. One detail is
kept on purpose: the official block casts each layer's deep prompt to float16 (``.half()``) before concatenating it
with the residual stream, so in a float32 model the deep prompts are rounded to half precision
(``PromptLearnerConfig.half_deep_prompts``). The official learner also holds ``compound_prompt_projections``
(Linear(width, 896) per deep layer) that its forward never uses; zsad has no such module, and import ignores them.

Unlike the official code, zsad uses open_clip's batch-first blocks and its own ``attn_mask`` and text pooling
(``text_global_pool``), so the same code serves any open_clip CLIP text tower.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from torch import nn

from zsad.errors import ZsadError


@dataclass(frozen=True)
class PromptLearnerConfig:
    """Shape of the learned prompts; defaults are AnomalyCLIP's (train.py: --n_ctx 12 --depth 9 --t_n_ctx 4)."""

    n_ctx: int = 12  # learned context vectors per prompt ("Prompt_length")
    depth: int = 9  # deep prompts go into text blocks 2..depth ("learnabel_text_embedding_depth")
    t_n_ctx: int = 4  # deep prompt tokens per block ("learnabel_text_embedding_length")
    class_name: str = "object"
    normal_template: str = "{}"
    anomalous_template: str = "damaged {}"
    half_deep_prompts: bool = True  # the official ``.half()`` on each deep prompt
    init_std: float = 0.02

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "PromptLearnerConfig":
        known = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        return cls(**known)


def text_width(model: nn.Module) -> int:
    return int(model.ln_final.weight.shape[0])


class AnomalyCLIPPromptLearner(nn.Module):
    """Learned context (``ctx_pos``, ``ctx_neg``: [1, 1, n_ctx, W], the official shapes) and deep prompts
    (``compound_prompts_text``: depth - 1 tensors [t_n_ctx, W]). Token embeddings of the fixed words are buffers
    computed from the CLIP model it is built for (not saved: they belong to the base model)."""

    def __init__(self, clip_model: nn.Module, tokenizer, config: PromptLearnerConfig = PromptLearnerConfig()):
        super().__init__()
        if config.n_ctx < 1 or config.depth < 1 or config.t_n_ctx < 0:
            raise ZsadError(f"prompt learner: n_ctx, depth must be >= 1 and t_n_ctx >= 0, got {config}")
        if config.depth > 1 and config.t_n_ctx > config.n_ctx:
            raise ZsadError("prompt learner: t_n_ctx must not exceed n_ctx (deep prompts overwrite context positions)")
        self.config = config
        width = text_width(clip_model)
        emb = clip_model.token_embedding
        dtype = emb.weight.dtype
        ctx_pos = torch.empty(1, 1, config.n_ctx, width, dtype=dtype)
        ctx_neg = torch.empty(1, 1, config.n_ctx, width, dtype=dtype)
        nn.init.normal_(ctx_pos, std=config.init_std)
        nn.init.normal_(ctx_neg, std=config.init_std)
        self.ctx_pos = nn.Parameter(ctx_pos)
        self.ctx_neg = nn.Parameter(ctx_neg)
        self.compound_prompts_text = nn.ParameterList(
            [nn.Parameter(torch.empty(config.t_n_ctx, width, dtype=dtype).normal_(std=config.init_std))
             for _ in range(config.depth - 1)]
        )
        prefix = " ".join(["X"] * config.n_ctx)
        sentences = [
            f"{prefix} {config.normal_template.format(config.class_name)}.",
            f"{prefix} {config.anomalous_template.format(config.class_name)}.",
        ]
        tokens = tokenizer(sentences)
        with torch.no_grad():
            embedded = emb(tokens.to(emb.weight.device)).to(dtype)
        n = config.n_ctx
        self.register_buffer("tokenized_prompts", tokens, persistent=False)  # [2, 77]
        self.register_buffer("token_prefix", embedded[:, :1].clone(), persistent=False)  # [2, 1, W]
        self.register_buffer("token_suffix", embedded[:, 1 + n:].clone(), persistent=False)  # [2, 77-1-n, W]

    def prompts(self) -> torch.Tensor:
        """[2, 77, W] input token embeddings: start token, learned context, fixed words (normal row, anomalous row)."""
        ctx = torch.cat([self.ctx_pos.reshape(1, self.config.n_ctx, -1), self.ctx_neg.reshape(1, self.config.n_ctx, -1)])
        return torch.cat([self.token_prefix, ctx.to(self.token_prefix.dtype), self.token_suffix], dim=1)

    def encode(self, clip_model: nn.Module) -> torch.Tensor:
        """[2, D] text features (not normalised) of the normal and anomalous prompts: ``encode_text_learn``."""
        from open_clip.transformer import text_global_pool

        transformer = clip_model.transformer
        if not getattr(transformer, "batch_first", True):
            raise ZsadError("prompt learner: open_clip's text transformer must be batch-first (open_clip >= 2.26)")
        cast = transformer.get_cast_dtype()
        x = self.prompts().to(cast) + clip_model.positional_embedding.to(cast)
        t = self.config.t_n_ctx
        deep = list(self.compound_prompts_text)
        for index, block in enumerate(transformer.resblocks):
            if index >= 1 and index - 1 < len(deep) and t > 0:
                context = deep[index - 1]
                if self.config.half_deep_prompts:
                    context = context.half()
                context = context.to(x.dtype).unsqueeze(0).expand(x.shape[0], -1, -1)
                x = torch.cat([x[:, :1], context, x[:, 1 + t:]], dim=1)
            x = block(x, attn_mask=clip_model.attn_mask)
        x = clip_model.ln_final(x)
        x = text_global_pool(x, self.tokenized_prompts, clip_model.text_pool_type,
                             eos_token_id=getattr(clip_model, "text_eos_id", None))
        projection = clip_model.text_projection
        return projection(x) if isinstance(projection, nn.Linear) else x @ projection

    def forward(self, clip_model: nn.Module) -> torch.Tensor:
        """[2, D] unit rows (normal, anomalous), normalised as the official test.py does."""
        features = self.encode(clip_model).float()
        return features / features.norm(dim=-1, keepdim=True)
