"""Prompt sets as data: state words x templates, loaded from the YAML files in ``prompts/`` (package zsad.prompts)."""
from __future__ import annotations

import hashlib
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import yaml

from zsad.errors import ZsadError


@dataclass(frozen=True)
class PromptSet:
    name: str
    normal: tuple[str, ...]
    anomalous: tuple[str, ...]
    templates: tuple[str, ...]

    def sentences(self, object_name: str = "object") -> dict[str, list[str]]:
        """Every state phrase (object substituted) inside every template, per class."""
        return {
            label: [template.format(state.format(object_name)) for state in states for template in self.templates]
            for label, states in (("normal", self.normal), ("anomalous", self.anomalous))
        }

    def key(self, object_name: str) -> str:
        """Content hash, so an edited YAML never reuses embeddings cached for the old text."""
        text = repr(sorted(self.sentences(object_name).items()))
        return hashlib.sha1(text.encode()).hexdigest()[:16]


def builtin_prompt_sets() -> list[str]:
    return sorted(p.name[: -len(".yaml")] for p in resources.files("zsad.prompts").iterdir() if p.name.endswith(".yaml"))


def load_prompt_set(name_or_path: str = "winclip") -> PromptSet:
    """A built-in prompt set by name (``winclip``) or a YAML file of the same shape."""
    path = Path(name_or_path)
    if path.suffix in (".yaml", ".yml"):
        if not path.is_file():
            raise ZsadError(f"prompt file {path} not found; pass an existing YAML file or one of {builtin_prompt_sets()}")
        text = path.read_text()
    else:
        resource = resources.files("zsad.prompts") / f"{name_or_path}.yaml"
        if not resource.is_file():
            raise ZsadError(f"unknown prompt set '{name_or_path}'; built-in sets: {builtin_prompt_sets()}, or a YAML path")
        text = resource.read_text()
    try:
        data = yaml.safe_load(text)
        states = data["states"]
        prompt_set = PromptSet(
            name=str(data.get("name", path.stem)),
            normal=tuple(states["normal"]),
            anomalous=tuple(states["anomalous"]),
            templates=tuple(data.get("templates") or ["{}"]),
        )
    except (yaml.YAMLError, KeyError, TypeError) as error:
        raise ZsadError(
            f"prompt set {name_or_path} is malformed ({error}); it needs states.normal, states.anomalous, templates"
        ) from None
    if not prompt_set.normal or not prompt_set.anomalous:
        raise ZsadError(f"prompt set {name_or_path} needs at least one normal and one anomalous state")
    return prompt_set
