"""Post-processing: from patch-grid maps to per-image maps at the original resolution, in numpy alone.

``MapPostprocess`` holds how (the resolved ``PostprocessConfig`` of the method that ran, plus the backbone's input
size) and is what every ``AnomalyResult`` carries: zsad's detector and the torch-free runtime both compute full-size
maps with this module, so a map read from a result is the same computation whichever of them made it. Default
(WinCLIP, APRIL-GAN, AnomalyCLIP): bilinear upsampling to the backbone's input size, Gaussian smoothing there
(sigma 4 px, so the amount of smoothing relative to the object does not depend on how large the user's files are),
then a resize onto each image's original frame. MuSc's official code instead upsamples with ``align_corners=True``
and no Gaussian; AnomalyDINO's (``dists2map``) upsamples the grid straight to the original frame and smooths there
(``smooth_at="original"``, scipy's border: ``padding="symmetric"``).

What the arithmetic reproduces (zsad's torch versions, ``zsad.postprocess.maps``, which training uses on tensors):

- Bilinear resizing as torch's ``F.interpolate(mode="bilinear")`` without antialiasing, for up- and downsampling.
  Output pixel ``d`` samples the input at ``s = (d + 0.5) * in / out - 0.5`` clamped at 0 (``align_corners=False``)
  or ``s = d * (in - 1) / (out - 1)`` (``align_corners=True``), between ``floor(s)`` and the next pixel (the last
  pixel repeats past the edge). The resize is separable: rows, then columns, two taps each. (PIL's and OpenCV's
  resizes use other sample positions or filters.)
- The separable Gaussian of ``gaussian_blur``: kernel ``exp(-x^2 / (2 sigma^2))`` on the integer offsets
  ``|x| <= int(4 sigma + 0.5)``, normalised to sum 1, border ``"mirror"`` (``d c b | a b c d``, numpy's
  ``reflect``, torch's ``reflect``, scipy's ``mirror``) or ``"symmetric"`` (``c b a | a b c d``, numpy's
  ``symmetric``, scipy's default ``reflect``); rows first, then columns.
- The order of ``MapPostprocess.apply``: ``smooth_at="input"`` upsamples the grid to the input size (with
  ``align_corners``), smooths there, then resizes to the original (width, height) with ``align_corners=False``
  (skipped when the sizes agree); ``smooth_at="original"`` upsamples straight to the original size and smooths there.

Work is in float64 and the result float32; against torch's float32 arithmetic the maps agree to ~1e-7
(``tests/runtime/test_postprocess.py`` checks 1e-5, and checks both steps against scipy.ndimage too).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

SMOOTH_AT = ("input", "original")
PADDINGS = ("mirror", "symmetric")
NUMPY_PAD = {"mirror": "reflect", "symmetric": "symmetric"}  # zsad's name -> numpy.pad's mode


def bilinear_taps(size_in: int, size_out: int, align_corners: bool = False):
    """(low, high, frac) of torch's 1-D linear interpolation: output pixel ``d`` is
    ``(1 - frac[d]) * x[low[d]] + frac[d] * x[high[d]]`` (see the module docstring)."""
    out = np.arange(size_out, dtype=np.float64)
    if align_corners:
        source = out * ((size_in - 1) / (size_out - 1) if size_out > 1 else 0.0)
    else:
        source = np.maximum((out + 0.5) * (size_in / size_out) - 0.5, 0.0)
    low = np.minimum(np.floor(source).astype(np.int64), size_in - 1)
    high = np.minimum(low + 1, size_in - 1)
    return low, high, source - low


def resize_bilinear(maps: np.ndarray, height: int, width: int, align_corners: bool = False) -> np.ndarray:
    """[..., h, w] -> [..., height, width] float64, as ``F.interpolate(mode="bilinear", antialias=False)``."""
    maps = np.asarray(maps, dtype=np.float64)
    low, high, frac = bilinear_taps(maps.shape[-2], height, align_corners)
    frac = frac[:, None]
    maps = maps[..., low, :] * (1.0 - frac) + maps[..., high, :] * frac
    low, high, frac = bilinear_taps(maps.shape[-1], width, align_corners)
    return maps[..., low] * (1.0 - frac) + maps[..., high] * frac


def gaussian_kernel(sigma: float) -> np.ndarray:
    """The normalised 1-D kernel of ``gaussian_blur`` (radius ``int(4 sigma + 0.5)``)."""
    radius = int(4 * sigma + 0.5)
    offsets = np.arange(-radius, radius + 1, dtype=np.float64)
    kernel = np.exp(-(offsets**2) / (2 * sigma**2))
    return kernel / kernel.sum()


def gaussian_blur(maps: np.ndarray, sigma: float, padding: str = "mirror") -> np.ndarray:
    """[..., H, W] smoothed by the separable Gaussian (as ``zsad.postprocess.maps.gaussian_blur``, torch)."""
    if padding not in PADDINGS:
        raise ValueError(f"padding must be 'mirror' or 'symmetric', got {padding!r}")
    maps = np.asarray(maps, dtype=np.float64)
    radius = int(4 * sigma + 0.5)
    if radius == 0:
        return maps
    # torch's reflect padding needs radius < size, the symmetric one radius <= size; numpy would wrap around.
    limit = min(maps.shape[-2:]) - (1 if padding == "mirror" else 0)
    if radius > limit:
        raise ValueError(f"Gaussian radius {radius} exceeds the map size {min(maps.shape[-2:])}; use a smaller sigma")
    kernel = gaussian_kernel(sigma)
    for axis in (-1, -2):  # rows (along W) first, then columns, as the torch version
        pad = [(0, 0)] * maps.ndim
        pad[axis] = (radius, radius)
        padded = np.pad(maps, pad, mode=NUMPY_PAD[padding])
        n = maps.shape[axis]
        out = np.zeros_like(maps)
        for offset, weight in enumerate(kernel):  # one shifted copy per tap: O(taps) passes, no [H, W, taps] copy
            out += weight * (padded[..., offset : offset + n] if axis == -1 else padded[..., offset : offset + n, :])
        maps = out
    return maps


def smooth(maps: np.ndarray, input_size: int, sigma: float = 4.0, align_corners: bool = False,
           padding: str = "mirror") -> np.ndarray:
    """[B, h, w] grid maps -> [B, S, S]: bilinear to the input size, then the Gaussian."""
    up = resize_bilinear(maps, input_size, input_size, align_corners)
    return gaussian_blur(up, sigma, padding) if sigma > 0 else up


def smooth_original(maps: np.ndarray, size: tuple[int, int], sigma: float = 4.0, align_corners: bool = False,
                    padding: str = "mirror") -> np.ndarray:
    """[B, h, w] -> [B, height, width] for ``size`` = (width, height): bilinear straight to the original frame,
    Gaussian there."""
    width, height = size
    up = resize_bilinear(maps, height, width, align_corners)
    return gaussian_blur(up, sigma, padding) if sigma > 0 else up


def postprocess_map(grid_map: np.ndarray, size: tuple[int, int], input_size: int, sigma: float = 4.0,
                    align_corners: bool = False, padding: str = "mirror", smooth_at: str = "input") -> np.ndarray:
    """One patch-grid map [h, w] -> float32 [height, width] for ``size`` = (width, height): what
    ``MapPostprocess(input_size, sigma, align_corners, padding, smooth_at).apply(grid_map, size)`` gives."""
    if smooth_at not in SMOOTH_AT:
        raise ValueError(f"smooth_at must be one of {', '.join(SMOOTH_AT)}, got {smooth_at!r}")
    grid = np.asarray(grid_map, dtype=np.float32)[None]  # the torch version starts from float32 maps
    if smooth_at == "original":
        return smooth_original(grid, size, sigma, align_corners, padding)[0].astype(np.float32)
    up = smooth(grid, input_size, sigma, align_corners, padding)[0]
    if (size[1], size[0]) != up.shape:
        up = resize_bilinear(up, size[1], size[0], align_corners=False)
    return up.astype(np.float32)


@dataclass(frozen=True)
class MapPostprocess:
    """How a patch-grid map becomes an image map: upsample to ``input_size`` (bilinear, ``align_corners``),
    Gaussian with ``sigma`` px there (0 = none; ``padding`` at the border), then bilinear resize to the requested
    size. ``smooth_at="original"`` instead upsamples straight to the requested size and smooths there (sigma in
    pixels of that size), as AnomalyDINO's official code does. Its fields are what a bundle records as its
    post-processing (``zsad-runtime.json``)."""

    input_size: int
    sigma: float = 4.0
    align_corners: bool = False
    padding: str = "mirror"
    smooth_at: str = "input"

    def __post_init__(self) -> None:
        if self.smooth_at not in SMOOTH_AT:
            raise ValueError(f"smooth_at must be one of {', '.join(SMOOTH_AT)}, got {self.smooth_at!r}")
        if self.padding not in PADDINGS:
            raise ValueError(f"padding must be one of {', '.join(PADDINGS)}, got {self.padding!r}")

    @classmethod
    def of(cls, config, input_size: int) -> "MapPostprocess":
        """The post-processing of a resolved ``zsad.postprocess.PostprocessConfig`` (every field set) at a
        backbone's input size."""
        return cls(int(input_size), float(config.sigma), bool(config.align_corners), config.padding, config.smooth_at)

    def apply(self, grid_map: np.ndarray, size: tuple[int, int]) -> np.ndarray:
        """float32 (height, width) map for ``size`` = (width, height)."""
        return postprocess_map(grid_map, size, self.input_size, self.sigma, self.align_corners, self.padding,
                               self.smooth_at)


def unsmoothed(grid_map: np.ndarray) -> MapPostprocess:
    """For a map whose post-processing was not recorded: bilinear resize of the grid itself, no smoothing (nothing
    is guessed about the backbone that made it)."""
    return MapPostprocess(input_size=int(max(grid_map.shape)), sigma=0.0)
