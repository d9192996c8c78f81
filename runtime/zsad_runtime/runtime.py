"""``Runtime``: a bundle's graph behind the same ``detect`` as zsad's ``Detector``, without torch.

The data flow is ``Detector.detect``'s for a single per-image scorer, step for step, with the same shared code:
inputs named and ordered (``sources``), read batch by batch (``images``: an unreadable file becomes a result with
``error`` set and the others go on), resized and normalised (``preprocess``, bitwise zsad's batch), the graph (the
backbone and the scorer, exported), then the batch-level steps over the call's images (``decide``: verdict rule,
pixel threshold, regions, factual explanation) and maps post-processed on read (``postprocess``). What stays in zsad:
mutual scoring and fusion (they need the batch in torch; ``zsad export`` refuses them), the reasoning layer's rule
and LLM explanations, training.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Iterable

import numpy as np

from zsad_runtime import __version__
from zsad_runtime.bundle import Bundle
from zsad_runtime.decide import Scored, decide_results, error_result, rule_decision
from zsad_runtime.engines import ENGINES, open_engine
from zsad_runtime.errors import BundleError, ZsadError
from zsad_runtime.explain import FactualExplainer
from zsad_runtime.images import load_image
from zsad_runtime.progress import progress as progress_bar
from zsad_runtime.results import AnomalyResult
from zsad_runtime.sources import expand_sources

DEFAULT_ENGINE = {"onnx": "onnxruntime", "openvino": "openvino"}


class Runtime:
    """A loaded bundle. ``Runtime("bundle/").detect(images)`` -> one ``AnomalyResult`` per input, in input order.

    engine: "onnxruntime" or "openvino" (default: the one of the bundle's format; OpenVINO also reads ONNX files,
        onnxruntime does not read OpenVINO IR). threads: the engine's intra-op threads (None: its default).
    batch_size: images per graph call (results do not depend on it, up to float rounding).
    verify: check the bundle's files against their recorded sha256 when loading.
    """

    def __init__(self, bundle: str | Path | Bundle, engine: str | None = None, threads: int | None = None,
                 batch_size: int = 8, verify: bool = True):
        self.bundle = bundle if isinstance(bundle, Bundle) else Bundle.read(bundle, verify=verify)
        fmt = self.bundle.graph.format
        self.engine_name = engine or DEFAULT_ENGINE[fmt]
        if self.engine_name not in ENGINES:
            raise ZsadError(f"unknown engine {self.engine_name!r}; use one of {', '.join(ENGINES)}")
        if fmt == "openvino" and self.engine_name != "openvino":
            raise ZsadError(f"{self.bundle.root}: an OpenVINO bundle runs with --engine openvino only; export with "
                            "--format onnx for onnxruntime")
        if batch_size < 1:
            raise ZsadError(f"batch size must be at least 1, got {batch_size}")
        self.batch_size = int(batch_size)
        self.threads = threads
        try:
            self.graph = open_engine(self.engine_name, self.bundle.graph_path, threads)
        except ZsadError:
            raise
        except Exception as error:  # noqa: BLE001 - each engine has its own error types for a file it cannot read
            text = " ".join(str(error).split())[:300]
            raise BundleError(f"{self.bundle.graph_path}: {self.engine_name} cannot load it ({text}); copy the bundle "
                              "again or export the bundle again") from None
        if list(self.graph.input_names) != list(self.bundle.graph.inputs):
            raise BundleError(f"{self.bundle.graph_path}: inputs {self.graph.input_names}, but the bundle records "
                              f"{self.bundle.graph.inputs}; export the bundle again")
        self.memory = self.bundle.memory_inputs()
        self.calibration = self.bundle.calibration()
        self.explainer = FactualExplainer()

    def detect(self, images: Iterable | str | Path | Any, progress: bool = False) -> list[AnomalyResult]:
        """Score images: a path, a folder, a PIL image, an array (H x W, H x W x C, or a batch N x H x W x C), or a
        list of these, as ``Detector.detect`` takes them. The verdict threshold and the masks are decided by the
        bundle's rules: "mad" over this call's images (so pass a whole batch), "conformal" on the bundled
        references' leave-one-out scores."""
        sources = expand_sources(images)
        results: list[AnomalyResult | None] = [None] * len(sources)
        scored: list[tuple[int, Scored]] = []
        maps, scores = [], []
        bar = progress_bar(total=len(sources), desc="scoring", unit="img", disable=not progress)
        for start in range(0, len(sources), self.batch_size):
            loaded = []
            for index in range(start, min(start + self.batch_size, len(sources))):
                source = sources[index]
                try:
                    loaded.append((index, load_image(source.item, name=source.name)))
                except ZsadError as error:
                    results[index] = error_result(source.name, source.path, error, self.explainer)
            if loaded:
                batch = self.bundle.preprocess.batch([image.image for _, image in loaded])
                batch_maps, batch_scores = self.graph(batch, *self.memory)
                maps.append(np.asarray(batch_maps, dtype=np.float32))
                scores.append(np.asarray(batch_scores, dtype=np.float32))
                for index, image in loaded:
                    source = sources[index]
                    scored.append((index, Scored(source.name, source.path, image.original_size)))
            bar.update(min(self.batch_size, len(sources) - start))
        bar.close()
        if scored:
            grids, image_scores = np.concatenate(maps), np.concatenate(scores)
            bundle = self.bundle
            decision = rule_decision(image_scores.astype(np.float64), grids, bundle.threshold,
                                     bundle.natural_threshold, bundle.method, self.calibration, bundle.masks)
            decided = decide_results(
                [image for _, image in scored], image_scores, grids, {bundle.method: (image_scores, grids)},
                bundle.threshold, bundle.natural_threshold, bundle.postprocess, self.explainer, decision=decision)
            for (index, _), result in zip(scored, decided):
                results[index] = result
        return results

    def describe(self) -> dict[str, Any]:
        """What ran, for results.json: the bundle, the engine and the runtime's version."""
        engine_version = None
        try:
            from importlib.metadata import version

            engine_version = version(self.engine_name)
        except Exception:  # noqa: BLE001 - a version is information, not a requirement
            pass
        return {"package": "zsad-runtime", "version": __version__, "bundle": str(self.bundle.root),
                "engine": self.engine_name, "engine_version": engine_version, "threads": self.threads,
                "batch_size": self.batch_size, "graph": self.bundle.graph.file,
                "precision": self.bundle.graph.precision, "zsad_version": self.bundle.zsad_version}
