"""The explainer seam: a result, its per-evidence scores and its top regions, turned into words.

``regions.top_regions`` finds the anomalous regions of a map once, for every explainer (and for the demo's
outlines and the reasoning layer). ``FactualExplainer`` is the default; the reasoning layer adds rule- and
LLM-based explainers through the same ``Explainer`` interface (``Detector(explainer=...)``).
"""
from zsad.explain.base import (
    EXPLAINERS, Explainer, ExplainerContext, FactualExplainer, build_explainer, explainer_names,
)
from zsad.explain.regions import Region, pixel_threshold, position_words, top_regions

__all__ = [
    "EXPLAINERS", "Explainer", "ExplainerContext", "FactualExplainer", "Region", "build_explainer", "explainer_names",
    "pixel_threshold", "position_words", "top_regions",
]
