"""``zsad discover RUN_DIR`` on a folder written by ``zsad detect``, and reading run folders back exactly."""
from __future__ import annotations

import argparse
import json
import shutil

import numpy as np
import pytest
import torch

from zsad.discovery.cli import add_discover_parser
from zsad.discovery.run_dir import backbone_spec, load_run
from zsad.outputs import ScoreJournal

DETECT = ["--backbone", "tiny-dinov2", "--layers", "1", "--input-size", "224", "--method", "fewshot"]


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    from zsad.cli.main import main
    from zsad.data.synth import generate_dataset

    root = generate_dataset(tmp_path_factory.mktemp("data"), ["weave"], n_train=4, n_test_good=2, n_test_defect=2,
                            size=96, seed=1)
    out = tmp_path_factory.mktemp("run")
    assert main(["detect", str(root / "weave" / "test"), "--references", str(root / "weave" / "train" / "good"),
                 *DETECT, "--out", str(out)]) == 0
    return root, out


def _discover(*argv: str) -> int:
    parser = argparse.ArgumentParser()
    add_discover_parser(parser.add_subparsers())
    args = parser.parse_args(["discover", *argv])
    return args.run(args)


def test_discover_command_writes_types_images_and_sheets(run_dir, tmp_path, capsys):
    _, out = run_dir
    assert _discover(str(out), "--threshold=-1e9", "--types", "3", "--out", str(tmp_path)) == 0
    printed = capsys.readouterr().out
    assert "10 images" in printed and "3 types (fixed)" in printed
    document = json.loads((tmp_path / "types.json").read_text())
    assert document["settings"]["backbone"] == "tiny-dinov2" and len(document["types"]) == 3
    assert sum(t["count"] for t in document["types"]) == 10
    assert len(list((tmp_path / "sheets").glob("type_*.png"))) == 3
    rows = (tmp_path / "images.csv").read_text().splitlines()
    assert rows[0] == "name,path,score,defect_type,defect_type_confidence,regions" and len(rows) == 11


def test_a_run_without_anomalies_says_so(run_dir, tmp_path, capsys):
    _, out = run_dir
    assert _discover(str(out), "--threshold", "1e9", "--out", str(tmp_path), "--features", "colour") == 0
    assert "no anomalous region" in capsys.readouterr().out


def test_run_folder_maps_are_the_detectors_maps_bit_for_bit(run_dir):
    from zsad.detector import Detector

    root, out = run_dir
    run = load_run(out)
    detector = Detector("tiny-dinov2", layers=(1,), input_size=224, method="fewshot")
    direct = detector.detect(root / "weave" / "test", references=root / "weave" / "train" / "good")
    assert run.exact_maps and run.object_name == "object" and all(m is None for m in run.masks)
    assert run.backbone == backbone_spec({"backbone": detector.describe()["backbone"]})
    assert [r.name for r in run.results] == [r.name for r in direct]
    for read, made in zip(run.results, direct):
        np.testing.assert_array_equal(read.grid_map, made.grid_map)
        assert read.original_size == made.original_size and read.is_anomalous == made.is_anomalous


def test_several_evidences_are_fused_as_the_detector_fuses_them(tmp_path):
    from zsad.scoring.base import AnomalyMaps
    from zsad.scoring.fusion import fuse

    rng = np.random.default_rng(0)
    text, fewshot = rng.random((3, 4, 4)).astype(np.float32), rng.random((3, 4, 4)).astype(np.float32) * 9
    journal = ScoreJournal(tmp_path, resume=False)
    records = []
    for i in range(3):
        journal.add(f"/x/{i}.png", (40, 40), {"text": (0.5, text[i]), "fewshot": (0.1, fewshot[i])})
        records.append({"name": f"{i}.png", "path": f"/x/{i}.png", "score": 1.0, "verdict": "anomalous",
                        "evidence": {"text": {}, "fewshot": {}}, "regions": []})
    (tmp_path / "results.json").write_text(json.dumps({"settings": {}, "results": records}))
    expected = fuse([AnomalyMaps(torch.from_numpy(text), torch.zeros(3), "text"),
                     AnomalyMaps(torch.from_numpy(fewshot), torch.zeros(3), "fewshot")]).maps.numpy()
    run = load_run(tmp_path)
    assert run.exact_maps and run.backbone is None
    np.testing.assert_array_equal(np.stack([r.grid_map for r in run.results]), expected)


def test_without_a_journal_the_region_boxes_of_results_json_become_the_masks(run_dir, tmp_path):
    from zsad.discovery import discover

    _, out = run_dir
    shutil.copy(out / "results.json", tmp_path / "results.json")
    document = json.loads((tmp_path / "results.json").read_text())
    record = next(r for r in document["results"] if r["regions"])
    run = load_run(tmp_path)
    assert not run.exact_maps
    position = [r.name for r in run.results].index(record["name"])
    mask = run.masks[position]
    x0, y0, x1, y1 = record["regions"][0]["box"]
    width, height = run.results[position].original_size
    assert mask[int(64 * (y0 + y1) / 2 / height), int(64 * (x0 + x1) / 2 / width)]
    found = discover([run.results[position]], None, threshold=-1e9, masks=[mask], features="colour")
    assert any(a <= x0 and b <= y0 and c >= x1 and d >= y1 for a, b, c, d in (r.crop.region_box for r in found.regions))


def test_a_folder_without_results_is_a_one_line_error(tmp_path):
    from zsad.errors import ZsadError

    with pytest.raises(ZsadError, match="no results.json"):
        load_run(tmp_path)
    (tmp_path / "results.json").write_text("{")
    with pytest.raises(ZsadError, match="not a zsad results file"):
        load_run(tmp_path)


def test_discover_names_types_with_a_local_llm_and_records_a_failure(run_dir, tmp_path, server, capsys):
    _, out = run_dir
    server.default = lambda body: json.dumps({"name": "woven flaw", "description": "A flaw in the weave."})
    llm = ["--naming", "llm", "--llm-base-url", server.base_url, "--llm-model", "scripted"]
    assert _discover(str(out), "--threshold=-1e9", "--types", "2", "--out", str(tmp_path / "a"), "--no-sheets",
                     *llm) == 0
    document = json.loads((tmp_path / "a" / "types.json").read_text())
    assert [t["name"] for t in document["types"]] == ["woven flaw", "woven flaw 2"]
    assert all(t["named_by"] == "llm" and t["description"] == "A flaw in the weave." for t in document["types"])
    assert document["settings"]["naming"] == "llm" and not (tmp_path / "a" / "sheets").exists()
    server.default, server.script = None, [("status", 503)] * 6  # 3 attempts, then the breaker stops the LLM
    with pytest.warns(UserWarning, match="type namer failed"):
        assert _discover(str(out), "--threshold=-1e9", "--types", "2", "--out", str(tmp_path / "b"), *llm) == 0
    document = json.loads((tmp_path / "b" / "types.json").read_text())
    assert [t["name"] for t in document["types"]] == ["type 1", "type 2"]
    first, second = (t["naming_error"] for t in document["types"])
    assert "failed after 3 attempt" in first and "stopped after 3 consecutive failures" in second
    assert "numbered name kept" in capsys.readouterr().out


def test_naming_llm_without_an_llm_is_refused(run_dir, tmp_path):
    from zsad.errors import ZsadError

    _, out = run_dir
    with pytest.raises(ZsadError, match="--naming llm needs an LLM"):
        _discover(str(out), "--naming", "llm", "--out", str(tmp_path))
