"""The documentation's links: every relative link in the repository's markdown (README.md, CONTRIBUTING.md,
CHANGELOG.md, docs/*.md, ...) points at a file of the repository, never outside it (the design document lives in
docs/design.md, not in a workspace folder beside the checkout), and a ``#section`` names a heading of its target.

Links are read as markdown renders them: inline links and images ``[text](target)``, reference definitions
``[label]: target`` and HTML ``href``/``src``; text in code blocks and code spans is not a link. Web addresses are
not checked (no network in tests).
"""
from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DOCUMENTS = ("*.md", "docs/**/*.md", "adapters/*.md")

_FENCE = re.compile(r"^ {0,3}(```|~~~).*?^ {0,3}\1[^\n]*$", re.MULTILINE | re.DOTALL)
_SPAN = re.compile(r"(`+)(?!`).*?(?<!`)\1(?!`)", re.DOTALL)
_INLINE = re.compile(r"!?\[(?:[^\[\]]|\[[^\[\]]*\])*\]\(\s*(<[^>]*>|[^)\s]*)(?:\s+[\"'(][^)]*)?\)")
_DEFINITION = re.compile(r"^ {0,3}\[[^\]]+\]:\s*(<[^>]*>|\S+)", re.MULTILINE)
_HTML = re.compile(r"""\b(?:href|src)\s*=\s*["']([^"']+)["']""", re.IGNORECASE)
_HEADING = re.compile(r"^ {0,3}#{1,6}\s+(.*?)\s*#*\s*$", re.MULTILINE)


def documents() -> list[Path]:
    found = {path for pattern in DOCUMENTS for path in ROOT.glob(pattern)}
    return sorted(p for p in found if ".venv" not in p.parts and "node_modules" not in p.parts)


def prose(text: str) -> str:
    """The text without fenced code blocks and code spans (their brackets are code, not links)."""
    return _SPAN.sub("", _FENCE.sub("", text))


def links(text: str) -> list[str]:
    body = prose(text)
    found = [m.group(1) for pattern in (_INLINE, _DEFINITION, _HTML) for m in pattern.finditer(body)]
    return [target.strip("<>") for target in found if target.strip("<>")]


def is_web(target: str) -> bool:
    return bool(re.match(r"^[a-zA-Z][a-zA-Z0-9+.-]*:", target)) or target.startswith("//")


def slug(heading: str) -> str:
    """GitHub's anchor of a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # a link in a heading anchors by its text
    return re.sub(r"[^\w\- ]", "", text.lower()).replace(" ", "-")


def anchors(text: str) -> set[str]:
    seen: dict[str, int] = {}
    out = set()
    for match in _HEADING.finditer(_FENCE.sub("", text)):
        base = slug(match.group(1))
        count = seen.get(base, 0)
        seen[base] = count + 1
        out.add(base if count == 0 else f"{base}-{count}")
    return out


def problems(document: Path, text: str, root: Path = ROOT) -> list[str]:
    """What is wrong with the relative links of ``document`` (whose content is ``text``)."""
    wrong = []
    for target in links(text):
        if is_web(target):
            continue
        path, _, anchor = target.partition("#")
        where = f"{document.relative_to(root)}: link {target!r}"
        if path.startswith("/"):
            wrong.append(f"{where} is absolute; link relative to the document")
            continue
        resolved = (document.parent / path).resolve() if path else document
        if resolved != root and root not in resolved.parents:
            wrong.append(f"{where} points outside the repository ({resolved})")
            continue
        if not resolved.exists():
            wrong.append(f"{where}: {resolved.relative_to(root)} does not exist")
            continue
        if anchor and resolved.suffix == ".md" and anchor not in anchors(resolved.read_text(encoding="utf-8")):
            wrong.append(f"{where}: no heading #{anchor} in {resolved.relative_to(root)}")
    return wrong


def test_the_documents_exist_and_have_links():
    names = {str(p.relative_to(ROOT)) for p in documents()}
    assert {"README.md", "CONTRIBUTING.md", "CHANGELOG.md", "docs/design.md", "docs/architecture.md"} <= names
    assert (ROOT / "LICENSE").is_file()
    for name in ("README.md", "CONTRIBUTING.md", "docs/architecture.md"):
        assert any(not is_web(t) for t in links((ROOT / name).read_text(encoding="utf-8"))), name


def test_every_relative_link_points_at_a_file_of_the_repository():
    wrong = [problem for document in documents()
             for problem in problems(document, document.read_text(encoding="utf-8"))]
    assert not wrong, "\n".join(wrong)


def test_nothing_in_the_repository_points_at_the_workspace_design_document():
    """The design document is docs/design.md; the copy beside the checkout is not part of the repository."""
    stale = [f"{p.relative_to(ROOT)}" for p in [*documents(), *ROOT.glob("zsad/**/*.py"), *ROOT.glob("tests/**/*.py"),
                                                  ROOT / "pyproject.toml"]
             if "shared/DESIGN.md" in p.read_text(encoding="utf-8") and p != Path(__file__).resolve()]
    assert not stale, stale


def test_the_checker_finds_bad_links(tmp_path):
    """The checker is not blind: it reads inline, reference and HTML links, skips code, and reports each kind of
    bad target."""
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "guide.md").write_text("# Guide\n\n## The settings system\n")
    (tmp_path / "LICENSE").write_text("text")
    document = tmp_path / "README.md"
    text = "\n".join([
        "# Top",
        "[ok](docs/guide.md) [ok anchor](docs/guide.md#the-settings-system) [self](#top) ![licence](LICENSE)",
        "[web](https://example.org/x) [mail](mailto:a@b.c)",
        "[outside](../shared/DESIGN.md) [missing](docs/nope.md) [anchor](docs/guide.md#nope) [abs](/etc/passwd)",
        '[ref]: docs/missing-ref.md',
        '<a href="../elsewhere.md">x</a>',
        "`[code](../not-a-link.md)`",
        "```",
        "[fenced](../not-a-link-either.md)",
        "```",
    ])
    document.write_text(text)
    found = problems(document, text, root=tmp_path)
    assert len(found) == 6, found
    for expected in ("'../shared/DESIGN.md' points outside", "docs/nope.md does not exist", "no heading #nope",
                     "'/etc/passwd' is absolute", "docs/missing-ref.md does not exist", "'../elsewhere.md' points "
                     "outside"):
        assert any(expected in problem for problem in found), (expected, found)
    assert not any("not-a-link" in problem for problem in found)


def test_heading_anchors_follow_githubs_rule():
    text = "## Layers (imports point down this list, never up)\n## `--method auto`, fusion\n## A\n## A\n"
    assert anchors(text) == {"layers-imports-point-down-this-list-never-up", "--method-auto-fusion", "a", "a-1"}
