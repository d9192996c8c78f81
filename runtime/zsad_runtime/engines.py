"""Running an exported graph with onnxruntime or OpenVINO: numpy arrays in, numpy arrays out, no torch.

The smallest thing that feeds a graph file: ``Runtime`` builds on it, and zsad's parity tests and
``eval/bench_runtime.py`` use it. Inputs are fed by position in the graph's input order (the images, then the
memory tensors when the memory is a graph input); outputs come back in the graph's output order. Each engine is an
optional dependency of zsad-runtime (its ``onnxruntime`` and ``openvino`` extras), imported when an engine is built.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from zsad_runtime.errors import ZsadError

ENGINES = ("onnxruntime", "openvino")


def require(module: str, extra: str) -> Any:
    """Import an engine, or say which extra installs it."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError:
        raise ZsadError(f"{module} is not installed; install it with: pip install 'zsad-runtime[{extra}]' "
                        f"(or pip install {extra})") from None


class OnnxRuntimeGraph:
    """An onnxruntime CPU session. threads: intra-op threads (None: onnxruntime's default, one per core)."""

    def __init__(self, path: str | Path, threads: int | None = None):
        ort = require("onnxruntime", "onnxruntime")
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        if threads is not None:
            options.intra_op_num_threads = int(threads)
            options.inter_op_num_threads = 1
        self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        self.input_names = [i.name for i in self.session.get_inputs()]
        self.output_names = [o.name for o in self.session.get_outputs()]

    def __call__(self, *inputs: np.ndarray) -> tuple[np.ndarray, ...]:
        feeds = {name: np.ascontiguousarray(value, dtype=np.float32) for name, value in zip(self.input_names, inputs)}
        return tuple(self.session.run(self.output_names, feeds))


class OpenVINOGraph:
    """An OpenVINO CPU model compiled in fp32 (``INFERENCE_PRECISION_HINT=f32``: OpenVINO would otherwise run bf16
    on CPUs that have it). path: an .xml IR or an .onnx file. threads: None = OpenVINO's default."""

    def __init__(self, path: str | Path, threads: int | None = None):
        ov = require("openvino", "openvino")
        config = {"INFERENCE_PRECISION_HINT": "f32"}
        if threads is not None:
            config["INFERENCE_NUM_THREADS"] = int(threads)
        self.compiled = ov.Core().compile_model(str(path), "CPU", config)
        self.request = self.compiled.create_infer_request()
        self.input_names = [port.any_name for port in self.compiled.inputs]
        self.output_names = [port.any_name for port in self.compiled.outputs]

    def __call__(self, *inputs: np.ndarray) -> tuple[np.ndarray, ...]:
        feeds = [np.ascontiguousarray(value, dtype=np.float32) for value in inputs]
        result = self.request.infer(feeds)
        return tuple(np.array(result[port]) for port in self.compiled.outputs)


def open_engine(engine: str, path: str | Path, threads: int | None = None):
    """An engine by name (``ENGINES``) on a graph file."""
    if engine == "onnxruntime":
        return OnnxRuntimeGraph(path, threads)
    if engine == "openvino":
        return OpenVINOGraph(path, threads)
    raise ZsadError(f"unknown engine {engine!r}; use one of {', '.join(ENGINES)}")
