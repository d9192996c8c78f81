"""Heat-map overlays: the image with its map, region outlines when it is anomalous, and a legend strip (score,
verdict, threshold, colour bar). One colour scale per run (``display_range``), so overlays are comparable.

Overlays of images larger than ``MAX_OVERLAY_SIDE`` are drawn downscaled to that long side: the map is computed
at the overlay's size, never at 81 Mpx.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from zsad_runtime.outputs.base import RunOutput
from zsad_runtime.progress import progress
from zsad_runtime.results import AnomalyResult

MAX_OVERLAY_SIDE = 2048

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


def overlay(image: Image.Image, result: AnomalyResult, value_range: tuple[float, float], alpha: float = 0.5):
    """The image with its heat map, outlines of its regions when it is anomalous, and a legend strip (score,
    verdict, threshold, colour bar)."""
    size = overlay_size(image.size)
    if size != image.size:
        image = image.resize(size, Image.BILINEAR)
    low, high = value_range
    heat = colorize((result.map_at(size) - low) / (high - low))
    # float32 blend in place: float64 temporaries of a 2048 px overlay are 100 MB each.
    blend = np.asarray(image.convert("RGB"), dtype=np.float32) * np.float32(1 - alpha)
    blend += heat.astype(np.float32) * np.float32(alpha)
    picture = Image.fromarray(blend.astype(np.uint8))
    draw = ImageDraw.Draw(picture)
    scale = size[0] / result.original_size[0] if result.original_size else 1.0
    line = max(1, round(min(size) / 150))
    # Outlines mark what the verdict calls anomalous; a normal image's strongest regions stay in results.json.
    for region in result.regions if result.is_anomalous else ():
        x0, y0, x1, y1 = (round(v * scale) for v in region.box)
        draw.rectangle([x0, y0, max(x0, x1 - 1), max(y0, y1 - 1)], outline=(255, 255, 255), width=line)
    return _with_legend(picture, result, value_range)


def _font(size: int):
    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1 has one bitmap size
        return ImageFont.load_default()


def _with_legend(picture: Image.Image, result: AnomalyResult, value_range: tuple[float, float]) -> Image.Image:
    """A strip under the picture, scaled to its width so it reads on 64 px and 2048 px images alike."""
    width, height = picture.size
    strip = max(28, width // 12)
    canvas = Image.new("RGB", (width, height + strip), (20, 20, 20))
    canvas.paste(picture, (0, 0))
    draw = ImageDraw.Draw(canvas)
    pad = max(2, strip // 10)
    font = _font(max(8, strip // 3))
    verdict = result.verdict
    threshold = "no threshold" if result.threshold is None else f"thr {result.threshold:.3g}"
    draw.text((pad, height + pad), f"{verdict}  score {result.score:.3g}  {threshold}",
              fill=_VERDICT_COLOURS.get(verdict, (255, 255, 255)), font=font)
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


def overlay_name(result: AnomalyResult, index: int) -> str:
    stem = Path(result.name).with_suffix("").as_posix().replace("/", "_") or "image"
    return f"{index:05d}_{stem}_overlay.png"


def write_overlays(results: list[AnomalyResult], records: list[dict], output: RunOutput) -> None:
    """overlays/NNNNN_<name>_overlay.png per scored image, when images can be re-read (``output.load_image``).

    Images are not kept in memory during a run; each overlay re-reads its image. With ``resume``, overlays that
    already exist are kept (they are deterministic), so an interrupted writing phase continues where it stopped.
    """
    value_range = display_range(results)
    output.run_info["overlay_value_range"] = list(value_range)
    if output.load_image is None:
        return
    (output.out_dir / "overlays").mkdir(parents=True, exist_ok=True)
    downscaled = 0
    for index, (result, record) in enumerate(progress(list(zip(results, records)), desc="writing", unit="img",
                                                     disable=not output.progress)):
        if result.grid_map is None:
            continue
        name = overlay_name(result, index)
        target = output.out_dir / "overlays" / name
        if not (output.resume and target.is_file()):
            picture = overlay(output.load_image(result), result, value_range)
            partial = target.with_suffix(".part.png")
            picture.save(partial)
            partial.replace(target)  # never leave a half-written overlay under the final name
        record["overlay"] = f"overlays/{name}"
        downscaled += overlay_size(result.original_size) != tuple(result.original_size)
    output.run_info["overlays_downscaled_to_max_side"] = MAX_OVERLAY_SIDE if downscaled else None
