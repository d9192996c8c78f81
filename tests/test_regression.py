"""Stored-output regression guard (in the style of open_clip's tests/test_inference.py).

tiny-clip and tiny-dinov2 (fixed random weights) on a fixed ``zsad synth`` set, for every method and every preset
(the preset's own settings, with the backbone swapped for a tiny model of the same family and the sizes that fit
it): the image scores, the patch-grid maps, the threshold and two statistics of the full-resolution maps are
compared with ``tests/data/regression.pt`` to 1e-5, and the ``settings`` block that results.json records for each
preset with ``tests/data/regression_settings.json``. A refactor must not move these numbers; a deliberate change
regenerates the files in its own commit that says why:

    ZSAD_REGENERATE=1 .venv/bin/python -m pytest tests/test_regression.py
"""
from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
import torch

from zsad.detector import Detector

STORED = Path(__file__).parent / "data" / "regression.pt"
STORED_SETTINGS = Path(__file__).parent / "data" / "regression_settings.json"

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

# Every preset on a tiny model of its family: (case name, preset, options that swap in the tiny backbone and sizes
# that fit it, with references, with the learned adapter). Everything else comes from the preset file.
TINY_CLIP = {"backbone": "tiny-clip", "pretrained": None}
PRESET_CASES = [
    ("preset-winclip", "winclip", {**TINY_CLIP, "input_size": 96}, False, False),
    ("preset-winclip+", "winclip+", {**TINY_CLIP, "input_size": 96}, True, False),
    ("preset-anomalyclip", "anomalyclip", {**TINY_CLIP, "input_size": 64, "layers": (2, 4), "dpam_layer": 3},
     False, False),
    ("preset-anomalyclip-learned", "anomalyclip", {}, False, True),
    ("preset-musc", "musc", {**TINY_CLIP, "input_size": 96, "layers": (1, 2, 3, 4)}, False, False),
    ("preset-musc-dinov2", "musc-dinov2", {"backbone": "tiny-dinov2", "input_size": 98, "layers": (1, 2, 3, 4)},
     False, False),
    ("preset-anomalydino", "anomalydino", {"backbone": "tiny-dinov2", "input_size": 112}, True, False),
    ("preset-zsad", "zsad", {**TINY_CLIP, "input_size": 96}, True, False),
]

# What changes from machine to machine, not from setting to setting.
VOLATILE = ("device", "dtype")


@pytest.fixture(scope="module")
def regression_set(tmp_path_factory) -> Path:
    from zsad.data.synth import generate_dataset

    root = tmp_path_factory.mktemp("regression")
    generate_dataset(root, categories=["pill"], n_train=3, n_test_good=6, n_test_defect=1, size=96, seed=0)
    return root / "pill"


@pytest.fixture(scope="module")
def adapter(tiny_adapter) -> Path:
    return tiny_adapter


def grid_maps(results) -> np.ndarray:
    return np.stack([r.grid_map for r in results])


def outputs_of(detector: Detector, root: Path, with_references: bool) -> dict[str, np.ndarray]:
    test = sorted((root / "test").rglob("*.png"))
    references = sorted((root / "train" / "good").glob("*.png")) if with_references else None
    results = detector.detect(test, references=references, object_name="pill")
    assert all(r.ok for r in results), [r.error for r in results]
    return {
        "scores": np.array([r.score for r in results], dtype=np.float64),
        "grid_maps": grid_maps(results).astype(np.float32),
        "threshold": np.array([np.nan if results[0].threshold is None else results[0].threshold]),
        "map_max": np.array([r.anomaly_map.max() for r in results], dtype=np.float64),
        "map_mean": np.array([r.anomaly_map.mean() for r in results], dtype=np.float64),
    }


# The stored thresholds are those of the "mad" batch rule (the default until the reference-calibrated and
# contamination-aware rules of zsad.decisions, which tests/decisions/ check against their formulas and on a lot).
MAD = {"threshold_rule": "mad", "mask_rule": "mad"}


def run_case(root: Path, backbone: str, method: str, with_references: bool, fuse: bool) -> dict[str, np.ndarray]:
    return outputs_of(Detector(backbone, object_name="pill", method=method, fuse=fuse, **MAD), root, with_references)


def run_preset(root: Path, adapter_dir: Path, preset: str, options: dict, with_references: bool,
               learned: bool) -> tuple[dict[str, np.ndarray], dict]:
    if learned:
        options = {**options, "prompts": f"learned:{adapter_dir}"}
    detector = Detector(preset=preset, **MAD, **options)
    outputs = outputs_of(detector, root, with_references)
    # where the test's temporary adapter lives, and the device, vary from run to run
    text = json.dumps(detector.describe(), default=str)
    settings = json.loads(text.replace(str(adapter_dir), "ADAPTER") if learned else text)
    for key in VOLATILE:
        settings["runtime"].pop(key, None)
    if learned:
        settings["ran"]["text_head"]["adapter"] = "ADAPTER"
        settings["ran"]["evidence"]["anomalyclip"]["adapter"] = "ADAPTER"
    return outputs, settings


def test_outputs_equal_the_stored_ones(regression_set, adapter):
    outputs = {name: run_case(regression_set, *case) for name, *case in CASES}
    settings = {}
    for name, preset, options, with_references, learned in PRESET_CASES:
        outputs[name], settings[name] = run_preset(regression_set, adapter, preset, options, with_references, learned)
    if os.environ.get("ZSAD_REGENERATE"):
        STORED.parent.mkdir(exist_ok=True)
        torch.save({name: {k: torch.from_numpy(v) for k, v in out.items()} for name, out in outputs.items()}, STORED)
        STORED_SETTINGS.write_text(json.dumps(settings, indent=1, sort_keys=True) + "\n")
        pytest.skip(f"regenerated {STORED} and {STORED_SETTINGS}")
    stored = torch.load(STORED)
    assert sorted(stored) == sorted(outputs)
    for name, out in outputs.items():
        for key, value in out.items():
            np.testing.assert_allclose(
                value, stored[name][key].numpy(), rtol=1e-5, atol=1e-5, equal_nan=True, err_msg=f"{name}: {key}"
            )
    assert settings == json.loads(STORED_SETTINGS.read_text())
