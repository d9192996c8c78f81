"""Deduction and explanation through the explainer seam (AnomalyRuler's deduction stage).

Per image, the evidence (fused score and threshold, each evidence's own score, the top regions with position and
size, and the defect phrases that best match each region) is put against the rules:

- ``RuleExplainer`` (``"rules"``, no LLM): the numeric verdict, the anomaly rule that matches the top region's
  phrases (the most similar phrase first; shared content words) or, when none does, a sentence saying so; the
  normal rule that holds otherwise; a sentence citing rule and region;
- ``LLMExplainer`` (``"llm"``): the same evidence and numbered rules, quoted as data, go to the LLM, which must
  return a verdict, one rule id, one region id and a short explanation (ids are validated against the ones sent,
  so every citation is real). One call per image (cached on the inputs); ``explain_many`` keeps
  ``--llm-concurrency`` of them in flight, results in input order. When the LLM fails the rule explainer's answer
  is used and the failure's cause recorded; at the end of the run one warning says how many images fell back and
  why.

The LLM's text is plain text once cleaned (``plain_text``: no markup, no escape sequences, length-capped). An LLM
explanation that contradicts the verdict that counts (the numeric one, unless ``--verdict llm``), by its verdict
field or by what its text states, is replaced by the rule explainer's factual one; the LLM's verdict and text stay
recorded (``reasoning["replaced"]``).

Both set ``result.reasoning = {"verdict", "rule", "rule_id", "region", "explanation", "numeric_verdict", "source",
...}`` and return the explanation. They never change ``result.is_anomalous``: the numeric verdict stays
authoritative unless the user asks for the LLM's (``apply_verdict`` in ``zsad.reasoning.options``), and both are
recorded.

Region phrases: with a text space, ``RegionPhraser.observe`` (called by the Detector once per image with its
features) keeps, per patch, the cosine of the projected token with "a photo of a <object> with a <defect>" for
every defect phrase (float16, [h, w, P]: a few KB per image); a region's phrases are those whose mean similarity
inside the region exceeds their mean over the image the most. Without a text space (DINOv2) regions have no
phrases and the explanations say where, not what.
"""
from __future__ import annotations

import re
import threading
import warnings
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any, Literal

import torch
import torch.nn.functional as F
from pydantic import BaseModel, Field, create_model

from zsad.errors import ZsadError
from zsad.explain.base import Explainer, ExplainerContext
from zsad.reasoning.llm import LLM, OFFLINE, STOPPED, ReasoningError, quote_data, system_message
from zsad.reasoning.rules import Rule, Rules
from zsad.reasoning.vocabulary import clean_phrase, content_words, load_vocabulary, plain_text

if TYPE_CHECKING:
    from zsad.backbones.base import Features
    from zsad.explain.regions import Region
    from zsad.results import AnomalyResult

DEFAULT_NORMAL = Rule(rule="an image whose anomaly score stays below the threshold is normal", phrase="normal")
DEFAULT_ANOMALY = Rule(rule="an image whose anomaly score reaches the threshold is anomalous", phrase="anomaly")


class RegionPhraser:
    """Defect phrases per region by CLIP retrieval over the region's projected patch tokens."""

    def __init__(self, backbone, phrases: list[str] | None = None, object_name: str = "object", layer: int = -1):
        self.phrases = [clean_phrase(p) for p in (phrases or load_vocabulary()["defects"]) if clean_phrase(p)]
        self.available = bool(backbone.has_text)
        self.layer = layer
        self._maps: dict[str, torch.Tensor] = {}
        self._lock = threading.Lock()
        self.text = None
        if self.available:
            with torch.inference_mode():
                sentences = [f"a photo of a {object_name} with a {p}." for p in self.phrases]
                self.text = F.normalize(backbone.encode_text(sentences).float(), dim=-1).clone()

    def observe(self, name: str, features: "Features", index: int) -> None:
        """Keep the phrase similarities of image ``index`` of ``features`` under ``name``."""
        if not self.available or features.projected is None:
            return
        tokens = F.normalize(features.projected[index, self.layer].float(), dim=-1)  # [h, w, D]
        sims = (tokens @ self.text.to(tokens.device).T).to(torch.float16).cpu()
        with self._lock:
            self._maps[name] = sims

    def region_phrases(self, name: str, region: "Region", original_size: tuple[int, int], top_k: int = 3) -> list[str]:
        with self._lock:
            sims = self._maps.get(name)
        if sims is None:
            return []
        h, w, _ = sims.shape
        width, height = original_size
        x0, y0, x1, y1 = region.box
        gx0, gy0 = int(x0 * w / width), int(y0 * h / height)
        gx1, gy1 = max(gx0 + 1, -(-x1 * w // width)), max(gy0 + 1, -(-y1 * h // height))
        inside = sims[gy0:gy1, gx0:gx1].float().mean(dim=(0, 1))
        lift = inside - sims.float().mean(dim=(0, 1))
        return [self.phrases[i] for i in lift.topk(min(top_k, len(self.phrases))).indices.tolist()]

    def forget(self, name: str) -> None:
        with self._lock:
            self._maps.pop(name, None)

    def reset(self) -> None:
        """Forget every image: a run's phrase maps never outlive it."""
        with self._lock:
            self._maps.clear()


def evidence_record(result: "AnomalyResult", regions: list["Region"], phraser: RegionPhraser | None) -> dict:
    """The per-image evidence, JSON-ready: what the explainers (and the LLM) see."""
    record: dict[str, Any] = {
        "image": clean_phrase(result.name, 120),
        "score": _round(result.score),
        "threshold": _round(result.threshold),
        "numeric_verdict": result.verdict,
        "evidence": {name: {"score": _round(item.score), "map_max": _round(item.map_max)}
                     for name, item in result.evidence.items()},
        "regions": [],
    }
    for i, region in enumerate(regions, start=1):
        x0, y0, x1, y1 = region.box
        phrases = phraser.region_phrases(result.name, region, result.original_size) if (
            phraser is not None and result.original_size) else []
        record["regions"].append({
            "id": f"R{i}", "position": region.position, "box": [x0, y0, x1, y1], "size_px": [x1 - x0, y1 - y0],
            "area_percent": round(100 * region.area_fraction, 2), "peak": _round(region.peak),
            "looks_like": phrases,
        })
    return record


def _round(value):
    return None if value is None else round(float(value), 4)


def _region_text(region: dict | None) -> str:
    if region is None:
        return "no region"
    w, h = region["size_px"]
    return f"region {region['id']} ({region['position']}, {w}x{h} px, {region['area_percent']:.1f}% of the image)"


class RuleExplainer(Explainer):
    """Applies the rules to the evidence without an LLM (also the LLM explainer's fallback)."""

    name = "rules"

    def __init__(self, rules: Rules | None = None, phraser: RegionPhraser | None = None):
        self.rules = rules or Rules()
        self.phraser = phraser

    def rule_ids(self) -> dict[str, Rule]:
        ids = {f"N{i}": rule for i, rule in enumerate(self.rules.normal or [DEFAULT_NORMAL], start=1)}
        ids.update({f"A{i}": rule for i, rule in enumerate(self.rules.anomaly or [DEFAULT_ANOMALY], start=1)})
        return ids

    def observe(self, name: str, features: "Features", index: int) -> None:
        if self.phraser is not None:
            self.phraser.observe(name, features, index)

    def reset(self) -> None:
        if self.phraser is not None:
            self.phraser.reset()

    def matching_rule(self, looks: list[str]) -> str | None:
        """The id of the anomaly rule that matches a region's phrases: for the most similar phrase first, the rule
        sharing most content words with it (then the most voted, then the first); None when no rule shares a
        word with any phrase. Without rules of its own the explainer's one anomaly rule is the threshold's."""
        ids = self.rule_ids()
        if not self.rules.anomaly:
            return "A1"
        anomaly = [k for k in ids if k.startswith("A")]
        for phrase in looks:
            words = content_words(phrase)
            scored = [(len(words & content_words(ids[k].phrase)), ids[k].votes, -i, k) for i, k in enumerate(anomaly)]
            best = max(scored)
            if best[0] > 0:
                return best[3]
        return None

    def deduce(self, result: "AnomalyResult", record: dict) -> dict[str, Any]:
        ids = self.rule_ids()
        region = record["regions"][0] if record["regions"] else None
        fired = ", ".join(f"{n} {v['score']:.3g}" for n, v in record["evidence"].items()) or "none"
        if result.is_anomalous:
            looks = region["looks_like"] if region else []
            rule_id = self.matching_rule(looks)
            what = f", which looks most like {looks[0]!r}" if looks else ""
            numbers = f"score {record['score']:.3g} >= threshold {record['threshold']:.3g}; evidence: {fired}"
            verdict = "anomalous"
            if rule_id is not None:
                text = f"anomalous: breaks rule {rule_id} ({ids[rule_id].rule!r}) at {_region_text(region)}{what}; "
            elif looks:
                text = (f"anomalous: no rule of anomaly matches {_region_text(region)}{what} (nor "
                        f"{', '.join(repr(p) for p in looks[1:]) or 'any other phrase'}); ")
            else:
                text = (f"anomalous at {_region_text(region)}; no rule of anomaly can be matched: the region has no "
                        "phrases (the backbone has no text space); ")
            text += numbers
        else:
            rule_id = "N1"
            if result.is_anomalous is None:
                verdict, head = "undecided", f"undecided (no threshold): score {record['score']:.3g}"
            else:
                verdict, head = "normal", f"normal: score {record['score']:.3g} < threshold {record['threshold']:.3g}"
            where = (f"; strongest {_region_text(region)} stays within the rules" if region else
                     "; no region stands out")
            text = f"{head}; consistent with rule {rule_id} ({ids[rule_id].rule!r}){where}; evidence: {fired}"
        return {"verdict": verdict, "rule_id": rule_id or "none", "rule": ids[rule_id].rule if rule_id else None,
                "region": region["id"] if region else "none", "explanation": text}

    def explain(self, result: "AnomalyResult", regions: list["Region"]) -> str:
        if result.error:
            return f"not inspected: {result.error}"
        record = evidence_record(result, regions, self.phraser)
        answer = self.deduce(result, record)
        result.reasoning = {**answer, "numeric_verdict": result.verdict, "source": "rules",
                            "region_detail": record["regions"][0] if record["regions"] else None}
        return answer["explanation"]

    def describe(self) -> dict[str, Any]:
        return {"explainer": self.name, "rules": self.rules.describe()}


DEDUCE_TASK = (
    "You are the reasoning step of a visual anomaly detector. Apply the numbered rules to the evidence of one image "
    "(anomaly scores against a threshold, anomalous regions with position, size and the defect phrases they look "
    "like). Return your verdict, the id of the one rule that decides it, the id of the region it concerns ('none' if "
    "no region), and a short explanation (at most three sentences) that cites the rule and the region."
)


def deduction_schema(rule_ids: list[str], region_ids: list[str]) -> type[BaseModel]:
    """The answer schema of one image: ids restricted to those sent, so every citation exists."""
    return create_model(
        "Deduction",
        verdict=(Literal["anomalous", "normal"], ...),
        rule=(Literal[tuple(rule_ids)], Field(description="id of the deciding rule")),
        region=(Literal[tuple(region_ids + ["none"])], Field(description="id of the region, or none")),
        explanation=(str, Field(min_length=1, max_length=600)),
    )


_STATED = re.compile(
    r"\b(?:image|product|object|item|part|sample|it|this|verdict)\s*(?:is|:|looks|appears|seems|was|=)\s+"
    r"(?:(not|never|clearly|likely|probably|definitely|entirely|completely|fully|in fact)\s+)?"
    r"(normal|anomalous|defective|defect-free|flawless|fine|acceptable|faulty|damaged)\b")
_NORMAL_WORDS = {"normal", "defect-free", "flawless", "fine", "acceptable"}


def stated_verdict(text: str) -> str | None:
    """The verdict a text states outright ("the image is normal", "verdict: anomalous", "it is not defective"),
    or None when it states none. Conservative: only a verdict word right after such a subject counts."""
    found = None
    for negation, word in _STATED.findall(text.lower()):
        verdict = "normal" if word in _NORMAL_WORDS else "anomalous"
        if negation in ("not", "never"):
            verdict = "anomalous" if verdict == "normal" else "normal"
        if found not in (None, verdict):
            return None  # it says both: no clear statement
        found = verdict
    return found


class LLMExplainer(RuleExplainer):
    """The LLM applies the rules to the evidence; the rule explainer's answer when it fails.

    ``verdict``: whose verdict is final (``"numeric"`` or ``"llm"``); an explanation contradicting it is replaced."""

    name = "llm"

    def __init__(self, llm: LLM, rules: Rules | None = None, phraser: RegionPhraser | None = None,
                 send_images: bool = False, verdict: str = "numeric"):
        super().__init__(rules, phraser)
        self.llm = llm
        self.send_images = send_images
        self.verdict = verdict

    def messages(self, record: dict) -> list[dict]:
        rules = {rule_id: rule.rule for rule_id, rule in self.rule_ids().items()}
        schema = deduction_schema(list(rules), [r["id"] for r in record["regions"]])
        return [system_message(DEDUCE_TASK, schema),
                {"role": "user", "content": "Rules:\n" + quote_data("rules", rules) +
                 "\n\nEvidence:\n" + quote_data("evidence", record)}]

    def explain_many(self, results: list["AnomalyResult"]) -> list[str]:
        """``--llm-concurrency`` images in flight (each waits on its own request), explanations in input order;
        then one warning when some fell back to rules."""
        from tqdm.auto import tqdm

        with ThreadPoolExecutor(max_workers=self.llm.config.concurrency, thread_name_prefix="zsad-explain") as pool:
            texts = list(tqdm(pool.map(lambda r: self.explain(r, list(r.regions)), results), total=len(results),
                              desc="explaining", unit="img", disable=len(results) < 100))
        from zsad.reasoning.summary import fallback_warning

        warning = fallback_warning(results, self.llm, self.verdict)
        if warning:
            warnings.warn(warning, UserWarning, stacklevel=2)
        return texts

    def explain(self, result: "AnomalyResult", regions: list["Region"]) -> str:
        if result.error:
            return f"not inspected: {result.error}"
        record = evidence_record(result, regions, self.phraser)
        ids = self.rule_ids()
        schema = deduction_schema(list(ids), [r["id"] for r in record["regions"]])
        images = [result.path] if self.send_images and result.path and self.llm.supports_images else None
        factual = self.deduce(result, record)
        try:
            answer = self.llm.complete_json(self.messages(record), schema,
                                            images=[_load(p) for p in images] if images else None)
        except ReasoningError as error:
            result.reasoning = {**factual, "numeric_verdict": result.verdict, "source": "fallback",
                                "cause": error.cause, "error": str(error)}
            why = error.cause if error.cause in (OFFLINE, STOPPED) else f"LLM unavailable, {error.cause}"
            return f"{factual['explanation']} ({why}: rule-based explanation)"
        region = next((r for r in record["regions"] if r["id"] == answer.region), None)
        text = plain_text(answer.explanation)
        result.reasoning = {
            "verdict": answer.verdict, "rule_id": answer.rule, "rule": ids[answer.rule].rule,
            "region": answer.region, "explanation": text, "numeric_verdict": result.verdict,
            "source": "llm", "region_detail": region,
        }
        final = answer.verdict if self.verdict == "llm" else result.verdict
        stated = stated_verdict(text)
        if answer.verdict != final or stated not in (None, final):
            reason = (f"the LLM's verdict is {answer.verdict}" if answer.verdict != final else
                      f"its text calls the image {stated}") + f", the final verdict is {final}"
            replacement = factual["explanation"] if final == result.verdict else (
                f"{final} by the LLM's verdict, citing rule {answer.rule} ({ids[answer.rule].rule!r}) and "
                f"{_region_text(region)}; the numeric verdict is {result.verdict}: score {record['score']:.3g}, "
                f"threshold {record['threshold']:.3g}")
            result.reasoning.update(explanation=replacement, llm_explanation=text, replaced=reason)
            return f"{replacement} [the LLM's explanation was replaced: {reason}]"
        if answer.verdict == result.verdict:
            return f"{text} [LLM verdict {answer.verdict} agrees with the numeric verdict {result.verdict}]"
        return f"{text} [LLM verdict {answer.verdict} is final; the numeric verdict is {result.verdict}]"

    def describe(self) -> dict[str, Any]:
        return {"explainer": self.name, "llm": self.llm.describe(), "rules": self.rules.describe()}


def _load(path: str):
    from zsad.data.images import load_image

    return load_image(path)


def _phraser(ctx: ExplainerContext) -> RegionPhraser | None:
    """Region phrases from the definition's defects and the vocabulary, when the backbone has a text space."""
    if ctx.backbone is None or not ctx.backbone.has_text:
        return None
    phrases = list(ctx.definition.defects) if ctx.definition is not None else []
    phrases += [p for p in load_vocabulary()["defects"] if p not in phrases]
    return RegionPhraser(ctx.backbone, phrases, ctx.object_name)


def _rules(ctx: ExplainerContext) -> Rules | None:
    if ctx.rules is None and ctx.definition is not None:
        from zsad.reasoning.rules import rules_from_definition

        return rules_from_definition(ctx.definition, ctx.object_name)
    return ctx.rules


def rules_explainer(ctx: ExplainerContext) -> RuleExplainer:
    """The ``rules`` explainer (``zsad.explain.EXPLAINERS``): the configured rules, or rules derived from a
    definition, or the default rules of the numeric verdict."""
    return RuleExplainer(_rules(ctx), _phraser(ctx))


def llm_explainer(ctx: ExplainerContext) -> LLMExplainer:
    """The ``llm`` explainer. With an LLM that is offline (``--llm-optional`` after a failed check) every image
    gets the rule explainer's answer, recorded as a fallback with its cause."""
    if ctx.llm is None:
        raise ZsadError("--explain llm needs an LLM: give --llm-base-url and --llm-model (or --llm-backend)")
    return LLMExplainer(ctx.llm, _rules(ctx), _phraser(ctx), send_images=ctx.send_images, verdict=ctx.verdict)
