"""Detector configuration: a tree of sections, each owned by its component, built from options in one place.

``DetectorConfig`` holds the backbone (``BackboneSpec``), the text head, the method, one config per registered
scorer (``scorers``: name -> that scorer's own dataclass), post-processing overrides, the verdict rule, the
explainer, the runtime (device, precision, batch size) and the reasoning layer. Every field is declared once with
its help (``zsad.config_fields.setting``); flat option names (``input_size``, ``coreset``, ``sigma``) address them.

``build_config(preset=..., **options)`` is the only road from user options (CLI flags, ``Detector(...)`` keyword
arguments, preset files, an adapter's trained settings) to a ``DetectorConfig``. Precedence, lowest first:

    built-in default < the scorer's default < preset < adapter's trained setting < explicit option

applied here, once. Every value an adapter or an explicit option changes over a preset's or an adapter's is
reported in one warning; scorer defaults (post-processing) are resolved when the method is known
(``resolved_postprocess``), and an explicit value that departs from them is reported there. Which level set each
value is kept in ``origins`` and recorded in results.json. Unknown options are an error, never ignored.

This module imports no torch: option errors come before any model library loads.
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from zsad.backbones.spec import BackboneSpec
from zsad.config_fields import Setting, coerce, jsonable, positive_int, section_settings, setting
from zsad.errors import ZsadError
from zsad.explain.base import EXPLAINERS, explainer_help, explainer_names
from zsad.postprocess import DEFAULT_POSTPROCESS, PostprocessConfig
from zsad.reasoning.config import ReasoningConfig
from zsad.scoring.configs import TextHeadConfig, backbone_settings_of, default_postprocess_of
from zsad.scoring.registry import SCORERS, TEXT_HEADS, method_help, method_names
from zsad.verdict import MaskRule, ThresholdRule

PRECISIONS = ("auto", "fp32", "bf16", "fp16")



@dataclass(frozen=True)
class RuntimeConfig:
    """Where and how the backbone runs; changes speed and memory, not what is computed (up to precision)."""

    device: str = setting("auto", metavar="DEVICE", run_time_only=True,
                          help="auto (CUDA when available, else CPU), cpu, cuda, cuda:N")
    precision: str = setting("auto", choices=PRECISIONS, help="auto: bf16 on CUDA, fp32 on CPU (fp32 is faster "
                                                              "than bf16 on most CPUs)")
    batch_size: int = setting(8, parse=positive_int, metavar="N", run_time_only=True,
                              help="images per backbone pass")

    def __post_init__(self) -> None:
        if self.batch_size < 1:
            raise ZsadError(f"batch size must be at least 1, got {self.batch_size}")
        if self.precision not in PRECISIONS:
            raise ZsadError(f"unknown precision {self.precision!r}; use one of {', '.join(PRECISIONS)}")


def default_scorer_configs() -> dict[str, Any]:
    """Each registered scorer's config with its defaults (scorers without settings have none)."""
    return {name: cls() for name in SCORERS.names() if (cls := SCORERS.config(name)) is not None}


@dataclass(frozen=True)
class DetectorConfig:
    backbone: BackboneSpec = field(default_factory=BackboneSpec)
    text_head: TextHeadConfig = field(default_factory=TextHeadConfig)
    method: str = setting("auto", choices=method_names, help=method_help)
    fuse: bool = setting(False, help="with --method auto: run every evidence the inputs allow and fuse them (as "
                                     "--preset zsad)")
    scorers: dict[str, Any] = field(default_factory=default_scorer_configs)
    postprocess: PostprocessConfig = field(default_factory=PostprocessConfig)
    threshold: ThresholdRule = field(default_factory=ThresholdRule)
    mask: MaskRule = field(default_factory=MaskRule)
    explainer: str = setting("auto", flag="--explain", choices=explainer_names, help=explainer_help)
    runtime: RuntimeConfig = field(default_factory=RuntimeConfig)
    reasoning: ReasoningConfig = field(default_factory=ReasoningConfig)
    preset: str | None = None  # the preset these settings started from
    # Which level set each value that is not a built-in default ("preset musc", "adapter NAME", "option",
    # "required by winclip"), by setting path; recorded in results.json.
    origins: dict[str, str] = field(default_factory=dict, compare=False)

    def scorer(self, name: str) -> Any:
        """The config of a registered scorer (None for a scorer without settings)."""
        return self.scorers.get(SCORERS.canonical(name))

    def resolved_postprocess(self, method: str | None) -> PostprocessConfig:
        """The post-processing that runs when ``method`` is the only evidence (None: fused evidence): zsad's default,
        then the scorer's own default, then what a preset, an adapter or the user set."""
        own = default_postprocess_of(self.scorers.get(method) if method else None)
        return self.postprocess.over(own.over(DEFAULT_POSTPROCESS))

    def to_dict(self) -> dict[str, Any]:
        return jsonable(self)

    def __getattr__(self, name: str) -> Any:
        """zsad 0.1's flat attributes, for reading: ``config.mutual`` (a scorer's section), ``config.reference``
        (the few-shot memory's settings), ``config.sigma`` and the other post-processing names (the value the
        configured method runs with), and any flat option (``config.batch_size``). Only called for names that
        are not fields."""
        if name.startswith("_") or name in _FIELD_NAMES:
            raise AttributeError(name)
        scorers = object.__getattribute__(self, "scorers")
        if name in scorers:
            return scorers[name]
        if name == "reference":
            return scorers["fewshot"].memory_config()
        if name in _POSTPROCESS_ALIASES:
            method = None if self.method == "auto" or self.fuse else self.method
            return getattr(self.resolved_postprocess(method), _POSTPROCESS_ALIASES[name])
        item = settings_table().get(name)
        if item is None or item.field is None:
            raise AttributeError(f"'DetectorConfig' has no setting {name!r}")
        return getattr(_section(self, item.section), item.field)


_FIELD_NAMES = frozenset(f.name for f in fields(DetectorConfig))
_POSTPROCESS_ALIASES = {"sigma": "sigma", "align_corners": "align_corners", "smooth_at": "smooth_at",
                        "gaussian_padding": "padding"}


def config_sections():
    """(section path, dataclass, option prefix, help group) of every section, in the order ``--help`` lists them."""
    yield ("backbone",), BackboneSpec, "", "backbone"
    yield ("text_head",), TextHeadConfig, "", "text prompts"
    yield (), DetectorConfig, "", "evidence"
    for name in SCORERS.names():
        cls = SCORERS.config(name)
        if cls is not None:
            yield ("scorers", name), cls, f"{name}_", f"scorer {name} ({SCORERS.help(name)})"
    yield ("postprocess",), PostprocessConfig, "", "map post-processing"
    yield ("threshold",), ThresholdRule, "", "verdict"
    yield ("mask",), MaskRule, "", "verdict"
    yield ("runtime",), RuntimeConfig, "", "runtime"
    yield ("reasoning",), ReasoningConfig, "", "reasoning (definitions in words, rules, LLM explanations)"


def settings_table() -> dict[str, Setting]:
    """Every flat option of ``DetectorConfig`` (with the scorers registered now), by name."""
    table: dict[str, Setting] = {}
    for section, cls, prefix, group in config_sections():
        for item in section_settings(cls, section, prefix, group):
            if item.option in table:
                raise RuntimeError(f"option {item.option!r} is declared twice ({table[item.option].path}, "
                                   f"{item.path}); give one of the fields another option name")
            table[item.option] = item
    return table


def explicit_changes(config: DetectorConfig) -> dict[str, Any]:
    """The settings given explicitly (origin "option") with a value other than the built-in default, by path."""
    default = DetectorConfig()
    return {path: value for path, origin in config.origins.items()
            if origin == "option" and (value := _value_at(config, path)) != _value_at(default, path)}


def flag_of(path: str) -> str:
    """The command-line spelling of a setting path (``backbone.input_size`` -> ``--input-size``); other names
    (``references``) as flags of the same name."""
    for item in settings_table().values():
        if item.field is not None and item.path == path:
            return item.flag
    return "--" + path.rsplit(".", 1)[-1].replace("_", "-")


def run_time_only_paths() -> set[str]:
    """Settings declared ``run_time_only`` (where and how fast a run goes, not what it computes), by path."""
    return {".".join((*section, item.name)) for section, cls, _, _ in config_sections() for item in fields(cls)
            if item.metadata.get("run_time_only")}


def _section(config: DetectorConfig, path: tuple[str, ...]) -> Any:
    current: Any = config
    for part in path:
        current = current[part] if isinstance(current, dict) else getattr(current, part)
    return current


# -- options -> assignments ---------------------------------------------------------------------------------------

# Keys of preset files and ``Detector(...)`` that hold a whole section as a dict. ``text`` mixes the text head and
# the text scorer (zsad 0.1 had one section for both); ``reference`` is the few-shot scorer's 0.1 name.
LEGACY_SECTIONS = {"reference": ("scorers", "fewshot"), "scorer_options": ("scorers",)}
SECTIONS = {"backbone": ("backbone",), "text_head": ("text_head",), "postprocess": ("postprocess",),
            "threshold": ("threshold",), "mask": ("mask",), "runtime": ("runtime",), "reasoning": ("reasoning",),
            "scorers": ("scorers",)}


def _section_class(path: tuple[str, ...]) -> type:
    return {section: cls for section, cls, _, _ in config_sections()}[path]


def _section_assignments(path: tuple[str, ...], values: dict, where: str) -> dict[tuple[tuple[str, ...], str], Any]:
    if not isinstance(values, dict):
        raise ZsadError(f"{where} must be a mapping of its settings, got {values!r}")
    if path == ("scorers",):
        out = {}
        for name, section in values.items():
            out.update(_section_assignments(("scorers", SCORERS.canonical(name)), section, f"{where}.{name}"))
        return out
    if path == ("text",):  # 0.1's text section: the text head's fields and the text scorer's
        head = {k: v for k, v in values.items() if k in {f.name for f in fields(TextHeadConfig)}}
        rest = {k: v for k, v in values.items() if k not in head}
        return {**_section_assignments(("text_head",), head, where),
                **_section_assignments(("scorers", "text"), rest, where)}
    cls = _section_class(path)
    known = {f.name: f for f in fields(cls)}
    out = {}
    for key, value in values.items():
        if key not in known:
            raise ZsadError(f"unknown setting {'.'.join(path[-1:])}.{key}; known: {', '.join(known)}")
        out[(path, key)] = value
    return out


def expand(options: dict[str, Any], keep_none: bool = False, where: str = "option") -> dict[str, Any]:
    """Flat options (and section dicts) -> {"section.path.field": value}, coerced to each field's type.

    None means "not given" (so ``Detector(backbone=None)`` keeps the preset's backbone), unless ``keep_none``: the
    CLI's ``none`` sets an optional field to None.
    """
    table = settings_table()
    raw: dict[tuple[tuple[str, ...], str], Any] = {}
    unknown = []
    for name, value in options.items():
        if value is None and not keep_none:
            continue
        section = SECTIONS.get(name) or LEGACY_SECTIONS.get(name) or (("text",) if name == "text" else None)
        if section is None and name in SCORERS and isinstance(value, dict):
            section = ("scorers", SCORERS.canonical(name))
        if section is not None and isinstance(value, dict):
            raw.update(_section_assignments(section, value, name))
            continue
        item = table.get(name)
        if item is None:
            unknown.append(name)
            continue
        raw.update(_assign(item, value, where))
    if unknown:
        raise ZsadError(f"unknown detector option(s) {sorted(unknown)}; known: {', '.join(sorted(table))}")
    out = {}
    for (path, key), value in raw.items():
        annotation = _field_types(path)[key]
        out[".".join((*path, key))] = coerce(annotation, value, f"{where} {'.'.join((*path, key))}")
    return out


def _assign(item: Setting, value: Any, where: str) -> dict[tuple[tuple[str, ...], str], Any]:
    try:
        fields_ = item.to(value)
    except (TypeError, ValueError) as error:
        raise ZsadError(f"{where} {item.option}={value!r}: {error}") from None
    return {(item.section, key): v for key, v in fields_.items()}


def _field_types(path: tuple[str, ...]) -> dict[str, Any]:
    import typing

    return typing.get_type_hints(_section_class(path))


# -- layers -> config ---------------------------------------------------------------------------------------------


def apply_values(config: DetectorConfig, values: dict[str, Any]) -> DetectorConfig:
    """``config`` with {"section.field": value} set, each section replaced at once (its fields may depend on each
    other: ``dpam_layer`` and ``vv_layers``)."""
    by_section: dict[tuple[str, ...], dict[str, Any]] = {}
    for path, value in values.items():
        *section, key = path.split(".")
        by_section.setdefault(tuple(section), {})[key] = value
    for section, changes in by_section.items():
        config = _replace_section(config, section, changes)
    return config


def _replace_section(config: DetectorConfig, section: tuple[str, ...], changes: dict[str, Any]) -> DetectorConfig:
    if not section:
        return replace(config, **changes)
    if section[0] == "scorers":
        name = section[1]
        current = config.scorers.get(name)
        if current is None:
            raise ZsadError(f"scorer {name} has no settings")
        return replace(config, scorers={**config.scorers, name: replace(current, **changes)})
    return replace(config, **{section[0]: replace(getattr(config, section[0]), **changes)})


def build_config(base: DetectorConfig | None = None, preset: str | None = None, *, keep_none: bool = False,
                 **options) -> DetectorConfig:
    """A ``DetectorConfig``: the base (or defaults), the preset, an adapter's trained settings, then ``options``
    (see the module docstring for the precedence and what is reported). ``keep_none``: a None option sets the field
    to None instead of meaning "not given" (the CLI's ``none``)."""
    config = base or DetectorConfig()
    layers: list[tuple[str, dict[str, Any]]] = []
    preset_name = config.preset
    if preset is not None:
        from zsad.presets import load_preset

        chosen = load_preset(preset)
        preset_name = chosen.name
        layers.append((f"preset {chosen.name}", expand(chosen.options, where=f"preset {chosen.name}:")))
    explicit = expand(options, keep_none=keep_none)
    prompts = explicit.get("text_head.prompts") or next(
        (values["text_head.prompts"] for _, values in reversed(layers) if "text_head.prompts" in values),
        config.text_head.prompts)
    trained = trained_options(prompts)
    if trained:
        layers.append((f"adapter {Path(prompts.split(':', 1)[1]).name}", expand(trained, where="adapter setting")))
    layers.append(("option", explicit))

    values, origins = {}, dict(config.origins)
    overridden = []
    for origin, layer in layers:
        for path, value in layer.items():
            before = values.get(path, _value_at(config, path))
            # A preset replaces built-in defaults, which is what it is for; an adapter or an explicit option that
            # replaces a preset's or an adapter's value is reported.
            if not origin.startswith("preset") and path in origins and before != value:
                overridden.append((path, value, origin, before, origins[path]))
            values[path] = value
            origins[path] = origin
    config = apply_values(config, values)
    config = _with_requirements(config, origins)
    validate(config)
    if overridden:
        _report(overridden)
    return replace(config, preset=preset_name, origins=origins)


def validate(config: DetectorConfig) -> None:
    """What the sections cannot check alone: the method and explainer names against their registries."""
    if config.method not in method_names():
        raise ZsadError(f"unknown method {config.method!r}; use one of {', '.join(method_names())}")
    if config.explainer != "auto" and config.explainer not in EXPLAINERS:
        raise ZsadError(f"unknown explainer {config.explainer!r}; use one of {', '.join(explainer_names())}")


def _value_at(config: DetectorConfig, path: str) -> Any:
    *section, key = path.split(".")
    try:
        return getattr(_section(config, tuple(section)), key)
    except (AttributeError, KeyError):
        return None


def _with_requirements(config: DetectorConfig, origins: dict[str, str]) -> DetectorConfig:
    """Backbone settings the named method needs (WinCLIP asks the backbone for its window sizes)."""
    if config.method == "auto":
        return config
    needed = backbone_settings_of(config.scorer(config.method), config.backbone.windows)
    changed = {k: v for k, v in needed.items() if getattr(config.backbone, k) != v}
    if not changed:
        return config
    origins.update({f"backbone.{k}": f"required by {config.method}" for k in changed})
    return replace(config, backbone=replace(config.backbone, **changed))


def _report(overridden: list[tuple[str, Any, str, Any, str]]) -> None:
    names = {item.path: item.option for item in settings_table().values() if item.field is not None}
    listed = "; ".join(f"{names.get(path, path)} {_show(value)} ({origin}) replaces {_show(before)} ({was})"
                       for path, value, origin, before, was in overridden)
    hint = ""
    if any(was.startswith("adapter") for *_, was in overridden):
        hint = ("; the learned prompts then run outside the setting they were trained in (drop these options to "
                "use the adapter's own)")
    warnings.warn(f"settings override a preset or adapter: {listed}{hint}", UserWarning, stacklevel=3)


def _show(value: Any) -> str:
    if isinstance(value, tuple):
        return "[" + " ".join(map(str, value)) + "]"
    return str(value)


def trained_options(prompts: str | None) -> dict[str, Any]:
    """The settings a text-head family says its head was trained in (an adapter's backbone settings), else {}."""
    if not prompts or ":" not in prompts:
        return {}
    prefix, _, value = prompts.partition(":")
    if prefix not in TEXT_HEADS:
        return {}
    target = TEXT_HEADS.entry(prefix).info.get("trained_options")
    if target is None:
        return {}
    from zsad.registry import load_target

    return load_target(target)(value)
