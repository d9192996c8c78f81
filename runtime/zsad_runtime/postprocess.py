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
  pixel repeats past the edge). (PIL's and OpenCV's resizes use other sample positions or filters.)
- The separable Gaussian of ``gaussian_blur``: kernel ``exp(-x^2 / (2 sigma^2))`` on the integer offsets
  ``|x| <= int(4 sigma + 0.5)``, normalised to sum 1, border ``"mirror"`` (``d c b | a b c d``: torch's
  ``reflect``, scipy's ``mirror``) or ``"symmetric"`` (``c b a | a b c d``: scipy's default ``reflect``).
- The order of ``MapPostprocess.apply``: ``smooth_at="input"`` upsamples the grid to the input size (with
  ``align_corners``), smooths there, then resizes to the original (width, height) with ``align_corners=False``
  (skipped when the sizes agree); ``smooth_at="original"`` upsamples straight to the original size and smooths there.

How: every step is linear and acts on rows and columns separately, so the whole post-processing of one axis is one
[out, h] matrix (``axis_matrix``: resize @ Gaussian @ upsampling, borders folded in), and a map is
``rows @ grid @ columns.T``: a 37 x 37 grid reaches a 1024 x 1024 frame in about 40 M multiply-adds, where smoothing
the 518 x 518 intermediate alone takes 18 M with a 33-tap kernel and touches the whole image 66 times
(``eval/bench_postprocess.py`` measures both against torch). Work is in float64 and the result float32; against
torch's float32 arithmetic the maps agree to ~1e-6 (``tests/runtime/test_postprocess.py`` checks 1e-5, and each step
against scipy.ndimage to 1e-12).
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

SMOOTH_AT = ("input", "original")
PADDINGS = ("mirror", "symmetric")


def bilinear_matrix(size_in: int, size_out: int, align_corners: bool = False) -> np.ndarray:
    """[size_out, size_in] weights of torch's 1-D linear interpolation (see the module docstring)."""
    out = np.arange(size_out, dtype=np.float64)
    if align_corners:
        source = out * ((size_in - 1) / (size_out - 1) if size_out > 1 else 0.0)
    else:
        source = np.maximum((out + 0.5) * (size_in / size_out) - 0.5, 0.0)
    low = np.minimum(np.floor(source).astype(np.int64), size_in - 1)
    high = np.minimum(low + 1, size_in - 1)
    frac = source - low
    weights = np.zeros((size_out, size_in), dtype=np.float64)
    np.add.at(weights, (np.arange(size_out), low), 1.0 - frac)
    np.add.at(weights, (np.arange(size_out), high), frac)
    return weights


def gaussian_kernel(sigma: float) -> np.ndarray:
    """The normalised 1-D kernel of ``gaussian_blur`` (radius ``int(4 sigma + 0.5)``)."""
    radius = int(4 * sigma + 0.5)
    offsets = np.arange(-radius, radius + 1, dtype=np.float64)
    kernel = np.exp(-(offsets**2) / (2 * sigma**2))
    return kernel / kernel.sum()


def gaussian_matrix(size: int, sigma: float, padding: str = "mirror") -> np.ndarray:
    """[size, size]: the 1-D Gaussian of ``gaussian_blur`` on ``size`` samples with its border folded in (each
    padded sample is the reflected one it copies)."""
    if padding not in PADDINGS:
        raise ValueError(f"padding must be 'mirror' or 'symmetric', got {padding!r}")
    radius = int(4 * sigma + 0.5)
    if radius == 0:
        return np.eye(size)
    # torch's reflect padding needs radius < size, the symmetric one radius <= size.
    if radius > size - (1 if padding == "mirror" else 0):
        raise ValueError(f"Gaussian radius {radius} exceeds the map size {size}; use a smaller sigma")
    position = np.arange(size)[:, None] + np.arange(-radius, radius + 1)[None, :]  # [size, taps] source samples
    if padding == "mirror":  # d c b | a b c d | c b a
        position = np.abs(position)
        position = np.where(position > size - 1, 2 * (size - 1) - position, position)
    else:  # c b a | a b c d | d c b
        position = np.where(position < 0, -position - 1, position)
        position = np.where(position > size - 1, 2 * size - 1 - position, position)
    weights = np.zeros((size, size), dtype=np.float64)
    np.add.at(weights, (np.repeat(np.arange(size), position.shape[1]), position.ravel()),
              np.tile(gaussian_kernel(sigma), size))
    return weights


def resize_bilinear(maps: np.ndarray, height: int, width: int, align_corners: bool = False) -> np.ndarray:
    """[..., h, w] -> [..., height, width] float64, as ``F.interpolate(mode="bilinear", antialias=False)``."""
    maps = np.asarray(maps, dtype=np.float64)
    return bilinear_matrix(maps.shape[-2], height, align_corners) @ maps @ \
        bilinear_matrix(maps.shape[-1], width, align_corners).T


def gaussian_blur(maps: np.ndarray, sigma: float, padding: str = "mirror") -> np.ndarray:
    """[..., H, W] smoothed by the separable Gaussian (as ``zsad.postprocess.maps.gaussian_blur``, torch)."""
    maps = np.asarray(maps, dtype=np.float64)
    rows = gaussian_matrix(maps.shape[-2], sigma, padding)
    columns = gaussian_matrix(maps.shape[-1], sigma, padding)
    return rows @ maps @ columns.T


@lru_cache(maxsize=64)
def axis_matrix(size_in: int, size_out: int, input_size: int, sigma: float, align_corners: bool, padding: str,
                smooth_at: str) -> np.ndarray:
    """[size_out, size_in]: the whole post-processing along one axis, one linear map (read-only, cached: the frames
    of a run mostly share their sizes). ``smooth_at="input"``: resize to the original size (``align_corners=False``)
    after the Gaussian at the input size after the upsampling; ``"original"``: the Gaussian after the upsampling
    straight to the original size."""
    if smooth_at not in SMOOTH_AT:
        raise ValueError(f"smooth_at must be one of {', '.join(SMOOTH_AT)}, got {smooth_at!r}")
    middle = size_out if smooth_at == "original" else input_size
    matrix = bilinear_matrix(size_in, middle, align_corners)
    if sigma > 0:
        matrix = gaussian_matrix(middle, sigma, padding) @ matrix
    if middle != size_out:
        matrix = bilinear_matrix(middle, size_out, align_corners=False) @ matrix
    matrix.setflags(write=False)
    return matrix


def postprocess_map(grid_map: np.ndarray, size: tuple[int, int], input_size: int, sigma: float = 4.0,
                    align_corners: bool = False, padding: str = "mirror", smooth_at: str = "input") -> np.ndarray:
    """One patch-grid map [h, w] -> float32 [height, width] for ``size`` = (width, height): what
    ``MapPostprocess(input_size, sigma, align_corners, padding, smooth_at).apply(grid_map, size)`` gives."""
    grid = np.asarray(grid_map, dtype=np.float32).astype(np.float64)  # the torch version starts from float32 maps
    width, height = size
    settings = (int(input_size), float(sigma), bool(align_corners), padding, smooth_at)
    rows = axis_matrix(grid.shape[0], int(height), *settings)
    columns = axis_matrix(grid.shape[1], int(width), *settings)
    return (rows @ grid @ columns.T).astype(np.float32)


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
