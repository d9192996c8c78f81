"""Evaluation: run a detector over a labelled data set and return data (``EvaluationRun``); ``save_run`` /
``load_run`` write and read it; ``zsad.report`` renders it.

- ``evaluate``: per-image records (maps at patch-grid resolution), per-category metric tables, run description.
- ``plan``: what a run scores and shows as normal, read and checked before any model is loaded.
- ``references``: fixed, recorded k-shot reference lists.
- ``environment``: versions, device, weights fingerprint.
- ``cli``: the ``zsad eval`` options and command.
"""
from zsad.registry import lazy_exports

__all__ = lazy_exports(__name__, {
    "evaluate": ("evaluate", "object_name_for"),
    "plan": ("EvaluationPlan", "plan_evaluation"),
    "references": ("ReferenceLists", "draw_reference_lists", "draw_references", "load_reference_lists",
                   "save_reference_lists"),
    "run": ("EvaluationRun", "ImageRecord", "load_run", "save_run"),
})
