"""The Detector: images in, one ``AnomalyResult`` per image out.

Data flow (DESIGN.md): load + validate every input (a bad one becomes an error result, the rest go on) -> batches
through the backbone once per image -> each scorer that the inputs allow maps ``Features`` to patch-grid maps and
image scores -> fusion -> upsample to the input size, Gaussian smoothing, resize to each original frame ->
threshold over the batch -> verdict and explanation.
"""
from __future__ import annotations

import contextlib
import warnings
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Iterable

import numpy as np
import torch
from PIL import Image
from tqdm.auto import tqdm

from zsad.backbones import BackboneSpec, load_backbone
from zsad.backbones.base import Features
from zsad.data.images import LoadedImage, load_image
from zsad.data.preprocess import to_batch
from zsad.errors import ZsadError
from zsad.results import AnomalyResult, explain
from zsad.scoring.base import AnomalyMaps
from zsad.scoring.fusion import fuse
from zsad.scoring.mutual import MutualConfig, mutual_scores
from zsad.scoring.postprocess import smooth, to_original_sizes
from zsad.scoring.reference import ReferenceConfig, ReferenceMemory
from zsad.scoring.text import TextConfig, TextScorer
from zsad.verdict import Threshold, ThresholdRule, decide_threshold

PRECISIONS = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}
METHODS = ("auto", "text", "fewshot", "mutual")
EVIDENCE_ORDER = ("text", "fewshot", "mutual")
# Features of a mutual batch are kept in float16 above this size: 1,000 images at ViT-L-14/518 with 4 layers
# are 22 GB in float32 but 11 GB in float16, and distances are computed in float32 chunks anyway.
MUTUAL_FP32_LIMIT_BYTES = 4 * 2**30


@dataclass(frozen=True)
class DetectorConfig:
    backbone: BackboneSpec = field(default_factory=BackboneSpec)
    method: str = "auto"  # text | fewshot | mutual | auto (every evidence the inputs allow, fused)
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


def resolve_device(device: str) -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        resolved = torch.device(device)
    except RuntimeError:
        raise ZsadError(f"unknown device {device!r}; use auto, cpu, cuda or cuda:N") from None
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise ZsadError(f"device {device} requested but CUDA is not available here; use --device cpu")
    return resolved


def resolve_precision(precision: str, device: torch.device) -> torch.dtype:
    if precision == "auto":
        return torch.bfloat16 if device.type == "cuda" else torch.float32
    if precision not in PRECISIONS:
        raise ZsadError(f"unknown precision {precision!r}; use auto, fp32, bf16 or fp16")
    return PRECISIONS[precision]


class Detector:
    """Zero-shot anomaly detector.

    >>> detector = Detector(backbone="tiny-clip", object_name="bottle")   # doctest: +SKIP
    >>> results = detector.detect(["a.png", "b.png"])                      # doctest: +SKIP
    """

    def __init__(
        self,
        backbone: str = BackboneSpec.name,
        pretrained: str | None = None,
        *,
        object_name: str = "object",
        method: str = "auto",
        input_size: int | None = None,
        layers: tuple[int, ...] | None = None,
        vv_layers: int = 0,
        batch_size: int = 8,
        device: str = "auto",
        precision: str = "auto",
        threshold: float | None = None,
        config: DetectorConfig | None = None,
    ):
        if config is None:
            config = DetectorConfig(
                backbone=BackboneSpec(backbone, pretrained, input_size, tuple(layers) if layers else None, vv_layers),
                method=method,
                text=TextConfig(object_name=object_name),
                batch_size=batch_size,
                device=device,
                precision=precision,
                threshold=ThresholdRule("fixed", threshold) if threshold is not None else ThresholdRule(),
            )
        if config.method not in METHODS:
            raise ZsadError(f"unknown method {config.method!r}; use one of {', '.join(METHODS)}")
        if config.batch_size < 1:
            raise ZsadError(f"batch size must be at least 1, got {config.batch_size}")
        self.config = config
        self.device = resolve_device(config.device)
        self.dtype = resolve_precision(config.precision, self.device)
        self.backbone = load_backbone(config.backbone).to(self.device)
        self._text = TextScorer(self.backbone, config.text) if self.backbone.has_text else None

    # -- stages -------------------------------------------------------------------------------------------------

    def _autocast(self):
        if self.dtype == torch.float32:
            return contextlib.nullcontext()
        return torch.autocast(device_type=self.device.type, dtype=self.dtype)

    @torch.inference_mode()
    def extract(self, images: list[LoadedImage], progress: bool = False) -> Features:
        """One backbone pass over already loaded images, in batches; features come back on the CPU in fp32."""
        parts = []
        batches = range(0, len(images), self.config.batch_size)
        for start in tqdm(batches, desc="features", disable=not progress or len(batches) < 2):
            chunk = images[start : start + self.config.batch_size]
            batch = to_batch([i.image for i in chunk], self.backbone.input_size, self.backbone.mean, self.backbone.std)
            with self._autocast():
                features = self.backbone(batch.to(self.device))
            parts.append(self._to_cpu(features))
        return Features.concat(parts)

    @staticmethod
    def _to_cpu(features: Features) -> Features:
        return Features(
            patch_tokens=features.patch_tokens.float().cpu(),
            cls=features.cls.float().cpu(),
            projected=None if features.projected is None else features.projected.float().cpu(),
            layers=features.layers,
        )

    # -- evidence -----------------------------------------------------------------------------------------------

    def reference_tokens(self, features: Features) -> torch.Tensor:
        """The layers few-shot scoring uses, [B, L', h, w, C]."""
        wanted = self.config.reference_layers or features.layers[-1:]
        missing = [layer for layer in wanted if layer not in features.layers]
        if missing:
            raise ZsadError(f"reference layers {missing} were not extracted; the backbone returns {list(features.layers)}")
        return features.patch_tokens[:, [features.layers.index(layer) for layer in wanted]]

    def memory_meta(self) -> dict[str, str]:
        """What a reference memory must agree on with the detector that searches it."""
        spec = self.config.backbone
        return {
            "backbone": spec.name,
            "pretrained": str(spec.pretrained),
            "input_size": str(self.backbone.input_size),
            "layers": ",".join(map(str, self.config.reference_layers or self.backbone.layers[-1:])),
            "vv_layers": str(spec.vv_layers),
        }

    def build_memory(self, references, progress: bool = False) -> ReferenceMemory:
        """Memory of good reference images (paths, folders, PIL images, arrays).

        Unreadable reference files are skipped with a warning. With two or more references, every reference is
        also scored against a memory of the others (leave-one-out); the largest of these normal scores is kept in
        the memory's metadata as ``normal_score_max`` and serves as the few-shot threshold for batches too small
        for the batch rule.
        """
        images, owners = [], []
        for index, source in enumerate(expand_sources(references)):
            try:
                image = load_image(source).image
            except ZsadError as error:
                warnings.warn(f"reference skipped: {error}", stacklevel=2)
                continue
            copies = [image]
            if self.config.reference_rotations:
                copies += [image.transpose(turn) for turn in (Image.ROTATE_90, Image.ROTATE_180, Image.ROTATE_270)]
            images += copies
            owners += [index] * len(copies)
        if not images:
            raise ZsadError("no usable reference image; pass a folder or files of good (defect-free) images")
        loaded = [LoadedImage(image, "", None, image.size) for image in images]
        tokens = self.reference_tokens(self.extract(loaded, progress=progress))
        meta = self.memory_meta()
        owners_t = torch.tensor(owners)
        if len(set(owners)) >= 2:
            loo_config = replace(self.config.reference, coreset_ratio=None)
            normal_scores = [
                ReferenceMemory.build(tokens[owners_t != owner], loo_config).score(tokens[owners_t == owner]).scores
                for owner in sorted(set(owners))
            ]
            meta["normal_score_max"] = repr(float(torch.cat(normal_scores).max()))
        return ReferenceMemory.build(tokens, self.config.reference, meta=meta)

    def load_memory(self, path: str | Path) -> ReferenceMemory:
        return ReferenceMemory.load(path, expect_meta=self.memory_meta())

    def plan_evidence(self, n_images: int, has_references: bool) -> list[str]:
        """Which scorers run: the one named by ``method``, or for "auto" every one the inputs allow."""
        method = self.config.method
        available = {
            "text": self.backbone.has_text,
            "fewshot": has_references,
            "mutual": n_images >= (self.config.min_mutual_batch if method == "auto" else 3),
        }
        why_not = {
            "text": f"backbone {self.backbone.name} has no text tower; use a CLIP backbone",
            "fewshot": "few-shot scoring needs good reference images (--references DIR)",
            "mutual": f"mutual scoring needs a batch of at least 3 test images, got {n_images}",
        }
        if method != "auto":
            if not available[method]:
                raise ZsadError(why_not[method])
            return [method]
        chosen = [name for name in EVIDENCE_ORDER if available[name]]
        if not chosen:
            raise ZsadError(
                f"no evidence available for {n_images} image(s) with backbone {self.backbone.name}: give reference "
                f"images (--references), a batch of at least {self.config.min_mutual_batch} images, or a CLIP backbone"
            )
        return chosen

    def _score_all(self, images: list[LoadedImage], plan: list[str], memory: ReferenceMemory | None,
                   object_name: str | None, progress: bool) -> list[AnomalyMaps]:
        """Runs the backbone once per image; per-batch scorers score as they go, mutual scoring at the end."""
        per_batch: dict[str, list[AnomalyMaps]] = {name: [] for name in plan if name != "mutual"}
        mutual_tokens, mutual_cls = None, []
        batches = range(0, len(images), self.config.batch_size)
        for start in tqdm(batches, desc="features", disable=not progress):
            features = self.extract(images[start : start + self.config.batch_size])
            if "text" in plan:
                per_batch["text"].append(self._text(features, object_name))
            if "fewshot" in plan:
                per_batch["fewshot"].append(memory.score(self.reference_tokens(features).to(memory.device)))
            if "mutual" in plan:
                if mutual_tokens is None:
                    shape = (len(images), *features.patch_tokens.shape[1:])
                    big = torch.Size(shape).numel() * 4 > MUTUAL_FP32_LIMIT_BYTES
                    mutual_tokens = torch.empty(shape, dtype=torch.float16 if big else torch.float32)
                mutual_tokens[start : start + len(features.patch_tokens)] = features.patch_tokens
                mutual_cls.append(features.cls)
        evidence = [
            AnomalyMaps(
                maps=torch.cat([m.maps.float().cpu() for m in parts]),
                scores=torch.cat([m.scores.float().cpu() for m in parts]),
                source=name,
            )
            for name, parts in per_batch.items()
        ]
        if "mutual" in plan:
            mutual = mutual_scores(mutual_tokens, torch.cat(mutual_cls), self.config.mutual)
            evidence.append(AnomalyMaps(mutual.maps.float().cpu(), mutual.scores.float().cpu(), "mutual"))
        return evidence

    # -- public API ---------------------------------------------------------------------------------------------

    def detect(
        self,
        images: Iterable | str | Path,
        references=None,
        object_name: str | None = None,
        progress: bool = False,
    ) -> list[AnomalyResult]:
        """Score images (paths, folders, PIL images or arrays); one result per input image, bad ones with ``error``.

        ``references``: good images (paths, folders, PIL images, arrays), a ``ReferenceMemory``, or a saved memory
        file (.safetensors) for few-shot scoring. The verdict threshold is decided over this call's images (see
        ``zsad.verdict``), so pass a whole batch.
        """
        sources = expand_sources(images)
        results: list[AnomalyResult] = []
        loaded: list[tuple[int, LoadedImage]] = []
        for index, source in enumerate(tqdm(sources, desc="loading", disable=not progress)):
            try:
                image = load_image(source)
                loaded.append((index, image))
                results.append(AnomalyResult(name=image.name, path=str(image.path) if image.path else None))
            except ZsadError as error:
                name = str(source) if isinstance(source, (str, Path)) else f"image {index}"
                results.append(AnomalyResult(name=Path(name).name, path=name, error=str(error)))
        if not loaded:
            return results

        memory = self._memory_from(references, progress)
        plan = self.plan_evidence(len(loaded), memory is not None)
        images_only = [image for _, image in loaded]
        fused = fuse(self._score_all(images_only, plan, memory, object_name, progress))

        maps = []
        for start in range(0, len(images_only), self.config.batch_size):
            chunk = images_only[start : start + self.config.batch_size]
            grid = smooth(fused.maps[start : start + len(chunk)], self.backbone.input_size, self.config.sigma)
            maps += to_original_sizes(grid, [image.original_size for image in chunk])
        image_scores = fused.scores.numpy().astype(np.float64)
        threshold = decide_threshold(image_scores, self.config.threshold, self._natural_threshold(fused, memory))
        for (index, _), anomaly_map, grid, score in zip(loaded, maps, fused.maps, image_scores):
            results[index] = replace(self._finish(results[index], anomaly_map, float(score), threshold, fused.source),
                                     grid_map=grid.float().numpy())
        return results

    def _memory_from(self, references, progress: bool) -> ReferenceMemory | None:
        if references is None or isinstance(references, ReferenceMemory):
            memory = references
        elif isinstance(references, (str, Path)) and str(references).endswith(".safetensors"):
            memory = self.load_memory(references)
        else:
            memory = self.build_memory(references, progress)
        return None if memory is None else memory.to(self.device)

    @staticmethod
    def _natural_threshold(fused: AnomalyMaps, memory: ReferenceMemory | None) -> float | None:
        """A threshold a single evidence carries by itself, used when the batch is too small for the batch rule."""
        if fused.source == "text":
            return 0.5
        if fused.source == "fewshot" and memory is not None and "normal_score_max" in memory.meta:
            return float(memory.meta["normal_score_max"])
        return None

    def calibrate(self, images, labels, references=None, object_name: str | None = None,
                  progress: bool = False) -> float:
        """Set a fixed threshold at the F1-max point of labelled images (labels 0 normal, 1 anomalous)."""
        from zsad.verdict import calibrate_threshold

        results = self.detect(images, references=references, object_name=object_name, progress=progress)
        pairs = [(r.score, label) for r, label in zip(results, labels) if r.ok and label is not None]
        if not pairs:
            raise ZsadError("calibration: no labelled image could be scored")
        value = calibrate_threshold(*map(np.array, zip(*pairs)))
        self.config = replace(self.config, threshold=ThresholdRule("fixed", value))
        return value

    @staticmethod
    def _finish(result, anomaly_map, score, threshold: Threshold, source: str) -> AnomalyResult:
        result = replace(
            result,
            score=score,
            anomaly_map=anomaly_map,
            threshold=threshold.value,
            threshold_rule=threshold.rule,
            is_anomalous=None if threshold.value is None else bool(score >= threshold.value),
            evidence=tuple(source.split("+")),
        )
        result.explanation = explain(result)
        return result


def expand_sources(images) -> list:
    """Paths and folders become image paths (folders expanded, sorted); in-memory images pass through."""
    from zsad.data.images import list_images

    if isinstance(images, (str, Path)):
        images = [images]
    sources = []
    for item in images:
        if isinstance(item, (str, Path)) and Path(item).is_dir():
            sources.extend(list_images([item]))
        elif isinstance(item, (str, Path)):
            sources.append(Path(item))  # a missing or bad file becomes an error result, not a failed batch
        else:
            sources.append(item)
    return sources
