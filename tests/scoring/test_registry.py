"""The scorer seam: a toy scorer registered from outside the package runs through Detector and `zsad detect`.

The toy scorer is one class and one ``@register_scorer``; nothing in ``zsad/detector.py`` or the CLI names it. Its
numbers are checked against the same formula computed directly on the backbone's features, so the test fails if
the detector ignored the registered scorer (or ran another one under its name).
"""
from __future__ import annotations

import csv
import io
from contextlib import redirect_stdout

import numpy as np
import pytest
import torch

from zsad.backbones.base import Features
from zsad.config import DetectorConfig
from zsad.data.images import load_image
from zsad.detector import Detector
from zsad.errors import ZsadError
from zsad.scoring.base import SCORERS, AnomalyMaps, Scorer, method_help, method_names, register_scorer


def toy_maps(features: Features) -> torch.Tensor:
    """Mean |patch token| of the last layer, [B, h, w]."""
    return features.patch_tokens[:, -1].abs().mean(-1)


class ToyScorer(Scorer):
    name = "toy"
    help = "toy evidence: mean absolute patch token (test only)"

    def add(self, features: Features, start: int) -> AnomalyMaps:
        maps = toy_maps(features)
        return AnomalyMaps(maps=maps, scores=maps.flatten(1).max(1).values, source=self.name)


@pytest.fixture
def toy():
    assert "toy" not in SCORERS
    register_scorer(ToyScorer)
    yield ToyScorer
    SCORERS.pop("toy")


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
