"""The zsad command as a user runs it (subprocesses), on planted-defect data and a tiny model."""
import csv
import json
import os
import shutil
import subprocess
import sys

import pytest

pytestmark = pytest.mark.slow  # starts other processes: skipped by the fast lane, -m 'not slow'

ENV = {**os.environ, "HF_HUB_OFFLINE": "1"}


def zsad(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "zsad.cli.main", *map(str, args)], capture_output=True, text=True,
                          env=ENV, cwd=cwd, timeout=300)


@pytest.fixture(scope="module")
def synth_folder(tmp_path_factory):
    root = tmp_path_factory.mktemp("cli")
    done = zsad("synth", root / "data", "--category", "weave", "--n-train", "1", "--n-test-good", "3",
                "--n-test-defect", "1", "--size", "64")
    assert done.returncode == 0, done.stderr
    return root / "data" / "weave"


def test_detect_writes_overlay_per_image_and_reports_a_corrupt_file(synth_folder, tmp_path):
    test_dir = tmp_path / "test"
    shutil.copytree(synth_folder / "test", test_dir)
    images = sorted(test_dir.rglob("*.png"))
    (test_dir / "good" / "corrupt.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 20)
    out = tmp_path / "out"
    done = zsad("detect", test_dir, "--backbone", "tiny-clip", "--out", out, "--object", "fabric")
    assert done.returncode == 0, done.stderr
    assert "corrupt.png" in done.stderr and "Traceback" not in done.stderr
    assert len(list((out / "overlays").glob("*.png"))) == len(images)
    rows = list(csv.DictReader(open(out / "results.csv")))
    assert len(rows) == len(images) + 1
    bad = [r for r in rows if r["error"]]
    assert len(bad) == 1 and bad[0]["path"].endswith("corrupt.png")
    assert all(r["verdict"] in ("normal", "anomalous") for r in rows if not r["error"])
    report = json.loads((out / "results.json").read_text())
    assert report["images"] == len(images) + 1 and len(report["skipped"]) == 1
    assert {"score", "threshold", "map_max", "anomalous_area", "explanation"} <= set(report["results"][0])


def test_whole_run_failures_are_one_line_with_nonzero_exit(tmp_path, synth_folder):
    # run where the default --out (zsad-out) holds nothing: a checkout may hold a run of the README's command
    missing = zsad("detect", tmp_path / "nowhere", "--backbone", "tiny-clip", cwd=tmp_path)
    assert missing.returncode == 2
    assert missing.stderr.strip().count("\n") == 0 and "nowhere: no such file or folder" in missing.stderr
    empty = tmp_path / "empty"
    empty.mkdir()
    no_images = zsad("detect", empty, "--backbone", "tiny-clip", cwd=tmp_path)
    assert no_images.returncode == 2 and "contains no images" in no_images.stderr
    unknown = zsad("detect", synth_folder / "test", "--backbone", "ViT-Nope", cwd=tmp_path)
    assert unknown.returncode == 2 and "unknown backbone" in unknown.stderr and "Traceback" not in unknown.stderr
    all_bad = tmp_path / "bad"
    all_bad.mkdir()
    (all_bad / "a.png").write_bytes(b"")
    only_bad = zsad("detect", all_bad, "--backbone", "tiny-clip", "--out", tmp_path / "o")
    assert only_bad.returncode == 1 and "a.png" in only_bad.stderr


def test_eval_writes_the_metric_table(synth_folder, tmp_path):
    done = zsad("eval", "--dataset", "mvtec", "--root", synth_folder.parent, "--backbone", "tiny-clip",
                "--out", tmp_path / "eval")
    assert done.returncode == 0, done.stderr
    assert "| weave |" in done.stdout and "AUPRO" in done.stdout
    metrics = json.loads((tmp_path / "eval" / "metrics.json").read_text())["metrics"]
    assert set(metrics) == {"weave", "mean"}
    assert 0.0 <= metrics["weave"]["i_auroc"] <= 1.0 and 0.0 <= metrics["weave"]["aupro"] <= 1.0


def test_detect_with_references_saves_and_reuses_the_memory(synth_folder, tmp_path):
    memory = tmp_path / "weave.safetensors"
    first = zsad("detect", synth_folder / "test", "--backbone", "tiny-dinov2", "--method", "fewshot",
                 "--references", synth_folder / "train" / "good", "--save-memory", memory, "--out", tmp_path / "a")
    assert first.returncode == 0, first.stderr
    assert memory.is_file()
    again = zsad("detect", synth_folder / "test", "--backbone", "tiny-dinov2", "--method", "fewshot",
                 "--references", memory, "--out", tmp_path / "b")
    assert again.returncode == 0, again.stderr
    a = [r["score"] for r in csv.DictReader(open(tmp_path / "a" / "results.csv"))]
    b = [r["score"] for r in csv.DictReader(open(tmp_path / "b" / "results.csv"))]
    assert a == b
    rows = list(csv.DictReader(open(tmp_path / "b" / "results.csv")))
    assert {r["evidence"] for r in rows} == {"fewshot"}
    mismatch = zsad("detect", synth_folder / "test", "--backbone", "tiny-dinov2", "--input-size", "112",
                    "--references", memory, "--out", tmp_path / "c")
    assert mismatch.returncode == 2 and "input_size" in mismatch.stderr and "Traceback" not in mismatch.stderr


def test_mutual_method_from_the_cli(synth_folder, tmp_path):
    done = zsad("detect", synth_folder / "test", "--backbone", "tiny-dinov2", "--method", "mutual",
                "--mutual-max-refs", "2", "--out", tmp_path / "m")
    assert done.returncode == 0, done.stderr
    report = json.loads((tmp_path / "m" / "results.json").read_text())
    assert all(list(r["evidence"]) == ["mutual"] for r in report["results"])
