"""Reports of evaluation runs: tables beside the published numbers, plots, environment (``zsad report``).

- ``build``: markdown, JSON and a self-contained HTML page of one run (``write_report``).
- ``figures``: ROC/PR curves, per-category bars, heat-map grid, score histograms (matplotlib, ``zsad[report]``).
- ``published``: the anchors' published numbers and the protocol match.
- ``cli``: ``add_report_parser``/``run_report``.
"""
from zsad.registry import lazy_exports

__all__ = lazy_exports(__name__, {"build": ("report_data", "write_report")})
