"""Bundles exported from real detectors, run by ``zsad_runtime.Runtime``, beside the detectors' own results
(``runtime_cases``: the cases). Cases are built on first use and shared by the files here."""
from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))  # runtime_cases (pytest's importlib mode puts no test folder there)

from runtime_cases import OBJECT, SPECS, Deployed, make_detector  # noqa: E402

from zsad.deploy import export_bundle  # noqa: E402


@pytest.fixture(scope="session")
def runtime_data(tmp_path_factory) -> Path:
    """11 test images (6 good, one per defect type: the batch rule decides) and 3 good references."""
    from zsad.data.synth import generate_dataset

    root = tmp_path_factory.mktemp("runtime-data")
    generate_dataset(root, categories=["pill"], n_train=3, n_test_good=6, n_test_defect=1, size=96, seed=5)
    return root / "pill"


@pytest.fixture(scope="session")
def deployed(runtime_data, tmp_path_factory, tiny_adapter):
    from zsad_runtime import Runtime

    built: dict[str, Deployed] = {}
    folder = tmp_path_factory.mktemp("bundles")

    def get(name: str) -> Deployed:
        if name not in built:
            spec = SPECS[name]
            if spec.fmt == "openvino" and importlib.util.find_spec("openvino") is None:
                pytest.skip("openvino is not installed")
            images = sorted((runtime_data / "test").rglob("*.png"))
            references = sorted((runtime_data / "train" / "good").glob("*.png")) if spec.references else None
            detector = make_detector(spec, tiny_adapter)
            bundle = folder / name
            export_bundle(detector, bundle, fmt=spec.fmt, references=references, object_name=OBJECT,
                          memory_as_input=spec.memory)
            expected = detector.detect(images, references=references, object_name=OBJECT)
            runtime = Runtime(bundle)
            built[name] = Deployed(bundle, detector, runtime, images, references, expected, runtime.detect(images))
        return built[name]

    return get
