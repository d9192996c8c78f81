"""Writing results: one writer per output, shared by ``zsad detect``, ``zsad eval``, the demo and ``zsad-runtime``.

Layout of an output folder::

    results.json        run description (every resolved setting) + one record per input image   (``tables``)
    results.csv         one row per input image (per-evidence scores as <name>_score columns)    (``tables``)
    overlays/<name>_overlay.png   image + heat map + legend (named from the image's path)     (``overlays``)
    journal/scored.jsonl  per-image evidence written as each batch is scored, for ``--resume``  (``journal``)
    journal/run.json, journal/overlays.jsonl  the run's fingerprint, the overlays written     (``journal``)

The writers (overlays, tables, ``write_results``, ``writers_with``) are defined once in the torch-free runtime
(``zsad_runtime.outputs``), so ``zsad-runtime detect`` writes the same files; the journal and the rules for reusing
an output folder (``folder``: ``--overwrite`` removes only the files zsad listed) are zsad's own.
"""
from zsad_runtime.outputs import (
    MAX_OVERLAY_SIDE, WRITERS, RunOutput, check_output_folder, colorize, display_range, heat_image, outline_regions,
    overlay, overlay_names, overlay_size, report_run, with_legend, write_csv, write_results, writers_with,
)

from zsad.outputs.folder import check_reusable, remove_written, written_files
from zsad.outputs.journal import JOURNAL, RESCORE_CHANGED, ScoreJournal

__all__ = ["JOURNAL", "MAX_OVERLAY_SIDE", "RESCORE_CHANGED", "RunOutput", "ScoreJournal", "WRITERS",
           "check_output_folder", "check_reusable", "colorize", "display_range", "heat_image", "outline_regions",
           "overlay", "overlay_names", "overlay_size", "remove_written", "report_run", "with_legend", "write_csv",
           "write_results", "writers_with", "written_files"]
