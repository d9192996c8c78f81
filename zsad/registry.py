"""One registry mechanism for every pluggable component (scorers, text-head families, explainers, LLM backends,
backbone families, dataset layouts), in the manner of timm's ``_registry`` and peft's ``register_peft_method``.

A built-in is *declared* by strings: its name, the ``"module:attribute"`` that implements it and, when it has
settings, the ``"module:Class"`` of its typed config, plus a one-line help. Listing names and help (``--help``,
choices, error messages) reads only these declarations, so it imports neither the implementation nor torch; the
implementation is imported the first time ``get`` asks for it. A component defined elsewhere (a plugin, a test)
registers the object itself::

    @SCORERS.register("toy", config=ToyConfig, help="toy evidence")
    class ToyScorer(Scorer): ...

Entries may carry extra facts (``info``) that listings need without importing, such as the order in which the
CLI lists scorers.
"""
from __future__ import annotations

import importlib
import sys
import types
from dataclasses import dataclass, field
from typing import Any, Callable

from zsad.errors import ZsadError


def load_target(target: Any) -> Any:
    """``"package.module:attribute"`` imported, or the object itself."""
    if not isinstance(target, str):
        return target
    module, _, attribute = target.partition(":")
    loaded = importlib.import_module(module)
    return getattr(loaded, attribute) if attribute else loaded


@dataclass
class Entry:
    name: str
    target: Any  # the implementation, or "module:attribute" until loaded
    config: Any = None  # its config class, or "module:Class", or None
    help: str = ""
    aliases: tuple[str, ...] = ()
    info: dict[str, Any] = field(default_factory=dict)

    def load(self) -> Any:
        self.target = load_target(self.target)
        return self.target

    def config_class(self) -> type | None:
        self.config = load_target(self.config) if self.config is not None else None
        return self.config


class Registry:
    """Named components of one kind: ``declare`` (built-ins, lazy), ``register`` (objects), ``get``, ``names``."""

    def __init__(self, kind: str, hint: str = ""):
        self.kind = kind
        self.hint = hint  # appended to "unknown <kind>" errors, e.g. "or a YAML file"
        self._entries: dict[str, Entry] = {}
        self._aliases: dict[str, str] = {}

    def declare(self, name: str, target: str, *aliases: str, config: str | None = None, help: str = "",
                **info: Any) -> None:
        self._add(Entry(name, target, config, help, tuple(aliases), info))

    def register(self, name: str, *aliases: str, config: type | None = None, help: str = "",
                 **info: Any) -> Callable[[Any], Any]:
        def wrap(obj: Any) -> Any:
            self._add(Entry(name, obj, config, help or (obj.__doc__ or "").strip().split("\n")[0], aliases, info))
            return obj

        return wrap

    def unregister(self, name: str) -> None:
        entry = self._entries.pop(self.canonical(name))
        for alias in entry.aliases:
            self._aliases.pop(alias, None)

    def _add(self, entry: Entry) -> None:
        taken = [n for n in (entry.name, *entry.aliases) if n in self._entries or n in self._aliases]
        if taken:
            raise ValueError(f"{self.kind} {taken[0]!r} is already registered")
        self._entries[entry.name] = entry
        self._aliases.update({alias: entry.name for alias in entry.aliases})

    def canonical(self, name: str) -> str:
        """The registered name of ``name`` or of the alias ``name``; a ``ZsadError`` listing the names otherwise."""
        if name in self._entries:
            return name
        if name in self._aliases:
            return self._aliases[name]
        hint = f" {self.hint}" if self.hint else ""
        raise ZsadError(f"unknown {self.kind} {name!r}; use one of {', '.join(self.names())}{hint}")

    def __contains__(self, name: str) -> bool:
        return name in self._entries or name in self._aliases

    def entry(self, name: str) -> Entry:
        return self._entries[self.canonical(name)]

    def get(self, name: str) -> Any:
        """The implementation (imported on first use)."""
        return self.entry(name).load()

    def config(self, name: str) -> type | None:
        return self.entry(name).config_class()

    def help(self, name: str) -> str:
        return self.entry(name).help

    def names(self) -> list[str]:
        """Registered names, ordered by ``info["order"]`` where given, then by name."""
        return sorted(self._entries, key=lambda n: (self._entries[n].info.get("order", 100), n))

    def entries(self) -> list[Entry]:
        return [self._entries[name] for name in self.names()]


def lazy_exports(package: str, exports: dict[str, tuple[str, ...]]) -> list[str]:
    """Make the names of ``exports`` ({submodule: names}) load their submodule on first use, so that importing the
    package (for ``--help``, or for a torch-free config) loads nothing heavy; returns the package's ``__all__``::

        __all__ = lazy_exports(__name__, {"pipeline": ("mutual_scores",), "lnamd": ("lnamd",)})

    Reads of an exported name always give the exported object, also when it is named like its submodule
    (``lnamd``) and that submodule was imported first (which binds the submodule on the package): the package's
    class answers those reads, as the eager ``from .lnamd import lnamd`` did.
    """
    module_of = {name: module for module, names in exports.items() for name in names}

    class LazyPackage(types.ModuleType):
        def __getattribute__(self, name: str) -> Any:
            if name in module_of:
                return getattr(importlib.import_module(f"{package}.{module_of[name]}"), name)
            return super().__getattribute__(name)

    sys.modules[package].__class__ = LazyPackage
    return sorted(module_of)
