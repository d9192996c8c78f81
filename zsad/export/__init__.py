"""Export: zsad's per-image scorers as graph files that run without torch (ONNX, OpenVINO).

- ``graphs``: one torch module per scorer, from a normalised image batch to (grid maps, image scores), text rows and
  reference memories baked in (or, for large memories, given as a second input); ``FeatureGraph`` for the backbone
  pass alone (mutual scoring stays in torch: see ``graphs``).
- ``ops``: export-friendly equivalents of the eager steps whose loops depend on the batch size.
- ``convert``: ``export_onnx`` (fp32, dynamic batch, opset 18), ``to_openvino``, ``quantize_int8``.
- ``bundle``: a graph's files, its ``zsad-runtime.json`` and model card: the bundle ``zsad-runtime`` runs.
- ``cli``: the ``zsad export`` command (a face).

Running a graph (onnxruntime / OpenVINO sessions, numpy in and out) and the map post-processing in numpy belong to
the torch-free runtime (``zsad_runtime.engines``, ``zsad_runtime.postprocess``), which zsad depends on.

This stage sits beside ``scoring``: it reads backbones, scoring math and text heads, never the detector, config or
CLI (the detector layer, ``zsad.deploy``, wires a configured detector into these graphs). Only ``convert`` needs the
``export`` extra (onnx, onnxscript, onnxruntime; ``openvino`` for OpenVINO), and imports it when called.
"""
from zsad.registry import lazy_exports

# Loaded on first use: ``zsad export --help`` builds this package's command without torch.
__all__ = lazy_exports(__name__, {
    "graphs": ("AnomalyCLIPGraph", "ExportGraph", "FeatureGraph", "ReferenceGraph", "TextGraph", "WinCLIPGraph"),
})
