"""Writing results: one writer per output, shared by ``zsad detect``, ``zsad eval``, the demo and ``zsad-runtime``.

Layout of an output folder::

    results.json        run description (every resolved setting) + one record per input image   (``tables``)
    results.csv         one row per input image (per-evidence scores as <name>_score columns)    (``tables``)
    overlays/<name>_overlay.png   image + heat map + legend (named from the image's path)     (``overlays``)

(zsad adds ``journal/`` for ``--resume`` and ``--overwrite``: ``zsad.outputs.journal``, ``zsad.outputs.folder``.)
``write_results`` runs the writers of ``WRITERS`` in order; a new output format is one function with the same
signature added there. A stage that adds fields to every record (zsad's defect types) is a writer run before the
tables: ``write_results(..., writers=writers_with(its_writer))``.
"""
from __future__ import annotations

import sys
from pathlib import Path

from zsad_runtime.errors import ZsadError
from zsad_runtime.outputs.base import RunOutput
from zsad_runtime.outputs.overlays import (
    MAX_OVERLAY_SIDE,
    colorize,
    display_range,
    heat_image,
    outline_regions,
    overlay,
    overlay_names,
    overlay_size,
    with_legend,
    write_overlays,
)
from zsad_runtime.outputs.tables import csv_writer, json_writer, write_csv
from zsad_runtime.results import AnomalyResult
from zsad_runtime.verdict import certainty_words

__all__ = ["MAX_OVERLAY_SIDE", "RunOutput", "WRITERS", "check_output_folder", "colorize", "display_range",
           "heat_image", "outline_regions", "overlay", "overlay_names", "overlay_size", "report_run", "with_legend",
           "write_csv", "write_results", "writers_with"]


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


def writers_with(writer, writers=WRITERS) -> tuple:
    """``writers`` with ``writer`` inserted before the tables (``json_writer``), so the fields it adds to the
    records and the run description are in results.json and results.csv."""
    position = writers.index(json_writer) if json_writer in writers else len(writers)
    return (*writers[:position], writer, *writers[position:])


def write_results(results: list[AnomalyResult], out_dir: Path, run_info: dict, load_image=None,
                  progress: bool = False, journal=None, writers=WRITERS) -> Path:
    """results.json, results.csv and overlays/ (overlays when ``load_image(result) -> PIL.Image`` can re-read
    images). Each writer is ``writer(results, records, output)`` with the results' JSON records, which writers may
    extend (the overlay writer adds each overlay's path), and the shared ``RunOutput``. ``journal``: zsad's journal
    of the folder (overlays are logged in it, and reused only when their entry matches); None for the runtime."""
    output = RunOutput(check_output_folder(out_dir), dict(run_info), load_image, progress, journal)
    records = [result.to_record() for result in results]
    for writer in writers:
        writer(results, records, output)
    return output.out_dir / "results.json"


def report_run(results: list[AnomalyResult], report: Path, extra: str = "") -> int:
    """The command line's summary of a detect run: which rule decided and how sure it is (``verdict:
    conformal_mixture: false alarms <= 11.1 % (8 references); ...``), then ``N images scored, M anomalous, K
    skipped[; extra] -> results.json``, then one ``skipped:`` line per unreadable input on stderr; returns the exit
    status: 1 when every input failed. ``extra``: more to say on the line (zsad: how the explanations were made)."""
    failed = [r for r in results if r.error]
    anomalous = sum(r.is_anomalous is True for r in results)
    scored = len(results) - len(failed)
    decided = next((r for r in results if r.ok), None)
    if decided is not None and decided.threshold_name:
        on = f", on the {decided.decided_on} scores" if decided.decided_apart else ""
        print(f"verdict: {certainty_words(decided.threshold_name, decided.certainty)}{on}")
    print(f"{scored} {'image' if scored == 1 else 'images'} scored, {anomalous} anomalous, "
          f"{len(failed)} skipped{'; ' + extra if extra else ''} -> {report}")
    for result in failed:
        print(f"skipped: {result.error}", file=sys.stderr)
    return 1 if len(failed) == len(results) else 0
