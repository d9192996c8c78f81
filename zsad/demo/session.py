"""What the demo does, without the page: run detection, re-decide verdicts at a new threshold, draw the views.

Everything here is plain Python on ``AnomalyResult`` lists, so it is unit-tested without a browser; ``zsad.demo.app``
only lays out the page and wires these functions to its events.

The slider rule: a run keeps its results (patch-grid maps, scores, regions) and small display copies of its images in
a ``RunState``; moving the threshold calls ``apply_threshold`` (``is_anomalous = score >= t``, explanation redone)
and the views (``zsad.demo.views``) redraw outlines and verdicts from cached heat maps. ``Detector.detect`` is not
called again.

Messages belong to the run that made them and name files by their names, never by the server's upload paths
(``public``). A run can be cancelled from another thread (``cancel``: the page's tab was closed or reloaded): it
stops at the detector's next batch.
"""
from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable

import numpy as np
from PIL import Image

from zsad.demo.views import (  # noqa: F401  (the views of a run, re-exported: the page and tests import them here)
    Renders, caption, detail, gallery, new_renders, public, rules_text, summary, table_rows, write_csv,
)
from zsad.errors import ZsadError
from zsad.results import AnomalyResult

DISPLAY_SIDE = 384  # long side of the image copies a run keeps for redrawing overlays
SLIDER_RULE = "set with the slider"
# The explanation is in the selected view and the CSV: long text would make the rows tall (and the table virtualised).
TABLE_COLUMNS = ["#", "image", "score", "verdict", "threshold", "regions", "evidence"]


@dataclass(frozen=True)
class DemoSettings:
    """Start-up settings of one demo server (``zsad demo`` flags)."""

    backbone: str | None = None  # None: the preset's backbone, else zsad's default
    pretrained: str | None = None
    preset: str | None = None
    device: str = "auto"
    max_images: int = 32
    max_references: int = 16
    max_file_size: str = "20mb"
    cache_size: int = 2  # detectors kept loaded, one per (backbone, settings)
    queue_size: int = 16  # waiting runs beyond this are refused with a message
    examples: bool = True  # generate synthetic example images at start-up


def preset_names() -> list[str]:
    from zsad.presets import list_presets

    return list_presets()


def preset_choice(preset: str | None) -> dict[str, str]:
    """What choosing ``preset`` puts into the page's Backbone and Method controls (its own values; zsad's defaults
    for what it leaves unset)."""
    from zsad.backbones import DEFAULT_BACKBONE
    from zsad.presets import load_preset

    options = load_preset(preset).options if preset else {}
    return {"backbone": str(options.get("backbone") or DEFAULT_BACKBONE), "method": str(options.get("method") or "auto")}


def initial_backbone(settings: DemoSettings) -> str:
    """The Backbone control's first value: ``--backbone`` if given, else the preset's, else zsad's default."""
    return settings.backbone or preset_choice(settings.preset)["backbone"]


def prompt_choices() -> list[str]:
    """Prompt sets shipped in ``zsad.prompts`` (YAML), then the adapters under ./adapters as ``learned:NAME``."""
    from importlib import resources

    from zsad.learning.adapters import adapter_names

    names = sorted(p.name.rsplit(".", 1)[0] for p in resources.files("zsad.prompts").iterdir()
                   if p.name.endswith((".yaml", ".yml")))
    names += [f"learned:{name}" for name in adapter_names()]
    return names


# -- the model, loaded once per (backbone, settings) -------------------------------------------------------------

class DetectorCache:
    """A few loaded detectors, least recently used dropped first; one lock so two sessions never load the same model
    twice. ``factory`` builds a detector from options (``zsad.detector.Detector`` by default)."""

    def __init__(self, size: int = 2, factory: Callable[..., Any] | None = None):
        self.size = max(1, size)
        self.factory = factory
        self.loads = 0
        self._items: OrderedDict[tuple, Any] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, **options) -> Any:
        options = {k: v for k, v in options.items() if v not in (None, "")}
        key = tuple(sorted((k, repr(v)) for k, v in options.items()))
        with self._lock:
            if key in self._items:
                self._items.move_to_end(key)
                return self._items[key]
            factory = self.factory
            if factory is None:
                from zsad.detector import Detector as factory
            detector = factory(**options)
            self.loads += 1
            self._items[key] = detector
            while len(self._items) > self.size:
                self._items.popitem(last=False)
            return detector


# -- one run ---------------------------------------------------------------------------------------------------

@dataclass
class RunState:
    """What a page keeps of its last run (in ``gr.State``): enough to redraw everything at a new threshold."""

    results: list[AnomalyResult]
    images: list[Image.Image | None]  # display copies, None where the file could not be read
    value_range: tuple[float, float]
    auto_threshold: float | None
    auto_rule: str
    notes: list[str] = field(default_factory=list)  # what the page should tell the user about this run
    settings: dict[str, Any] = field(default_factory=dict)  # what ran (``Detector.describe()``)
    detector_options: dict[str, Any] = field(default_factory=dict)  # the cache key of the run's detector
    object_name: str | None = None
    discovery: Any = None  # defect types of the anomalous images (``zsad.demo.grouping``), None when not grouped
    renders: Renders = field(default_factory=new_renders)  # cached heat maps and tiles; the run's folder

    @property
    def scores(self) -> list[float]:
        return [r.score for r in self.results if r.ok and r.score is not None]


@dataclass
class RunRequest:
    """The page's inputs for one run."""

    images: list[str]
    references: list[str] | None = None
    object_name: str | None = None
    definition: str | None = None
    method: str = "auto"
    prompts: str | None = None
    preset: str | None = None
    backbone: str | None = None
    threshold: float | None = None  # None: the detector's rule; a number: fixed (the slider)


def _paths(files) -> list[str]:
    """Gradio file values (paths, or objects with .name / .path) -> paths."""
    out = []
    for item in files or []:
        if isinstance(item, (str, Path)):
            out.append(str(item))
        elif isinstance(item, dict):
            out.append(str(item.get("path") or item.get("name")))
        else:
            out.append(str(getattr(item, "path", None) or getattr(item, "name")))
    return out


def check_request(request: RunRequest, settings: DemoSettings) -> RunRequest:
    """Refuse what would only fail later, with a message the page shows."""
    images = _paths(request.images)
    references = _paths(request.references) or None
    if not images:
        raise ZsadError("no test images: upload one or more images (or press 'Use example images') and run again")
    if len(images) > settings.max_images:
        raise ZsadError(f"{len(images)} test images uploaded; this demo takes at most {settings.max_images} per run. "
                        "Remove some and run again")
    if references and len(references) > settings.max_references:
        raise ZsadError(f"{len(references)} reference images uploaded; at most {settings.max_references} are used. "
                        "Remove some and run again")
    return replace(request, images=images, references=references)


def run_detection(cache: DetectorCache, request: RunRequest, settings: DemoSettings,
                  status: Callable[[float, str], None] | None = None, cancel=None) -> RunState:
    """Load (or reuse) the detector, score the images, keep what the views need. ``ZsadError`` for every problem the
    user can fix (and for a run cancelled through ``cancel``, a ``threading.Event``); unreadable images come back as
    error results (the others are scored)."""
    from zsad.data.images import load_image

    request = check_request(request, settings)
    notes: list[str] = []
    preset = request.preset if request.preset is not None else settings.preset
    detector_options = chosen_options(request, settings, preset)
    if status:
        status(0.02, f"loading {detector_options.get('backbone') or preset_choice(preset)['backbone']}")
    detector = cache.get(**detector_options)
    if cancel is not None and cancel.is_set():
        raise ZsadError("run cancelled before scoring")
    if status:
        status(0.1, f"scoring {len(request.images)} image(s)")
    results = detector.detect(request.images, references=request.references, object_name=request.object_name or None,
                              progress=True, cancel=cancel)
    results = _unique_names(results)
    images = []
    for result in results:
        image = None
        if result.ok:
            try:
                image = load_image(result.path).image
                image.thumbnail((DISPLAY_SIDE, DISPLAY_SIDE), Image.BILINEAR)
            except ZsadError:
                image = None
        images.append(image)
    scored = [r for r in results if r.ok]
    from zsad.outputs import display_range

    state = RunState(results=results, images=images, value_range=display_range(scored),
                     auto_threshold=scored[0].threshold if scored else None,
                     auto_rule=scored[0].threshold_rule if scored else "", notes=notes,
                     settings=detector.describe(), detector_options=detector_options,
                     object_name=request.object_name or None)
    for result in results:
        if result.error:
            notes.append(f"{result.name}: {public(result.error, result.path)}")
    if not scored:
        notes.append("no image could be scored; check the files and run again")
    elif request.threshold is not None:
        state = apply_threshold(state, request.threshold)
    elif state.auto_threshold is None:
        notes.append(f"{state.auto_rule}; or move the threshold slider to decide")
    return state


def chosen_options(request: RunRequest, settings: DemoSettings, preset: str | None) -> dict[str, Any]:
    """The detector options of a run. Backbone and method go in only where they differ from what the preset sets:
    choosing a preset fills those controls with its values, so an equal value is the preset's, not an override,
    while a value the user changed after choosing it overrides the preset (and is reported as such)."""
    own = preset_choice(preset)
    options: dict[str, Any] = {"device": settings.device, "pretrained": settings.pretrained,
                               "prompts": request.prompts or None}
    for name, value in (("backbone", request.backbone or initial_backbone(settings)), ("method", request.method)):
        if value and value != own[name]:
            options[name] = value
    for name, value in (("preset", preset), ("define", request.definition)):
        value = value.strip() if isinstance(value, str) else value
        if value:
            options[name] = value
    return options


def settings_text(settings: dict[str, Any]) -> str:
    """The settings a run resolved, for the page: preset, backbone, what ran, post-processing, verdict rule, and
    every value a preset, an adapter or the user set (``origins``)."""
    if not settings:
        return ""
    backbone, ran = settings["backbone"], settings.get("ran", {})
    post = ran.get("postprocess") or {}
    lines = [
        f"**preset**: {settings.get('preset') or 'none'}",
        f"**backbone**: {backbone['name']} ({backbone.get('pretrained') or 'default weights'}), "
        f"{backbone['input_size']} px, layers {backbone['layers']}",
        f"**method**: {settings['method']} -> ran {', '.join(ran.get('scorers') or []) or 'nothing'}",
        f"**post-processing**: sigma {post.get('sigma')}, align_corners {post.get('align_corners')}, "
        f"smoothed at {post.get('smooth_at')}, {post.get('padding')} border",
    ]
    origins = settings.get("origins") or {}
    if origins:
        lines += ["", "**set by the preset, an adapter or you**:"]
        lines += [f"- {path}: {origin}" for path, origin in sorted(origins.items())]
    return "\n".join(lines)


def _unique_names(results: list[AnomalyResult]) -> list[AnomalyResult]:
    """Two uploads with the same file name get "name (2)", so table rows and captions stay distinguishable."""
    seen: dict[str, int] = {}
    out = []
    for result in results:
        seen[result.name] = seen.get(result.name, 0) + 1
        out.append(result if seen[result.name] == 1 else replace(result, name=f"{result.name} ({seen[result.name]})"))
    return out


def apply_threshold(state: RunState, threshold: float) -> RunState:
    """Verdicts, regions and explanations at ``threshold`` from the stored scores and masks (no model call)."""
    from zsad.explain import FactualExplainer

    explainer = FactualExplainer()
    results = []
    for result in state.results:
        if result.ok and result.score is not None:
            result = replace(result, threshold=float(threshold), threshold_rule=SLIDER_RULE, threshold_name="slider",
                             certainty={}, decided_on=next(iter(result.evidence)) if len(result.evidence) == 1
                             else "fused", is_anomalous=bool(result.score >= threshold))
            if result.mask is not None:  # the mask rule's patches, shown or hidden by the new verdict
                result.regions = tuple(result.shown_regions())
            result.explanation = explainer.explain(result, list(result.regions))
        results.append(result)
    notes = [n for n in state.notes if not n.startswith("no verdict")]
    return replace(state, results=results, notes=notes, discovery=None)  # types belonged to the old anomalous set


def slider_bounds(state: RunState) -> tuple[float, float, float]:
    """(minimum, maximum, value) of the threshold slider for this run: the scores' range with a margin."""
    scores = state.scores
    if not scores:
        return 0.0, 1.0, 0.5
    low, high = min(scores), max(scores)
    margin = max((high - low) * 0.05, 1e-3 * max(1.0, abs(high)))
    value = state.results[[r.ok for r in state.results].index(True)].threshold
    if value is None:
        value = float(np.median(scores))
    low, high = min(low - margin, value), max(high + margin, value)
    digits = max(0, 3 - int(np.floor(np.log10(max(high - low, 1e-12)))))  # about 4 significant digits of the span
    return (float(np.floor(low * 10**digits) / 10**digits), float(np.ceil(high * 10**digits) / 10**digits),
            float(round(value, digits + 1)))


def make_examples(folder: str | Path, n_good: int = 6, size: int = 256, seed: int = 0) -> tuple[list[str], list[str]]:
    """Synthetic pill images (``zsad synth``): test images (good + one of each defect type) and good references."""
    from zsad.data.images import list_images
    from zsad.data.synth import generate_dataset

    import shutil

    folder = Path(folder)
    root = generate_dataset(folder / "synth", categories=["pill"], n_train=3, n_test_good=n_good, n_test_defect=1,
                            size=size, seed=seed, overwrite=True) / "pill"
    flat = {"test": folder / "test", "references": folder / "references"}
    copies: dict[str, list[str]] = {"test": [], "references": []}
    for kind, source in (("test", root / "test"), ("references", root / "train")):
        flat[kind].mkdir(parents=True, exist_ok=True)
        for path in list_images([source]):  # test/hole/000.png -> test/hole_000.png: file names stay unique
            target = flat[kind] / f"{path.parent.name}_{path.name}"
            shutil.copyfile(path, target)
            copies[kind].append(str(target))
    return copies["test"], copies["references"]
