"""LoRA adapters on CLIP's vision and/or text encoder through peft, alone or beside the prompt learner.

LoRA goes into the MLP linears (``mlp.c_fc``, ``mlp.c_proj``) of the chosen towers' residual blocks. Attention
projections are not targeted: ``nn.MultiheadAttention`` reads ``in_proj_weight``/``out_proj.weight`` directly, so
a LoRA wrapper there would be silently bypassed. Adapters are saved in the same ``adapters/NAME/`` folder
(``lora.<name>`` tensors in ``weights.safetensors``, settings in ``config.json``); loading injects them into the
backbone's model in place (the base weights stay untouched; the fingerprint ignores LoRA tensors).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import torch
from torch import nn

from zsad.errors import ZsadError

_TOWERS = {
    "vision": r"visual\.transformer\.resblocks\.\d+\.mlp\.(c_fc|c_proj)",
    "text": r"transformer\.resblocks\.\d+\.mlp\.(c_fc|c_proj)",
}


@dataclass(frozen=True)
class LoraSettings:
    towers: tuple[str, ...] = ("vision",)
    r: int = 8
    alpha: int = 16
    dropout: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "towers": list(self.towers)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "LoraSettings":
        return cls(towers=tuple(data.get("towers", ("vision",))), r=int(data.get("r", 8)),
                   alpha=int(data.get("alpha", 16)), dropout=float(data.get("dropout", 0.0)))


def _pattern(towers: tuple[str, ...]) -> str:
    unknown = [t for t in towers if t not in _TOWERS]
    if unknown or not towers:
        raise ZsadError(f"LoRA towers must be among {sorted(_TOWERS)}, got {list(towers)}")
    parts = []
    if "vision" in towers:
        parts.append(_TOWERS["vision"])
    if "text" in towers:
        parts.append("(?<!visual\\.)" + _TOWERS["text"])  # the text tower's blocks are at the model's top level
    return "^(" + "|".join(parts) + ")$"


def apply_lora(backbone, settings: LoraSettings) -> list[nn.Parameter]:
    """Inject LoRA layers into ``backbone.model``; returns the new trainable parameters."""
    from zsad.errors import require

    peft = require("peft", "train")
    LoraConfig, inject_adapter_in_model = peft.LoraConfig, peft.inject_adapter_in_model

    model = backbone.model
    if any("lora_" in name for name, _ in model.named_parameters()):
        raise ZsadError("this backbone already carries LoRA layers; load a fresh backbone")
    config = LoraConfig(r=settings.r, lora_alpha=settings.alpha, lora_dropout=settings.dropout,
                        target_modules=_pattern(settings.towers))
    inject_adapter_in_model(config, model)
    params = [p for name, p in model.named_parameters() if "lora_" in name]
    for p in params:
        p.requires_grad_(True)
    return params


def lora_state(backbone) -> dict[str, torch.Tensor]:
    return {f"lora.{name}": p.detach().cpu() for name, p in backbone.model.named_parameters() if "lora_" in name}


def apply_lora_state(backbone, settings: dict[str, Any], tensors: dict[str, torch.Tensor]) -> None:
    apply_lora(backbone, LoraSettings.from_dict(settings))
    own = dict(backbone.model.named_parameters())
    wanted = {k[len("lora."):]: v for k, v in tensors.items() if k.startswith("lora.")}
    missing = sorted(k for k in own if "lora_" in k and k not in wanted)
    if missing:
        raise ZsadError(f"LoRA adapter lacks {len(missing)} tensors, e.g. {missing[0]}")
    with torch.no_grad():
        for name, value in wanted.items():
            own[name].copy_(value.to(own[name].dtype))
            own[name].requires_grad_(False)


def load_lora_adapter(backbone, value: str) -> dict[str, Any]:
    """Apply a LoRA-only (or any) adapter's LoRA tensors to the backbone; returns its config."""
    from zsad.learning.adapters import check_base_model, read_adapter, resolve_adapter_dir

    directory = resolve_adapter_dir(value)
    config, tensors = read_adapter(directory)
    check_base_model(config, backbone, str(directory))
    if not config.lora:
        raise ZsadError(f"adapter {directory} holds no LoRA weights")
    apply_lora_state(backbone, config.lora, tensors)
    return config.to_dict()
