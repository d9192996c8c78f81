"""Run description: weights fingerprint, random-weights flag, JSON conversion; zsad eval's functions."""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch
from standin_detector import StandInDetector

from zsad.evaluation.cli import add_eval_arguments, run_eval
from zsad.evaluation.environment import is_random_weights, jsonable, weights_fingerprint


def test_fingerprint_follows_the_weights() -> None:
    def model(seed: int) -> torch.nn.Module:
        torch.manual_seed(seed)
        return torch.nn.Sequential(*[torch.nn.Linear(3, 3) for _ in range(6)])

    a, b = weights_fingerprint(model(0)), weights_fingerprint(model(0))
    assert a == b and a["parameters"] == 6 * 12 and len(a["tensors"]) == 8
    assert weights_fingerprint(model(1))["sha256"] != a["sha256"]
    changed = model(0)
    with torch.no_grad():
        changed[-1].bias[0] += 1e-3  # the last tensor is hashed
    assert weights_fingerprint(changed)["sha256"] != a["sha256"]
    assert weights_fingerprint(torch.nn.Identity()) is None  # a module without parameters


def test_random_weights_flag_and_jsonable() -> None:
    assert is_random_weights("tiny-clip", None) and is_random_weights("ViT-B-16", "random")
    assert not is_random_weights("ViT-L-14-336", "openai")
    assert jsonable({"a": (1, Path("/x")), "b": torch.tensor(2.5)}) == {"a": [1, "/x"], "b": 2.5}


def test_run_eval_writes_a_run_folder(tmp_path: Path, capsys) -> None:
    from zsad.data.synth import generate_dataset

    root = generate_dataset(tmp_path / "d", categories=["pill"], n_train=3, n_test_good=3, n_test_defect=1, size=96)
    parser = argparse.ArgumentParser()
    add_eval_arguments(parser)
    args = parser.parse_args(["--dataset", "mvtec", "--root", str(root), "--out", str(tmp_path / "run"),
                              "--shots", "1", "--seeds", "0", "1", "--reference-lists", str(tmp_path / "refs.json")])
    assert run_eval(args, lambda a: StandInDetector()) == 0
    out = capsys.readouterr()
    assert "| pill |" in out.out and "randomly initialised" in out.err
    data = json.loads((tmp_path / "run" / "run.json").read_text())
    assert data["description"]["seeds"] == [0, 1] and data["description"]["shots"] == 1
    refs = json.loads((tmp_path / "refs.json").read_text())
    assert data["description"]["references"]["lists"] == refs["lists"]
