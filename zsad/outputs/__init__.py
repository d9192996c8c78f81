"""Writing results: one writer per output, shared by ``zsad detect``, ``zsad eval`` and the demo.

Layout of an output folder::

    results.json        run description (every resolved setting) + one record per input image   (``tables``)
    results.csv         one row per input image (per-evidence scores as <name>_score columns)    (``tables``)
    overlays/NNNNN_<name>_overlay.png   image + heat map + legend                             (``overlays``)
    journal/scored.jsonl  per-image evidence written as each batch is scored, for ``--resume``  (``journal``)

The writers (overlays, tables, ``write_results``) are defined once in the torch-free runtime
(``zsad_runtime.outputs``), so ``zsad-runtime detect`` writes the same files; the journal is zsad's own.
"""
from zsad_runtime.outputs import (
    MAX_OVERLAY_SIDE, WRITERS, RunOutput, check_output_folder, colorize, display_range, overlay, overlay_name,
    overlay_size, report_run, write_csv, write_results,
)

from zsad.outputs.journal import JOURNAL, ScoreJournal

__all__ = ["JOURNAL", "MAX_OVERLAY_SIDE", "ScoreJournal", "WRITERS", "check_output_folder", "colorize",
           "display_range", "overlay", "overlay_name", "overlay_size", "report_run", "RunOutput", "write_csv",
           "write_results"]
