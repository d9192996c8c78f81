"""The Detector: images in, one ``AnomalyResult`` per image out.

Data flow (DESIGN.md): load + validate every input (a bad one becomes an error result, the rest go on) -> batches
through the backbone once per image -> each scorer that the inputs allow maps ``Features`` to patch-grid maps and
image scores -> fusion -> upsample to the input size, Gaussian smoothing, resize to each original frame ->
threshold over the batch -> verdict and explanation.
"""
from __future__ import annotations

import contextlib
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Iterable

import numpy as np
import torch
from tqdm.auto import tqdm

from zsad.backbones import BackboneSpec, load_backbone
from zsad.backbones.base import Features
from zsad.data.images import LoadedImage, load_image
from zsad.data.preprocess import to_batch
from zsad.errors import ZsadError
from zsad.results import AnomalyResult, explain
from zsad.scoring.base import AnomalyMaps
from zsad.scoring.postprocess import smooth, to_original_sizes
from zsad.scoring.text import TextConfig, TextScorer
from zsad.verdict import Threshold, ThresholdRule, decide_threshold

PRECISIONS = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}


@dataclass(frozen=True)
class DetectorConfig:
    backbone: BackboneSpec = field(default_factory=BackboneSpec)
    text: TextConfig = field(default_factory=TextConfig)
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
                text=TextConfig(object_name=object_name),
                batch_size=batch_size,
                device=device,
                precision=precision,
                threshold=ThresholdRule("fixed", threshold) if threshold is not None else ThresholdRule(),
            )
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
    def extract(self, images: list[LoadedImage]) -> Features:
        """One backbone pass over already loaded images, in batches; features come back on the CPU in fp32."""
        parts = []
        for start in range(0, len(images), self.config.batch_size):
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

    def _score_batch(self, features: Features, object_name: str | None) -> AnomalyMaps:
        if self._text is None:
            raise ZsadError(
                f"backbone {self.backbone.name} has no text tower; zero-shot text scoring needs a CLIP backbone"
            )
        return self._text(features, object_name)

    # -- public API ---------------------------------------------------------------------------------------------

    def detect(
        self,
        images: Iterable | str | Path,
        object_name: str | None = None,
        progress: bool = False,
    ) -> list[AnomalyResult]:
        """Score images (paths, folders, PIL images or arrays); one result per input image, bad ones with ``error``.

        The verdict threshold is decided over this call's images (see ``zsad.verdict``), so pass a whole batch.
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

        maps, scores, source = [], [], ""
        batches = range(0, len(loaded), self.config.batch_size)
        for start in tqdm(batches, desc="scoring", disable=not progress):
            chunk = [image for _, image in loaded[start : start + self.config.batch_size]]
            scored = self._score_batch(self.extract(chunk), object_name)
            grid_maps = smooth(scored.maps, self.backbone.input_size, self.config.sigma)
            maps += to_original_sizes(grid_maps, [image.original_size for image in chunk])
            scores.append(scored.scores.float().cpu())
            source = scored.source
        image_scores = torch.cat(scores).numpy().astype(np.float64)

        natural = 0.5 if source == "text" else None
        threshold = decide_threshold(image_scores, self.config.threshold, natural)
        for (index, _), anomaly_map, score in zip(loaded, maps, image_scores):
            results[index] = self._finish(results[index], anomaly_map, float(score), threshold, source)
        return results

    def calibrate(self, images, labels, object_name: str | None = None, progress: bool = False) -> float:
        """Set a fixed threshold at the F1-max point of labelled images (labels 0 normal, 1 anomalous)."""
        from zsad.verdict import calibrate_threshold

        results = self.detect(images, object_name=object_name, progress=progress)
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
