"""Explainer interface, registry and the default factual explainer.

Explainers are declared in ``EXPLAINERS`` by module path: ``factual`` here, ``rules`` and ``llm`` in the reasoning
layer (imported only when chosen). Each entry is a factory ``factory(ExplainerContext) -> Explainer``.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from zsad.registry import Registry

if TYPE_CHECKING:
    from zsad.backbones.base import Features
    from zsad.explain.regions import Region
    from zsad.results import AnomalyResult


class Explainer:
    """Turns one finished result into a short explanation.

    ``explain(result, regions)`` gets the result (fused score, verdict, threshold, ``result.evidence`` with each
    evidence's own score and map statistics) and its top regions (``result.regions``, also passed explicitly), and
    returns the text. Explainers may also set ``result.reasoning`` (structured output such as an LLM verdict); they
    never change the numeric verdict. ``describe()`` goes into results.json.
    """

    name: str = ""

    def explain(self, result: "AnomalyResult", regions: list["Region"]) -> str:
        raise NotImplementedError

    def explain_many(self, results: list["AnomalyResult"]) -> list[str]:
        """The explanations of a run's results, in their order: the Detector's one call per run, so that an
        explainer waiting on a server can keep several requests in flight. Default: ``explain`` one by one."""
        return [self.explain(result, list(result.regions)) for result in results]

    def observe(self, name: str, features: "Features", index: int) -> None:
        """Called once per image after the forward pass (image ``index`` of ``features``); explainers that phrase
        regions from features keep what they need here, until ``reset``."""

    def reset(self) -> None:
        """Forget what ``observe`` kept: called at the start and the end of every run."""

    def describe(self) -> dict[str, Any]:
        return {"explainer": self.name}


class FactualExplainer(Explainer):
    """What the numbers say, nothing more: verdict, score against threshold, the evidence that fired, regions."""

    name = "factual"

    def explain(self, result: "AnomalyResult", regions: list["Region"]) -> str:
        if result.error:
            return f"not inspected: {result.error}"
        evidence = ", ".join(
            f"{name} {item.score:.4g}" for name, item in result.evidence.items()
        ) if len(result.evidence) > 1 else "+".join(result.evidence) or "no"
        if result.threshold is None:
            head = f"score {result.score:.4g}; no verdict ({result.threshold_rule})"
        else:
            relation = ">=" if result.is_anomalous else "<"
            head = (f"{result.verdict}: score {result.score:.4g} {relation} threshold {result.threshold:.4g} "
                    f"({result.threshold_rule})")
        text = f"{head}; evidence: {evidence}"
        if regions:
            where = "; ".join(region.describe() for region in regions)
            label = "anomalous regions" if result.is_anomalous else "strongest regions"
            text += f"; {label}: {where}"
        elif result.is_anomalous:
            text += "; no region stands out above the pixel threshold (the evidence is spread over the image)"
        return text


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
