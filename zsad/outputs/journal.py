"""The per-image journal of an output folder: evidence appended as batches are scored, read back by ``--resume``.

Each line holds an input path, the image's original size, and per evidence its image score and patch-grid map
as exact float32 bytes, so a resumed run reproduces the uninterrupted one bit for bit.
"""
from __future__ import annotations

import base64
import json
from pathlib import Path

import numpy as np

JOURNAL = Path("journal") / "scored.jsonl"


class ScoreJournal:
    """Per-image evidence of an output folder (see the module docstring)."""

    def __init__(self, out_dir: Path, resume: bool):
        self.path = Path(out_dir) / JOURNAL
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.entries: dict[str, dict] = read_journal(out_dir) if resume else {}
        if not resume and self.path.exists():
            self.path.unlink()

    def get(self, path: str | None, evidence: list[str]) -> dict | None:
        entry = self.entries.get(path) if path else None
        if entry is None or list(entry["evidence"]) != evidence:
            return None
        return {
            "original_size": tuple(entry["size"]),
            "evidence": {
                name: (item["score"], decode_grid(item)) for name, item in entry["evidence"].items()
            },
        }

    def add(self, path: str, original_size: tuple[int, int], evidence: dict[str, tuple[float, np.ndarray]]) -> None:
        entry = {
            "path": path,
            "size": list(original_size),
            "evidence": {
                name: {"score": float(score), "shape": list(grid.shape), "grid": _encode(grid)}
                for name, (score, grid) in evidence.items()
            },
        }
        with open(self.path, "a") as handle:
            handle.write(json.dumps(entry) + "\n")


def _encode(grid: np.ndarray) -> str:
    return base64.b64encode(np.ascontiguousarray(grid, dtype=np.float32).tobytes()).decode()


def decode_grid(item: dict) -> np.ndarray:
    """One evidence's patch-grid map of a journal entry, exact float32."""
    return np.frombuffer(base64.b64decode(item["grid"]), dtype=np.float32).reshape(item["shape"]).copy()


def read_journal(out_dir: Path) -> dict[str, dict]:
    """The entries of an output folder's journal by input path (the line a killed run was writing is skipped)."""
    path = Path(out_dir) / JOURNAL
    entries: dict[str, dict] = {}
    if path.is_file():
        for line in path.read_text().splitlines():
            try:
                entry = json.loads(line)
            except json.JSONDecodeError:
                continue
            entries[entry["path"]] = entry
    return entries


