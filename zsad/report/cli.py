"""``zsad report RUN_DIR [RUN_DIR ...] --out DIR``: render what ``zsad eval --out`` wrote.

The lead wires it in with ``add_report_parser(commands)``; the parser's ``run`` default is ``run_report``.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

DEFAULT_PUBLISHED = Path("..") / "shared" / "published_results.csv"


def default_published() -> Path:
    """``../shared/published_results.csv`` relative to the repository (the folder holding the ``zsad`` package);
    from a git worktree nested deeper (``/work/wt/NAME``) the nearest ancestor's ``shared/`` is used instead."""
    repo = Path(__file__).resolve().parents[2]
    for folder in repo.parents:
        candidate = folder / "shared" / "published_results.csv"
        if candidate.is_file():
            return candidate
    return repo / DEFAULT_PUBLISHED


def add_report_parser(subparsers) -> argparse.ArgumentParser:
    parser = subparsers.add_parser("report", help="markdown + JSON + HTML report with plots of `zsad eval` runs")
    parser.add_argument("runs", nargs="+", help="run folder(s) written by `zsad eval --out`")
    parser.add_argument("--out", required=True,
                        help="report folder (one sub-folder per run when several runs are given)")
    parser.add_argument("--published", default=None,
                        help=f"published results CSV (default: {DEFAULT_PUBLISHED} relative to the repository); "
                             "'none' to leave published numbers out")
    parser.add_argument("--no-plots", action="store_true", help="tables only (no matplotlib needed)")
    parser.set_defaults(run=run_report)
    return parser


def run_report(args: argparse.Namespace) -> int:
    from zsad.errors import ZsadError
    from zsad.evaluation import load_run
    from zsad.report import figures
    from zsad.report.build import write_report

    published = None if args.published == "none" else Path(args.published or default_published())
    if published is not None and not published.is_file():
        if args.published:
            raise ZsadError(f"--published {published}: file not found")
        print(f"note: {published} not found; published numbers left out (pass --published PATH)", file=sys.stderr)
        published = None
    if not args.no_plots and not figures.available():
        print("note: matplotlib is not installed; plots left out (pip install 'zsad[report]')", file=sys.stderr)
    out = Path(args.out)
    for run_dir in args.runs:
        target = out if len(args.runs) == 1 else out / Path(run_dir).name
        paths = write_report(load_run(run_dir), target, published, plots=not args.no_plots)
        print(f"{run_dir} -> {paths['html']}")
    return 0
