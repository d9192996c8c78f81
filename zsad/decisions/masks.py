"""Binary anomaly masks on the patch grid, and the rule that a normal verdict has no mask.

Three ways to binarise a run's patch-grid maps [N, h, w]:

- ``mad_masks``: today's rule (``zsad.explain.regions.pixel_threshold``): median + 3 x 1.4826 x MAD over every
  patch value of the run. It is a top-tail rule: every map has a top tail, so normal images get regions too.
- ``conformal_masks``: the references' leave-one-out patch scores are the calibration set
  (``zsad.decisions.conformal``): a normal patch exceeds the threshold with probability at most ``rate``.
- ``test_time_masks``: a classifier trained at test time on this batch's patches, in the spirit of "Test Time
  Training for Industrial Anomaly Segmentation" (Costanzino et al., CVPR workshops 2024; TTT4AS): the map's extremes
  are pseudo-labels, the backbone's patch features are the inputs, and the classifier, not a threshold on the
  map, decides each patch. This is zsad's own variant, not TTT4AS: one logistic regression per *batch* (not one
  classifier per image), on the patch grid (not on upsampled pixel features), with pseudo-labels chosen as
  below; the paper's protocol is not reproduced.

Pseudo-labels of ``test_time_masks`` and why (measured on ``zsad synth`` maps, see ``eval/bench_decisions.py``):
- patch scores are very heavy-tailed (a normal patch at the 99th percentile lies some 50 robust standard
  deviations above the median), so no batch-wide "k x MAD" bound separates defects from normal structure; the
  confident anomalous patches are instead, in each image whose *verdict* is anomalous, those at least
  ``peak_fraction`` (1/2) of the way from the run's median patch value to that image's own peak: the defect's
  core at half maximum. Images with a normal verdict give no anomalous labels, which is why verdicts are needed:
  without them every image's peak would be called a defect.
- confidently normal: every patch of images with a normal verdict, and patches at or below the run's median
  (half of all patches; a defect is never there), subsampled with a seeded generator to at most
  ``normal_per_anomalous`` (20) per anomalous patch and ``max_normal`` in all: the ratio is the classifier's prior,
  and one small defect's half a dozen patches against 20,000 normal ones never reach P = 0.5.
- the classifier is weakly regularised (C = 10): a batch may give only a few dozen anomalous patches, and at
  C = 1 their class vanishes.
- fewer than ``min_anomalous`` confident anomalous patches (no anomalous verdict): no classifier is trained; the
  caller's ``fallback`` decides, or no image gets a mask, and ``MaskResult.rule`` says so.

Every rule returns a ``MaskResult``: ``values`` (the map, or the classifier's probability), the ``cut`` on them and
``keep`` (images allowed a mask), so that the mask can be drawn on the grid (``masks``) or at any size after
interpolating the values (``at``), which is how the benchmark compares masks with pixel ground truth.

Wiring rule: a normal verdict has no outlined region. Pass the image verdicts as ``verdicts``; images with a
False (normal) or None (undecided) verdict get an empty mask, whatever their map holds.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from zsad.decisions.conformal import conformal_threshold
from zsad.errors import ZsadError


@dataclass(frozen=True)
class MaskResult:
    """Binary masks of a run: anomalous where ``values >= cut`` in images with ``keep``.

    name: "test_time_classifier", "conformal", "mad" or "none"; rule: the same in words, with its numbers.
    """

    values: np.ndarray = field(repr=False)  # [N, h, w]
    cut: float
    keep: np.ndarray = field(repr=False)  # [N] bool
    name: str
    rule: str
    details: dict = field(default_factory=dict)

    @property
    def masks(self) -> np.ndarray:
        """[N, h, w] bool on the patch grid."""
        return (self.values >= self.cut) & self.keep[:, None, None]

    def at(self, size: tuple[int, int]) -> np.ndarray:
        """[N, height, width] bool: values interpolated bilinearly to ``size`` = (height, width), then cut."""
        import torch
        import torch.nn.functional as F

        values = torch.from_numpy(np.ascontiguousarray(self.values, dtype=np.float32))[:, None]
        up = F.interpolate(values, size=tuple(size), mode="bilinear", align_corners=False)[:, 0].numpy()
        return (up >= self.cut) & self.keep[:, None, None]

    def area_fractions(self) -> np.ndarray:
        """[N] share of each image's grid inside its mask (0 for images without a mask)."""
        return self.masks.reshape(len(self.keep), -1).mean(axis=1)


def _keep(verdicts, n: int) -> np.ndarray:
    if verdicts is None:
        return np.ones(n, dtype=bool)
    keep = np.array([v is True or (v is not None and bool(v)) for v in verdicts], dtype=bool)
    if keep.shape != (n,):
        raise ZsadError(f"{len(keep)} verdicts for {n} maps; pass one verdict per image, in the same order")
    return keep


def _grids(grid_maps: np.ndarray) -> np.ndarray:
    maps = np.asarray(grid_maps, dtype=np.float64)
    if maps.ndim != 3 or maps.size == 0:
        raise ZsadError(f"grid maps must be [N, h, w] with N >= 1; got shape {maps.shape}")
    return maps


def mad_masks(grid_maps: np.ndarray, k: float = 3.0, verdicts=None) -> MaskResult:
    """Today's rule: median + k x 1.4826 x MAD of every patch value of the run (``pixel_threshold``)."""
    from zsad.explain.regions import pixel_threshold

    maps = _grids(grid_maps)
    cut = pixel_threshold(maps, k)
    return MaskResult(maps, cut, _keep(verdicts, len(maps)), "mad",
                      f"patch median + {k:g} x 1.4826 x MAD over the run's {maps.size} patch values ({cut:.4g})")


def conformal_masks(grid_maps: np.ndarray, calibration: np.ndarray, rate: float = 0.001, verdicts=None
                    ) -> MaskResult:
    """Anomalous patches: above the references' leave-one-out patch scores at a per-patch false-alarm ``rate``.

    ``rate`` bounds the expected share of a normal region's patches marked anomalous (0.1 %: about half a patch of
    a 24 x 24 grid). It is not a per-image guarantee: which images get a mask at all is the image verdict's job
    (``verdicts``). A per-image rate through Bonferroni (image rate / patches per image) would ask for more than a
    few references' patches can give and make the threshold their single largest patch score, which one odd
    reference patch then decides (measured in ``eval/bench_decisions.py``: IoU 0.37-0.42 instead of 0.6 on one
    seed). With fewer than 1/rate calibration patches the rule states the rate it can guarantee.
    """
    maps = _grids(grid_maps)
    threshold = conformal_threshold(calibration, rate)
    return MaskResult(maps, threshold.value, _keep(verdicts, len(maps)), "conformal",
                      threshold.describe("reference patches"),
                      {"patch_false_alarm_rate": threshold.rate, "calibration_patches": threshold.k})


@dataclass(frozen=True)
class TestTimeConfig:
    """Pseudo-labels and classifier of ``test_time_masks`` (see the module docstring for why)."""

    __test__ = False  # not a pytest test class

    peak_fraction: float = 0.5
    normal_quantile: float = 0.5
    min_anomalous: int = 3
    max_normal: int = 20000
    normal_per_anomalous: int = 20
    regularisation: float = 10.0  # scikit-learn's C (inverse strength) of the logistic regression
    seed: int = 0


def test_time_masks(grid_maps: np.ndarray, features: np.ndarray, verdicts=None,
                    config: TestTimeConfig | None = None, fallback: MaskResult | None = None) -> MaskResult:
    """Masks from a logistic regression trained on this batch's confident patches.

    grid_maps: [N, h, w]; features: [N, h, w, C] patch features on the same grid (e.g. the backbone's tokens
    of the layer the maps come from). verdicts: [N] image verdicts (True anomalous); None treats every image as
    anomalous, which only makes sense for a batch known to be all defective.
    """
    from sklearn.linear_model import LogisticRegression

    config = config or TestTimeConfig()
    maps = _grids(grid_maps)
    feats = np.asarray(features, dtype=np.float64)
    if feats.shape[:3] != maps.shape:
        raise ZsadError(f"patch features {feats.shape} do not match the maps {maps.shape}; pass [N, h, w, C] "
                        "features of the grid the maps live on")
    keep = _keep(verdicts, len(maps))
    median = float(np.median(maps))
    peaks = maps.reshape(len(maps), -1).max(axis=1)
    height = np.maximum(peaks - median, 1e-12)[:, None, None]
    anomalous = ((maps - median) / height >= config.peak_fraction) & (peaks > median)[:, None, None] \
        & keep[:, None, None]
    n_anomalous = int(anomalous.sum())
    if n_anomalous < config.min_anomalous:
        why = (f"{n_anomalous} confident anomalous patches (at least {config.peak_fraction:g} of the way from the "
               f"median patch value to the peak of an image with an anomalous verdict); at least "
               f"{config.min_anomalous} are needed")
        if fallback is not None:
            return MaskResult(fallback.values, fallback.cut, fallback.keep & keep, fallback.name,
                              f"{fallback.rule} (no test-time classifier: {why})", dict(fallback.details))
        return MaskResult(maps, float("inf"), np.zeros(len(maps), dtype=bool), "none", f"no masks: {why}")
    normal = ((maps <= np.quantile(maps, config.normal_quantile)) | ~keep[:, None, None]) & ~anomalous
    normal_index = np.flatnonzero(normal.ravel())
    wanted = min(config.max_normal, config.normal_per_anomalous * n_anomalous)
    if normal_index.size > wanted:
        normal_index = np.random.default_rng(config.seed).choice(normal_index, wanted, replace=False)
    x = feats.reshape(-1, feats.shape[-1])
    x = x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
    train_index = np.concatenate([np.flatnonzero(anomalous.ravel()), normal_index])
    targets = np.concatenate([np.ones(n_anomalous), np.zeros(normal_index.size)])
    classifier = LogisticRegression(C=config.regularisation, max_iter=5000).fit(x[train_index], targets)
    probability = classifier.predict_proba(x)[:, 1].reshape(maps.shape)
    return MaskResult(probability, 0.5, keep, "test_time_classifier",
                      f"logistic regression trained on this batch: {n_anomalous} patches at half maximum of "
                      f"{int(keep.sum())} anomalous images vs {normal_index.size} normal patches; anomalous where "
                      "P >= 0.5",
                      {"anomalous_patches": n_anomalous, "normal_patches": int(normal_index.size)})


test_time_masks.__test__ = False  # a library function whose name starts with "test": pytest must not collect it
