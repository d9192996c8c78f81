"""The Detector: images in, one ``AnomalyResult`` per image out. It only orchestrates.

Data flow (docs/design.md): inputs are read batch by batch (a bad one becomes an error result, the rest go on) -> one
backbone pass per image -> every scorer the run uses gets the batch's ``Features`` (per-batch scorers answer at
once, the mutual scorer at the end of the run) -> fusion -> verdict and binary masks over the run
(``zsad.decisions``: reference-calibrated or contamination-aware) -> top regions -> explanation. Scorers get a
``ScorerContext`` (backbone facts, the text head, ``extract``, the concept transform), never the Detector; which
ones run is ``zsad.scoring.planning``.

Memory: decoded images live for one batch; a result keeps its map on the patch grid and computes the full-size map
when read, so a folder of 10,000 images holds 10,000 small grids. Batch-level steps need only numbers already in
memory: the verdict needs the image scores, fusion and the masks the grid maps (a test-time mask also small
projected patch features, ``zsad.decisions.features``), and mutual scoring keeps the patch tokens it compares.
"""
from __future__ import annotations

import contextlib
import warnings
from dataclasses import replace
from pathlib import Path
from typing import Any, Iterable

import numpy as np
import torch
from PIL import Image
from tqdm.auto import tqdm
from zsad_runtime.decide import Scored, decide_results, error_result

from zsad.backbones.base import BackboneInfo, Features
from zsad.backbones.loading import load_backbone, resolve_device, resolve_precision
from zsad.config import DetectorConfig, build_config, validate
from zsad.config_fields import jsonable
from zsad.data.images import LoadedImage, load_image
from zsad.data.preprocess import to_batch
from zsad.data.sources import Source, expand_sources
from zsad.decisions.batch import decide_batch
from zsad.decisions.features import PatchFeatureKeeper
from zsad.errors import ZsadError
from zsad.explain import Explainer, build_explainer
from zsad.parallel import my_share, num_processes, total
from zsad.postprocess.maps import MapPostprocess
from zsad.results import AnomalyResult
from zsad.run_gather import ScoredImage, gather_run
from zsad.scoring import planning
from zsad.scoring.base import AnomalyMaps, Scorer, ScorerContext, ScoringRun
from zsad.scoring.configs import default_postprocess_of
from zsad.scoring.fusion import fuse
from zsad.scoring.text_heads import TextHead, load_text_head
from zsad.verdict import ThresholdRule


class Detector:
    """Zero-shot anomaly detector.

    >>> detector = Detector("tiny-clip", object_name="bottle")           # doctest: +SKIP
    >>> results = detector.detect(["a.png", "b.png"])                      # doctest: +SKIP

    Options (``object_name``, ``method``, ``input_size``, ``layers``, ``threshold``, ``define``, ...: every flat
    option of ``zsad.config.settings_table()``, the same names as the CLI's flags) or a full
    ``config=DetectorConfig(...)``, not both. ``preset``: a published setting by name or YAML file
    (``zsad.presets``); options override its fields. ``text_head`` and ``explainer`` objects replace the configured
    ones (an explainer given by name is the ``explainer`` option).
    ``reasoning`` (a ``zsad.reasoning.ReasoningSetup``) replaces the one the reasoning options would build.
    """

    def __init__(self, backbone: str | None = None, pretrained: str | None = None, *,
                 config: DetectorConfig | None = None, preset: str | None = None,
                 text_head: TextHead | str | None = None, explainer: Explainer | str | None = None, reasoning=None,
                 **options):
        if isinstance(explainer, str):  # a registered explainer's name is the ``explainer`` option
            options, explainer = {**options, "explainer": explainer}, None
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
        if reasoning is None and config.reasoning.active:  # first: its LLM check fails fast, before any model loads
            from zsad.reasoning.options import reasoning_setup
            reasoning = reasoning_setup(config.reasoning, config.explainer)
        self.reasoning = reasoning
        self.device = resolve_device(config.runtime.device)
        self.dtype = resolve_precision(config.runtime.precision, self.device)
        self.backbone = load_backbone(config.backbone, self.device)
        object_name = config.text_head.object_name  # the reasoning layer adds a text head and a concept transform
        text_head, transform = (text_head, None) if reasoning is None else reasoning.hooks(
            self.backbone, config.text_head.prompts, object_name, text_head)
        self.text_head = load_text_head(text_head or config.text_head.prompts, self.backbone) \
            if self.backbone.has_text else None
        self.explainer = explainer or build_explainer(config.explainer, self.backbone, object_name, reasoning)
        self.context = ScorerContext(backbone=BackboneInfo.of(self.backbone), extract=self.extract,
                                     text_head=self.text_head, transform=transform or (lambda f: f),
                                     device=self.device)
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
        size = self.config.runtime.batch_size
        batches = range(0, len(images), size)
        for start in tqdm(batches, desc="features", disable=not progress or len(batches) < 2):
            chunk = images[start : start + size]
            batch = to_batch([i.image for i in chunk], self.backbone.input_size, self.backbone.mean,
                             self.backbone.std, self.config.backbone.resize)
            with self._autocast():
                features = self.backbone(batch.to(self.device))
            parts.append(features.to_cpu_float())
        return Features.concat(parts)

    def build_memory(self, references, progress: bool = False):
        """The few-shot reference memory of good images (to save with ``.save`` or pass as ``references``)."""
        from zsad.scoring.fewshot import memory_from

        return memory_from(self.config.scorer("fewshot"), self.context, references, progress)

    # -- planning -------------------------------------------------------------------------------------------------

    def _run(self, n_images: int, references=None, object_name: str | None = None, progress: bool = False,
             state=None, local_images: int | None = None) -> ScoringRun:
        return ScoringRun(n_images=n_images, references=references,
                          object_name=object_name or self.config.text_head.object_name,
                          explicit=self.config.method != "auto", progress=progress, state=state,
                          local_images=local_images)

    def plan_evidence(self, n_images: int, has_references: bool) -> list[str]:
        """Names of the scorers a run of ``n_images`` would use."""
        run = self._run(n_images, references=object() if has_references else None)
        return [p.name for p in planning.plan(self.config.method, self.config.fuse, self.config.scorers,
                                              self.context, run)]

    # -- public API -----------------------------------------------------------------------------------------------

    def detect(self, images: Iterable | str | Path | Image.Image | np.ndarray, references=None,
               object_name: str | None = None, progress: bool = False, *, journal=None, state=None,
               cancel=None) -> list[AnomalyResult]:
        """Score images; one result per input image, in input order, bad ones with ``error`` set.

        images: a path, a folder, a PIL image, an array (H x W, H x W x C, or a batch N x H x W x C), or a list of
            any of these.
        references: good images (paths, folders, PIL images, arrays), a ``ReferenceMemory``, or a saved memory file
            (.safetensors) for few-shot scoring.
        journal: a ``zsad.outputs.ScoreJournal`` (or anything with its ``get``/``add``): each image's evidence is
            recorded as soon as its batch is scored, and images already recorded are not scored again (only when
            every scorer of the run scores images independently; mutual scoring needs the whole batch).
        state: an accelerate ``PartialState`` when several processes run (``zsad.parallel``): each scores a
            contiguous share of the inputs with its own model; mutual scoring gathers the patch tokens and splits
            its query blocks; the main process gets every result (equal to a single-process run), the others [].
        cancel: a ``threading.Event``; once set (by another thread), the run stops at its next batch (ZsadError).
        The verdict threshold is decided over this call's images (see ``zsad.verdict``), so pass a whole batch.
        """
        sources = expand_sources(images)
        share = my_share(list(range(len(sources))), state)
        run = self._run(len(sources), references, object_name, progress, state, len(share))
        config = self.config
        planned = planning.plan(config.method, config.fuse, config.scorers, self.context, run)
        extra = planning.fallback(config.method, config.fuse, planned, config.scorers, self.context, run)
        self._report_unused(planned, references)
        scorers = [p.build(self.context) for p in planned + extra]
        for scorer in scorers:
            scorer.start(run)
        if journal is not None and not all(scorer.per_image for scorer in scorers):
            journal = None
        calibrated = any(scorer.calibration() is not None for scorer in scorers)
        keeper = PatchFeatureKeeper(enabled=config.mask.resolved(calibrated) == "test_time")
        self.explainer.reset()
        try:
            errors, scored, evidence, scorers = self._score([sources[i] for i in share], scorers, run, journal,
                                                            state, len(planned), cancel, keeper)
            self.last_run = {"scorers": [s.name for s in scorers], "evidence": {s.name: s.describe() for s in scorers}}
            if num_processes(state) > 1:
                errors, scored, evidence = gather_run(state, share, errors, scored, evidence, scorers, keeper)
                if not state.is_main_process:
                    return []
            results: list[AnomalyResult | None] = [None] * len(sources)
            for index, result in errors:
                results[index] = result
            if scored:
                for image, result in zip(scored, self._decide(scored, evidence, scorers, keeper)):
                    results[image.index] = result
            return results
        finally:
            self.explainer.reset()

    def _report_unused(self, planned: list[planning.Planned], references) -> None:
        """One warning per group of options the user gave that no scorer of this run reads (the rule:
        ``zsad.scoring.planning``); Python's warning registry shows each once per process."""
        from zsad.config import explicit_changes, flag_of

        given = [*explicit_changes(self.config), *(["references"] if references is not None else [])]
        running = [p.name for p in planned]
        groups: dict[tuple[str, ...], list[str]] = {}
        for path, readers in planning.unused_settings(given, running, self.config.method == "auto").items():
            groups.setdefault(tuple(readers), []).append(flag_of(path))
        for readers, flags in groups.items():
            methods = " or ".join([", ".join(readers[:-1]), readers[-1]] if len(readers) > 1 else readers)
            warnings.warn(f"{' and '.join(flags)} {'is' if len(flags) == 1 else 'are'} not used by "
                          f"{' + '.join(running)} scoring; use --method {methods}", UserWarning, stacklevel=3)

    def _score(self, sources: list[Source], scorers: list[Scorer], run: ScoringRun, journal, state,
               n_planned: int, cancel, keeper: PatchFeatureKeeper):
        """Stream the inputs through the backbone and the scorers, one batch of decoded images at a time; ``keeper``
        keeps small patch features for a test-time mask."""
        errors: list[tuple[int, AnomalyResult]] = []
        scored: list[ScoredImage] = []
        parts: dict[str, list[AnomalyMaps]] = {scorer.name: [] for scorer in scorers}
        names = [scorer.name for scorer in scorers]
        size = self.config.runtime.batch_size
        bar = tqdm(total=len(sources), desc="scoring", unit="img", disable=not run.progress)
        for start in range(0, len(sources), size):
            if cancel is not None and cancel.is_set():
                raise ZsadError(f"run cancelled after {start} of {len(sources)} images")
            loaded: list[tuple[int, LoadedImage]] = []
            for index in range(start, min(start + size, len(sources))):
                source = sources[index]
                known = journal.get(source.path, names) if journal is not None else None
                if known is not None:
                    for name, (score, grid) in known["evidence"].items():
                        parts[name].append(AnomalyMaps(torch.from_numpy(grid)[None], torch.tensor([score]), name))
                    scored.append(ScoredImage(index, source, known["original_size"]))
                    keeper.add_row(known.get("features"))
                    continue
                try:
                    loaded.append((index, load_image(source.item, name=source.name)))
                except ZsadError as error:
                    errors.append((index, error_result(source.name, source.path, error, self.explainer)))
            if loaded:
                features = self.extract([image for _, image in loaded])
                outside = self.context.transform(features)
                keeper.add(features)
                for row, (index, _) in enumerate(loaded):
                    self.explainer.observe(sources[index].name, features, row)
                fresh = {}
                for scorer in scorers:
                    maps = scorer.add(features if scorer.text_space else outside, len(scored))
                    if maps is not None:
                        fresh[scorer.name] = AnomalyMaps(maps.maps.float().cpu(), maps.scores.float().cpu(),
                                                         scorer.name)
                        parts[scorer.name].append(fresh[scorer.name])
                for row, (index, image) in enumerate(loaded):
                    scored.append(ScoredImage(index, sources[index], image.original_size))
                    if journal is not None and sources[index].path is not None:
                        journal.add(sources[index].path, image.original_size,
                                    {name: (float(m.scores[row]), m.maps[row].numpy()) for name, m in fresh.items()},
                                    keeper.row(len(scored) - 1))
            bar.update(min(size, len(sources) - start))
        bar.close()
        kept = planning.still_available(scorers[:n_planned], run, total(len(scored), state))
        scorers = kept or scorers[n_planned:]
        for scorer in scorers:
            # Every process must reach finish() (mutual scoring gathers there), even one with no readable image.
            maps = scorer.finish() if scored or num_processes(state) > 1 else None
            if maps is not None:
                parts[scorer.name] = [maps]
        evidence = [AnomalyMaps(torch.cat([m.maps.float().cpu() for m in parts[s.name]]),
                                torch.cat([m.scores.float().cpu() for m in parts[s.name]]), s.name)
                    for s in scorers if parts[s.name]]
        return errors, scored, evidence, scorers

    def postprocess_for(self, method: str | None) -> MapPostprocess:
        """The post-processing of ``method``'s maps (None: fused maps). A value set by an adapter or an option that
        departs from what the scorer itself declares (AnomalyCLIP's official Gaussian, WinCLIP's none) is reported."""
        config = self.config
        declared = default_postprocess_of(config.scorers.get(method) if method else None).given()
        departs = []
        for key, value in config.postprocess.given().items():
            origin = config.origins.get(f"postprocess.{key}", "option")
            if key in declared and declared[key] != value and not origin.startswith("preset"):
                departs.append(f"{key} {value} ({origin}) replaces {declared[key]}")
        if departs:
            warnings.warn(f"post-processing departs from the {method} scorer's own: {'; '.join(departs)}",
                          UserWarning, stacklevel=3)
        return MapPostprocess.of(config.resolved_postprocess(method), self.backbone.input_size)

    def _decide(self, scored: list[ScoredImage], evidence: list[AnomalyMaps], scorers: list[Scorer],
                keeper: PatchFeatureKeeper) -> list[AnomalyResult]:
        """Batch-level steps on numbers already in memory: fusion, the verdict and masks (``zsad.decisions``), then
        results, regions and explanations as the runtime makes them too (``zsad_runtime.decide``)."""
        fused = fuse(evidence)
        post = self.postprocess_for(scorers[0].name if len(scorers) == 1 else None)
        self.last_run["postprocess"] = jsonable(post)
        own = {item.source: (item.scores.numpy(), item.maps.numpy()) for item in evidence}
        features, note = keeper.stacked()
        decision = decide_batch(
            fused.scores.numpy(), fused.maps.float().numpy(), own, self.config.threshold, self.config.mask,
            natural=scorers[0].natural_threshold() if len(scorers) == 1 else None,
            calibration={s.name: c for s in scorers if s.name in own and (c := s.calibration()) is not None},
            features=features, features_note=note)
        self.last_run["decision"] = decision.describe()
        images = [Scored(image.source.name, image.source.path, image.original_size) for image in scored]
        return decide_results(images, fused.scores.numpy(), fused.maps.float().numpy(), own, self.config.threshold,
                              None, post, self.explainer, decision=decision,
                              after=self.reasoning.apply_verdict if self.reasoning is not None else None)

    def describe(self) -> dict[str, Any]:
        """For results.json: every setting (the config tree, the backbone as loaded), which level set each one
        (``origins``), and under ``ran`` what the last run resolved (scorers, their run-time facts, the
        post-processing, text head, explainer, reasoning)."""
        settings = jsonable(replace(self.config, origins={}))
        settings["backbone"].update(input_size=self.backbone.input_size, layers=list(self.backbone.layers),
                                    pretrained=self.backbone.pretrained, family=self.backbone.family,
                                    patch_size=self.backbone.patch_size)
        settings["runtime"].update(device=str(self.device), dtype=str(self.dtype).removeprefix("torch."))
        settings["origins"] = dict(self.config.origins)
        settings["ran"] = {
            **self.last_run,
            "text_head": None if self.text_head is None else self.text_head.describe(),
            "explainer": self.explainer.describe(),
            **({"reasoning": self.reasoning.describe()} if self.reasoning is not None else {}),
        }
        return settings

    def discover(self, results: list[AnomalyResult], settings=None, *, object_name: str | None = None,
                 masks=None, images=None, namer=None, **options):
        """Defect types of ``results`` (``zsad.discovery``), embedded with this detector's backbone and named with
        its LLM when one is configured. ``options``: ``DiscoverySettings`` fields (``types=4``, ...) over
        ``settings``."""
        from zsad.discovery.configured import discover_configured
        from zsad.discovery.settings import discovery_settings

        return discover_configured(
            results, self.backbone, discovery_settings(settings, **options),
            llm=self.reasoning.llm if self.reasoning is not None else None,
            send_images=self.config.reasoning.llm_images, object_name=object_name or self.config.text_head.object_name,
            masks=masks, images=images, namer=namer)

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
