"""``zsad-runtime``: run a bundle written by ``zsad export``, without torch.

    zsad-runtime detect BUNDLE IMAGES_OR_FOLDERS... --out DIR [--engine onnxruntime|openvino] [--threads N]
    zsad-runtime describe BUNDLE

``detect`` writes what ``zsad detect`` writes (results.json, results.csv, overlays/) with the shared writers and
prints the same summary line. Expected problems (a missing input, a bad bundle, a missing engine) print one line
``zsad-runtime: error: ...`` and exit 2; a run where every image failed exits 1.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from zsad_runtime import __version__
from zsad_runtime.engines import ENGINES
from zsad_runtime.errors import run_command


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text}")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="zsad-runtime", description="Run an anomaly detector exported by "
                                                                      "`zsad export` (no torch)")
    parser.add_argument("--version", action="version", version=f"zsad-runtime {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)
    detect = commands.add_parser("detect", help="score images: heat-map overlays + results.json/csv",
                                 formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    detect.add_argument("bundle", help="the folder `zsad export --out` wrote")
    detect.add_argument("paths", nargs="+", help="image files and/or folders")
    detect.add_argument("--out", default="zsad-out", help="output folder")
    detect.add_argument("--engine", choices=("auto", *ENGINES), default="auto",
                        help="auto: onnxruntime for an ONNX bundle, openvino for an OpenVINO one")
    detect.add_argument("--threads", type=_positive_int, default=None, help="engine threads (default: its own)")
    detect.add_argument("--batch-size", type=_positive_int, default=8, help="images per graph call")
    detect.set_defaults(run=run_detect)
    describe = commands.add_parser("describe", help="what a bundle holds and was exported with (its model card)")
    describe.add_argument("bundle", help="the folder `zsad export --out` wrote")
    describe.add_argument("--json", action="store_true", help="print zsad-runtime.json instead of the card")
    describe.set_defaults(run=run_describe)
    return parser


def run_detect(args) -> int:
    from zsad_runtime.bundle import Bundle
    from zsad_runtime.images import load_image
    from zsad_runtime.outputs import check_output_folder, report_run, write_results
    from zsad_runtime.runtime import Runtime
    from zsad_runtime.sources import check_inputs

    check_inputs(args.paths)  # cheap checks first: the inputs, the bundle's description and files, the output folder
    bundle = Bundle.read(args.bundle)
    out = check_output_folder(Path(args.out))
    runtime = Runtime(bundle, engine=None if args.engine == "auto" else args.engine, threads=args.threads,
                      batch_size=args.batch_size)
    results = runtime.detect(args.paths, progress=True)
    run_info = {"command": "detect", "inputs": [str(p) for p in args.paths],
                "references": (bundle.fingerprints.get("references") or {}).get("given"), "processes": 1,
                "settings": bundle.settings, "runner": runtime.describe()}
    report = write_results(results, out, run_info, load_image=lambda r: load_image(r.path).image, progress=True)
    return report_run(results, report)


def run_describe(args) -> int:
    from zsad_runtime.bundle import BUNDLE_FILE, Bundle

    bundle = Bundle.read(args.bundle, verify=False)
    card = bundle.path("card.md")
    if args.json or not card.is_file():
        print(json.dumps(json.loads(bundle.path(BUNDLE_FILE).read_text()), indent=1))
    else:
        print(card.read_text(), end="")
    return 0


def main(argv: list[str] | None = None) -> int:
    def command() -> int:
        args = build_parser().parse_args(argv)
        return args.run(args)

    return run_command(command, "zsad-runtime")


if __name__ == "__main__":
    sys.exit(main())
