"""Image and pixel AUROC / AP / F1-max checked against scikit-learn on random data, with and without ties."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.metrics import average_precision_score, f1_score, precision_recall_curve, roc_auc_score

from zsad.metrics import f1_max, image_metrics, pixel_metrics


def sk_f1_max(labels: np.ndarray, scores: np.ndarray) -> float:
    precision, recall, _ = precision_recall_curve(labels, scores)
    denom = precision + recall
    f1 = np.divide(2 * precision * recall, denom, out=np.zeros_like(denom), where=denom > 0)
    return float(f1.max())


def random_image_data(seed: int, n: int, ties: bool) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    labels = rng.random(n) < 0.4
    labels[:2] = [True, False]  # both classes present
    scores = rng.normal(size=n) + 0.8 * labels
    if ties:
        scores = np.round(scores * 2) / 2  # a handful of distinct values, ties across classes
    return scores.astype(np.float32), labels


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("ties", [False, True])
def test_image_metrics_match_sklearn(seed: int, ties: bool) -> None:
    scores, labels = random_image_data(seed, 300, ties)
    got = image_metrics(scores, labels)
    assert set(got) == {"i_auroc", "i_ap", "i_f1_max"}
    assert got["i_auroc"] == pytest.approx(roc_auc_score(labels, scores), abs=1e-6)
    assert got["i_ap"] == pytest.approx(average_precision_score(labels, scores), abs=1e-6)
    assert got["i_f1_max"] == pytest.approx(sk_f1_max(labels, scores), abs=1e-6)


@pytest.mark.parametrize("ties", [False, True])
def test_f1_max_threshold_reproduces_best_f1(ties: bool) -> None:
    scores, labels = random_image_data(7, 200, ties)
    best, threshold = f1_max(scores, labels)
    assert best == pytest.approx(sk_f1_max(labels, scores), abs=1e-6)
    assert threshold in set(scores[labels].tolist())
    assert f1_score(labels, scores >= threshold) == pytest.approx(best, abs=1e-12)


def test_image_metrics_accept_tensors_and_lists() -> None:
    scores, labels = random_image_data(3, 50, ties=False)
    ref = image_metrics(scores, labels)
    assert image_metrics(torch.from_numpy(scores), torch.from_numpy(labels)) == ref
    assert image_metrics(scores.tolist(), labels.astype(int).tolist())["i_auroc"] == pytest.approx(ref["i_auroc"])
    bf16 = torch.from_numpy(scores).to(torch.bfloat16)
    expected = roc_auc_score(labels, bf16.float().numpy())
    assert image_metrics(bf16, labels)["i_auroc"] == pytest.approx(expected, abs=1e-6)


def test_perfect_and_inverted_scores() -> None:
    labels = np.array([0, 0, 1, 1, 0, 1])
    perfect = labels.astype(np.float32)
    assert image_metrics(perfect, labels) == {"i_auroc": 1.0, "i_ap": 1.0, "i_f1_max": 1.0}
    assert image_metrics(-perfect, labels)["i_auroc"] == 0.0


def random_pixel_data(seed: int, ties: bool) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    masks = np.zeros((4, 20, 24), dtype=bool)
    masks[0, 3:9, 5:12] = True
    masks[1, 10:14, 2:4] = True
    masks[1, 0, 0] = True
    masks[2] = rng.random((20, 24)) < 0.05  # image 3 stays normal
    maps = rng.normal(size=masks.shape) + 1.2 * masks
    if ties:
        maps = np.round(maps * 3) / 3
    return maps.astype(np.float32), masks


@pytest.mark.parametrize("seed", [0, 1])
@pytest.mark.parametrize("ties", [False, True])
def test_pixel_metrics_match_sklearn(seed: int, ties: bool) -> None:
    maps, masks = random_pixel_data(seed, ties)
    got = pixel_metrics(maps, masks)
    flat_y, flat_s = masks.ravel(), maps.ravel()
    assert got["p_auroc"] == pytest.approx(roc_auc_score(flat_y, flat_s), abs=1e-6)
    assert got["p_ap"] == pytest.approx(average_precision_score(flat_y, flat_s), abs=1e-6)
    assert got["p_f1_max"] == pytest.approx(sk_f1_max(flat_y, flat_s), abs=1e-6)
    assert 0.0 <= got["aupro"] <= 1.0


def test_pixel_metrics_list_of_different_sizes_equals_pooled_sklearn() -> None:
    rng = np.random.default_rng(5)
    shapes = [(9, 13), (16, 16), (5, 30)]
    masks = [rng.random(s) < 0.15 for s in shapes]
    maps = [(rng.normal(size=s) + m).astype(np.float32) for s, m in zip(shapes, masks)]
    got = pixel_metrics(maps, [m.astype(np.uint8) for m in masks])
    flat_y = np.concatenate([m.ravel() for m in masks])
    flat_s = np.concatenate([m.ravel() for m in maps])
    assert got["p_auroc"] == pytest.approx(roc_auc_score(flat_y, flat_s), abs=1e-6)
    assert got["p_ap"] == pytest.approx(average_precision_score(flat_y, flat_s), abs=1e-6)
    # Same result from torch tensors and from float64 maps.
    as_torch = pixel_metrics([torch.from_numpy(m) for m in maps], [torch.from_numpy(m) for m in masks])
    assert as_torch == got
    as_f64 = pixel_metrics([m.astype(np.float64) for m in maps], masks)
    assert as_f64 == pytest.approx(got, abs=1e-12)


def test_pixel_metrics_stacked_tensor_input() -> None:
    maps, masks = random_pixel_data(4, ties=False)
    assert pixel_metrics(torch.from_numpy(maps), torch.from_numpy(masks)) == pixel_metrics(maps, masks)
