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


@pytest.mark.parametrize("argv", [["--help"], ["detect", "--help"], ["eval", "--help"], ["train", "--help"],
                                  ["demo", "--help"], ["--version"],
                                  ["detect", "photos/", "--threshold", "nan"],
                                  ["detect", "photos/", "--method", "nope"],
                                  ["detect", "photos/", "--backbone", "tiny-clip", "--mutual-radii", "2"],
                                  ["export", "--help"], ["export", "--out", "bundle", "--threshold", "nan"]])
def test_help_and_option_errors_load_no_model_library(argv):
    """``zsad --help`` and option errors come before torch or transformers is imported (the time and memory this
    saves are measured by eval/bench_cli_start.py)."""
    code = ("import sys\nfrom zsad.cli.main import main\n"
            f"try:\n    code = main({argv!r})\nexcept SystemExit as exit:\n    code = exit.code\n"
            "print('LOADED', sorted(m for m in ('torch', 'transformers', 'open_clip') if m in sys.modules), code)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    last = done.stdout.strip().splitlines()[-1]
    assert last.startswith("LOADED [] "), (last, done.stderr[-2000:])
    assert last.endswith(" 0") == (argv[-1] in ("--help", "--version")), (last, done.stderr[-500:])
