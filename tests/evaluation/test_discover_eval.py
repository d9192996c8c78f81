"""``zsad eval --discover``: types per category in run.json and discovery/, and ``zsad report``'s per-type table with
NMI / ARI / cluster F1 equal to scikit-learn's on the run's own records."""
from __future__ import annotations

import itertools
import json

import pytest
from sklearn.metrics import adjusted_rand_score, f1_score, normalized_mutual_info_score

from zsad.cli.main import main
from zsad.discovery.settings import DiscoverySettings
from zsad.evaluation import load_run

DETECTOR = ["--backbone", "tiny-dinov2", "--layers", "1", "--input-size", "224", "--method", "fewshot"]


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    from zsad.data.synth import generate_dataset

    base = tmp_path_factory.mktemp("eval-discover")
    root = generate_dataset(base / "data", categories=["pill"], n_train=4, n_test_good=3, n_test_defect=2, size=96,
                            seed=0)
    out = base / "run"
    assert main(["eval", "--dataset", "mvtec", "--root", str(root), "--shots", "2", *DETECTOR, "--out", str(out),
                 "--discover", "--discover-threshold=-1e9", "--discover-types", "3"]) == 0
    return out


def _best_match_f1(truth: list[str], predicted: list[str]) -> float:
    """Cluster F1 by brute force: the best one-to-one renaming of clusters to classes, then scikit-learn's micro F1."""
    classes, clusters = sorted(set(truth)), sorted(set(predicted))
    best = 0.0
    for chosen in itertools.permutations(classes + [None] * len(clusters), len(clusters)):
        renamed = [dict(zip(clusters, chosen))[p] or "unmatched" for p in predicted]
        best = max(best, f1_score(truth, renamed, average="micro"))
    return best


def test_records_carry_their_type_and_the_run_its_discovery(run_dir):
    document = json.loads((run_dir / "run.json").read_text())
    assert document["discovery"]["settings"] == DiscoverySettings(threshold=-1e9, types=3).describe()
    (entry,) = document["discovery"]["passes"]
    assert entry["category"] == "pill" and entry["folder"] == "discovery/pill" and entry["error"] is None
    records = document["records"]
    assert all(r["defect_type"] in {t["name"] for t in entry["types"]} for r in records)  # threshold: every image
    types = json.loads((run_dir / "discovery" / "pill" / "types.json").read_text())
    assert {name: t["name"] for t in types["types"] for name in t["images"]} == {
        r["path"]: r["defect_type"] for r in records}
    assert load_run(run_dir).records[0].defect_type == records[0]["defect_type"]


def test_report_shows_types_and_clustering_metrics_equal_to_scikit_learn(run_dir, tmp_path):
    assert main(["report", str(run_dir), "--out", str(tmp_path), "--no-plots", "--published", "none"]) == 0
    data = json.loads((tmp_path / "report.json").read_text())["defect_types"]
    (entry,) = data["passes"]
    records = json.loads((run_dir / "run.json").read_text())["records"]
    scored = [r for r in records if r["label"] == 1 and r["defect"] and r["defect_type"]]
    truth, predicted = [r["defect"] for r in scored], [r["defect_type"] for r in scored]
    assert entry["scored"] == len(scored) == 10 and entry["good_discovered"] == 3 and entry["defects_missed"] == 0
    assert entry["metrics"]["nmi"] == pytest.approx(normalized_mutual_info_score(truth, predicted), abs=1e-12)
    assert entry["metrics"]["ari"] == pytest.approx(adjusted_rand_score(truth, predicted), abs=1e-12)
    assert entry["metrics"]["f1"] == pytest.approx(_best_match_f1(truth, predicted), abs=1e-12)
    markdown = (tmp_path / "report.md").read_text()
    section = markdown.split("## Defect types", 1)[1].split("\n## ", 1)[0]
    assert f"{100 * entry['metrics']['nmi']:.1f}" in section
    for number, item in enumerate(entry["types"], start=1):
        assert f"| {number} | {item['name']} | {item['count']} |" in section
    assert "Defect types (discovered without labels)" in (tmp_path / "report.html").read_text()


def test_a_run_without_discover_has_no_type_fields(tmp_path):
    from zsad.evaluation.run import ImageRecord

    record = ImageRecord("pill", 0, "a.png", 1, defect="hole")
    assert "defect_type" not in record.to_dict(types=False) and record.to_dict()["defect_type"] is None
