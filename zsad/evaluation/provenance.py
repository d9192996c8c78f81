"""Where a run's reference images and learned prompts came from, recorded so that a report can name the setting.

- ``reference_files``: every reference file a run used (k-shot lists or ``--references``), each with its sha256,
  so two runs can be shown to have used the same references even after the files moved.
- ``overlapping_references``: reference files that are test images of the run (same path, or same bytes under
  another name); such a run measures recall of images the detector was shown as normal, so ``evaluate`` refuses it.
- ``trained_on``: the data the learned prompts of a ``learned:`` text head were trained on, from the adapter's card.
"""
from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from zsad_runtime.bundle import sha256_file


def expand_references(given: Any) -> list[Path]:
    """The files behind a ``references`` value: paths as given, folders expanded (sorted, images only), a saved
    memory (``.safetensors``) as itself. Arrays and PIL images have no file and are left out."""
    from zsad.data.images import list_images

    if given is None:
        return []
    items = [given] if isinstance(given, (str, Path)) else list(given) if isinstance(given, (list, tuple)) else []
    out: list[Path] = []
    for item in items:
        if not isinstance(item, (str, Path)):
            continue
        path = Path(item)
        if path.is_dir():
            out.extend(list_images([path]))
        else:
            out.append(path)
    return list(dict.fromkeys(out))


def reference_files(paths: Iterable[str | Path]) -> list[dict[str, Any]]:
    """``[{"path", "bytes", "sha256"}]`` of each distinct file (``sha256`` None for a file that cannot be read)."""
    out = []
    for path in dict.fromkeys(Path(p) for p in paths):
        try:
            out.append({"path": str(path), "bytes": path.stat().st_size, "sha256": sha256_file(path)})
        except OSError:
            out.append({"path": str(path), "bytes": None, "sha256": None})
    return out


def overlapping_references(files: list[dict[str, Any]], test_paths: Iterable[str | Path]) -> list[tuple[str, str]]:
    """(reference, test image) pairs that are the same file or the same bytes. Only test images with the size of
    some reference are hashed, so the check costs little on large test sets."""
    by_path = {_resolved(f["path"]): f["path"] for f in files}
    by_size: dict[int, dict[str, str]] = {}
    for f in files:
        if f.get("bytes") is not None and f.get("sha256"):
            by_size.setdefault(int(f["bytes"]), {})[f["sha256"]] = f["path"]
    pairs = []
    for test in dict.fromkeys(Path(p) for p in test_paths):
        resolved = _resolved(test)
        if resolved in by_path:
            pairs.append((by_path[resolved], str(test)))
            continue
        try:
            size = test.stat().st_size
        except OSError:
            continue
        if size in by_size:
            digest = sha256_file(test)
            if digest in by_size[size]:
                pairs.append((by_size[size][digest], str(test)))
    return pairs


def _resolved(path: str | Path) -> str:
    try:
        return str(Path(path).resolve())
    except OSError:
        return str(path)


def trained_on(settings: dict[str, Any]) -> dict[str, Any] | None:
    """What the learned prompts of a run were trained on: ``{"adapter", "data", "source"}`` from the adapter's
    ``card.json`` (``data`` None when the card does not record it), or None when no learned prompts ran.

    The adapter is found from the prompts option as given (``learned:NAME`` or ``learned:PATH``), the way the
    detector found it; an official ``.pth`` checkpoint has no card (``data`` None)."""
    prompts = (settings.get("text_head") or {}).get("prompts")  # the --prompts setting
    head = (settings.get("ran") or {}).get("text_head") or {}  # the text head that ran
    learned = head.get("text_head") == "learned"
    if not learned and not (isinstance(prompts, str) and prompts.startswith("learned:")):
        return None
    value = prompts.split(":", 1)[1] if isinstance(prompts, str) and prompts.startswith("learned:") else None
    name = head.get("adapter")
    out: dict[str, Any] = {"adapter": value or name, "data": None, "source": None}
    card = _card(value or name)
    if card:
        out["data"] = card.get("data")
        out["source"] = card.get("source")
    return out


def _card(adapter: str | None) -> dict[str, Any] | None:
    if not adapter or Path(adapter).suffix in (".pth", ".pt"):
        return None
    from zsad.errors import ZsadError
    from zsad.learning.adapters import resolve_adapter_dir

    try:
        path = resolve_adapter_dir(adapter) / "card.json"
        return json.loads(path.read_text()) if path.is_file() else None
    except (ZsadError, OSError, json.JSONDecodeError):
        return None
