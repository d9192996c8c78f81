"""evaluate() returns data: records, tables and description, numbers equal to independent computations."""
from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from sklearn.metrics import average_precision_score, roc_auc_score
from standin_detector import StandInDetector

from zsad.evaluation import (
    EvaluationRun,
    draw_reference_lists,
    evaluate,
    load_reference_lists,
    load_run,
    object_name_for,
    save_reference_lists,
    save_run,
)

CATEGORIES = ["pill", "weave"]


@pytest.fixture(scope="module")
def synth(tmp_path_factory) -> Path:
    from zsad.data.synth import generate_dataset

    root = tmp_path_factory.mktemp("evalsynth")
    return generate_dataset(root, categories=CATEGORIES, n_train=4, n_test_good=4, n_test_defect=1, size=96, seed=0)


def _files(folder: Path) -> set[Path]:
    return {p for p in folder.rglob("*")}


def test_evaluate_returns_data_and_writes_nothing(synth: Path, capsys, tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    before = _files(synth)
    detector = StandInDetector()
    run = evaluate(detector, "mvtec", synth)
    assert isinstance(run, EvaluationRun)
    assert capsys.readouterr() == ("", "") and _files(synth) == before and not any(tmp_path.iterdir())
    assert run.categories() == CATEGORIES
    n_test = sum(len(list((synth / c / "test").rglob("*.png"))) for c in CATEGORIES)
    assert len(run.records) == n_test == run.description["n_images"]
    record = next(r for r in run.records if r.label == 1)
    assert record.mask_path and record.defect and record.grid_map.shape == (6, 6) and record.grid_map.dtype == np.float32
    assert record.evidence["text"]["score"] == record.score and record.threshold == 0.08
    assert record.is_anomalous == (record.score >= 0.08) and record.original_size == (96, 96)
    assert [c["object_name"] for c in detector.calls] == ["pill", "weave"]
    assert all(c["references"] is None for c in detector.calls)
    description = run.description
    assert description["detector"]["random_weights"] is True
    assert len(description["detector"]["weights_fingerprint"]["sha256"]) == 64
    assert description["versions"]["torch"] and description["seeds"] == [0] and description["shots"] == 0
    assert description["detector"]["settings"]["postprocess"]["sigma"] == 2.0
    assert run.postprocess == {"input_size": 96, "sigma": 2.0, "align_corners": False, "padding": "mirror",
                               "smooth_at": "input"}


def test_metrics_equal_independent_computation(synth: Path) -> None:
    run = evaluate(StandInDetector(), "mvtec", synth)
    detector = StandInDetector()
    for category in CATEGORIES:
        records = run.records_of(category)
        labels = [r.label for r in records]
        scores = [float(detector.grid(r.path).max()) for r in records]
        row = run.table.rows[category]
        assert row["i_auroc"] == pytest.approx(roc_auc_score(labels, scores), abs=1e-12)
        assert row["i_ap"] == pytest.approx(average_precision_score(labels, scores), abs=1e-12)
        maps, masks = [], []
        for r in records:
            maps.append(detector.postprocess.apply(detector.grid(r.path), (96, 96)).ravel())
            mask = np.zeros((96, 96), bool) if r.mask_path is None else np.asarray(Image.open(r.mask_path)) > 0
            masks.append(mask.ravel())
        assert row["p_auroc"] == pytest.approx(roc_auc_score(np.concatenate(masks), np.concatenate(maps)), abs=1e-6)
        assert row["p_ap"] == pytest.approx(average_precision_score(np.concatenate(masks), np.concatenate(maps)),
                                            abs=1e-6)
        assert 0.0 <= row["aupro"] <= 1.0
    mean = run.table.mean()
    assert mean["i_auroc"] == pytest.approx(np.mean([run.table.rows[c]["i_auroc"] for c in CATEGORIES]))


def test_save_and_load_round_trip(synth: Path, tmp_path: Path) -> None:
    detector = StandInDetector()
    run = evaluate(detector, "mvtec", synth, categories=["pill"])
    path = save_run(run, tmp_path / "run")
    assert path.name == "run.json" and (tmp_path / "run" / "grid_maps.npz").is_file()
    assert json.loads((tmp_path / "run" / "metrics.json").read_text())["metrics"] == run.table.to_dict()
    loaded = load_run(tmp_path / "run")
    assert loaded.records == run.records and loaded.table == run.table and loaded.tables == run.tables
    assert loaded.description == json.loads(json.dumps(run.description))
    for a, b in zip(loaded.records, run.records):
        assert np.array_equal(a.grid_map, b.grid_map)
    record = loaded.records[0]
    expected = detector.detect([record.path])[0].anomaly_map
    np.testing.assert_array_equal(loaded.anomaly_map(record), expected)


def test_few_shot_seeds_use_recorded_reference_lists(synth: Path, tmp_path: Path) -> None:
    detector = StandInDetector()
    run = evaluate(detector, "mvtec", synth, categories=["pill"], shots=2, seeds=(0, 1))
    train = sorted(str(p) for p in (synth / "pill" / "train" / "good").glob("*.png"))
    used = [[str(p) for p in call["references"]] for call in detector.calls]
    assert len(used) == 2 and all(len(u) == 2 and set(u) <= set(train) for u in used)
    assert set(run.tables) == {0, 1} and {r.seed for r in run.records} == {0, 1}
    for key, value in run.table.rows["pill"].items():
        seeds = [run.tables[s].rows["pill"][key] for s in (0, 1)]
        assert value == pytest.approx(sum(seeds) / 2) or all(math.isnan(v) for v in seeds)
    lists = run.description["references"]["lists"]["pill"]["2"]
    assert [str(synth / p) for p in lists["0"]] == used[0] and [str(synth / p) for p in lists["1"]] == used[1]
    # the same lists from a file give the same references
    file = save_reference_lists(draw_reference_lists("mvtec", synth, ["pill"], shots=(1, 2, 4), seeds=(0, 1)),
                                tmp_path / "refs.json")
    again = StandInDetector()
    evaluate(again, "mvtec", synth, categories=["pill"], shots=2, seeds=(0, 1), references=file)
    assert [[str(p) for p in c["references"]] for c in again.calls] == used
    lists = load_reference_lists(file)
    assert [len(lists.get("pill", k, 0)) for k in (1, 2, 4)] == [1, 2, 4]
    assert lists.get("pill", 1, 0)[0] in lists.get("pill", 2, 0) or True  # independent draws per k are allowed


def test_bad_image_is_a_record_with_error_and_a_note(tmp_path: Path) -> None:
    from zsad.data.synth import generate_dataset

    root = generate_dataset(tmp_path / "d", categories=["pill"], n_train=1, n_test_good=3, n_test_defect=1, size=96)
    (root / "pill" / "test" / "good" / "zzz.png").write_bytes(b"not a png")
    run = evaluate(StandInDetector(), "mvtec", root)
    bad = [r for r in run.records if r.error]
    assert len(bad) == 1 and bad[0].grid_map is None and bad[0].score is None
    assert "1 image(s) could not be scored" in run.notes["pill"]
    assert not math.isnan(run.table.rows["pill"]["i_auroc"])
    save_run(run, tmp_path / "run")
    assert [r.error for r in load_run(tmp_path / "run").records if r.error] == [bad[0].error]


def test_object_names() -> None:
    assert object_name_for("metal_nut") == "metal nut" and object_name_for("01") == "object"
