"""Names for discovered types: a defect phrase by CLIP text-image similarity, an optional namer hook, or "type k".

Not from AnomalyNCD (its classes stay numbered). With a CLIP backbone, every phrase of the defect vocabulary
(``prompts/reasoning/vocabulary.yaml``, ``defects``) plus the user's phrases becomes "a photo of a {object} with a
{phrase}." (the prompt the reasoning layer's region phraser uses), and each type's *naming vector* (the mean of its
regions' deepest-layer projected features, normalised) is compared with them by cosine. Types get distinct
phrases: the assignment maximises the summed similarity (Hungarian method), so two types never share a name when
there are at least as many phrases as types; with fewer phrases each type takes its best one. The similarities are
kept so a reader can see how close the runner-up was (random-weight test models give arbitrary names).

A namer hook is any callable that takes a type's ``TypeFacts`` and returns (short name, description); the LLM namer
(``naming_llm.LLMNamer``) is one. Its name passes the reasoning layer's phrase hygiene (``clean_phrase``:
printable, one line, no braces or markers, at most 80 characters); a namer that fails or returns nothing usable
leaves the CLIP or numbered name in place, with a warning, and the type records why (``Naming.error``), so a
reader of types.json sees which names came from where. The reasoning layer (and with it pydantic and the LLM
clients) is imported only when a name is made.
"""
from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace

import numpy as np

PROMPT = "a photo of a {object} with a {phrase}."


@dataclass(frozen=True)
class TypeFacts:
    """What a namer knows about one type: its size, where and how large its regions are, example images, and the
    CLIP phrases closest to it (best first, empty without a text space)."""

    index: int
    count: int
    exemplars: list[str]
    mean_score: float | None
    location: str
    mean_area: float
    regions: list[dict] = field(default_factory=list)
    candidates: list[tuple[str, float]] = field(default_factory=list)

    def to_dict(self) -> dict:
        return asdict(self)


Namer = Callable[[TypeFacts], "tuple[str, str] | None"]


def vocabulary_phrases(extra: Sequence[str] = (), vocabulary: str | None = None) -> list[str]:
    """The defect phrases of the vocabulary (built-in or a YAML file) followed by ``extra``, cleaned, unique."""
    from zsad.reasoning.vocabulary import clean_phrase, load_vocabulary

    phrases = [*load_vocabulary(vocabulary)["defects"], *(clean_phrase(p) for p in extra)]
    return [p for p in dict.fromkeys(phrases) if p]


def phrase_similarity(vectors: np.ndarray, backbone, phrases: Sequence[str], object_name: str = "object") -> np.ndarray:
    """(K, P) cosine of each type's naming vector with each phrase's text embedding."""
    import torch
    import torch.nn.functional as F

    from zsad.reasoning.vocabulary import clean_phrase

    obj = clean_phrase(object_name) or "object"
    with torch.inference_mode():
        text = backbone.encode_text([PROMPT.format(object=obj, phrase=p) for p in phrases]).float().cpu()
    text = F.normalize(text, dim=-1).numpy().astype(np.float64)
    v = np.asarray(vectors, dtype=np.float64)
    v = v / np.linalg.norm(v, axis=1, keepdims=True).clip(1e-12)
    return v @ text.T


def distinct_phrases(similarity: np.ndarray, phrases: Sequence[str]) -> list[str]:
    """One phrase per type (row): distinct with the largest summed similarity when there are enough phrases,
    else each row's best."""
    from scipy.optimize import linear_sum_assignment

    k, p = similarity.shape
    if p >= k:
        rows, cols = linear_sum_assignment(similarity, maximize=True)
        chosen = dict(zip(rows, cols))
        return [phrases[chosen[i]] for i in range(k)]
    return [phrases[j] for j in similarity.argmax(1)]


def numbered(k: int) -> list[str]:
    return [f"type {i + 1}" for i in range(k)]


@dataclass(frozen=True)
class Naming:
    """A type's name, its description, who gave it (``vocabulary``, ``numbered``, ``llm``, ``namer``) and, when a
    namer failed and the earlier name was kept, the error."""

    name: str
    description: str = ""
    source: str = "numbered"
    error: str | None = None


def apply_namer(namer: Namer, facts: TypeFacts, fallback: Naming) -> Naming:
    """The namer's (name, description), cleaned; ``fallback`` with the error recorded when it fails or returns
    nothing usable. ``namer.source`` (if it has one) says who named, else ``namer``."""
    from zsad.reasoning.vocabulary import clean_phrase

    source = getattr(namer, "source", "namer")
    try:
        answer = namer(facts)
    except Exception as error:  # a namer is user code or a remote model: one failure must not lose the discovery
        message = f"{type(error).__name__}: {error}"
        warnings.warn(f"type namer failed on {fallback.name} ({message}); kept the name {fallback.name!r}")
        return replace(fallback, error=message)
    if not answer:
        return replace(fallback, error=f"{source} returned no name")
    name, description = (answer, "") if isinstance(answer, str) else (answer[0], answer[1] if len(answer) > 1 else "")
    name = clean_phrase(name)
    if not name:
        warnings.warn(f"type namer returned no usable name for {fallback.name}; kept the name {fallback.name!r}")
        return replace(fallback, error=f"{source} returned no usable name")
    return Naming(name, " ".join(str(description or "").split())[:400], source)


def unique_names(names: Sequence[str]) -> list[str]:
    """``names`` with repeats numbered ("scratch", "scratch 2"): two types never share a name in a table."""
    seen: dict[str, int] = {}
    out = []
    for name in names:
        seen[name] = seen.get(name, 0) + 1
        out.append(name if seen[name] == 1 else f"{name} {seen[name]}")
    return out
