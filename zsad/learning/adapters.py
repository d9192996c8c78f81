"""Adapter artifacts: ``adapters/NAME/`` holds everything needed to rebuild and trust a learned module.

- ``weights.safetensors``: learned tensors only, ``prompt_learner.<official name>`` (``ctx_pos``, ``ctx_neg``,
  ``compound_prompts_text.<i>``) and ``lora.<peft name>`` for LoRA adapters.
- ``config.json``: what rebuilds the module (prompt learner shape, LoRA settings), the backbone settings it was
  trained in (AnomalyCLIP: DPAM layer, layers, input size, position-embedding interpolation, CLS feature) and the
  base model (name, pretrained tag, fingerprint of its weights).
- ``card.json`` / ``card.md``: base model + fingerprint, training data, recipe, metrics, the command that made it.

Loading refuses an adapter whose base model fingerprint differs from the backbone's: learned prompts only mean
something in the embedding space they were trained in.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from zsad.errors import ZsadError

FORMAT = "zsad-adapter"
VERSION = 1
WEIGHTS = "weights.safetensors"
CONFIG = "config.json"
DEFAULT_ROOT = Path("adapters")


def _base_name(key: str) -> str:
    return key.replace(".base_layer.", ".")


def fingerprint(model: nn.Module) -> str:
    """sha256 over the names, dtypes, shapes and bytes of a model's base weights (LoRA tensors excluded), sorted
    by name: two models have the same fingerprint exactly when their frozen weights are bit-identical."""
    digest = hashlib.sha256()
    state = {_base_name(k): v for k, v in model.state_dict().items() if "lora_" not in k}
    for key in sorted(state):
        tensor = state[key].detach().cpu().contiguous()
        digest.update(f"{key}|{tensor.dtype}|{tuple(tensor.shape)}\n".encode())
        if tensor.numel():
            digest.update(tensor.reshape(-1).view(torch.uint8).numpy())
    return "sha256:" + digest.hexdigest()


def backbone_fingerprint(backbone) -> str:
    """Fingerprint of a backbone's CLIP model, computed once per backbone object."""
    if "_zsad_fingerprint" not in vars(backbone):
        backbone._zsad_fingerprint = fingerprint(backbone.model)
    return backbone._zsad_fingerprint


@dataclass
class AdapterConfig:
    kind: str = "anomalyclip"
    prompt_learner: dict[str, Any] | None = None  # PromptLearnerConfig.to_dict()
    lora: dict[str, Any] | None = None  # LoraSettings.to_dict()
    backbone: dict[str, Any] = field(default_factory=dict)  # settings the module was trained in
    base_model: dict[str, Any] = field(default_factory=dict)  # name, pretrained, fingerprint

    def to_dict(self) -> dict[str, Any]:
        return {"format": FORMAT, "version": VERSION, "kind": self.kind, "prompt_learner": self.prompt_learner,
                "lora": self.lora, "backbone": self.backbone, "base_model": self.base_model}

    @classmethod
    def from_dict(cls, data: dict[str, Any], where: str) -> "AdapterConfig":
        if data.get("format") != FORMAT:
            raise ZsadError(f"{where}: not a zsad adapter config (format {data.get('format')!r}, expected {FORMAT!r})")
        if int(data.get("version", 0)) > VERSION:
            raise ZsadError(f"{where}: adapter format version {data['version']} is newer than this zsad ({VERSION}); "
                            "upgrade zsad")
        return cls(kind=data.get("kind", "anomalyclip"), prompt_learner=data.get("prompt_learner"),
                   lora=data.get("lora"), backbone=data.get("backbone") or {}, base_model=data.get("base_model") or {})


def adapter_names(root: str | Path = DEFAULT_ROOT) -> list[str]:
    """Adapters under ``root`` (``./adapters`` by default), by the names ``learned:NAME`` accepts."""
    root = Path(root)
    return sorted(p.parent.name for p in root.glob(f"*/{CONFIG}")) if root.is_dir() else []


def resolve_adapter_dir(value: str | Path, root: str | Path = DEFAULT_ROOT) -> Path:
    """``NAME`` -> ``adapters/NAME`` (relative to the working directory), or an existing folder path."""
    path = Path(value).expanduser()
    candidates = [path] if path.is_absolute() or path.exists() else [Path(root) / str(value), path]
    for candidate in candidates:
        if (candidate / CONFIG).is_file():
            return candidate
    looked = ", ".join(str(c) for c in candidates)
    raise ZsadError(
        f"adapter {value!r} not found (looked for {CONFIG} in {looked}); pass a folder written by `zsad train` or "
        "`zsad adapters import-anomalyclip`, or a name under ./adapters/"
    )


# Backbone settings an adapter was trained in, as detector options (zsad.config.OPTIONS names).
TRAINED_SETTINGS = ("input_size", "layers", "dpam_layer", "pos_interpolation", "cls_ln_post")


def trained_options(adapter: str) -> dict[str, Any]:
    """The detector options the adapter of ``--prompts learned:ADAPTER`` was trained with: its base model and the
    backbone settings that shape the features its prompts were fitted to. ``{}`` for an official ``.pth``
    checkpoint (the anomalyclip preset holds its setting).

    ``build_config`` applies them above the preset and below explicit options, so ``--prompts learned:NAME`` alone
    runs the adapter as trained, and ``--input-size`` etc. still override (with a warning there)."""
    if not adapter or Path(adapter).suffix in (".pth", ".pt"):
        return {}
    config = read_adapter_config(resolve_adapter_dir(adapter))
    options = {k: config.backbone[k] for k in TRAINED_SETTINGS if config.backbone.get(k) is not None}
    if config.base_model.get("name"):
        options["backbone"] = config.base_model["name"]
        options["pretrained"] = config.base_model.get("pretrained")
    return options


def base_model_description(backbone) -> dict[str, Any]:
    return {"name": backbone.name, "pretrained": backbone.pretrained, "fingerprint": backbone_fingerprint(backbone)}


def backbone_settings(backbone) -> dict[str, Any]:
    """The backbone settings that shape the features learned prompts are fitted to, as an adapter records them
    (``TRAINED_SETTINGS``; V-V in both conventions)."""
    return {"input_size": backbone.input_size, "layers": list(backbone.layers), "vv_layers": backbone.vv_layers,
            "dpam_layer": backbone.vv_layers + 1, "pos_interpolation": backbone.pos_interpolation,
            "cls_ln_post": backbone.cls_ln_post}


def save_adapter(directory: str | Path, config: AdapterConfig, tensors: dict[str, torch.Tensor],
                 card: dict[str, Any] | None = None) -> Path:
    from safetensors.torch import save

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    # Written as bytes like config.json and the card: safetensors' save_file creates its file owner-only (0600).
    (directory / WEIGHTS).write_bytes(save({k: v.detach().cpu().contiguous() for k, v in tensors.items()},
                                           metadata={"format": FORMAT}))
    (directory / CONFIG).write_text(json.dumps(config.to_dict(), indent=2) + "\n")
    if card is not None:
        write_card(directory, {**card, "base_model": config.base_model, "config": config.to_dict()})
    return directory


def read_adapter_config(directory: str | Path) -> AdapterConfig:
    where = Path(directory) / CONFIG
    try:
        data = json.loads(where.read_text())
    except (OSError, json.JSONDecodeError) as error:
        raise ZsadError(f"{where}: cannot read adapter config ({error})") from None
    return AdapterConfig.from_dict(data, str(where))


def read_adapter(directory: str | Path) -> tuple[AdapterConfig, dict[str, torch.Tensor]]:
    from safetensors.torch import load_file

    directory = Path(directory)
    config = read_adapter_config(directory)
    weights = directory / WEIGHTS
    if not weights.is_file():
        raise ZsadError(f"adapter {directory}: {WEIGHTS} is missing")
    return config, load_file(str(weights))


def check_base_model(config: AdapterConfig, backbone, where: str) -> None:
    """Refuse an adapter trained on other base weights, naming both models."""
    expected = config.base_model.get("fingerprint")
    if not expected:
        return
    actual = backbone_fingerprint(backbone)
    if actual != expected:
        trained = f"{config.base_model.get('name')} ({config.base_model.get('pretrained') or 'unknown weights'})"
        raise ZsadError(
            f"adapter {where} was trained on {trained} with weights {expected[:19]}..., but the backbone "
            f"{backbone.name} has weights {actual[:19]}...: learned prompts only work on the base "
            f"model they were trained on. Load that base model (--backbone/--pretrained) or retrain the adapter."
        )


def write_card(directory: Path, card: dict[str, Any]) -> None:
    """card.json (everything) and card.md (the same for people)."""
    (directory / "card.json").write_text(json.dumps(card, indent=2, default=str) + "\n")
    base = card.get("base_model", {})
    lines = [f"# Adapter {directory.name}", "",
             f"- kind: {card.get('config', {}).get('kind', 'anomalyclip')}",
             f"- base model: {base.get('name')} / {base.get('pretrained')}",
             f"- base model fingerprint: `{base.get('fingerprint')}`"]
    if card.get("source"):
        lines.append(f"- source: {card['source']}")
    if card.get("data"):
        lines += ["", "## Training data", "", "```json", json.dumps(card["data"], indent=2, default=str), "```"]
    if card.get("recipe"):
        lines += ["", "## Recipe", "", "```json", json.dumps(card["recipe"], indent=2, default=str), "```"]
    if card.get("metrics"):
        lines += ["", "## Metrics", "", "```json", json.dumps(card["metrics"], indent=2, default=str), "```"]
    if card.get("command"):
        lines += ["", "## Command", "", "```", str(card["command"]), "```"]
    (directory / "card.md").write_text("\n".join(lines) + "\n")
