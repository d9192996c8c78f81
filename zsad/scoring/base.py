"""The scorer seam: what every scorer returns, the protocol it implements, and the registry that lists them.

A scorer turns ``Features`` into patch-grid ``AnomalyMaps``. The ``Detector`` knows no scorer by name: it asks the
registry which scorers the inputs allow, hands each one the features of every batch, and collects maps either
batch by batch (text, few-shot) or at the end of the run (mutual, which compares the images with each other).
Adding a scorer is one module with one ``@register_scorer`` class; the CLI's ``--method`` choices and help are
read from the registry.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, ClassVar

import torch

from zsad.errors import ZsadError

if TYPE_CHECKING:
    from zsad.backbones.base import Features
    from zsad.scoring.postprocess import MapPostprocess


@dataclass
class AnomalyMaps:
    """Patch-grid anomaly maps and image scores of one scorer for a batch.

    maps: [B, h, w] on the backbone's patch grid (higher = more anomalous).
    scores: [B] image-level anomaly scores.
    source: which evidence produced them ("text", "fewshot", "mutual", or a fusion of these joined by "+").
    """

    maps: torch.Tensor
    scores: torch.Tensor
    source: str


@dataclass
class ScoringRun:
    """What one ``Detector.detect`` call gives its scorers.

    n_images: test images in the run (after unreadable files were set aside).
    references: good reference images as the user passed them (paths, folders, arrays, a saved memory file or a
        built ``ReferenceMemory``), or None.
    object_name: the product's name, for text prompts.
    explicit: True when the user named this scorer (``--method NAME``), False when ``auto`` chose it; a scorer
        may demand more from an automatic choice (mutual scoring: a batch of 8 instead of 3).
    extract: ``extract(images) -> Features`` runs the detector's backbone on loaded images; scorers that need
        features of other images (few-shot references) call it instead of touching the backbone.
    progress: show progress bars for long steps.
    """

    n_images: int
    references: Any = None
    object_name: str = "object"
    explicit: bool = False
    extract: Callable[..., "Features"] | None = None
    progress: bool = False
    extra: dict[str, Any] = field(default_factory=dict)


class Scorer:
    """One kind of evidence. Subclasses set ``name`` and ``help`` and override what they need.

    Life cycle in one ``detect`` call: ``start(run)`` once; ``add(features, start)`` for each batch of test images
    in order (return this batch's ``AnomalyMaps``, or None to answer at the end); ``finish()`` once after the last
    batch (return the maps of *all* images when ``add`` returned None, else None). ``natural_threshold()`` is the
    verdict threshold the evidence carries by itself (0.5 for a probability), used when the batch is too small for
    the batch rule.
    """

    name: ClassVar[str] = ""
    help: ClassVar[str] = ""
    # The order in which "auto" lists evidence; lower first.
    order: ClassVar[int] = 100
    # Whether an image's maps depend on that image alone (not on the rest of the batch): such results can be
    # journaled and reused by --resume, and split freely between processes.
    per_image: ClassVar[bool] = True
    # Whether the scorer compares features with text (CLIP's joint space): such scorers get the backbone's own
    # features; the others get them after a definition's concept transform, when one is configured.
    text_space: ClassVar[bool] = False
    # How strong this evidence is when the inputs allow it: "auto" (without fuse) runs the strongest one only.
    strength: ClassVar[int] = 0
    # Whether "auto" may choose this scorer (a newly registered scorer runs only when named, until it says so).
    in_auto: ClassVar[bool] = False

    def __init__(self, detector) -> None:
        self.detector = detector

    @classmethod
    def unavailable(cls, detector, run: ScoringRun) -> str | None:
        """Why this scorer cannot run on these inputs (a message with the fix), or None when it can."""
        return None

    def start(self, run: ScoringRun) -> None:
        self.run = run

    def add(self, features: "Features", start: int) -> AnomalyMaps | None:
        raise NotImplementedError

    def finish(self) -> AnomalyMaps | None:
        return None

    def natural_threshold(self) -> float | None:
        return None

    def postprocess(self, input_size: int, sigma: float) -> "MapPostprocess":
        """How this evidence's grid maps become image maps when it is the only evidence (fused maps use the
        default). Methods whose published code smooths or upsamples differently override this."""
        from zsad.scoring.postprocess import MapPostprocess

        config = self.detector.config
        return MapPostprocess(input_size, sigma, align_corners=config.align_corners,
                              padding=config.gaussian_padding, smooth_at=config.smooth_at)

    def describe(self) -> dict[str, Any]:
        """The resolved settings of this scorer, for results.json."""
        return {}


SCORERS: dict[str, type[Scorer]] = {}


def register_scorer(cls: type[Scorer]) -> type[Scorer]:
    """Class decorator: list a scorer under its ``name``."""
    if not cls.name:
        raise ValueError(f"{cls.__name__} needs a non-empty name to be registered")
    SCORERS[cls.name] = cls
    return cls


def scorer_class(name: str) -> type[Scorer]:
    _load_builtin_scorers()
    if name not in SCORERS:
        raise ZsadError(f"unknown method {name!r}; use one of {', '.join(method_names())}")
    return SCORERS[name]


def method_names() -> list[str]:
    """``auto`` followed by every registered scorer, in ``order``."""
    _load_builtin_scorers()
    return ["auto", *sorted(SCORERS, key=lambda n: (SCORERS[n].order, n))]


def method_help() -> str:
    _load_builtin_scorers()
    lines = ["auto: every evidence the inputs allow"]
    lines += [f"{n}: {SCORERS[n].help}" for n in method_names()[1:]]
    return "; ".join(lines)


def _load_builtin_scorers() -> None:
    """The built-in scorers register themselves when their modules are imported."""
    import zsad.scoring.scorers  # noqa: F401
