"""Writing results: one writer per output, shared by ``zsad detect``, ``zsad eval``, the demo and ``zsad-runtime``.

Layout of an output folder::

    results.json        run description (every resolved setting) + one record per input image   (``tables``)
    results.csv         one row per input image (per-evidence scores as <name>_score columns)    (``tables``)
    overlays/NNNNN_<name>_overlay.png   image + heat map + legend                             (``overlays``)

(zsad adds ``journal/scored.jsonl`` for ``--resume``: ``zsad.outputs.journal``.) ``write_results`` runs the writers
of ``WRITERS`` in order; a new output format is one function with the same signature added there.
"""
from __future__ import annotations

import sys
from pathlib import Path

from zsad_runtime.errors import ZsadError
from zsad_runtime.outputs.base import RunOutput
from zsad_runtime.outputs.overlays import (
    MAX_OVERLAY_SIDE, colorize, display_range, overlay, overlay_name, overlay_size, write_overlays,
)
from zsad_runtime.outputs.tables import csv_writer, json_writer, write_csv
from zsad_runtime.results import AnomalyResult

__all__ = ["MAX_OVERLAY_SIDE", "RunOutput", "WRITERS", "check_output_folder", "colorize", "display_range",
           "overlay", "overlay_name", "overlay_size", "report_run", "write_csv", "write_results"]


def check_output_folder(out_dir: Path) -> Path:
    """Fail before any work when ``out_dir`` cannot hold the results (an existing file, an unwritable parent)."""
    out_dir = Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise ZsadError(f"--out {out_dir}: is an existing file, not a folder; pass a folder path")
    parent = next((p for p in [out_dir, *out_dir.parents] if p.exists()), None)
    if parent is not None and not parent.is_dir():
        raise ZsadError(f"--out {out_dir}: {parent} is a file, so the folder cannot be created; pass another path")
    try:
        (out_dir / "overlays").mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise ZsadError(f"--out {out_dir}: cannot create the folder ({error.strerror}); pass a writable path") from None
    return out_dir


# Writers in order: overlays first (they add each record's overlay path), then the tables that list them.
WRITERS = (write_overlays, json_writer, csv_writer)


def write_results(results: list[AnomalyResult], out_dir: Path, run_info: dict, load_image=None,
                  progress: bool = False, resume: bool = False, writers=WRITERS) -> Path:
    """results.json, results.csv and overlays/ (overlays when ``load_image(result) -> PIL.Image`` can re-read
    images). Each writer is ``writer(results, records, output)`` with the results' JSON records, which writers may
    extend (the overlay writer adds each overlay's path), and the shared ``RunOutput``."""
    output = RunOutput(check_output_folder(out_dir), dict(run_info), load_image, progress, resume)
    records = [result.to_record() for result in results]
    for writer in writers:
        writer(results, records, output)
    return output.out_dir / "results.json"


def report_run(results: list[AnomalyResult], report: Path) -> int:
    """The command line's summary of a detect run (``N images scored, M anomalous, K skipped -> results.json``,
    then one ``skipped:`` line per unreadable input on stderr); returns the exit status: 1 when every input failed."""
    failed = [r for r in results if r.error]
    anomalous = sum(r.is_anomalous is True for r in results)
    scored = len(results) - len(failed)
    print(f"{scored} {'image' if scored == 1 else 'images'} scored, {anomalous} anomalous, "
          f"{len(failed)} skipped -> {report}")
    for result in failed:
        print(f"skipped: {result.error}", file=sys.stderr)
    return 1 if len(failed) == len(results) else 0
