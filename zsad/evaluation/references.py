"""Fixed, recorded reference lists for the k-shot protocols (WinCLIP+, AnomalyDINO, INP-Former: k = 1, 2, 4 good
training images per category, several seeds).

A list is drawn once from the sorted ``train`` split with ``random.Random(seed)`` and written to a JSON file; a run
that reads the file uses exactly those images, whatever the file system order or Python version, so a k-shot
number can be reproduced and set beside another run on the same references. Paths are stored relative to the
dataset root when they lie under it, so a file stays valid when the data set is moved.
"""
from __future__ import annotations

import json
import random
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from zsad.data.layouts import load_samples
from zsad.errors import ZsadError

FORMAT = "zsad-reference-lists/1"


def draw_references(dataset: str, root: Path, category: str, shots: int, seed: int, **options) -> list[Path]:
    """k good training images of a category, drawn with a seed (the k-shot protocol of WinCLIP/AnomalyDINO)."""
    train = [s.path for s in load_samples(dataset, root, [category], split="train", **options).get(category, [])
             if s.label in (0, None)]
    if len(train) < shots:
        raise ZsadError(
            f"{category}: {shots}-shot needs {shots} good training images, found {len(train)}; drop --shots for "
            "zero-shot, or pass good images with --references"
        )
    return sorted(random.Random(seed).sample(sorted(train), shots))


@dataclass
class ReferenceLists:
    """``lists[category][shots][seed]`` = reference image paths (absolute in memory, relative to root on disk)."""

    dataset: str
    root: str
    lists: dict[str, dict[int, dict[int, list[str]]]] = field(default_factory=dict)

    def get(self, category: str, shots: int, seed: int) -> list[Path]:
        try:
            return [Path(p) for p in self.lists[category][shots][seed]]
        except KeyError:
            raise ZsadError(
                f"reference lists of {self.root} have no {shots}-shot list for category {category!r}, seed {seed}; "
                "draw them with draw_reference_lists or pass another file"
            ) from None

    def add(self, category: str, shots: int, seed: int, paths: Sequence[Path | str]) -> None:
        self.lists.setdefault(category, {}).setdefault(shots, {})[seed] = [str(p) for p in paths]

    def to_dict(self) -> dict:
        root = Path(self.root)

        def rel(path: str) -> str:
            try:
                return str(Path(path).relative_to(root))
            except ValueError:
                return path

        return {
            "format": FORMAT,
            "dataset": self.dataset,
            "root": self.root,
            "lists": {
                category: {str(k): {str(seed): [rel(p) for p in paths] for seed, paths in by_seed.items()}
                           for k, by_seed in by_k.items()}
                for category, by_k in self.lists.items()
            },
        }

    @classmethod
    def from_dict(cls, data: dict, root: str | Path | None = None) -> ReferenceLists:
        """``root`` overrides the recorded root (the data set was moved)."""
        if data.get("format") != FORMAT:
            raise ZsadError(f"not a zsad reference-list file (format {data.get('format')!r}, expected {FORMAT})")
        base = Path(root if root is not None else data["root"])
        out = cls(dataset=data["dataset"], root=str(base))
        for category, by_k in data["lists"].items():
            for k, by_seed in by_k.items():
                for seed, paths in by_seed.items():
                    out.add(category, int(k), int(seed), [p if Path(p).is_absolute() else str(base / p) for p in paths])
        return out


def draw_reference_lists(dataset: str, root: str | Path, categories: Iterable[str] | None,
                         shots: Iterable[int] = (1, 2, 4), seeds: Iterable[int] = (0, 1, 2),
                         **options) -> ReferenceLists:
    """Every (category, k, seed) list of a data set's train split."""
    root = Path(root)
    if categories is None:
        categories = list(load_samples(dataset, root, None, split="train", **options))
    lists = ReferenceLists(dataset=dataset, root=str(root))
    for category in categories:
        for k in shots:
            for seed in seeds:
                lists.add(category, int(k), int(seed), draw_references(dataset, root, category, k, seed, **options))
    return lists


def save_reference_lists(lists: ReferenceLists, path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(lists.to_dict(), indent=1) + "\n")
    return path


def load_reference_lists(path: str | Path, root: str | Path | None = None) -> ReferenceLists:
    path = Path(path)
    try:
        data = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise ZsadError(f"{path}: cannot read reference lists ({exc})") from None
    return ReferenceLists.from_dict(data, root)
