"""The layers of docs/design.md ("Layers: imports point down this list, never up"), checked on the source.

Every ``import`` statement of every module under ``zsad/`` (also those inside functions, which load later but
are dependencies all the same) is read with ``ast``; a module's layer is the one of the longest prefix below.
Registry declarations name their implementations by string (``"zsad.scoring.text:TextScorer"``), which is not an
import: a lower layer may declare what a higher one implements.
"""
from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "zsad"

# Highest first. Each stage's command-line module (``zsad.<stage>.cli``) is a face too.
LAYERS = [
    ("faces", ("zsad.cli", "zsad.demo")),
    ("core", ("zsad.detector", "zsad.run_gather", "zsad.deploy", "zsad.config", "zsad.evaluation", "zsad.report")),
    ("stages", ("zsad.reasoning", "zsad.learning", "zsad.explain", "zsad.outputs", "zsad.verdict", "zsad.results",
                "zsad.discovery", "zsad.export", "zsad.decisions")),
    ("scoring", ("zsad.scoring",)),
    ("inputs", ("zsad.backbones", "zsad.data", "zsad.metrics", "zsad.postprocess", "zsad.presets")),
    ("base", ("zsad.errors", "zsad.registry", "zsad.config_fields", "zsad.robust", "zsad.parallel", "zsad")),
]


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _is_zsad(name: str) -> bool:
    """zsad's own modules; ``zsad_runtime`` (the torch-free runtime zsad depends on) is outside its layers."""
    return name == "zsad" or name.startswith("zsad.")


def imports() -> dict[str, set[str]]:
    """module -> the zsad modules it imports (``from zsad.x import y`` counts as zsad.x, or zsad.x.y when that is
    a module)."""
    modules = {module_name(p): p for p in PACKAGE.rglob("*.py")}
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        targets = set()
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                targets |= {alias.name for alias in node.names if _is_zsad(alias.name)}
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and _is_zsad(node.module or ""):
                for alias in node.names:
                    full = f"{node.module}.{alias.name}"
                    targets.add(full if full in modules else node.module)
        graph[name] = {t for t in targets if t != name}
    return graph


def layer_of(module: str) -> int:
    if module.split(".")[-1] == "cli" or module.endswith(".__main__"):
        return 0
    best = max((prefix for _, prefixes in LAYERS for prefix in prefixes
                if module == prefix or module.startswith(prefix + ".")), key=len)
    return next(index for index, (_, prefixes) in enumerate(LAYERS) if best in prefixes)


def test_imports_point_down_the_layers():
    upward = [f"{module} ({LAYERS[layer_of(module)][0]}) imports {target} ({LAYERS[layer_of(target)][0]})"
              for module, targets in imports().items() for target in targets
              if layer_of(target) < layer_of(module)]
    assert not upward, "\n".join(sorted(upward))


def test_scorers_never_import_the_detector_or_the_config():
    wrong = [f"{m} imports {t}" for m, targets in imports().items() if m.startswith("zsad.scoring")
             for t in targets if t.split(".")[:2] in (["zsad", "detector"], ["zsad", "config"])]
    assert not wrong, wrong


def test_no_library_module_imports_a_face():
    wrong = [f"{m} imports {t}" for m, targets in imports().items() if layer_of(m) > 0
             for t in targets if layer_of(t) == 0]
    assert not wrong, wrong


def test_no_import_cycles():
    graph = imports()
    cycles, state = [], {}

    def visit(node: str, path: list[str]) -> None:
        state[node] = "open"
        for target in sorted(graph.get(node, ())):
            if state.get(target) == "open":
                cycles.append(path[path.index(target):] + [target])
            elif target not in state:
                visit(target, path + [target])
        state[node] = "done"

    for module in sorted(graph):
        if module not in state:
            visit(module, [module])
    assert not cycles, "\n".join(" -> ".join(cycle) for cycle in cycles)


def test_the_checker_sees_a_violation(tmp_path):
    """The walker is not blind: the scorer base's own imports are found."""
    graph = imports()
    assert "zsad.backbones.base" in graph["zsad.scoring.base"]
    assert layer_of("zsad.scoring.text") > layer_of("zsad.detector") and layer_of("zsad.cli.main") == 0


def test_every_module_has_a_declared_layer():
    """A new package is placed on purpose: without this, it would fall to the base layer through the ``zsad`` prefix
    and its upward imports would be reported as someone else's problem (or, worse, its cycles missed)."""
    declared = {prefix for _, prefixes in LAYERS for prefix in prefixes} - {"zsad"}
    undeclared = sorted(m for m in imports() if m != "zsad" and layer_of(m) > 0
                        and not any(m == p or m.startswith(p + ".") for p in declared))
    assert not undeclared, f"modules in no layer of LAYERS: {undeclared}"
