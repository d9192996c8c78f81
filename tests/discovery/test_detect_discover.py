"""``zsad detect --discover``: the run's types are discovered after detection and written through the outputs'
writer seam: discovery/ (types.json, images.csv, sheets), ``defect_type`` fields in results.json and results.csv,
the settings recorded."""
from __future__ import annotations

import csv
import json

import pytest

from zsad.cli.main import main
from zsad.discovery.settings import DiscoverySettings

DETECT = ["--backbone", "tiny-dinov2", "--layers", "1", "--input-size", "336", "--method", "fewshot",
          "--object", "pill"]


@pytest.fixture(scope="module")
def batch(tmp_path_factory):
    from zsad.data.synth import generate_dataset

    root = generate_dataset(tmp_path_factory.mktemp("discover-cli"), categories=["pill"], n_train=4, n_test_good=10,
                            n_test_defect=1, size=96, seed=0)
    return root / "pill"


@pytest.fixture(scope="module")
def run(batch, tmp_path_factory):
    out = tmp_path_factory.mktemp("detect") / "out"
    code = main(["detect", str(batch / "test"), "--references", str(batch / "train" / "good"), *DETECT,
                 "--out", str(out), "--discover", "--discover-types", "2", "--discover-seed", "1"])
    assert code == 0
    return out


def test_types_are_written_and_every_record_has_its_type(run):
    report = json.loads((run / "results.json").read_text())
    types = json.loads((run / "discovery" / "types.json").read_text())
    assert len(types["types"]) == 2 and types["k"]["method"] == "fixed"
    assert len(list((run / "discovery" / "sheets").glob("type_*.png"))) == 2
    records = report["results"]
    assert all("defect_type" in r and "defect_type_confidence" in r for r in records)
    typed = {r["name"]: r["defect_type"] for r in records if r["defect_type"] is not None}
    # the default selection: the images the run flagged, and each gets the name of the type that holds it
    assert set(typed) == {r["name"] for r in records if r["verdict"] == "anomalous"} and typed
    assert typed == {name: t["name"] for t in types["types"] for name in t["images"]}
    assert all(0 < r["defect_type_confidence"] <= 1 for r in records if r["defect_type"] is not None)
    assert all(r["defect_type_confidence"] is None for r in records if r["defect_type"] is None)
    with open(run / "results.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert {row["name"]: row["defect_type"] for row in rows if row["defect_type"]} == typed


def test_the_settings_and_a_summary_are_recorded_in_results_json(run):
    described = json.loads((run / "results.json").read_text())["discovery"]
    assert described["settings"] == DiscoverySettings(types=2, seed=1).describe()
    assert described["folder"] == "discovery" and described["error"] is None
    assert described["ran"]["features"] == "tokens" and described["ran"]["backbone"] == "tiny-dinov2"
    assert [t["count"] for t in described["types"]] == [t["count"] for t in json.loads(
        (run / "discovery" / "types.json").read_text())["types"]]
    assert all(t["named_by"] == "numbered" for t in described["types"])  # DINOv2: no text space, no LLM


def test_without_discover_nothing_changes(batch, tmp_path):
    out = tmp_path / "plain"
    assert main(["detect", str(batch / "test" / "hole"), *DETECT, "--method", "text", "--backbone", "tiny-clip",
                 "--out", str(out)]) == 0
    report = json.loads((out / "results.json").read_text())
    assert "discovery" not in report and not (out / "discovery").exists()
    assert all("defect_type" not in r for r in report["results"])


def test_naming_llm_without_an_llm_fails_before_detection(batch, tmp_path, capsys):
    out = tmp_path / "refused"
    code = main(["detect", str(batch / "test" / "hole"), *DETECT, "--method", "text", "--backbone", "tiny-clip",
                 "--out", str(out), "--discover-naming", "llm"])
    assert code == 2
    assert "--discover-naming llm needs an LLM" in capsys.readouterr().err
    assert not (out / "results.json").exists()


def test_a_failed_discovery_is_a_warning_and_the_results_are_kept(batch, tmp_path, capsys):
    broken = tmp_path / "vocabulary.yaml"
    broken.write_text("defects: [unclosed\n")
    out = tmp_path / "kept"
    code = main(["detect", str(batch / "test" / "hole"), str(batch / "test" / "scratch"), *DETECT, "--method", "text",
                 "--backbone", "tiny-clip", "--out", str(out), "--discover-threshold=-1e9",
                 "--discover-vocabulary", str(broken)])
    assert code == 0
    assert "zsad: warning: defect-type discovery failed" in capsys.readouterr().err
    report = json.loads((out / "results.json").read_text())
    assert len(report["results"]) == 2 and all(r["score"] is not None for r in report["results"])
    assert "malformed" in report["discovery"]["error"]
    assert all(r["defect_type"] is None for r in report["results"])


def test_a_missing_vocabulary_is_refused_before_the_model_loads(batch, tmp_path, capsys):
    code = main(["detect", str(batch / "test" / "hole"), "--backbone", "tiny-clip", "--out", str(tmp_path / "x"),
                 "--discover-vocabulary", str(tmp_path / "missing.yaml")])
    assert code == 2 and "--discover-vocabulary" in capsys.readouterr().err
