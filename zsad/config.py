"""Detector configuration: one dataclass tree, built from flat options in one place.

``build_config(**options)`` is the only road from user options (CLI flags, ``Detector(...)`` keyword arguments,
preset files) to a ``DetectorConfig``; the CLI and the Python API both call it, so an option means the same thing
everywhere. Unknown options are an error, not silently ignored.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, replace
from typing import Any

from zsad.backbones import BackboneSpec
from zsad.errors import ZsadError
from zsad.scoring.mutual import MutualConfig
from zsad.scoring.mutual.config import rscin_k_for
from zsad.scoring.reference import ReferenceConfig
from zsad.scoring.text import TextConfig
from zsad.verdict import ThresholdRule


@dataclass(frozen=True)
class DetectorConfig:
    backbone: BackboneSpec = field(default_factory=BackboneSpec)
    method: str = "auto"  # a registered scorer name, or "auto" (every evidence the inputs allow, fused)
    text: TextConfig = field(default_factory=TextConfig)
    reference: ReferenceConfig = field(default_factory=ReferenceConfig)
    reference_rotations: bool = False  # add 90/180/270-degree copies of each reference (AnomalyDINO)
    # Layers searched by few-shot scoring; None = the last extracted layer, as AnomalyDINO. Each layer adds one
    # nearest-neighbour search over the whole memory, so more layers cost more than they usually return.
    reference_layers: tuple[int, ...] | None = None
    mutual: MutualConfig = field(default_factory=MutualConfig)
    min_mutual_batch: int = 8  # "auto" uses mutual scoring from this many test images on
    batch_size: int = 8
    device: str = "auto"  # "auto": CUDA when available, else CPU
    precision: str = "auto"  # "auto": bf16 on CUDA, fp32 on CPU (fp32 is faster than bf16 on most CPUs)
    sigma: float = 4.0
    threshold: ThresholdRule = field(default_factory=ThresholdRule)
    explainer: str = "factual"
    # "auto" runs the single strongest evidence the inputs allow; fuse=True runs every one and fuses them.
    fuse: bool = False
    align_corners: bool = False  # upsampling of grid maps (MuSc's official code: True)
    # Where maps are Gaussian-smoothed: "input" (at the backbone's input size, then resized to the original) or
    # "original" (grid upsampled straight to the original frame and smoothed there: AnomalyDINO's official code).
    smooth_at: str = "input"
    gaussian_padding: str = "mirror"  # Gaussian border: "mirror" (d c b | a b c d) or "symmetric" (scipy's default)
    resize: str = "bicubic"  # image resize to the input size: bicubic (CLIP) or bilinear (MuSc's DINO pipeline)
    # Settings of scorers that live outside the typed sections above, by scorer name (e.g. "winclip",
    # "anomalyclip"): each scorer builds its own config from its entry, so a new scorer needs no field here.
    scorer_options: dict[str, dict[str, Any]] = field(default_factory=dict)
    preset: str | None = None  # the preset these settings started from (recorded in results)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


# flat option -> (path in DetectorConfig, converter). The CLI's flags and Detector's keyword arguments use these names.
def _tuple(value):
    return None if value is None else tuple(value)


OPTIONS: dict[str, tuple[str, Any]] = {
    "backbone": ("backbone.name", str),
    "pretrained": ("backbone.pretrained", lambda v: None if v is None else str(v)),
    "input_size": ("backbone.input_size", lambda v: None if v is None else int(v)),
    "layers": ("backbone.layers", _tuple),
    "vv_layers": ("backbone.vv_layers", int),
    "dpam_layer": ("backbone.dpam_layer", int),
    "windows": ("backbone.windows", _tuple),
    "pos_interpolation": ("backbone.pos_interpolation", str),
    "cls_ln_post": ("backbone.cls_ln_post", bool),
    "quick_gelu": ("backbone.quick_gelu", bool),
    "method": ("method", str),
    "object_name": ("text.object_name", str),
    "prompts": ("text.prompts", str),
    "text_image_score": ("text.image_score", str),
    "coreset": ("reference.coreset_ratio", lambda v: None if v is None else float(v)),
    "reference_metric": ("reference.metric", str),
    "rotations": ("reference_rotations", bool),
    "reference_layers": ("reference_layers", _tuple),
    "mutual_max_refs": ("mutual.max_refs", lambda v: None if v is None else int(v)),
    "mutual_groups": ("mutual.groups", int),
    "rscin": ("mutual.rscin_k", lambda v: MutualConfig.rscin_k if v is True else None if v is False else _tuple(v)),
    "rscin_dataset": ("mutual.rscin_k", lambda v: rscin_k_for(str(v))),
    "min_mutual_batch": ("min_mutual_batch", int),
    "batch_size": ("batch_size", int),
    "device": ("device", str),
    "precision": ("precision", str),
    "sigma": ("sigma", float),
    "threshold": ("threshold", lambda v: ThresholdRule("fixed", float(v))),
    "explainer": ("explainer", str),
    "fuse": ("fuse", bool),
    "align_corners": ("align_corners", bool),
    "smooth_at": ("smooth_at", str),
    "gaussian_padding": ("gaussian_padding", str),
    "resize": ("resize", str),
    # whole sections, as dicts of their fields (preset files use these)
    "text": ("text", dict),
    "reference": ("reference", dict),
    "mutual": ("mutual", dict),
    "scorer_options": ("scorer_options", dict),
}


def _set(config, path: str, value):
    head, _, rest = path.partition(".")
    if not rest:
        return replace(config, **{head: value})
    return replace(config, **{head: _set(getattr(config, head), rest, value)})


def _section(config, path: str, fields: dict):
    """Set several fields of a section (lists become tuples); dict-valued fields are merged key by key."""
    current = config
    for part in path.split("."):
        current = getattr(current, part)
    if isinstance(current, dict):
        return _set(config, path, {**current, **fields})
    unknown = [key for key in fields if not hasattr(current, key)]
    if unknown:
        raise ZsadError(f"unknown setting {path}.{unknown[0]}; known: {', '.join(vars(current))}")
    values = {key: tuple(value) if isinstance(value, list) else value for key, value in fields.items()}
    return _set(config, path, replace(current, **values))  # all at once: fields may depend on each other


def apply_options(config: DetectorConfig, options: dict[str, Any]) -> DetectorConfig:
    """``config`` with flat options applied (names in ``OPTIONS``); ``None`` values keep the field."""
    unknown = sorted(set(options) - set(OPTIONS))
    if unknown:
        raise ZsadError(f"unknown detector option(s) {unknown}; known: {', '.join(OPTIONS)}")
    for name, value in options.items():
        if value is None:
            continue
        path, convert = OPTIONS[name]
        try:
            config = _section(config, path, value) if convert is dict else _set(config, path, convert(value))
        except (TypeError, ValueError) as error:
            raise ZsadError(f"option {name}={value!r}: {error}") from None
    return config


def build_config(base: DetectorConfig | None = None, preset: str | None = None, **options) -> DetectorConfig:
    """A ``DetectorConfig``: the base (or defaults), then the preset's settings, then ``options`` on top.

    An option given explicitly always wins over the preset (``--preset musc --input-size 336``). Learned prompts
    (``prompts="learned:NAME"``) bring the base model and backbone settings they were trained in, applied between
    the preset and the explicit options; an explicit option that differs from them is honoured with a warning.
    """
    config = base or DetectorConfig()
    if preset is not None:
        from zsad.presets import load_preset

        chosen = load_preset(preset)
        config = replace(apply_options(config, chosen.options), preset=chosen.name)
    trained = _trained_options(options.get("prompts") or config.text.prompts)
    if trained:
        config = apply_options(config, trained)
        if "backbone" in trained:  # the base model's own tag, also when it has none (None would keep the preset's)
            config = replace(config, backbone=replace(config.backbone, pretrained=trained.get("pretrained")))
        _warn_untrained(trained, options)
    config = apply_options(config, options)
    validate(config)
    return config


def _trained_options(prompts: str | None) -> dict[str, Any]:
    if not prompts or not prompts.startswith("learned:"):
        return {}
    from zsad.learning.adapters import trained_options

    return trained_options(prompts.split(":", 1)[1])


def _warn_untrained(trained: dict[str, Any], options: dict[str, Any]) -> None:
    differ = {k: (trained[k], options[k]) for k in trained
              if k != "vv_layers" and options.get(k) is not None and _normal(options[k]) != _normal(trained[k])}
    if differ:
        import warnings

        listed = "; ".join(f"{k}: trained {a}, running {b}" for k, (a, b) in differ.items())
        warnings.warn(f"the learned prompts run outside the setting they were trained in ({listed}); "
                      "drop these options to use the adapter's own", UserWarning, stacklevel=3)


def _normal(value):
    return list(value) if isinstance(value, (list, tuple)) else value


def validate(config: DetectorConfig) -> None:
    """Refuse values that would only fail (or silently mislead) after the model is loaded."""
    from zsad.scoring.base import method_names

    if config.method not in method_names():
        raise ZsadError(f"unknown method {config.method!r}; use one of {', '.join(method_names())}")
    if config.batch_size < 1:
        raise ZsadError(f"batch size must be at least 1, got {config.batch_size}")
    size = config.backbone.input_size
    if size is not None and size < 16:
        raise ZsadError(f"input size {size} px is too small; use at least one patch (e.g. 224 or 518), or omit it")
    if config.threshold.kind == "fixed" and not math.isfinite(config.threshold.value):
        raise ZsadError(f"threshold {config.threshold.value} is not a finite number; pass e.g. --threshold 0.5")
    if config.resize not in ("bicubic", "bilinear"):
        raise ZsadError(f"resize {config.resize!r} must be 'bicubic' or 'bilinear'")
    if config.smooth_at not in ("input", "original"):
        raise ZsadError(f"smooth_at {config.smooth_at!r} must be 'input' or 'original'")
    if config.gaussian_padding not in ("mirror", "symmetric"):
        raise ZsadError(f"gaussian_padding {config.gaussian_padding!r} must be 'mirror' or 'symmetric'")
    if config.sigma < 0 or not math.isfinite(config.sigma):
        raise ZsadError(f"sigma {config.sigma} must be a finite number >= 0 (0 = no smoothing)")
    if config.backbone.layers is not None and min(config.backbone.layers) < 1:
        raise ZsadError(f"layers {list(config.backbone.layers)} must be 1-based block numbers (>= 1)")
