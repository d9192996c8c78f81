"""Plots of a run as PNG bytes: ROC and PR curves, per-category bars, heat-map grid, score histograms.

Needs matplotlib (the ``zsad[report]`` extra); ``available()`` says whether it is installed. Every title ends
with "(random weights)" when the backbone was randomly initialised. Curves and histograms are image-level, from
the records' scores; for runs with several seeds they show the first seed (the caption says so).
"""
from __future__ import annotations

import io
from collections.abc import Sequence

import numpy as np

from zsad.evaluation.run import EvaluationRun, ImageRecord
from zsad.metrics import curves as ranking
from zsad.metrics.table import HEADERS

RANDOM_SUFFIX = " (random weights)"


def available() -> bool:
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return False
    return True


def _pyplot():
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def _png(fig) -> bytes:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=90, bbox_inches="tight")
    _pyplot().close(fig)
    return buffer.getvalue()


def title(run: EvaluationRun, text: str) -> str:
    return text + (RANDOM_SUFFIX if run.random_weights else "")


def _ranking(scores: Sequence[float], labels: Sequence[int]) -> ranking.RankingCurve:
    s, y = np.asarray(scores, float), np.asarray(labels, int)
    return ranking.ranking_curve(s[y == 1], s[y == 0].copy())


def roc_points(scores: Sequence[float], labels: Sequence[int]) -> tuple[np.ndarray, np.ndarray]:
    """(FPR, TPR) corners from (0, 0) to (1, 1), as the metrics compute I-AUROC (``zsad.metrics.curves``)."""
    return ranking.roc_corners(_ranking(scores, labels))


def pr_points(scores: Sequence[float], labels: Sequence[int]) -> tuple[np.ndarray, np.ndarray]:
    """(recall, precision) at every distinct score, highest threshold first, as I-AP sums them."""
    return ranking.precision_recall(_ranking(scores, labels))


def _scored(records: list[ImageRecord]) -> list[ImageRecord]:
    return [r for r in records if r.ok and r.score is not None and r.label is not None]


def curves(run: EvaluationRun, seed: int) -> bytes:
    plt = _pyplot()
    fig, (roc, pr) = plt.subplots(1, 2, figsize=(10, 4.2))
    for category in run.categories():
        records = _scored(run.records_of(category, seed))
        labels = [r.label for r in records]
        if len(set(labels)) < 2:
            continue
        scores = [r.score for r in records]
        auroc = run.tables[seed].rows[category].get("i_auroc", float("nan"))
        ap = run.tables[seed].rows[category].get("i_ap", float("nan"))
        roc.plot(*roc_points(scores, labels), label=f"{category} ({100 * auroc:.1f})")
        recall, precision = pr_points(scores, labels)
        pr.step(recall, precision, where="post", label=f"{category} ({100 * ap:.1f})")
    roc.plot([0, 1], [0, 1], color="grey", lw=0.8, ls=":")
    roc.set(xlabel="false positive rate", ylabel="true positive rate", title=title(run, "Image ROC (I-AUROC)"),
            xlim=(0, 1), ylim=(0, 1.02))
    pr.set(xlabel="recall", ylabel="precision", title=title(run, "Image PR (I-AP)"), xlim=(0, 1), ylim=(0, 1.02))
    for axis in (roc, pr):
        axis.legend(fontsize=7, loc="lower right")
    return _png(fig)


def bars(run: EvaluationRun) -> bytes:
    plt = _pyplot()
    rows = run.table.rows_with_mean()
    keys = run.table.metrics
    fig, axis = plt.subplots(figsize=(max(6, 1.2 * len(rows) * max(1, len(keys)) / 3), 4))
    width = 0.8 / max(len(keys), 1)
    x = np.arange(len(rows))
    for i, key in enumerate(keys):
        values = [100 * row.get(key, np.nan) for row in rows.values()]
        axis.bar(x + (i - (len(keys) - 1) / 2) * width, np.nan_to_num(values), width, label=HEADERS.get(key, key))
    axis.set_xticks(x, list(rows), rotation=30, ha="right")
    axis.set(ylabel="%", ylim=(0, 100), title=title(run, "Metrics per category"))
    axis.legend(fontsize=7, ncol=min(len(keys), 4), loc="lower right")
    return _png(fig)


def histograms(run: EvaluationRun, seed: int) -> bytes:
    plt = _pyplot()
    categories = run.categories()
    fig, axes = plt.subplots(1, len(categories), figsize=(4 * len(categories), 3.2), squeeze=False)
    for axis, category in zip(axes[0], categories):
        records = _scored(run.records_of(category, seed))
        normal = [r.score for r in records if r.label == 0]
        anomalous = [r.score for r in records if r.label == 1]
        edges = np.histogram_bin_edges(normal + anomalous, bins=20) if records else 10
        axis.hist(normal, bins=edges, alpha=0.6, label=f"normal ({len(normal)})", color="tab:blue")
        axis.hist(anomalous, bins=edges, alpha=0.6, label=f"anomalous ({len(anomalous)})", color="tab:red")
        thresholds = sorted({r.threshold for r in records if r.threshold is not None})
        for t in thresholds:
            axis.axvline(t, color="black", ls="--", lw=1)
        label = f"threshold {thresholds[0]:.3g}" if len(thresholds) == 1 else "verdict threshold"
        axis.set(title=title(run, category), xlabel=f"image score; dashed: {label}" if thresholds else "image score")
        axis.legend(fontsize=7)
    return _png(fig)


def pick_examples(records: list[ImageRecord]) -> list[tuple[str, ImageRecord]]:
    """(why, record): the best-detected defect, the worst miss, the worst false alarm and a typical defect."""
    scored = [r for r in _scored(records) if r.grid_map is not None]
    anomalous = sorted((r for r in scored if r.label == 1), key=lambda r: r.score)
    normal = sorted((r for r in scored if r.label == 0), key=lambda r: r.score)
    picks = []
    if anomalous:
        picks.append(("best: highest-scored defect", anomalous[-1]))
        picks.append(("worst: lowest-scored defect", anomalous[0]))
        picks.append(("typical: median defect", anomalous[len(anomalous) // 2]))
    if normal:
        picks.append(("worst: highest-scored normal", normal[-1]))
        picks.append(("typical: median normal", normal[len(normal) // 2]))
    return picks


SHORT_WHY = {
    "best: highest-scored defect": "best defect",
    "worst: lowest-scored defect": "worst defect",
    "typical: median defect": "median defect",
    "worst: highest-scored normal": "worst normal",
    "typical: median normal": "median normal",
}
CELL_WIDTH = 1.9  # inches per column: the two title lines (<= 22 characters at 7 pt) fit whatever the image shape
MAX_CELL_HEIGHT = 3.4


def _thumbnail(record: ImageRecord, side: int):
    from PIL import Image

    with Image.open(record.path) as image:
        image = image.convert("RGB")
        scale = side / max(image.size)
        size = (max(1, round(image.size[0] * scale)), max(1, round(image.size[1] * scale)))
        return size, np.asarray(image.resize(size, Image.BILINEAR))


def heatmap_figure(run: EvaluationRun, seed: int, side: int = 160):
    """The heat-map grid as a matplotlib figure: one row per category (its name on the left), one column per pick.

    Titles never collide, whatever the images' shapes: columns have a fixed width that holds a short two-line
    title (``SHORT_WHY`` and "score -> verdict"; the category is the row label, not repeated in each title), each
    row is as tall as its most portrait image needs at that width (capped), and constrained layout reserves the
    room of every title, row label and the suptitle."""
    from zsad.data.layouts.base import load_sample_mask

    plt = _pyplot()
    categories = run.categories()
    rows = []
    for category in categories:
        shown = []
        for why, record in pick_examples(run.records_of(category, seed)):
            size, thumb = _thumbnail(record, side)
            shown.append((why, record, size, thumb, run.anomaly_map(record, size)))
        rows.append(shown)
    columns = max((len(r) for r in rows), default=1) or 1
    # each row as tall as its most portrait image needs at the column width (capped), plus its two title lines
    heights = [min(MAX_CELL_HEIGHT, CELL_WIDTH * max((size[1] / size[0] for _, _, size, _, _ in r), default=1.0))
               + 0.45 for r in rows] or [CELL_WIDTH]
    fig, axes = plt.subplots(len(heights), columns, squeeze=False, layout="constrained",
                             gridspec_kw={"height_ratios": heights},
                             figsize=(CELL_WIDTH * columns + 0.5, sum(heights) + 0.4))
    for axes_row, category, shown in zip(axes, categories, rows):
        for axis in axes_row:
            axis.set_xticks([])
            axis.set_yticks([])
            for spine in axis.spines.values():
                spine.set_visible(False)
        axes_row[0].set_ylabel(category, fontsize=8)
        # one colour scale per category (row), so that the maps of one row compare
        low = min((float(m.min()) for *_, m in shown), default=0.0)
        high = max((float(m.max()) for *_, m in shown), default=1.0)
        for axis, (why, record, size, thumb, anomaly_map) in zip(axes_row, shown):
            axis.imshow(thumb)
            axis.imshow(anomaly_map, cmap="jet", alpha=0.45, vmin=low, vmax=high)
            if record.mask_path:
                mask = load_sample_mask(record.mask_path, size)
                if mask.any():
                    axis.contour(mask, levels=[0.5], colors="white", linewidths=0.8)
            verdict = {True: "anomalous", False: "normal", None: "-"}[record.is_anomalous]
            axis.set_title(f"{SHORT_WHY.get(why, why)}\n{record.score:.3g} -> {verdict}", fontsize=7)
    fig.suptitle(title(run, "Heat maps, one colour scale per row (white: ground truth)"), fontsize=9)
    return fig


def heatmaps(run: EvaluationRun, seed: int, side: int = 160) -> bytes:
    return _png(heatmap_figure(run, seed, side))


def all_figures(run: EvaluationRun) -> dict[str, bytes]:
    """name -> PNG bytes of every plot; empty when matplotlib is missing."""
    if not available():
        return {}
    seed = next(iter(run.tables))
    return {"curves": curves(run, seed), "bars": bars(run), "histograms": histograms(run, seed),
            "heatmaps": heatmaps(run, seed)}
