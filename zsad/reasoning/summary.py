"""What the LLM did in a run, counted from the results themselves (``result.reasoning``): the end-of-run summary
line of ``zsad detect`` ("explanations: 28 by LLM, 2 by rules after timeout") and the one warning a run gives when
explanations fell back to rules. Counting the records, not the client, keeps the line true for a resumed run and
for any explainer that writes the same fields.

Imports nothing heavy: the CLI calls it after writing the results.
"""
from __future__ import annotations

from collections import Counter
from typing import Any, Iterable

STOPPED, OFFLINE = "LLM stopped", "LLM offline"  # failure causes that are states of the client, not of a request


def _records(results: Iterable[Any]) -> list[dict]:
    return [r.reasoning for r in results if getattr(r, "reasoning", None) and not getattr(r, "error", None)]


def _fallback_label(cause: str) -> str:
    return f"by rules ({cause})" if cause in (STOPPED, OFFLINE) else f"by rules after {cause}"


def explanation_summary(results: Iterable[Any]) -> str:
    """"explanations: 28 by LLM, 2 by rules after timeout" (plus replaced explanations and, under ``--verdict
    llm``, whose verdicts counted), or "" when no LLM explainer ran."""
    records = _records(results)
    if not any(r.get("source") in ("llm", "fallback") for r in records):
        return ""
    by_llm = sum(r.get("source") == "llm" and not r.get("replaced") for r in records)
    replaced = sum(r.get("source") == "llm" and bool(r.get("replaced")) for r in records)
    causes = Counter(r.get("cause") or "failure" for r in records if r.get("source") == "fallback")
    parts = [f"{by_llm} by LLM"]
    if replaced:
        parts.append(f"{replaced} by rules replacing an LLM text that contradicted the verdict")
    parts += [f"{n} {_fallback_label(cause)}" for cause, n in causes.most_common()]
    line = "explanations: " + ", ".join(parts)
    finals = Counter(r.get("final_verdict") for r in records)
    if finals.get("llm"):
        line += f"; verdicts: {finals['llm']} by LLM, {finals.get('numeric', 0)} numeric"
    return line


def fallback_warning(results: Iterable[Any], llm: Any = None, verdict: str = "numeric") -> str | None:
    """The one warning of a run whose LLM explanations fell back to rules: how many, why, and whether the LLM was
    stopped; None when none fell back, or when the LLM was offline from the start (its check already warned)."""
    records = _records(results)
    fell = [r for r in records if r.get("source") == "fallback"]
    causes = Counter(r.get("cause") or "failure" for r in fell)
    if not fell or set(causes) == {OFFLINE}:
        return None
    not_sent = causes.pop(STOPPED, 0)
    breaker = getattr(llm, "breaker", None)
    head = (f"{breaker.reason()}; " if breaker is not None and breaker.trips else "LLM explanations failed; ")
    detail = [f"{n} after {cause}" for cause, n in causes.most_common()]
    if not_sent:
        detail.append(f"{not_sent} not sent")
    text = f"{head}{len(fell)} of {len(records)} images explained by rules instead ({', '.join(detail)})"
    if verdict == "llm":
        text += "; their numeric verdicts are final"
    return text
