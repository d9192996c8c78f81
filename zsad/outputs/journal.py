"""The journal of an output folder: what determined its results, and each image's evidence as it is scored.

    journal/run.json        the run's fingerprint, written before the first image is scored: everything that
                            determines a result (resolved settings without run-time-only facts, the backbone's
                            weights fingerprint, the text head, the reference memory's fingerprint)
    journal/scored.jsonl    per image, appended as its batch is scored: its path, the file's identity (size,
                            modification time, sha256), its original size, and per evidence its image score and
                            patch-grid map as exact float32 bytes, so a resumed run reproduces the uninterrupted one;
                            with a test-time mask also its projected patch features (float16,
                            ``zsad.decisions.features``), which that mask is trained on
    journal/overlays.jsonl  per overlay: its file and a digest of what it shows (``zsad_runtime.outputs.overlays``), logged
                            before the file is written, so every file zsad put in the folder is listed

``--resume`` reuses an image's evidence only when the run's fingerprint equals the journal's and the file is the
same one: same size and modification time, or, when only the time differs, the same sha256. Otherwise plain
``--resume`` refuses with one line naming what changed (nothing is scored), and ``--resume=rescore-changed``
scores again what changed: every image when the fingerprint differs, else the changed files. The content hash is
taken when an image is scored (reading the file again costs a fraction of decoding it) and recomputed on resume
only for files whose modification time changed.
"""
from __future__ import annotations

import base64
import hashlib
import json
import os
from pathlib import Path
from typing import Any

import numpy as np

from zsad.config_fields import jsonable
from zsad.errors import ZsadError
from zsad.outputs.folder import JOURNAL, OVERLAYS, RUN, holds_run, json_lines, read_overlays, remove_written

FORMAT = "zsad-journal-2"
RESCORE_CHANGED = "rescore-changed"


def canonical(value: Any) -> Any:
    """``value`` as it reads back from JSON (tuples become lists, keys strings), so fingerprints compare equal."""
    return json.loads(json.dumps(jsonable(value), sort_keys=True))


def file_identity(path: str | Path, content: bool = True) -> dict[str, Any] | None:
    """size, modification time (ns) and, with ``content``, sha256 of a file; None when it cannot be read."""
    try:
        stat = os.stat(path)
    except OSError:
        return None
    identity: dict[str, Any] = {"size": stat.st_size, "mtime_ns": stat.st_mtime_ns}
    if content:
        identity["sha256"] = _sha256(path)
    return identity


def _sha256(path: str | Path) -> str | None:
    digest = hashlib.sha256()
    try:
        with open(path, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
    except OSError:
        return None
    return digest.hexdigest()


def file_change(path: str, journaled: dict[str, Any] | None) -> str | None:
    """How a file differs from its journaled identity ("missing", "size", "content"), None when it is the same."""
    if journaled is None:
        return None  # nothing was recorded (an input that was not a readable file): the path decides
    now = file_identity(path, content=False)
    if now is None:
        return "missing"
    if now["size"] != journaled.get("size"):
        return "size"
    if now["mtime_ns"] == journaled.get("mtime_ns"):
        return None
    return None if _sha256(path) == journaled.get("sha256") else "content"


def differences(old: Any, new: Any, limit: int = 3) -> str:
    """The leaves of two fingerprints that differ, as ``path old -> new``; the first ``limit`` and a count."""
    before, after = _flatten(old), _flatten(new)
    changed = [key for key in dict.fromkeys([*after, *before]) if before.get(key, _UNSET) != after.get(key, _UNSET)]
    shown = [f"{key.removeprefix('settings.')} {_short(before.get(key, _UNSET))} -> {_short(after.get(key, _UNSET))}"
             for key in changed[:limit]]
    more = f" and {len(changed) - limit} more" if len(changed) > limit else ""
    return "; ".join(shown) + more


_UNSET = "(unset)"


def _flatten(value: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(value, dict) and value:
        out: dict[str, Any] = {}
        for key, item in value.items():
            out.update(_flatten(item, f"{prefix}.{key}" if prefix else str(key)))
        return out
    return {prefix: value}


def _short(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value)
    if isinstance(value, str) and len(value) == 64 and all(c in "0123456789abcdef" for c in value):
        return value[:12]  # a sha256
    return text if len(text) <= 40 else text[:37] + "..."


def read_run(out_dir: Path) -> dict[str, Any] | None:
    """The fingerprint journaled in an output folder (None: no journal of this format)."""
    try:
        document = json.loads((Path(out_dir) / RUN).read_text())
    except (OSError, json.JSONDecodeError):
        return None
    return document.get("fingerprint") if document.get("format") == FORMAT else None


class ScoreJournal:
    """The journal of one output folder (see the module docstring).

    resume: False (start over), True (reuse what matches, refuse anything changed) or ``"rescore-changed"``.
    fingerprint: what determines this run's results (``zsad.evaluation.environment.result_fingerprint``); None
        journals without one (a journal without a fingerprint is never resumed).
    overwrite: a journal of other settings is replaced instead of refused.
    write: False reads and decides only (the other processes of a multi-process run; the main one writes).
    A folder that holds another zsad run is refused unless it is of the same fingerprint or ``overwrite``;
    starting over removes only the files the journal lists (``zsad.outputs.folder.remove_written``).
    """

    def __init__(self, out_dir: Path, resume: bool | str = False, fingerprint: dict | None = None,
                 overwrite: bool = False, write: bool = True):
        self.out_dir = Path(out_dir)
        self.path = self.out_dir / JOURNAL
        self.mode = RESCORE_CHANGED if resume == RESCORE_CHANGED else ("resume" if resume else "new")
        self.fingerprint = None if fingerprint is None else canonical(fingerprint)
        self.write = write
        self.entries: dict[str, dict] = {}
        self.changed: dict[str, str] = {}  # inputs whose journaled evidence is not reused, and why
        self._checked: set[str] = set()
        previous = read_run(self.out_dir)
        same = previous is not None and self.fingerprint is not None and previous == self.fingerprint
        if self.mode != "new" and same:
            self.entries = read_journal(self.out_dir)
        elif holds_run(self.out_dir):
            if not (same or overwrite or self.mode == RESCORE_CHANGED):
                raise ZsadError(self._refusal(previous))
            if write:
                remove_written(self.out_dir)
        if write:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            if not self.entries and self.path.exists():
                self.path.unlink()
            _write_atomic(self.out_dir / RUN, json.dumps({"format": FORMAT, "fingerprint": self.fingerprint},
                                                         indent=1) + "\n")

    def _refusal(self, previous: dict | None) -> str:
        where = f"--out {self.out_dir}"
        if previous is None:
            what = f"{where} holds a zsad run whose settings were not recorded (an older zsad, or an interrupted start)"
        elif self.fingerprint is None:
            what = f"{where} holds a zsad run and this run has no fingerprint to compare"
        else:
            what = f"{where} holds a zsad run with other settings ({differences(previous, self.fingerprint)})"
        if self.mode == "resume":
            return (f"{what}; --resume reuses only results of the same settings: pass --resume=rescore-changed to "
                    "score every image again, or run without --resume")
        return f"{what}; pass --overwrite to replace it (only the files zsad wrote are removed), or another --out"

    # -- per-image evidence -----------------------------------------------------------------------------------

    def check_inputs(self, paths: list[str]) -> dict[str, str]:
        """Compare every journaled input among ``paths`` with its file now, before any work: with plain resume the
        changes are refused (one line naming them), with rescore-changed they are scored again. Returns them."""
        for path in paths:
            self._note_change(path)
        self._refuse_changes()
        return dict(self.changed)

    def _note_change(self, path: str) -> None:
        if path in self.entries and path not in self._checked:
            self._checked.add(path)
            why = file_change(path, self.entries[path].get("file"))
            if why is not None:
                self.changed[path] = why

    def _refuse_changes(self) -> None:
        if self.changed and self.mode == "resume":
            listed = ", ".join(f"{p} ({why})" for p, why in list(self.changed.items())[:3])
            more = f" and {len(self.changed) - 3} more" if len(self.changed) > 3 else ""
            raise ZsadError(f"--resume: {len(self.changed)} input(s) changed since they were scored: {listed}{more}; "
                            "pass --resume=rescore-changed to score them again, or run without --resume")

    def get(self, path: str | None, evidence: list[str]) -> dict | None:
        """The journaled evidence of ``path`` when it can be reused (same file, same evidence), else None."""
        if not path or path not in self.entries:
            return None
        self._note_change(path)
        self._refuse_changes()
        entry = self.entries[path]
        if path in self.changed or list(entry["evidence"]) != evidence:
            return None
        features = entry.get("features")
        return {
            "original_size": tuple(entry["size"]),
            "evidence": {
                name: (item["score"], decode_grid(item)) for name, item in entry["evidence"].items()
            },
            "features": None if features is None else decode_grid(features, np.float16),
        }

    def add(self, path: str, original_size: tuple[int, int], evidence: dict[str, tuple[float, np.ndarray]],
            features: np.ndarray | None = None) -> None:
        entry = {
            "path": path,
            "file": file_identity(path),
            "size": list(original_size),
            "evidence": {
                name: {"score": float(score), "shape": list(grid.shape), "grid": _encode(grid)}
                for name, (score, grid) in evidence.items()
            },
        }
        if features is not None:
            entry["features"] = {"shape": list(features.shape), "grid": _encode(features, np.float16)}
        if self.write:
            with open(self.path, "a") as handle:
                handle.write(json.dumps(entry) + "\n")

    # -- overlays -----------------------------------------------------------------------------------------------

    def overlays(self) -> dict[str, str]:
        """Overlay file (relative to the folder) -> the digest it was logged with, the latest entry per file."""
        return read_overlays(self.out_dir)

    def log_overlay(self, name: str, digest: str) -> None:
        if self.write:
            with open(self.out_dir / OVERLAYS, "a") as handle:
                handle.write(json.dumps({"overlay": name, "digest": digest}) + "\n")

    def keep_overlays(self, kept: dict[str, str]) -> None:
        """After writing: the overlay log lists exactly this run's overlays; earlier ones it no longer shows are
        removed (files zsad wrote for images or results this run does not have)."""
        if not self.write:
            return
        for name in set(self.overlays()) - set(kept):
            target = self.out_dir / name
            if target.is_file():
                target.unlink()
        lines = "".join(json.dumps({"overlay": name, "digest": digest}) + "\n" for name, digest in kept.items())
        _write_atomic(self.out_dir / OVERLAYS, lines)


def _write_atomic(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".part")
    partial.write_text(text)
    partial.replace(path)


def _encode(grid: np.ndarray, dtype=np.float32) -> str:
    return base64.b64encode(np.ascontiguousarray(grid, dtype=dtype).tobytes()).decode()


def decode_grid(item: dict, dtype=np.float32) -> np.ndarray:
    """One evidence's patch-grid map of a journal entry, exact float32 (or the features' float16)."""
    return np.frombuffer(base64.b64decode(item["grid"]), dtype=dtype).reshape(item["shape"]).copy()


def read_journal(out_dir: Path) -> dict[str, dict]:
    """The entries of an output folder's journal by input path (the latest entry of a path wins)."""
    return {entry["path"]: entry for entry in json_lines(Path(out_dir) / JOURNAL)}
