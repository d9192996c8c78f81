"""The two commands of a deployment: ``zsad export`` writes a bundle, ``zsad-runtime detect`` writes what ``zsad
detect`` writes (results.json, results.csv, overlays) with the same rows, verdicts and files; errors are one line."""
from __future__ import annotations

import csv
import json
import math
import shutil

import numpy as np
import pytest
from PIL import Image
from zsad_runtime.cli import main as runtime_main

from zsad.cli.main import main as zsad_main

MODEL = ["--preset", "anomalydino", "--backbone", "tiny-dinov2", "--input-size", "56", "--threshold-rule", "mad",
         "--mask-rule", "mad"]
NUMERIC = ("score", "threshold", "map_max", "map_mean", "map_p99", "anomalous_area", "pixel_threshold",
           "fewshot_score")


@pytest.fixture(scope="module")
def runs(runtime_data, tmp_path_factory):
    """A folder of test images with one unreadable file, exported and detected both ways."""
    folder = tmp_path_factory.mktemp("cli")
    images = folder / "images"
    shutil.copytree(runtime_data / "test", images)
    (images / "good" / "broken.png").write_bytes(b"not a png")
    references = str(runtime_data / "train" / "good")
    bundle = folder / "bundle"
    assert zsad_main(["export", *MODEL, "--references", references, "--out", str(bundle)]) == 0
    assert runtime_main(["detect", str(bundle), str(images), "--out", str(folder / "runtime")]) == 0
    assert zsad_main(["detect", str(images), *MODEL, "--references", references, "--out", str(folder / "zsad")]) == 0
    return folder


def _rows(path):
    return list(csv.DictReader(open(path, newline="", encoding="utf-8")))


def test_runtime_writes_what_zsad_detect_writes(runs):
    ours, theirs = json.loads((runs / "runtime" / "results.json").read_text()), \
        json.loads((runs / "zsad" / "results.json").read_text())
    assert set(ours) == set(theirs) | {"runner"}
    assert ours["settings"]["method"] == theirs["settings"]["method"] == "fewshot"
    assert ours["settings"]["backbone"] == theirs["settings"]["backbone"]
    assert ours["runner"]["engine"] == "onnxruntime" and ours["runner"]["precision"] == "fp32"
    assert (ours["images"], ours["anomalous"], ours["skipped"]) == (theirs["images"], theirs["anomalous"],
                                                                     theirs["skipped"])
    assert len(ours["skipped"]) == 1 and "broken.png" in ours["skipped"][0]["path"]
    mine, zsads = _rows(runs / "runtime" / "results.csv"), _rows(runs / "zsad" / "results.csv")
    assert list(mine[0]) == list(zsads[0]) and len(mine) == len(zsads) == 12
    for a, b in zip(mine, zsads):
        for column in a:
            if column in NUMERIC and (a[column] or b[column]):
                assert math.isclose(float(a[column]), float(b[column]), rel_tol=0, abs_tol=1e-4), (a["name"], column)
            elif column != "explanation":
                assert a[column] == b[column], (a["name"], column)
    assert sum(r["verdict"] == "anomalous" for r in mine) >= 1


def test_overlays_are_the_same_pictures(runs):
    ours = sorted(p.name for p in (runs / "runtime" / "overlays").iterdir())
    assert ours == sorted(p.name for p in (runs / "zsad" / "overlays").iterdir()) and len(ours) == 11
    for name in ours:
        a = np.asarray(Image.open(runs / "runtime" / "overlays" / name), dtype=np.int16)
        b = np.asarray(Image.open(runs / "zsad" / "overlays" / name), dtype=np.int16)
        assert a.shape == b.shape
        assert np.abs(a - b).mean() < 0.05  # maps equal to 1e-4: at most a colour level here and there


def test_the_bundle_describes_itself(runs, capsys):
    bundle = runs / "bundle"
    assert sorted(p.name for p in bundle.iterdir()) == ["card.json", "card.md", "graph.onnx", "zsad-runtime.json"]
    described = json.loads((bundle / "zsad-runtime.json").read_text())
    assert described["preprocess"] == {"input_size": 56, "resize": "bicubic", "mean": [0.485, 0.456, 0.406],
                                       "std": [0.229, 0.224, 0.225]}
    assert described["postprocess"] == {"input_size": 56, "sigma": 4.0, "align_corners": False,
                                        "padding": "symmetric", "smooth_at": "original"}
    assert described["threshold"]["kind"] == "mad" and described["threshold"]["natural"] > 0
    fingerprints = described["fingerprints"]
    assert fingerprints["preset"]["name"] == "anomalydino" and len(fingerprints["preset"]["sha256"]) == 64
    assert len(fingerprints["references"]["files"]) == 3 and fingerprints["backbone"]["weights"]["sha256"]
    assert described["settings"]["ran"]["scorers"] == ["fewshot"]
    assert runtime_main(["describe", str(bundle)]) == 0
    card = capsys.readouterr().out
    assert "anomalydino" in card and "random weights" in card and "zsad-runtime detect" in card


def test_errors_are_one_line(runs, tmp_path, capsys):
    bundle = runs / "bundle"
    assert runtime_main(["detect", str(tmp_path / "nothing"), str(runs / "images"), "--out", str(tmp_path)]) == 2
    assert "no such folder" in capsys.readouterr().err
    assert runtime_main(["detect", str(bundle), str(tmp_path / "missing.png"), "--out", str(tmp_path / "o")]) == 2
    assert "missing.png: no such file or folder" in capsys.readouterr().err
    assert zsad_main(["export", *MODEL, "--references", str(runs / "images"), "--out", str(bundle)]) == 2
    assert "exists and is not an empty folder" in capsys.readouterr().err
    assert zsad_main(["export", "--backbone", "tiny-clip", "--method", "mutual", "--out", str(tmp_path / "m")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("zsad: error: mutual scoring (MuSc) is not exported") and len(err.splitlines()) == 1
    assert zsad_main(["export", "--backbone", "tiny-clip", "--format", "openvino", "--int8", "--threshold-rule", "mad",
                      "--mask-rule", "mad", "--out", str(tmp_path / "i")]) == 2
    assert "use --format onnx with --int8" in capsys.readouterr().err
    assert not (tmp_path / "i").exists()


def test_auto_exports_the_per_image_method_auto_would_run(runtime_data, tmp_path, capsys):
    assert zsad_main(["export", "--backbone", "tiny-dinov2", "--input-size", "56", "--references",
                      str(runtime_data / "train" / "good"), "--threshold-rule", "mad", "--mask-rule", "mad",
                      "--out", str(tmp_path / "b")]) == 0
    assert "--method auto exports fewshot" in capsys.readouterr().err
    assert json.loads((tmp_path / "b" / "zsad-runtime.json").read_text())["method"] == "fewshot"
    assert zsad_main(["export", "--backbone", "tiny-dinov2", "--input-size", "56", "--threshold-rule", "mad",
                      "--mask-rule", "mad", "--out", str(tmp_path / "n")]) == 2
    assert "nothing to export" in capsys.readouterr().err


def test_rules_the_runtime_cannot_run_are_refused_with_the_fix(runtime_data, tmp_path, capsys):
    """The default rules estimate the batch's contamination and train a test-time mask, which stay in zsad: exporting
    them would make the bundle decide otherwise than zsad detect, so the export names the flags that export what
    runs; the conformal rules travel with the references' leave-one-out scores."""
    base = ["export", "--backbone", "tiny-dinov2", "--input-size", "56", "--references",
            str(runtime_data / "train" / "good")]
    assert zsad_main([*base, "--out", str(tmp_path / "a")]) == 2
    err = capsys.readouterr().err
    assert "--threshold-rule auto --mask-rule auto" in err and "--threshold-rule conformal --mask-rule conformal" in err
    assert zsad_main([*base, "--threshold", "0.3", "--out", str(tmp_path / "b")]) == 2  # the mask rule still auto
    assert "--mask-rule auto" in capsys.readouterr().err
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()
    assert zsad_main([*base, "--threshold-rule", "conformal", "--mask-rule", "conformal", "--out",
                      str(tmp_path / "c")]) == 0
    described = json.loads((tmp_path / "c" / "zsad-runtime.json").read_text())
    assert described["threshold"]["kind"] == "conformal" and described["masks"]["kind"] == "conformal"
    assert "calibration.npz" in described["graph"]["files"]
    without = ["export", "--backbone", "tiny-clip", "--method", "text", "--threshold-rule", "conformal",
               "--mask-rule", "mad", "--out", str(tmp_path / "d")]
    assert zsad_main(without) == 2 and "need the references' leave-one-out scores" in capsys.readouterr().err
