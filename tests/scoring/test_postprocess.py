"""Upsampling and smoothing against scipy's Gaussian filter."""
import numpy as np
import torch
import torch.nn.functional as F
from scipy.ndimage import gaussian_filter

from zsad.scoring.postprocess import MapPostprocess, smooth


def test_smoothing_equals_scipy_gaussian_filter():
    maps = torch.rand(2, 7, 7, generator=torch.Generator().manual_seed(0))
    out = smooth(maps, input_size=56, sigma=4.0)
    up = F.interpolate(maps[:, None], size=(56, 56), mode="bilinear", align_corners=False)[:, 0].numpy()
    for i in range(2):
        # torch's "reflect" padding is scipy's "mirror"; 4-sigma truncation on both sides
        expected = gaussian_filter(up[i].astype(np.float64), sigma=4.0, mode="mirror", truncate=4.0)
        np.testing.assert_allclose(out[i].numpy(), expected, atol=1e-5)


def test_no_smoothing_and_original_sizes():
    maps = torch.rand(2, 4, 4)
    out = smooth(maps, input_size=16, sigma=0)
    assert out.shape == (2, 16, 16)
    post = MapPostprocess(16, sigma=0)  # what a result's map runs (numpy)
    resized = [post.apply(maps[0].numpy(), (30, 20)), post.apply(maps[1].numpy(), (16, 16))]
    assert resized[0].shape == (20, 30) and resized[0].dtype == np.float32
    np.testing.assert_allclose(resized[1], out[1].numpy(), rtol=0, atol=1e-6)
