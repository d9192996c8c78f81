"""Writing results: one writer per output, shared by ``zsad detect``, ``zsad eval`` and the demo.

Layout of an output folder::

    results.json        run description (every resolved setting) + one record per input image   (``tables``)
    results.csv         one row per input image (per-evidence scores as <name>_score columns)    (``tables``)
    overlays/<name>_overlay.png   image + heat map + legend, named from the image's path     (``overlays``)
    journal/            the run's fingerprint, per-image evidence as batches are scored, the overlays written
                        with what each shows: what ``--resume`` checks and reuses                (``journal``)

Which files of a folder zsad wrote, and whether a folder can take a run, is ``folder``.

``write_results`` runs the writers of ``WRITERS`` in order; a new output format is one function with the same
signature added there. A stage that adds fields to every record (defect types: ``zsad.discovery.writer``) is a
writer run before the tables: ``write_results(..., writers=writers_with(its_writer))``.
"""
from __future__ import annotations

from pathlib import Path

from zsad.outputs.base import RunOutput
from zsad.outputs.folder import check_output_folder, check_reusable, remove_written, written_files
from zsad.outputs.journal import JOURNAL, RESCORE_CHANGED, ScoreJournal
from zsad.outputs.overlays import (
    MAX_OVERLAY_SIDE, colorize, display_range, overlay, overlay_names, overlay_size, write_overlays,
)
from zsad.outputs.tables import csv_writer, json_writer, write_csv
from zsad.results import AnomalyResult

__all__ = ["JOURNAL", "MAX_OVERLAY_SIDE", "RESCORE_CHANGED", "ScoreJournal", "WRITERS", "check_output_folder",
           "check_reusable", "colorize", "display_range", "overlay", "overlay_names", "overlay_size",
           "remove_written", "RunOutput", "write_csv", "write_results", "writers_with", "written_files"]


# Writers in order: overlays first (they add each record's overlay path), then the tables that list them.
WRITERS = (write_overlays, json_writer, csv_writer)


def writers_with(writer, writers=WRITERS) -> tuple:
    """``writers`` with ``writer`` inserted before the tables (``json_writer``), so the fields it adds to the
    records and the run description are in results.json and results.csv."""
    position = writers.index(json_writer) if json_writer in writers else len(writers)
    return (*writers[:position], writer, *writers[position:])


def write_results(results: list[AnomalyResult], out_dir: Path, run_info: dict, load_image=None,
                  progress: bool = False, journal: ScoreJournal | None = None, writers=WRITERS) -> Path:
    """results.json, results.csv and overlays/ (overlays when ``load_image(result) -> PIL.Image`` can re-read
    images). Each writer is ``writer(results, records, output)`` with the results' JSON records, which writers may
    extend (the overlay writer adds each overlay's path), and the shared ``RunOutput``. ``journal``: the folder's
    journal (overlays are logged in it, and reused only when their entry matches)."""
    output = RunOutput(check_output_folder(out_dir), dict(run_info), load_image, progress, journal)
    records = [result.to_record() for result in results]
    for writer in writers:
        writer(results, records, output)
    return output.out_dir / "results.json"
