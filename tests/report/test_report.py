"""zsad report: numbers equal zsad eval's, self-contained HTML, random-weights labels, published-number matching."""
from __future__ import annotations

import argparse
import json
import re
from pathlib import Path

import numpy as np
import pytest
from sklearn.metrics import auc, roc_curve
from standin_detector import StandInDetector

from zsad.evaluation.cli import add_eval_arguments, run_eval
from zsad.report.cli import add_report_parser, default_published
from zsad.report.figures import pick_examples, roc_points
from zsad.report.published import PublishedRow, matching, protocol_of, read_published

PUBLISHED = default_published()


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    from zsad.data.synth import generate_dataset

    base = tmp_path_factory.mktemp("report")
    root = generate_dataset(base / "data", categories=["pill", "weave"], n_train=2, n_test_good=4, n_test_defect=1,
                            size=96, seed=0)
    parser = argparse.ArgumentParser()
    add_eval_arguments(parser)
    args = parser.parse_args(["--dataset", "mvtec", "--root", str(root), "--out", str(base / "run")])
    assert run_eval(args, lambda a: StandInDetector()) == 0
    return base / "run"


def _report(run_dir: Path, out: Path, *extra: str) -> int:
    parser = argparse.ArgumentParser()
    add_report_parser(parser.add_subparsers())
    args = parser.parse_args(["report", str(run_dir), "--out", str(out), *extra])
    return args.run(args)


def test_report_numbers_equal_eval(run_dir: Path, tmp_path: Path, capsys) -> None:
    assert _report(run_dir, tmp_path / "rep") == 0
    eval_metrics = json.loads((run_dir / "metrics.json").read_text())["metrics"]
    report = json.loads((tmp_path / "rep" / "report.json").read_text())
    assert report["metrics"] == eval_metrics
    assert (run_dir / "metrics.md").read_text() in (tmp_path / "rep" / "report.md").read_text()
    page = (tmp_path / "rep" / "report.html").read_text()
    for category, row in eval_metrics.items():
        for value in row.values():
            assert f"<td>{100 * value:.1f}</td>" in page
    assert report["random_weights"] is True and "(random weights)" in report["title"]
    assert report["environment"]["weights_fingerprint"]["sha256"]


def test_html_is_self_contained_with_plots(run_dir: Path, tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    _report(run_dir, tmp_path / "rep")
    page = (tmp_path / "rep" / "report.html").read_text()
    sources = re.findall(r"src='([^']*)'", page)
    assert len(sources) == 4 and all(s.startswith("data:image/png;base64,") for s in sources)
    assert "href=" not in page and "<script" not in page
    for name in ("curves", "bars", "histograms", "heatmaps"):
        assert (tmp_path / "rep" / f"{name}.png").stat().st_size > 1000
    assert "Randomly initialised backbone" in page


def test_plot_titles_say_random_weights(run_dir: Path, monkeypatch) -> None:
    pytest.importorskip("matplotlib")
    from zsad.evaluation import load_run
    from zsad.report import figures

    titles = []
    plt = figures._pyplot()
    original = plt.Axes.set
    monkeypatch.setattr(plt.Axes, "set", lambda self, **kw: (titles.append(kw.get("title")), original(self, **kw))[1])
    original_suptitle = plt.Figure.suptitle
    monkeypatch.setattr(plt.Figure, "suptitle",
                        lambda self, t, **kw: (titles.append(t), original_suptitle(self, t, **kw))[1])
    figures.all_figures(load_run(run_dir))
    titled = [t for t in titles if t]
    assert titled and all(t.endswith("(random weights)") for t in titled)


def test_roc_points_match_sklearn() -> None:
    rng = np.random.default_rng(0)
    scores = np.round(rng.random(40), 1)  # ties
    labels = rng.integers(0, 2, 40)
    fpr, tpr = roc_points(scores, labels)
    ref_fpr, ref_tpr, _ = roc_curve(labels, scores, drop_intermediate=False)
    assert auc(fpr, tpr) == pytest.approx(auc(ref_fpr, ref_tpr))


def test_examples_pick_best_worst_typical(run_dir: Path) -> None:
    from zsad.evaluation import load_run

    run = load_run(run_dir)
    picks = dict(pick_examples(run.records_of("pill")))
    anomalous = [r.score for r in run.records_of("pill") if r.label == 1]
    assert picks["best: highest-scored defect"].score == max(anomalous)
    assert picks["worst: lowest-scored defect"].score == min(anomalous)


def _description(**changes) -> dict:
    from zsad.report.published import MVTEC_AD_CATEGORIES

    description = {"dataset": "mvtec", "categories": sorted(MVTEC_AD_CATEGORIES), "shots": 0,
                   "detector": {"backbone": "ViT-B-16-plus-240", "pretrained": "laion400m_e31", "input_size": 240,
                                "method": "text", "preset": "winclip", "random_weights": False}}
    for key, value in changes.items():
        if key in description["detector"]:
            description["detector"][key] = value
        else:
            description[key] = value
    return description


@pytest.mark.skipif(not PUBLISHED.is_file(), reason="../shared/published_results.csv not present")
def test_published_rows_match_only_the_same_protocol() -> None:
    rows = read_published(PUBLISHED)
    found = matching(rows, protocol_of(_description()))
    assert [(r.method, r.dataset) for r in found] == [("WinCLIP", "mvtec")]
    assert found[0].metrics["i_auroc"] == pytest.approx(0.918) and "Jeong" in found[0].source
    one_shot = matching(rows, protocol_of(_description(shots=1, preset="winclip+")))
    assert [(r.method, r.setting) for r in one_shot] == [("WinCLIP+", "1-shot")]
    assert matching(rows, protocol_of(_description(random_weights=True))) == []
    assert matching(rows, protocol_of(_description(categories=["bottle"]))) == []
    assert matching(rows, protocol_of(_description(input_size=518))) == []
    mutual = matching(rows, protocol_of(_description(backbone="ViT-L-14-336", pretrained="openai", input_size=518,
                                                     method="mutual", preset=None)))
    assert [r.method for r in mutual] == ["MuSc"]


def test_report_sets_matching_published_rows_beside_the_run(tmp_path: Path) -> None:
    from zsad.evaluation.run import EvaluationRun
    from zsad.metrics import MetricTable
    from zsad.report.build import report_data

    table = MetricTable()
    table.add("bottle", {"i_auroc": 0.5})
    run = EvaluationRun(records=[], table=table, tables={0: table}, description=_description())
    data = report_data(run, [PublishedRow("WinCLIP", "zero-shot", "ViT-B-16-plus-240 laion400m_e31", 240, "mvtec",
                                          {"i_auroc": 0.918}, "Jeong et al.")])
    assert [p["method"] for p in data["published"]] == ["WinCLIP"] and data["published_note"] is None
