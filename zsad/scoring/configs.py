"""The settings of the built-in scorers and of the text head, one frozen dataclass each, torch-free.

Each field is declared once (``setting``): its option name, help and validation live here, and the CLI flags,
``Detector(**options)``, preset keys and results.json are generated from it (``zsad.config_fields``). A scorer's
config also says what the scorer needs around it, so that it is settled before a model loads:
``default_postprocess()`` (the map post-processing of the published method; presets and users override fields of
it) and ``backbone_settings(spec)`` (backbone settings the scorer requires, e.g. WinCLIP's window sizes). The
mutual scorer's config lives beside its pipeline (``zsad.scoring.mutual.config``).

They live apart from the scorer modules because those import torch, and ``zsad --help`` must not.
"""
from __future__ import annotations

from dataclasses import dataclass, fields

from zsad.config_fields import fraction, setting
from zsad.errors import ZsadError
from zsad.postprocess import PostprocessConfig

IMAGE_SCORE_RULES = ("cls", "max", "cls+max")
METRICS = ("cosine", "l2")
IMAGE_SCORES = ("top1pct", "max")


class ScorerConfig:
    """What the detector asks of a scorer config (a plugin's config may skip both: ``default_postprocess_of``)."""

    def default_postprocess(self) -> PostprocessConfig:
        """The scorer's own post-processing (None fields: zsad's default, ``zsad.postprocess.DEFAULT_POSTPROCESS``)."""
        return PostprocessConfig()

    def backbone_settings(self, windows: tuple[int, ...]) -> dict:
        """Backbone settings this scorer needs when it is the method, given the backbone's current windows."""
        return {}


def default_postprocess_of(config) -> PostprocessConfig:
    """A scorer config's own post-processing; a config that declares none (or no config) asks for nothing."""
    declare = getattr(config, "default_postprocess", None)
    return declare() if declare is not None else PostprocessConfig()


def backbone_settings_of(config, windows: tuple[int, ...]) -> dict:
    """The backbone settings a scorer config requires; a config that declares none requires nothing."""
    declare = getattr(config, "backbone_settings", None)
    return declare(windows) if declare is not None else {}


@dataclass(frozen=True)
class TextHeadConfig:
    """Where the [normal, anomalous] text embeddings come from (``zsad.scoring.text_heads``)."""

    prompts: str = setting("winclip", metavar="SPEC",
                           help="text head: a prompt set name (winclip), a YAML file, or learned:ADAPTER")
    object_name: str = setting("object", flag="--object", metavar="NAME",
                               help="the product's name in text prompts, e.g. bottle")


@dataclass(frozen=True)
class TextConfig(ScorerConfig):
    """Zero-shot patch-text scoring (``zsad.scoring.text``)."""

    temperature: float = setting(0.07, help="softmax temperature of the patch-text scores")
    layers: tuple[int, ...] | None = setting(None, help="backbone blocks scored against text (default: every "
                                                        "extracted layer, maps averaged)")
    image_score: str = setting("cls+max", option="text_image_score", choices=IMAGE_SCORE_RULES,
                               help="image score: the CLS probability, the map maximum, or their mean")
    pooled_windows: tuple[int, ...] = setting(
        (), help="mean-token windows (in patches) averaged into the map: a cheap multi-scale variant, not WinCLIP's "
                 "windows (--method winclip)")

    def __post_init__(self) -> None:
        if self.temperature <= 0:
            raise ZsadError(f"text temperature must be positive, got {self.temperature}")
        if self.image_score not in IMAGE_SCORE_RULES:
            raise ZsadError(f"text image_score must be one of {IMAGE_SCORE_RULES}, got {self.image_score!r}")
        if any(k < 1 for k in self.pooled_windows):
            raise ZsadError(f"pooled_windows {list(self.pooled_windows)} must be positive window sizes in patches")


@dataclass(frozen=True)
class ReferenceConfig:
    """How a reference memory is built and searched (``zsad.scoring.reference.ReferenceMemory``).

    metric: "cosine" (1 - cos, AnomalyDINO) or "l2" (PatchCore).
    image_score: "top1pct" (mean of the top 1 % patch scores, at least one) or "max".
    coreset_ratio: fraction of each layer's reference patches kept by greedy coreset selection (PatchCore uses
        0.1 or 0.01); None keeps every patch. Worth it from a few tens of references on.
    chunk_size: rows of queries and of memory per block of the nearest-neighbour search; peak extra memory is
        ``chunk_size**2`` floats (16 MiB at 2048).
    seed: seeds the coreset's random projection; nothing else is random.
    projection_dim: width of the coreset's random projection.
    """

    metric: str = setting("cosine", option="reference_metric", choices=METRICS,
                          help="patch distance: cosine (1 - cos, AnomalyDINO) or l2 (PatchCore)")
    image_score: str = setting("top1pct", option="reference_image_score", choices=IMAGE_SCORES,
                               help="image score: mean of the top 1 % patch scores, or the max")
    coreset_ratio: float | None = setting(None, option="coreset", metavar="FRACTION", parse=fraction,
                                          help="keep this fraction of reference patches (greedy coreset, PatchCore)")
    chunk_size: int = setting(2048, option="reference_chunk_size", cli=False, run_time_only=True,
                              help="rows per block of the nearest-neighbour search (bounded memory, exact result)")
    seed: int = setting(0, option="reference_seed", cli=False, help="seed of the coreset's random projection")
    projection_dim: int = setting(128, option="reference_projection_dim", cli=False,
                                  help="width of the coreset's random projection")

    def __post_init__(self) -> None:
        if self.metric not in METRICS:
            raise ZsadError(f"unknown reference metric {self.metric!r}; use one of {', '.join(METRICS)}")
        if self.image_score not in IMAGE_SCORES:
            raise ZsadError(
                f"unknown reference image_score {self.image_score!r}; use one of {', '.join(IMAGE_SCORES)}"
            )
        if self.coreset_ratio is not None and not 0.0 < self.coreset_ratio <= 1.0:
            raise ZsadError(f"coreset_ratio={self.coreset_ratio} must be in (0, 1], or None for no subsampling")
        if self.chunk_size < 1:
            raise ZsadError(f"chunk_size={self.chunk_size} must be a positive number of rows")
        if self.projection_dim < 1:
            raise ZsadError(f"projection_dim={self.projection_dim} must be positive")


@dataclass(frozen=True)
class FewShotConfig(ReferenceConfig, ScorerConfig):
    """The few-shot scorer: the memory's settings plus which references and layers go into it."""

    rotations: bool = setting(False, option="rotations",
                              help="add 90/180/270-degree copies of each reference (AnomalyDINO)")
    # Each layer adds one nearest-neighbour search over the whole memory, so more layers cost more than they
    # usually return; None searches the last extracted layer, as AnomalyDINO.
    layers: tuple[int, ...] | None = setting(None, option="reference_layers",
                                             help="backbone blocks searched (default: the last extracted one)")

    def memory_config(self) -> ReferenceConfig:
        """The part a reference memory stores with itself."""
        return ReferenceConfig(**{f.name: getattr(self, f.name) for f in fields(ReferenceConfig)})


@dataclass(frozen=True)
class WinCLIPConfig(ScorerConfig):
    """WinCLIP's settings. The windows are computed by the backbone: the scorer asks for them
    (``backbone_settings``), so a preset names the scales once.

    temperature: CLIP's softmax temperature of the text scores (0.07, as the paper and anomalib).
    scales: window sizes in patches (2 and 3 for ViT-B-16-plus-240 at 240 px, a 15 x 15 grid).
    chunk_size: rows per block of the few-shot nearest-neighbour search (bounded memory, exact result).
    """

    temperature: float = setting(0.07, help="softmax temperature of the text scores")
    scales: tuple[int, ...] = setting((2, 3), help="window sizes in patches (the ViT embeds each window)")
    chunk_size: int = setting(2048, cli=False, run_time_only=True,
                              help="rows per block of WinCLIP+'s nearest-neighbour search")

    def __post_init__(self) -> None:
        if self.temperature <= 0:
            raise ZsadError(f"WinCLIP temperature must be positive, got {self.temperature}")
        if not self.scales or any(k < 1 for k in self.scales):
            raise ZsadError(f"WinCLIP scales must be positive window sizes in patches, got {self.scales}")

    def default_postprocess(self) -> PostprocessConfig:
        return PostprocessConfig(sigma=0.0)  # anomalib's WinCLIP: maps are not smoothed

    def backbone_settings(self, windows: tuple[int, ...]) -> dict:
        return {"windows": tuple(sorted(set(windows) | set(self.scales)))}


@dataclass(frozen=True)
class AnomalyCLIPConfig(ScorerConfig):
    """AnomalyCLIP's inference settings (``zsad.scoring.anomalyclip``); its map smoothing is the official one
    (``default_postprocess``: scipy's Gaussian, sigma 4, symmetric border), overridable like any post-processing."""

    temperature: float = setting(0.07, help="softmax temperature (compute_similarity, test.py's text_probs)")
    layers: tuple[int, ...] | None = setting(None, help="layers whose maps are summed (official --features_list; "
                                                        "default: every extracted layer)")

    def __post_init__(self) -> None:
        if self.temperature <= 0:
            raise ZsadError(f"AnomalyCLIP temperature must be positive, got {self.temperature}")

    def default_postprocess(self) -> PostprocessConfig:
        return PostprocessConfig(sigma=4.0, align_corners=False, smooth_at="input", padding="symmetric")
