"""What a run ran on: library versions, device, backbone weights and their fingerprint, resolved settings.

The fingerprint is a sha256 over the names, shapes and bytes of a few parameter tensors (the first and last
``FINGERPRINT_TENSORS`` in name order) plus the parameter count: two runs with the same fingerprint used the same
weights (up to the untouched middle tensors, which no checkpoint swap leaves identical in practice), and hashing
a few tensors costs milliseconds even for ViT-L.
"""
from __future__ import annotations

import hashlib
import importlib.metadata
import platform
import sys
from typing import Any

from zsad.config_fields import jsonable

FINGERPRINT_TENSORS = 4
from zsad.backbones.spec import TINY_BACKBONES as RANDOM_BACKBONES


def versions() -> dict[str, str | None]:
    out: dict[str, str | None] = {"python": platform.python_version(), "platform": platform.platform()}
    for package in ("zsad", "torch", "open_clip_torch", "transformers", "numpy", "scipy", "datasets"):
        try:
            out[package] = importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            out[package] = None
    return out


def weights_fingerprint(module: Any) -> dict[str, Any] | None:
    """sha256 of a few parameter tensors (name, shape, float32 bytes) and the parameter count; None without any."""
    params = sorted(module.named_parameters(), key=lambda item: item[0])
    if not params:
        return None
    chosen = params[:FINGERPRINT_TENSORS] + params[FINGERPRINT_TENSORS:][-FINGERPRINT_TENSORS:]
    digest = hashlib.sha256()
    for name, tensor in chosen:
        data = tensor.detach().float().cpu().contiguous().numpy()
        digest.update(name.encode())
        digest.update(str(tuple(data.shape)).encode())
        digest.update(data.tobytes())
    return {
        "sha256": digest.hexdigest(),
        "tensors": [name for name, _ in chosen],
        "parameters": int(sum(t.numel() for _, t in params)),
    }


def is_random_weights(backbone_name: str, pretrained: str | None) -> bool:
    return backbone_name in RANDOM_BACKBONES or str(pretrained) == "random"


def device_description(detector: Any) -> dict[str, Any]:
    device = detector.device
    out: dict[str, Any] = {"device": str(device), "dtype": str(detector.dtype).removeprefix("torch.")}
    if device.type == "cuda":
        import torch

        out["name"] = torch.cuda.get_device_name(device)
    else:
        out["name"] = platform.processor() or platform.machine()
    return out


def describe_detector(detector: Any) -> dict[str, Any]:
    """Backbone, weights, fingerprint and resolved settings of a detector.

    ``detector`` is a ``zsad.Detector`` or anything with the surface evaluation uses: ``detect(...)``,
    ``describe()`` (settings with a ``backbone`` section: name, pretrained, input_size, layers, and ``method``,
    ``preset``), ``backbone`` (a torch module, for the weights fingerprint), ``device`` and ``dtype``.
    ``trained_on``: the training data of learned prompts (``provenance.trained_on``).
    """
    from zsad.evaluation.provenance import trained_on

    settings = jsonable(detector.describe())
    backbone = settings.get("backbone") or {}
    name, pretrained = backbone.get("name"), backbone.get("pretrained")
    return {
        "backbone": name,
        "pretrained": pretrained,
        "input_size": backbone.get("input_size"),
        "layers": backbone.get("layers"),
        "random_weights": is_random_weights(name, pretrained),
        "weights_fingerprint": weights_fingerprint(detector.backbone),
        "method": settings.get("method"),
        "preset": settings.get("preset"),
        "trained_on": trained_on(settings),
        "settings": settings,
        "device": device_description(detector),
        "argv": list(sys.argv),
    }


def result_fingerprint(detector: Any, memory: Any = None) -> dict[str, Any]:
    """Everything that determines a detector's results, for the journal that ``--resume`` checks
    (``zsad.outputs.journal``): the resolved settings (results.json's ``settings`` without run-time-only facts:
    which level set a value, the preset's name, what a run resolved, and settings declared ``run_time_only``), the
    text head's content (``TextHead.fingerprint``), explainer and reasoning, the backbone's weights fingerprint and
    the reference memory's (``ReferenceMemory.fingerprint``; None without references)."""
    from zsad.config import run_time_only_paths

    settings = jsonable(detector.describe())
    ran = settings.pop("ran", {}) or {}
    settings.pop("origins", None)
    settings.pop("preset", None)
    for path in run_time_only_paths():
        *section, key = path.split(".")
        node = settings
        for part in section:
            node = node.get(part) if isinstance(node, dict) else None
        if isinstance(node, dict):
            node.pop(key, None)
    head = detector.text_head
    object_name = detector.config.text_head.object_name
    return {
        "settings": settings,
        "text_head": None if head is None else jsonable(head.fingerprint(object_name)),
        "explainer": ran.get("explainer"),
        "reasoning": ran.get("reasoning"),
        "weights": weights_fingerprint(detector.backbone),
        "references": None if memory is None else memory.fingerprint(),
    }
