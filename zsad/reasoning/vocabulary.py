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
