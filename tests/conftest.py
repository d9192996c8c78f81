"""Shared fixtures. The suite never touches the network: HF_HUB_OFFLINE is set before anything imports the hub."""
import os
import sys

os.environ["HF_HUB_OFFLINE"] = "1"

from pathlib import Path  # noqa: E402

import pytest  # noqa: E402
import torch  # noqa: E402


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


@pytest.fixture(scope="session")
def tiny_clip():
    from zsad.backbones import load_backbone

    return load_backbone("tiny-clip")


@pytest.fixture(scope="session")
def synth_root(tmp_path_factory) -> Path:
    """A small planted-defect dataset shared by the integration tests."""
    from zsad.data.synth import generate_dataset

    root = tmp_path_factory.mktemp("synth")
    return generate_dataset(root, categories=["pill"], n_train=2, n_test_good=4, n_test_defect=1, size=96, seed=0)


SHARED_DATA = Path(__file__).resolve().parents[1] / ".." / "shared" / "data"

# ``tests/standin_detector.py`` (a duck-typed detector for evaluation and report tests) importable as
# ``standin_detector``: pytest runs with --import-mode=importlib, which puts no test folder on sys.path.
if "standin_detector" not in sys.modules:
    import importlib.util

    _spec = importlib.util.spec_from_file_location("standin_detector", Path(__file__).parent / "standin_detector.py")
    _module = importlib.util.module_from_spec(_spec)
    sys.modules["standin_detector"] = _module
    _spec.loader.exec_module(_module)
