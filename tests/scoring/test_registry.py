"""The scorer seam: a toy scorer registered from outside the package runs through Detector and `zsad detect`.

The toy scorer is one class with a one-field config and one ``SCORERS.register``; nothing in ``zsad/detector.py``
or the CLI names it. Its option appears in ``zsad detect --help``, ``Detector(...)``, a preset file and
results.json from that one field. Its numbers are checked against the same formula computed directly on the
backbone's features, so the test fails if the detector ignored the registered scorer, ran another one under its
name, or dropped the option on the way.
"""
from __future__ import annotations

import csv
import io
from contextlib import redirect_stdout

import numpy as np
import pytest
import torch

from zsad.backbones.base import Features
from dataclasses import dataclass

from zsad.config import DetectorConfig
from zsad.config_fields import setting
from zsad.data.images import load_image
from zsad.detector import Detector
from zsad.errors import ZsadError
from zsad.scoring.base import AnomalyMaps, Scorer
from zsad.scoring.registry import SCORERS, method_help, method_names


def toy_maps(features: Features, power: float = 1.0) -> torch.Tensor:
    """Mean |patch token| ** power of the last layer, [B, h, w]."""
    return features.patch_tokens[:, -1].abs().pow(power).mean(-1)


@dataclass(frozen=True)
class ToyConfig:
    power: float = setting(1.0, help="exponent of the toy's token magnitude")


class ToyScorer(Scorer):
    name = "toy"

    def add(self, features: Features, start: int) -> AnomalyMaps:
        maps = toy_maps(features, self.config.power)
        return AnomalyMaps(maps=maps, scores=maps.flatten(1).max(1).values, source=self.name)


@pytest.fixture
def toy():
    assert "toy" not in SCORERS
    SCORERS.register("toy", config=ToyConfig, help="toy evidence: mean absolute patch token (test only)")(ToyScorer)
    yield ToyScorer
    SCORERS.unregister("toy")


@pytest.fixture(scope="module")
def images():
    rng = np.random.default_rng(1)
    return [(rng.random((64, 64, 3)) * 255).astype(np.uint8) for _ in range(3)]


def test_registered_scorer_runs_through_detector(toy, images):
    detector = Detector("tiny-clip", method="toy")
    assert detector.plan_evidence(3, has_references=False) == ["toy"]
    results = detector.detect(images)
    expected = toy_maps(detector.extract([load_image(i) for i in images]))
    assert [list(r.evidence) for r in results] == [["toy"]] * 3
    for result, grid in zip(results, expected):
        assert result.ok
        np.testing.assert_allclose(result.grid_map, grid.numpy(), rtol=1e-5, atol=1e-6)
        assert result.score == pytest.approx(float(grid.max()), rel=1e-5)
        assert result.evidence["toy"].score == pytest.approx(result.score)


def test_auto_does_not_pick_a_new_scorer_unless_it_says_so(toy):
    detector = Detector("tiny-clip")
    assert "toy" not in detector.plan_evidence(10, has_references=False)


def test_registered_scorer_runs_through_the_cli(toy, images, tmp_path):
    from PIL import Image

    from zsad.cli.main import main

    folder = tmp_path / "images"
    folder.mkdir()
    for index, array in enumerate(images):
        Image.fromarray(array).save(folder / f"{index}.png")
    out = tmp_path / "out"
    with redirect_stdout(io.StringIO()):
        code = main(["detect", str(folder), "--backbone", "tiny-clip", "--method", "toy", "--out", str(out)])
    assert code == 0
    rows = list(csv.DictReader(open(out / "results.csv")))
    assert [r["evidence"] for r in rows] == ["toy"] * 3
    detector = Detector("tiny-clip", method="toy")
    direct = toy_maps(detector.extract([load_image(folder / f"{i}.png") for i in range(3)]))
    for row, grid in zip(rows, direct):
        assert float(row["toy_score"]) == pytest.approx(float(grid.max()), rel=1e-5)
        assert float(row["map_max"]) == pytest.approx(float(grid.max()), rel=1e-5)
    assert len(list((out / "overlays").glob("*.png"))) == 3


def test_the_toy_option_reaches_detector_preset_and_results(toy, images, tmp_path):
    detector = Detector("tiny-clip", method="toy", toy_power=2.0)
    results = detector.detect(images)
    expected = toy_maps(detector.extract([load_image(i) for i in images]), 2.0)
    np.testing.assert_allclose(results[0].grid_map, expected[0].numpy(), rtol=1e-5, atol=1e-6)
    assert detector.describe()["scorers"]["toy"] == {"power": 2.0}
    assert detector.describe()["origins"]["scorers.toy.power"] == "option"
    preset = tmp_path / "toy.yaml"
    preset.write_text("name: toy-preset\noptions:\n  backbone: tiny-clip\n  method: toy\n  toy: {power: 3}\n")
    from_preset = Detector(preset=str(preset))
    assert from_preset.config.scorer("toy").power == 3.0
    np.testing.assert_allclose(from_preset.detect(images)[0].grid_map,
                               toy_maps(detector.extract([load_image(images[0])]), 3.0)[0].numpy(), rtol=1e-5,
                               atol=1e-6)


def test_the_toy_option_reaches_the_cli_and_results_json(toy, images, tmp_path, capsys):
    import json

    from PIL import Image

    from zsad.cli.main import build_parser, main

    with pytest.raises(SystemExit):
        build_parser().parse_args(["detect", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "--toy-power" in text and "exponent of the toy's token magnitude (default: 1.0)" in text
    folder = tmp_path / "images"
    folder.mkdir()
    for index, array in enumerate(images):
        Image.fromarray(array).save(folder / f"{index}.png")
    code = main(["detect", str(folder), "--backbone", "tiny-clip", "--method", "toy", "--toy-power", "0.5",
                 "--out", str(tmp_path / "out")])
    assert code == 0
    settings = json.loads((tmp_path / "out" / "results.json").read_text())["settings"]
    assert settings["scorers"]["toy"] == {"power": 0.5} and settings["ran"]["scorers"] == ["toy"]


def test_method_choices_and_help_come_from_the_registry(toy, capsys):
    from zsad.cli.main import build_parser

    assert method_names()[0] == "auto" and method_names()[-1] == "toy"
    assert {"text", "fewshot", "mutual", "winclip", "anomalyclip"} <= set(method_names())
    assert "toy: toy evidence" in method_help()
    with pytest.raises(SystemExit):
        build_parser().parse_args(["detect", "--help"])
    text = " ".join(capsys.readouterr().out.split())  # argparse wraps lines
    for name in method_names():
        assert f"{name}:" in text, name
    assert "toy evidence: mean absolute patch token" in text


def test_unknown_method_is_refused_without_the_registration():
    with pytest.raises(ZsadError, match="unknown method 'toy'"):
        Detector("tiny-clip", method="toy")


def test_config_and_options_together_is_an_error():
    with pytest.raises(ZsadError, match="either config= or options"):
        Detector(config=DetectorConfig(), object_name="bottle")
    with pytest.raises(ZsadError, match="either config= or options"):
        Detector("tiny-clip", config=DetectorConfig())
    with pytest.raises(ZsadError, match="unknown detector option"):
        Detector("tiny-clip", object_nme="bottle")
