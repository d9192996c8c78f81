"""Exported graphs, run by onnxruntime and OpenVINO, against the detector's maps and scores (fp32, 1e-4).

Each case is exported once (the graph traced with a batch of 2) and run on all test images (7) and on one image, so
the batch axis is shown to be dynamic. Exports take seconds each (torch.export tracing), which is most of this file.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

pytest.importorskip("onnx")
pytest.importorskip("onnxscript")
pytest.importorskip("onnxruntime")

from zsad.backbones import BackboneSpec, load_backbone  # noqa: E402
from zsad.export.convert import OPSET, backbone_matmuls, export_onnx, quantize_int8, to_openvino  # noqa: E402
from zsad.export.graphs import FeatureGraph  # noqa: E402
from zsad_runtime.engines import OnnxRuntimeGraph, OpenVINOGraph  # noqa: E402

CASES = ["text-clip", "fewshot-clip-l2-input", "anomalydino", "winclip", "winclip+input", "anomalyclip"]
TOLERANCE = 1e-4


@pytest.fixture(scope="module")
def exported(cases, tmp_path_factory):
    folder = tmp_path_factory.mktemp("onnx")
    paths: dict[str, Path] = {}

    def get(name: str) -> Path:
        if name not in paths:
            paths[name] = export_onnx(cases(name).graph, None, folder / f"{name}.onnx")
        return paths[name]

    return get


def _memory(case) -> list[np.ndarray]:
    return [t.numpy() for t in case.graph.memory_inputs().values()]


def _check(run, case) -> None:
    maps, scores = run(case.images.numpy(), *_memory(case))
    np.testing.assert_allclose(maps, case.maps, rtol=0, atol=TOLERANCE)
    np.testing.assert_allclose(scores, case.scores, rtol=0, atol=TOLERANCE)
    maps, scores = run(case.images[1:2].numpy(), *_memory(case))
    np.testing.assert_allclose(maps, case.maps[1:2], rtol=0, atol=TOLERANCE)
    np.testing.assert_allclose(scores, case.scores[1:2], rtol=0, atol=TOLERANCE)


@pytest.mark.parametrize("name", CASES)
def test_onnxruntime_equals_the_detector(cases, exported, name):
    case = cases(name)
    assert len(case.images) > 2 and np.ptp(case.scores) > 0
    _check(OnnxRuntimeGraph(exported(name)), case)


@pytest.mark.parametrize("name", CASES)
def test_openvino_equals_the_detector(cases, exported, name):
    pytest.importorskip("openvino")
    _check(OpenVINOGraph(to_openvino(exported(name))), cases(name))


def test_graph_file_has_a_dynamic_batch_opset_18_and_its_memory_as_input(cases, exported):
    import onnx

    model = onnx.load(str(exported("fewshot-clip-l2-input")))
    assert [(o.domain, o.version) for o in model.opset_import if o.domain in ("", "ai.onnx")] == [("", OPSET)]
    shapes = {i.name: [d.dim_param or d.dim_value for d in i.type.tensor_type.shape.dim] for i in model.graph.input}
    bank = cases("fewshot-clip-l2-input").graph.memory_inputs()["bank"]
    assert shapes == {"images": ["batch", 3, 64, 64], "bank": [2, "bank_rows", bank.shape[-1]]}
    outputs = {o.name: [d.dim_param or d.dim_value for d in o.type.tensor_type.shape.dim] for o in model.graph.output}
    assert outputs == {"maps": ["batch", 4, 4], "scores": ["batch"]}
    assert not any(init.name == "bank" for init in model.graph.initializer)


def test_int8_quantises_the_backbone_matmuls_only(cases, exported, tmp_path):
    import onnx

    case = cases("anomalydino")
    path = exported("anomalydino")
    backbone = backbone_matmuls(path)
    assert len(backbone) == 4 * 6  # tiny-dinov2: 4 blocks x (query, key, value, output, fc1, fc2)
    quantized = onnx.load(str(quantize_int8(path, tmp_path / "int8.onnx")))
    ops = [node.op_type for node in quantized.graph.node]
    assert ops.count("MatMulInteger") == len(backbone)
    # the memory search keeps its fp32 product with the bank (cosine: one MatMul per memory chunk)
    assert ops.count("MatMul") >= 1
    maps, scores = OnnxRuntimeGraph(tmp_path / "int8.onnx")(case.images.numpy())
    deviation = np.abs(maps - case.maps).max()
    assert 0 < deviation < 0.1, deviation  # quantised (not bitwise fp32), and still the same map


def test_feature_graph_of_a_register_model(tmp_path):
    """DINOv2 with registers resizes its position embeddings with an antialiased bicubic (ONNX Resize, opset 18)."""
    backbone = load_backbone(BackboneSpec("tiny-dinov2-reg", input_size=70))
    graph = FeatureGraph(backbone)
    images = torch.randn(3, 3, 70, 70, generator=torch.Generator().manual_seed(5))
    with torch.inference_mode():
        tokens, cls = graph(images)
    got = OnnxRuntimeGraph(export_onnx(graph, None, tmp_path / "features.onnx"))(images.numpy())
    np.testing.assert_allclose(got[0], tokens.numpy(), rtol=0, atol=TOLERANCE)
    np.testing.assert_allclose(got[1], cls.numpy(), rtol=0, atol=TOLERANCE)
