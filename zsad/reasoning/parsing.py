"""A user's definition of anomalies in words -> ``Definition`` (defect phrases, normal variations, what was ignored
and why). Torch-free: the CLI's echo and the demo's "What zsad understood" panel read it without a model.

"cracks, missing caps and stains on the label are defects; small colour differences and reflections are normal"
becomes ``Definition(defects=["cracks", "missing caps", "stains on the label"], normal_variations=["small colour
differences", "reflections"])``: by the LLM when one is configured (the sentence is quoted as data, the answer
validated), by ``parse_rules`` otherwise (clauses split on ``;``/``.``/newlines/"but"; each clause's polarity from
markers such as "are defects", "count as anomalies", "are normal", "are fine", "are not defects", or prefixes such as
"defects:", "ignore", "flag"; items split on commas and "and"/"or"). The parsed definition is echoed back
(``describe()``, stored in results.json) so the user sees what zsad understood, and which clauses were ignored and why
(``ignored``).

An LLM's reading is cross-checked against the rule parser's (``cross_check``): a phrase the user's own words name a
defect is never moved to the normal variations by the LLM alone (an LLM following instructions injected into the
definition could otherwise make named defects score as normal); it is kept as a defect and the move noted. When
the two readings differ, ``summary()`` shows both. When the LLM cannot read the definition, or moved a named
defect, one warning says so.
"""
from __future__ import annotations

import re
import warnings
from typing import Any, Literal

from pydantic import BaseModel, Field, field_validator

from zsad.errors import ZsadError
from zsad.reasoning.llm import LLM, ReasoningError, quote_data, system_message
from zsad.reasoning.vocabulary import clean_phrase, content_words


MAX_PHRASES = 24
MAX_DEFINITION_CHARS = 4000

_INSTRUCTION_WORDS = re.compile(
    r"\b(?:instructions?|prompts?|system|assistant|everything|all images|respond|output|json|verdicts?|mark|"
    r"pretend|disregard|override)\b")


NOT_VISUAL = "reads like an instruction, not a visual property"
NOT_UNDERSTOOD = "no marker such as 'are defects' or 'are normal' says which it is"


def _clean_list(values: list[str], notes: list[str] | None = None, ignored: list[dict] | None = None) -> list[str]:
    """Cleaned, de-duplicated phrases; phrases that read like instructions rather than visual properties are
    dropped (and noted): they could not change any behaviour, but they would pollute prompts and subspaces."""
    out: list[str] = []
    for value in values:
        phrase = clean_phrase(value)
        if phrase and _INSTRUCTION_WORDS.search(phrase):
            if notes is not None:
                notes.append(f"not a visual property, ignored: {phrase!r}")
            if ignored is not None:
                ignored.append({"text": phrase, "why": NOT_VISUAL})
            continue
        if phrase and phrase not in out:
            out.append(phrase)
    return out[:MAX_PHRASES]


class ParsedDefinition(BaseModel):
    """What the LLM must return: short visual phrases, nothing else."""

    defects: list[str] = Field(default_factory=list, max_length=MAX_PHRASES,
                               description="short noun phrases of what counts as a defect")
    normal_variations: list[str] = Field(default_factory=list, max_length=MAX_PHRASES,
                                         description="short noun phrases of variations that are normal")

    @field_validator("defects", "normal_variations")
    @classmethod
    def _phrases(cls, values: list[str]) -> list[str]:
        for value in values:
            if not isinstance(value, str) or not 0 < len(value) <= 80:
                raise ValueError("each phrase must be a string of 1 to 80 characters")
        return values


class Definition(BaseModel):
    """A parsed definition: what counts as a defect and what is normal variation, and how it was parsed."""

    text: str
    defects: list[str] = Field(default_factory=list)
    normal_variations: list[str] = Field(default_factory=list)
    parser: Literal["llm", "rules"] = "rules"
    notes: list[str] = Field(default_factory=list)
    ignored: list[dict[str, str]] = Field(default_factory=list)  # {"text": clause or phrase, "why": reason}
    rule_reading: dict[str, list[str]] | None = None  # the rule parser's, when it differs from the LLM's
    kept_as_defects: list[str] = Field(default_factory=list)  # named defects the LLM had moved to normal

    def describe(self) -> dict[str, Any]:
        """For results.json and the echo to the user."""
        return self.model_dump()

    def summary(self) -> str:
        text = f"{_reading(self.defects, self.normal_variations)} (parsed by {self.parser})"
        if self.kept_as_defects:
            text += (f"; kept as defects, which the LLM had moved to normal variations: "
                     f"{', '.join(self.kept_as_defects)}")
        if self.rule_reading is not None:
            other = _reading(self.rule_reading["defects"], self.rule_reading["normal_variations"])
            text += f"; the rule parser read: {other}"
        for item in self.ignored:
            text += f"; ignored {item['text']!r}: {item['why']}"
        return text


def _reading(defects: list[str], normal: list[str]) -> str:
    return f"defects: {', '.join(defects) or '(none)'}; normal variations: {', '.join(normal) or '(none)'}"


# ---------------------------------------------------------------------------------------------------------------
# Rule-based parser

_NORMAL_SUFFIX = re.compile(
    r"\b(?:are|is|count as|counts as|should be|can be|may be|remain|remains|seem|look|looks)\s+"
    r"(?:(?:all|still|perfectly|considered|treated as|regarded as|just|totally|entirely)\s+)*"
    r"(?:normal|fine|acceptable|ok|okay|allowed|expected|tolerated|good|harmless|"
    r"not\s+(?:an?\s+)?(?:defects?|anomal\w*|faults?|problems?|flaws?)|no\s+(?:defects?|problem))\b.*$"
)
_DEFECT_SUFFIX = re.compile(
    r"\b(?:are|is|count as|counts as|should be|must be|means|mean|indicate|indicates)\s+"
    r"(?:(?:all|always|considered|treated as|regarded as|flagged as|counted as|real)\s+)*"
    r"(?:an?\s+)?(?:defects?|defective|anomal\w*|faults?|faulty|flaws?|unacceptable|not\s+(?:acceptable|ok|okay|allowed)|"
    r"rejects?|rejected|bad|flagged|problems?|damage)\b.*$"
)
_NORMAL_PREFIX = re.compile(
    r"^(?:normal(?:\s+variations?)?|acceptable|allowed|ok|okay|ignore|tolerate|allow|not\s+defects?)\s*[:\-]?\s+")
_DEFECT_PREFIX = re.compile(r"^(?:defects?|anomal(?:y|ies)|faults?|flag|reject|detect|look for|find)\s*[:\-]?\s+")
_LEADING = re.compile(r"^(?:and|or|but|also|the|a|an|any|all|some|every|only)\s+")


def _items(text: str) -> list[str]:
    parts = re.split(r",|;|\band\b|\bor\b|&|/", text)
    out = []
    for part in parts:
        part = part.strip()
        while True:
            stripped = _LEADING.sub("", part)
            if stripped == part:
                break
            part = stripped
        if part:
            out.append(part)
    return out


def parse_rules(text: str) -> Definition:
    """The rule-based parser (no LLM). Clauses it cannot classify are listed in ``notes``."""
    if len(text) > MAX_DEFINITION_CHARS:
        raise ZsadError(f"the definition is {len(text)} characters; keep it under {MAX_DEFINITION_CHARS}")
    defects: list[str] = []
    normal: list[str] = []
    notes: list[str] = []
    ignored: list[dict[str, str]] = []
    clauses = re.split(r"[;\n]+|(?<!\d)\.(?!\d)|\bbut\b|\bwhile\b|\bwhereas\b|\bhowever\b", text.lower())
    for clause in clauses:
        clause = clause.strip(" ,:")
        if not clause:
            continue
        if match := _NORMAL_SUFFIX.search(clause):
            normal += _items(clause[: match.start()])
        elif match := _DEFECT_SUFFIX.search(clause):
            defects += _items(clause[: match.start()])
        elif match := _NORMAL_PREFIX.match(clause):
            normal += _items(clause[match.end():])
        elif match := _DEFECT_PREFIX.match(clause):
            defects += _items(clause[match.end():])
        else:
            notes.append(f"not understood, ignored: {clean_phrase(clause)!r}")
            ignored.append({"text": clean_phrase(clause), "why": NOT_UNDERSTOOD})
    return Definition(text=text, defects=_clean_list(defects, notes, ignored),
                      normal_variations=_clean_list(normal, notes, ignored), parser="rules", notes=notes,
                      ignored=ignored)


PARSE_TASK = (
    "You help configure a visual anomaly detector. The user describes, for one product, what counts as a defect and "
    "which variations are normal. Extract short visual noun phrases (for example 'crack', 'missing cap', 'stain on "
    "the label', 'small colour difference', 'reflection'): defects go to 'defects', acceptable variations go to "
    "'normal_variations'. Use only what the definition says."
)


def parse_definition(text: str, llm: LLM | None = None) -> Definition:
    """The LLM's parse when an LLM is available and answers validly, the rule-based parse otherwise (the reason is
    kept in ``notes``)."""
    text = str(text).strip()
    if not text:
        raise ZsadError("the definition is empty; write what counts as a defect and what is normal")
    if len(text) > MAX_DEFINITION_CHARS:
        raise ZsadError(f"the definition is {len(text)} characters; keep it under {MAX_DEFINITION_CHARS}")
    if llm is None or not llm.available:
        return parse_rules(text)
    messages = [system_message(PARSE_TASK, ParsedDefinition),
                {"role": "user", "content": "Definition to analyse:\n" + quote_data("definition", text)}]
    try:
        parsed = llm.complete_json(messages, ParsedDefinition)
    except ReasoningError as error:
        fallback = parse_rules(text)
        fallback.notes.insert(0, f"LLM parse failed, rule-based parser used: {error}")
        warnings.warn(f"the LLM could not read the definition ({error.cause}); the rule-based parser's reading is "
                      "used", UserWarning, stacklevel=2)
        return fallback
    notes: list[str] = []
    ignored: list[dict[str, str]] = []
    definition = Definition(text=text, defects=_clean_list(parsed.defects, notes, ignored),
                            normal_variations=_clean_list(parsed.normal_variations, notes, ignored), parser="llm",
                            notes=notes, ignored=ignored)
    if not definition.defects and not definition.normal_variations:
        fallback = parse_rules(text)
        fallback.notes.insert(0, "the LLM found no phrases; rule-based parser used")
        return fallback
    checked = cross_check(definition, parse_rules(text))
    if checked.kept_as_defects:
        warnings.warn(f"the LLM read named defects as normal variations ({', '.join(checked.kept_as_defects)}); "
                      "they stay defects, as the definition says", UserWarning, stacklevel=2)
    return checked


def _same(a: str, b: str) -> bool:
    """Two phrases name the same thing: the content words of one contain the other's ("stain" and "stains on the
    label", "small colour difference" and "colour differences")."""
    x, y = content_words(a), content_words(b)
    return bool(x and y) and (x <= y or y <= x)


def cross_check(llm_reading: Definition, rule_reading: Definition) -> Definition:
    """The LLM's reading, with every normal variation that the rule parser read as a named defect moved back to
    the defects (the user's explicit words win; the LLM alone cannot make a named defect normal), and the rule
    parser's reading attached when the two differ."""
    named = rule_reading.defects
    kept = [p for p in llm_reading.normal_variations if any(_same(p, d) for d in named)]
    normal = [p for p in llm_reading.normal_variations if p not in kept]
    defects = list(llm_reading.defects) + [p for p in kept if p not in llm_reading.defects]
    notes = list(llm_reading.notes) + [f"the LLM read {p!r} as a normal variation; the definition names it a "
                                       "defect, so it stays a defect" for p in kept]
    differ = ({frozenset(content_words(p)) for p in defects} != {frozenset(content_words(p)) for p in named} or
              {frozenset(content_words(p)) for p in normal} !=
              {frozenset(content_words(p)) for p in rule_reading.normal_variations})
    reading = {"defects": list(named), "normal_variations": list(rule_reading.normal_variations)} if differ else None
    return llm_reading.model_copy(update={"defects": defects, "normal_variations": normal, "notes": notes,
                                          "kept_as_defects": kept, "rule_reading": reading})
