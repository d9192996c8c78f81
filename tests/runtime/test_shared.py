"""Shared code exists once: what the runtime and zsad both need is defined in ``zsad_runtime`` and zsad's modules
name the same objects; no function or class is defined in both packages except the deliberate pairs listed here."""
from __future__ import annotations

import ast
import importlib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

SHARED = [
    ("zsad.results", "zsad_runtime.results", ("AnomalyResult", "EvidenceScore", "flat_record", "unsmoothed")),
    ("zsad.errors", "zsad_runtime.errors", ("ZsadError", "ImageLoadError", "DatasetError")),
    ("zsad.data.images", "zsad_runtime.images", ("load_image", "load_mask", "list_images", "to_rgb", "LoadedImage")),
    ("zsad.data.sources", "zsad_runtime.sources", ("Source", "expand_sources", "check_inputs")),
    ("zsad.data.preprocess", "zsad_runtime.preprocess", ("RESAMPLING",)),
    ("zsad.postprocess", "zsad_runtime.postprocess", ("MapPostprocess", "SMOOTH_AT", "PADDINGS")),
    ("zsad.postprocess.maps", "zsad_runtime.postprocess", ("MapPostprocess",)),
    ("zsad.robust", "zsad_runtime.robust", ("robust_scale",)),
    ("zsad.verdict", "zsad_runtime.verdict", ("Threshold",)),
    ("zsad.explain", "zsad_runtime.regions", ("Region", "pixel_threshold", "position_words", "top_regions")),
    ("zsad.explain", "zsad_runtime.explain", ("Explainer", "FactualExplainer")),
    ("zsad.outputs", "zsad_runtime.outputs", ("write_results", "write_csv", "check_output_folder", "overlay",
                                              "report_run", "WRITERS")),
]

# Defined in both packages on purpose (name: why).
PAIRS = {
    "gaussian_blur": "tensor version for training on the device (zsad.postprocess.maps); numpy for results "
                     "(tests/runtime/test_postprocess.py proves them equal)",
    "require": "which extra to install: zsad's extras (zsad.errors, zsad.export.convert) or the runtime's engines",
    "main": "each command line's entry point",
    "build_parser": "each command line's parser",
    "_positive_int": "an argparse type of the runtime's command line (zsad's faces have their own)",
    "__getattr__": "each package's lazy top-level names",
    "_font": "Pillow's default font at a size: the overlays' (here) and zsad.discovery.writer's contact sheets",
    "decide_threshold": "zsad's adds the batch-proof rules of zsad.decisions (scipy, scikit-learn) and calls the "
                        "runtime's for the rules a bundle can record (mad, fixed)",
    "write_csv": "the demo's write_csv(state) calls the runtime's write_csv(records, path) on its results",
}


@pytest.mark.parametrize("zsad_module, runtime_module, names", SHARED)
def test_zsad_names_the_runtimes_objects(zsad_module, runtime_module, names):
    ours, theirs = importlib.import_module(zsad_module), importlib.import_module(runtime_module)
    for name in names:
        assert getattr(ours, name) is getattr(theirs, name), f"{zsad_module}.{name} is not {runtime_module}.{name}"


def _definitions(folder: Path) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for path in folder.rglob("*.py"):
        for node in ast.parse(path.read_text(), str(path)).body:
            if isinstance(node, (ast.FunctionDef, ast.ClassDef)):
                out.setdefault(node.name, []).append(str(path.relative_to(ROOT)))
    return out


def test_no_function_is_defined_in_both_packages_but_the_listed_pairs():
    runtime, zsad = _definitions(ROOT / "runtime" / "zsad_runtime"), _definitions(ROOT / "zsad")
    both = {name: runtime[name] + zsad[name] for name in set(runtime) & set(zsad)}
    assert set(both) == set(PAIRS), {name: both.get(name) for name in set(both) ^ set(PAIRS)}


def test_zsad_decides_the_runtimes_rules_with_the_runtimes_code():
    from zsad_runtime.verdict import RULES as runtime_rules

    from zsad.verdict import RULES, RUNTIME_RULES

    assert RUNTIME_RULES is runtime_rules and set(runtime_rules) < set(RULES)
