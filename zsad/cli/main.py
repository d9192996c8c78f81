"""``zsad`` command line: detect, eval, report, train, adapters, synth, demo.

Expected problems (bad paths, missing weights, bad options) print one line ``zsad: error: ...`` and exit 2; a run
where every image failed exits 1; anything else is a bug and keeps its traceback. Options are checked before any
model is loaded or image is read. Choices and help texts come from the registries (backbones, scorers).
"""
from __future__ import annotations

import argparse
import math
import os
import sys
import warnings
from pathlib import Path

from zsad.errors import ZsadError

DETECTOR_OPTIONS = (
    "backbone", "pretrained", "input_size", "layers", "vv_layers", "dpam_layer", "object_name", "prompts", "method",
    "batch_size", "device", "precision", "threshold", "coreset", "rotations", "mutual_max_refs", "mutual_groups",
    "rscin_dataset", "fuse",
)


class _HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Shows defaults, but not the noise of ``(default: None)`` / ``(default: False)``."""

    def _get_help_string(self, action):
        if action.default in (None, False) or action.default is argparse.SUPPRESS:
            return action.help
        return super()._get_help_string(action)


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text}")
    return value


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"must be a finite number, got {text}")
    return value


def _fraction(text: str) -> float:
    value = float(text)
    if not 0.0 < value <= 1.0:
        raise argparse.ArgumentTypeError(f"must be a fraction in (0, 1], got {text}")
    return value


def _add_model_options(parser: argparse.ArgumentParser) -> None:
    """Detector options. Defaults are None so that a preset's settings show through; the help names the values
    that apply when neither the user nor a preset sets one."""
    from zsad.backbones import DEFAULT_BACKBONE, backbone_help
    from zsad.presets import list_presets
    from zsad.scoring.base import method_help, method_names

    group = parser.add_argument_group("model")
    group.add_argument("--preset", default=None,
                       help=f"a published setting: {', '.join(list_presets())}, or a preset YAML file; options "
                            "given explicitly override its fields (see README, Presets)")
    group.add_argument("--backbone", default=None, help=f"{backbone_help()} (default: {DEFAULT_BACKBONE})")
    group.add_argument("--pretrained", default=None,
                       help="open_clip pretrained tag, checkpoint file, or 'random' (default: the model's usual tag)")
    group.add_argument("--input-size", type=_positive_int, default=None,
                       help="backbone input side in px (default: the model's published setting)")
    group.add_argument("--layers", type=_positive_int, nargs="+", default=None,
                       help="backbone blocks whose tokens are used, 1-based (default: quarters of the depth)")
    group.add_argument("--vv-layers", type=int, default=None,
                       help="V-V attention in the last K CLIP blocks, text path only (default 0)")
    group.add_argument("--dpam-layer", type=_positive_int, default=None,
                       help="V-V attention in AnomalyCLIP's convention: its DPAM_layer N = the last N-1 blocks")
    group.add_argument("--object", dest="object_name", default=None, help="object name for text prompts")
    group.add_argument("--prompts", default=None,
                       help="text head: a prompt set name (winclip), a YAML file, or learned:ADAPTER")
    group.add_argument("--batch-size", type=_positive_int, default=None, help="images per backbone pass (default 8)")
    group.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N")
    group.add_argument("--precision", default="auto", choices=["auto", "fp32", "bf16", "fp16"],
                       help="auto: bf16 on CUDA, fp32 on CPU")
    group.add_argument("--threshold", type=_finite_float, default=None,
                       help="fixed verdict threshold on the image score (default: the batch rule, see README)")
    evidence = parser.add_argument_group("evidence")
    evidence.add_argument("--method", default=None, choices=method_names(), help=f"(default auto) {method_help()}")
    evidence.add_argument("--fuse", action="store_true",
                          help="with auto: run every evidence the inputs allow and fuse them (as --preset zsad)")
    evidence.add_argument("--references", action="append", default=None, metavar="PATH",
                          help="good reference images: a folder, a file, or a saved memory .safetensors; "
                               "repeat the option for several")
    evidence.add_argument("--rotations", action="store_true", help="add 90/180/270-degree copies of the references")
    evidence.add_argument("--coreset", type=_fraction, default=None, help="keep this fraction of reference patches")
    evidence.add_argument("--mutual-max-refs", type=_positive_int, default=None,
                          help="compare each image with at most this many others (bounds mutual scoring's O(N^2))")
    evidence.add_argument("--mutual-groups", type=_positive_int, default=None,
                          help="score the batch in this many random groups (MuSc's divide_num; default: 1 up to "
                               "200 images, then groups of at most 200; 1 forces the full comparison)")
    evidence.add_argument("--rscin-dataset", default=None, choices=["mvtec", "visa", "btad"],
                          help="MuSc's RsCIN window sizes for this kind of data (mvtec: 1 2 3, visa: 1 8 9)")
    evidence.add_argument("--no-rscin", action="store_true", help="disable RsCIN re-scoring of mutual image scores")


def _options(args) -> dict:
    options = {name: getattr(args, name, None) for name in DETECTOR_OPTIONS}
    options["rscin"] = False if args.no_rscin else None
    options["rotations"] = args.rotations or None
    options["fuse"] = args.fuse or None
    options["preset"] = args.preset
    return options


def _check_local_inputs(args) -> None:
    """Cheap checks of everything the user named, before the model is loaded."""
    for path in getattr(args, "paths", None) or []:
        if not Path(path).exists():
            raise ZsadError(f"{path}: no such file or folder; check the path")
    for path in args.references or []:
        if not Path(path).exists():
            raise ZsadError(f"--references {path}: no such file or folder; check the path")
    pretrained = args.pretrained
    if pretrained and (os.sep in pretrained or pretrained.endswith((".bin", ".pt", ".pth", ".safetensors"))):
        if not Path(pretrained).is_file():
            raise ZsadError(f"--pretrained {pretrained}: file not found; pass an existing checkpoint file")
    if pretrained and (args.backbone or "").startswith("tiny-") and pretrained != "random":
        raise ZsadError(f"--pretrained {pretrained}: {args.backbone} is a random test model and takes no weights; "
                        "drop --pretrained or pick a real backbone")


def _detector(args, reasoning=None):
    from zsad.detector import Detector

    return Detector(reasoning=reasoning, **_options(args))


def _references(args):
    if not args.references:
        return None
    if len(args.references) == 1 and args.references[0].endswith(".safetensors"):
        return args.references[0]
    return args.references


def cmd_detect(args) -> int:
    if args.processes > 1 and "WORLD_SIZE" not in os.environ:
        return _relaunch(args.processes)
    state = _process_state(args.device)
    try:
        return _detect_in_process(args, state)
    finally:
        if state is not None:  # every process waits for the main one to finish writing, then closes the group
            from zsad.scoring.mutual.distributed import close_process_group

            state.wait_for_everyone()
            close_process_group()


def _detect_in_process(args, state) -> int:
    from zsad.data.images import load_image
    from zsad.outputs import ScoreJournal, check_output_folder, write_results
    from zsad.scoring.fewshot import build_memory

    main_process = state is None or state.is_main_process
    _check_local_inputs(args)
    out = check_output_folder(Path(args.out)) if main_process else Path(args.out)
    if state is not None and args.device == "auto":
        args.device = str(state.device)  # one device per process
    from zsad.reasoning import reasoning_from_args

    reasoning = reasoning_from_args(args)
    if reasoning.definition is not None and main_process:
        print(f"definition understood as: {reasoning.definition.summary()}", file=sys.stderr)
    detector = _detector(args, reasoning)
    references = _references(args)
    if references is not None and not isinstance(references, str):
        references = build_memory(detector, references, progress=main_process)
        if args.save_memory and main_process:
            references.save(args.save_memory)
            print(f"saved reference memory to {args.save_memory}", file=sys.stderr)
    if args.calibrate:
        from zsad.data.layouts.folders import manifest_samples

        samples = [s for group in manifest_samples(args.calibrate).values() for s in group]
        value = detector.calibrate([s.path for s in samples], [s.label for s in samples], references=references,
                                   progress=main_process)
        print(f"calibrated threshold {value:.6g} (F1-max on {args.calibrate})", file=sys.stderr)
    journal = ScoreJournal(out, resume=args.resume) if state is None else None
    results = detector.detect(args.paths, references=references, object_name=args.object_name,
                              progress=main_process, journal=journal, state=state)
    if not main_process:
        return 0
    run_info = {"command": "detect", "inputs": [str(p) for p in args.paths], "references": args.references,
                "processes": 1 if state is None else state.num_processes, "settings": detector.describe()}
    report = write_results(results, out, run_info, load_image=lambda r: load_image(r.path).image,
                           progress=True, resume=args.resume)
    failed = [r for r in results if r.error]
    anomalous = sum(r.is_anomalous is True for r in results)
    scored = len(results) - len(failed)
    print(f"{scored} {'image' if scored == 1 else 'images'} scored, {anomalous} anomalous, "
          f"{len(failed)} skipped -> {report}")
    for result in failed:
        print(f"skipped: {result.error}", file=sys.stderr)
    return 1 if len(failed) == len(results) else 0


def _process_state(device: str = "auto"):
    """An accelerate state when launched as several processes (torchrun / accelerate launch), else None.

    Without CUDA (or with ``--device cpu``) accelerate must be told ``cpu=True``: otherwise, under torchrun on a
    CPU-only machine, ``PartialState()`` reports a single process (DistributedType.NO) and every process would
    score all images and write the results file itself.
    """
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return None
    import torch
    from accelerate import PartialState

    return PartialState(cpu=device == "cpu" or (device == "auto" and not torch.cuda.is_available()))


def _relaunch(processes: int) -> int:
    """``--processes N`` on one machine: the same command under torchrun with N processes."""
    import subprocess

    argv = sys.argv[1:]
    cleaned, skip = [], False
    for item in argv:
        if skip:
            skip = False
            continue
        if item == "--processes":
            skip = True
            continue
        if item.startswith("--processes="):
            continue
        cleaned.append(item)
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={processes}",
               "-m", "zsad.cli.main", *cleaned]
    return subprocess.call(command)


def cmd_train(args) -> int:
    if args.processes > 1 and "WORLD_SIZE" not in os.environ:
        return _relaunch(args.processes)
    from zsad.learning.cli import run_train

    return run_train(args)


def cmd_eval(args) -> int:
    from zsad.evaluation.cli import run_eval

    _check_local_inputs(args)
    return run_eval(args, _detector)


def cmd_synth(args) -> int:
    from zsad.data.synth import generate_dataset

    out = generate_dataset(
        Path(args.out), categories=args.category, n_train=args.n_train, n_test_good=args.n_test_good,
        n_test_defect=args.n_test_defect, size=args.size, seed=args.seed,
    )
    print(f"wrote {out}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    from zsad import __version__
    from zsad.data.synth import DEFECT_TYPES, SYNTH_CATEGORIES
    from zsad.demo import add_demo_parser
    from zsad.evaluation.cli import add_eval_arguments
    from zsad.learning.cli import add_adapters_parser, add_train_parser, run_adapters
    from zsad.reasoning import add_reasoning_options
    from zsad.report.cli import add_report_parser

    parser = argparse.ArgumentParser(prog="zsad", description="Zero-shot visual anomaly detection")
    parser.add_argument("--version", action="version", version=f"zsad {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)

    detect = commands.add_parser("detect", help="score images: heat-map overlays + results.json/csv",
                                 formatter_class=_HelpFormatter)
    detect.add_argument("paths", nargs="+", help="image files and/or folders")
    detect.add_argument("--out", default="zsad-out", help="output folder")
    detect.add_argument("--resume", action="store_true",
                        help="keep what an interrupted run into the same --out already scored and wrote")
    detect.add_argument("--processes", type=_positive_int, default=1,
                        help="split the images between this many processes on this machine (torchrun)")
    detect.add_argument("--calibrate", default=None,
                        help="labelled manifest (CSV/JSON with path,label) to set the threshold by F1-max")
    detect.add_argument("--save-memory", default=None, help="save the reference memory to this .safetensors file")
    _add_model_options(detect)
    add_reasoning_options(detect)
    detect.set_defaults(run=cmd_detect)

    evaluate = commands.add_parser("eval", help="metrics on a labelled dataset; writes a run folder for `zsad report`",
                                   formatter_class=_HelpFormatter)
    add_eval_arguments(evaluate)
    _add_model_options(evaluate)
    evaluate.set_defaults(run=cmd_eval)

    add_report_parser(commands)
    train = add_train_parser(commands)
    train.add_argument("--processes", type=_positive_int, default=1,
                       help="train with this many processes on this machine (torchrun; DDP, gradients averaged)")
    train.set_defaults(run=cmd_train)
    add_adapters_parser(commands).set_defaults(run=run_adapters)

    synth = commands.add_parser("synth", help="generate an MVTec-layout dataset with planted defects",
                                formatter_class=_HelpFormatter)
    synth.add_argument("out", help="output folder (one sub-folder per category)")
    synth.add_argument("--category", nargs="+", default=None, choices=sorted(SYNTH_CATEGORIES),
                       help="categories (default: all)")
    synth.add_argument("--n-train", type=int, default=10, help="good training images per category")
    synth.add_argument("--n-test-good", type=int, default=10, help="good test images per category")
    synth.add_argument("--n-test-defect", type=int, default=4,
                       help=f"defective test images per defect type ({', '.join(DEFECT_TYPES)})")
    synth.add_argument("--size", type=int, default=256, help="image side in px")
    synth.add_argument("--seed", type=int, default=0, help="random seed (same seed, same files)")
    synth.set_defaults(run=cmd_synth)

    add_demo_parser(commands)
    return parser


def _show_warning(message, category, filename, lineno, file=None, line=None) -> None:
    """Warnings raised by zsad itself read as messages on the command line, without a source location."""
    if issubclass(category, UserWarning) and filename.startswith(str(Path(__file__).parents[1])):
        print(f"zsad: warning: {message}", file=sys.stderr)
    else:
        print(warnings.formatwarning(message, category, filename, lineno, line), end="", file=sys.stderr)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        with warnings.catch_warnings():
            warnings.showwarning = _show_warning
            return args.run(args)
    except ZsadError as error:
        print(f"zsad: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("zsad: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
