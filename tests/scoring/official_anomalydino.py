"""Independent transcription of AnomalyDINO's official scoring path, used as a test oracle.

Source: github.com/dammsi/AnomalyDINO (HEAD b3435f0), the few-shot path of ``run_anomalydino.py`` without masking
or rotation (``--preprocess force_no_mask_no_rotation``):

- ``src/backbones.py`` ``DINOv2Wrapper``: torchvision ``Resize(448)`` (shorter side, bicubic, antialias), ``ToTensor``,
  ImageNet ``Normalize``; the tensor is cropped (top-left) to a multiple of the patch size; features are
  ``model.get_intermediate_layers(image)[0]`` (last block, final LayerNorm, patch tokens) of the torch.hub model.
- DINOv2's hub ``interpolate_pos_encoding`` (facebookresearch/dinov2 ``dinov2/models/vision_transformer.py``):
  bicubic with scale factor ``(n + 0.1) / M``, no antialiasing, for the models without registers.
- ``src/detection.py`` ``run_anomaly_detection``: faiss ``IndexFlatL2`` on ``normalize_L2``-ed features, k = 1,
  squared L2 / 2 (``knn_metric="L2_normalized"``, i.e. 1 - cos); distances in a float64 array of the grid.
- ``src/post_eval.py`` ``mean_top1p``: the mean of the ``int(0.01 * n)`` largest distances, the max when that is 0.
- ``src/utils.py`` ``dists2map``: ``cv2.resize(INTER_LINEAR)`` of the grid straight to the original image size,
  then ``scipy.ndimage.gaussian_filter(sigma=4)`` (mode "reflect", truncate 4).

faiss, cv2 and scipy are replaced by numpy transcriptions of what they compute (exact 1-NN by a matrix product in
faiss's ``|q|^2 + |m|^2 - 2 q.m`` form; cv2's half-pixel bilinear with its float32 weights; scipy's separable
correlation with ``d c b a | a b c d`` borders).
"""
from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def prepare_image(image, smaller_edge_size: int = 448, patch_size: int = 14):
    """``DINOv2Wrapper.prepare_image``: (C, H, W) tensor and the patch grid (rows, cols)."""
    from torchvision import transforms

    transform = transforms.Compose([
        transforms.Resize(size=smaller_edge_size, interpolation=transforms.InterpolationMode.BICUBIC, antialias=True),
        transforms.ToTensor(),
        transforms.Normalize(mean=IMAGENET_MEAN, std=IMAGENET_STD),
    ])
    tensor = transform(image)
    height, width = tensor.shape[1:]
    height, width = height - height % patch_size, width - width % patch_size
    return tensor[:, :height, :width], (height // patch_size, width // patch_size)


def hub_interpolate_pos_encoding(pos_embed: torch.Tensor, patch_size: int, height: int, width: int,
                                 offset: float = 0.1) -> torch.Tensor:
    """DINOv2 hub: [1, 1 + M*M, C] -> [1, 1 + gh*gw, C] for an image of ``height`` x ``width`` pixels."""
    n = pos_embed.shape[1] - 1
    rows, cols = height // patch_size, width // patch_size
    if rows * cols == n and height == width:
        return pos_embed
    pos = pos_embed.float()
    m = int(math.sqrt(n))
    assert m * m == n
    grid = pos[:, 1:].reshape(1, m, m, -1).permute(0, 3, 1, 2)
    grid = F.interpolate(grid, mode="bicubic", antialias=False,
                         scale_factor=(float(rows + offset) / m, float(cols + offset) / m))
    assert tuple(grid.shape[-2:]) == (rows, cols)
    grid = grid.permute(0, 2, 3, 1).reshape(1, -1, pos.shape[-1])
    return torch.cat((pos[:, :1], grid), dim=1).to(pos_embed.dtype)


def _normalize_l2(x: np.ndarray) -> np.ndarray:
    """faiss.normalize_L2: each row times 1 / its norm (rows of norm 0 left alone), float32."""
    x = np.asarray(x, dtype=np.float32).copy()
    norms = np.sqrt((x * x).sum(axis=1, dtype=np.float32))
    scale = np.where(norms > 0, np.float32(1.0) / np.where(norms > 0, norms, 1), np.float32(1.0))
    return x * scale[:, None].astype(np.float32)


def knn_distances(features_ref: np.ndarray, features_test: np.ndarray, k: int = 1) -> np.ndarray:
    """``L2_normalized`` search: squared L2 between unit rows (faiss's expansion, clipped at 0), k nearest,
    mean over k when k > 1, halved: 1 - cos for k = 1."""
    ref, test = _normalize_l2(features_ref), _normalize_l2(features_test)
    sq = (test * test).sum(1)[:, None] + (ref * ref).sum(1)[None, :] - 2.0 * (test @ ref.T)
    sq = np.maximum(sq, 0.0).astype(np.float32)
    nearest = np.sort(sq, axis=1)[:, :k]
    distances = nearest.mean(axis=1) if k > 1 else nearest
    return distances / 2


def mean_top1p(distances: np.ndarray) -> float:
    """``src/post_eval.py``: mean of the int(1 %) largest, the max when int(1 %) is 0."""
    distances = np.asarray(distances).flatten()
    count = int(len(distances) * 0.01)
    if count == 0:
        return float(np.max(distances))
    return float(np.mean(sorted(distances, reverse=True)[:count]))


def _cv2_linear_axis(src: int, dst: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """cv2 INTER_LINEAR taps along one axis: source index pairs and the float32 weight of the second."""
    scale = src / dst
    fx = ((np.arange(dst) + 0.5) * scale - 0.5).astype(np.float32)
    sx = np.floor(fx).astype(np.int64)
    fx = (fx - sx).astype(np.float32)
    low = sx < 0
    fx[low], sx[low] = 0.0, 0
    high = sx >= src - 1
    fx[high], sx[high] = 0.0, src - 1
    return sx, np.minimum(sx + 1, src - 1), fx


def cv2_resize_linear(image: np.ndarray, width: int, height: int) -> np.ndarray:
    """``cv2.resize(image, (width, height), interpolation=cv2.INTER_LINEAR)`` of a 2-D float array."""
    image = np.asarray(image)
    y0, y1, wy = _cv2_linear_axis(image.shape[0], height)
    x0, x1, wx = _cv2_linear_axis(image.shape[1], width)
    wx, wy = wx.astype(image.dtype), wy.astype(image.dtype)
    rows = image[:, x0] * (1 - wx) + image[:, x1] * wx
    return rows[y0] * (1 - wy)[:, None] + rows[y1] * wy[:, None]


def gaussian_filter(image: np.ndarray, sigma: float = 4.0, truncate: float = 4.0) -> np.ndarray:
    """``scipy.ndimage.gaussian_filter`` of a 2-D array, mode "reflect" (``d c b a | a b c d``)."""
    radius = int(truncate * float(sigma) + 0.5)
    x = np.arange(-radius, radius + 1, dtype=np.float64)
    weights = np.exp(-0.5 / (sigma * sigma) * x**2)
    weights /= weights.sum()
    out = np.asarray(image)
    for axis in (0, 1):
        padded = np.pad(out, [(radius, radius) if a == axis else (0, 0) for a in (0, 1)], mode="symmetric")
        n = out.shape[axis]
        out = sum(w * np.take(padded, np.arange(i, i + n), axis=axis) for i, w in enumerate(weights))
    return out


def dists2map(dists: np.ndarray, img_shape: tuple[int, ...], sigma: float = 4.0) -> np.ndarray:
    """``src/utils.py``: grid -> original image (height, width), then the Gaussian there."""
    return gaussian_filter(cv2_resize_linear(dists, img_shape[1], img_shape[0]), sigma=sigma)


def score_image(features_ref: np.ndarray, features_test: np.ndarray, grid_size: tuple[int, int],
                img_shape: tuple[int, ...]):
    """One test image as ``run_anomaly_detection`` scores it (no masking): patch distances on the grid (float64),
    the image score and the full-resolution map."""
    distances = knn_distances(features_ref, features_test)
    output = np.zeros(features_test.shape[0], dtype=float)
    output[:] = distances.squeeze()
    grid = output.reshape(grid_size)
    return grid, mean_top1p(output.flatten()), dists2map(grid, img_shape)
