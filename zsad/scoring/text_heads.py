"""The text-head seam: where the text scorer gets its [normal, anomalous] embeddings.

A text head turns an object name into two unit vectors in CLIP's joint space. The text scorer compares projected
patch tokens and the image embedding with them and knows nothing else about where they came from: hand-written
prompt sets (``PromptSetHead``, WinCLIP's state words x templates), learned prompts (``zsad.learning``),
natural-language definitions and LLM-induced rules (``zsad.reasoning``) all arrive through this seam.

Heads are named by a spec string (``--prompts``): a built-in prompt-set name (``winclip``), a YAML path, or
``PREFIX:VALUE`` for a head family declared in ``zsad.scoring.registry.TEXT_HEADS`` (``learned:NAME``), whose
loader is imported only when a spec names it.
"""
from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

from zsad.scoring.prompts import PromptSet, load_prompt_set
from zsad.scoring.registry import TEXT_HEADS


class TextHead:
    """Base class. ``embeddings`` returns [2, D] unit rows (normal, anomalous).

    Embeddings are differentiable when the head has trainable parameters and gradients are enabled (a trainer
    calls it under ``torch.enable_grad()``); the detector calls it under ``torch.inference_mode()``.
    """

    name: str = ""

    def embeddings(self, object_name: str) -> torch.Tensor:
        raise NotImplementedError

    def describe(self) -> dict[str, Any]:
        return {"text_head": self.name}

    def fingerprint(self, object_name: str) -> dict[str, Any]:
        """What makes this head's embeddings for ``object_name``, exactly (for ``--resume``): a head whose
        embeddings can change under the same description (edited prompts, retrained weights) adds their content."""
        return self.describe()


def class_embeddings(encode, sentences: dict[str, list[str]]) -> torch.Tensor:
    """[2, D] normalised (normal, anomalous) embeddings: mean of the normalised sentence embeddings per class
    (the WinCLIP prompt ensemble)."""
    rows = []
    for label in ("normal", "anomalous"):
        embedded = F.normalize(encode(sentences[label]).float(), dim=-1)
        rows.append(F.normalize(embedded.mean(0), dim=-1))
    return torch.stack(rows)


class PromptSetHead(TextHead):
    """Hand-written prompts: every state phrase in every template, averaged per class; cached per object name and
    prompt content, so an edited YAML never reuses stale embeddings."""

    def __init__(self, backbone, prompt_set: PromptSet):
        self.backbone = backbone
        self.prompt_set = prompt_set
        self.name = prompt_set.name
        self._cache: dict[tuple[str, str], torch.Tensor] = {}

    def embeddings(self, object_name: str) -> torch.Tensor:
        key = (self.prompt_set.key(object_name), object_name)
        if key not in self._cache:
            with torch.inference_mode():
                value = class_embeddings(self.backbone.encode_text, self.prompt_set.sentences(object_name))
            self._cache[key] = value.clone()
        return self._cache[key]

    def describe(self) -> dict[str, Any]:
        return {"text_head": "prompts", "prompts": self.prompt_set.name}

    def fingerprint(self, object_name: str) -> dict[str, Any]:
        return {**self.describe(), "sentences_sha1": self.prompt_set.key(object_name)}


def is_family_spec(spec: str) -> bool:
    """Whether a --prompts spec names a head family (``learned:NAME``, ``rules:FILE.yaml``) rather than a prompt set
    or a YAML file; an unknown ``PREFIX:`` that is not a file path is refused with the known families."""
    prefix, sep, _ = spec.partition(":")
    if not sep or len(prefix) < 2:  # no prefix, or a Windows drive letter
        return False
    if prefix in TEXT_HEADS:
        return True
    if not spec.endswith((".yaml", ".yml")):
        TEXT_HEADS.canonical(prefix)  # raises: unknown text head family, with the known ones
    return False


def load_text_head(spec: str | TextHead, backbone) -> TextHead:
    """A head from a spec string (see module docstring), or the head itself."""
    if isinstance(spec, TextHead):
        return spec
    if is_family_spec(spec):
        prefix, _, value = spec.partition(":")
        return TEXT_HEADS.get(prefix)(backbone, value)
    return PromptSetHead(backbone, load_prompt_set(spec))
