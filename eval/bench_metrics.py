"""Time ``pixel_metrics`` (pixel AUROC, AP, F1-max and AUPRO together) on synthetic maps of a category's size.

Usage: python eval/bench_metrics.py [--images 10 30 100] [--size 512] [--sklearn]

Masks: half of the images are normal (empty mask); the others get 1-3 random ellipses (about 1-5 % of pixels).
Maps: uniform noise plus a shift inside the defects, float32. ``--sklearn`` also times scikit-learn's
roc_auc_score + average_precision_score on the same pixels and prints the largest difference, as a check.
"""
from __future__ import annotations

import argparse
import time

import numpy as np

from zsad.metrics import pixel_metrics


def synthetic_category(n_images: int, size: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size]
    masks = np.zeros((n_images, size, size), dtype=bool)
    for i in range(0, n_images, 2):
        for _ in range(rng.integers(1, 4)):
            cy, cx = rng.uniform(0.1, 0.9, 2) * size
            ry, rx = rng.uniform(0.02, 0.1, 2) * size
            masks[i] |= ((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2 <= 1.0
    maps = rng.random(masks.shape, dtype=np.float32)
    maps += 0.6 * masks
    return maps, masks


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, nargs="+", default=[10, 30, 100])
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--sklearn", action="store_true", help="also time scikit-learn AUROC + AP")
    args = parser.parse_args()

    header = "| images | pixels | positive % | pixel_metrics s |"
    if args.sklearn:
        header += " sklearn AUROC+AP s | max abs diff |"
    # Warm-up: one-off costs of a first call (lazy imports, first page faults) are not metric time.
    pixel_metrics(*synthetic_category(2, 16))
    print(header)
    print("|" + "---:|" * header.count(" |"))
    for n in args.images:
        maps, masks = synthetic_category(n, args.size)
        t0 = time.perf_counter()
        got = pixel_metrics(maps, masks)
        seconds = time.perf_counter() - t0
        row = f"| {n} | {maps.size:,} | {100 * masks.mean():.1f} | {seconds:.2f} |"
        if args.sklearn:
            from sklearn.metrics import average_precision_score, roc_auc_score

            t0 = time.perf_counter()
            ref = (roc_auc_score(masks.ravel(), maps.ravel()), average_precision_score(masks.ravel(), maps.ravel()))
            sk_seconds = time.perf_counter() - t0
            diff = max(abs(got["p_auroc"] - ref[0]), abs(got["p_ap"] - ref[1]))
            row += f" {sk_seconds:.2f} | {diff:.1e} |"
        print(row)
    print("\nlast result:", {k: round(v, 4) for k, v in got.items()})


if __name__ == "__main__":
    main()
