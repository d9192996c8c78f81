"""The decisions of ``zsad.decisions`` as a Detector run makes them: the README's setting (tiny-dinov2, layer 1,
336 px) on a ``zsad synth`` pill batch where defects are the majority (10 good + 20 defective), the case the MAD
rule answered with no verdict at all (issue 15's table)."""
from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from zsad.detector import Detector

SETTING = {"backbone": "tiny-dinov2", "layers": (1,), "input_size": 336}


@pytest.fixture(scope="module")
def lot(tmp_path_factory) -> dict:
    from zsad.data.synth import generate_dataset

    root = generate_dataset(tmp_path_factory.mktemp("lot"), categories=["pill"], n_train=8, n_test_good=10,
                            n_test_defect=4, seed=0) / "pill"
    images = sorted((root / "test").rglob("*.png"))
    return {"images": images, "labels": np.array([p.parent.name != "good" for p in images]),
            "references": sorted((root / "train" / "good").glob("*.png")), "root": root}


@pytest.fixture(scope="module")
def fewshot(lot) -> list:
    return Detector(**SETTING, method="fewshot").detect(lot["images"], references=lot["references"])


def flagged(results) -> np.ndarray:
    return np.array([r.is_anomalous is True for r in results])


def test_references_calibrate_the_verdict_on_a_mostly_defective_batch(lot, fewshot):
    assert (flagged(fewshot) == lot["labels"]).all()  # 20 of 20 defects, no false alarm
    first = fewshot[0]
    assert first.threshold_name == "conformal_mixture" and first.decided_on == "fewshot"
    assert first.certainty["false_alarm_rate"] == pytest.approx(1 / 9)  # 8 references: 1/(k+1), not 0.01
    assert first.certainty["requested_rate"] == 0.01 and "batch" in first.certainty
    calibration = Detector(**SETTING, method="fewshot").build_memory(lot["references"]).normal_scores.numpy()
    for result in fewshot:  # each p-value is the rank among the references' leave-one-out normal scores
        assert result.p_value == pytest.approx((1 + (calibration >= result.score).sum()) / 9)
    mad = Detector(**SETTING, method="fewshot", threshold_rule="mad").detect(lot["images"],
                                                                            references=lot["references"])
    assert flagged(mad).sum() < 20 and mad[0].threshold_name == "mad"  # the former default misses the lot


def test_a_normal_verdict_has_no_mask_and_no_region(lot, fewshot):
    for result in fewshot:
        assert result.mask_rule == "conformal" and result.mask.shape == result.grid_map.shape
        if result.is_anomalous is False:  # the rule's mask is kept (a slider may move the verdict), never shown
            assert not result.shown_mask().any() and result.regions == ()
            assert result.map_stats()["anomalous_area"] == 0
    anomalous = [r for r in fewshot if r.is_anomalous]
    assert sum(bool(r.regions) for r in anomalous) >= 18
    assert all(r.map_stats()["anomalous_area"] == pytest.approx(r.mask.mean()) for r in anomalous)
    normal = np.mean([r.mask.mean() for r in fewshot if r.is_anomalous is False])
    assert normal <= 5 * 0.001  # the share of normal patches marked is of the order of --mask-false-alarm-rate


@pytest.mark.parametrize("fuse", [False, True], ids=["mutual", "fused"])
def test_without_references_or_fused_the_lot_gets_verdicts(lot, fuse):
    detector = Detector(**SETTING, method="auto" if fuse else "mutual", fuse=fuse)
    results = detector.detect(lot["images"], references=lot["references"] if fuse else None)
    found = flagged(results)
    precision = (found & lot["labels"]).sum() / max(found.sum(), 1)
    assert found.sum() >= 15 and precision >= 0.9
    ran = detector.describe()["ran"]["decision"]
    if fuse:  # the references' calibration is on the few-shot scale: the fused run decides on those scores
        assert results[0].decided_on == "fewshot" and results[0].decided_apart
        assert ran["threshold"]["name"] == "conformal_mixture"
    else:
        assert results[0].threshold_name == "mixture" and results[0].p_value is None
        assert {"fraction_mean", "fraction_interval"} <= set(results[0].certainty)
        assert ran["mask"]["name"] == "test_time_classifier", ran["mask"]["rule"]


def test_a_memory_keeps_its_calibration_and_an_old_one_says_why_it_has_none(lot, tmp_path):
    from zsad.scoring.reference import ReferenceMemory

    detector = Detector(**SETTING, method="fewshot")
    memory = detector.build_memory(lot["references"])
    assert memory.normal_scores.shape == (8,) and memory.normal_maps.shape == (8, 24, 24)
    memory.save(tmp_path / "m.safetensors")
    loaded = ReferenceMemory.load(tmp_path / "m.safetensors")
    assert torch.equal(loaded.normal_scores, memory.normal_scores)
    assert torch.equal(loaded.normal_maps, memory.normal_maps)
    old = ReferenceMemory(memory.bank, memory.config, memory.meta, memory.source_patches)  # saved before
    results = detector.detect(lot["images"][:12], references=old)
    assert results[0].threshold_name != "conformal_mixture" and results[0].p_value is None
    assert detector.describe()["ran"]["evidence"]["fewshot"]["calibration_references"] == 0


def test_the_rule_and_its_certainty_reach_every_output(lot, fewshot, tmp_path, capsys):
    from zsad.cli.main import main

    out = tmp_path / "run"
    assert main(["detect", str(lot["root"] / "test"), "--references", str(lot["root"] / "train" / "good"),
                 "--backbone", "tiny-dinov2", "--layers", "1", "--input-size", "336", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "verdict: conformal_mixture: false alarms <= 11.1% (8 references)" in printed
    assert "30 images scored, 20 anomalous, 0 skipped" in printed
    record = json.loads((out / "results.json").read_text())["results"][0]
    assert {"verdict_rule", "certainty", "decided_on", "p_value", "mask_rule"} <= set(record)
    rows = list(csv.DictReader((out / "results.csv").open()))
    assert rows[0]["verdict_rule"] == "conformal_mixture"
    assert json.loads(rows[0]["certainty"])["calibration_scores"] == 8


def test_a_resumed_run_trains_the_test_time_mask_on_the_journaled_features(lot, tmp_path):
    from zsad.outputs.journal import ScoreJournal

    detector = Detector(**SETTING, method="fewshot", threshold_rule="mixture", mask_rule="test_time")
    references = lot["references"]
    fresh = detector.detect(lot["images"], references=references, journal=ScoreJournal(tmp_path, fingerprint={"a": 1}))
    assert fresh[0].mask_rule == "test_time_classifier"
    resumed = detector.detect(lot["images"], references=references,
                              journal=ScoreJournal(tmp_path, resume=True, fingerprint={"a": 1}))
    assert all(np.array_equal(a.mask, b.mask) for a, b in zip(fresh, resumed)) and resumed[0].mask_rule == \
        "test_time_classifier"
    journal = tmp_path / "journal" / "scored.jsonl"  # a journal without features (written by an older zsad)
    journal.write_text("".join(json.dumps({k: v for k, v in json.loads(line).items() if k != "features"}) + "\n"
                               for line in journal.read_text().splitlines()))
    with pytest.warns(UserWarning, match="the test_time mask rule could not run"):
        old = detector.detect(lot["images"], references=references,
                              journal=ScoreJournal(tmp_path, resume=True, fingerprint={"a": 1}))
    assert old[0].mask_rule == "mad" and [r.score for r in old] == [r.score for r in fresh]
    assert "no test_time mask: 30 images resumed from a journal without patch features" in \
        detector.describe()["ran"]["decision"]["mask"]["rule"]


def test_synth_grades_defects_from_the_command_line(tmp_path):
    from zsad.cli.main import main

    assert main(["synth", str(tmp_path), "--category", "pill", "--n-train", "1", "--n-test-good", "1",
                 "--n-test-defect", "4", "--size", "64", "--severity-levels", "2"]) == 0
    manifest = json.loads((Path(tmp_path) / "pill" / "manifest.json").read_text())
    assert "size_level" in json.dumps(manifest) and "contrast_level" in json.dumps(manifest)


def test_an_evaluation_reports_the_decisions_beside_the_ranking(lot):
    from zsad.evaluation.evaluate import evaluate

    run = evaluate(Detector(**SETTING), dataset="mvtec", root=lot["root"].parent, categories=["pill"], shots=8)
    row = run.table.rows["pill"]
    assert row["verdict_f1"] == 1.0 and row["false_alarm_rate"] == 0.0 and row["miss_rate"] == 0.0
    assert 0.0 < row["mask_iou"] < 1.0 and row["mask_f1"] == pytest.approx(2 * row["mask_iou"] / (1 + row["mask_iou"]))
    record = run.records[0].to_dict()
    assert record["verdict_rule"] == "conformal_mixture" and record["certainty"]["calibration_scores"] == 8
    assert "Verdict F1" in run.table.to_markdown() and "Mask IoU" in run.table.to_markdown()
    from zsad.report.build import markdown, report_data

    text = markdown(run, report_data(run), {})
    assert "- pill, seed 0: conformal_mixture: false alarms <= 11.1% (8 references)" in text
    assert "masks: conformal" in text


def test_the_demo_and_the_overlays_say_which_rule_decided(fewshot):
    from dataclasses import replace

    from zsad_runtime.outputs.overlays import overlay_digest

    from zsad.demo.session import RunState
    from zsad.demo.views import summary

    state = RunState(results=fewshot, images=[None] * len(fewshot), value_range=(0.0, 1.0), auto_threshold=None,
                     auto_rule="")
    assert "Decided by conformal_mixture: false alarms <= 11.1% (8 references)" in summary(state)
    assert overlay_digest(fewshot[0], (0.0, 1.0)) != overlay_digest(replace(fewshot[0], threshold_name="mad"),
                                                                    (0.0, 1.0))
