"""zsad-runtime installs and runs without torch: its declared requirements (and theirs) hold no torch, none of its
modules imports torch or zsad, and it scores a bundle in a process where importing torch or zsad fails. zsad requires
it, and the install commands (CI, README) install it."""
from __future__ import annotations

import ast
import importlib.metadata
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
RUNTIME = ROOT / "runtime"
# torch and what exists only with it (or pulls it): none may be required by the runtime, directly or through others.
TORCH_STACK = re.compile(r"^(torch|torchvision|torchaudio|triton|open-clip-torch|transformers|accelerate|"
                         r"nvidia-.*|cuda-.*|timm|peft|onnxscript)$")


def _name(requirement: str) -> str:
    return re.split(r"[\s\[<>=!~;]", requirement.strip(), maxsplit=1)[0].lower().replace("_", "-")


def _project(path: Path) -> dict:
    tomllib = pytest.importorskip("tomllib")  # Python >= 3.11
    return tomllib.loads(path.read_text())["project"]


def test_declared_requirements_pull_no_torch():
    project = _project(RUNTIME / "pyproject.toml")
    assert project["name"] == "zsad-runtime" and project["scripts"] == {"zsad-runtime": "zsad_runtime.cli:main"}
    direct = {_name(r) for r in project["dependencies"]}
    assert direct == {"numpy", "pillow"}
    extras = {extra: {_name(r) for r in requirements}
              for extra, requirements in project["optional-dependencies"].items()}
    assert extras == {"onnxruntime": {"onnxruntime"}, "openvino": {"openvino"}}
    # Everything an install with both engines resolves to, through the installed distributions' own requirements
    # (their default requirements, no extras): no torch anywhere.
    seen, todo = set(), sorted(direct | set().union(*extras.values()))
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        try:
            requires = importlib.metadata.requires(name) or []
        except importlib.metadata.PackageNotFoundError:
            continue
        todo += [_name(r) for r in requires if "extra ==" not in r and "extra==" not in r]
    assert {"numpy", "pillow", "onnxruntime"} <= seen
    assert not [name for name in seen if TORCH_STACK.match(name)], sorted(seen)


def test_no_runtime_module_imports_torch_or_zsad():
    """Also the imports inside functions (loaded later, dependencies all the same)."""
    wrong = []
    for path in sorted((RUNTIME / "zsad_runtime").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else \
                [node.module or ""] if isinstance(node, ast.ImportFrom) and node.level == 0 else []
            wrong += [f"{path.relative_to(ROOT)}: {n}" for n in names if n.split(".")[0] in ("torch", "zsad", "scipy")]
    assert not wrong, wrong


BLOCKER = """
import importlib.abc, sys
class Refuse(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("torch", "zsad", "scipy", "torchvision", "transformers", "open_clip"):
            raise ImportError(f"{name} is refused in this test")
sys.meta_path.insert(0, Refuse())
"""


def test_the_runtime_scores_a_bundle_with_torch_refused(deployed, tmp_path):
    case = deployed("anomalydino")
    code = BLOCKER + f"""
import pkgutil, importlib, json
import zsad_runtime
for module in pkgutil.walk_packages(zsad_runtime.__path__, "zsad_runtime."):
    if module.name != "zsad_runtime.__main__":
        importlib.import_module(module.name)
from zsad_runtime import Runtime
from zsad_runtime.cli import main
results = Runtime({str(case.bundle)!r}).detect({[str(p) for p in case.images]!r})
code = main(["detect", {str(case.bundle)!r}, {str(case.images[0].parent)!r}, "--out", {str(tmp_path / "out")!r}])
print(json.dumps({{"scores": [r.score for r in results], "code": code,
                   "loaded": sorted(m for m in sys.modules if m.split(".")[0] in ("torch", "zsad", "scipy"))}}))
"""
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    import json

    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert report["loaded"] == [] and report["code"] == 0
    assert report["scores"] == pytest.approx([r.score for r in case.expected], abs=1e-4)
    assert (tmp_path / "out" / "results.csv").is_file()


def test_zsad_requires_the_runtime_and_installs_install_it():
    project = _project(ROOT / "pyproject.toml")
    assert "zsad-runtime" in {_name(r) for r in project["dependencies"]}
    assert "-e ./runtime" in (ROOT / ".ci" / "run").read_text()
    readme = (ROOT / "README.md").read_text()
    assert "-e ./runtime" in readme and "zsad-runtime detect" in readme and "zsad export" in readme
