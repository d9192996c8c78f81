"""AnomalyRuler-style rule induction (Yang et al. 2024), from video to images.

1. Describe: each of the k normal reference images is described as lists of objects, materials, colours, shapes and
   surfaces: by a vision-language model when the LLM accepts images (one call per image), otherwise by CLIP
   retrieval of the image embedding over the vocabularies of ``prompts/reasoning/vocabulary.yaml``
   (``describe_with_clip``).
2. Induce: the descriptions are split into ``batches``; for each batch the LLM is asked for rules of normality and of
   anomaly as validated JSON (``RuleBatch``); without an LLM, ``offline_rules`` writes them: a property seen in at
   least half of a batch's images becomes a rule of normality, every defect phrase of the vocabulary (and the
   user's definition, when given) a rule of anomaly, plus "differs from the usual colour/material/shape".
3. Aggregate: a rule is kept when a majority of batches proposed it (voting on its normalised phrase), AnomalyRuler's
   robust aggregation against one batch's hallucinations.
4. Save/load: a readable YAML file (``Rules.save``/``Rules.load``) that users may edit; loading validates it.

Rules feed the text head: normal rules' phrases become normal states "{} with <phrase>", anomaly rules' phrases
anomalous states (``Rules.prompt_set``, ``RulesHead``; ``--prompts rules:FILE`` via the text-head registry), and
the explainers cite them.
"""
from __future__ import annotations

import re
from collections import Counter
from pathlib import Path
from typing import Any, Literal, Sequence

import torch
import torch.nn.functional as F
import yaml
from pydantic import BaseModel, Field, ValidationError, field_validator

from zsad.errors import ZsadError
from zsad.reasoning.definition import Definition, state
from zsad.reasoning.llm import LLM, ReasoningError, quote_data, system_message
from zsad.reasoning.vocabulary import Vocabulary, clean_phrase, load_vocabulary
from zsad.scoring.prompts import PromptSet, load_prompt_set
from zsad.scoring.text_heads import PromptSetHead

FORMAT = "zsad.rules/1"
DESCRIBED = ("objects", "materials", "colours", "shapes", "surfaces")


class ImageDescription(BaseModel):
    """What is seen in one image, as short words per category."""

    objects: list[str] = Field(default_factory=list, max_length=10)
    materials: list[str] = Field(default_factory=list, max_length=10)
    colours: list[str] = Field(default_factory=list, max_length=10)
    shapes: list[str] = Field(default_factory=list, max_length=10)
    surfaces: list[str] = Field(default_factory=list, max_length=10)

    @field_validator(*DESCRIBED)
    @classmethod
    def _clean(cls, values: list[str]) -> list[str]:
        return [clean_phrase(v, 40) for v in values if clean_phrase(v, 40)]


class ProposedRule(BaseModel):
    rule: str = Field(min_length=1, max_length=200, description="the rule as one short sentence")
    phrase: str = Field(min_length=1, max_length=80,
                        description="short noun phrase of the visual property, e.g. 'crack', 'red colour'")


class RuleBatch(BaseModel):
    """What the LLM must return for one batch of descriptions."""

    normal: list[ProposedRule] = Field(max_length=20)
    anomaly: list[ProposedRule] = Field(min_length=1, max_length=20)


class Rule(BaseModel):
    rule: str
    phrase: str
    votes: int = 1


class Rules(BaseModel):
    """Rules of normality and of anomaly for one product; a readable, editable file."""

    format: Literal["zsad.rules/1"] = FORMAT
    object_name: str = "object"
    normal: list[Rule] = Field(default_factory=list)
    anomaly: list[Rule] = Field(default_factory=list)
    source: str = "offline"
    references: int = 0
    batches: int = 0
    min_votes: int = 1

    @field_validator("normal", "anomaly")
    @classmethod
    def _clean(cls, rules: list[Rule]) -> list[Rule]:
        out = []
        for rule in rules:
            text = " ".join(str(rule.rule).split())[:200]
            phrase = clean_phrase(rule.phrase)
            if text and phrase:
                out.append(Rule(rule=text, phrase=phrase, votes=rule.votes))
        return out

    def describe(self) -> dict[str, Any]:
        return self.model_dump()

    def prompt_set(self, base: PromptSet | str = "winclip") -> PromptSet:
        base = load_prompt_set(base) if isinstance(base, str) else base
        anomalous = tuple(dict.fromkeys(state(r.phrase) for r in self.anomaly)) + base.anomalous
        normal = base.normal + tuple(dict.fromkeys(state(r.phrase) for r in self.normal))
        return PromptSet(name=f"{base.name}+rules", normal=normal, anomalous=anomalous, templates=base.templates)

    def save(self, path: str | Path) -> Path:
        path = Path(path)
        header = ("# zsad rules of normality and anomaly (format zsad.rules/1). Edit freely: each rule needs 'rule'\n"
                  "# (a sentence the explainer cites) and 'phrase' (what the text head looks for, '{} with <phrase>').\n")
        path.write_text(header + yaml.safe_dump(self.model_dump(), sort_keys=False, allow_unicode=True, width=110))
        return path

    @classmethod
    def load(cls, path: str | Path) -> "Rules":
        path = Path(path)
        if not path.is_file():
            raise ZsadError(f"rules file {path} not found; create one with induce_rules(...).save(path)")
        try:
            return cls.model_validate(yaml.safe_load(path.read_text()))
        except (yaml.YAMLError, ValidationError, TypeError) as error:
            raise ZsadError(f"rules file {path} is malformed: {str(error)[:400]}") from None


class RulesHead(PromptSetHead):
    def __init__(self, backbone, rules: Rules, base: PromptSet | str = "winclip", prompt_set: PromptSet | None = None):
        super().__init__(backbone, prompt_set or rules.prompt_set(base))
        self.rules = rules

    def describe(self) -> dict[str, Any]:
        return {"text_head": "rules", "prompts": self.prompt_set.name,
                "rules": {"normal": len(self.rules.normal), "anomaly": len(self.rules.anomaly)}}


def rules_text_head(backbone, value: str) -> RulesHead:
    """The ``rules`` text-head family (declared in ``zsad.scoring.registry.TEXT_HEADS``)."""
    return RulesHead(backbone, Rules.load(value))


# ---------------------------------------------------------------------------------------------------------------
# 1. describe

_CLIP_TEMPLATES = {
    "objects": "a photo of a {}.",
    "materials": "a photo of an object made of {}.",
    "colours": "a photo of a {} object.",
    "shapes": "a photo of a {} object.",
    "surfaces": "a photo of an object with a {} surface.",
}


def describe_with_clip(backbone, cls: torch.Tensor, vocabulary: Vocabulary | None = None,
                       top_k: int = 2) -> list[ImageDescription]:
    """Per image (rows of ``cls``, CLIP image embeddings [N, D]), the ``top_k`` words of each category by cosine
    similarity with "a photo of ..." prompts of the vocabulary."""
    if not backbone.has_text:
        raise ZsadError(f"backbone {backbone.name} has no text tower: describing images by CLIP "
                        "retrieval needs a CLIP backbone (or a vision-language LLM)")
    vocabulary = vocabulary or load_vocabulary()
    image = F.normalize(cls.float(), dim=-1)
    picked: dict[str, list[list[str]]] = {}
    with torch.inference_mode():
        for category in DESCRIBED:
            words = list(vocabulary[category])
            text = F.normalize(backbone.encode_text([_CLIP_TEMPLATES[category].format(w) for w in words]).float(), dim=-1)
            best = (image @ text.to(image.device).T).topk(min(top_k, len(words)), dim=-1).indices
            picked[category] = [[words[i] for i in row.tolist()] for row in best]
    return [ImageDescription(**{c: picked[c][n] for c in DESCRIBED}) for n in range(image.shape[0])]


DESCRIBE_TASK = ("Describe the product in this image for a visual inspection system: list short words for the "
                 "objects, materials, colours, shapes and surfaces you see.")


def describe_with_vlm(llm: LLM, images: Sequence[Any]) -> list[ImageDescription]:
    """One LLM call per image (the LLM must accept images)."""
    if not llm.supports_images:
        raise ZsadError("describing images with the LLM needs a model that accepts images (supports_images)")
    messages = [system_message(DESCRIBE_TASK, ImageDescription),
                {"role": "user", "content": "Describe the attached image."}]
    return [llm.complete_json(messages, ImageDescription, images=[image]) for image in images]


# ---------------------------------------------------------------------------------------------------------------
# 2. induce, 3. aggregate

INDUCE_TASK = (
    "You induce inspection rules for one product from descriptions of several normal (defect-free) images. Write "
    "rules of normality (what every normal product looks like) and rules of anomaly (visible defects that would make "
    "a product anomalous, including deviations from the normal rules). Each rule is one short sentence with a short "
    "noun phrase naming the visual property."
)

_PHRASES = {
    "colours": ("a normal {o} is {w} in colour", "{w} colour"),
    "materials": ("a normal {o} is made of {w}", "{w} material"),
    "shapes": ("a normal {o} has a {w} shape", "{w} shape"),
    "surfaces": ("a normal {o} has a {w} surface", "{w} surface"),
    "objects": ("the image shows one {w}", "{w}"),
}


def offline_rules(batch: Sequence[ImageDescription], object_name: str, vocabulary: Vocabulary,
                  definition: Definition | None = None) -> RuleBatch:
    """Rules without an LLM: majority properties of the batch are normal; vocabulary defects, deviations and the
    definition's phrases are anomalous."""
    normal, anomaly = [], []
    for category in ("objects", "materials", "colours", "shapes", "surfaces"):
        counts = Counter(w for d in batch for w in dict.fromkeys(getattr(d, category)))
        for word, count in counts.most_common():
            if count * 2 >= len(batch):
                rule, phrase = _PHRASES[category]
                normal.append(ProposedRule(rule=rule.format(o=object_name, w=word), phrase=phrase.format(w=word)))
    for variation in definition.normal_variations if definition else ():
        normal.append(ProposedRule(rule=f"{variation} is a normal variation", phrase=variation))
    for defect in definition.defects if definition else ():
        anomaly.append(ProposedRule(rule=f"a {object_name} with {defect} is anomalous (user definition)", phrase=defect))
    for defect in vocabulary["defects"]:
        anomaly.append(ProposedRule(rule=f"a {object_name} with a {defect} is anomalous", phrase=defect))
    for what, phrase in (("colour", "unusual colour"), ("material", "different material"), ("shape", "deformed shape")):
        anomaly.append(ProposedRule(rule=f"a {object_name} whose {what} differs from the normal rules is anomalous",
                                    phrase=phrase))
    return RuleBatch(normal=normal[:20], anomaly=anomaly[:20])


def rules_from_definition(definition: Definition, object_name: str = "object",
                          vocabulary: Vocabulary | None = None) -> Rules:
    """Rules when only a definition is given: its phrases first, then the vocabulary's defects and deviations."""
    batch = offline_rules([], clean_phrase(object_name) or "object", vocabulary or load_vocabulary(), definition)
    normal, anomaly, _ = aggregate([batch], 1)
    return Rules(object_name=clean_phrase(object_name) or "object", normal=normal, anomaly=anomaly,
                 source="definition", batches=1, min_votes=1)


def _key(phrase: str) -> str:
    return re.sub(r"[^a-z0-9]+", " ", phrase.lower()).strip()


def aggregate(batches: Sequence[RuleBatch], min_votes: int | None = None) -> tuple[list[Rule], list[Rule], int]:
    """Rules proposed by at least ``min_votes`` batches (default: a majority), keyed on the normalised phrase; the
    first wording wins; sorted by votes."""
    min_votes = min_votes or len(batches) // 2 + 1
    result = []
    for side in ("normal", "anomaly"):
        votes: Counter = Counter()
        first: dict[str, ProposedRule] = {}
        for batch in batches:
            seen = set()
            for proposed in getattr(batch, side):
                key = _key(proposed.phrase)
                if key and key not in seen:
                    seen.add(key)
                    votes[key] += 1
                    first.setdefault(key, proposed)
        kept = [Rule(rule=first[k].rule, phrase=first[k].phrase, votes=v) for k, v in votes.items() if v >= min_votes]
        result.append(sorted(kept, key=lambda r: -r.votes))
    return result[0], result[1], min_votes


def induce_rules(descriptions: Sequence[ImageDescription], llm: LLM | None = None, batches: int = 3,
                 object_name: str = "object", vocabulary: Vocabulary | None = None,
                 definition: Definition | None = None, min_votes: int | None = None) -> Rules:
    """Rules from the descriptions of normal references, in ``batches`` (round-robin) aggregated by vote. An LLM
    failure on one batch falls back to the offline rules for that batch (and is recorded in ``source``)."""
    if not descriptions:
        raise ZsadError("rule induction needs at least one normal reference image")
    vocabulary = vocabulary or load_vocabulary()
    object_name = clean_phrase(object_name) or "object"
    n = max(1, min(batches, len(descriptions)))
    groups = [list(descriptions[i::n]) for i in range(n)]
    proposals, failures = [], 0
    for group in groups:
        if llm is not None and llm.available:
            data = {"object": object_name, "descriptions": [d.model_dump() for d in group]}
            if definition is not None:
                data["user_definition"] = {"defects": definition.defects,
                                           "normal_variations": definition.normal_variations}
            messages = [system_message(INDUCE_TASK, RuleBatch),
                        {"role": "user", "content": "Normal images:\n" + quote_data("descriptions", data)}]
            try:
                proposals.append(llm.complete_json(messages, RuleBatch))
                continue
            except ReasoningError:
                failures += 1
        proposals.append(offline_rules(group, object_name, vocabulary, definition))
    normal, anomaly, votes = aggregate(proposals, min_votes)
    llm_used = llm is not None and llm.available
    source = "offline" if not llm_used else "llm" if not failures else f"llm ({failures}/{n} batches offline)"
    return Rules(object_name=object_name, normal=normal, anomaly=anomaly, source=source,
                 references=len(descriptions), batches=n, min_votes=votes)
