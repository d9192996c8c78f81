"""``zsad`` command line: detect, eval, report, train, adapters, synth, demo, discover, export.

Expected problems (bad paths, missing weights, bad options) print one line ``zsad: error: ...`` and exit 2; a run
where every image failed exits 1; anything else is a bug and keeps its traceback. Options are checked before any
model is loaded or image is read. The detector's flags are generated from the config's field declarations
(``zsad.config_fields``), and choices and help texts come from the registries: ``--help`` loads no torch.
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from zsad.errors import ZSAD_CODE, ZsadError, run_command


class _HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Shows defaults, but not the noise of ``(default: None)`` / ``(default: False)`` / suppressed ones."""

    def _get_help_string(self, action):
        if action.default in (None, False) or action.default is argparse.SUPPRESS:
            return action.help
        return super()._get_help_string(action)


def positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text}")
    return value


positive_int.__name__ = "positive integer"


def add_detector_options(parser: argparse.ArgumentParser) -> None:
    """``--preset`` and one flag per detector setting (``zsad.config_fields.add_flags``)."""
    from zsad.config import settings_table
    from zsad.config_fields import add_flags
    from zsad.presets import list_presets

    parser.add_argument("--preset", default=None,
                        help=f"a published setting: {', '.join(list_presets())}, or a preset YAML file; options "
                             "given explicitly override its fields (see README, Presets)")
    add_flags(parser, settings_table())


def detector_config(args):
    """The ``DetectorConfig`` of the parsed flags (``none`` sets an optional setting to None)."""
    from zsad.config import build_config
    from zsad.config import settings_table
    from zsad.config_fields import given_options

    return build_config(preset=args.preset, keep_none=True, **given_options(args, settings_table()))


def check_local_inputs(args, config) -> None:
    """Cheap checks of everything the user named, before the model is loaded."""
    from zsad_runtime.sources import check_inputs

    check_inputs(getattr(args, "paths", None))
    for path in getattr(args, "references", None) or []:
        if not Path(path).exists():
            raise ZsadError(f"--references {path}: no such file or folder; check the path")
    pretrained, name = config.backbone.pretrained, config.backbone.name
    if pretrained and (os.sep in pretrained or pretrained.endswith((".bin", ".pt", ".pth", ".safetensors"))):
        if not Path(pretrained).is_file():
            raise ZsadError(f"--pretrained {pretrained}: file not found; pass an existing checkpoint file")
    if pretrained not in (None, "random") and name.startswith("tiny-") and "backbone.pretrained" in _explicit(config):
        raise ZsadError(f"--pretrained {pretrained}: {name} is a random test model and takes no weights; "
                        "drop --pretrained or pick a real backbone")


def _explicit(config) -> set[str]:
    return {path for path, origin in config.origins.items() if origin == "option"}


def make_detector(args, config=None):
    from zsad.detector import Detector

    return Detector(config=config if config is not None else detector_config(args))


def cmd_detect(args) -> int:
    from zsad.parallel import finish, process_state, relaunch

    if args.processes > 1 and "WORLD_SIZE" not in os.environ:
        return relaunch(args.processes)
    config = detector_config(args)
    check_local_inputs(args, config)
    state = process_state(config.runtime.device)
    try:
        return _detect_in_process(args, config, state)
    finally:
        finish(state)


def _detect_in_process(args, config, state) -> int:
    from dataclasses import replace

    from zsad.data.images import load_image
    from zsad.discovery.cli import DiscoveryStep, requested_discovery
    from zsad.outputs import WRITERS, check_output_folder, check_reusable, report_run, write_results, writers_with
    from zsad.parallel import is_main
    from zsad.reasoning.summary import explanation_summary

    main_process = is_main(state)
    out = check_output_folder(Path(args.out)) if main_process else Path(args.out)
    check_reusable(out, overwrite=args.overwrite)  # every process: all refuse alike, none waits for the others
    if state is not None and config.runtime.device == "auto":
        config = replace(config, runtime=replace(config.runtime, device=str(state.device)))  # one per process
    discovery = requested_discovery(args)  # its options checked before the model loads
    detector = make_detector(args, config)
    step = DiscoveryStep(detector, discovery, config.text_head.object_name) if discovery is not None and main_process \
        else None
    if detector.reasoning is not None and detector.reasoning.definition is not None and main_process:
        print(f"definition understood as: {detector.reasoning.definition.summary()}", file=sys.stderr)
    references = args.references
    if references is not None:
        references = detector.build_memory(references, progress=main_process)
        if args.save_memory and main_process:
            references.save(args.save_memory)
            print(f"saved reference memory to {args.save_memory}", file=sys.stderr)
    if args.calibrate:
        from zsad.data.layouts.folders import manifest_samples

        samples = [s for group in manifest_samples(args.calibrate).values() for s in group]
        value = detector.calibrate([s.path for s in samples], [s.label for s in samples], references=references,
                                   progress=main_process)
        print(f"calibrated threshold {value:.6g} (F1-max on {args.calibrate})", file=sys.stderr)
    journal = _open_journal(args, out, detector, references, main_process)
    results = detector.detect(args.paths, references=references, object_name=config.text_head.object_name,
                              progress=main_process, journal=journal if state is None else None, state=state)
    if not main_process:
        return 0
    run_info = {"command": "detect", "inputs": [str(p) for p in args.paths], "references": args.references,
                "processes": 1 if state is None else state.num_processes, "settings": detector.describe()}
    report = write_results(results, out, run_info, load_image=lambda r: load_image(r.path).image,
                           progress=True, journal=journal,
                           writers=writers_with(step.writer()) if step else WRITERS)
    # "explanations: 28 by LLM, 2 by rules after timeout" on the summary line; "" without an LLM
    status = report_run(results, report, extra=explanation_summary(results))
    if step:
        step.report(out)
    return status


def _open_journal(args, out: Path, detector, references, main_process: bool):
    """The output folder's journal with this run's fingerprint (``references``: the built reference memory or
    None): refuses a folder of other settings (unless
    --overwrite), and with --resume a journal of other settings or inputs changed since they were scored
    (``zsad.outputs.journal``), all before any image is scored."""
    from zsad.data.sources import expand_sources
    from zsad.evaluation.environment import result_fingerprint
    from zsad.outputs import ScoreJournal

    journal = ScoreJournal(out, resume=args.resume, fingerprint=result_fingerprint(detector, references),
                           overwrite=args.overwrite, write=main_process)
    if args.resume:
        changed = journal.check_inputs([s.path for s in expand_sources(args.paths) if s.path is not None])
        if changed and main_process:
            print(f"scoring again {len(changed)} input(s) changed since they were scored", file=sys.stderr)
    return journal


def resume_mode(text: str) -> str:
    """``--resume=rescore-changed``; anything else is refused with the two spellings."""
    from zsad.outputs import RESCORE_CHANGED

    if text != RESCORE_CHANGED:
        raise argparse.ArgumentTypeError(f"{text!r} is not a resume mode; write --resume or "
                                         f"--resume={RESCORE_CHANGED}, with the image paths before it")
    return text


def cmd_train(args) -> int:
    from zsad.parallel import relaunch

    if args.processes > 1 and "WORLD_SIZE" not in os.environ:
        return relaunch(args.processes)
    from zsad.learning.cli import run_train

    return run_train(args)


def cmd_eval(args) -> int:
    from zsad.evaluation.cli import run_eval

    config = detector_config(args)
    check_local_inputs(args, config)
    return run_eval(args, lambda parsed: make_detector(parsed, config))


def cmd_synth(args) -> int:
    from zsad.data.synth import generate_dataset

    out = generate_dataset(
        Path(args.out), categories=args.category, n_train=args.n_train, n_test_good=args.n_test_good,
        n_test_defect=args.n_test_defect, size=args.size, seed=args.seed,
        severity_levels=args.severity_levels, graded=args.graded,
    )
    print(f"wrote {out}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    from zsad import __version__
    from zsad.data.synth import DEFECT_TYPES, SYNTH_CATEGORIES
    from zsad.demo.cli import add_demo_parser
    from zsad.discovery.cli import add_discover_flags, add_discover_parser
    from zsad.evaluation.cli import add_eval_arguments
    from zsad.export.cli import add_export_parser
    from zsad.learning.cli import add_adapters_parser, add_train_parser, run_adapters
    from zsad.report.cli import add_report_parser

    parser = argparse.ArgumentParser(prog="zsad", description="Zero-shot visual anomaly detection")
    parser.add_argument("--version", action="version", version=f"zsad {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)

    detect = commands.add_parser("detect", help="score images: heat-map overlays + results.json/csv",
                                 formatter_class=_HelpFormatter)
    detect.add_argument("paths", nargs="+", help="image files and/or folders")
    detect.add_argument("--out", default="zsad-out", help="output folder")
    detect.add_argument("--references", action="append", default=None, metavar="PATH",
                        help="good reference images: a folder, a file, or a saved memory .safetensors; repeat the "
                             "option for several")
    detect.add_argument("--save-memory", default=None, metavar="FILE",
                        help="save the reference memory to this .safetensors file")
    detect.add_argument("--calibrate", default=None, metavar="MANIFEST",
                        help="labelled manifest (CSV/JSON with path,label) to set the threshold by F1-max")
    detect.add_argument("--resume", nargs="?", const=True, default=False, type=resume_mode, metavar="rescore-changed",
                        help="keep what an interrupted run of the same settings into the same --out already scored "
                             "and wrote; refused when settings or input files changed since, unless "
                             "--resume=rescore-changed, which scores those again")
    detect.add_argument("--overwrite", action="store_true",
                        help="write into a non-empty --out that holds other files or another run: only the files "
                             "zsad wrote there (listed in its journal and results.json) are removed")
    detect.add_argument("--processes", type=positive_int, default=1,
                        help="split the images between this many processes on this machine (torchrun)")
    add_detector_options(detect)
    add_discover_flags(detect)
    detect.set_defaults(run=cmd_detect)

    evaluate = commands.add_parser("eval", help="metrics on a labelled dataset; writes a run folder for `zsad report`",
                                   formatter_class=_HelpFormatter)
    add_eval_arguments(evaluate)
    evaluate.add_argument("--references", action="append", default=None, metavar="PATH",
                          help="the same good reference images for every category (instead of --shots draws)")
    add_detector_options(evaluate)
    evaluate.set_defaults(run=cmd_eval)

    add_report_parser(commands)
    add_discover_parser(commands)
    add_export_parser(commands, add_detector_options, detector_config, check_local_inputs)
    train = add_train_parser(commands)
    train.add_argument("--processes", type=positive_int, default=1,
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
    synth.add_argument("--severity-levels", type=int, default=0, metavar="L",
                       help="grade the defects in L size and/or contrast levels, recorded per image in "
                            "<category>/manifest.json (0: ungraded)")
    synth.add_argument("--graded", nargs="+", default=["size", "contrast"], choices=["size", "contrast"],
                       help="what --severity-levels grades")
    synth.set_defaults(run=cmd_synth)

    add_demo_parser(commands)
    _show_defaults(parser)
    return parser


def _show_defaults(parser: argparse.ArgumentParser) -> None:
    """Every command's ``--help`` shows its defaults, whichever module added the command."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                sub.formatter_class = _HelpFormatter
                _show_defaults(sub)


def main(argv: list[str] | None = None) -> int:
    def command() -> int:
        args = build_parser().parse_args(argv)
        return args.run(args)

    return run_command(command, "zsad", own=ZSAD_CODE)


if __name__ == "__main__":
    sys.exit(main())
