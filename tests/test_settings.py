"""What the user gives is what runs, and what runs is what is recorded (issue: components own their settings).

Each test is one of the defects found on 0.1: the value asked for did not reach the code that ran, or results.json
recorded another value than the one that ran. Plus the precedence rule itself: built-in default < scorer default
< preset < adapter < explicit option, each override of a preset's or adapter's value reported once.
"""
from __future__ import annotations

import json
import warnings

import numpy as np
import pytest

from zsad.config import build_config
from zsad.detector import Detector
from zsad.errors import ZsadError
from zsad.postprocess.maps import MapPostprocess


@pytest.fixture(scope="module")
def images():
    rng = np.random.default_rng(3)
    return [(rng.random((64, 64, 3)) * 255).astype(np.uint8) for _ in range(3)]


def test_an_explicit_sigma_reaches_anomalyclip_and_is_recorded(images):
    """0.1: ``method="anomalyclip", sigma=0`` still smoothed with sigma 4 and results.json said 0."""
    with pytest.warns(UserWarning, match=r"departs from the anomalyclip scorer's own: sigma 0.0 \(option\) replaces 4"):
        detector = Detector("tiny-clip", method="anomalyclip", sigma=0.0, input_size=64)
        result = detector.detect(images)[0]
    assert result.postprocess == MapPostprocess(64, 0.0, False, "symmetric", "input")
    raw = MapPostprocess(64, 0.0, False, "symmetric").apply(result.grid_map, result.original_size)
    np.testing.assert_allclose(result.anomaly_map, raw)  # no smoothing happened
    ran = detector.describe()["ran"]["postprocess"]
    assert (ran["sigma"], ran["padding"]) == (0.0, "symmetric")
    default = Detector("tiny-clip", method="anomalyclip", input_size=64)
    assert default.detect(images)[0].postprocess.sigma == 4.0  # the scorer's own default without the option


def test_the_rules_explainer_is_available_by_name(images):
    """0.1: ``explainer="rules"`` failed with "unknown explainer 'rules'"."""
    detector = Detector("tiny-clip", explainer="rules", method="text", input_size=64)
    assert detector.explainer.describe()["explainer"] == "rules"
    result = detector.detect(images)[0]
    assert result.reasoning["source"] == "rules" and "rule" in result.explanation
    with pytest.raises(ZsadError, match="unknown explainer 'nope'; use one of auto, factual, llm, rules"):
        build_config(explainer="nope")


def test_dpam_layer_and_vv_layers_are_one_setting():
    """0.1: an adapter's DPAM 20 became vv_layers 19 before an explicit --dpam-layer 4 was applied, which then
    failed as a contradiction; and results.json recorded vv_layers 0 when V-V came from dpam_layer."""
    config = build_config(preset="anomalyclip")
    assert (config.backbone.dpam_layer, config.backbone.vv_layers) == (20, 19)
    with pytest.warns(UserWarning) as caught:
        config = build_config(preset="anomalyclip", dpam_layer=4)
    assert (config.backbone.dpam_layer, config.backbone.vv_layers) == (4, 3)
    message = str(caught[0].message)
    assert "dpam_layer 4 (option) replaces 20 (preset anomalyclip)" in message
    assert "vv_layers 3 (option) replaces 19 (preset anomalyclip)" in message
    config = build_config(preset="anomalyclip", vv_layers=5)
    assert (config.backbone.dpam_layer, config.backbone.vv_layers) == (None, 5)


def test_an_adapter_setting_below_an_explicit_dpam_layer(tiny_adapter):
    """The adapter's trained DPAM layer sits between the preset and the explicit option: no contradiction, and the
    override (with its derived vv_layers) is reported once."""
    adapter = tiny_adapter
    with pytest.warns(UserWarning) as caught:
        config = build_config(preset="anomalyclip", prompts=f"learned:{adapter}", dpam_layer=2)
    assert (config.backbone.name, config.backbone.input_size) == ("tiny-clip", 64)  # the adapter's own
    assert (config.backbone.dpam_layer, config.backbone.vv_layers) == (2, 1)
    text = " ".join(str(w.message) for w in caught)
    assert "dpam_layer 2 (option) replaces 3 (adapter" in text and "vv_layers 1 (option) replaces 2 (adapter" in text
    assert config.origins["backbone.input_size"].startswith("adapter")


def test_winclip_runs_from_the_cli(tmp_path, images):
    """0.1: ``--method winclip`` could not run from the CLI (no option set the windows)."""
    from PIL import Image

    from zsad.cli.main import main

    for index, array in enumerate(images):
        Image.fromarray(array).save(tmp_path / f"{index}.png")
    out = tmp_path / "out"
    assert main(["detect", str(tmp_path), "--backbone", "tiny-clip", "--method", "winclip", "--input-size", "64",
                 "--out", str(out)]) == 0
    settings = json.loads((out / "results.json").read_text())["settings"]
    assert settings["backbone"]["windows"] == [2, 3] and settings["origins"]["backbone.windows"] == "required by winclip"
    assert settings["ran"]["evidence"]["winclip"]["method"] == "winclip"
    assert settings["ran"]["postprocess"]["sigma"] == 0.0  # WinCLIP's own: no smoothing


def test_maps_of_dinov2_results_are_not_guessed_at_16_px_patches(tmp_path):
    """0.1: a result or evaluation record without its post-processing assumed 16-px patches (DINOv2's are 14)."""
    from zsad.results import AnomalyResult

    grid = np.random.default_rng(0).random((8, 8)).astype(np.float32)
    result = AnomalyResult(name="x", score=1.0, grid_map=grid, original_size=(112, 112))
    np.testing.assert_allclose(result.anomaly_map, MapPostprocess(8, 0.0).apply(grid, (112, 112)))


def test_precedence_and_where_each_value_came_from():
    config = build_config(preset="musc", batch_size=4)
    assert config.origins["runtime.batch_size"] == "option"
    assert config.origins["backbone.input_size"] == "preset musc"
    assert "backbone.name" in config.origins and "scorers.mutual.memory_mb" not in config.origins  # defaults
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # equal to the preset's value: nothing to report
        assert build_config(preset="musc", input_size=518).backbone.input_size == 518
    with pytest.warns(UserWarning, match=r"input_size 336 \(option\) replaces 518 \(preset musc\)"):
        build_config(preset="musc", input_size=336)


def test_flat_names_of_01_still_read_and_write():
    """0.1's option names and section keys are aliases of the owned settings."""
    config = build_config(rotations=True, reference_layers=[1], min_mutual_batch=12, text_image_score="max",
                          reference={"metric": "l2"}, mutual={"radii": [1]}, text={"prompts": "winclip",
                                                                                     "temperature": 0.05})
    fewshot = config.scorer("fewshot")
    assert (fewshot.rotations, fewshot.layers, fewshot.metric) == (True, (1,), "l2")
    assert config.mutual.min_batch == 12 and config.mutual.radii == (1,)
    assert config.text.image_score == "max" and config.text.temperature == 0.05
    assert config.sigma == 4.0 and config.gaussian_padding == "mirror" and config.batch_size == 8
    assert build_config(preset="anomalyclip").gaussian_padding == "symmetric"  # what that method runs with
    assert config.reference.metric == "l2"
    with pytest.raises(ZsadError, match="unknown setting mutual.nope"):
        build_config(mutual={"nope": 1})
