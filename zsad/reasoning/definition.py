"""Anomalies defined in words: a user's sentence -> ``Definition`` -> prompts for the text head and a LAFT concept
subspace for CLIP-space features.

Parsing lives in ``zsad.reasoning.parsing`` (``parse_definition``, ``Definition``; re-exported here).

(a) Prompts (FiLo-style, for the text head): every defect phrase becomes an anomalous state "{} with <phrase>", every
normal variation a normal state "{} with <phrase>" beside the base set's normal states, in the base set's templates
(``definition_prompt_set``, ``DefinitionHead``).

(b) Concept subspace (LAFT, Yoon et al. 2025). Each phrase is turned into a set of text prompts whose differences
span the concept: if it names a concept family of the vocabulary ("colour", "reflections", "size", ...), the
prompts are "a photo of a <value> <object>" for the family's values; otherwise "<template> <object> with <phrase>"
against "<template> <object>" over the templates. The text embeddings' pairwise differences are decomposed by SVD
(PCA of differences) and the leading directions (``energy`` of the spectrum, at most ``max_components`` per phrase)
span the concept's subspace in CLIP's joint space. ``ConceptTransform`` then acts on CLIP-space image features:

- ignore (normal variations): ``x <- x - P_n x`` removes the normal-variation subspace;
- attend (defects): ``x <- P_d x`` (LAFT's projection onto the defect subspace, orthogonalised against the ignored
  one), or, with ``attend_gain=g``, the softer ``x <- x + (g - 1) P_d x`` that keeps every other direction.

It is applied to ``Features.projected`` and ``Features.cls`` (CLIP's joint space, where text directions mean
something) and the result's ``patch_tokens`` are the transformed projected tokens, so the reference and mutual
scorers, which read ``patch_tokens``, compare images in the transformed joint space. The text scorer keeps the
untransformed features (its prompts already carry the definition).

What a definition can and cannot do with DINOv2. DINOv2 has no text tower: its features are aligned with no text
embedding, so no text direction means anything in them and no concept subspace can be built for them or applied to
them. With a DINOv2-only run a definition changes no score: there is no text scorer to take its prompts and no
subspace. It still parses, is echoed into results.json and gives the explainers its defect phrases to cite;
``definition_transform`` returns None and ``definition_notes`` says so. With a CLIP backbone (alone, or beside
DINOv2 for reference/mutual) the prompts drive the CLIP text head and the subspace acts on CLIP's features only.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import torch
import torch.nn.functional as F

from zsad.backbones.base import Features
from zsad.errors import ZsadError
from zsad.reasoning.parsing import (  # noqa: F401  (re-exported: the layer's names for a parsed definition)
    MAX_DEFINITION_CHARS, MAX_PHRASES, Definition, ParsedDefinition, cross_check, parse_definition, parse_rules,
)
from zsad.reasoning.vocabulary import Vocabulary, clean_phrase, load_vocabulary
from zsad.scoring.prompts import PromptSet, load_prompt_set
from zsad.scoring.text_heads import PromptSetHead


# ---------------------------------------------------------------------------------------------------------------
# (a) prompts for the text head

def state(phrase: str) -> str:
    """A prompt-set state for a phrase (braces were removed by ``clean_phrase``, so only the object slot remains)."""
    return "{} with " + clean_phrase(phrase)


def definition_prompt_set(definition: Definition, base: PromptSet | str = "winclip",
                          keep_generic_defects: bool = True) -> PromptSet:
    """Normal states: the base set's plus "{} with <normal variation>"; anomalous: "{} with <defect>" (plus the base
    set's generic ones when ``keep_generic_defects``, so defects the user did not name still register)."""
    base = load_prompt_set(base) if isinstance(base, str) else base
    defects = tuple(state(p) for p in definition.defects)
    anomalous = defects + (base.anomalous if keep_generic_defects or not defects else ())
    normal = base.normal + tuple(state(p) for p in definition.normal_variations)
    return PromptSet(name=f"{base.name}+definition", normal=normal, anomalous=anomalous, templates=base.templates)


class DefinitionHead(PromptSetHead):
    """The text head of a definition (a prompt-set head whose ``describe`` carries the parsed definition)."""

    def __init__(self, backbone, definition: Definition, base: PromptSet | str = "winclip",
                 keep_generic_defects: bool = True, prompt_set: PromptSet | None = None):
        """``prompt_set`` overrides the derived set (e.g. definition + rules prompts combined)."""
        super().__init__(backbone, prompt_set or definition_prompt_set(definition, base, keep_generic_defects))
        self.definition = definition

    def describe(self) -> dict[str, Any]:
        return {"text_head": "definition", "prompts": self.prompt_set.name, "definition": self.definition.describe()}


# ---------------------------------------------------------------------------------------------------------------
# (b) LAFT concept subspace

CONCEPT_TEMPLATES = ("a photo of a {}.", "a close-up photo of the {}.", "a cropped photo of a {}.",
                     "a bright photo of the {}.", "a dark photo of a {}.")


def concept_prompts(phrase: str, object_name: str, vocabulary: Vocabulary,
                    templates: tuple[str, ...] = CONCEPT_TEMPLATES) -> list[tuple[str, str]]:
    """Pairs of prompts whose embedding differences span the concept of ``phrase``.

    A phrase naming a concept family gives all pairs of "a photo of a <value> <object>" over the family's values;
    any other phrase gives, per template, ("<object> with <phrase>", "<object>")."""
    family = vocabulary.family_of(phrase)
    if family is not None:
        sentences = [f"a photo of a {value} {object_name}." for value in family.values]
        return [(a, b) for i, a in enumerate(sentences) for b in sentences[i + 1:]]
    return [(t.format(f"{object_name} with {phrase}"), t.format(object_name)) for t in templates]


def difference_basis(differences: torch.Tensor, energy: float, max_components: int) -> torch.Tensor:
    """[D, k] orthonormal leading right-singular vectors of the difference matrix [M, D] (PCA of differences,
    uncentred: a concept's direction is the mean difference itself), enough to hold ``energy`` of the spectrum."""
    _, s, vh = torch.linalg.svd(differences.double(), full_matrices=False)
    power = s**2
    if float(power.sum()) <= 0:
        return differences.new_zeros(differences.shape[1], 0)
    share = torch.cumsum(power, 0) / power.sum()
    k = min(int((share < energy).sum()) + 1, max_components, int((s > s[0] * 1e-6).sum()))
    return vh[:k].T.to(differences.dtype)


def orthonormal_union(bases: list[torch.Tensor], tol: float = 1e-6) -> torch.Tensor:
    """An orthonormal basis of the span of several bases (columns)."""
    stacked = torch.cat([b for b in bases if b.shape[1]], dim=1) if any(b.shape[1] for b in bases) else None
    if stacked is None:
        return bases[0].new_zeros(bases[0].shape[0], 0)
    u, s, _ = torch.linalg.svd(stacked.double(), full_matrices=False)
    return u[:, s > s[0] * tol].to(stacked.dtype) if s.numel() else stacked


@dataclass
class ConceptSubspace:
    """Orthonormal columns [D, k] spanning the concepts of some phrases in CLIP's joint space."""

    basis: torch.Tensor
    phrases: tuple[str, ...]

    @property
    def rank(self) -> int:
        return int(self.basis.shape[1])

    def project(self, x: torch.Tensor) -> torch.Tensor:
        basis = self.basis.to(device=x.device, dtype=torch.float32)
        return ((x.float() @ basis) @ basis.T).to(x.dtype)


def concept_subspace(encode_text: Callable[[list[str]], torch.Tensor], phrases: list[str], object_name: str = "object",
                     vocabulary: Vocabulary | None = None, energy: float = 0.9,
                     max_components: int = 8) -> ConceptSubspace:
    """The LAFT subspace of ``phrases``: per phrase, the leading directions of its prompt-pair differences; the
    union over phrases, orthonormalised."""
    vocabulary = vocabulary or load_vocabulary()
    bases = []
    with torch.inference_mode():
        for phrase in phrases:
            pairs = concept_prompts(phrase, object_name, vocabulary)
            left = F.normalize(encode_text([a for a, _ in pairs]).float(), dim=-1)
            right = F.normalize(encode_text([b for _, b in pairs]).float(), dim=-1)
            bases.append(difference_basis(left - right, energy, max_components))
    if not bases:
        raise ZsadError("a concept subspace needs at least one phrase")
    return ConceptSubspace(basis=orthonormal_union(bases).clone(), phrases=tuple(phrases))


class ConceptTransform:
    """LAFT's feature transformation of CLIP-space features: ignore normal variations, attend to defects.

    ``attend_gain=None`` is LAFT's projection onto the defect subspace; a number g keeps the other directions and
    scales the defect components by g. The transform is linear and the same for every image, so reference images
    and test images must both go through it (the Detector applies it to every forward pass).
    """

    def __init__(self, ignore: ConceptSubspace | None = None, attend: ConceptSubspace | None = None,
                 attend_gain: float | None = None):
        if ignore is None and attend is None:
            raise ZsadError("a concept transform needs something to ignore or to attend to")
        if attend is not None and ignore is not None and attend.rank and ignore.rank:
            # attend only to what is not ignored: the defect directions orthogonalised against the ignored ones
            residual = attend.basis - ignore.project(attend.basis.T).T
            attend = ConceptSubspace(orthonormal_union([residual]), attend.phrases)
        self.ignore, self.attend, self.attend_gain = ignore, attend, attend_gain

    def apply(self, x: torch.Tensor) -> torch.Tensor:
        """[..., D] -> [..., D]."""
        if self.ignore is not None and self.ignore.rank:
            x = x - self.ignore.project(x)
        if self.attend is not None and self.attend.rank:
            part = self.attend.project(x)
            x = part if self.attend_gain is None else x + (self.attend_gain - 1.0) * part
        return x

    def __call__(self, features: Features) -> Features:
        if features.projected is None:
            raise ZsadError("a definition's concept subspace lives in CLIP's text space; these features have no "
                            "projected tokens (a DINOv2 backbone?), so it cannot be applied")
        projected = self.apply(features.projected)
        return Features(patch_tokens=projected, cls=self.apply(features.cls), projected=projected,
                        layers=features.layers)

    def describe(self) -> dict[str, Any]:
        return {
            "ignore": list(self.ignore.phrases) if self.ignore else [],
            "ignore_rank": self.ignore.rank if self.ignore else 0,
            "attend": list(self.attend.phrases) if self.attend else [],
            "attend_rank": self.attend.rank if self.attend else 0,
            "attend_mode": "project" if self.attend_gain is None else f"gain {self.attend_gain:g}",
        }


def definition_transform(backbone, definition: Definition, object_name: str = "object",
                         vocabulary: Vocabulary | None = None, attend: bool = True,
                         attend_gain: float | None = None, energy: float = 0.9,
                         max_components: int = 8) -> ConceptTransform | None:
    """The concept transform of a definition for a CLIP backbone; None for a backbone without text (DINOv2, see the
    module docstring) or a definition with no phrases. ``attend=False`` only ignores normal variations."""
    if not backbone.has_text:
        return None
    kwargs = dict(object_name=object_name, vocabulary=vocabulary, energy=energy, max_components=max_components)
    ignore = (concept_subspace(backbone.encode_text, definition.normal_variations, **kwargs)
              if definition.normal_variations else None)
    focus = (concept_subspace(backbone.encode_text, definition.defects, **kwargs)
             if attend and definition.defects else None)
    if ignore is None and focus is None:
        return None
    return ConceptTransform(ignore=ignore, attend=focus, attend_gain=attend_gain)


def definition_notes(backbone, definition: Definition) -> list[str]:
    """What the definition does with this backbone, for results.json and the echo."""
    if backbone.has_text:
        return [f"prompts: {len(definition.defects)} defect and {len(definition.normal_variations)} normal-variation "
                "phrases added to the text head; concept subspace applied to CLIP features before reference and "
                "mutual scoring"]
    return [f"backbone {backbone.name} has no text space: the definition cannot change its scores "
            "(no text prompts, no concept subspace); it is recorded and its phrases are used by the explainers only"]
