"""``zsad export --preset NAME|options... [--references DIR] --format onnx|openvino [--int8] --out DIR``: a detector
as a bundle that ``zsad-runtime`` runs without torch (``zsad.deploy``: what is exported and what is refused).

``zsad/cli/main.py`` wires it in with one line, ``add_export_parser(commands, add_detector_options,
detector_config, check_local_inputs)``: the detector's flags, their parsing into a config and the checks of the
inputs are ``zsad detect``'s own, passed in because importing the main face from here would close an import cycle
(its ``build_parser`` imports this module).
"""
from __future__ import annotations

import argparse
import sys
from dataclasses import replace
from pathlib import Path
from typing import Callable

MEMORY_CHOICES = {"auto": None, "baked": False, "input": True}


def add_export_parser(commands, detector_options: Callable, detector_config: Callable,
                      check_inputs: Callable) -> argparse.ArgumentParser:
    parser = commands.add_parser(
        "export", help="a detector as a bundle for zsad-runtime (ONNX or OpenVINO; runs without torch)",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--out", required=True, help="bundle folder to create (new or empty)")
    parser.add_argument("--format", choices=("onnx", "openvino"), default="onnx",
                        help="onnx: runs with onnxruntime (or OpenVINO); openvino: OpenVINO IR (.xml + .bin)")
    parser.add_argument("--int8", action="store_true",
                        help="INT8 weights in the backbone's matrix products (onnxruntime dynamic quantisation, "
                             "--format onnx); maps and scores move: see eval/results/bench_runtime.json")
    parser.add_argument("--references", action="append", default=None, metavar="PATH",
                        help="good reference images for few-shot methods (baked into the bundle): a folder, a file, "
                             "or a saved memory .safetensors; repeat the option for several")
    parser.add_argument("--memory", choices=tuple(MEMORY_CHOICES), default="auto",
                        help="the reference memory: baked into the graph, or a graph input stored in memory.npz "
                             "(auto: baked up to 256 MB)")
    detector_options(parser)
    parser.set_defaults(run=lambda args: run_export(args, detector_config, check_inputs))
    return parser


def run_export(args, detector_config: Callable, check_inputs: Callable) -> int:
    config = detector_config(args)
    check_inputs(args, config)
    if config.runtime.device not in ("auto", "cpu") or config.runtime.precision not in ("auto", "fp32"):
        print(f"zsad export: exporting on the CPU in fp32 (not {config.runtime.device}, {config.runtime.precision}):"
              " the graph is fp32", file=sys.stderr)
    config = replace(config, runtime=replace(config.runtime, device="cpu", precision="fp32"),
                     origins={**config.origins, "runtime.device": "export", "runtime.precision": "export"})
    from zsad.deploy import export_bundle
    from zsad.detector import Detector

    detector = Detector(config=config)
    bundle = export_bundle(detector, args.out, fmt=args.format, int8=args.int8, references=args.references,
                           memory_as_input=MEMORY_CHOICES[args.memory], preset=args.preset,
                           command=["zsad", *sys.argv[1:]] if sys.argv[1:2] == ["export"] else None)
    if config.method == "auto":
        print(f"zsad export: --method auto exports {bundle.method} (what auto runs on these inputs without a batch)",
              file=sys.stderr)
    out = Path(args.out)
    size = sum((out / name).stat().st_size for name in bundle.graph.files) / 2**20
    print(f"exported {bundle.method} ({bundle.graph.format}, {bundle.graph.precision}, {size:.1f} MB) -> {out}: "
          f"{', '.join(bundle.graph.files)}, zsad-runtime.json, card.md; run it with: zsad-runtime detect {out} "
          "IMAGES --out DIR")
    return 0
