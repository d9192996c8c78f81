"""The few-shot scorer: test patches against a memory of good reference patches (WinCLIP+, PatchCore, AnomalyDINO).

The distance search itself lives in ``reference.py``; this module owns everything around it that depends on the
detector: which layers are searched, building the memory from reference images (rotated copies, leave-one-out
threshold), saving and loading it, and checking that a loaded memory matches the detector's backbone.
"""
from __future__ import annotations

import warnings
from dataclasses import replace
from pathlib import Path

import torch
from PIL import Image

from zsad.backbones.base import Features
from zsad.data.images import LoadedImage, load_image
from zsad.errors import ZsadError
from zsad.scoring.base import AnomalyMaps, Scorer, ScoringRun, register_scorer
from zsad.scoring.reference import ReferenceMemory

ROTATIONS = (Image.ROTATE_90, Image.ROTATE_180, Image.ROTATE_270)


def reference_tokens(detector, features: Features) -> torch.Tensor:
    """The layers few-shot scoring uses, [B, L', h, w, C]; the last extracted layer unless configured."""
    wanted = detector.config.reference_layers or features.layers[-1:]
    missing = [layer for layer in wanted if layer not in features.layers]
    if missing:
        raise ZsadError(f"reference layers {missing} were not extracted; the backbone returns {list(features.layers)}")
    return features.patch_tokens[:, [features.layers.index(layer) for layer in wanted]]


def memory_meta(detector) -> dict[str, str]:
    """What a reference memory must agree on with the detector that searches it."""
    spec = detector.config.backbone
    meta = {
        "backbone": spec.name,
        "pretrained": str(spec.pretrained),
        "input_size": str(detector.backbone.input_size),
        "layers": ",".join(map(str, detector.config.reference_layers or detector.backbone.layers[-1:])),
    }
    if spec.pos_interpolation != "bicubic":  # stored only when set, so memories saved before it still load
        meta["pos_interpolation"] = spec.pos_interpolation
    return meta


def load_references(references, rotations: bool = False) -> tuple[list[LoadedImage], list[int]]:
    """Good reference images (paths, folders, PIL images, arrays) loaded, with rotated copies when asked; returns
    the images and, for each, the index of the reference it came from. Unreadable files are skipped with a
    warning; none readable is an error."""
    from zsad.detector import expand_sources

    images, owners = [], []
    for index, source in enumerate(expand_sources(references)):
        try:
            image = load_image(source.item).image
        except ZsadError as error:
            warnings.warn(f"reference skipped: {error}", stacklevel=3)
            continue
        copies = [image] + ([image.transpose(turn) for turn in ROTATIONS] if rotations else [])
        images += [LoadedImage(copy, "", None, copy.size) for copy in copies]
        owners += [index] * len(copies)
    if not images:
        raise ZsadError("no usable reference image; pass a folder or files of good (defect-free) images")
    return images, owners


def build_memory(detector, references, progress: bool = False) -> ReferenceMemory:
    """Memory of good reference images (paths, folders, PIL images, arrays).

    With two or more references, every reference is also scored against a memory of the others (leave-one-out);
    the largest of these normal scores is kept in the memory's metadata as ``normal_score_max`` and serves as the
    few-shot threshold for batches too small for the batch rule.
    """
    images, owners = load_references(references, detector.config.reference_rotations)
    tokens = reference_tokens(detector, detector.transformed(detector.extract(images, progress=progress)))
    meta = memory_meta(detector)
    owners_t = torch.tensor(owners)
    if len(set(owners)) >= 2:
        loo_config = replace(detector.config.reference, coreset_ratio=None)
        normal_scores = [
            ReferenceMemory.build(tokens[owners_t != owner], loo_config).score(tokens[owners_t == owner]).scores
            for owner in sorted(set(owners))
        ]
        meta["normal_score_max"] = repr(float(torch.cat(normal_scores).max()))
    return ReferenceMemory.build(tokens, detector.config.reference, meta=meta)


def load_memory(detector, path: str | Path) -> ReferenceMemory:
    memory = ReferenceMemory.load(path, expect_meta=memory_meta(detector))
    stored = memory.meta.get("pos_interpolation", "bicubic")
    if stored != detector.config.backbone.pos_interpolation:
        raise ZsadError(
            f"reference memory {path} was built with pos_interpolation={stored!r} but "
            f"{detector.config.backbone.pos_interpolation!r} is in use; rebuild the memory with the current settings"
        )
    return memory


def memory_from(detector, references, progress: bool = False) -> ReferenceMemory | None:
    """A memory from whatever the user passed: None, a built memory, a saved .safetensors file, or images."""
    if references is None or isinstance(references, ReferenceMemory):
        memory = references
    elif isinstance(references, (str, Path)) and str(references).endswith(".safetensors"):
        memory = load_memory(detector, references)
    else:
        memory = build_memory(detector, references, progress)
    return None if memory is None else memory.to(detector.device)


@register_scorer
class FewShotScorer(Scorer):
    """Nearest-neighbour distance of each test patch to the reference memory, batch by batch."""

    name = "fewshot"
    help = "few-shot: distance to the nearest patch of good reference images (--references)"
    order = 20
    in_auto = True
    strength = 30

    @classmethod
    def unavailable(cls, detector, run: ScoringRun) -> str | None:
        if run.references is None:
            return "few-shot scoring needs good reference images (--references DIR or a saved memory)"
        return None

    def start(self, run: ScoringRun) -> None:
        super().start(run)
        self.memory = memory_from(self.detector, run.references, run.progress)

    def add(self, features: Features, start: int) -> AnomalyMaps:
        return self.memory.score(reference_tokens(self.detector, features).to(self.memory.device))

    def natural_threshold(self) -> float | None:
        value = self.memory.meta.get("normal_score_max")
        return None if value is None else float(value)

    def describe(self) -> dict:
        config = self.detector.config.reference
        return {"metric": config.metric, "image_score": config.image_score, "coreset": config.coreset_ratio,
                "rotations": self.detector.config.reference_rotations, "memory_patches": self.memory.num_patches,
                "layers": self.memory.meta.get("layers")}
