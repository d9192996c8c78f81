"""zsad's ``gamma_gmm`` beside the official gammaGMM code, on the same scores.

    python eval/check_official_gammagmm.py --official /path/to/GammaGMM/gammaGMM.py

The official file (github.com/Lorenzo-Perini/GammaGMM) is not part of zsad; point ``--official`` at a copy. It
scores a data matrix with PyOD detectors, so this script hands it one stand-in detector per evidence whose
``decision_function`` returns that evidence's raw scores: both sides then transform and model the same numbers.
To import the file as it is, the modules it imports but does not use here (TensorFlow, PyOD) are stand-ins, and its
``np.float`` (removed from numpy in 1.24) is read as ``float`` in the source text before it runs. Nothing else of the
official code is changed.

Prints, per case, whether the posterior samples are identical and their largest difference; exits 1 if any case
differs. Cases include batches where a dropped mixture component precedes a kept one (where zsad's
``gamma_gmm_wide`` pairs parameters differently, and ``gamma_gmm`` must still equal the official code).
"""
from __future__ import annotations

import argparse
import json
import sys
import types
from pathlib import Path

import numpy as np

from zsad.decisions import GammaGMMConfig, gamma_gmm


class EvidenceColumn:
    """A stand-in PyOD detector: its decision function is column ``index`` of the matrix it is given."""

    def __init__(self, index: int = 0):
        self.index = index

    def fit(self, x):
        return self

    def decision_function(self, x):
        return np.asarray(x)[:, self.index]


def load_official(path: Path) -> types.ModuleType:
    stand_ins = {"tensorflow": types.SimpleNamespace(random=types.SimpleNamespace(set_seed=lambda seed: None))}
    for name in ("knn", "lof", "iforest", "cblof", "copod", "loda", "vae", "hbos", "lscp", "sod", "ocsvm",
                 "auto_encoder"):
        stand_ins[f"pyod.models.{name}"] = types.SimpleNamespace(**{cls: EvidenceColumn for cls in (
            "KNN", "LOF", "IForest", "CBLOF", "COPOD", "LODA", "VAE", "HBOS", "LSCP", "SOD", "OCSVM", "AutoEncoder")})
    for name in ("pyod", "pyod.models"):
        stand_ins[name] = types.ModuleType(name)
    for name, module in stand_ins.items():
        sys.modules.setdefault(name, module)
    source = path.read_text().replace("np.float)", "float)")
    module = types.ModuleType("official_gammagmm")
    sys.modules[module.__name__] = module  # its process pool pickles its functions by module name
    exec(compile(source, str(path), "exec"), module.__dict__)
    return module


def cases() -> list[tuple[str, np.ndarray]]:
    out = []
    for seed in range(4):
        rng = np.random.default_rng(seed)
        n, anomalies = 150, 8
        raw = np.exp(np.concatenate([rng.normal(0, 0.3, (n - anomalies, 2)), rng.normal(1.5, 0.3, (anomalies, 2))]))
        out.append((f"two evidences, 8 of 150 anomalous, seed {seed}", raw))
    rng = np.random.default_rng(10)
    raw = np.exp(np.concatenate([rng.normal(0, 0.25, (90, 3)), rng.normal(1.0, 0.4, (10, 3))]))
    out.append(("three evidences, 10 of 100 anomalous", raw))
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--official", type=Path, required=True, help="the official gammaGMM.py")
    parser.add_argument("--samples", type=int, default=2000, help="posterior samples per run (official: 10000)")
    parser.add_argument("--components", type=int, default=20, help="mixture components K (official: 100)")
    parser.add_argument("--json", type=Path, help="also write the table here")
    parser.add_argument("--fixture", type=Path,
                        help="also save the official samples of the first case with its inputs (.npz), for "
                             "tests/decisions/test_contamination.py")
    args = parser.parse_args()
    official = load_official(args.official)
    rows, failures = [], 0
    for position, (name, raw) in enumerate(cases()):
        theirs = official.run_gammaGMM(raw, ad_list=[EvidenceColumn(m) for m in range(raw.shape[1])],
                                       tot_samples=args.samples, K=args.components, verbose=False)
        ours = gamma_gmm(raw, GammaGMMConfig(tot_samples=args.samples, max_components=args.components)).samples
        wide = gamma_gmm(raw, GammaGMMConfig.wide()).mean
        same = ours.shape == theirs.shape and np.array_equal(ours, theirs)
        gap = float(np.max(np.abs(ours - theirs))) if ours.shape == theirs.shape else float("inf")
        failures += not same
        if args.fixture and position == 0:
            np.savez_compressed(args.fixture, raw=raw, samples=theirs, tot_samples=args.samples, K=args.components)
        rows.append({"case": name, "identical": same, "max_abs_difference": gap, "official_mean": float(theirs.mean()),
                     "zsad_mean": float(ours.mean()), "gamma_gmm_wide_mean": wide})
        print(f"{'same' if same else 'DIFFERENT':9s} max |diff| {gap:.3g}  mean {theirs.mean():.4f} (official) "
              f"{ours.mean():.4f} (zsad)  wide variant {wide:.4f}  {name}")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2) + "\n")
    return 1 if failures else 0


if __name__ == "__main__":
    raise SystemExit(main())
