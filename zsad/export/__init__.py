"""Export: zsad's per-image scorers as graph files that run without torch (ONNX, OpenVINO).

- ``graphs``: one torch module per scorer, from a normalised image batch to (grid maps, image scores), text rows and
  reference memories baked in (or, for large memories, given as a second input); ``FeatureGraph`` for the backbone
  pass alone (mutual scoring stays in torch: see ``graphs``).
- ``ops``: export-friendly equivalents of the eager steps whose loops depend on the batch size.
- ``convert``: ``export_onnx`` (fp32, dynamic batch, opset 18), ``to_openvino``, ``quantize_int8``.
- ``runners``: onnxruntime / OpenVINO sessions with numpy in and out.
- ``numpy_postprocess``: upsampling and Gaussian smoothing of the grid maps as zsad does them, in numpy.

This stage sits beside ``scoring``: it reads backbones, scoring math and text heads, never the detector, config or
CLI (the detector layer wires a configured detector into these graphs). Only ``convert`` and ``runners`` need the
``export`` extra (onnx, onnxscript, onnxruntime; ``openvino`` for OpenVINO), and import it when called.
"""
from zsad.export.graphs import (
    AnomalyCLIPGraph,
    ExportGraph,
    FeatureGraph,
    ReferenceGraph,
    TextGraph,
    WinCLIPGraph,
)

__all__ = ["AnomalyCLIPGraph", "ExportGraph", "FeatureGraph", "ReferenceGraph", "TextGraph", "WinCLIPGraph"]
