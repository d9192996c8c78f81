"""Graph files: ONNX export, OpenVINO conversion, INT8 quantisation.

Decisions:

- Exporter: torch's dynamo exporter (``torch.onnx.export(dynamo=True)``, through ``torch.export`` and onnxscript).
  The TorchScript exporter cannot translate the antialiased bicubic resize of the DINOv2 register models' position
  embeddings (``aten::_upsample_bicubic2d_aa``) and is deprecated.
- Opset 18 (``OPSET``): the opset torch's exporter writes natively (its torchlib is opset 18, so no version
  conversion runs), and it holds every operator the graphs use (LayerNormalization since 17, Resize with antialias,
  which the DINOv2 register models' position embeddings need, since 18). onnxruntime reads opset 18 from 1.14 on;
  OpenVINO's ONNX frontend reads it (tested with the versions in constraints-cpu.txt).
- fp32 throughout; the batch axis is dynamic (``torch.export.Dim``, 1 to ``MAX_BATCH``), as are the row counts of
  memories given as inputs. Tracing uses a batch of 2: torch.export fixes size-1 dimensions.
- OpenVINO: the ONNX file read by OpenVINO's ONNX frontend (``Core().read_model``; ``openvino.convert_model`` uses
  the same frontend for an ONNX file, but its converter sends usage telemetry by default, to Google Analytics when
  a network is there), saved with ``compress_to_fp16=False`` (``save_model`` halves weights by default, which would
  move the maps), and compiled with ``INFERENCE_PRECISION_HINT=f32`` by ``runners.OpenVINOGraph`` (OpenVINO runs
  bf16 by default on CPUs with AMX/AVX512-bf16).
- INT8: onnxruntime's dynamic quantisation (int8 weights, activations quantised per call, no calibration set) of
  the backbone's MatMul weights only. The text rows and memory banks stay fp32: a cosine error of 0.01 is a logit
  error of 0.14 at temperature 0.07, and the nearest-neighbour search is what separates good from bad patches.
  What INT8 costs in maps and scores is measured (``eval/bench_runtime.py``), not assumed. onnxruntime's
  recommended pre-processing (``quant_pre_process``) is not run: its symbolic shape inference fails on these
  graphs, and its graph optimisation would rename the nodes whose module scope tells backbone from scoring. Static
  INT8 (a calibration set) and OpenVINO's own INT8 (NNCF, a further dependency) are not offered.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn

from zsad.errors import ZsadError

OPSET = 18
MAX_BATCH = 4096
# Above this many bytes of weights the ONNX file keeps its weights in a side file (path + ".data"): one protobuf
# holds at most 2 GB.
EXTERNAL_DATA_BYTES = 1_800_000_000


def require(module: str, extra: str = "export") -> Any:
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError:
        raise ZsadError(f"{module} is not installed; install zsad's {extra} extra: "
                        f"pip install 'zsad[{extra}]'") from None


def export_onnx(
    module: nn.Module,
    example: torch.Tensor | tuple[torch.Tensor, ...] | None,
    path: str | Path,
    *,
    input_names: tuple[str, ...] | None = None,
    output_names: tuple[str, ...] | None = None,
    dynamic_axes: dict[str, dict[int, str]] | None = None,
    opset: int = OPSET,
) -> Path:
    """Write ``module`` as an fp32 ONNX graph and check it; returns the path.

    example: the inputs to trace with (an ``ExportGraph``'s ``example_inputs()`` when None).
    input_names, output_names, dynamic_axes: taken from an ``ExportGraph`` when not given; ``dynamic_axes`` maps an
    input name to {axis: symbolic name}; inputs that share a symbolic name share the dimension (the batch).
    """
    require("onnx")
    require("onnxscript")
    module = module.eval()
    if example is None:
        example = module.example_inputs()
    example = (example,) if isinstance(example, torch.Tensor) else tuple(example)
    input_names = tuple(input_names or getattr(module, "input_names", ()) or
                        [f"input_{i}" for i in range(len(example))])
    output_names = tuple(output_names or getattr(module, "output_names", ()))
    if dynamic_axes is None:
        dynamic_axes = module.dynamic_axes() if hasattr(module, "dynamic_axes") else {input_names[0]: {0: "batch"}}
    if len(input_names) != len(example):
        raise ZsadError(f"{len(example)} example input(s) but input names {list(input_names)}; give one name each")
    dims: dict[str, torch.export.Dim] = {}

    def dim(name: str) -> torch.export.Dim:
        if name not in dims:
            dims[name] = torch.export.Dim(name, min=1, max=MAX_BATCH if name == "batch" else 2**31 - 2)
        return dims[name]

    specs = [{axis: dim(name) for axis, name in dynamic_axes.get(input, {}).items()} or None for input in input_names]
    shapes = _by_signature(module, specs)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with torch.no_grad():
        program = torch.onnx.export(
            module, example, dynamo=True, input_names=list(input_names), output_names=list(output_names) or None,
            opset_version=opset, dynamic_shapes=shapes, verbose=False, optimize=True,
        )
    weights = sum(v.const_value.nbytes for v in program.model.graph.initializers.values() if v.const_value is not None)
    program.save(str(path), external_data=weights > EXTERNAL_DATA_BYTES)
    import onnx

    onnx.checker.check_model(str(path))
    return path


def _by_signature(module: nn.Module, specs: list) -> dict[str, Any]:
    """Per-input dynamic shapes keyed as torch.export wants them: by ``forward``'s parameter names, with a tuple
    for a ``*args`` parameter (the memory tensors of an ``ExportGraph``)."""
    import inspect

    shapes, rest = {}, list(specs)
    for parameter in inspect.signature(module.forward).parameters.values():
        if parameter.kind is inspect.Parameter.VAR_POSITIONAL:
            if rest:
                shapes[parameter.name], rest = tuple(rest), []
        elif rest:
            shapes[parameter.name] = rest.pop(0)
    return shapes


def to_openvino(onnx_path: str | Path, xml_path: str | Path | None = None) -> Path:
    """OpenVINO IR (.xml + .bin) of an ONNX graph, weights kept in fp32; returns the .xml path."""
    ov = require("openvino", "openvino")
    onnx_path = Path(onnx_path)
    xml_path = Path(xml_path) if xml_path is not None else onnx_path.with_suffix(".xml")
    model = ov.Core().read_model(str(onnx_path))
    ov.save_model(model, str(xml_path), compress_to_fp16=False)
    return xml_path


def backbone_matmuls(onnx_path: str | Path) -> list[str]:
    """Names of the MatMul/Gemm nodes of the backbone that multiply by a weight (a constant).

    The dynamo exporter records each node's module scope (``pkg.torch.onnx.name_scopes``); nodes under
    ``backbone`` are the backbone's, the rest (text rows, memory search) are the scoring step's. Names of folded
    constants cannot tell them apart (a transposed text matrix becomes an anonymous initializer).
    """
    import onnx

    graph = onnx.load(str(onnx_path), load_external_data=False).graph
    weights = {init.name for init in graph.initializer}
    found = []
    for node in graph.node:  # topological order: a node of constants only (a Constant, a transpose) is a constant
        if node.op_type == "Constant" or (node.input and all(i in weights for i in node.input if i)):
            weights.update(node.output)
            continue
        if node.op_type not in ("MatMul", "Gemm") or not any(i in weights for i in node.input):
            continue
        scopes = next((p.value for p in node.metadata_props if p.key == "pkg.torch.onnx.name_scopes"), "")
        if "'backbone" in scopes:
            found.append(node.name)
    if not found:
        raise ZsadError(f"{onnx_path}: no backbone MatMul with a weight found; quantise graphs written by export_onnx")
    return found


def quantize_int8(onnx_path: str | Path, out_path: str | Path) -> Path:
    """onnxruntime dynamic INT8 quantisation of the backbone's MatMul weights (see the module docstring)."""
    quantization = require("onnxruntime.quantization")
    out_path = Path(out_path)
    quantization.quantize_dynamic(
        str(onnx_path), str(out_path), weight_type=quantization.QuantType.QInt8,
        op_types_to_quantize=["MatMul", "Gemm"], nodes_to_quantize=backbone_matmuls(onnx_path),
    )
    return out_path
