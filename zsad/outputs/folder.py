"""The output folder of a run: whether it can take the results, and which of its files zsad wrote.

A folder holds a zsad run when it has a journal (``zsad.outputs.journal``) or a results.json that zsad wrote. The
files zsad wrote are the ones its journal and results.json list (results.json, results.csv, the journal, every
overlay logged or listed, and their half-written ``.part`` files); nothing else in the folder is ever removed, so
``--out`` may point into a folder the user keeps other files in once they have said so (``--overwrite``).
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from zsad.errors import ZsadError

RESULT_FILES = ("results.json", "results.csv")
JOURNAL = Path("journal") / "scored.jsonl"  # per-image evidence (``zsad.outputs.journal``)
RUN = Path("journal") / "run.json"  # the run's fingerprint
OVERLAYS = Path("journal") / "overlays.jsonl"  # the overlays written, with what each shows


def check_reusable(out_dir: Path, overwrite: bool = False) -> None:
    """Before a model loads: a non-empty folder that holds no zsad run is refused unless ``overwrite``. (Whether a
    zsad run in it is of the same settings is decided by the journal, once the fingerprint is known.)"""
    out_dir = Path(out_dir)
    if overwrite or not out_dir.is_dir() or holds_run(out_dir):
        return
    files = [p for p in sorted(out_dir.rglob("*")) if not p.is_dir()]
    if files:
        example = files[0].relative_to(out_dir).as_posix()
        raise ZsadError(f"--out {out_dir}: folder is not empty ({len(files)} file(s), e.g. {example}) and holds no "
                        "zsad run; pass a new or empty folder, or --overwrite to write into it (zsad then replaces "
                        "only the files it writes and leaves the others)")


def zsad_results(out_dir: Path) -> dict[str, Any] | None:
    """The folder's results.json when zsad wrote it (a run description with its records), else None."""
    try:
        document = json.loads((Path(out_dir) / "results.json").read_text())
    except (OSError, ValueError):
        return None
    if isinstance(document, dict) and isinstance(document.get("results"), list) and "settings" in document:
        return document
    return None


def holds_run(out_dir: Path) -> bool:
    out_dir = Path(out_dir)
    return any((out_dir / name).is_file() for name in (RUN, JOURNAL, OVERLAYS)) or zsad_results(out_dir) is not None


def written_files(out_dir: Path) -> list[Path]:
    """The files of ``out_dir`` that zsad wrote (listed by its journal and results.json) and that exist."""
    out_dir = Path(out_dir)
    names = {str(RUN), str(JOURNAL), str(OVERLAYS), f"{RUN}.part", f"{OVERLAYS}.part"}
    overlays = set(read_overlays(out_dir))
    results = zsad_results(out_dir)
    if results is not None:
        overlays |= {r["overlay"] for r in results["results"] if isinstance(r, dict) and r.get("overlay")}
    if results is not None or holds_run(out_dir):
        names |= set(RESULT_FILES)
    for name in overlays:
        names |= {name, str(Path(name).with_suffix(".part.png"))}
    inside = out_dir.resolve()
    found = []
    for name in sorted(names):
        path = out_dir / name
        # A listed name never leads outside the folder (a hand-edited journal must not delete other files).
        if path.is_file() and not path.is_symlink() and inside in path.resolve().parents:
            found.append(path)
    return found


def remove_written(out_dir: Path) -> int:
    """Remove the files zsad wrote into ``out_dir`` (``written_files``) and its folders they leave empty; returns
    how many files were removed. Any other file stays."""
    out_dir = Path(out_dir)
    removed = written_files(out_dir)
    for path in removed:
        path.unlink()
    for folder in ("overlays", "journal"):
        _remove_empty(out_dir / folder)
    return len(removed)


def _remove_empty(folder: Path) -> None:
    if not folder.is_dir() or folder.is_symlink():
        return
    for child in folder.iterdir():
        if child.is_dir() and not child.is_symlink():
            _remove_empty(child)
    if not any(folder.iterdir()):
        folder.rmdir()


def json_lines(path: Path) -> list[dict]:
    """The JSON lines of a journal file (the line a killed run was writing is skipped)."""
    entries = []
    if path.is_file():
        for line in path.read_text().splitlines():
            try:
                entries.append(json.loads(line))
            except json.JSONDecodeError:
                continue
    return entries


def read_overlays(out_dir: Path) -> dict[str, str]:
    """The overlay log of an output folder: file -> digest (the latest entry of a file wins)."""
    return {entry["overlay"]: entry["digest"] for entry in json_lines(Path(out_dir) / OVERLAYS)}
