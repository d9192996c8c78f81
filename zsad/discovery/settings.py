"""Discovery's own settings, declared once: ``DiscoverySettings``.

From these declarations come the flags of ``zsad discover RUN_DIR`` (``--types``, ``--estimator``, ...), the
``--discover-*`` flags of ``zsad detect --discover`` and ``zsad eval --discover`` (the same fields with the prefix
``discover_``), the keyword arguments of ``Detector.discover(results, **options)``, and the ``discovery.settings``
block that results.json and run.json record. Torch-free, so that ``--help`` and option errors load no model library.
"""
from __future__ import annotations

import argparse
import dataclasses
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from zsad.config_fields import (
    Setting, add_flags, coerce, finite_float, given_options, jsonable, positive_int, section_settings, setting,
)
from zsad.discovery.clustering import DEFAULT_ESTIMATOR, ESTIMATORS, FEATURE_KINDS
from zsad.errors import ZsadError

NAMINGS = ("auto", "vocabulary", "llm")
FEATURES = ("auto", *FEATURE_KINDS)
SECTION = ("discovery",)
GROUP = "defect-type discovery"
FLAG_PREFIX = "discover_"  # zsad detect / zsad eval: --discover-types, --discover-estimator, ...
NOT_PIPELINE = ("naming", "sheets")  # settings of the face (namer choice, contact sheets), not of ``discover()``


@dataclass(frozen=True)
class DiscoverySettings:
    """How the anomalies of a run are grouped into types, named and written (``zsad.discovery``)."""

    types: int | None = setting(None, parse=positive_int, metavar="K",
                                help="number of types (default: estimated from the data)")
    threshold: float | None = setting(None, parse=finite_float, metavar="T",
                                      help="discover every image whose score reaches this (default: the images the "
                                           "run flagged as anomalous)")
    estimator: str = setting(DEFAULT_ESTIMATOR, choices=ESTIMATORS, help="how the number of types is estimated")
    k_max: int = setting(10, parse=positive_int, metavar="K", help="most types the estimator considers")
    features: str = setting("auto", choices=FEATURES,
                            help="region features: auto = CLIP projected tokens, DINOv2 tokens; colour = colour "
                                 "histograms of the anomalous pixels (no network)")
    phrases: tuple[str, ...] = setting((), metavar="PHRASE",
                                       help="defect phrases to name types with, besides the vocabulary's (CLIP only)")
    vocabulary: str | None = setting(None, metavar="FILE", help="a defect vocabulary YAML file (default: the "
                                                                "built-in one)")
    naming: str = setting("auto", choices=NAMINGS,
                          help="how types are named: vocabulary = the closest defect phrase by CLIP similarity "
                               "('type N' without a text space); llm = a short name and description from the "
                               "configured LLM (--llm-base-url, --llm-model), given the regions' facts, images "
                               "only with --llm-images, the vocabulary name kept if it fails; auto = llm when an "
                               "LLM is configured, else vocabulary")
    max_crops: int = setting(8, parse=positive_int, metavar="N", help="most anomaly-centred crops per image")
    exemplars: int = setting(6, parse=positive_int, metavar="N", help="example images listed per type")
    batch_size: int = setting(16, parse=positive_int, metavar="N", help="crops per backbone pass")
    seed: int = setting(0, metavar="N", help="seed of k-means and of the estimator's sample")
    sheets: bool = setting(True, help="write a contact sheet PNG per type")

    def __post_init__(self) -> None:
        checks = [
            (self.types is None or self.types >= 1, f"types={self.types}: pass a number >= 1, or None to estimate it"),
            (self.estimator in ESTIMATORS, f"estimator {self.estimator!r}: use one of {', '.join(ESTIMATORS)}"),
            (self.features in FEATURES, f"features {self.features!r}: use one of {', '.join(FEATURES)}"),
            (self.naming in NAMINGS, f"naming {self.naming!r}: use one of {', '.join(NAMINGS)}"),
            (self.k_max >= 2, f"k_max={self.k_max}: the estimator needs at least 2 candidate types"),
            (min(self.max_crops, self.exemplars, self.batch_size) >= 1,
             "max_crops, exemplars and batch_size must be at least 1"),
        ]
        for ok, message in checks:
            if not ok:
                raise ZsadError(f"discovery: {message}")

    def check_files(self, prefix: str = "") -> None:
        """Cheap checks of the files named, before any model loads (``--vocabulary`` must exist)."""
        if self.vocabulary is not None and not Path(self.vocabulary).is_file():
            flag = "--" + (prefix + "vocabulary").replace("_", "-")
            raise ZsadError(f"{flag} {self.vocabulary}: file not found; pass a vocabulary YAML file")

    def pipeline_options(self) -> dict[str, Any]:
        """The keyword arguments of ``zsad.discovery.discover`` these settings fix."""
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name not in NOT_PIPELINE}

    def describe(self) -> dict[str, Any]:
        """For results.json / run.json."""
        return jsonable(self)


def discovery_table(prefix: str = "") -> dict[str, Setting]:
    """One ``Setting`` per field: option names ``<prefix><field>`` (``discover_types`` -> ``--discover-types``)."""
    return {item.option: item for item in section_settings(DiscoverySettings, SECTION, prefix, GROUP)}


def add_discovery_flags(parser: argparse.ArgumentParser, prefix: str = "") -> None:
    """The settings' flags (``zsad.config_fields.add_flags``): unset flags leave no attribute on the namespace."""
    add_flags(parser, discovery_table(prefix))


def discovery_settings(settings: DiscoverySettings | None = None, **options) -> DiscoverySettings:
    """``settings`` (default: the defaults) with ``options`` (field names) replaced, each checked and coerced to
    its field's type; an unknown name is an error that lists the known ones."""
    base = settings or DiscoverySettings()
    if not options:
        return base
    types = typing.get_type_hints(DiscoverySettings)
    unknown = sorted(set(options) - set(types))
    if unknown:
        raise ZsadError(f"unknown discovery option(s) {', '.join(unknown)}; known: {', '.join(types)}")
    values = {name: coerce(types[name], value, f"discovery option {name}") for name, value in options.items()}
    return dataclasses.replace(base, **values)


def settings_from_args(args: argparse.Namespace, prefix: str = "") -> tuple[DiscoverySettings, bool]:
    """(settings, whether any of their flags was given) from a namespace parsed with ``add_discovery_flags``."""
    table = discovery_table(prefix)
    given = given_options(args, table)
    fields: dict[str, Any] = {}
    for option, value in given.items():
        fields.update(table[option].to(value))
    return discovery_settings(**fields), bool(given)
