"""The scorer seam: what every scorer returns, the context it gets, and the protocol it implements.

A scorer turns ``Features`` into patch-grid ``AnomalyMaps``. It is built from its typed config and a
``ScorerContext`` (facts about the backbone, the text head, a function that runs the backbone on images, the
concept transform), never from the Detector: it can be built and tested with a context alone. The registry that
lists scorers is ``zsad.scoring.registry.SCORERS``; ``zsad.scoring.planning`` decides which ones a run uses.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, ClassVar

import numpy as np
import torch

from zsad.backbones.base import BackboneInfo, Features

if TYPE_CHECKING:
    from zsad.data.images import LoadedImage
    from zsad.scoring.text_heads import TextHead


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


# What a scorer in CLIP's text space reads beyond its section: the text head, and V-V attention, which changes only
# the tokens of the text path (``zsad.backbones.clip``).
TEXT_PATH_READS = ("text_head.prompts", "backbone.vv_layers", "backbone.dpam_layer")


def _identity(features: Features) -> Features:
    return features


@dataclass(frozen=True)
class ScorerContext:
    """What a scorer may use besides its config, built once per detector.

    backbone: facts about the loaded backbone (name, family, input size, patch size, layers, text tower, windows).
    extract: runs the backbone on loaded images (``zsad.data.images.LoadedImage``), in batches, and returns
        ``Features`` on the CPU in float32; scorers that need features of other images (references) call it.
    text_head: the [normal, anomalous] text embeddings (``zsad.scoring.text_heads``), None without a text tower.
    transform: features as scorers outside CLIP's text space see them (a definition's concept transform); the
        identity when none is configured.
    device: where the backbone runs (few-shot memories live there too).
    """

    backbone: BackboneInfo
    extract: Callable[[list["LoadedImage"]], Features]
    text_head: "TextHead | None" = None
    transform: Callable[[Features], Features] = _identity
    device: torch.device | str = "cpu"


@dataclass
class ScoringRun:
    """What one ``Detector.detect`` call gives its scorers.

    n_images: test images in the run (after unreadable files were set aside).
    references: good reference images as the user passed them (paths, folders, arrays, a saved memory file or a
        built ``ReferenceMemory``), or None.
    object_name: the product's name, for text prompts.
    explicit: True when the user named this scorer (``--method NAME``), False when ``auto`` chose it; a scorer
        may demand more from an automatic choice (mutual scoring: a batch of 8 instead of 3).
    progress: show progress bars for long steps.
    state: an accelerate ``PartialState`` when several processes score one run, else None.
    local_images: how many of the images this process scores (all of them in a single process).
    """

    n_images: int
    references: Any = None
    object_name: str = "object"
    explicit: bool = False
    progress: bool = False
    state: Any = None
    local_images: int | None = None


class Scorer:
    """One kind of evidence. Subclasses set ``name`` (their registry name) and override what they need.

    Built as ``Scorer(config, ctx)`` (``config``: the instance of the config class it was registered with, or None).
    Life cycle in one ``detect`` call: ``start(run)`` once; ``add(features, start)`` for each batch of test images
    in order (return this batch's ``AnomalyMaps``, or None to answer at the end); ``finish()`` once after the last
    batch (return the maps of *all* images when ``add`` returned None, else None). ``natural_threshold()`` is the
    verdict threshold the evidence carries by itself (0.5 for a probability), used when the batch is too small for
    the batch rule. Post-processing defaults come from the config (``default_postprocess``), not from the scorer.
    """

    name: ClassVar[str] = ""
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
    # What it reads beyond its own config section, as setting paths ("text_head.prompts"), and "references" for the
    # run's reference images. With its own section, these are the settings a run that uses it uses; an explicit
    # one that no scorer of the run reads is reported (``zsad.scoring.planning.unused_settings``).
    reads: ClassVar[tuple[str, ...]] = ()
    # Fields of its own config that ``unavailable`` reads to decide whether "auto" picks it: used by any auto run.
    decides: ClassVar[tuple[str, ...]] = ()

    def __init__(self, config: Any, ctx: ScorerContext) -> None:
        self.config = config
        self.ctx = ctx

    @classmethod
    def unavailable(cls, config: Any, ctx: ScorerContext, run: ScoringRun) -> str | None:
        """Why this scorer cannot run on these inputs (a message with the fix), or None when it can."""
        return None

    def start(self, run: ScoringRun) -> None:
        self.run = run

    def add(self, features: Features, start: int) -> AnomalyMaps | None:
        raise NotImplementedError

    def finish(self) -> AnomalyMaps | None:
        return None

    def natural_threshold(self) -> float | None:
        return None

    def calibration(self) -> tuple[np.ndarray, np.ndarray] | None:
        """Known-normal image scores [k] and maps [k, h, w] on this evidence's own scale (leave-one-out scores of
        good references), the calibration set of the conformal verdict and masks; None when it has none."""
        return None

    def describe(self) -> dict[str, Any]:
        """What this scorer resolved at run time beyond its config (memory size, groups, ...), for results.json."""
        return {}
