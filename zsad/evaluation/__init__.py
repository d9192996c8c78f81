"""Evaluation: run a detector over a labelled data set and return data (``EvaluationRun``); ``save_run`` /
``load_run`` write and read it; ``zsad.report`` renders it.

- ``evaluate``: per-image records (maps at patch-grid resolution), per-category metric tables, run description.
- ``references``: fixed, recorded k-shot reference lists.
- ``environment``: versions, device, weights fingerprint.
- ``cli``: the ``zsad eval`` options and command.
"""
from zsad.evaluation.evaluate import evaluate, object_name_for
from zsad.evaluation.references import (
    ReferenceLists,
    draw_reference_lists,
    draw_references,
    load_reference_lists,
    save_reference_lists,
)
from zsad.evaluation.run import EvaluationRun, ImageRecord, load_run, save_run

__all__ = [
    "EvaluationRun",
    "ImageRecord",
    "ReferenceLists",
    "draw_reference_lists",
    "draw_references",
    "evaluate",
    "load_reference_lists",
    "load_run",
    "object_name_for",
    "save_reference_lists",
    "save_run",
]
