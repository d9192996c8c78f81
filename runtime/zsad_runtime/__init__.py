"""zsad-runtime: run a detector exported by ``zsad export`` without torch (ONNX Runtime or OpenVINO, numpy, Pillow).

Packaging (decided for issue 19): a separate small distribution in zsad's repository (``runtime/pyproject.toml``,
distribution ``zsad-runtime``, package ``zsad_runtime``, console script ``zsad-runtime``) whose requirements are
numpy and Pillow alone; the engines are its extras (``zsad-runtime[onnxruntime]``, ``zsad-runtime[openvino]``).
Its install pulls no torch (``tests/runtime/test_packaging.py`` checks the declared requirements and imports the
package with torch refused).

Shared code exists once: everything the runtime needs that zsad has too lives here and zsad imports it from here
(zsad depends on zsad-runtime): image loading and validation (``images``, ``sources``), preprocessing to a numpy
batch (``preprocess``), map post-processing (``postprocess``), verdict rules (``verdict``, ``conformal``), robust
statistics (``robust``), regions (``regions``), the factual explanation (``explain``), the batch-level decisions
(``decide``), the result type (``results``) and the writers of results.json, results.csv and overlays
(``outputs``). What only the runtime needs: the bundle reader (``bundle``), the engines (``engines``), ``Runtime``
(``runtime``) and the command line (``cli``).

    from zsad_runtime import Runtime
    results = Runtime("bundle/").detect("photos/")      # list[AnomalyResult], the class zsad returns
"""
__version__ = "0.1.0"

_LAZY = {
    "Runtime": "zsad_runtime.runtime",
    "Bundle": "zsad_runtime.bundle",
    "AnomalyResult": "zsad_runtime.results",
    "EvidenceScore": "zsad_runtime.results",
    "Region": "zsad_runtime.regions",
    "ZsadError": "zsad_runtime.errors",
}


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'zsad_runtime' has no attribute {name!r}")


__all__ = ["__version__", *_LAZY]
