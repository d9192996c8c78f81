"""Import official AnomalyCLIP checkpoints (zqhang/AnomalyCLIP ``train.py`` saves
``torch.save({"prompt_learner": prompt_learner.state_dict()}, "epoch_N.pth")``).

The official state dict holds (ViT-L/14@336px, text width 768, defaults n_ctx 12, depth 9, t_n_ctx 4):
``ctx_pos``, ``ctx_neg`` [1, 1, n_ctx, 768]; ``compound_prompts_text.0 .. depth-2`` [t_n_ctx, 768];
``compound_prompt_projections.i.weight`` [896, 768] / ``.bias`` [896] (never used by the forward: ignored);
buffers ``token_prefix_pos|neg`` [1, 1, 1, 768], ``token_suffix_pos|neg`` [1, 1, 77 - 1 - n_ctx, 768],
``tokenized_prompts_pos|neg`` [1, 1, 77]. The buffers are token embeddings of the fixed words computed from the
base CLIP: zsad recomputes them from the backbone and uses them to check that the checkpoint belongs to this base
model (they must agree), which is also what makes the imported embeddings equal the official ones.
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import torch

from zsad.errors import ZsadError
from zsad.learning.adapters import AdapterConfig, backbone_settings, base_model_description, save_adapter
from zsad.learning.prompt_learner import AnomalyCLIPPromptLearner, PromptLearnerConfig

# The backbone setting of the official test.py/train.py (ViT-L/14@336px at 518 px, DPAM_layer=20, layers
# 6/12/18/24 by default (the shipped scripts pass --features_list 24), bilinear position embedding,
# CLS feature without ln_post).
OFFICIAL_BACKBONE = {"name": "ViT-L-14-336", "pretrained": "openai", "input_size": 518, "dpam_layer": 20,
                     "layers": [6, 12, 18, 24], "pos_interpolation": "bilinear", "cls_ln_post": False}

_BUFFERS = ("token_prefix_pos", "token_suffix_pos", "token_prefix_neg", "token_suffix_neg")


def read_official_state(path: str | Path) -> dict[str, torch.Tensor]:
    path = Path(path)
    if not path.is_file():
        raise ZsadError(f"AnomalyCLIP checkpoint {path} not found")
    try:
        checkpoint = torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as error:  # noqa: BLE001 - any unpickling problem is the file's
        raise ZsadError(f"{path}: cannot read as a torch checkpoint ({error})") from None
    state = checkpoint.get("prompt_learner", checkpoint) if isinstance(checkpoint, dict) else None
    if not isinstance(state, dict) or "ctx_pos" not in state or "ctx_neg" not in state:
        raise ZsadError(f"{path}: not an AnomalyCLIP checkpoint (expected a dict with 'prompt_learner' holding "
                        f"ctx_pos, ctx_neg, compound_prompts_text.*)")
    return {k.removeprefix("module."): v for k, v in state.items()}


def official_config(state: dict[str, torch.Tensor], where: str) -> PromptLearnerConfig:
    ctx_pos, ctx_neg = state["ctx_pos"], state["ctx_neg"]
    if ctx_pos.dim() != 4 or ctx_pos.shape[:2] != (1, 1) or ctx_neg.shape != ctx_pos.shape:
        raise ZsadError(f"{where}: ctx_pos/ctx_neg have shapes {tuple(ctx_pos.shape)}/{tuple(ctx_neg.shape)}; "
                        "expected [1, 1, n_ctx, width] each (one class 'object', one template)")
    deep = sorted(int(m.group(1)) for k in state if (m := re.fullmatch(r"compound_prompts_text\.(\d+)", k)))
    if deep != list(range(len(deep))):
        raise ZsadError(f"{where}: compound_prompts_text indices {deep} are not 0..n-1")
    t_n_ctx = int(state["compound_prompts_text.0"].shape[0]) if deep else PromptLearnerConfig.t_n_ctx
    return PromptLearnerConfig(n_ctx=int(ctx_pos.shape[2]), depth=len(deep) + 1, t_n_ctx=t_n_ctx)


def learner_from_official(backbone, path: str | Path, state: dict[str, torch.Tensor] | None = None,
                          atol: float = 1e-3) -> AnomalyCLIPPromptLearner:
    where = str(path)
    state = state if state is not None else read_official_state(path)
    config = official_config(state, where)
    learner = AnomalyCLIPPromptLearner(backbone.model, backbone.tokenizer, config)
    width = learner.ctx_pos.shape[-1]
    if state["ctx_pos"].shape[-1] != width:
        raise ZsadError(f"{where}: prompt width {state['ctx_pos'].shape[-1]} does not match the text width {width} of "
                        f"{backbone.name}; the official checkpoints need ViT-L-14-336 / openai")
    # The fixed-word embeddings stored in the checkpoint must be this base model's.
    ours = {"token_prefix_pos": learner.token_prefix[:1], "token_prefix_neg": learner.token_prefix[1:],
            "token_suffix_pos": learner.token_suffix[:1], "token_suffix_neg": learner.token_suffix[1:]}
    for key in _BUFFERS:
        if key in state:
            theirs = state[key].float().reshape(ours[key].shape) if state[key].numel() == ours[key].numel() else None
            if theirs is None or not torch.allclose(theirs, ours[key].float().cpu(), atol=atol, rtol=0):
                raise ZsadError(
                    f"{where}: the checkpoint's {key} (token embeddings of its fixed words) differ from those of "
                    f"{backbone.name}: it was trained on another base model (official checkpoints: ViT-L-14-336 / "
                    f"openai) or with another prompt text"
                )
    for key, row in (("tokenized_prompts_pos", 0), ("tokenized_prompts_neg", 1)):
        if key in state and not torch.equal(state[key].reshape(-1).long().cpu(), learner.tokenized_prompts[row].long().cpu()):
            raise ZsadError(f"{where}: the checkpoint's {key} differ from zsad's tokenisation of the prompt text")
    tensors = {"ctx_pos": state["ctx_pos"], "ctx_neg": state["ctx_neg"]}
    tensors.update({f"compound_prompts_text.{i}": state[f"compound_prompts_text.{i}"] for i in range(config.depth - 1)})
    own = learner.state_dict()
    learner.load_state_dict({k: v.to(own[k].dtype) for k, v in tensors.items()})
    learner.to(next(backbone.model.parameters()).device)
    return learner.requires_grad_(False).eval()


def import_official(path: str | Path, backbone, out: str | Path, command: str | None = None) -> Path:
    """Write ``out/`` (weights.safetensors, config.json, card) from an official checkpoint."""
    learner = learner_from_official(backbone, path)
    settings = backbone_settings(backbone)  # the options given to the import (the official ones by default)
    config = AdapterConfig(
        kind="anomalyclip",
        prompt_learner=learner.config.to_dict(),
        backbone=settings,
        base_model=base_model_description(backbone),
    )
    tensors = {f"prompt_learner.{k}": v for k, v in learner.state_dict().items()}
    differ = {k: (OFFICIAL_BACKBONE[k], v) for k, v in settings.items() if k in OFFICIAL_BACKBONE
              and OFFICIAL_BACKBONE[k] != v}
    card: dict[str, Any] = {"source": f"official AnomalyCLIP checkpoint {Path(path).name} (zqhang/AnomalyCLIP)",
                            "data": {"note": "as trained by the checkpoint's authors"}, "command": command}
    if differ:
        card["note"] = ("recorded to run outside the official training setting: " +
                        "; ".join(f"{k} {new} (official {old})" for k, (old, new) in differ.items()))
    return save_adapter(out, config, tensors, card)
