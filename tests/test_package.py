"""Packaging: every sub-package ships, prompts are inside the package, import is cheap and offline."""
import subprocess
import sys

import pytest
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_every_subpackage_is_listed_for_the_wheel():
    tomllib = pytest.importorskip("tomllib")  # Python >= 3.11
    listed = set(tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    found = {".".join(p.parent.relative_to(ROOT).parts) for p in (ROOT / "zsad").rglob("__init__.py")}
    assert found <= listed, f"add to pyproject packages: {sorted(found - listed)}"


def test_prompts_are_package_data():
    from importlib import resources

    assert (resources.files("zsad.prompts") / "winclip.yaml").is_file()


def test_import_does_not_load_heavy_libraries():
    code = "import sys, zsad; print(any(m in sys.modules for m in ('open_clip', 'transformers', 'torch')))"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True).stdout.strip() == "False"


def test_public_api_is_reachable_from_the_top_level():
    import zsad
    from zsad.detector import Detector

    assert zsad.Detector is Detector
    assert zsad.AnomalyResult.__name__ == "AnomalyResult"
