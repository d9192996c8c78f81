"""The demo's views of a run (``RunState``): gallery tiles, the selected image, table rows, summary, results.csv and
the reasoning layer's output per image. Plain Python, unit-tested without a browser.

Why the pictures are cached: moving the threshold slider re-decides verdicts only, yet it used to re-blend every
heat map, re-encode every overlay and hand Gradio 16 fresh images to encode again (2.6-2.9 s per move for 16
images). Now a run blends each image with its heat map once (``Renders.heat``; the map does not depend on the
threshold), and a gallery tile depends on the image and its verdict only (outlines when anomalous; the tile's legend
shows verdict and score, not the threshold), so each (image, verdict) tile is drawn and written (JPEG) once and
the gallery is a list of file paths Gradio serves without encoding: a slider move redraws only the tiles whose
verdict changed, and only the first time (``eval/bench_demo_slider.py`` measures it).

Captions read "name: verdict" (name first, whole; the page's CSS lets them wrap under the tile rather than over its
legend).
"""
from __future__ import annotations

import re
import tempfile
import threading
from dataclasses import replace
from pathlib import Path
from typing import Any

from PIL import Image, ImageDraw

from zsad.results import AnomalyResult
from zsad.verdict import certainty_words

RunState = Any  # zsad.demo.session.RunState (which imports this module): results, images, value_range, renders

_OUTLINE = {True: (255, 40, 40), False: (255, 255, 255), None: (255, 255, 255)}


class Renders:
    """A run's cached pictures: per image its heat blend, and per (image, verdict) its gallery tile as a file in
    the run's folder. Shared by every ``RunState`` derived from the run (``dataclasses.replace`` keeps it); safe
    under the page's concurrent view events."""

    def __init__(self, folder: str | Path):
        self.folder = Path(folder)
        self.heat: dict[int, Image.Image] = {}
        self.tiles: dict[tuple[int, bool | None], str] = {}
        self.drawn = 0  # tiles drawn so far (a slider move that draws none costs no rendering)
        self._lock = threading.Lock()

    def heat_of(self, state: RunState, index: int) -> Image.Image:
        from zsad.outputs import heat_image

        with self._lock:
            if index not in self.heat:
                result = state.results[index]
                self.heat[index] = heat_image(state.images[index], result, state.value_range)
            return self.heat[index]

    def tile(self, state: RunState, index: int) -> str:
        from zsad.outputs import outline_regions, with_legend

        result = state.results[index]
        key = (index, result.is_anomalous)
        with self._lock:
            if key in self.tiles:
                return self.tiles[key]
        picture = self.heat_of(state, index).copy()
        if result.is_anomalous:
            outline_regions(picture, result)
        picture = with_legend(picture, result, state.value_range, threshold=False)
        path = self.folder / f"tile_{index:03d}_{result.verdict}.jpg"
        picture.save(path, quality=90)  # JPEG: 2 ms to write where PNG takes 20-40 ms, a third of the bytes
        with self._lock:
            self.tiles[key] = str(path)
            self.drawn += 1
        return str(path)


_ABSOLUTE = re.compile(r"(?<![\w.:/])(?:/[^\s/'\"`:;,()<>]+)+/([^\s/'\"`:;,()<>]+)")


def public(message: str, path: str | None = None) -> str:
    """A message for the page: the server's paths (upload folders, temp folders) replaced by the file names, and an
    error that starts with the file's own path ("/tmp/gradio/.../x.png: file is empty") without it; any other
    absolute path shortened to ".../its-last-part"."""
    message = str(message)
    if path:
        message = message.removeprefix(f"{path}: ").replace(str(path), Path(path).name)
    return _ABSOLUTE.sub(r".../\1", message)


def new_renders() -> Renders:
    return Renders(tempfile.mkdtemp(prefix="zsad-demo-run-"))


def caption(result: AnomalyResult) -> str:
    """Name and verdict, name first (the score is on the tile's legend)."""
    return f"{result.name}: {result.verdict}"


def _error_tile(result: AnomalyResult, side: int = 256) -> Image.Image:
    tile = Image.new("RGB", (side, side), (70, 70, 70))
    draw = ImageDraw.Draw(tile)
    draw.text((10, side // 2 - 20), "could not be read", fill=(255, 200, 200))
    draw.text((10, side // 2), result.name[:40], fill=(230, 230, 230))
    return tile


def gallery(state: RunState) -> list[tuple[Any, str]]:
    """One tile per input, in input order: the path of its cached picture (outlines only on anomalous images), or
    an error tile."""
    items: list[tuple[Any, str]] = []
    for index, (result, image) in enumerate(zip(state.results, state.images)):
        if not result.ok or image is None:
            items.append((_error_tile(result), caption(result)))
        else:
            items.append((state.renders.tile(state, index), caption(result)))
    return items


def detail(state: RunState, index: int) -> tuple[Image.Image | None, str, str]:
    """The selected image large with its numbered top regions (red: anomalous verdict, white: strongest regions of a
    normal one), its explanation, and what the reasoning layer said (rules), if it ran."""
    from zsad.outputs import outline_regions, with_legend

    if not state.results:
        return None, "", ""
    index = min(max(0, int(index)), len(state.results) - 1)
    result, image = state.results[index], state.images[index]
    if not result.ok or image is None:
        text = public(result.explanation or result.error, result.path)
        return _error_tile(result, 384), f"**{result.name}**: {text}", ""
    picture = state.renders.heat_of(state, index).copy()
    outline_regions(picture, result, _OUTLINE[result.is_anomalous], numbered=True,
                    width=max(2, round(min(picture.size) / 100)))
    picture = with_legend(picture, result, state.value_range)
    lines = [f"**{result.name}**: {result.verdict}, score {result.score:.4g}", "", result.explanation]
    if result.regions:
        lines += ["", "Regions (numbered on the image):"]
        lines += [f"{n}. {region.describe()}, peak {region.peak:.4g}" for n, region in enumerate(result.regions, 1)]
    return picture, "\n".join(lines), rules_text(result)


def rules_text(result: AnomalyResult) -> str:
    """The reasoning layer's output for one image (``result.reasoning``), or a note that it is off."""
    reasoning = result.reasoning
    if not reasoning:
        return "The reasoning layer is off for this run: no rules were induced."
    lines = []
    listed = ("verdict", "rules", "normal_rules", "anomaly_rules", "cited_rules", "explanation")
    for key in listed:
        value = reasoning.get(key)
        if value is None:
            continue
        if isinstance(value, (list, tuple)):
            lines.append(f"**{key.replace('_', ' ')}**")
            lines += [f"- {item}" for item in value]
        else:
            lines.append(f"**{key.replace('_', ' ')}**: {value}")
    lines += [f"**{k}**: {v}" for k, v in reasoning.items() if k not in listed]
    return "\n".join(lines)


def table_rows(state: RunState) -> list[list]:
    rows = []
    for number, result in enumerate(state.results, start=1):
        rows.append([
            number, result.name,
            None if result.score is None else round(result.score, 5),
            result.verdict,
            None if result.threshold is None else round(result.threshold, 5),
            len(result.regions),
            "+".join(result.evidence) or result.error,
        ])
    return rows


def summary(state: RunState) -> str:
    counts = {"anomalous": 0, "normal": 0, "undecided": 0, "error": 0}
    for result in state.results:
        counts[result.verdict] += 1
    first = next((r for r in state.results if r.ok), None)
    rule = "" if first is None else (
        f" Threshold {first.threshold:.4g} ({first.threshold_rule})." if first.threshold is not None
        else f" No threshold ({first.threshold_rule}).")
    if first is not None and first.threshold_name and first.certainty:  # how sure the rule is, in a few words
        rule += f" Decided by {certainty_words(first.threshold_name, first.certainty)}" + (
            f", on the {first.decided_on} scores." if first.decided_apart else ".")
    parts = ", ".join(f"{n} {k}" for k, n in counts.items() if n)
    return f"{len(state.results)} image(s): {parts}.{rule}"


def write_csv(state: RunState, folder: str | Path | None = None) -> str:
    """results.csv of the run as shown (one row per image, the same writer as ``zsad detect``'s CSV; with the
    ``defect_type`` columns when grouped by type)."""
    from zsad.outputs import write_csv as write_results_csv

    folder = Path(folder) if folder is not None else state.renders.folder
    results = [replace(r, path=Path(r.path).name if r.path else r.path,  # the file's name, not the server's path
                       error=r.error and public(r.error, r.path), explanation=public(r.explanation, r.path))
               for r in state.results]
    records = [result.to_record() for result in results]
    if state.discovery is not None:
        from zsad.discovery.writer import annotate_records

        records = annotate_records(records, state.discovery)
    return str(write_results_csv(records, folder / "results.csv"))
