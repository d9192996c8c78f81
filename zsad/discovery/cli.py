"""``zsad discover RUN_DIR [--types K] [--threshold T] [--out DIR]``: defect types of a ``zsad detect`` run.

The lead wires it in with ``add_discover_parser(commands)`` in ``zsad/cli/main.py``; the parser's ``run`` default
is ``run_discover``. Writes ``types.json``, ``images.csv`` and one contact sheet per type (``zsad.discovery.writer``)
into ``--out`` (default ``RUN_DIR/discovery``) and prints a table of the types. The discovery flags come from
``DiscoverySettings`` (``zsad detect --discover`` has the same ones as ``--discover-*``); the model, object and LLM
flags are ``zsad detect``'s own declarations.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path


MODEL_OPTIONS = ("backbone", "pretrained", "device", "object_name")


def _model_or_llm(item) -> bool:
    return item.option in MODEL_OPTIONS or item.option.startswith("llm_")


def add_discover_parser(subparsers) -> argparse.ArgumentParser:
    from zsad.config import settings_table
    from zsad.config_fields import add_flags
    from zsad.discovery.settings import add_discovery_flags

    parser = subparsers.add_parser(
        "discover", help="group the anomalies of a `zsad detect` run into defect types and name them",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("run_dir", metavar="RUN_DIR",
                        help="output folder of `zsad detect --out` (results.json + journal/)")
    parser.add_argument("--out", default=None, help="output folder (default: RUN/discovery)")
    add_discovery_flags(parser)  # DiscoverySettings: --types, --threshold, --estimator, --naming, ...
    # The model and LLM flags are zsad detect's own declarations; unset model flags mean the run's backbone.
    add_flags(parser, settings_table(), only=_model_or_llm,
              defaults={"backbone": "the run's", "pretrained": "the run's", "device": "auto",
                        "object_name": "the run's"})
    parser.set_defaults(run=run_discover)
    return parser


def _llm(args: argparse.Namespace):
    """(the LLM the ``--llm-*`` flags configure or None without them, the given ``llm_*`` settings); the client is
    built by the reasoning layer's own setup."""
    from zsad.config import settings_table
    from zsad.config_fields import given_options
    from zsad.reasoning.config import ReasoningConfig
    from zsad.reasoning.options import reasoning_setup

    table = {name: item for name, item in settings_table().items() if name.startswith("llm_")}
    given = {table[name].field: value for name, value in given_options(args, table).items()}
    return reasoning_setup(ReasoningConfig(**given), explain="factual").llm if given else None, given


def run_discover(args: argparse.Namespace) -> int:
    from dataclasses import replace

    from zsad.backbones import BackboneSpec, load_backbone
    from zsad.data.images import load_image
    from zsad.discovery.configured import check_naming, discover_configured
    from zsad.discovery.run_dir import load_run
    from zsad.discovery.settings import settings_from_args
    from zsad.discovery.writer import write_discovery
    from zsad.errors import ZsadError

    settings, _ = settings_from_args(args)
    settings.check_files()
    llm, llm_options = _llm(args)
    check_naming(settings, llm)
    run = load_run(args.run_dir)
    spec = run.backbone
    if getattr(args, "backbone", None):
        spec = BackboneSpec(args.backbone, pretrained=getattr(args, "pretrained", None))
    elif spec is not None and getattr(args, "pretrained", None):
        spec = replace(spec, pretrained=args.pretrained)
    backbone = None
    if settings.features != "colour":
        if spec is None:
            raise ZsadError(f"{args.run_dir}: results.json names no backbone; pass --backbone or --features colour")
        backbone = load_backbone(spec, getattr(args, "device", "auto")).eval()
    if not run.exact_maps:
        print("note: the run has no complete journal of maps; regions come from the boxes in results.json",
              file=sys.stderr)
    paths = {r.name: r.path for r in run.results}
    discovery = discover_configured(run.results, backbone, settings, llm=llm,
                                    send_images=bool(llm_options.get("llm_images")),
                                    object_name=getattr(args, "object_name", None) or run.object_name,
                                    masks=run.masks)
    out = Path(args.out) if args.out else Path(args.run_dir) / "discovery"
    load = (lambda name: load_image(paths[name]).image) if settings.sheets else None
    written = write_discovery(discovery, out, load)
    print_types(discovery, written["types"], args.run_dir)
    return 0


def print_types(discovery, where, run_dir) -> None:
    """The table of types on stdout (or why there is none)."""
    if not discovery.types:
        print(f"no anomalous region to discover in {run_dir} (selected {discovery.settings['selected_images']} "
              "images); lower the discovery threshold to include more")
        return
    print(f"{len(discovery.images)} images, {len(discovery.regions)} regions -> {len(discovery.types)} types "
          f"({discovery.k.method}) -> {where}")
    print(f"{'#':>3}  {'name':24s} {'images':>6} {'regions':>7}  {'location':14s} {'area %':>6}  exemplars")
    for kind in discovery.types:
        print(f"{kind.index + 1:>3}  {kind.name[:24]:24s} {kind.count:>6} {kind.regions:>7}  {kind.location:14s} "
              f"{100 * kind.mean_area:>6.2f}  {', '.join(kind.exemplars[:3])}")
        if kind.naming_error:
            print(f"     ({kind.named_by} name kept: {kind.naming_error})")


# -- ``--discover`` on zsad detect and zsad eval ------------------------------------------------------------------

def add_discover_flags(parser: argparse.ArgumentParser) -> None:
    """``--discover`` and the ``--discover-*`` flags (``DiscoverySettings`` with the prefix ``discover_``)."""
    from zsad.discovery.settings import FLAG_PREFIX, add_discovery_flags

    parser.add_argument("--discover", action="store_true",
                        help="after detection, group the anomalous images into defect types and name them: "
                             "discovery/ (types.json, contact sheets) and defect_type columns in the results; any "
                             "--discover-* flag turns it on too")
    add_discovery_flags(parser, FLAG_PREFIX)


def requested_discovery(args: argparse.Namespace):
    """The ``DiscoverySettings`` of ``--discover`` / ``--discover-*``, or None when discovery was not asked for."""
    from zsad.discovery.settings import FLAG_PREFIX, settings_from_args

    settings, given = settings_from_args(args, FLAG_PREFIX)
    if not (getattr(args, "discover", False) or given):
        return None
    settings.check_files(FLAG_PREFIX)
    return settings


class DiscoveryStep:
    """``zsad detect --discover``: checks the naming choice against the detector before detection, then is the
    ``zsad.outputs`` writer that discovers and writes the types (``zsad.discovery.writer.discovery_writer``) and
    keeps what it found for the summary printed after the run."""

    FLAG = "--discover-naming"

    def __init__(self, detector, settings, object_name: str | None = None):
        from zsad.discovery.configured import check_naming

        self.detector, self.settings, self.object_name = detector, settings, object_name
        check_naming(settings, detector.reasoning.llm if detector.reasoning is not None else None, self.FLAG)
        self.found = None

    def find(self, results):
        self.found = self.detector.discover(results, self.settings, object_name=self.object_name)
        return self.found

    def writer(self):
        from zsad.discovery.writer import discovery_writer

        return discovery_writer(self.find, self.settings)

    def report(self, out: Path) -> None:
        if self.found is not None:
            print_types(self.found, out / "discovery" / "types.json", out)
