"""Graded defects for ``zsad.data.synth``: which size and contrast level each planted defect gets.

Scores and areas should rise with a defect's severity (MAD-Bench asks for severity-aligned scores). To measure that,
the generator can plant each defect at a size level and a contrast level; the levels are recorded in the dataset's
manifest. Size levels are bands of planted area (so the area rises strictly with the level, for every defect
type); contrast levels are blend weights of the painted defect over the clean image.
"""
from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

from zsad.errors import DatasetError


@dataclass(frozen=True)
class Severity:
    """How severe a planted defect is: levels 1 (mildest) to ``levels``; None leaves that property as by default.

    size_level: the defect's area lies in the ``size_level``-th of ``levels`` log-spaced bands of the generator's
        area range, 0.5 % to 5 % of the image (``area_band``), so the planted area rises strictly with the level,
        whatever the defect type.
    contrast_level: the defect is blended into the clean image with weight ``contrast_level / levels`` (1 = as
        painted by default); the mask stays the defect's outline.
    """

    levels: int
    size_level: int | None = None
    contrast_level: int | None = None

    def __post_init__(self) -> None:
        if self.levels < 1:
            raise DatasetError(f"severity levels={self.levels} must be >= 1")
        for name in ("size_level", "contrast_level"):
            value = getattr(self, name)
            if value is not None and not 1 <= value <= self.levels:
                raise DatasetError(f"{name}={value} must be between 1 and levels={self.levels}")

    def area_band(self, low: float, high: float) -> tuple[float, float]:
        """The area fractions allowed at this size level, out of the generator's range [low, high]."""
        if self.size_level is None:
            return low, high
        edges = np.geomspace(low, high, self.levels + 1)
        return float(edges[self.size_level - 1]), float(edges[self.size_level])

    @property
    def contrast(self) -> float:
        return 1.0 if self.contrast_level is None else self.contrast_level / self.levels


GRADED = ("size", "contrast")


def severity_for(index: int, levels: int, graded: Iterable[str] = GRADED) -> Severity:
    """The severity of the ``index``-th defective image of a type: size level cycles fastest, then contrast, so
    ``levels`` x ``levels`` images per type cover every combination once (one graded property: ``levels``)."""
    graded = tuple(graded)
    unknown = set(graded) - set(GRADED)
    if unknown or not graded:
        raise DatasetError(f"graded={graded!r}: grade one or both of {', '.join(GRADED)}")
    first = 1 + index % levels
    second = 1 + (index // levels) % levels
    if graded == ("contrast",):
        return Severity(levels, contrast_level=first)
    if "contrast" not in graded:
        return Severity(levels, size_level=first)
    return Severity(levels, size_level=first, contrast_level=second)
