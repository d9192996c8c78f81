"""One declaration per setting: a config field carries its option name, help and parsing (peft-style
``field(metadata={"help": ...})``), and every surface is generated from it.

A component owns a frozen dataclass of its settings; each field is declared with ``setting(default, help=...)``.
``zsad.config.settings_table()`` walks ``DetectorConfig``'s sections (the backbone, the text head, each registered scorer's
config, post-processing, the verdict rule, the runtime) and gives one ``Setting`` per flat option name. From that
table come the CLI flags (``add_flags``), the keyword arguments of ``Detector(...)``, the keys of preset files
(``expand``), the demo's choices and the ``settings`` block of results.json. Adding an option to a scorer is one
field.

Flat names: a field of a top-level section keeps its name (``input_size``, ``sigma``); a field of a scorer's
section is ``<scorer>_<field>`` (``mutual_max_refs``) unless the field names another (``coreset``). An ``Alias``
is a second spelling that sets one or more fields of its section (``threshold`` -> a fixed threshold rule,
``dpam_layer`` -> ``vv_layers``), kept so that a flag or preset key never silently changes meaning.

This module imports no torch: ``zsad --help`` and option errors come before any model library loads.
"""
from __future__ import annotations

import argparse
import dataclasses
import math
import types
import typing
from dataclasses import MISSING, dataclass, field
from typing import Any, Callable

from zsad.errors import ZsadError

Choices = tuple[str, ...] | Callable[[], list[str]] | None


@dataclass(frozen=True)
class Alias:
    """Another option name for a field, converted to one or more field values of the same section."""

    name: str
    to: Callable[[Any], dict[str, Any]]
    help: str
    type: Any = str  # what the value is, for parsing CLI text
    choices: Choices = None
    cli: bool = True


def setting(default: Any = MISSING, *, help: str | Callable[[], str], option: str | None = None, default_factory: Any = MISSING,
            choices: Choices = None, parse: Callable[[str], Any] | None = None, cli: bool = True,
            aliases: tuple[Alias, ...] = (), sets: Callable[[Any], dict[str, Any]] | None = None,
            metavar: str | None = None, flag: str | None = None, run_time_only: bool = False) -> Any:
    """A dataclass field with its surface: ``option`` (flat name, see the module docstring), ``help``, ``choices``
    (a tuple, or a function listing a registry's names), ``parse`` (CLI text -> value, default from the type),
    ``cli`` (False: presets and Python only), ``aliases``, ``sets`` (value -> other fields of the section that
    the same choice fixes, e.g. two conventions of one setting), and ``run_time_only`` (where or how fast it runs,
    not what it computes: left out of the fingerprint ``--resume`` compares)."""
    metadata = {"help": help, "option": option, "choices": choices, "parse": parse, "cli": cli, "aliases": aliases,
                "sets": sets, "metavar": metavar, "flag": flag, "run_time_only": run_time_only}
    if default_factory is not MISSING:
        return field(default_factory=default_factory, metadata=metadata)
    return field(default=default, metadata=metadata)


@dataclass(frozen=True)
class Setting:
    """One flat option: where it lands in ``DetectorConfig`` and how it is written and read."""

    option: str
    section: tuple[str, ...]  # path of the owning section in DetectorConfig, e.g. ("scorers", "mutual")
    field: str | None  # the field it sets, None for an alias that sets several
    type: Any
    help: str
    default: Any
    to: Callable[[Any], dict[str, Any]]  # value -> {field: value} within the section
    choices: Choices = None
    parse: Callable[[str], Any] | None = None
    cli: bool = True
    group: str = ""
    metavar: str | None = None
    flag_name: str | None = None  # the CLI spelling when it is not the option's (``--object`` for object_name)

    @property
    def path(self) -> str:
        return ".".join((*self.section, self.field or self.option))

    @property
    def flag(self) -> str:
        return self.flag_name or "--" + self.option.replace("_", "-")

    def choice_names(self) -> list[str] | None:
        return list(self.choices()) if callable(self.choices) else (list(self.choices) if self.choices else None)


# -- types: coercion of Python values and parsing of CLI text --------------------------------------------------


def _unwrap(annotation: Any) -> tuple[Any, bool]:
    """(type without None, whether None is allowed)."""
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        return (args[0] if len(args) == 1 else annotation), len(args) < len(typing.get_args(annotation))
    return annotation, False


def coerce(annotation: Any, value: Any, where: str) -> Any:
    """``value`` as the field's type: lists become tuples, numbers their type; anything else is refused."""
    base, optional = _unwrap(annotation)
    if value is None:
        if optional:
            return None
        raise ZsadError(f"{where} cannot be None")
    origin = typing.get_origin(base)
    try:
        if origin is tuple:
            items = typing.get_args(base)
            item_type = items[0] if items else Any
            if isinstance(value, (str, bytes)) or not hasattr(value, "__iter__"):
                value = [value]
            return tuple(coerce(item_type, v, where) for v in value)
        if base is bool:
            if isinstance(value, str):
                return _parse_bool(value)
            if not isinstance(value, (bool, int)) or value not in (0, 1):
                raise ValueError(f"expected true or false, got {value!r}")
            return bool(value)
        if base is int:
            if isinstance(value, float) and not value.is_integer():
                raise ValueError(f"expected a whole number, got {value!r}")
            return int(value)
        if base is float:
            return float(value)
        if base is str:
            return str(value)
    except (TypeError, ValueError) as error:
        raise ZsadError(f"{where}: {error}") from None
    return value


def _parse_bool(text: str) -> bool:
    lowered = text.strip().lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off"):
        return False
    raise ValueError(f"expected true or false, got {text!r}")


# CLI parsers; argparse names a rejected value by the parser's __name__ ("invalid positive integer value: '0'").
def finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"expected a finite number, got {text}")
    return value


def positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise ValueError(f"expected a positive integer, got {text}")
    return value


def positive_float(text: str) -> float:
    value = finite_float(text)
    if not value > 0:
        raise ValueError(f"expected a positive number, got {text}")
    return value


def fraction(text: str) -> float:
    value = float(text)
    if not 0.0 < value <= 1.0:
        raise ValueError(f"expected a fraction in (0, 1], got {text}")
    return value


finite_float.__name__, positive_int.__name__ = "finite number", "positive integer"
positive_float.__name__, fraction.__name__ = "positive number", "fraction in (0, 1]"


def _item_parser(item_type: Any) -> Callable[[str], Any]:
    return {int: int, float: finite_float, bool: _parse_bool}.get(item_type, str)


# -- the table ----------------------------------------------------------------------------------------------------


def section_settings(cls: type, section: tuple[str, ...], prefix: str = "", group: str = "") -> list[Setting]:
    """The settings of one section dataclass (nested dataclass fields are walked as sections of their own)."""
    hints = typing.get_type_hints(cls)
    out: list[Setting] = []
    for item in dataclasses.fields(cls):
        meta = item.metadata
        if "help" not in meta:
            continue  # not a user setting (derived or internal)
        annotation = hints[item.name]
        default = item.default if item.default is not MISSING else (
            item.default_factory() if item.default_factory is not MISSING else None)
        name = meta.get("option") or f"{prefix}{item.name}"
        sets = meta.get("sets")

        def to(value, _field=item.name, _sets=sets):
            return {_field: value, **(_sets(value) if _sets else {})}

        text = meta["help"]() if callable(meta["help"]) else meta["help"]
        out.append(Setting(name, section, item.name, annotation, text, default, to, meta.get("choices"),
                           meta.get("parse"), meta.get("cli", True), group, meta.get("metavar"), meta.get("flag")))
        for alias in meta.get("aliases") or ():
            out.append(Setting(alias.name, section, None, alias.type, alias.help, None, alias.to, alias.choices,
                               None, alias.cli, group))
    return out


# -- the CLI surface ----------------------------------------------------------------------------------------------


def add_flags(parser: argparse.ArgumentParser, table: dict[str, Setting], defaults: dict[str, Any] | None = None,
              only: Callable[[Setting], bool] | None = None) -> None:
    """One flag per setting with ``cli``, grouped by section. A flag the user does not give leaves no attribute on
    the namespace (``argparse.SUPPRESS``), so a preset's values show through and ``none`` can still set a field to
    None; the help states the value that applies when neither the user nor a preset sets one."""
    groups: dict[str, argparse._ArgumentGroup] = {}
    for item in table.values():
        if not item.cli or (only is not None and not only(item)):
            continue
        group = groups.get(item.group) or groups.setdefault(item.group, parser.add_argument_group(item.group))
        shown = (defaults or {}).get(item.option, item.default)
        text = item.help + ("" if item.field is None or shown in (None, (), "") else f" (default: {_show(shown)})")
        text = text.replace("%", "%%")  # argparse formats help with %
        base, optional = _unwrap(item.type)
        kwargs: dict[str, Any] = {"dest": item.option, "default": argparse.SUPPRESS, "help": text}
        names = item.choice_names()
        if base is bool:
            group.add_argument(item.flag, action=argparse.BooleanOptionalAction, **kwargs)
            continue
        if typing.get_origin(base) is tuple:
            args = typing.get_args(base)
            kwargs["nargs"] = len(args) if args and args[-1] is not Ellipsis else "+"
            kwargs["type"] = _optional(_item_parser(args[0] if args else str), optional)
        else:
            kwargs["type"] = _optional(item.parse or _item_parser(base), optional)
        if names:
            kwargs["choices"] = names
            kwargs["metavar"] = "{" + ",".join(names) + "}" if len(names) <= 8 else item.metavar or "NAME"
        elif item.metavar:
            kwargs["metavar"] = item.metavar
        group.add_argument(item.flag, **kwargs)


def _optional(parse: Callable[[str], Any], optional: bool) -> Callable[[str], Any]:
    """``none`` means None for a field that allows it; argparse shows the parser's name in errors, so name it."""

    def parse_value(text: str):
        if optional and text.strip().lower() == "none":
            return None
        return parse(text)

    parse_value.__name__ = {int: "integer", float: "number", str: "text"}.get(parse, parse.__name__)
    return parse_value


def _show(value: Any) -> str:
    if isinstance(value, tuple):
        return " ".join(map(str, value))
    return str(value)


def given_options(args: argparse.Namespace, table: dict[str, Setting]) -> dict[str, Any]:
    """The options the user set on the command line (a flag not given leaves no attribute)."""
    return {name: getattr(args, name) for name in table if hasattr(args, name)}


def jsonable(value: Any) -> Any:
    """Dataclasses (settings, results), enums, paths, tuples, numpy/torch scalars -> plain JSON values."""
    import enum
    from pathlib import Path

    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: jsonable(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [jsonable(v) for v in value]
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    if hasattr(value, "item") and callable(value.item):
        try:
            return value.item()
        except (ValueError, RuntimeError):
            pass
    return repr(value)
