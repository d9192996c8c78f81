"""Stored-output regression guard (in the style of open_clip's tests/test_inference.py).

tiny-clip and tiny-dinov2 (fixed random weights) on a fixed ``zsad synth`` set, for every method: the image scores,
the patch-grid maps, the threshold and two statistics of the full-resolution maps are compared with
``tests/data/regression.pt`` to 1e-5. A refactor must not move these numbers; a deliberate change of numbers
regenerates the file in its own commit that says why:

    ZSAD_REGENERATE=1 .venv/bin/python -m pytest tests/test_regression.py
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch

from zsad.detector import Detector

STORED = Path(__file__).parent / "data" / "regression.pt"

# (case name, backbone, method, with references, fuse)
CASES = [
    ("clip-text", "tiny-clip", "text", False, False),
    ("clip-fewshot", "tiny-clip", "fewshot", True, False),
    ("clip-mutual", "tiny-clip", "mutual", False, False),
    ("clip-auto", "tiny-clip", "auto", True, False),
    ("clip-fused", "tiny-clip", "auto", True, True),
    ("dino-fewshot", "tiny-dinov2", "fewshot", True, False),
    ("dino-mutual", "tiny-dinov2", "mutual", False, False),
    ("dino-auto", "tiny-dinov2", "auto", True, False),
    ("dino-fused", "tiny-dinov2", "auto", True, True),
]


@pytest.fixture(scope="module")
def regression_set(tmp_path_factory) -> Path:
    from zsad.data.synth import generate_dataset

    root = tmp_path_factory.mktemp("regression")
    generate_dataset(root, categories=["pill"], n_train=3, n_test_good=6, n_test_defect=1, size=96, seed=0)
    return root / "pill"


def grid_maps(results) -> np.ndarray:
    return np.stack([r.grid_map for r in results])


def run_case(root: Path, backbone: str, method: str, with_references: bool, fuse: bool) -> dict[str, np.ndarray]:
    detector = Detector(backbone, object_name="pill", method=method, fuse=fuse)
    test = sorted((root / "test").rglob("*.png"))
    references = sorted((root / "train" / "good").glob("*.png")) if with_references else None
    results = detector.detect(test, references=references)
    assert all(r.ok for r in results)
    return {
        "scores": np.array([r.score for r in results], dtype=np.float64),
        "grid_maps": grid_maps(results).astype(np.float32),
        "threshold": np.array([np.nan if results[0].threshold is None else results[0].threshold]),
        "map_max": np.array([r.anomaly_map.max() for r in results], dtype=np.float64),
        "map_mean": np.array([r.anomaly_map.mean() for r in results], dtype=np.float64),
    }


def test_outputs_equal_the_stored_ones(regression_set):
    outputs = {name: run_case(regression_set, *case) for name, *case in CASES}
    if os.environ.get("ZSAD_REGENERATE"):
        STORED.parent.mkdir(exist_ok=True)
        torch.save({name: {k: torch.from_numpy(v) for k, v in out.items()} for name, out in outputs.items()}, STORED)
        pytest.skip(f"regenerated {STORED}")
    stored = torch.load(STORED)
    assert sorted(stored) == sorted(outputs)
    for name, out in outputs.items():
        for key, value in out.items():
            np.testing.assert_allclose(
                value, stored[name][key].numpy(), rtol=1e-5, atol=1e-5, equal_nan=True, err_msg=f"{name}: {key}"
            )
