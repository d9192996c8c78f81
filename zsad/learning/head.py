"""Learned prompts as a text head: ``--prompts learned:NAME`` (``adapters/NAME/``), ``learned:/path/to/adapter`` or
``learned:/path/to/epoch_15.pth`` (an official AnomalyCLIP checkpoint, imported on the fly)."""
from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import torch

from zsad.errors import ZsadError
from zsad.learning.adapters import AdapterConfig, check_base_model, read_adapter, resolve_adapter_dir
from zsad.learning.prompt_learner import AnomalyCLIPPromptLearner, PromptLearnerConfig
from zsad.scoring.text_heads import TextHead

PREFIX = "prompt_learner."


class LearnedPromptHead(TextHead):
    """[2, D] unit rows from AnomalyCLIP's learned prompts. The prompts are object-agnostic: ``object_name`` is
    ignored (the official code always says "object"). Differentiable while the learner's parameters require
    gradients and gradients are enabled (training); otherwise computed without autograd and cached until the
    parameters change (a loaded adapter is frozen, so detection never builds a graph)."""

    def __init__(self, backbone, learner: AnomalyCLIPPromptLearner, name: str = "learned",
                 backbone_settings: dict[str, Any] | None = None, lora: dict[str, Any] | None = None):
        self.backbone = backbone
        self.learner = learner
        self.name = name
        self.backbone_settings = dict(backbone_settings or {})
        self.lora = lora
        self._cache: tuple[tuple, torch.Tensor] | None = None

    def _version(self) -> tuple:
        return tuple(p._version for p in self.learner.parameters()) + tuple(id(p) for p in self.learner.parameters())

    def embeddings(self, object_name: str = "object") -> torch.Tensor:
        if torch.is_grad_enabled() and any(p.requires_grad for p in self.learner.parameters()):
            return self.learner(self.backbone.model)  # training: the loss reaches the prompts
        key = self._version()
        if self._cache is None or self._cache[0] != key:
            with torch.inference_mode():
                self._cache = (key, self.learner(self.backbone.model).clone())
        return self._cache[1]

    def describe(self) -> dict[str, Any]:
        return {"text_head": "learned", "adapter": self.name, "prompt_learner": self.learner.config.to_dict(),
                "lora": self.lora, "trained_backbone_settings": self.backbone_settings}

    def fingerprint(self, object_name: str = "object") -> dict[str, Any]:
        """The description and a sha256 of every learned tensor (a retrained adapter of the same name differs)."""
        digest = hashlib.sha256()
        for name, tensor in sorted(self.learner.state_dict().items()):
            digest.update(name.encode())
            digest.update(tensor.detach().float().cpu().contiguous().numpy().tobytes())
        return {**self.describe(), "weights_sha256": digest.hexdigest()}


def learner_from_tensors(backbone, config: PromptLearnerConfig, tensors: dict[str, torch.Tensor],
                         where: str) -> AnomalyCLIPPromptLearner:
    learner = AnomalyCLIPPromptLearner(backbone.model, backbone.tokenizer, config)
    own = {k[len(PREFIX):]: v for k, v in tensors.items() if k.startswith(PREFIX)}
    expected = learner.state_dict()
    missing = sorted(set(expected) - set(own))
    if missing:
        raise ZsadError(f"adapter {where}: weights lack {', '.join(missing)}")
    for key, value in own.items():
        if key in expected and tuple(value.shape) != tuple(expected[key].shape):
            raise ZsadError(f"adapter {where}: {key} has shape {tuple(value.shape)}, the base model needs "
                            f"{tuple(expected[key].shape)} (another text width?)")
    learner.load_state_dict({k: v.to(expected[k].dtype) for k, v in own.items() if k in expected})
    learner.to(next(backbone.model.parameters()).device)
    return learner.requires_grad_(False).eval()


def load_learned_head(backbone, value: str | Path) -> LearnedPromptHead:
    """A head from an adapter folder / name, or an official AnomalyCLIP ``.pth`` checkpoint."""
    if not backbone.has_text:
        raise ZsadError(f"learned prompts need a CLIP backbone with a text tower; {backbone.name} has none")
    path = Path(str(value)).expanduser()
    if path.suffix in (".pth", ".pt") and path.is_file():
        from zsad.learning.official import learner_from_official

        learner = learner_from_official(backbone, path)
        return LearnedPromptHead(backbone, learner, name=str(path))
    directory = resolve_adapter_dir(value)
    config, tensors = read_adapter(directory)
    check_base_model(config, backbone, str(directory))
    if config.lora:
        from zsad.learning.lora import apply_lora_state

        apply_lora_state(backbone, config.lora, tensors)
    if config.prompt_learner is None:
        raise ZsadError(f"adapter {directory} holds no prompt learner (LoRA only); use it with hand-written prompts "
                        "through zsad.learning.lora.load_lora_adapter")
    learner = learner_from_tensors(backbone, PromptLearnerConfig.from_dict(config.prompt_learner), tensors,
                                   str(directory))
    return LearnedPromptHead(backbone, learner, name=directory.name, backbone_settings=config.backbone,
                             lora=config.lora)


def learned_text_head(backbone, value: str) -> TextHead:
    """The ``learned`` text-head family (declared in ``zsad.scoring.registry.TEXT_HEADS``)."""
    if not value:
        raise ZsadError("--prompts learned:NAME needs an adapter name or path, e.g. learned:anomalyclip-visa")
    return load_learned_head(backbone, value)


__all__ = ["LearnedPromptHead", "learned_text_head", "load_learned_head", "learner_from_tensors", "AdapterConfig"]
