"""A bundle describes itself completely and is checked before any image is read: a changed, missing or newer file is
refused with a message that names it and the fix."""
from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
from zsad_runtime import Runtime
from zsad_runtime.bundle import BUNDLE_FILE, Bundle
from zsad_runtime.errors import BundleError, ZsadError


@pytest.fixture
def copy(deployed, tmp_path):
    def make(name: str):
        target = tmp_path / name
        shutil.copytree(deployed(name).bundle, target)
        return target

    return make


def _edit(folder, change) -> None:
    data = json.loads((folder / BUNDLE_FILE).read_text())
    change(data)
    (folder / BUNDLE_FILE).write_text(json.dumps(data))


def test_the_description_round_trips_and_names_what_ran(deployed):
    case = deployed("winclip+")
    bundle = Bundle.read(case.bundle)
    assert Bundle.from_json(bundle.to_json(), case.bundle) == bundle
    assert bundle.method == "winclip" and bundle.graph.inputs[0] == "images" and len(bundle.graph.inputs) == 4
    assert bundle.graph.memory_file == "memory.npz" and "memory.npz" in bundle.graph.files
    assert [m.shape for m in bundle.memory_inputs()] == [tuple(s) for s in bundle.graph.describe["memory"]["shapes"]
                                                          .values()]
    assert bundle.graph.describe["settings"]["method"] == "winclip+"
    assert bundle.settings["ran"]["evidence"]["winclip"]["method"] == "winclip+"
    assert bundle.fingerprints["text"]["prompts"] == "winclip" and bundle.fingerprints["references"]["files"]
    assert bundle.natural_threshold is None  # WinCLIP+ has no neutral point (zsad.scoring.winclip)


def test_a_learned_adapter_is_fingerprinted(deployed):
    bundle = Bundle.read(deployed("anomalyclip-learned").bundle)
    files = bundle.fingerprints["adapter"]["files"]
    assert any(path.endswith("weights.safetensors") for path in files) and all(len(h) == 64 for h in files.values())
    assert bundle.postprocess.padding == "symmetric"  # AnomalyCLIP's own Gaussian border, resolved at export


def test_changed_missing_and_newer_files_are_refused(copy):
    folder = copy("anomalydino")
    graph = folder / "graph.onnx"
    _edit(folder, lambda data: data["graph"]["files"].update({"graph.onnx": "0" * 64}))
    with pytest.raises(BundleError, match="sha256 differs .* copy the bundle again"):
        Runtime(folder)
    Runtime(folder, verify=False)  # the check can be skipped (a bundle on a read-only medium, checked once)
    graph.write_bytes(graph.read_bytes()[:-10])
    with pytest.raises(BundleError, match="graph.onnx: onnxruntime cannot load it .*export the bundle again"):
        Runtime(folder, verify=False)
    graph.unlink()
    with pytest.raises(BundleError, match="graph.onnx is missing; copy the whole bundle folder"):
        Bundle.read(folder)
    folder = copy("text")
    _edit(folder, lambda data: data.update(format_version=99))
    with pytest.raises(BundleError, match="format 99 was written by a newer zsad.*upgrade zsad-runtime"):
        Bundle.read(folder)
    _edit(folder, lambda data: data.update(format_version=1) or data.pop("postprocess"))
    with pytest.raises(BundleError, match="malformed .*'postprocess'.*export the bundle again"):
        Bundle.read(folder)
    (folder / BUNDLE_FILE).unlink()
    with pytest.raises(BundleError, match="no zsad-runtime.json; pass the folder `zsad export --out` wrote"):
        Bundle.read(folder)


def test_a_bad_threshold_rule_is_refused(copy):
    folder = copy("text")
    _edit(folder, lambda data: data["threshold"].update(kind="percentile"))
    with pytest.raises(ZsadError, match="threshold rule must be one of mad, fixed, conformal"):
        Bundle.read(folder)


def test_engines(deployed, copy):
    pytest.importorskip("openvino")
    with pytest.raises(ZsadError, match="runs with --engine openvino only"):
        Runtime(deployed("anomalydino-openvino").bundle, engine="onnxruntime")
    case = deployed("text")
    by_openvino = Runtime(case.bundle, engine="openvino").detect(case.images)  # OpenVINO reads the ONNX file too
    for a, b in zip(by_openvino, case.expected):
        np.testing.assert_allclose(a.grid_map, b.grid_map, rtol=0, atol=1e-4)
    folder = copy("winclip+")
    with np.load(folder / "memory.npz") as stored:
        arrays = {k: stored[k] for k in list(stored.files)[1:]}
    np.savez(folder / "memory.npz", **arrays)
    with pytest.raises(BundleError, match="sha256 differs"):
        Bundle.read(folder)
    with pytest.raises(BundleError, match=r"memory.npz lacks \['memory_patches'\]"):
        Runtime(folder, verify=False)


def test_an_int8_bundle_runs_and_says_so(deployed, tmp_path):
    from zsad.deploy import export_bundle

    case = deployed("text")
    bundle = export_bundle(case.detector, tmp_path / "int8", int8=True, object_name="pill")
    assert bundle.graph.precision == "int8" and json.loads((tmp_path / "int8" / "card.json").read_text())[
        "graph"]["precision"] == "int8"
    got = Runtime(tmp_path / "int8").detect(case.images)
    deviation = max(float(np.abs(a.grid_map - b.grid_map).max()) for a, b in zip(got, case.expected))
    assert 0 < deviation < 0.1, deviation  # quantised weights: close to fp32, not equal
