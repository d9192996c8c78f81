"""Planted-defect generator: small synthetic datasets in the MVTec AD layout, with exact masks.

Real anomaly datasets carry non-commercial licences and cannot ship with zsad or its tests, and no pretrained
weights can be assumed. This generator gives every part of zsad a dataset it may write, redistribute and run
end-to-end anywhere: two textures and two simple objects, each with planted defects and their pixel masks.

How the images are made, and why:

- **Normal images vary** the way photographs of one product do: the texture's phase, angle and per-thread or
  per-grain pattern change, objects move and turn a little, lighting changes (global brightness) and there is
  sensor noise. A method that only compares raw pixels at the same position therefore fails; one has to compare
  local appearance.
- **Defects look unlike anything in normal images.** zsad's tests detect them by comparing patch features of
  test images with each other or with good references through *randomly initialised* ViTs, whose early layers act
  like random projections of pixel patches, usually after a per-token LayerNorm that discards a patch's overall
  brightness and contrast. So each defect is a local *pattern and hue* that never occurs in good images, not
  just a brighter or darker patch: a saturated colour foreign to the category's palette, a near-black hole with
  a bright burr, a thin line with a dark lip in the colour of the material under the surface, a stain in a
  foreign hue, or a broken-off piece with a jagged fracture face.
- **Masks are exact**: the pixels a defect changed. Stains are blended with a soft edge; their mask is the 0.5
  level set of the blend weight (the outline of the blob before blurring), and the faint halo outside it is at
  most 3 px wide (at 256 px). A missing part also changes the anti-aliased object edge next to it. Defects are
  clipped to the object (objects) and re-drawn with new parameters until they cover 0.5 % to 5 % of the image.
- **Geometry is in units of a 256 px image** and scales with ``size``, so a 128 px set for fast tests has the
  same defect area fractions as the default.
- **Graded defects** (``severity_levels``, off by default): each defect is planted at a size level (a band of
  planted area, so the area rises strictly with the level) and a contrast level (its blend weight over the clean
  image), recorded in ``<category>/manifest.json`` (``zsad.data.severity``); the default output is unchanged.
- **Deterministic per image**: every image has its own generator seeded from (seed, category, split, defect
  type, index). Generating a subset of categories or more images leaves the other files byte-identical.
  (Byte-identical on one platform with the same numpy/scipy/Pillow; another CPU or version may round a few
  pixels differently.)

Only numpy, PIL and scipy are used; ``scipy.ndimage`` is imported in the functions that use it (it costs 0.4 s,
which every ``zsad --help`` would pay, since the CLI lists the categories).
"""

from __future__ import annotations

import json
import math
import shutil
import zlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from zsad.data.severity import GRADED, Severity, severity_for
from zsad.errors import DatasetError

DEFECT_TYPES = ("scratch", "hole", "stain", "missing_part", "colour_spot")
MIN_AREA_FRACTION = 0.005
MAX_AREA_FRACTION = 0.05
MIN_SIZE = 64
_MAX_ATTEMPTS = 100

RGB = tuple[float, float, float]
Painted = tuple[np.ndarray, np.ndarray]  # (image as float (H, W, 3), defect mask as bool (H, W))


@dataclass
class Scene:
    """A rendered normal image as layers, so that defects can remove part of the object or paint on it."""

    background: np.ndarray  # (H, W, 3) float, 0-255
    foreground: np.ndarray | None  # (H, W, 3) float, the object's colours; None for textures
    alpha: np.ndarray | None  # (H, W) float in [0, 1], the object's coverage; None for textures

    def composite(self) -> np.ndarray:
        if self.foreground is None or self.alpha is None:
            return self.background.copy()
        a = self.alpha[..., None]
        return self.background * (1.0 - a) + self.foreground * a

    def support(self) -> np.ndarray:
        """Pixels a defect may change: the object, or the whole image for textures."""
        if self.alpha is None:
            return np.ones(self.background.shape[:2], dtype=bool)
        return self.alpha > 0.5


@dataclass(frozen=True)
class DefectColours:
    """Colours of the planted defects, chosen per category to lie outside its normal palette.

    ``scratch`` and ``fracture`` are the material under the surface (a tablet's core under its coating, the base
    metal under a washer's plating), which is why they differ in hue from the intact surface.
    """

    scratch: RGB
    scratch_lip: RGB
    hole: RGB
    hole_rim: RGB
    stain: RGB
    colour_spot: RGB
    fracture: RGB = (0.0, 0.0, 0.0)


@dataclass(frozen=True)
class SynthCategory:
    """One synthetic product: how to render a normal image and which defects it can get."""

    name: str
    kind: str  # "texture" or "object"
    description: str
    render: Callable[[np.random.Generator, int], Scene] = field(repr=False)
    defects: tuple[str, ...]
    colours: DefectColours = field(repr=False)


# --------------------------------------------------------------------------------------------------- renderers


def _grid(size: int) -> tuple[np.ndarray, np.ndarray]:
    y, x = np.mgrid[0:size, 0:size].astype(np.float64)
    return x + 0.5, y + 0.5


def _rotate(x: np.ndarray, y: np.ndarray, cx: float, cy: float, angle: float) -> tuple[np.ndarray, np.ndarray]:
    c, s = math.cos(angle), math.sin(angle)
    dx, dy = x - cx, y - cy
    return dx * c + dy * s, -dx * s + dy * c


def _plain_background(rng: np.random.Generator, size: int, colour: RGB, gradient: float) -> np.ndarray:
    """A plain backdrop with a faint lighting gradient in a random direction."""
    x, y = _grid(size)
    angle = rng.uniform(0, 2 * math.pi)
    ramp = ((x - size / 2) * math.cos(angle) + (y - size / 2) * math.sin(angle)) / size
    return np.asarray(colour, dtype=np.float64) * (1.0 + gradient * ramp)[..., None]


def _render_weave(rng: np.random.Generator, size: int) -> Scene:
    """Plain-weave fabric: warp and weft threads alternating over and under, each thread slightly different."""
    s = size / 256
    period = 11.0 * s * rng.uniform(0.985, 1.015)
    x, y = _grid(size)
    xr, yr = _rotate(x, y, size / 2, size / 2, math.radians(rng.uniform(-2.0, 2.0)))
    u = (xr + rng.uniform(0, 2 * period)) / period
    v = (yr + rng.uniform(0, 2 * period)) / period
    i, j = np.floor(u), np.floor(v)
    fu, fv = u - i, v - j
    warp_on_top = (i + j) % 2 == 0
    warp = np.sqrt(np.sin(math.pi * fu)) * (0.8 + 0.2 * np.sin(math.pi * fv))
    weft = np.sqrt(np.sin(math.pi * fv)) * (0.8 + 0.2 * np.sin(math.pi * fu))
    shade = np.where(warp_on_top, warp, weft)
    # Thread-to-thread irregularity: each warp column / weft row gets its own small brightness factor.
    warp_gain = 1.0 + 0.04 * rng.standard_normal(int(i.max() - i.min()) + 1)
    weft_gain = 1.0 + 0.04 * rng.standard_normal(int(j.max() - j.min()) + 1)
    gain = np.where(
        warp_on_top,
        warp_gain[(i - i.min()).astype(int)],
        weft_gain[(j - j.min()).astype(int)],
    )
    warp_colour = np.array([176.0, 150.0, 112.0])
    weft_colour = np.array([160.0, 136.0, 102.0])
    colour = np.where(warp_on_top[..., None], warp_colour, weft_colour)
    image = colour * ((0.45 + 0.55 * shade) * gain)[..., None]
    return Scene(background=image, foreground=None, alpha=None)


def _render_grain(rng: np.random.Generator, size: int) -> Scene:
    """Smooth random texture (sand, matte plastic): band-limited noise at three scales on a warm grey."""
    from scipy import ndimage

    s = size / 256
    field_ = np.zeros((size, size))
    for sigma, weight in ((8.0, 1.0), (2.5, 0.3), (1.0, 0.1)):
        noise = ndimage.gaussian_filter(rng.standard_normal((size, size)), sigma * s, mode="wrap")
        field_ += weight * noise / noise.std()
    base = np.array([150.0, 138.0, 120.0])
    amplitude = np.array([9.0, 8.5, 7.5])
    # Soft-clip the Gaussian field: its rare extreme blobs would otherwise be local looks that only a few good
    # images have, i.e. false anomalies for any method that compares patches with a handful of references.
    field_ = 1.5 * np.tanh(field_ / 1.5)
    return Scene(background=base + field_[..., None] * amplitude, foreground=None, alpha=None)


def _render_pill(rng: np.random.Generator, size: int) -> Scene:
    """A cream elliptical tablet with a score line and an embossed ring, on a teal tray.

    The tray is mid-dark and coloured so that a near-black hole on the tablet does not look like the tablet's
    own edge against the backdrop.
    """
    s = size / 256
    cx, cy = size / 2 + rng.uniform(-6, 6) * s, size / 2 + rng.uniform(-6, 6) * s
    a, b = 88.0 * s * rng.uniform(0.98, 1.02), 50.0 * s * rng.uniform(0.98, 1.02)
    x, y = _grid(size)
    xr, yr = _rotate(x, y, cx, cy, math.radians(rng.uniform(-6.0, 6.0)))
    rho = np.sqrt((xr / a) ** 2 + (yr / b) ** 2)
    gradient = np.sqrt((xr / a**2) ** 2 + (yr / b**2) ** 2) / np.maximum(rho, 1e-9)
    alpha = np.clip(0.5 - (rho - 1.0) / np.maximum(gradient, 1e-9), 0.0, 1.0)
    body = 1.0 - 0.10 * np.clip(rho, 0, 1) ** 4
    highlight = 0.04 * np.exp(-((xr + 0.3 * a) ** 2 + (yr + 0.35 * b) ** 2) / (2 * (0.3 * a) ** 2))
    groove = np.exp(-(xr / (1.4 * s)) ** 2) * (np.abs(yr) < 0.8 * b)
    ring = np.exp(-((np.hypot(xr - 0.5 * a, yr) - 10.0 * s) / (1.1 * s)) ** 2)
    imprint = 1.0 - 0.12 * groove - 0.10 * ring
    foreground = np.array([232.0, 226.0, 210.0]) * (body * imprint + highlight)[..., None]
    background = _plain_background(rng, size, (55.0, 105.0, 115.0), gradient=0.12)
    return Scene(background=background, foreground=foreground, alpha=alpha)


def _render_washer(rng: np.random.Generator, size: int) -> Scene:
    """A turned metal ring with anisotropic sheen and bevelled edges, on a light backdrop."""
    s = size / 256
    cx, cy = size / 2 + rng.uniform(-6, 6) * s, size / 2 + rng.uniform(-6, 6) * s
    outer, inner = 84.0 * s * rng.uniform(0.985, 1.015), 36.0 * s * rng.uniform(0.98, 1.02)
    x, y = _grid(size)
    d = np.hypot(x - cx, y - cy)
    theta = np.arctan2(y - cy, x - cx) - rng.uniform(0, 2 * math.pi)
    alpha = np.clip(0.5 - (d - outer), 0.0, 1.0) * np.clip(0.5 + (d - inner), 0.0, 1.0)
    bevel = np.exp(-np.abs(outer - d) / (3.0 * s)) + np.exp(-np.abs(d - inner) / (3.0 * s))
    turning = np.sin(2 * math.pi * d / (3.0 * s))
    metal = 128.0 + 22.0 * np.cos(2 * theta) - 18.0 * bevel + 3.0 * turning
    foreground = metal[..., None] * np.array([0.97, 1.0, 1.04])
    background = _plain_background(rng, size, (208.0, 204.0, 196.0), gradient=0.08)
    return Scene(background=background, foreground=foreground, alpha=alpha)


# --------------------------------------------------------------------------------------------------- defects


def _blob_mask(rng: np.random.Generator, size: int, centre: tuple[float, float], radius: float) -> np.ndarray:
    """An irregular filled blob: a circle whose radius wobbles with a few random low harmonics."""
    angles = np.linspace(0, 2 * math.pi, 64, endpoint=False)
    wobble = np.ones_like(angles)
    for k in (2, 3, 4):
        wobble += rng.uniform(0.0, 0.18 / k * 2) * np.cos(k * angles + rng.uniform(0, 2 * math.pi))
    points = [
        (centre[0] + radius * w * math.cos(t), centre[1] + radius * w * math.sin(t))
        for t, w in zip(angles, wobble)
    ]
    canvas = Image.new("L", (size, size), 0)
    ImageDraw.Draw(canvas).polygon(points, fill=255)
    return np.asarray(canvas) > 0


def _disk_mask(size: int, centre: tuple[float, float], radius: float) -> np.ndarray:
    x, y = _grid(size)
    return np.hypot(x - centre[0], y - centre[1]) <= radius


def _pick_centre(rng: np.random.Generator, support: np.ndarray, margin: float) -> tuple[float, float]:
    """A random point of the support at least ``margin`` px inside it (so the defect lies mostly on it)."""
    from scipy import ndimage

    inner = ndimage.binary_erosion(support, iterations=max(1, int(margin))) if margin >= 1 else support
    ys, xs = np.nonzero(inner if inner.any() else support)
    k = int(rng.integers(len(xs)))
    return float(xs[k]) + 0.5, float(ys[k]) + 0.5


def _paint(image: np.ndarray, mask: np.ndarray, colour: RGB, rng: np.random.Generator, jitter: float) -> None:
    tone = np.asarray(colour) * rng.uniform(1.0 - jitter, 1.0 + jitter)
    image[mask] = tone


def _scratch(rng: np.random.Generator, scene: Scene, size: int, colours: DefectColours,
             scale: float = 1.0) -> Painted:
    """A thin curved line with a contrasting lip along one side, as light catches a real scratch.

    The lip matters: features that normalise each patch (LayerNorm) barely see a line that only changes
    brightness, but do see a two-tone line that no normal patch contains.
    """
    s = size / 256 * scale
    support = scene.support()
    start = np.asarray(_pick_centre(rng, support, 12 * s))
    length = rng.uniform(90, 150) * s
    angle = rng.uniform(0, 2 * math.pi)
    bend = rng.uniform(-0.15, 0.15)
    direction = np.array([math.cos(angle), math.sin(angle)])
    normal = np.array([-direction[1], direction[0]])
    ts = np.linspace(-0.5, 0.5, 24)
    centre_line = [start + t * length * direction + bend * length * (0.25 - t * t) * normal for t in ts]
    width = max(2, int(round(rng.uniform(4.0, 6.0) * s)))
    lip_width = max(1, int(round(2.5 * s)))
    offset = (width + lip_width) / 2.0 * normal
    core = _polyline_mask(size, centre_line, width)
    lip = _polyline_mask(size, [p + offset for p in centre_line], lip_width) & ~core
    core, lip = core & support, lip & support
    image = scene.composite()
    _paint(image, core, colours.scratch, rng, 0.04)
    _paint(image, lip, colours.scratch_lip, rng, 0.04)
    return image, core | lip


def _polyline_mask(size: int, points: list[np.ndarray], width: int) -> np.ndarray:
    canvas = Image.new("L", (size, size), 0)
    ImageDraw.Draw(canvas).line([tuple(p) for p in points], fill=255, width=width, joint="curve")
    return np.asarray(canvas) > 0


def _largest_component(mask: np.ndarray) -> np.ndarray:
    from scipy import ndimage

    labels, count = ndimage.label(mask)
    if count <= 1:
        return mask
    sizes = np.bincount(labels.ravel())[1:]
    return ndimage.binary_fill_holes(labels == int(np.argmax(sizes)) + 1)


def _ring_around(mask: np.ndarray, width: float) -> np.ndarray:
    from scipy import ndimage

    return ndimage.binary_dilation(mask, iterations=max(1, int(round(width)))) & ~mask


def _hole(rng: np.random.Generator, scene: Scene, size: int, colours: DefectColours,
          scale: float = 1.0) -> Painted:
    """A near-black irregular hole with a bright burr around it (a punched hole catching the light)."""
    s = size / 256 * scale
    support = scene.support()
    radius = rng.uniform(11, 17) * s
    core = _blob_mask(rng, size, _pick_centre(rng, support, radius + 3 * s), radius)
    burr = _ring_around(core, 2.5 * s)
    core, burr = core & support, burr & support
    image = scene.composite()
    _paint(image, core, colours.hole, rng, 0.2)
    _paint(image, burr, colours.hole_rim, rng, 0.04)
    return image, core | burr


def _stain(rng: np.random.Generator, scene: Scene, size: int, colours: DefectColours,
           scale: float = 1.0) -> Painted:
    from scipy import ndimage

    s = size / 256 * scale
    support = scene.support()
    radius = rng.uniform(14, 26) * s
    blob = _blob_mask(rng, size, _pick_centre(rng, support, radius), radius)
    # Blurring a 0/1 blob gives a weight that is ~1 inside and crosses 0.5 on the blob's outline.
    weight = ndimage.gaussian_filter(blob.astype(np.float64), 1.5 * s)
    weight[weight < 0.02] = 0.0  # cut the Gaussian tail: the halo outside the mask stays within 2 sigma (3 px)
    if scene.alpha is not None:
        weight *= np.clip(scene.alpha, 0.0, 1.0)
    opacity = rng.uniform(0.75, 0.9)
    image = scene.composite()
    image = image * (1.0 - opacity * weight[..., None]) + np.asarray(colours.stain) * (opacity * weight[..., None])
    return image, weight >= 0.5


def _colour_spot(rng: np.random.Generator, scene: Scene, size: int, colours: DefectColours,
                 scale: float = 1.0) -> Painted:
    s = size / 256 * scale
    support = scene.support()
    radius = rng.uniform(10, 15) * s
    mask = _disk_mask(size, _pick_centre(rng, support, radius), radius) & support
    image = scene.composite()
    _paint(image, mask, colours.colour_spot, rng, 0.05)
    return image, mask


def _missing_part(rng: np.random.Generator, scene: Scene, size: int, colours: DefectColours,
                  scale: float = 1.0) -> Painted:
    """Break a piece off the object: a bite out of its rim, or a wedge through a ring.

    The break has a jagged edge and a fracture face along it in the colour of the material inside. A clean cut
    would be locally just another object/backdrop edge, which normal images are full of; a broken edge is not.
    """
    from scipy import ndimage

    if scene.alpha is None or scene.foreground is None:
        raise DatasetError("missing_part needs an object category; textures have no part to remove")
    s = size / 256 * scale
    before = scene.alpha > 0.5
    x, y = _grid(size)
    hole_inside = ndimage.binary_fill_holes(before) & ~before
    if hole_inside.any():  # a ring: a wedge from the centre outwards; inside > 0 within it, in px
        cy, cx = (float(v) + 0.5 for v in ndimage.center_of_mass(hole_inside))
        offset = np.angle(np.exp(1j * (np.arctan2(y - cy, x - cx) - rng.uniform(0, 2 * math.pi))))
        inside = (math.radians(rng.uniform(6, 12)) * scale - np.abs(offset)) * np.hypot(x - cx, y - cy)
    else:  # a convex body: a disk centred on its rim
        edge_y, edge_x = np.nonzero(before & ~ndimage.binary_erosion(before))
        k = int(rng.integers(len(edge_x)))
        inside = rng.uniform(20, 30) * s - np.hypot(x - edge_x[k] - 0.5, y - edge_y[k] - 0.5)
    roughness = ndimage.gaussian_filter(rng.standard_normal((size, size)), 2.0 * s)
    removed = _largest_component(inside + 3.0 * s * roughness / roughness.std() > 0)
    fracture = _ring_around(removed, 4.0 * s) & before
    cut = Scene(scene.background, scene.foreground, np.where(removed, 0.0, scene.alpha))
    image = cut.composite()
    _paint(image, fracture, colours.fracture, rng, 0.04)
    return image, (before & removed) | fracture


_DEFECT_PAINTERS: dict[str, Callable[..., Painted]] = {
    "scratch": _scratch,
    "hole": _hole,
    "stain": _stain,
    "missing_part": _missing_part,
    "colour_spot": _colour_spot,
}


SYNTH_CATEGORIES: dict[str, SynthCategory] = {
    category.name: category
    for category in (
        SynthCategory(
            name="weave",
            kind="texture",
            render=_render_weave,
            description="plain-weave fabric (periodic texture); random phase, angle and thread irregularity",
            defects=("scratch", "hole", "stain", "colour_spot"),
            colours=DefectColours(
                scratch=(240, 238, 230),
                scratch_lip=(40, 30, 20),
                hole=(14, 12, 10),
                hole_rim=(235, 225, 200),
                stain=(35, 75, 95),
                colour_spot=(225, 25, 165),
            ),
        ),
        SynthCategory(
            name="grain",
            kind="texture",
            render=_render_grain,
            description="smooth random grain (band-limited noise texture); a new noise field per image",
            defects=("scratch", "hole", "stain", "colour_spot"),
            colours=DefectColours(
                scratch=(242, 242, 236),
                scratch_lip=(45, 40, 35),
                hole=(12, 10, 10),
                hole_rim=(240, 236, 225),
                stain=(40, 70, 140),
                colour_spot=(30, 200, 50),
            ),
        ),
        SynthCategory(
            name="pill",
            kind="object",
            render=_render_pill,
            description=(
                "cream-coated elliptical tablet (pink core) with a score line and an embossed ring, on a teal tray"
            ),
            defects=("scratch", "hole", "stain", "missing_part", "colour_spot"),
            colours=DefectColours(
                scratch=(200, 95, 110),
                scratch_lip=(80, 60, 55),
                hole=(18, 18, 18),
                hole_rim=(120, 100, 80),
                stain=(180, 120, 30),
                colour_spot=(35, 70, 235),
                fracture=(215, 120, 135),
            ),
        ),
        SynthCategory(
            name="washer",
            kind="object",
            render=_render_washer,
            description="plated metal ring (copper base metal) with sheen and bevelled edges on a light backdrop",
            defects=("scratch", "hole", "stain", "missing_part", "colour_spot"),
            colours=DefectColours(
                scratch=(235, 165, 110),
                scratch_lip=(30, 30, 32),
                hole=(10, 10, 10),
                hole_rim=(240, 240, 235),
                stain=(150, 70, 25),
                colour_spot=(230, 30, 30),
                fracture=(205, 135, 85),
            ),
        ),
    )
}
"""The synthetic categories by name: two textures and two objects."""


# --------------------------------------------------------------------------------------------------- public API


def _graded(painter: Callable[..., Painted], rng: np.random.Generator, scene: Scene, size: int,
            colours: DefectColours, severity: Severity) -> Painted:
    """Paint until the area lies in the severity's band, rescaling the defect's geometry towards the band's middle
    (area grows with the square of the scale); then blend it at the severity's contrast."""
    low, high = severity.area_band(MIN_AREA_FRACTION, MAX_AREA_FRACTION)
    target, scale = math.sqrt(low * high), 1.0
    for _ in range(_MAX_ATTEMPTS):
        image, mask = painter(rng, scene, size, colours, scale=scale)
        area = float(mask.mean())
        if low <= area < high or (area == high == MAX_AREA_FRACTION):
            break
        scale *= float(np.clip(math.sqrt(target / max(area, 1e-6)), 0.5, 2.0)) * rng.uniform(0.9, 1.1)
    else:  # pragma: no cover - the scale converges within a few draws for every defect type
        raise RuntimeError(f"could not plant a defect with area in [{low:.2%}, {high:.2%}) at {size} px")
    if severity.contrast < 1.0:
        clean = scene.composite()
        image = clean + severity.contrast * (image - clean)
    return image, mask


def make_image(
    category: str, defect: str | None, *, size: int = 256, rng: np.random.Generator,
    severity: Severity | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Render one image of ``category`` (uint8, (size, size, 3)) with ``defect`` planted (None for a good one)
    and its mask (bool, (size, size)); the mask is all False for good images. ``severity`` grades the defect's
    size and contrast (``Severity``); None draws it as by default."""
    spec = _category(category)
    if defect is not None and defect not in spec.defects:
        raise DatasetError(f"category {category!r} has no defect {defect!r}; use one of {', '.join(spec.defects)}")
    scene = spec.render(rng, size)
    if defect is None:
        image, mask = scene.composite(), np.zeros((size, size), dtype=bool)
    elif severity is not None:
        image, mask = _graded(_DEFECT_PAINTERS[defect], rng, scene, size, spec.colours, severity)
    else:
        painter = _DEFECT_PAINTERS[defect]
        for _ in range(_MAX_ATTEMPTS):
            image, mask = painter(rng, scene, size, spec.colours)
            if MIN_AREA_FRACTION <= mask.mean() <= MAX_AREA_FRACTION:
                break
        else:  # pragma: no cover - the parameter ranges make this practically impossible
            raise RuntimeError(f"could not plant a {defect} of 0.5-5 % area on {category} at {size} px")
    lighting = rng.uniform(0.95, 1.05)
    noise = 2.5 * rng.standard_normal(size=image.shape, dtype=np.float32)
    return np.clip(np.rint(image * lighting + noise), 0, 255).astype(np.uint8), mask


def generate_dataset(
    out: str | Path,
    categories: Iterable[str] | None = None,
    n_train: int = 10,
    n_test_good: int = 10,
    n_test_defect: int = 4,
    size: int = 256,
    seed: int = 0,
    overwrite: bool = False,
    severity_levels: int = 0,
    graded: Iterable[str] = GRADED,
) -> Path:
    """Write a synthetic dataset in the MVTec AD layout under ``out`` and return ``out``.

    Per category: ``train/good`` (``n_train``), ``test/good`` (``n_test_good``), ``test/<defect>``
    (``n_test_defect`` per defect type) and ``ground_truth/<defect>/<stem>_mask.png`` (0/255), plus
    ``<out>/README.txt``. An existing non-empty category folder is an error unless ``overwrite`` is set, in which
    case that category folder (only) is replaced, so no stale images from an earlier run remain.

    ``severity_levels`` > 0 grades the defects (``graded``: "size", "contrast" or both; ``severity_for`` assigns
    the levels by index) and writes ``<category>/manifest.json``: per test image its defect type, size level,
    contrast level and planted mask area. 0 (the default) writes exactly what earlier versions wrote.
    """
    out = Path(out)
    if isinstance(categories, str):
        categories = [categories]
    names = list(SYNTH_CATEGORIES) if categories is None else list(dict.fromkeys(categories))
    for name in names:
        _category(name)
    for label, value in (("n_train", n_train), ("n_test_good", n_test_good), ("n_test_defect", n_test_defect)):
        if value < 0:
            raise DatasetError(f"{label}={value} is negative; pass a count >= 0")
    if size < MIN_SIZE:
        raise DatasetError(f"size={size} is too small for visible defects; use size >= {MIN_SIZE}")
    if seed < 0:
        raise DatasetError(f"seed={seed} is negative; pass a seed >= 0")
    if severity_levels < 0:
        raise DatasetError(f"severity_levels={severity_levels} is negative; pass 0 (off) or a number of levels")
    graded = tuple(graded)
    if severity_levels:
        severity_for(0, severity_levels, graded)  # checks ``graded`` before anything is written
    for name in names:
        folder = out / name
        if folder.exists() and any(folder.iterdir()):
            if not overwrite:
                raise DatasetError(f"{folder}: already exists and is not empty; pass overwrite=True or another folder")
            shutil.rmtree(folder)

    out.mkdir(parents=True, exist_ok=True)
    for name in names:
        spec = SYNTH_CATEGORIES[name]
        grading = (severity_levels, graded) if severity_levels else None
        _write_split(out / name / "train" / "good", None, n_train, spec, size, seed, "train")
        records = _write_split(out / name / "test" / "good", None, n_test_good, spec, size, seed, "test",
                               grading=grading)
        for defect in spec.defects:
            records += _write_split(out / name / "test" / defect, out / name / "ground_truth" / defect,
                                    n_test_defect, spec, size, seed, "test", defect, grading)
        if grading:
            manifest = {"severity_levels": severity_levels, "graded": list(graded), "images": records}
            (out / name / "manifest.json").write_text(json.dumps(manifest, indent=1) + "\n", encoding="utf-8")
    readme = _readme(names, n_train, n_test_good, n_test_defect, size, seed, severity_levels, graded)
    (out / "README.txt").write_text(readme, encoding="utf-8")
    return out


def _write_split(
    folder: Path, mask_folder: Path | None, count: int, spec: SynthCategory, size: int, seed: int, split: str,
    defect: str | None = None, grading: tuple[int, tuple[str, ...]] | None = None,
) -> list[dict]:
    """Write one folder of images (and masks); with ``grading`` (levels, graded) return their manifest records."""
    folder.mkdir(parents=True, exist_ok=True)
    if mask_folder is not None:
        mask_folder.mkdir(parents=True, exist_ok=True)
    records = []
    for index in range(count):
        rng = np.random.default_rng(_seed_sequence(seed, spec.name, split, defect, index))
        severity = severity_for(index, *grading) if grading and defect is not None else None
        image, mask = make_image(spec.name, defect, size=size, rng=rng, severity=severity)
        stem = f"{index:03d}"
        # compress_level=1: the noise makes PNGs barely compressible, and level 6 doubles the generation time.
        Image.fromarray(image, mode="RGB").save(folder / f"{stem}.png", format="PNG", compress_level=1)
        if mask_folder is not None:
            mask_image = Image.fromarray(mask.astype(np.uint8) * 255, mode="L")
            mask_image.save(mask_folder / f"{stem}_mask.png", format="PNG", compress_level=1)
        if grading:
            records.append({
                "image": f"{split}/{defect or 'good'}/{stem}.png",
                "mask": f"ground_truth/{defect}/{stem}_mask.png" if defect else None,
                "defect": defect,
                "size_level": severity.size_level if severity else None,
                "contrast_level": severity.contrast_level if severity else None,
                "area_fraction": float(mask.mean()),
            })
    return records


def _seed_sequence(seed: int, category: str, split: str, defect: str | None, index: int) -> np.random.SeedSequence:
    # crc32 rather than hash(): Python's str hash is salted per process and would break reproducibility.
    return np.random.SeedSequence(
        [seed, zlib.crc32(category.encode()), zlib.crc32(split.encode()), zlib.crc32((defect or "good").encode()),
         index]
    )


def _category(name: str) -> SynthCategory:
    try:
        return SYNTH_CATEGORIES[name]
    except KeyError:
        raise DatasetError(
            f"unknown synthetic category {name!r}; use one of {', '.join(SYNTH_CATEGORIES)}"
        ) from None


def _readme(names: list[str], n_train: int, n_test_good: int, n_test_defect: int, size: int, seed: int,
            severity_levels: int = 0, graded: tuple[str, ...] = GRADED) -> str:
    grading = f", severity_levels={severity_levels}, graded={graded!r}" if severity_levels else ""
    lines = [
        "zsad synthetic planted-defect dataset",
        "",
        "Generated by zsad.data.synth.generate_dataset; regenerate it byte-identically with",
        f"  generate_dataset(out, categories={names!r}, n_train={n_train}, n_test_good={n_test_good},",
        f"                   n_test_defect={n_test_defect}, size={size}, seed={seed}{grading})",
        "",
        "Layout (MVTec AD): <category>/train/good/NNN.png, <category>/test/<good|defect>/NNN.png,",
        "<category>/ground_truth/<defect>/NNN_mask.png (0 = normal, 255 = planted defect; exact pixel masks).",
        f"Images are {size}x{size} RGB PNG. Each defect covers {MIN_AREA_FRACTION:.1%} to {MAX_AREA_FRACTION:.0%}"
        " of the image.",
        f"Seed: {seed}. Every image is drawn from its own generator seeded by (seed, category, split, defect, index).",
        "",
        "Categories:",
    ]
    if severity_levels:
        lines[-1:-1] = [
            f"Defects are graded in {severity_levels} levels of {' and '.join(graded)}; <category>/manifest.json "
            "lists each test image's defect, size level, contrast level and planted mask area.",
            "",
        ]
    for name in names:
        spec = SYNTH_CATEGORIES[name]
        lines.append(f"- {name} ({spec.kind}): {spec.description}; defects: {', '.join(spec.defects)}")
    lines += [
        "",
        "The images are synthetic (numpy + PIL + scipy) and contain no third-party data; use them freely.",
        "",
    ]
    return "\n".join(lines)


__all__ = ["DEFECT_TYPES", "GRADED", "SYNTH_CATEGORIES", "Severity", "SynthCategory", "generate_dataset", "make_image",
           "severity_for"]
