"""Heat-map overlays: the image with its map, region outlines when it is anomalous, and a legend strip (score,
verdict, threshold, colour bar). One colour scale per run (``display_range``), so overlays are comparable.

Overlays of images larger than ``MAX_OVERLAY_SIDE`` are drawn downscaled to that long side: the map is computed
at the overlay's size, never at 81 Mpx.
"""
from __future__ import annotations

import hashlib
import json
import os
from dataclasses import asdict
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from zsad_runtime.outputs.base import RunOutput
from zsad_runtime.progress import progress
from zsad_runtime.results import AnomalyResult

MAX_OVERLAY_SIDE = 2048
OVERLAY_FORMAT = 2  # raise when the drawing changes, so that overlays of an earlier zsad are drawn again

# Piecewise-linear "jet"-like colormap: dark blue (low) -> cyan -> yellow -> red (high).
_COLOR_STOPS = np.array([[0, 0, 128], [0, 0, 255], [0, 255, 255], [255, 255, 0], [255, 0, 0], [128, 0, 0]], float)
_VERDICT_COLOURS = {"anomalous": (230, 40, 40), "normal": (40, 170, 60), "undecided": (150, 150, 150)}


def colorize(values: np.ndarray, rows: int = 128) -> np.ndarray:
    """(H, W) values in [0, 1] -> (H, W, 3) uint8 colours.

    Computed ``rows`` rows at a time: the float64 intermediates of a 2048 x 2048 overlay would otherwise take
    about 400 MB at once (several [H, W, 3] float64 arrays), more than the decoded image being overlaid.
    """
    values = np.asarray(values)
    if values.ndim < 2 or len(values) <= rows:
        return _colorize(values)
    out = np.empty((*values.shape, 3), dtype=np.uint8)
    for start in range(0, len(values), rows):
        out[start : start + rows] = _colorize(values[start : start + rows])
    return out


def _colorize(values: np.ndarray) -> np.ndarray:
    position = np.clip(values, 0, 1) * (len(_COLOR_STOPS) - 1)
    low = np.floor(position).astype(int).clip(0, len(_COLOR_STOPS) - 2)
    frac = (position - low)[..., None]
    return (_COLOR_STOPS[low] * (1 - frac) + _COLOR_STOPS[low + 1] * frac).astype(np.uint8)


def display_range(results: list[AnomalyResult]) -> tuple[float, float]:
    """One colour scale for the whole run (so overlays are comparable): lowest 1st percentile .. highest value of
    the patch-grid maps."""
    grids = [r.grid_map for r in results if r.grid_map is not None]
    if not grids:
        return 0.0, 1.0
    low = min(float(np.percentile(g, 1)) for g in grids)
    high = max(float(g.max()) for g in grids)
    return low, high if high > low else low + 1e-6


def overlay_size(size: tuple[int, int]) -> tuple[int, int]:
    width, height = size
    scale = min(1.0, MAX_OVERLAY_SIDE / max(width, height))
    return max(1, round(width * scale)), max(1, round(height * scale))


def heat_image(image: Image.Image, result: AnomalyResult, value_range: tuple[float, float],
               alpha: float = 0.5) -> Image.Image:
    """The image (downscaled to ``overlay_size``) blended with its heat map: what does not depend on the verdict,
    so a viewer that re-decides verdicts (the demo's slider) computes it once per image."""
    size = overlay_size(image.size)
    if size != image.size:
        image = image.resize(size, Image.BILINEAR)
    low, high = value_range
    heat = colorize((result.map_at(size) - low) / (high - low))
    # float32 blend in place: float64 temporaries of a 2048 px overlay are 100 MB each.
    blend = np.asarray(image.convert("RGB"), dtype=np.float32) * np.float32(1 - alpha)
    blend += heat.astype(np.float32) * np.float32(alpha)
    return Image.fromarray(blend.astype(np.uint8))


def outline_regions(picture: Image.Image, result: AnomalyResult, colour=(255, 255, 255), numbered: bool = False,
                    width: int | None = None) -> Image.Image:
    """``result.regions`` outlined on ``picture`` (in place; boxes scaled from the original size), numbered 1.. when
    asked."""
    draw = ImageDraw.Draw(picture)
    scale = picture.size[0] / result.original_size[0] if result.original_size else 1.0
    line = width or max(1, round(min(picture.size) / 150))
    for number, region in enumerate(result.regions, start=1):
        x0, y0, x1, y1 = (round(v * scale) for v in region.box)
        draw.rectangle([x0, y0, max(x0, x1 - 1), max(y0, y1 - 1)], outline=colour, width=line)
        if numbered:
            draw.text((x0 + line + 1, y0 + line), str(number), fill=colour)
    return picture


def overlay(image: Image.Image, result: AnomalyResult, value_range: tuple[float, float], alpha: float = 0.5):
    """The image with its heat map, outlines of its regions when it is anomalous, and a legend strip (score,
    verdict, threshold, colour bar)."""
    picture = heat_image(image, result, value_range, alpha)
    # Outlines mark what the verdict calls anomalous; a normal image's strongest regions stay in results.json.
    if result.is_anomalous:
        outline_regions(picture, result)
    return with_legend(picture, result, value_range)


def _font(size: int):
    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1 has one bitmap size
        return ImageFont.load_default()


def with_legend(picture: Image.Image, result: AnomalyResult, value_range: tuple[float, float],
                threshold: bool = True) -> Image.Image:
    """A strip under the picture, scaled to its width so it reads on 64 px and 2048 px images alike: verdict, score,
    the threshold (unless ``threshold=False``: a legend that must not change when only the threshold moves) and the
    colour bar."""
    width, height = picture.size
    strip = max(28, width // 12)
    canvas = Image.new("RGB", (width, height + strip), (20, 20, 20))
    canvas.paste(picture, (0, 0))
    draw = ImageDraw.Draw(canvas)
    pad = max(2, strip // 10)
    font = _font(max(8, strip // 3))
    verdict = result.verdict
    text = f"{verdict}  score {result.score:.3g}"
    if threshold:
        text += "  no threshold" if result.threshold is None else f"  thr {result.threshold:.3g}"
        if result.threshold_name:
            text += f" ({result.threshold_name}{' on ' + result.decided_on if result.decided_apart else ''})"
    draw.text((pad, height + pad), text, fill=_VERDICT_COLOURS.get(verdict, (255, 255, 255)), font=font)
    bar_top = height + strip // 2 + pad // 2
    bar = colorize(np.tile(np.linspace(0, 1, max(1, width - 2 * pad)), (max(1, strip // 4), 1)))
    canvas.paste(Image.fromarray(bar), (pad, bar_top))
    small = _font(max(7, strip // 5))
    low, high = value_range
    draw.text((pad, bar_top + strip // 4), f"{low:.3g}", fill=(230, 230, 230), font=small)
    label = f"{high:.3g}"
    draw.text((width - pad - draw.textlength(label, font=small), bar_top + strip // 4), label,
              fill=(230, 230, 230), font=small)
    return canvas


def overlay_names(results: list[AnomalyResult]) -> list[str]:
    """One file name per result, from the image's path inside its input (``good/000.png`` ->
    ``good_000_overlay.png``), unique within the run: images whose names coincide (the same relative path in two
    input folders, files of the same name given directly) are named by their path below the folder their paths
    share (``a_good_000``, ``b_good_000``); what still coincides (one file given twice) gets ``~2``, ``~3``."""
    stems = [_stem(result.name) for result in results]
    for stem in {s for s in stems if stems.count(s) > 1}:
        clashing = [i for i, s in enumerate(stems) if s == stem and results[i].path]
        paths = [os.path.abspath(results[i].path) for i in clashing]
        if len(set(paths)) < 2:
            continue
        common = os.path.commonpath([os.path.dirname(p) for p in paths])
        for i, path in zip(clashing, paths):
            stems[i] = _stem(os.path.relpath(path, common))
    seen: dict[str, int] = {}
    names = []
    for stem in stems:
        seen[stem] = seen.get(stem, 0) + 1
        names.append(f"{stem}{'' if seen[stem] == 1 else f'~{seen[stem]}'}_overlay.png")
    return names


def _stem(name: str) -> str:
    """A relative image name as one file name: suffix dropped, folders joined by ``_``, no leading dots."""
    parts = [part for part in Path(name).with_suffix("").as_posix().split("/") if part not in ("", ".", "..")]
    return "_".join(parts).lstrip(".") or "image"


def overlay_digest(result: AnomalyResult, value_range: tuple[float, float]) -> str:
    """What an overlay shows, hashed: the image file (path, size, modification time), the grid map, how it is
    brought to the image, score, verdict, threshold, the outlined regions and the run's colour scale. An overlay
    on disk is reused only under the same digest."""
    image = None
    if result.path:
        try:
            stat = os.stat(result.path)
            image = [os.path.abspath(result.path), stat.st_size, stat.st_mtime_ns]
        except OSError:
            image = [os.path.abspath(result.path)]
    facts = {"format": OVERLAY_FORMAT, "image": image, "score": result.score, "threshold": result.threshold,
             "is_anomalous": result.is_anomalous, "original_size": list(result.original_size or ()),
             "postprocess": None if result.postprocess is None else asdict(result.postprocess),
             "value_range": list(value_range),
             "rule": [result.threshold_name, result.decided_apart and result.decided_on],
             "regions": [list(r.box) for r in result.regions] if result.is_anomalous else []}
    digest = hashlib.sha256(json.dumps(facts, sort_keys=True, default=repr).encode())
    digest.update(np.ascontiguousarray(result.grid_map, dtype=np.float32).tobytes())
    return digest.hexdigest()


def write_overlays(results: list[AnomalyResult], records: list[dict], output: RunOutput) -> None:
    """overlays/<name>_overlay.png per scored image (``overlay_names``), when images can be re-read
    (``output.load_image``).

    Images are not kept in memory during a run; each overlay re-reads its image. With a journal, an overlay already
    in the folder is kept when its log entry shows the same (an interrupted writing phase continues where it
    stopped); every other one is drawn, and overlays an earlier run left that this run does not show are removed.
    """
    value_range = display_range(results)
    output.run_info["overlay_value_range"] = list(value_range)
    if output.load_image is None:
        return
    (output.out_dir / "overlays").mkdir(parents=True, exist_ok=True)
    journal = output.journal
    logged = journal.overlays() if journal is not None else {}
    kept: dict[str, str] = {}
    downscaled = 0
    items = [(r, record, name) for r, record, name in zip(results, records, overlay_names(results))
             if r.grid_map is not None]
    for result, record, name in progress(items, desc="writing", unit="img", disable=not output.progress):
        relative = f"overlays/{name}"
        target = output.out_dir / relative
        digest = overlay_digest(result, value_range)
        if not (target.is_file() and logged.get(relative) == digest):
            if target.exists():
                target.unlink()  # never keep a file under a log entry that does not describe it
            if journal is not None:
                journal.log_overlay(relative, digest)  # logged first: every file zsad writes is listed
            picture = overlay(output.load_image(result), result, value_range)
            partial = target.with_suffix(".part.png")
            picture.save(partial)
            partial.replace(target)  # never leave a half-written overlay under the final name
        kept[relative] = digest
        record["overlay"] = relative
        downscaled += overlay_size(result.original_size) != tuple(result.original_size)
    if journal is not None:
        journal.keep_overlays(kept)
    output.run_info["overlays_downscaled_to_max_side"] = MAX_OVERLAY_SIDE if downscaled else None
