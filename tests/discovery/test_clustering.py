"""Clustering, K estimation and region merging against scikit-learn, scipy and the official merge rule."""
from __future__ import annotations

import numpy as np
import pytest
from official_anomalyncd import official_region_merge
from scipy.special import softmax
from sklearn.cluster import KMeans
from sklearn.metrics import adjusted_rand_score, silhouette_score

from zsad.discovery.clustering import (
    ESTIMATORS,
    eigengap_k,
    estimate_k,
    kmeans,
    merge_regions,
    normalised_laplacian_spectrum,
    silhouette_k,
    soft_assign,
)


def blobs(k: int, per: int = 30, dim: int = 24, spread: float = 0.15, seed: int = 0):
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(k, dim))
    truth = np.repeat(np.arange(k), per)
    x = centres[truth] / np.linalg.norm(centres[truth], axis=1, keepdims=True) + rng.normal(scale=spread,
                                                                                            size=(k * per, dim))
    return x / np.linalg.norm(x, axis=1, keepdims=True), truth


def test_kmeans_is_scikit_learns_kmeans():
    x, _ = blobs(4, per=12, spread=0.6, seed=1)
    for k in (2, 3, 5):
        labels, centres = kmeans(x, k, seed=7)
        reference = KMeans(n_clusters=k, n_init=10, random_state=7).fit(x)
        np.testing.assert_array_equal(labels, reference.labels_)
        np.testing.assert_allclose(centres, reference.cluster_centers_)


def test_large_inputs_use_minibatch_kmeans_and_still_recover_blobs():
    x, truth = blobs(5, per=200, seed=2)
    labels, centres = kmeans(x, 5, seed=0, minibatch_above=500)
    assert centres.shape == (5, x.shape[1])
    assert adjusted_rand_score(truth, labels) == pytest.approx(1.0)


def test_silhouette_estimate_is_the_argmax_of_scikit_learns_silhouette():
    x, _ = blobs(3, per=10, spread=0.5, seed=3)
    estimate = silhouette_k(x, k_max=6, seed=0)
    direct = {k: silhouette_score(x, KMeans(n_clusters=k, n_init=4, random_state=0).fit_predict(x))
              for k in range(2, 7)}
    assert estimate.scores == pytest.approx(direct)
    assert estimate.k == max(direct, key=direct.get)


@pytest.mark.parametrize("n", [40, 400])
def test_laplacian_spectrum_is_the_dense_eigen_decomposition(n):
    x, _ = blobs(4, per=n // 4, spread=0.4, seed=4)
    d2 = ((x[:, None] - x[None]) ** 2).sum(-1)
    scale = np.sqrt(np.sort(d2, axis=1)[:, 7])
    affinity = np.exp(-d2 / np.outer(scale, scale))
    np.fill_diagonal(affinity, 0)
    degree = affinity.sum(1)
    laplacian = np.eye(n) - affinity / np.sqrt(np.outer(degree, degree))
    np.testing.assert_allclose(normalised_laplacian_spectrum(x, 8), np.linalg.eigvalsh(laplacian)[:8], atol=1e-8)


@pytest.mark.parametrize("method", ESTIMATORS)
@pytest.mark.parametrize("k", [3, 5])
def test_every_estimator_recovers_k_of_well_separated_blobs(method, k):
    x, _ = blobs(k, per=25, seed=k)
    assert estimate_k(x, method, k_max=10, seed=0).k == k


def test_estimation_samples_large_inputs_and_refuses_bad_settings():
    x, _ = blobs(3, per=400, seed=5)
    estimate = estimate_k(x, "silhouette", sample=300)
    assert (estimate.k, estimate.sample) == (3, 300)
    assert estimate_k(x[:2], "eigengap").k == 1
    assert estimate_k(np.repeat(x[:1], 10, axis=0), "silhouette").k == 1  # identical points: one type
    with pytest.raises(ValueError, match="unknown estimator"):
        estimate_k(x, "gap")
    with pytest.raises(ValueError, match="k_max"):
        estimate_k(x, "silhouette", k_max=1)
    assert eigengap_k(x[:60], k_max=4).k <= 4


def test_soft_assignment_is_a_softmax_of_cosines_over_a_tenth():
    rng = np.random.default_rng(6)
    x, centres = rng.normal(size=(7, 5)), rng.normal(size=(3, 5))
    cos = (x / np.linalg.norm(x, axis=1, keepdims=True)) @ (centres / np.linalg.norm(centres, axis=1,
                                                                                       keepdims=True)).T
    np.testing.assert_allclose(soft_assign(x, centres), softmax(cos / 0.1, axis=1))


def test_region_merging_is_the_official_area_weighted_merge():
    rng = np.random.default_rng(7)
    owner = np.array([0, 1, 1, 1, 2, 4, 4])  # image 3 has no region
    cosines = rng.uniform(-1, 1, (len(owner), 4))
    area = rng.uniform(10, 40000, len(owner))
    types, confidence, merged = merge_regions(softmax(cosines / 0.1, axis=1), owner, area, 5)
    for image in (0, 1, 2, 4):
        rows = np.flatnonzero(owner == image)
        expected_type, expected = official_region_merge(cosines[rows], area[rows])
        np.testing.assert_allclose(merged[image], expected, rtol=1e-12)
        assert types[image] == expected_type and confidence[image] == pytest.approx(expected.max())
    assert types[3] == -1 and confidence[3] == 0.0
