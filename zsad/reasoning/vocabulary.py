"""The reasoning vocabularies (``prompts/reasoning/vocabulary.yaml``) and phrase hygiene shared by the layer."""
from __future__ import annotations

import re
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import yaml

from zsad.errors import ZsadError

CATEGORIES = ("objects", "materials", "colours", "shapes", "surfaces", "defects")
MAX_PHRASE = 80


def clean_phrase(text: str, max_length: int = MAX_PHRASE) -> str:
    """A phrase safe to put into prompts and files: printable, one line, no braces (prompt states are format
    strings), no markers, collapsed spaces, lower case, at most ``max_length`` characters (cut at a word)."""
    text = "".join(ch if ch.isprintable() else " " for ch in str(text))
    text = re.sub(r"[{}<>`\\]", " ", text)
    text = re.sub(r"\s+", " ", text).strip(" .,;:!?\"'").lower()
    if len(text) > max_length:
        text = text[:max_length].rsplit(" ", 1)[0]
    return text


_STOPWORDS = frozenset("the and any all with without for from into onto that this are is its not but than too very "
                       "some".split())


def _singular(word: str) -> str:
    if word.endswith("ies") and len(word) > 4:
        return word[:-3] + "y"
    if word.endswith(("ches", "shes", "xes", "sses", "zes")):
        return word[:-2]
    if word.endswith("s") and not word.endswith(("ss", "us", "is")):
        return word[:-1]
    return word


def content_words(text: str) -> set[str]:
    """The words that carry a phrase's meaning, singular, British spelling ("Scratches on the label" -> {"scratch",
    "label"}): how two phrases are matched (a region's look against a rule, the LLM's reading of a definition
    against the rule parser's)."""
    words = re.findall(r"[a-z]+", str(text).lower().replace("color", "colour"))
    return {_singular(w) for w in words if len(w) > 2 and w not in _STOPWORDS}


MAX_EXPLANATION = 400
# Terminal escape sequences, real (ESC ...) or written out ("\x1b[31m", "\u001b[0m", "\033[1m"), and the "[31m"
# remnants an ESC-stripping pass leaves behind.
_ESCAPES = re.compile(
    r"(?:\x1b|\\x1b|\\u001b|\\033|\\e)(?:\[[0-?]*[ -/]*[@-~]|\][^\x07\x1b]*(?:\x07|\x1b\\)?|[@-Z\\-_])?"
    r"|\[\d{1,3}(?:;\d{1,3})*m")
_TAGS = re.compile(r"</?[a-zA-Z][^<>]{0,200}>")
_LINKS = re.compile(r"!?\[([^\]]{0,200})\]\([^)]{0,500}\)")
_EMPHASIS = re.compile(r"(?<![\w*_~`])(?:\*{1,3}|_{1,3}|~~)(?=\S)|(?<=\S)(?:\*{1,3}|_{1,3}|~~)(?![\w*_~`])")


def plain_text(text: str, max_length: int = MAX_EXPLANATION) -> str:
    """Text from an LLM as one plain line: escape sequences, HTML tags and Markdown (emphasis, code marks, links,
    headings, list and quote marks) removed, non-printable characters dropped, at most ``max_length`` characters
    (cut at a word, ending in "..."). Explanations are shown in terminals, CSV cells and web pages alike."""
    text = _ESCAPES.sub(" ", str(text))
    text = _LINKS.sub(r"\1", _TAGS.sub(" ", text))
    text = re.sub(r"(?m)^\s*(?:#{1,6}|>+|[-*+]|\d+[.)])\s+", " ", text)
    text = _EMPHASIS.sub("", text.replace("`", ""))
    text = "".join(ch if ch.isprintable() else " " for ch in text)
    text = " ".join(text.split())
    if len(text) > max_length:
        text = text[: max_length - 3].rsplit(" ", 1)[0].rstrip(" ,;:") + "..."
    return text


@dataclass(frozen=True)
class ConceptFamily:
    name: str
    keywords: tuple[str, ...]
    values: tuple[str, ...]

    def matches(self, phrase: str) -> bool:
        words = set(re.findall(r"[a-z]+", phrase.lower()))
        return any(keyword in words or any(w.startswith(keyword) for w in words) for keyword in self.keywords)


@dataclass(frozen=True)
class Vocabulary:
    words: dict[str, tuple[str, ...]]
    concepts: tuple[ConceptFamily, ...]

    def __getitem__(self, category: str) -> tuple[str, ...]:
        return self.words[category]

    def family_of(self, phrase: str) -> ConceptFamily | None:
        for family in self.concepts:
            if family.matches(phrase):
                return family
        return None


def load_vocabulary(path: str | Path | None = None) -> Vocabulary:
    """The built-in vocabulary, or a YAML file of the same shape."""
    if path is None:
        text = (resources.files("zsad.prompts") / "reasoning" / "vocabulary.yaml").read_text()
        where = "built-in vocabulary"
    else:
        path = Path(path)
        if not path.is_file():
            raise ZsadError(f"vocabulary file {path} not found")
        text, where = path.read_text(), str(path)
    try:
        data = yaml.safe_load(text)
        words = {category: tuple(clean_phrase(w) for w in data[category]) for category in CATEGORIES}
        concepts = tuple(
            ConceptFamily(name, tuple(clean_phrase(k) for k in spec["keywords"]),
                          tuple(clean_phrase(v) for v in spec["values"]))
            for name, spec in (data.get("concepts") or {}).items()
        )
    except (yaml.YAMLError, KeyError, TypeError, AttributeError) as error:
        raise ZsadError(f"{where} is malformed ({error}); it needs lists {', '.join(CATEGORIES)} and concepts") from None
    empty = [category for category, values in words.items() if not values]
    if empty:
        raise ZsadError(f"{where}: lists {empty} are empty")
    return Vocabulary(words, concepts)
