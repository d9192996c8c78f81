"""Presets: named, published settings as data (``presets/*.yaml``, shipped as ``zsad.preset_files``).

A preset names its paper, the code it follows and its protocol, and holds flat detector options (the option names of
``zsad.config.settings_table()``; whole sections such as ``mutual:`` as dicts of their fields).
``build_config(preset=...)`` applies them before the user's options, so anything the user gives explicitly wins. A
user preset is a YAML file of the same shape (``--preset my.yaml``). Presets live at the top level beside
``prompts/`` because they are settings, not code: a user can read, copy and edit one without reading Python.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from zsad.errors import ZsadError


@dataclass(frozen=True)
class Preset:
    name: str
    options: dict[str, Any]
    title: str = ""
    paper: str = ""
    code: str = ""
    protocol: str = ""
    published: dict[str, Any] | None = None
    requires: str | None = None  # "references": the method needs good reference images
    source: str = ""  # the file it was read from
    extra: dict[str, Any] = field(default_factory=dict)

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "title": self.title, "paper": self.paper, "code": self.code,
                "protocol": self.protocol, "published": self.published, "source": self.source}


def list_presets() -> list[str]:
    files = resources.files("zsad.preset_files")
    return sorted(p.name[: -len(".yaml")] for p in files.iterdir() if p.name.endswith(".yaml"))


def load_preset(name_or_path: str) -> Preset:
    """A built-in preset by name (``musc``) or a YAML file of the same shape."""
    path = Path(name_or_path)
    if path.suffix in (".yaml", ".yml"):
        if not path.is_file():
            raise ZsadError(f"preset file {path} not found; pass an existing YAML file or one of {list_presets()}")
        text, source = path.read_text(), str(path)
    else:
        resource = resources.files("zsad.preset_files") / f"{name_or_path}.yaml"
        if not resource.is_file():
            raise ZsadError(f"unknown preset {name_or_path!r}; built-in presets: {', '.join(list_presets())}, "
                            "or a YAML file")
        text, source = resource.read_text(), f"zsad.preset_files/{name_or_path}.yaml"
    try:
        data = yaml.safe_load(text) or {}
        options = dict(data.get("options") or {})
    except (yaml.YAMLError, AttributeError, TypeError, ValueError) as error:
        raise ZsadError(f"preset {name_or_path} is malformed ({error}); it needs a mapping 'options:'") from None
    known = {"name", "title", "paper", "code", "protocol", "published", "requires", "options"}
    return Preset(
        name=str(data.get("name") or path.stem), options=options, title=str(data.get("title", "")),
        paper=str(data.get("paper", "")), code=str(data.get("code", "")), protocol=str(data.get("protocol", "")),
        published=data.get("published"), requires=data.get("requires"), source=source,
        extra={k: v for k, v in data.items() if k not in known},
    )
