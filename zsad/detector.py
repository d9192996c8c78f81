"""The Detector: images in, one ``AnomalyResult`` per image out. It only orchestrates.

Data flow (DESIGN.md): inputs are read batch by batch (a bad one becomes an error result, the rest go on) -> one
backbone pass per image -> every scorer the run uses gets the batch's ``Features`` (per-batch scorers answer at
once, the mutual scorer at the end of the run) -> fusion -> verdict threshold over the run's image scores, pixel
threshold over its patch maps -> top regions -> explanation. What a particular scorer needs (reference memories,
prompts, feature storage) lives in that scorer's module (``zsad.scoring``), found through the registry.

Memory: decoded images live for one batch; a result keeps its map on the patch grid and computes the full-size map
when read, so a folder of 10,000 images holds 10,000 small grids. Batch-level steps need only numbers already in
memory: the verdict threshold needs the image scores, fusion and the pixel threshold the grid maps, and mutual
scoring keeps the patch tokens it compares (its scorer stores them, in float16 above 4 GB).
"""
from __future__ import annotations

import contextlib
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Iterable

import numpy as np
import torch
from PIL import Image
from tqdm.auto import tqdm

from zsad.backbones import load_backbone
from zsad.backbones.base import Features
from zsad.config import DetectorConfig, build_config, validate
from zsad.data.images import LoadedImage, load_image
from zsad.data.preprocess import to_batch
from zsad.errors import ZsadError
from zsad.explain import EXPLAINERS, Explainer, pixel_threshold, top_regions
from zsad.results import AnomalyResult, EvidenceScore
from zsad.scoring.base import SCORERS, AnomalyMaps, Scorer, ScoringRun, method_names, scorer_class
from zsad.scoring.fusion import fuse
from zsad.scoring.mutual.distributed import my_share, num_processes
from zsad.scoring.postprocess import MapPostprocess
from zsad.scoring.text_heads import TextHead, load_text_head
from zsad.verdict import ThresholdRule, decide_threshold

PRECISIONS = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}


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


@dataclass
class Source:
    """One input: the object to load, the name results use, and the file path when there is one."""

    item: Any
    name: str
    path: str | None = None


@dataclass
class ScoredImage:
    """What a run knows about one readable image before the batch-level steps."""

    index: int  # position among the inputs
    source: Source
    original_size: tuple[int, int]


class Detector:
    """Zero-shot anomaly detector.

    >>> detector = Detector("tiny-clip", object_name="bottle")           # doctest: +SKIP
    >>> results = detector.detect(["a.png", "b.png"])                      # doctest: +SKIP

    Options (``object_name``, ``method``, ``input_size``, ``layers``, ``threshold``, ...: see ``zsad.config.OPTIONS``)
    or a full ``config=DetectorConfig(...)``, not both. ``text_head`` and ``explainer`` replace the configured ones.
    ``preset``: a published setting by name or YAML file (``zsad.presets``); options override its fields.
    ``reasoning`` (a ``zsad.reasoning.ReasoningSetup``: a definition in words, rules, an LLM) supplies the text head,
    the concept transform of CLIP features for reference and mutual scoring, the explainer and the verdict policy;
    ``define="cracks are defects; colour differences are normal"`` is the short form for a definition parsed offline.
    """

    def __init__(
        self,
        backbone: str | None = None,
        pretrained: str | None = None,
        *,
        config: DetectorConfig | None = None,
        preset: str | None = None,
        text_head: TextHead | str | None = None,
        explainer: Explainer | None = None,
        reasoning=None,
        define: str | None = None,
        **options,
    ):
        if config is not None:
            given = sorted(k for k, v in {"backbone": backbone, "pretrained": pretrained, "preset": preset,
                                          **options}.items() if v is not None)
            if given:
                raise ZsadError(f"pass either config= or options, not both: {given} would be ignored; "
                                "use zsad.config.build_config(config, ...) to change a config")
            validate(config)
        else:
            config = build_config(preset=preset, backbone=backbone, pretrained=pretrained, **options)
        self.config = config
        self.device = resolve_device(config.device)
        self.dtype = resolve_precision(config.precision, self.device)
        self.backbone = load_backbone(config.backbone).to(self.device)
        if define is not None and reasoning is None:
            from zsad.reasoning import ReasoningSetup, parse_definition

            reasoning = ReasoningSetup(definition=parse_definition(define))
        self.reasoning = reasoning
        self.feature_transform = None  # Features -> Features for scorers outside the text space, or None
        if reasoning is not None:
            # Definitions and rules extend a prompt set; a head family (learned:, rules:) has none, so they extend
            # WinCLIP's set instead.
            is_family = ":" in config.text.prompts and not config.text.prompts.endswith((".yaml", ".yml"))
            text_head = text_head or reasoning.text_head(self.backbone,
                                                         "winclip" if is_family else config.text.prompts)
            self.feature_transform = reasoning.feature_transform(self.backbone, config.text.object_name)
            explainer = explainer or reasoning.explainer(self.backbone, config.text.object_name)
        self.text_head = None
        if self.backbone.has_text:
            self.text_head = load_text_head(text_head or config.text.prompts, self.backbone)
        if explainer is None:
            if config.explainer not in EXPLAINERS:
                raise ZsadError(f"unknown explainer {config.explainer!r}; use one of {', '.join(EXPLAINERS)}")
            explainer = EXPLAINERS[config.explainer]()
        self.explainer = explainer
        self.last_run: dict[str, Any] = {}  # what the last detect() ran, resolved (scorer settings), for reports

    # -- the backbone ---------------------------------------------------------------------------------------------

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
            batch = to_batch([i.image for i in chunk], self.backbone.input_size, self.backbone.mean, self.backbone.std,
                             self.config.resize)
            with self._autocast():
                features = self.backbone(batch.to(self.device))
            parts.append(features.to_cpu_float())
        return Features.concat(parts)

    def transformed(self, features: Features) -> Features:
        """Features as scorers outside CLIP's text space see them (a definition's concept transform, if any)."""
        return features if self.feature_transform is None else self.feature_transform(features)

    # -- planning -------------------------------------------------------------------------------------------------

    def plan(self, run: ScoringRun) -> list[type[Scorer]]:
        """The scorer named by ``method``; for "auto" the strongest one the inputs allow, or with ``fuse`` every
        automatic scorer the inputs allow."""
        if self.config.method != "auto":
            cls = scorer_class(self.config.method)
            why = cls.unavailable(self, run)
            if why:
                raise ZsadError(why)
            return [cls]
        candidates = [SCORERS[name] for name in method_names()[1:] if SCORERS[name].in_auto]
        chosen = [cls for cls in candidates if cls.unavailable(self, run) is None]
        if not chosen:
            reasons = "; ".join(cls.unavailable(self, run) for cls in candidates)
            raise ZsadError(f"no evidence available for {run.n_images} image(s) with backbone {self.backbone.name}: "
                            f"{reasons}")
        if self.config.fuse:
            return chosen
        # The strongest single published method the inputs allow (references -> few-shot, a batch -> MuSc, else
        # text); fusion is opt-in because its benefit with real weights is not measured.
        return [max(chosen, key=lambda cls: cls.strength)]

    def _fallback(self, run: ScoringRun, planned: list[type[Scorer]]) -> list[type[Scorer]]:
        """For "auto" with one batch-level scorer (mutual): the strongest per-image scorer, run beside it and used
        only if unreadable files leave too few images for the batch-level one."""
        if self.config.method != "auto" or self.config.fuse or all(cls.per_image for cls in planned):
            return []
        candidates = [SCORERS[name] for name in method_names()[1:] if SCORERS[name].in_auto]
        usable = [cls for cls in candidates if cls.per_image and cls.unavailable(self, run) is None]
        return [max(usable, key=lambda cls: cls.strength)] if usable else []

    def plan_evidence(self, n_images: int, has_references: bool) -> list[str]:
        """Names of the scorers a run of ``n_images`` would use."""
        run = ScoringRun(n_images=n_images, references=object() if has_references else None,
                         explicit=self.config.method != "auto")
        return [cls.name for cls in self.plan(run)]

    # -- public API -----------------------------------------------------------------------------------------------

    def detect(
        self,
        images: Iterable | str | Path | Image.Image | np.ndarray,
        references=None,
        object_name: str | None = None,
        progress: bool = False,
        *,
        journal=None,
        state=None,
    ) -> list[AnomalyResult]:
        """Score images; one result per input image, in input order, bad ones with ``error`` set.

        images: a path, a folder, a PIL image, an array (H x W, H x W x C, or a batch N x H x W x C), or a list of
            any of these.
        references: good images (paths, folders, PIL images, arrays), a ``ReferenceMemory``, or a saved memory file
            (.safetensors) for few-shot scoring.
        journal: a ``zsad.outputs.ScoreJournal`` (or anything with its ``get``/``add``): each image's evidence is
            recorded as soon as its batch is scored, and images already recorded are not scored again (only when
            every scorer of the run scores images independently; mutual scoring needs the whole batch).
        state: an accelerate ``PartialState`` when several processes run (``accelerate launch``/``torchrun``):
            each scores a contiguous share of the inputs with its own model; mutual scoring gathers the patch tokens
            and splits its query blocks between processes; the main process gets every result (the same as a
            single-process run), the others get an empty list.
        The verdict threshold is decided over this call's images (see ``zsad.verdict``), so pass a whole batch.
        """
        sources = expand_sources(images)
        share = my_share(list(range(len(sources))), state)
        run = ScoringRun(
            n_images=len(sources), references=references,
            object_name=object_name or self.config.text.object_name, explicit=self.config.method != "auto",
            extract=self.extract, progress=progress, extra={"state": state, "local_images": len(share)},
        )
        planned = self.plan(run)
        scorers = [cls(self) for cls in planned + self._fallback(run, planned)]
        for scorer in scorers:
            scorer.start(run)
        if journal is not None and not all(scorer.per_image for scorer in scorers):
            journal = None
        errors, scored, evidence, scorers = self._score([sources[i] for i in share], scorers, run, journal, state,
                                                        n_planned=len(planned))
        self.last_run = {"evidence": {scorer.name: scorer.describe() for scorer in scorers}}
        if num_processes(state) > 1:
            errors, scored, evidence = _gather(state, share, errors, scored, evidence, scorers)
            if not state.is_main_process:
                return []
        results: list[AnomalyResult | None] = [None] * len(sources)
        for index, result in errors:
            results[index] = result
        if scored:
            for image, result in zip(scored, self._decide(scored, evidence, scorers, progress)):
                results[image.index] = result
        return results

    def _score(self, sources: list[Source], scorers: list[Scorer], run: ScoringRun, journal, state,
               n_planned: int):
        """Stream the inputs through the backbone and the scorers, one batch of decoded images at a time."""
        errors: list[tuple[int, AnomalyResult]] = []
        scored: list[ScoredImage] = []
        parts: dict[str, list[AnomalyMaps]] = {scorer.name: [] for scorer in scorers}
        names = [scorer.name for scorer in scorers]
        batch_size = self.config.batch_size
        bar = tqdm(total=len(sources), desc="scoring", unit="img", disable=not run.progress)
        for start in range(0, len(sources), batch_size):
            loaded: list[tuple[int, LoadedImage]] = []
            for index in range(start, min(start + batch_size, len(sources))):
                source = sources[index]
                known = journal.get(source.path, names) if journal is not None else None
                if known is not None:
                    for name, (score, grid) in known["evidence"].items():
                        parts[name].append(AnomalyMaps(torch.from_numpy(grid)[None], torch.tensor([score]), name))
                    scored.append(ScoredImage(index, source, known["original_size"]))
                    continue
                try:
                    loaded.append((index, load_image(source.item, name=source.name)))
                except ZsadError as error:
                    result = AnomalyResult(name=source.name, path=source.path, error=str(error))
                    result.explanation = self.explainer.explain(result, [])
                    errors.append((index, result))
            if loaded:
                features = self.extract([image for _, image in loaded])
                outside = self.transformed(features)
                if hasattr(self.explainer, "observe"):
                    for row, (index, _) in enumerate(loaded):
                        self.explainer.observe(sources[index].name, features, row)
                fresh = {}
                for scorer in scorers:
                    maps = scorer.add(features if scorer.text_space else outside, len(scored))
                    if maps is not None:
                        fresh[scorer.name] = AnomalyMaps(maps.maps.float().cpu(), maps.scores.float().cpu(), scorer.name)
                        parts[scorer.name].append(fresh[scorer.name])
                for row, (index, image) in enumerate(loaded):
                    scored.append(ScoredImage(index, sources[index], image.original_size))
                    if journal is not None and sources[index].path is not None:
                        journal.add(sources[index].path, image.original_size,
                                    {name: (float(m.scores[row]), m.maps[row].numpy()) for name, m in fresh.items()})
            bar.update(min(batch_size, len(sources) - start))
        bar.close()
        kept = self._still_available(scorers[:n_planned], run, _total(len(scored), state))
        scorers = kept or scorers[n_planned:]
        for scorer in scorers:
            # Every process must reach finish() (mutual scoring gathers there), even one with no readable image.
            maps = scorer.finish() if scored or num_processes(state) > 1 else None
            if maps is not None:
                parts[scorer.name] = [maps]
        evidence = [
            AnomalyMaps(
                maps=torch.cat([m.maps.float().cpu() for m in parts[scorer.name]]),
                scores=torch.cat([m.scores.float().cpu() for m in parts[scorer.name]]),
                source=scorer.name,
            )
            for scorer in scorers if parts[scorer.name]
        ]
        return errors, scored, evidence, scorers

    def _still_available(self, scorers: list[Scorer], run: ScoringRun, n_scored: int) -> list[Scorer]:
        """Scorers planned on the number of inputs, re-checked on the number that could be read: with unreadable
        files, "auto" drops an evidence the readable images no longer allow; a named method says why it cannot run."""
        if n_scored == run.n_images or n_scored == 0:
            return scorers
        actual = replace(run, n_images=n_scored)
        kept = []
        for scorer in scorers:
            why = scorer.unavailable(self, actual)
            if why and run.explicit:
                raise ZsadError(f"{why} ({run.n_images - n_scored} of {run.n_images} inputs could not be read)")
            if not why:
                kept.append(scorer)
        return kept

    def _decide(self, scored: list[ScoredImage], evidence: list[AnomalyMaps], scorers: list[Scorer],
                progress: bool) -> list[AnomalyResult]:
        """Batch-level steps on numbers already in memory: fusion, thresholds, regions, explanations."""
        fused = fuse(evidence)
        scores = fused.scores.numpy().astype(np.float64)
        natural = scorers[0].natural_threshold() if len(scorers) == 1 else None
        threshold = decide_threshold(scores, self.config.threshold, natural)
        grids = fused.maps.float().numpy()
        pixel = pixel_threshold(grids)
        if len(scorers) == 1:
            post = scorers[0].postprocess(self.backbone.input_size, self.config.sigma)
        else:
            post = MapPostprocess(self.backbone.input_size, self.config.sigma, self.config.align_corners,
                                  self.config.gaussian_padding, self.config.smooth_at)
        results = []
        for i, image in enumerate(tqdm(scored, desc="explaining", disable=not progress or len(scored) < 100)):
            score = float(scores[i])
            result = AnomalyResult(
                name=image.source.name,
                path=image.source.path,
                score=score,
                threshold=threshold.value,
                threshold_rule=threshold.rule,
                is_anomalous=None if threshold.value is None else bool(score >= threshold.value),
                grid_map=grids[i],
                original_size=image.original_size,
                postprocess=post,
                evidence={
                    item.source: EvidenceScore(float(item.scores[i]), float(item.maps[i].max()),
                                               float(item.maps[i].mean()))
                    for item in evidence
                },
                pixel_threshold=pixel,
                regions=tuple(top_regions(grids[i], pixel, image.original_size)),
            )
            result.explanation = self.explainer.explain(result, list(result.regions))
            if self.reasoning is not None:
                self.reasoning.apply_verdict(result)
            results.append(result)
        return results

    def describe(self) -> dict[str, Any]:
        """Every resolved setting, for results.json: what ran, with which weights, sizes and layers."""
        config = self.config.to_dict()
        config["backbone"].update(input_size=self.backbone.input_size, layers=list(self.backbone.layers))
        return {
            **config,
            "device": str(self.device),
            "dtype": str(self.dtype).removeprefix("torch."),
            "text_head": None if self.text_head is None else self.text_head.describe(),
            "explainer": self.explainer.describe(),
            **({"reasoning": self.reasoning.describe()} if self.reasoning is not None else {}),
            **self.last_run,
        }

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


def _total(count: int, state) -> int:
    """The sum of ``count`` over all processes."""
    if num_processes(state) == 1:
        return count
    from accelerate.utils import gather_object

    return sum(gather_object([count]))


def _gather(state, share, errors, scored, evidence, scorers):
    """Every process's part of a run, in input order, on every process (shares are contiguous and ordered).

    Per-image evidence is concatenated over processes; batch-level evidence (mutual) is already complete on
    every process and is taken from the first.
    """
    from accelerate.utils import gather_object

    errors = [(share[i], result) for i, result in errors]
    scored = [replace(image, index=share[image.index]) for image in scored]
    parts = gather_object([(errors, scored, evidence)])
    by_name = {scorer.name: scorer for scorer in scorers}
    merged = []
    for position, item in enumerate(parts[0][2]):
        if by_name[item.source].per_image:
            pieces = [part[2][position] for part in parts]
            item = AnomalyMaps(torch.cat([p.maps for p in pieces]), torch.cat([p.scores for p in pieces]), item.source)
        merged.append(item)
    return ([e for part in parts for e in part[0]], [s for part in parts for s in part[1]], merged)


def expand_sources(images) -> list[Source]:
    """Inputs -> one ``Source`` per image, in order.

    A single PIL image or array is one image (an array of shape N x H x W x C is N images; H x W x C with C in
    1, 3, 4 and H x W are one). Folders are expanded (sorted) and their images are named by their path relative
    to the folder (``good/000.png``, ``hole/000.png``), so names stay unique; files given directly keep their
    name. A missing or bad file becomes an error result later, not a failed batch.
    """
    from zsad.data.images import list_images

    if isinstance(images, (str, Path, Image.Image)):
        images = [images]
    elif isinstance(images, np.ndarray):
        images = list(images) if _is_array_batch(images) else [images]
    sources: list[Source] = []
    for position, item in enumerate(images):
        if isinstance(item, (str, Path)) and Path(item).is_dir():
            folder = Path(item)
            for path in list_images([folder]):
                sources.append(Source(path, _relative_name(path, folder), str(path)))
        elif isinstance(item, (str, Path)):
            sources.append(Source(Path(item), Path(item).name, str(item)))
        elif isinstance(item, Image.Image) and getattr(item, "filename", ""):
            sources.append(Source(item, Path(item.filename).name, str(item.filename)))
        else:
            sources.append(Source(item, f"image {position}"))
    return sources


def _is_array_batch(array: np.ndarray) -> bool:
    if array.ndim == 4:
        return True
    return array.ndim == 3 and array.shape[-1] not in (1, 3, 4)


def _relative_name(path: Path, folder: Path) -> str:
    try:
        return Path(path).relative_to(folder).as_posix()
    except ValueError:
        return Path(path).name
