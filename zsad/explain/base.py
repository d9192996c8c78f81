"""Explainer registry; the interface and the default factual explainer.

``Explainer`` and ``FactualExplainer`` are defined once in the torch-free runtime (``zsad_runtime.explain``), which
explains its results as zsad does. Explainers are declared in ``EXPLAINERS`` by module path: ``factual`` here,
``rules`` and ``llm`` in the reasoning layer (imported only when chosen). Each entry is a factory
``factory(ExplainerContext) -> Explainer``.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from zsad_runtime.explain import Explainer, FactualExplainer

from zsad.registry import Registry

__all__ = ["EXPLAINERS", "Explainer", "ExplainerContext", "FactualExplainer", "build_explainer", "explainer_help",
           "explainer_names", "factual_explainer"]


@dataclass(frozen=True)
class ExplainerContext:
    """What an explainer factory may use: the backbone (region phrases in CLIP's text space), the product's name, and
    the reasoning layer's rules, parsed definition and LLM client when configured, and whose verdict is final
    (``"numeric"`` or ``"llm"``: an explanation must not contradict it)."""

    backbone: Any = None
    object_name: str = "object"
    rules: Any = None
    definition: Any = None
    llm: Any = None
    send_images: bool = False
    verdict: str = "numeric"


def factual_explainer(ctx: ExplainerContext) -> FactualExplainer:
    return FactualExplainer()


EXPLAINERS = Registry("explainer")
EXPLAINERS.declare("factual", "zsad.explain.base:factual_explainer",
                   help="what the numbers say: verdict, score against threshold, evidence, regions")
EXPLAINERS.declare("rules", "zsad.reasoning.explainers:rules_explainer",
                   help="rules of normality and anomaly applied to the evidence, offline")
EXPLAINERS.declare("llm", "zsad.reasoning.explainers:llm_explainer",
                   help="an LLM applies the rules to the evidence (rules when it fails)")


def build_explainer(name: str, backbone, object_name: str = "object", reasoning=None) -> Explainer:
    """The Detector's explainer: the reasoning setup's choice when the reasoning layer runs (it knows the rules,
    definition and LLM), else the registered explainer ``name`` (``auto``: factual)."""
    if reasoning is not None:
        return reasoning.explainer(backbone, object_name)
    return EXPLAINERS.get("factual" if name == "auto" else name)(ExplainerContext(backbone=backbone,
                                                                                  object_name=object_name))


def explainer_names() -> list[str]:
    """``auto`` (the reasoning layer's choice) followed by every registered explainer."""
    return ["auto", *EXPLAINERS.names()]


def explainer_help() -> str:
    return "; ".join(["auto: llm with an LLM configured, rules with --rules or --define, else factual",
                      *(f"{name}: {EXPLAINERS.help(name)}" for name in EXPLAINERS.names())])
