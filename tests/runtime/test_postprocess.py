"""zsad_runtime.postprocess (numpy: what every result's map runs) against zsad's torch post-processing (1e-5) and
against scipy.ndimage.

The torch reference (``torch_postprocess``) is the post-processing zsad ran on tensors before results moved to numpy:
``smooth`` (bilinear to the input size + ``gaussian_blur``, still zsad's tensor version for training), then
``F.interpolate`` to the original frame; or, smoothing at the original size, ``F.interpolate`` straight there and
the Gaussian."""
from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from scipy import ndimage

from zsad_runtime import postprocess as npp
from zsad_runtime.postprocess import MapPostprocess

from zsad.postprocess.maps import gaussian_blur, smooth

# (grid, input size, original (width, height), sigma, align_corners, padding, smooth_at): every preset's setting
# (default and MuSc's align_corners, AnomalyCLIP's symmetric border, AnomalyDINO's smoothing at the original size,
# WinCLIP's sigma 0), original frames larger, smaller, equal and non-square, and a map downsampled.
SETTINGS = [
    (4, 64, (90, 70), 4.0, False, "mirror", "input"),
    (14, 224, (300, 200), 4.0, True, "mirror", "input"),
    (37, 518, (1024, 1024), 4.0, False, "symmetric", "input"),
    (15, 240, (240, 240), 0.0, False, "mirror", "input"),
    (32, 448, (640, 480), 4.0, False, "symmetric", "original"),
    (16, 224, (50, 60), 4.0, True, "mirror", "original"),
    (37, 518, (100, 80), 2.5, False, "mirror", "input"),
]


def torch_postprocess(grid_map: np.ndarray, size, input_size, sigma, align_corners, padding, smooth_at) -> np.ndarray:
    grid = torch.from_numpy(grid_map)[None]
    width, height = size
    if smooth_at == "original":
        up = F.interpolate(grid[:, None], size=(height, width), mode="bilinear", align_corners=align_corners)
        return (gaussian_blur(up, sigma, padding) if sigma > 0 else up)[0, 0].numpy()
    up = smooth(grid, input_size, sigma, align_corners, padding)
    if (height, width) != tuple(up.shape[1:]):
        up = F.interpolate(up[:, None], size=(height, width), mode="bilinear", align_corners=False)[:, 0]
    return up[0].numpy()


@pytest.mark.parametrize("grid, input_size, size, sigma, align_corners, padding, smooth_at", SETTINGS)
def test_postprocess_map_equals_zsads_torch_version(grid, input_size, size, sigma, align_corners, padding, smooth_at):
    generator = np.random.default_rng(grid)
    grid_map = (generator.random((grid, grid)) * 3).astype(np.float32)  # AnomalyCLIP's summed maps reach ~4
    expected = torch_postprocess(grid_map, size, input_size, sigma, align_corners, padding, smooth_at)
    got = MapPostprocess(input_size, sigma, align_corners, padding, smooth_at).apply(grid_map, size)
    assert got.shape == expected.shape == (size[1], size[0]) and got.dtype == np.float32
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-5)
    np.testing.assert_array_equal(got, npp.postprocess_map(grid_map, size, input_size, sigma, align_corners,
                                                           padding, smooth_at))


@pytest.mark.parametrize("align_corners", [False, True])
@pytest.mark.parametrize("shape_in, shape_out", [((5, 7), (33, 20)), ((40, 30), (9, 11)), ((6, 6), (6, 6))])
def test_resize_equals_torch_and_scipy(align_corners, shape_in, shape_out):
    maps = np.random.default_rng(1).random((2, *shape_in))
    got = npp.resize_bilinear(maps, *shape_out, align_corners=align_corners)
    expected = F.interpolate(torch.from_numpy(maps)[:, None], size=shape_out, mode="bilinear",
                             align_corners=align_corners)[:, 0].numpy()  # float64: the same arithmetic
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-12)
    if shape_out[0] >= shape_in[0] and shape_out[1] >= shape_in[1]:
        # scipy's linear spline with pixel-area ("grid") coordinates is align_corners=False, with corner coordinates
        # align_corners=True; the edge repeats (mode "nearest") as torch clamps at the last pixel
        zoom = (1, shape_out[0] / shape_in[0], shape_out[1] / shape_in[1])
        independent = ndimage.zoom(maps, zoom, order=1, mode="nearest", grid_mode=not align_corners)
        np.testing.assert_allclose(got, independent, rtol=0, atol=1e-12)


@pytest.mark.parametrize("padding, scipy_mode", [("mirror", "mirror"), ("symmetric", "reflect")])
def test_gaussian_equals_torch_and_scipy(padding, scipy_mode):
    maps = np.random.default_rng(2).random((2, 37, 41))
    got = npp.gaussian_blur(maps, 4.0, padding)
    expected = gaussian_blur(torch.from_numpy(maps)[:, None], 4.0, padding)[:, 0].numpy()
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-12)
    independent = ndimage.gaussian_filter(maps, sigma=(0, 4.0, 4.0), mode=scipy_mode, truncate=4.0)
    np.testing.assert_allclose(got, independent, rtol=0, atol=1e-12)


def test_gaussian_refuses_a_radius_beyond_the_map_as_torch_does():
    with pytest.raises(RuntimeError):
        gaussian_blur(torch.zeros(1, 1, 16, 16), 4.0, "mirror")  # radius 16 needs 17 pixels to mirror
    with pytest.raises(ValueError, match="exceeds the map size 16"):
        npp.gaussian_blur(np.zeros((16, 16)), 4.0, "mirror")
    symmetric = gaussian_blur(torch.arange(256.0).view(1, 1, 16, 16), 4.0, "symmetric")[0, 0].numpy()
    np.testing.assert_allclose(npp.gaussian_blur(np.arange(256.0).reshape(16, 16), 4.0, "symmetric"), symmetric,
                               rtol=0, atol=1e-4)
    with pytest.raises(ValueError, match="padding must be"):
        npp.gaussian_blur(np.zeros((40, 40)), 1.0, "wrap")
    with pytest.raises(ValueError, match="smooth_at must be"):
        npp.postprocess_map(np.zeros((4, 4)), (64, 64), 64, smooth_at="grid")
    with pytest.raises(ValueError, match="padding must be"):
        MapPostprocess(64, padding="wrap")
