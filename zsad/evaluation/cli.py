"""``zsad eval``: the options and the command, as functions the CLI module wires in.

``add_eval_arguments(parser)`` adds the data set, split, shots/seeds/reference-list and output options (the model
options stay the CLI's); ``run_eval(args, make_detector)`` checks the options, reads and checks the data and the
references (``plan_evaluation``: labels, splits, reference lists, no reference among the test images), and only
then builds the detector with the CLI's own builder, runs ``evaluate``, writes the run with ``save_run`` and prints
the table and notes. So every mistake in the data costs no model load.
"""
from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path

from zsad.data.layouts import LAYOUTS, layout_names, layout_options


def add_eval_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--dataset", required=True, choices=layout_names(with_aliases=True),
                        help=f"layout: {_layouts_help()}")
    parser.add_argument("--root", required=True, help="dataset root (or manifest file, or hf data set)")
    parser.add_argument("--categories", nargs="+", default=None,
                        help="categories to evaluate (default: every one the layout finds under --root)")
    parser.add_argument("--out", default="zsad-eval",
                        help="run folder: run.json, grid_maps.npz, metrics.md/json (read by `zsad report`)")
    parser.add_argument("--shots", type=int, default=0,
                        help="k-shot: k good images per category from the train split as references (0: "
                             "zero-shot); a folder has no train split: give references with --references")
    parser.add_argument("--seeds", type=int, nargs="+", default=None,
                        help="one pass per seed; k-shot reference lists are drawn per seed (default: 0)")
    parser.add_argument("--seed", type=int, default=None, help="a single seed (same as --seeds N)")
    parser.add_argument("--reference-lists", default=None,
                        help="JSON file of k-shot reference lists: read when it exists, else drawn and written there")
    _add_layout_options(parser.add_argument_group("data set options"))
    from zsad.discovery.cli import add_discover_flags

    add_discover_flags(parser)  # --discover, --discover-*: defect types per category (zsad.evaluation.discovery)


def _layouts_help() -> str:
    """Each layout with its aliases and help; ``%`` doubled because argparse formats help strings."""
    parts = []
    for entry in LAYOUTS.entries():
        also = f" (also {', '.join(entry.aliases)})" if entry.aliases else ""
        parts.append(f"{entry.name}{also}: {entry.help}" if entry.help else f"{entry.name}{also}")
    return "; ".join(parts).replace("%", "%%")


def _add_layout_options(group) -> None:
    """One flag per declared option, in layout order. Layouts that declare an option of the same name share its
    flag, whose help then names each of them."""
    helps: dict[str, list[str]] = {}
    for entry in LAYOUTS.entries():
        for option in layout_options(entry.name):
            helps.setdefault(option.name, []).append(f"{entry.name}: {option.help}")
    for name, texts in helps.items():
        flag = "--" + name.replace("_", "-")
        group.add_argument(flag, dest=name, default=None, help="; ".join(texts).replace("%", "%%"))


def dataset_options(args: argparse.Namespace) -> dict:
    """The options the chosen layout declares, as given on the command line (unset ones left to the layout). A
    flag of another layout is an error rather than ignored: it would silently read other data than asked."""
    from zsad.errors import ZsadError

    own = {option.name for option in layout_options(args.dataset)}
    owners: dict[str, list[str]] = {}
    for entry in LAYOUTS.entries():
        for option in layout_options(entry.name):
            owners.setdefault(option.name, []).append(entry.name)
    foreign = [name for name in owners if name not in own and getattr(args, name, None)]
    if foreign:
        flag = "--" + foreign[0].replace("_", "-")
        raise ZsadError(f"{flag} is an option of the {' and '.join(owners[foreign[0]])} layout, not of "
                        f"--dataset {args.dataset}; drop it or pick that layout")
    return {name: getattr(args, name) for name in own if getattr(args, name, None)}


def _good_images(args: argparse.Namespace):
    given = getattr(args, "references", None)
    if not given:
        return None
    return given[0] if len(given) == 1 and given[0].endswith(".safetensors") else given


def run_eval(args: argparse.Namespace, make_detector: Callable[[argparse.Namespace], object]) -> int:
    from zsad.discovery.cli import requested_discovery
    from zsad.discovery.configured import check_naming
    from zsad.errors import ZsadError
    from zsad.evaluation import evaluate, plan_evaluation, save_reference_lists, save_run
    from zsad.evaluation.discovery import discover_run

    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise ZsadError(f"--out {out}: exists and is not a folder; pass a folder for the run")
    if args.reference_lists and not args.shots:
        raise ZsadError("--reference-lists holds k-shot lists; pass --shots K with it (or drop it)")
    seeds = tuple(args.seeds) if args.seeds else ((args.seed,) if args.seed is not None else (0,))
    options = dataset_options(args)
    discovery = requested_discovery(args)  # its options checked before the data and the model are read
    lists_path = Path(args.reference_lists) if args.shots and args.reference_lists else None
    plan = plan_evaluation(args.dataset, Path(args.root), args.categories, args.shots, seeds,
                           references=lists_path if lists_path is not None and lists_path.is_file() else None,
                           dataset_options=options, good_images=_good_images(args))
    if lists_path is not None and not lists_path.is_file():
        save_reference_lists(plan.lists, lists_path)
        print(f"wrote reference lists to {lists_path}", file=sys.stderr)
    detector = make_detector(args)
    if discovery is not None:
        check_naming(discovery, detector.reasoning.llm if detector.reasoning is not None else None,
                     "--discover-naming")
    run = evaluate(detector, plan=plan, object_name=getattr(args, "object_name", None), progress=True)
    if discovery is not None:
        discover_run(run, lambda results, name: detector.discover(results, discovery, object_name=name),
                     discovery, out, object_name=getattr(args, "object_name", None))
    path = save_run(run, out)
    if run.random_weights:
        print("note: randomly initialised backbone; these numbers say nothing about accuracy with trained weights",
              file=sys.stderr)
    print(run.table.to_markdown())
    if run.protocol_tables:  # MVTec LOCO: its own protocol (logical / structural / mean, sPRO)
        for kind, table in run.protocol_tables.items():
            print(f"\n{kind}:\n{table.to_markdown()}")
    for category, note in run.notes.items():
        print(f"{category}: {note}", file=sys.stderr)
    for item in run.discovery.get("passes", []):
        found = f"{len(item['types'])} defect types in {item['images']} images" if item.get("types") is not None \
            else f"no types ({item['error']})"
        print(f"{item['category']} (seed {item['seed']}): {found} -> {out / (item['folder'] or '')}", file=sys.stderr)
    print(f"wrote {path.parent} (render it with: zsad report {path.parent} --out REPORT_DIR)", file=sys.stderr)
    return 0
