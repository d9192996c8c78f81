"""``zsad discover RUN_DIR [--types K] [--threshold T] [--out DIR]``: defect types of a ``zsad detect`` run.

The lead wires it in with ``add_discover_parser(commands)`` in ``zsad/cli/main.py``; the parser's ``run`` default
is ``run_discover``. Writes ``types.json``, ``images.csv`` and one contact sheet per type (``zsad.discovery.writer``)
into ``--out`` (default ``RUN_DIR/discovery``) and prints a table of the types.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path


def add_discover_parser(subparsers) -> argparse.ArgumentParser:
    from zsad.config import settings_table
    from zsad.config_fields import add_flags, finite_float, positive_int
    from zsad.discovery.clustering import DEFAULT_ESTIMATOR, ESTIMATORS, FEATURE_KINDS

    parser = subparsers.add_parser(
        "discover", help="group the anomalies of a `zsad detect` run into defect types and name them",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("run_dir", metavar="RUN_DIR",
                        help="output folder of `zsad detect --out` (results.json + journal/)")
    parser.add_argument("--types", type=positive_int, default=None,
                        help="number of types (default: estimated from the data)")
    parser.add_argument("--threshold", type=finite_float, default=None,
                        help="discover every image whose score reaches this (default: the images the run flagged)")
    parser.add_argument("--out", default=None, help="output folder (default: RUN/discovery)")
    parser.add_argument("--estimator", choices=ESTIMATORS, default=DEFAULT_ESTIMATOR,
                        help="how the number of types is estimated")
    parser.add_argument("--k-max", type=positive_int, default=10, help="most types the estimator considers")
    parser.add_argument("--features", choices=("auto", *FEATURE_KINDS), default="auto",
                        help="region features: auto = CLIP projected tokens, DINOv2 tokens")
    parser.add_argument("--phrase", dest="phrases", action="append", default=[],
                        help="a defect phrase to name types with, besides the vocabulary's (repeatable; CLIP only)")
    parser.add_argument("--vocabulary", default=None, help="a vocabulary YAML file (default: the built-in one)")
    parser.add_argument("--object", dest="object_name", default=None,
                        help="object name in naming prompts (default: the run's)")
    # The model flags are zsad detect's own declarations; unset, the run's backbone and weights are used.
    add_flags(parser, settings_table(), only=lambda item: item.option in ("backbone", "pretrained", "device"),
              defaults={"backbone": "the run's", "pretrained": "the run's", "device": "auto"})
    parser.add_argument("--batch-size", type=positive_int, default=16, help="crops per backbone pass")
    parser.add_argument("--seed", type=int, default=0, help="seed of k-means and sampling")
    parser.add_argument("--no-sheets", action="store_true", help="skip the contact sheets")
    parser.set_defaults(run=run_discover)
    return parser


def run_discover(args: argparse.Namespace) -> int:
    from dataclasses import replace

    from zsad.backbones import BackboneSpec, load_backbone
    from zsad.data.images import load_image
    from zsad.discovery.pipeline import discover
    from zsad.discovery.run_dir import load_run
    from zsad.discovery.writer import write_discovery
    from zsad.errors import ZsadError

    run = load_run(args.run_dir)
    spec = run.backbone
    if getattr(args, "backbone", None):
        spec = BackboneSpec(args.backbone, pretrained=getattr(args, "pretrained", None))
    elif spec is not None and getattr(args, "pretrained", None):
        spec = replace(spec, pretrained=args.pretrained)
    backbone = None
    if args.features != "colour":
        if spec is None:
            raise ZsadError(f"{args.run_dir}: results.json names no backbone; pass --backbone or --features colour")
        backbone = load_backbone(spec, getattr(args, "device", "auto")).eval()
    if not run.exact_maps:
        print("note: the run has no complete journal of maps; regions come from the boxes in results.json",
              file=sys.stderr)
    paths = {r.name: r.path for r in run.results}
    discovery = discover(run.results, backbone, types=args.types, threshold=args.threshold, masks=run.masks,
                         features=args.features, estimator=args.estimator, k_max=args.k_max, phrases=args.phrases,
                         vocabulary=args.vocabulary, object_name=args.object_name or run.object_name,
                         batch_size=args.batch_size, seed=args.seed)
    out = Path(args.out) if args.out else Path(args.run_dir) / "discovery"
    load = None if args.no_sheets else (lambda name: load_image(paths[name]).image)
    written = write_discovery(discovery, out, load)
    if not discovery.types:
        print(f"no anomalous region to discover in {args.run_dir} (selected {discovery.settings['selected_images']} "
              "images); lower --threshold to include more")
        return 0
    print(f"{len(discovery.images)} images, {len(discovery.regions)} regions -> {len(discovery.types)} types "
          f"({discovery.k.method}) -> {written['types']}")
    print(f"{'#':>3}  {'name':24s} {'images':>6} {'regions':>7}  {'location':14s} {'area %':>6}  exemplars")
    for kind in discovery.types:
        print(f"{kind.index + 1:>3}  {kind.name[:24]:24s} {kind.count:>6} {kind.regions:>7}  {kind.location:14s} "
              f"{100 * kind.mean_area:>6.2f}  {', '.join(kind.exemplars[:3])}")
    return 0
