"""What a run ran on: library versions, device, backbone weights and their fingerprint, resolved settings.

The fingerprint is a sha256 over the names, shapes and bytes of a few parameter tensors (the first and last
``FINGERPRINT_TENSORS`` in name order) plus the parameter count: two runs with the same fingerprint used the same
weights (up to the untouched middle tensors, which no checkpoint swap leaves identical in practice), and hashing
a few tensors costs milliseconds even for ViT-L.
"""
from __future__ import annotations

import dataclasses
import enum
import hashlib
import importlib.metadata
import platform
import sys
from pathlib import Path
from typing import Any

FINGERPRINT_TENSORS = 4
RANDOM_BACKBONES = frozenset({"tiny-clip", "tiny-dinov2", "tiny-dinov2-reg"})


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
    named = getattr(module, "named_parameters", None)
    if named is None:
        return None
    params = sorted(named(), key=lambda item: item[0])
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


def jsonable(value: Any) -> Any:
    """Dataclasses, enums, paths, tuples, numpy/torch scalars -> plain JSON values."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: jsonable(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [jsonable(v) for v in value]
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    if hasattr(value, "item") and callable(value.item):
        try:
            return value.item()
        except (ValueError, RuntimeError):
            pass
    return repr(value)


def device_description(detector: Any) -> dict[str, Any]:
    device = getattr(detector, "device", None)
    out: dict[str, Any] = {"device": str(device) if device is not None else "unknown"}
    if device is not None and getattr(device, "type", None) == "cuda":
        import torch

        out["name"] = torch.cuda.get_device_name(device)
    else:
        out["name"] = platform.processor() or platform.machine()
    dtype = getattr(detector, "dtype", None)
    if dtype is not None:
        out["dtype"] = str(dtype).removeprefix("torch.")
    return out


def describe_detector(detector: Any) -> dict[str, Any]:
    """Backbone, weights, fingerprint and resolved settings of a detector (duck-typed: ``.backbone``, ``.config``,
    optionally ``.describe()``); ``trained_on``: the training data of learned prompts (``provenance.trained_on``)."""
    from zsad.evaluation.provenance import trained_on

    backbone = detector.backbone
    settings = detector.describe() if hasattr(detector, "describe") else jsonable(getattr(detector, "config", {}))
    settings = jsonable(settings)
    spec = getattr(getattr(detector, "config", None), "backbone", None)
    pretrained = getattr(spec, "pretrained", None)
    if isinstance(settings, dict):
        pretrained = settings.get("pretrained", (settings.get("backbone") or {}).get("pretrained")
                                  if isinstance(settings.get("backbone"), dict) else pretrained) or pretrained
    name = getattr(backbone, "name", str(backbone))
    random_flag = getattr(backbone, "random_weights", None)
    return {
        "backbone": name,
        "pretrained": pretrained,
        "input_size": getattr(backbone, "input_size", None),
        "layers": jsonable(getattr(backbone, "layers", None)),
        "random_weights": bool(random_flag) if random_flag is not None else is_random_weights(name, pretrained),
        "weights_fingerprint": weights_fingerprint(backbone),
        "method": jsonable(getattr(getattr(detector, "config", None), "method", None)
                           or (settings.get("method") if isinstance(settings, dict) else None)),
        "preset": settings.get("preset") if isinstance(settings, dict) else None,
        "trained_on": trained_on(settings),
        "settings": settings,
        "device": device_description(detector),
        "argv": list(sys.argv),
    }
