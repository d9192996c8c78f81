"""Per-defect-type tables and the mask notes: numbers equal scikit-learn on the right subsets."""
from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from sklearn.metrics import roc_auc_score
from standin_detector import StandInDetector

from zsad.evaluation import evaluate, load_run, save_run
from zsad.evaluation.evaluate import defect_type_metrics
from zsad.metrics import aupro


def test_defect_type_metrics_on_a_constructed_case() -> None:
    """Two defect types, one untyped anomalous image and four good images: each type's I-AUROC is scikit-learn's
    on that type's images against the good ones, its P-AUROC scikit-learn's over their pixels."""
    rng = np.random.default_rng(0)
    labels = [0, 0, 0, 0, 1, 1, 1, 1, 1]
    defects = [None, None, None, None, "crack", "crack", "hole", "hole", None]
    scores = [0.1, 0.5, 0.3, 0.8, 0.6, 0.2, 0.9, 0.85, 0.05]
    maps = [rng.random((6, 7)).astype(np.float32) for _ in labels]
    masks = []
    for label, anomaly_map in zip(labels, maps):
        mask = np.zeros((6, 7), bool)
        if label:
            mask[1:3, 2:5] = True
            anomaly_map[mask] += 0.3
        masks.append(mask)
    rows = defect_type_metrics(labels, defects, scores, maps, masks)
    assert list(rows) == ["crack", "hole"]
    for defect, chosen in (("crack", [4, 5, 0, 1, 2, 3]), ("hole", [6, 7, 0, 1, 2, 3])):
        y = [labels[i] for i in chosen]
        assert rows[defect]["i_auroc"] == pytest.approx(roc_auc_score(y, [scores[i] for i in chosen]), abs=1e-12)
        pixels_y = np.concatenate([masks[i].ravel() for i in chosen])
        pixels_s = np.concatenate([maps[i].ravel() for i in chosen])
        assert rows[defect]["p_auroc"] == pytest.approx(roc_auc_score(pixels_y, pixels_s), abs=1e-9)
        assert rows[defect]["aupro"] == pytest.approx(aupro([maps[i] for i in chosen], [masks[i] for i in chosen]))
    assert rows["crack"]["i_auroc"] == pytest.approx(0.5) and rows["hole"]["i_auroc"] == 1.0  # by hand
    masks[6] = None  # one "hole" image without a mask: that type has no pixel columns, the other keeps them
    rows = defect_type_metrics(labels, defects, scores, maps, masks)
    assert set(rows["hole"]) == {"i_auroc"} and set(rows["crack"]) == {"i_auroc", "p_auroc", "aupro"}
    assert set(defect_type_metrics(labels, defects, scores)["crack"]) == {"i_auroc"}


@pytest.fixture(scope="module")
def synth(tmp_path_factory) -> Path:
    from zsad.data.synth import generate_dataset

    root = tmp_path_factory.mktemp("breakdown")
    return generate_dataset(root, categories=["pill"], n_train=3, n_test_good=4, n_test_defect=1, size=96, seed=1)


def test_evaluate_per_defect_tables_equal_sklearn_and_survive_save(synth: Path, tmp_path: Path) -> None:
    run = evaluate(StandInDetector(), "mvtec", synth)
    detector = StandInDetector()
    records = run.records_of("pill", 0)
    types = sorted({r.defect for r in records if r.label == 1})
    assert list(run.defect_tables["pill"].rows) == types and len(types) >= 4
    good = [r for r in records if r.label == 0]
    for defect in types:
        chosen = [r for r in records if r.defect == defect] + good
        row = run.defect_tables["pill"].rows[defect]
        assert row["i_auroc"] == pytest.approx(roc_auc_score([r.label for r in chosen], [r.score for r in chosen]))
        maps = [detector.postprocess.apply(detector.grid(r.path), (96, 96)) for r in chosen]
        masks = [np.zeros((96, 96), bool) if r.mask_path is None else np.asarray(Image.open(r.mask_path)) > 0
                 for r in chosen]
        y, s = np.concatenate([m.ravel() for m in masks]), np.concatenate([m.ravel() for m in maps])
        assert row["p_auroc"] == pytest.approx(roc_auc_score(y, s), abs=1e-6)
    save_run(run, tmp_path / "run")
    loaded = load_run(tmp_path / "run")
    assert loaded.defect_tables == run.defect_tables and loaded.protocol_tables == {}
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics["defect_metrics"]["pill"] == run.defect_tables["pill"].to_dict(with_mean=False)
    assert "mean" not in metrics["defect_metrics"]["pill"]


def test_mask_notes_say_none_or_how_many(synth: Path, tmp_path: Path) -> None:
    root = tmp_path / "copy"
    shutil.copytree(synth, root)
    masks = sorted((root / "pill" / "ground_truth").rglob("*.png"))
    masks[0].unlink()
    run = evaluate(StandInDetector(), "mvtec", root)
    n = sum(1 for r in run.records if r.label == 1)
    assert f"pixel metrics skipped: 1 of {n} anomalous images have no mask" in run.notes["pill"]
    assert "p_auroc" not in run.table.rows["pill"]
    # the types whose images all have masks keep their pixel columns
    assert sum("p_auroc" in row for row in run.defect_tables["pill"].rows.values()) == len(masks) - 1
    shutil.rmtree(root / "pill" / "ground_truth")
    run = evaluate(StandInDetector(), "mvtec", root)
    assert "pixel metrics skipped: no masks" in run.notes["pill"] and "some" not in run.notes["pill"]
    assert all(set(row) == {"i_auroc"} for row in run.defect_tables["pill"].rows.values())
    assert not math.isnan(run.table.rows["pill"]["i_auroc"])
