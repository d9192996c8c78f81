"""The demo's "What zsad understood" panel: the definition as parsed (defects, normal variations, the clauses ignored
and why, both readings when an LLM and the rule parser differ), whether the run's backbone can use it (DINOv2
cannot: it has no text space), and the rules the explanations applied.

Why: the definition box gave no feedback. Text the parser could not read, an injection attempt and a DINOv2 run all
looked like a definition that worked. The panel is built from what the run recorded (``Detector.describe()``), so
it shows what ran, not what was typed.
"""
from __future__ import annotations

from typing import Any

MAX_RULES = 8  # anomaly rules listed; the rest are counted


def _quote(text: str, limit: int = 300) -> str:
    text = " ".join(str(text).split())
    text = text if len(text) <= limit else text[: limit - 3] + "..."
    return "\u201c" + text.replace("*", "\\*").replace("_", "\\_") + "\u201d"


def _phrases(values: list[str]) -> str:
    return ", ".join(values) if values else "(none)"


def definition_lines(definition: dict[str, Any], settings: dict[str, Any], notes: list[str]) -> list[str]:
    parser = "an LLM (checked against the rule parser)" if definition.get("parser") == "llm" else "the rule parser"
    defects, normal = definition.get("defects") or [], definition.get("normal_variations") or []
    lines = [f"**Definition**, read by {parser}: {_quote(definition.get('text', ''))}", "",
             f"- **Defects**: {_phrases(defects)}", f"- **Normal variations**: {_phrases(normal)}"]
    for item in definition.get("ignored") or []:
        lines.append(f"- **Ignored**: {_quote(item.get('text', ''), 120)}: {item.get('why', '')}")
    if definition.get("kept_as_defects"):
        lines.append(f"- **Kept as defects** (the LLM had moved them to normal variations; your words name them "
                     f"defects): {_phrases(definition['kept_as_defects'])}")
    other = definition.get("rule_reading")
    if other:
        lines.append(f"- **The rule parser read**: defects: {_phrases(other.get('defects') or [])}; normal "
                     f"variations: {_phrases(other.get('normal_variations') or [])}")
    failed = [n for n in definition.get("notes") or [] if n.startswith(("LLM parse failed", "the LLM found"))]
    lines += [f"- **Note**: {note}" for note in failed]
    if not defects and not normal:
        lines += ["", "**Nothing was understood**: no clause named a defect or a normal variation, so the definition "
                      "changed nothing in this run. Write clauses such as \u201cscratches are defects; colour "
                      "differences are normal\u201d."]
    backbone = settings.get("backbone", {}).get("name", "the backbone")
    if settings.get("ran", {}).get("text_head") is None:
        lines += ["", f"**Can {backbone} use it?** No: it has no text space, so a definition cannot change its scores "
                      "(no text prompts, no concept subspace); only the explanations cite its phrases. Choose a CLIP "
                      "backbone for a definition to act on the scores."]
    else:
        how = "; ".join(notes) or "its phrases extend the text head's prompts"
        lines += ["", f"**Can {backbone} use it?** Yes: {how}."]
    return lines


def rules_lines(rules: dict[str, Any]) -> list[str]:
    normal, anomaly = rules.get("normal") or [], rules.get("anomaly") or []
    source = {"definition": "derived from the definition", "offline": "induced offline"}.get(
        rules.get("source", ""), str(rules.get("source", "")))
    lines = [f"**Rules the explanations apply** ({source}; {len(normal)} of normality, {len(anomaly)} of anomaly)", ""]
    lines += [f"- N{i}: {rule['rule']}" for i, rule in enumerate(normal, start=1)]
    lines += [f"- A{i}: {rule['rule']}" for i, rule in enumerate(anomaly[:MAX_RULES], start=1)]
    if len(anomaly) > MAX_RULES:
        lines.append(f"- ... and {len(anomaly) - MAX_RULES} more rules of anomaly")
    return lines


def understood_text(settings: dict[str, Any]) -> str:
    """The panel's Markdown for a run's settings (``Detector.describe()``); "" before any run."""
    if not settings:
        return ""
    ran = settings.get("ran", {})
    reasoning = ran.get("reasoning") or {}
    lines: list[str] = []
    if reasoning.get("definition"):
        lines += definition_lines(reasoning["definition"], settings, list(reasoning.get("notes") or []))
    else:
        lines += ["No definition in words was given: verdicts come from the scores alone. Write one in \u201cWhat "
                  "counts as a defect\u201d to add defect and normal-variation phrases (with a CLIP backbone they act "
                  "on the scores)."]
    rules = (ran.get("explainer") or {}).get("rules")
    if rules and (rules.get("normal") or rules.get("anomaly")):
        lines += ["", *rules_lines(rules)]
    return "\n".join(lines)
