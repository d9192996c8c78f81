"""The explainer interface and the factual explainer: a result, its per-evidence scores and its top regions, in words.

Defined here, in the torch-free runtime, because the runtime explains its results as zsad does; zsad's registry of
explainers (``zsad.explain.EXPLAINERS``) lists ``factual`` from here and adds the rule- and LLM-based explainers of
its reasoning layer, which stay in the full package.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from zsad_runtime.regions import Region
    from zsad_runtime.results import AnomalyResult


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

    def observe(self, name: str, features: Any, index: int) -> None:
        """Called once per image after the forward pass (image ``index`` of zsad's ``Features``); explainers that
        phrase regions from features keep what they need here, until ``reset``."""

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
