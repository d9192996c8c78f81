"""Graphs built from real detectors, with the detector's own results on the same images to compare against.

Each case builds a ``Detector`` the way a user would (a method or a preset, on a tiny backbone), scores a few
generated images with ``detect``, and builds the export graph from the detector's parts: its backbone, its text
head's rows for the object, its scorer settings and the reference memory its scorer would build. This is the wiring
the detector layer will own (zsad.export may not import the detector).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch

from zsad.data.images import load_image
from zsad.data.preprocess import to_batch
from zsad.detector import Detector
from zsad.export.graphs import AnomalyCLIPGraph, ExportGraph, ReferenceGraph, TextGraph, WinCLIPGraph
from zsad.scoring.anomalyclip import AnomalyCLIPConfig
from zsad.scoring.fewshot import build_memory, load_references
from zsad.scoring.winclip import WinCLIPConfig, WinCLIPMemory

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


def _options(section: dict) -> dict:
    return {k: tuple(v) if isinstance(v, list) else v for k, v in section.items()}


def _detect(detector: Detector, tests: list[Path], references) -> tuple[np.ndarray, np.ndarray]:
    results = detector.detect(tests, references=references, object_name=OBJECT)
    assert all(r.ok for r in results), [r.error for r in results]
    return np.stack([r.grid_map for r in results]), np.array([r.score for r in results], dtype=np.float32)


def build_case(name: str, root: Path) -> Case:
    tests = sorted((root / "test").rglob("*.png"))
    references = sorted((root / "train" / "good").glob("*.png"))
    used = None
    if name == "text-clip":
        detector = Detector("tiny-clip", method="text", input_size=64, object_name=OBJECT)
        graph = TextGraph(detector.backbone, detector.text_head.embeddings(OBJECT), detector.config.text)
    elif name == "fewshot-clip-l2-input":
        detector = Detector("tiny-clip", method="fewshot", input_size=64, reference_metric="l2",
                            reference={"image_score": "max"}, reference_layers=(2, 4), layers=(2, 4))
        used = build_memory(detector, references)
        graph = ReferenceGraph(detector.backbone, used, detector.config.reference_layers, memory_as_input=True)
    elif name == "anomalydino":
        detector = Detector(preset=preset("anomalydino"), backbone="tiny-dinov2", input_size=56)
        used = build_memory(detector, references)
        graph = ReferenceGraph(detector.backbone, used, detector.config.reference_layers)
    elif name in ("winclip", "winclip+input"):
        detector = Detector(preset=preset("winclip"), **TINY_CLIP, input_size=64)
        config = WinCLIPConfig(**_options(detector.config.scorer_options["winclip"]))
        memory = None
        if name == "winclip+input":
            used = references
            memory = WinCLIPMemory.build(detector.extract(load_references(references)[0]))
        graph = WinCLIPGraph(detector.backbone, detector.text_head.embeddings(OBJECT), config, memory,
                             memory_as_input=memory is not None)
    elif name == "anomalyclip":
        detector = Detector(preset=preset("anomalyclip"), **TINY_CLIP, input_size=64, layers=(2, 4), dpam_layer=3)
        config = AnomalyCLIPConfig(**_options(detector.config.scorer_options["anomalyclip"]))
        graph = AnomalyCLIPGraph(detector.backbone, detector.text_head.embeddings(OBJECT), config)
    else:
        raise KeyError(name)
    maps, scores = _detect(detector, tests, used)
    backbone = detector.backbone
    images = to_batch([load_image(path).image for path in tests], backbone.input_size, backbone.mean, backbone.std,
                      detector.config.resize)
    return Case(graph, images, maps, scores)


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
