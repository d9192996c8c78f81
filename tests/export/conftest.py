"""Graphs built from real detectors, with the detector's own results on the same images to compare against.

Each case builds a ``Detector`` the way a user would (a method or a preset, on a tiny backbone), scores a few
generated images with ``detect``, and builds the export graph from the scorer that ``detect`` runs, started as
``detect`` starts it: the detector's backbone and the scorer's text rows, memory and settings. That wiring is the
detector layer's (``zsad.deploy.exportable_scorer`` and ``graph_of``; zsad.export may not import the detector).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch

from zsad.data.images import load_image
from zsad.data.preprocess import to_batch
from zsad.deploy import exportable_scorer, graph_of
from zsad.detector import Detector
from zsad.export.graphs import ExportGraph

TINY_CLIP = {"backbone": "tiny-clip", "pretrained": None}
OBJECT = "pill"
# The presets of this checkout by path: ``zsad.preset_files`` resolves to wherever zsad was installed from.
PRESETS = Path(__file__).resolve().parents[2] / "presets"


def preset(name: str) -> str:
    return str(PRESETS / f"{name}.yaml")


@dataclass
class Case:
    graph: ExportGraph
    images: torch.Tensor  # the detector's preprocessing of the test images
    maps: np.ndarray  # the detector's grid maps [B, h, w]
    scores: np.ndarray  # and image scores [B]


def _detector(name: str) -> Detector:
    if name == "text-clip":
        return Detector("tiny-clip", method="text", input_size=64, object_name=OBJECT)
    if name == "fewshot-clip-l2-input":
        return Detector("tiny-clip", method="fewshot", input_size=64, reference_metric="l2",
                        reference={"image_score": "max"}, reference_layers=(2, 4), layers=(2, 4))
    if name == "anomalydino":
        return Detector(preset=preset("anomalydino"), backbone="tiny-dinov2", input_size=56)
    if name in ("winclip", "winclip+input"):
        return Detector(preset=preset("winclip"), **TINY_CLIP, input_size=64)
    if name == "anomalyclip":
        return Detector(preset=preset("anomalyclip"), **TINY_CLIP, input_size=64, layers=(2, 4), dpam_layer=3)
    raise KeyError(name)


def build_case(name: str, root: Path) -> Case:
    tests = sorted((root / "test").rglob("*.png"))
    with_references = name in ("fewshot-clip-l2-input", "anomalydino", "winclip+input")
    references = sorted((root / "train" / "good").glob("*.png")) if with_references else None
    detector = _detector(name)
    scorer = exportable_scorer(detector, references, OBJECT)
    graph = graph_of(detector, scorer, memory_as_input=True if name.endswith("-input") else None)
    results = detector.detect(tests, references=references, object_name=OBJECT)
    assert all(r.ok for r in results), [r.error for r in results]
    backbone = detector.backbone
    images = to_batch([load_image(path).image for path in tests], backbone.input_size, backbone.mean, backbone.std,
                      detector.config.backbone.resize)
    return Case(graph, images, np.stack([r.grid_map for r in results]),
                np.array([r.score for r in results], dtype=np.float32))


@pytest.fixture(scope="session")
def export_root(tmp_path_factory) -> Path:
    from zsad.data.synth import generate_dataset

    root = tmp_path_factory.mktemp("export")
    generate_dataset(root, categories=["pill"], n_train=2, n_test_good=2, n_test_defect=1, size=96, seed=3)
    return root / "pill"


@pytest.fixture(scope="session")
def cases(export_root):
    """name -> Case, built on first use and shared by the graph and the ONNX tests."""
    built: dict[str, Case] = {}

    def get(name: str) -> Case:
        if name not in built:
            built[name] = build_case(name, export_root)
        return built[name]

    return get
