"""Backbones: one forward pass from a normalised image batch to ``Features``.

- ``spec``: what a backbone is asked to be (``BackboneSpec``) and the declared families (``BACKBONES``), torch-free;
- ``loading``: ``load_backbone(spec, device)``, the one factory, and device/precision resolution;
- ``clip`` (open_clip names, a pretrained tag, a checkpoint path, ``hf-hub:``/``local-dir:``, ``random``),
  ``dinov2`` (transformers), and ``tiny-clip`` / ``tiny-dinov2[-reg]``: small randomly initialised models of the
  same architectures, running the same code paths, for tests and smoke runs without weights;
- ``base``: ``Features`` and the ``Backbone`` protocol every family implements.

Importing this package loads no torch; the names below that need it load on first use.
"""
from __future__ import annotations

from zsad.backbones.spec import DEFAULT_BACKBONE, BackboneSpec, backbone_help
from zsad.registry import lazy_exports

_lazy = lazy_exports(__name__, {
    "loading": ("load_backbone", "resolve_device", "resolve_precision"),
    "clip": ("CLIPBackbone",),
    "dinov2": ("DINOv2Backbone",),
    "base": ("Features",),
})
__all__ = ["BackboneSpec", "DEFAULT_BACKBONE", "backbone_help", *_lazy]
