"""``zsad eval``: the options and the command, as functions the CLI module wires in.

``add_eval_arguments(parser)`` adds the data set, split, shots/seeds/reference-list and output options (the model
options stay the CLI's); ``run_eval(args, make_detector)`` builds the detector with the CLI's own builder, runs
``evaluate``, writes the run with ``save_run`` and prints the table and notes.
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
                        help="k-shot: k good training images per category as references (0: zero-shot)")
    parser.add_argument("--seeds", type=int, nargs="+", default=None,
                        help="one pass per seed; k-shot reference lists are drawn per seed (default: 0)")
    parser.add_argument("--seed", type=int, default=None, help="a single seed (same as --seeds N)")
    parser.add_argument("--reference-lists", default=None,
                        help="JSON file of k-shot reference lists: read when it exists, else drawn and written there")
    _add_layout_options(parser.add_argument_group("data set options"))


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
    """The options the chosen layout declares, as given on the command line (unset ones left to the layout)."""
    return {option.name: getattr(args, option.name) for option in layout_options(args.dataset)
            if getattr(args, option.name, None)}


def _good_images(args: argparse.Namespace):
    given = getattr(args, "references", None)
    if not given:
        return None
    return given[0] if len(given) == 1 and given[0].endswith(".safetensors") else given


def run_eval(args: argparse.Namespace, make_detector: Callable[[argparse.Namespace], object]) -> int:
    from zsad.errors import ZsadError
    from zsad.evaluation import (
        draw_reference_lists,
        evaluate,
        load_reference_lists,
        save_reference_lists,
        save_run,
    )

    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise ZsadError(f"--out {out}: exists and is not a folder; pass a folder for the run")
    seeds = tuple(args.seeds) if args.seeds else ((args.seed,) if args.seed is not None else (0,))
    options = dataset_options(args)
    references = None
    if args.shots and args.reference_lists:
        path = Path(args.reference_lists)
        if path.is_file():
            references = load_reference_lists(path)
        else:
            references = draw_reference_lists(args.dataset, args.root, args.categories, (args.shots,), seeds, **options)
            save_reference_lists(references, path)
            print(f"wrote reference lists to {path}", file=sys.stderr)
    run = evaluate(make_detector(args), args.dataset, Path(args.root), categories=args.categories, shots=args.shots,
                   seeds=seeds, references=references, object_name=getattr(args, "object_name", None),
                   progress=True, dataset_options=options, good_images=_good_images(args))
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
    print(f"wrote {path.parent} (render it with: zsad report {path.parent} --out REPORT_DIR)", file=sys.stderr)
    return 0
