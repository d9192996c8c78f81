"""Grouping region features into defect types, the number of types estimated from the data, and the image's type.

Not from AnomalyNCD: its official code is told the true number of classes (the folder count of the test set) and
learns the grouping with a trained classifier. zsad clusters the frozen region features with k-means and estimates
K itself. Estimators (``ESTIMATORS``), each over K = 2 .. ``k_max`` (at most n - 1):

- ``silhouette``: k-means for every K (4 seeded starts each; the final clustering uses 10), the K with the largest
  mean silhouette (Rousseeuw 1987).
- ``eigengap``: self-tuning affinity A_ij = exp(-d_ij^2 / (s_i s_j)), s_i the distance to the 7th neighbour
  (Zelnik-Manor & Perona 2004), symmetric normalised Laplacian with eigenvalues l1 <= l2 <= ...; K is the k
  with the largest gap l(k+1) - l(k). K = 1 is not a candidate: on the benchmark below the gap after l1 = 0
  (how connected the whole graph is) won on almost every set, and one type is the answer nobody needs a tool for.
- ``dpgmm``: a Dirichlet-process Gaussian mixture (scikit-learn's ``BayesianGaussianMixture``, diagonal covariances,
  on at most 16 principal components, the best of 3 seeded fits: one fit split a blob in a third of
  well-separated test sets) with ``k_max`` components; K is the number of components that own at least
  max(2, 1 %) of the points (it may say 1).

The default is ``silhouette``, because the number of types is what a user reads first. On ``eval/bench_discovery.py``
(``zsad synth``, 4 categories x 3 seeds with 4 or 5 planted types, random-weight tiny backbones, 5 feature choices)
its K is the closest to the truth in 4 of 5 feature rows (mean |K - K*| 0.67-1.50); the Dirichlet process
over-splits (mean K 6.4-6.9 for 4.5, |K - K*| 1.9-2.4), which NMI barely punishes (its NMI is 0.01-0.07 higher in
3 rows, lower in 2) but a user reading "7 types" would; the eigengap under-splits (mean K 2.5-3.7) and has the
lowest NMI in every row. (``eval/results/bench_discovery.json`` holds the numbers.)

Scale: K is estimated on a seeded sample of at most ``sample`` regions (2,000: the silhouette and the affinity are
quadratic in it, 32 MB of float64 distances), then all regions are clustered; above ``minibatch_above`` regions
(5,000) with ``MiniBatchKMeans`` (batches of 1,024). Memory is the features plus a sample-sized matrix. Up to
5,000 points the steps run on one thread: scikit-learn's OpenMP k-means splits work into chunks of 256 points,
and on a busy 2-core machine a 300-point k-means took 1 s with two threads and 0.01 s with one.

Region to image: AnomalyNCD's region merging (``region_merge_predict``): each region's class probabilities are
softmax(cos(feature, prototype) / 0.1) over the normalised class prototypes (here the k-means centres), and an
image with several regions takes the average of its regions' probabilities weighted by
softmax(sqrt(region area in pixels) / T), T = 100 (the official value for MVTec AD; 50 for its other data set).
The image's type is the largest merged probability, and that probability is its confidence (1/K = no preference).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

ESTIMATORS = ("silhouette", "eigengap", "dpgmm")
FEATURE_KINDS = ("projected", "tokens", "colour")  # region features (``features``); here so the CLI loads no torch
DEFAULT_ESTIMATOR = "silhouette"
SAMPLE = 2000
MINIBATCH_ABOVE = 5000
ESTIMATE_STARTS = 4
SINGLE_THREAD_UP_TO = 5000
PROTOTYPE_TEMPERATURE = 0.1
AREA_TEMPERATURE = 100.0


@dataclass(frozen=True)
class KEstimate:
    """k: the chosen number of types; method: the estimator (or "fixed"); scores: its value per candidate K
    (silhouette, eigengap, or component share for the Dirichlet process); sample: regions it looked at."""

    k: int
    method: str
    scores: dict[int, float] = field(default_factory=dict)
    sample: int = 0

    def to_dict(self) -> dict:
        return {"k": self.k, "method": self.method, "sample": self.sample,
                "scores": {str(k): round(float(v), 6) for k, v in self.scores.items()}}


def _floats(features: np.ndarray) -> np.ndarray:
    x = np.asarray(features)
    return x if x.dtype in (np.float32, np.float64) else x.astype(np.float64)


def _sample(features: np.ndarray, limit: int, seed: int) -> np.ndarray:
    if len(features) <= limit:
        return features
    rows = np.random.default_rng(seed).choice(len(features), size=limit, replace=False)
    return features[np.sort(rows)]


def kmeans(features: np.ndarray, k: int, seed: int = 0, n_init: int = 10,
           minibatch_above: int = MINIBATCH_ABOVE) -> tuple[np.ndarray, np.ndarray]:
    """(labels, centres) of k-means with ``k`` clusters: scikit-learn's ``KMeans`` (``n_init`` seeded starts), or
    ``MiniBatchKMeans`` above ``minibatch_above`` points."""
    from sklearn.cluster import KMeans, MiniBatchKMeans
    from threadpoolctl import threadpool_limits

    x = _floats(features)  # float32 stays float32: no float64 copy of 10,000 x 1,024 features
    k = int(min(max(k, 1), len(x)))
    if len(x) > minibatch_above:
        model = MiniBatchKMeans(n_clusters=k, batch_size=1024, n_init=3, random_state=seed)
    else:
        model = KMeans(n_clusters=k, n_init=n_init, random_state=seed)
    with threadpool_limits(limits=1 if len(x) <= SINGLE_THREAD_UP_TO else None):
        labels = model.fit_predict(x)
    return labels.astype(np.int64), model.cluster_centers_


def _candidates(n: int, k_max: int) -> list[int]:
    return list(range(2, min(k_max, n - 1) + 1))


def silhouette_k(features: np.ndarray, k_max: int = 10, seed: int = 0, n_init: int = ESTIMATE_STARTS) -> KEstimate:
    from sklearn.metrics import silhouette_score

    scores = {}
    for k in _candidates(len(features), k_max):
        labels, _ = kmeans(features, k, seed, n_init=n_init)
        if len(np.unique(labels)) > 1:
            scores[k] = float(silhouette_score(features, labels))
    k = max(scores, key=scores.get) if scores else 1
    return KEstimate(k, "silhouette", scores, len(features))


def normalised_laplacian_spectrum(features: np.ndarray, count: int, neighbour: int = 7) -> np.ndarray:
    """The ``count`` smallest eigenvalues of the symmetric normalised Laplacian of the self-tuning affinity,
    ascending. They are 1 - the largest eigenvalues of D^-1/2 A D^-1/2: LAPACK for small inputs, ARPACK (a fixed
    start vector, so runs repeat) above 300 points, where it is ~8x faster than a partial dense solve."""
    from scipy.linalg import eigvalsh
    from scipy.sparse.linalg import eigsh
    from sklearn.metrics.pairwise import euclidean_distances

    x = np.asarray(features, dtype=np.float64)
    d2 = euclidean_distances(x, squared=True)  # through the Gram matrix: 10x faster than cdist at 2,000 x 768
    np.fill_diagonal(d2, 0.0)
    nth = min(neighbour, len(x) - 1)
    scale = np.sqrt(np.partition(d2, nth, axis=1)[:, nth]).clip(1e-12)
    affinity = np.exp(-d2 / np.outer(scale, scale))
    np.fill_diagonal(affinity, 0.0)
    inv = 1.0 / np.sqrt(affinity.sum(1).clip(1e-12))
    normalised = inv[:, None] * affinity * inv[None, :]
    count = min(count, len(x))
    if len(x) <= 300 or count >= len(x) - 1:
        top = eigvalsh(normalised)[::-1][:count]
    else:
        top = eigsh(normalised, k=count, which="LA", return_eigenvectors=False, v0=np.full(len(x), len(x) ** -0.5))
    return np.sort(1.0 - np.asarray(top))


def eigengap_k(features: np.ndarray, k_max: int = 10) -> KEstimate:
    n = len(features)
    if n < 3:
        return KEstimate(1, "eigengap", {}, n)
    values = normalised_laplacian_spectrum(features, min(k_max, n - 1) + 1)
    gaps = {k: float(values[k] - values[k - 1]) for k in range(2, len(values))}
    return KEstimate(max(gaps, key=gaps.get), "eigengap", gaps, n)


def dpgmm_k(features: np.ndarray, k_max: int = 10, seed: int = 0) -> KEstimate:
    from sklearn.decomposition import PCA
    from sklearn.mixture import BayesianGaussianMixture

    n = len(features)
    if n < 3:
        return KEstimate(1, "dpgmm", {}, n)
    x = np.asarray(features, dtype=np.float64)
    dims = min(16, x.shape[1], n - 1)
    if dims < x.shape[1]:
        x = PCA(n_components=dims, random_state=seed).fit_transform(x)
    model = BayesianGaussianMixture(n_components=min(k_max, n), covariance_type="diag", max_iter=500, n_init=3,
                                    weight_concentration_prior_type="dirichlet_process", random_state=seed)
    labels = model.fit(x).predict(x)
    share = np.bincount(labels, minlength=model.n_components) / n
    owners = int((share * n >= max(2, 0.01 * n)).sum())
    return KEstimate(max(1, owners), "dpgmm", {i + 1: float(s) for i, s in enumerate(share)}, n)


def estimate_k(features: np.ndarray, method: str = DEFAULT_ESTIMATOR, k_max: int = 10, seed: int = 0,
               sample: int = SAMPLE) -> KEstimate:
    """The number of types in ``features`` (n, d) by ``method`` (see the module doc), on at most ``sample`` rows."""
    if method not in ESTIMATORS:
        raise ValueError(f"unknown estimator {method!r}; use one of {', '.join(ESTIMATORS)} (or fix types=K)")
    if k_max < 2:
        raise ValueError(f"k_max={k_max}: the estimators compare K = 2 .. k_max; pass k_max >= 2 or fix types=K")
    from threadpoolctl import threadpool_limits

    x = _sample(np.asarray(features), sample, seed).astype(np.float64)
    if len(x) < 3 or len(np.unique(x.round(9), axis=0)) < 2:
        return KEstimate(1, method, {}, len(x))
    with threadpool_limits(limits=1 if len(x) <= SINGLE_THREAD_UP_TO else None):
        if method == "silhouette":
            return silhouette_k(x, k_max, seed)
        if method == "eigengap":
            return eigengap_k(x, k_max)
        return dpgmm_k(x, k_max, seed)


def soft_assign(features: np.ndarray, centres: np.ndarray,
                temperature: float = PROTOTYPE_TEMPERATURE) -> np.ndarray:
    """(n, K) softmax(cos(feature, centre) / temperature): AnomalyNCD's class probabilities with the k-means
    centres as prototypes."""
    from scipy.special import softmax

    x = np.asarray(features, dtype=np.float64)
    c = np.asarray(centres, dtype=np.float64)
    x = x / np.linalg.norm(x, axis=1, keepdims=True).clip(1e-12)
    c = c / np.linalg.norm(c, axis=1, keepdims=True).clip(1e-12)
    return softmax(x @ c.T / temperature, axis=1)


def merge_regions(probabilities: np.ndarray, owner: np.ndarray, area: np.ndarray, n_images: int,
                  temperature: float = AREA_TEMPERATURE) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """AnomalyNCD's region merging: (type, confidence, merged probabilities) per image ``0 .. n_images - 1``.

    owner: the image index of each region; area: each region's anomalous area in pixels. An image without regions
    gets type -1 and confidence 0.
    """
    probabilities = np.asarray(probabilities, dtype=np.float64)
    owner = np.asarray(owner, dtype=np.int64)
    logits = np.sqrt(np.asarray(area, dtype=np.float64)) / temperature
    top = np.full(n_images, -np.inf)
    np.maximum.at(top, owner, logits)
    weights = np.exp(logits - top[owner])  # a softmax within each image, all images at once
    totals = np.zeros(n_images)
    np.add.at(totals, owner, weights)
    weights /= totals[owner]
    merged = np.zeros((n_images, probabilities.shape[1]))
    np.add.at(merged, owner, probabilities * weights[:, None])
    has = np.bincount(owner, minlength=n_images) > 0
    types = np.where(has, merged.argmax(1), -1)
    confidence = np.where(has, merged.max(1), 0.0)
    return types, confidence, merged
