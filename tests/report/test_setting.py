"""The setting a report names comes from what ran; published rows match only the same setting, benchmark and full
category set; report cosmetics (weights wording, readable heat-map grid, breakdown tables)."""
from __future__ import annotations

import itertools
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from standin_detector import StandInDetector

from zsad.evaluation import evaluate, save_run
from zsad.report.build import published_markdown, report_data, weights_text, write_report
from zsad.report.published import (
    BENCHMARKS,
    LOCO_CATEGORIES,
    MVTEC_AD_CATEGORIES,
    PublishedRow,
    benchmark_of,
    matching,
    protocol_of,
    setting_of,
    why_none,
)

ROWS = [
    PublishedRow("WinCLIP", "zero-shot", "ViT-B-16-plus-240 laion400m_e31", 240, "mvtec", {"i_auroc": 0.918}, "J"),
    PublishedRow("WinCLIP+", "1-shot", "ViT-B-16-plus-240 laion400m_e31", 240, "mvtec", {"i_auroc": 0.931}, "J"),
    PublishedRow("AnomalyCLIP", "zero-shot (trained on other dataset)", "ViT-B-16-plus-240 laion400m_e31", 240,
                 "mvtec", {"i_auroc": 0.915}, "Z"),
    PublishedRow("MuSc", "zero-shot mutual (training-free)", "ViT-B-16-plus-240 laion400m_e31", 240, "mvtec",
                 {"i_auroc": 0.978}, "L"),
    PublishedRow("X", "zero-shot", "ViT-B-16-plus-240 laion400m_e31", 240, "mvtec_loco", {"i_auroc": 0.7}, "X"),
]


def description(**changes) -> dict:
    out = {"dataset": "mvtec", "root": "/data/mvtec", "categories": sorted(MVTEC_AD_CATEGORIES), "shots": 0,
           "seeds": [0], "evidence": ["winclip"], "good_images": None, "reference_files": [],
           "detector": {"backbone": "ViT-B-16-plus-240", "pretrained": "laion400m_e31", "input_size": 240,
                        "method": "text", "preset": None, "random_weights": False, "trained_on": None}}
    for key, value in changes.items():
        (out["detector"] if key in out["detector"] else out)[key] = value
    return out


def methods(desc: dict) -> list[str]:
    return [r.method for r in matching(ROWS, protocol_of(desc))]


def test_setting_follows_what_ran() -> None:
    assert setting_of(description())["family"] == "zero-shot" and methods(description()) == ["WinCLIP"]
    one_shot = description(shots=1, evidence=["fewshot", "winclip"], seeds=[0, 1, 2])
    assert setting_of(one_shot)["family"] == "1-shot" and "seeds 0, 1, 2" in setting_of(one_shot)["detail"]
    assert methods(one_shot) == ["WinCLIP+"]
    mutual = description(evidence=["mutual"], method="auto")
    assert setting_of(mutual)["family"] == "zero-shot mutual" and methods(mutual) == ["MuSc"]
    fused = description(evidence=["mutual", "text"], method="auto")
    assert methods(fused) == [] and "fused" in why_none(protocol_of(fused))
    # legacy descriptions without recorded evidence: the method decides
    legacy = description(method="mutual")
    del legacy["evidence"]
    assert setting_of(legacy)["family"] == "zero-shot mutual"


def test_given_references_are_reference_based_and_match_nothing() -> None:
    files = [{"path": f"/refs/{i}.png", "bytes": 1, "sha256": "0" * 64} for i in range(4)]
    run = description(good_images=["/refs"], reference_files=files, evidence=["fewshot", "winclip"])
    setting = setting_of(run)
    assert setting["family"] == "reference-based" and setting["label"] == "reference-based (4 given images)"
    assert "zero-shot" not in setting["label"] and methods(run) == []
    assert "--references" in why_none(protocol_of(run))


def test_learned_prompts_name_their_training_data() -> None:
    visa = {"adapter": "ac-visa", "data": {"kind": "visa", "root": "/data/VisA", "categories": None}}
    other = description(trained_on=visa, evidence=["anomalyclip"])
    assert setting_of(other)["family"] == "zero-shot (trained on other data)"
    assert "prompts trained on visa" in setting_of(other)["label"] and methods(other) == ["AnomalyCLIP"]
    same_root = description(trained_on={"adapter": "a", "data": {"kind": "mvtec", "root": "/data/mvtec"}})
    assert setting_of(same_root)["family"] == "trained on the test data" and methods(same_root) == []
    same_categories = description(trained_on={"adapter": "a", "data": {"kind": "mvtec", "root": "/x",
                                                                      "categories": ["bottle"]}})
    assert setting_of(same_categories)["family"] == "trained on the test data"
    unknown = description(trained_on={"adapter": "epoch_15.pth", "data": None})
    assert methods(unknown) == [] and "not recorded" in why_none(protocol_of(unknown))


def test_benchmarks_need_their_full_category_set() -> None:
    for name, (full, layouts) in BENCHMARKS.items():
        for layout in layouts:
            assert benchmark_of({"dataset": layout, "categories": sorted(full)}) == name
            assert benchmark_of({"dataset": layout, "categories": sorted(full)[:1]}) is None
            assert benchmark_of({"dataset": layout, "categories": sorted(full) + ["extra"]}) is None
    one_loco = description(dataset="mvtec_loco", categories=["pushpins"])
    assert methods(one_loco) == [] and "1 categories" in why_none(protocol_of(one_loco))
    assert methods(description(dataset="mvtec_loco", categories=sorted(LOCO_CATEGORIES))) == ["X"]
    assert benchmark_of({"dataset": "folder", "categories": sorted(MVTEC_AD_CATEGORIES)}) is None


def test_weights_wording() -> None:
    assert weights_text({"random_weights": True, "pretrained": None}) == "random weights"
    assert weights_text({"random_weights": True, "pretrained": "random"}) == "random weights"
    assert weights_text({"random_weights": False, "pretrained": "openai"}) == "openai"
    assert "default" not in weights_text({"random_weights": False, "pretrained": None})


@pytest.fixture(scope="module")
def shaped_run(tmp_path_factory):
    """A run over one portrait and one landscape category with a long name, planted defects and masks."""
    root = tmp_path_factory.mktemp("shapes")
    rng = np.random.default_rng(0)
    for category, (width, height) in (("splicing_connectors_long_name", (60, 170)), ("wide", (170, 60))):
        base = root / category
        for folder, count in (("good", 3), ("crack", 2), ("hole", 1)):
            (base / "test" / folder).mkdir(parents=True)
            if folder != "good":
                (base / "ground_truth" / folder).mkdir(parents=True)
            for i in range(count):
                pixels = 120 + 8 * rng.standard_normal((height, width))
                if folder != "good":
                    mask = np.zeros((height, width), np.uint8)
                    mask[height // 3: height // 3 + 12, width // 4: width // 4 + 12] = 255
                    pixels[mask > 0] += 90
                    Image.fromarray(mask).save(base / "ground_truth" / folder / f"{i:03d}_mask.png")
                Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8)).save(base / "test" / folder / f"{i:03d}.png")
    return evaluate(StandInDetector(), "mvtec", root)


def test_heat_map_titles_do_not_collide(shaped_run) -> None:
    pytest.importorskip("matplotlib")
    from zsad.report import figures

    fig = figures.heatmap_figure(shaped_run, 0)
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    boxes = [fig._suptitle.get_window_extent(renderer)]
    for axis in fig.axes:
        for text in (axis.title, axis.yaxis.label):
            if text.get_text():
                boxes.append(text.get_window_extent(renderer))
        if axis.images:
            boxes.append(axis.get_window_extent(renderer))
    assert len(boxes) > 10
    for a, b in itertools.combinations(boxes, 2):
        assert not a.overlaps(b), (a, b)
    titles = [axis.title.get_text() for axis in fig.axes if axis.title.get_text()]
    assert all(max(len(line) for line in t.splitlines()) <= 22 for t in titles)
    assert [axis.yaxis.label.get_text() for axis in fig.axes if axis.yaxis.label.get_text()] == [
        "splicing_connectors_long_name", "wide"]


def test_report_lists_breakdowns_setting_and_references(shaped_run, tmp_path: Path) -> None:
    save_run(shaped_run, tmp_path / "run")
    from zsad.evaluation import load_run

    run = load_run(tmp_path / "run")
    paths = write_report(run, tmp_path / "report", plots=False)
    text = paths["markdown"].read_text()
    assert "## Per defect type" in text and "| crack |" in text and "| hole |" in text
    assert "stand-in (random weights)" in text and "default weights" not in text
    assert "setting: zero-shot:" in text and "Reference images: none." in text
    data = json.loads(paths["json"].read_text())
    assert data["setting"]["family"] == "zero-shot" and data["defect_metrics"] == {
        c: t.to_dict(with_mean=False) for c, t in run.defect_tables.items()}
    assert "zero-shot" in report_data(run)["title"]
    page = paths["html"].read_text()
    crack = run.defect_tables["wide"].rows["crack"]
    assert f"<td>{100 * crack['i_auroc']:.1f}</td>" in page


def test_loco_report_shows_the_protocol_and_compares_its_mean(tmp_path: Path) -> None:
    from zsad.evaluation.run import EvaluationRun
    from zsad.metrics import MetricTable

    kinds = {"logical_anomalies": 0.6, "structural_anomalies": 0.8}
    protocol = {kind: MetricTable({c: {"i_auroc": v + i / 100, "au_spro@0.05": v / 2} for i, c in
                                   enumerate(sorted(LOCO_CATEGORIES))}) for kind, v in kinds.items()}
    protocol["mean"] = MetricTable({c: {k: (protocol["logical_anomalies"].rows[c][k]
                                            + protocol["structural_anomalies"].rows[c][k]) / 2
                                        for k in ("i_auroc", "au_spro@0.05")} for c in sorted(LOCO_CATEGORIES)})
    pooled = MetricTable({c: {"i_auroc": 0.5} for c in sorted(LOCO_CATEGORIES)})
    run = EvaluationRun(records=[], table=pooled, tables={0: pooled}, protocol_tables=protocol,
                        description=description(dataset="mvtec_loco", categories=sorted(LOCO_CATEGORIES)))
    data = report_data(run, ROWS)
    assert data["compared_metrics"]["i_auroc"] == pytest.approx(protocol["mean"].mean()["i_auroc"])
    assert [p["method"] for p in data["published"]] == ["X"]
    text = write_report(run, tmp_path / "r", plots=False)["markdown"].read_text()
    assert "## MVTec LOCO AD protocol" in text and "| AU-sPRO@0.05 |" in text
    compared = published_markdown(data).splitlines()[2]
    assert compared.startswith("| zsad (this run) | zero-shot |")
    assert f"| {100 * protocol['mean'].mean()['i_auroc']:.1f} | n/a | n/a |" in compared
