"""The text-head seam: where the text scorer gets its [normal, anomalous] embeddings.

A text head turns an object name into two unit vectors in CLIP's joint space. The text scorer compares projected
patch tokens and the image embedding with them and knows nothing else about where they came from: hand-written
prompt sets (``PromptSetHead``, WinCLIP's state words x templates), learned prompts (``zsad.learning``),
natural-language definitions and LLM-induced rules (``zsad.reasoning``) all arrive through this seam.

Heads are named by a spec string (``--prompts``): a built-in prompt-set name (``winclip``), a YAML path, or
``PREFIX:VALUE`` for a registered head family (``learned:NAME``). Families register a loader in
``TEXT_HEAD_LOADERS``.
"""
from __future__ import annotations

from typing import Any, Callable

import torch
import torch.nn.functional as F

from zsad.errors import ZsadError
from zsad.scoring.prompts import PromptSet, load_prompt_set


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


# prefix -> loader(backbone, value) -> TextHead; e.g. "learned" -> zsad.learning's loader.
TEXT_HEAD_LOADERS: dict[str, Callable[[Any, str], TextHead]] = {}
# Families whose package registers its loader on import (imported only when a spec names them).
_FAMILY_MODULES = {"learned": "zsad.learning", "rules": "zsad.reasoning"}


def register_text_head(prefix: str):
    def wrap(loader: Callable[[Any, str], TextHead]):
        TEXT_HEAD_LOADERS[prefix] = loader
        return loader

    return wrap


def load_text_head(spec: str | TextHead, backbone) -> TextHead:
    """A head from a spec string (see module docstring), or the head itself."""
    if isinstance(spec, TextHead):
        return spec
    prefix, sep, value = spec.partition(":")
    if sep and prefix in _FAMILY_MODULES and prefix not in TEXT_HEAD_LOADERS:
        import importlib

        importlib.import_module(_FAMILY_MODULES[prefix])
    if sep and prefix in TEXT_HEAD_LOADERS:
        return TEXT_HEAD_LOADERS[prefix](backbone, value)
    if sep and len(prefix) > 1 and not spec.endswith((".yaml", ".yml")):
        raise ZsadError(
            f"unknown text head {spec!r}: no head family {prefix!r}; known: {sorted(TEXT_HEAD_LOADERS) or 'none'}, "
            "or a prompt-set name / YAML path"
        )
    return PromptSetHead(backbone, load_prompt_set(spec))
