"""How many images of an unlabelled batch are anomalous: a posterior over the contamination factor.

Without references nothing says what normal scores look like except the batch itself. The MAD rule assumes the
batch is mostly normal and flags nothing when defects are the majority. These rules instead estimate the batch's
anomaly fraction gamma from the image scores of every evidence the run has, then flag the round(gamma N) highest
scores.

``gamma_gmm``: gammaGMM (Perini, Buerkner, Klami, "Estimating the Contamination Factor's Distribution in
Unsupervised Anomaly Detection", ICML 2023), computing what the official code computes (github.com/Lorenzo-Perini/
GammaGMM, ``gammaGMM.py``, ``run_gammaGMM`` with its defaults), with the evidences' image scores in place of its
PyOD detectors' scores:

1. each evidence's scores x become ``log(x - min(x) + 0.01)``, standardised (``get_anomaly_scores``);
2. a Dirichlet-process Gaussian mixture (scikit-learn ``BayesianGaussianMixture``, K = min(100, N - 1)
   components, concentration 0.01, 1500 iterations) is fitted on the [N, M] matrix of transformed scores;
   components with less than one image assigned are dropped and their concentration is shared among the others;
3. components are ordered by ``mean / (1 + std)`` of 1000 draws of their posterior mean and variance, averaged over
   evidences ("top-right first"); the k-th is anomalous with probability ``sigmoid`` of that value, and the
   chance that exactly the top k are anomalous is the product of the first k probabilities times one minus the next;
4. the sigmoid's slope and offset (delta, tau) are solved (``least_squares``) so that the prior gives P(gamma = 0)
   = p0 and P(gamma > high_gamma) = phigh (the paper's p0 = 0.01, P(gamma > 0.15) = 0.01, gamma < 0.25); if the
   solution misses either by more than 10 % the mixture is refitted with the next seed (seed + 100), and after 101
   fits gamma = 0 (the official fallback);
5. posterior samples: gamma is the summed Dirichlet weight of the top k components, k drawn with the exact joint
   probabilities at fresh draws of the component parameters (the official code reads these draws' mean precisions
   and degrees of freedom from the unfiltered mixture at the kept components' sorted positions, and so does this);
   a share p0 of the samples is 0; samples at or above ``gamma_lim`` are dropped and replaced by resampling.

Beyond the official code (where it has no answer): one evidence works (the official code indexes the draws per
detector and fails with a single one); when no sample is positive the short sample is kept (the official code's
resampling raises). Random numbers come from generators seeded like the official code's global numpy state.
``eval/check_official_gammagmm.py`` runs the official file beside this one and compares the samples.

``gamma_gmm_wide`` (``GammaGMMConfig.wide()``), zsad's deliberate variant under its own name:
- a prior for batches that may be mostly defective: the paper's ("anomalies are rare", gamma < 0.25) is the
  assumption that fails on the batches this rule exists for (a bad lot with 60 % defects); the variant keeps p0 and
  phigh and moves the bounds: P(gamma > 0.9) = 0.01 and gamma < 1;
- each kept component sampled with its own mean precision and degrees of freedom: the official re-reading of the
  unfiltered mixture pairs them wrongly when a dropped component precedes a kept one (where the kept components come
  first, the common case, both agree number for number);
- at most 11 fits instead of 101: each refit of a 100-image batch takes about half a second on a CPU, and a batch
  whose prior cannot be fitted (common with tens of images) would otherwise cost a minute.

``mixture``, a simpler, clearly different baseline (not gammaGMM): one or two Gaussians on the log scores, see
``mixture_fraction``.
"""
from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field

import numpy as np
from scipy.optimize import least_squares
from scipy.stats import beta, dirichlet, multivariate_normal, wishart

from zsad.errors import ZsadError

INTERVAL = 0.9


@dataclass(frozen=True)
class GammaGMMPrior:
    """gammaGMM's prior on the contamination factor: P(gamma = 0) = p0, P(gamma > high_gamma) = phigh, and
    gamma < gamma_lim. Defaults are the paper's and the official code's; ``wide()`` is zsad's variant's."""

    p0: float = 0.01
    phigh: float = 0.01
    high_gamma: float = 0.15
    gamma_lim: float = 0.25

    @classmethod
    def wide(cls) -> GammaGMMPrior:
        return cls(p0=0.01, phigh=0.01, high_gamma=0.9, gamma_lim=1.0)


@dataclass(frozen=True)
class GammaGMMConfig:
    """The official code's settings (``run_gammaGMM`` defaults); ``wide()`` is the ``gamma_gmm_wide`` variant.

    own_component_parameters: sample each kept component with its own mean precision and degrees of freedom
        (False: the official code's reading of the unfiltered mixture at the sorted positions).
    """

    prior: GammaGMMPrior = field(default_factory=GammaGMMPrior)
    tot_samples: int = 10000
    ndraws: int = 100
    max_components: int = 100
    seed: int = 331
    max_retries: int = 100
    weight_concentration_prior: float = 0.01
    max_iter: int = 1500
    own_component_parameters: bool = False

    @classmethod
    def wide(cls) -> GammaGMMConfig:
        return cls(prior=GammaGMMPrior.wide(), max_retries=10, own_component_parameters=True)

    @property
    def name(self) -> str:
        """"gamma_gmm" for the official computation, "gamma_gmm_wide" for zsad's variant, else "gamma_gmm_custom".

        The number of refits is a budget, not part of the name: it changes the answer only for a batch whose prior
        does not fit within it, and the posterior's note then says how many mixtures were tried."""
        choice = (self.prior, self.own_component_parameters)
        for name, reference in (("gamma_gmm", GammaGMMConfig()), ("gamma_gmm_wide", GammaGMMConfig.wide())):
            if choice == (reference.prior, reference.own_component_parameters):
                return name
        return "gamma_gmm_custom"


@dataclass(frozen=True)
class ContaminationPosterior:
    """Samples of the batch's anomaly fraction and what produced them."""

    samples: np.ndarray = field(repr=False)
    method: str
    note: str = ""
    found: bool = True  # False: the estimate found no anomalous group (the fraction is "about none")
    membership: np.ndarray | None = field(default=None, repr=False)  # per image: P(anomalous group), if modelled

    @property
    def mean(self) -> float:
        return float(np.mean(self.samples))

    def interval(self, level: float = INTERVAL) -> tuple[float, float]:
        tail = (1.0 - level) / 2
        low, high = np.quantile(self.samples, [tail, 1.0 - tail])
        return float(low), float(high)

    def summary(self) -> dict:
        low, high = self.interval()
        return {"fraction_mean": self.mean, "fraction_interval": [low, high], "interval_level": INTERVAL,
                "method": self.method, **({"note": self.note} if self.note else {})}


def transform_scores(scores: np.ndarray) -> np.ndarray:
    """log(x - min + 0.01), standardised, per column (gammaGMM's ``get_anomaly_scores``); [N] or [N, M] -> [N, M]."""
    x = np.asarray(scores, dtype=np.float64)
    x = x[:, None] if x.ndim == 1 else x
    if x.ndim != 2 or x.shape[0] < 3:
        raise ZsadError(f"contamination estimates need scores of shape [N] or [N, M] with N >= 3 images; got "
                        f"{tuple(np.shape(scores))}")
    if not np.isfinite(x).all():
        raise ZsadError("contamination estimates need finite scores; drop the images that could not be scored")
    columns = []
    for column in x.T:  # column by column, contiguous: numpy's summation order then matches the official code's
        column = np.log(np.ascontiguousarray(column) - column.min() + 0.01)
        std = column.std()
        columns.append((column - column.mean()) / std if std != 0 else column)
    # Column-major, as the official code's pandas frame of per-detector columns is: the mixture's BLAS sums then run
    # in the same order, and the posterior samples equal the official ones bit for bit.
    return np.asfortranarray(np.stack(columns, axis=1))


def _sigmoid(delta: float, tau: float, x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(tau + delta * x))


def _joint(prob: np.ndarray) -> np.ndarray:
    """P(exactly the top k components are anomalous), k = 1..K, from each component's probability."""
    following = np.roll(1.0 - prob, -1)
    following[-1] = 1.0
    return np.cumprod(prob) * following


def _p_high(delta: float, tau: float, meanstd: np.ndarray, alphas: np.ndarray, high: float) -> tuple[float, float]:
    prob = _sigmoid(delta, tau, meanstd)
    cumulative = np.cumsum(alphas)
    with np.errstate(invalid="ignore", divide="ignore"):
        above = np.nan_to_num(beta.sf(high, cumulative, alphas.sum() - cumulative), nan=1.0)
    return 1.0 - prob[0], float(np.sum(above * _joint(prob)))


def _residuals(params: np.ndarray, meanstd: np.ndarray, alphas: np.ndarray, prior: GammaGMMPrior
               ) -> tuple[float, float]:
    """The two equations delta and tau must solve: P(gamma = 0) = p0 and P(gamma > high_gamma) = phigh."""
    delta, tau = params
    first = delta - (np.log(prior.p0 / (1 - prior.p0)) - tau) / meanstd[0]
    return first, _p_high(delta, tau, meanstd, alphas, prior.high_gamma)[1] - prior.phigh


def _draw(mean: np.ndarray, mean_std: float, cov: np.ndarray, dof: float, size: int, seed: int
          ) -> tuple[np.ndarray, np.ndarray]:
    """Draws of a component's mean [size, M] and variances [size, M] (scipy squeezes them for M = 1)."""
    m = mean.size
    means = np.reshape(multivariate_normal.rvs(mean=mean, cov=mean_std**2, size=size, random_state=seed), (size, m))
    covs = np.reshape(wishart.rvs(df=dof, scale=cov / dof, size=size, random_state=seed), (size, m, m))
    return means, np.diagonal(covs, axis1=1, axis2=2)


def _meanstd(means: np.ndarray, variances: np.ndarray) -> float:
    return float(np.mean(np.mean(means / (1.0 + np.sqrt(variances)), axis=0)))


def gamma_gmm(scores: np.ndarray, config: GammaGMMConfig | None = None) -> ContaminationPosterior:
    """Posterior samples of the anomaly fraction of a batch from its image scores, [N] or [N, M] (M evidences)."""
    from sklearn.mixture import BayesianGaussianMixture

    config = config or GammaGMMConfig()
    method = config.name
    prior = config.prior
    x = transform_scores(scores)
    k_max = min(config.max_components, x.shape[0] - 1)
    for attempt in range(config.max_retries + 1):
        seed = config.seed + 100 * attempt
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # ConvergenceWarning: the official code runs the same 1500 iterations
            bgm = BayesianGaussianMixture(
                weight_concentration_prior_type="dirichlet_process", n_components=k_max,
                weight_concentration_prior=config.weight_concentration_prior, max_iter=config.max_iter,
                random_state=seed,
            ).fit(x)
        concentration = bgm.weight_concentration_[0]
        kept = np.flatnonzero(concentration >= 2)
        means, covs = bgm.means_[kept], bgm.covariances_[kept]
        mean_std, dofs = np.sqrt(1.0 / bgm.mean_precision_[kept]), bgm.degrees_of_freedom_[kept]
        meanstd = np.array([_meanstd(*_draw(means[k], mean_std[k], covs[k], dofs[k], 1000, seed))
                            for k in range(kept.size)])
        order = np.argsort(-meanstd)
        meanstd = meanstd[order]
        alphas = concentration[kept][order] + (concentration.sum() - concentration[kept].sum()) / kept.size

        delta, tau = least_squares(_residuals, x0=(-2, 1), bounds=((-50, -1), (0, 50)),
                                   args=(meanstd, alphas, prior)).x
        p0_est, phigh_est = _p_high(delta, tau, meanstd, alphas, prior.high_gamma)
        if 0.9 * prior.p0 < p0_est < 1.1 * prior.p0 and 0.9 * prior.phigh < phigh_est < 1.1 * prior.phigh:
            break
    else:
        return ContaminationPosterior(np.zeros(config.tot_samples), method,
                                      f"no prior hyperparameters fit after {config.max_retries + 1} mixtures; "
                                      "gamma = 0 (the official fallback)", found=False)
    rng = np.random.RandomState(seed)  # the official code's global numpy state, seeded at the same point
    means, covs = means[order], covs[order]
    if config.own_component_parameters:
        mean_std, dofs = mean_std[order], dofs[order]
    else:  # the official code: the unfiltered mixture's values at the kept components' sorted positions
        mean_std, dofs = np.sqrt(1.0 / bgm.mean_precision_[order]), bgm.degrees_of_freedom_[order]
    weights = np.cumsum(dirichlet(alphas).rvs(config.tot_samples, random_state=rng), axis=1)
    samples = _sample(means, covs, mean_std, dofs, delta, tau, weights, config, seed, rng)
    samples = samples[samples < prior.gamma_lim]
    if samples.size < config.tot_samples:
        positive = samples[samples > 0]
        if positive.size:
            samples = np.concatenate([samples, rng.choice(positive, config.tot_samples - samples.size)])
    return ContaminationPosterior(samples, method)


def _sample(means, covs, mean_std, dofs, delta, tau, weights, config: GammaGMMConfig, seed: int,
            rng: np.random.RandomState) -> np.ndarray:
    """The official ``sample_withexactprobs``: rounds of ``ndraws`` samples at fresh component parameters."""
    wanted = config.tot_samples * (1 - config.prior.p0)
    parts, count, round_ = [], 0, 0
    while count < wanted:
        meanstd = np.array([
            _meanstd(*_draw(means[k], mean_std[k], covs[k], dofs[k], 1, 10 * seed + (round_ + 1) * (k + 1)))
            for k in range(means.shape[0])
        ])
        joint = _joint(_sigmoid(delta, tau, meanstd))
        for k in range(means.shape[0]):
            n = int(np.round(config.ndraws * joint[k], 0))
            if n > 0:
                parts.append(rng.choice(weights[:, k], n, replace=False))
                count += n
        round_ += 1
    samples = np.concatenate(parts)
    if samples.size > wanted:
        samples = rng.choice(samples, int(wanted), replace=False)
    return np.concatenate([samples, np.zeros(config.tot_samples - samples.size)])


def _log_standardised(scores: np.ndarray) -> np.ndarray:
    """log of each column whose scores are all positive (distances), then standardised; [N] or [N, M] -> [N, M]."""
    x = np.asarray(scores, dtype=np.float64)
    x = x[:, None] if x.ndim == 1 else x
    if x.ndim != 2 or x.shape[0] < 3 or not np.isfinite(x).all():
        raise ZsadError(f"the mixture estimate needs finite scores of shape [N] or [N, M] with N >= 3; got "
                        f"{tuple(np.shape(scores))}")
    positive = (x > 0).all(axis=0)
    x = np.where(positive, np.log(np.where(positive, x, 1.0)), x)
    std = x.std(axis=0)
    return (x - x.mean(axis=0)) / np.where(std == 0, 1.0, std)


def ashman_d(mean_a: np.ndarray, cov_a: np.ndarray, mean_b: np.ndarray, cov_b: np.ndarray) -> float:
    """Ashman's D of two Gaussians along the line through their means: sqrt(2) |mu_a - mu_b| / sqrt(s_a^2 + s_b^2)."""
    direction = np.asarray(mean_b, dtype=np.float64) - np.asarray(mean_a, dtype=np.float64)
    distance = float(np.linalg.norm(direction))
    if distance == 0:
        return 0.0
    u = direction / distance
    return math.sqrt(2.0) * distance / math.sqrt(float(u @ cov_a @ u + u @ cov_b @ u))


def mixture_fraction(scores: np.ndarray, seed: int = 0, n_samples: int = 10000, min_separation: float = 1.0
                     ) -> ContaminationPosterior:
    """The simpler baseline: a two-Gaussian mixture on the log scores, kept when BIC and separation support it.

    Scores that are all positive (distances) are taken in log space, where normal images' scores are close to
    Gaussian and a defect group sits well apart. One and two Gaussians (scikit-learn ``GaussianMixture``, full
    covariance, 3 initialisations) are fitted; two are kept only if BIC prefers them and the two are separated
    (Ashman's D >= ``min_separation``; two Gaussians with D < 1 describe the skew or low tail of one group, which is
    what mutual scores of a clean batch look like). The component with the higher mean is the anomalous one, and the
    fraction's posterior is Beta(1/2 + its summed responsibilities, 1/2 + the rest) (Jeffreys prior on a binomial
    proportion given soft counts); ``membership`` keeps each image's responsibility, and the verdict flags as many
    images as the mixture assigns to the anomalous group (responsibility >= 0.5, its Bayes decision), which at
    1 % contamination is the difference between flagging the one defect and flagging it with a neighbour that the
    posterior mean's rounding adds. Otherwise the posterior is Beta(1/2, N + 1/2) and the note says that no separate
    group was found: the caller may then fall back to an outlier rule (``rules.contamination_threshold`` does).
    """
    from sklearn.mixture import GaussianMixture

    x = _log_standardised(scores)
    n = x.shape[0]
    one, two = (GaussianMixture(k, covariance_type="full", n_init=3, random_state=seed).fit(x) for k in (1, 2))
    rng = np.random.default_rng(seed)
    high, low = np.argsort(-two.means_.mean(axis=1))
    separation = ashman_d(two.means_[low], two.covariances_[low], two.means_[high], two.covariances_[high])
    if two.bic(x) < one.bic(x) and separation >= min_separation:
        membership = two.predict_proba(x)[:, high]
        soft = float(membership.sum())
        return ContaminationPosterior(rng.beta(0.5 + soft, 0.5 + n - soft, n_samples), "mixture",
                                      membership=membership)
    why = ("BIC prefers one Gaussian" if two.bic(x) >= one.bic(x)
           else f"Ashman's D {separation:.2f} < {min_separation:g}")
    return ContaminationPosterior(rng.beta(0.5, n + 0.5, n_samples), "mixture",
                                  f"no separate anomalous group ({why})", found=False)
