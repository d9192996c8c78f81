"""Defect-type discovery on ``zsad synth`` sets: discovered types against the planted ones, per feature choice.

    python eval/bench_discovery.py [--seeds 0 1 2] [--categories weave grain pill washer] [--n-defect 6]
                                   [--json eval/results/bench_discovery.json]

Protocol (AnomalyNCD's: every anomalous test image is clustered; the detector supplies only the maps): for each
category and seed, a synthetic set (8 good references, 4 good and ``--n-defect`` defective test images per planted
type; textures have 4 types, objects 5) is scored by two few-shot detectors on random-weight tiny backbones,
``Detector("tiny-dinov2", layers=(1,), input_size=336, method="fewshot")`` and ``Detector("tiny-clip",
method="fewshot")``; the defective images are then discovered (main-element regions of each detector's maps, crops
embedded with that detector's backbone) with each feature kind and each K estimator, plus the true K ("oracle")
and two references that need no clustering: every image in one type, and a seeded uniformly random type out of the
true K. Image-level NMI / ARI / cluster F1 (``zsad.metrics.clustering``) and the estimated K are reported.

Scale: K estimation + k-means + region merging on 10,000 synthetic unit vectors (``--scale-dim`` wide, 5 Gaussian
blobs, 2,000 images of 5 regions each), timed per estimator. Random weights: the numbers say how far each feature
separates the generator's planted types, nothing about real products.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
import tracemalloc
from collections import defaultdict
from pathlib import Path

import numpy as np

from zsad.data.synth import SYNTH_CATEGORIES, generate_dataset
from zsad.detector import Detector
from zsad.discovery.clustering import ESTIMATORS, estimate_k, kmeans, merge_regions, soft_assign
from zsad.discovery.pipeline import embed_regions, group
from zsad.metrics.clustering import clustering_metrics

DETECTORS = {
    "tiny-dinov2": ({"backbone": "tiny-dinov2", "layers": (1,), "input_size": 336, "method": "fewshot"},
                    ("tokens", "colour")),
    "tiny-clip": ({"backbone": "tiny-clip", "method": "fewshot"}, ("projected", "tokens", "colour")),
}


def _references(truth: list[str], k: int, seed: int) -> dict[str, list]:
    rng = np.random.default_rng(seed)
    return {"one type": [0] * len(truth), "random": list(rng.integers(0, k, len(truth)))}


def run_sets(args) -> list[dict]:
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        for seed in args.seeds:
            root = generate_dataset(Path(folder) / f"seed{seed}", args.categories, n_train=8, n_test_good=4,
                                    n_test_defect=args.n_defect, size=args.size, seed=seed)
            for detector_name, (options, kinds) in DETECTORS.items():
                detector = Detector(**options)
                for category in args.categories:
                    start = time.perf_counter()
                    results = detector.detect(root / category / "test", references=root / category / "train" / "good")
                    detect_s = time.perf_counter() - start
                    flagged = sum(r.is_anomalous is True and not r.name.startswith("good/") for r in results)
                    for result in results:  # the protocol: every defective image, whatever the verdict
                        result.is_anomalous = not result.name.startswith("good/")
                    truth_of = {r.name: r.name.split("/")[0] for r in results}
                    true_k = len(SYNTH_CATEGORIES[category].defects)
                    base = {"seed": seed, "category": category, "detector": detector_name, "true_k": true_k,
                            "images": sum(not r.name.startswith("good/") for r in results), "flagged": flagged}
                    for kind in kinds:
                        start = time.perf_counter()
                        regions = embed_regions(results, None if kind == "colour" else detector.backbone,
                                                features=kind)
                        embed_s = time.perf_counter() - start
                        for estimator in (*ESTIMATORS, "oracle"):
                            start = time.perf_counter()
                            found = group(regions, detector.backbone, estimator=estimator if estimator != "oracle"
                                          else "silhouette", types=true_k if estimator == "oracle" else None,
                                          seed=seed)
                            truth = [truth_of[i.name] for i in found.images]
                            rows.append({**base, "features": kind, "estimator": estimator, "k": found.k.k,
                                         "regions": len(found.regions), "embed_s": round(embed_s, 3),
                                         "group_s": round(time.perf_counter() - start, 3),
                                         "detect_s": round(detect_s, 3),
                                         **clustering_metrics(truth, [i.type for i in found.images])})
                        if kind == kinds[0]:
                            truth = [truth_of[r.name] for r in regions.images]
                            for name, labels in _references(truth, true_k, seed).items():
                                rows.append({**base, "features": "-", "estimator": name, "k": None,
                                             **clustering_metrics(truth, labels)})
                    print(f"seed {seed} {detector_name:11s} {category:7s} detect {detect_s:.1f} s", flush=True)
    return rows


def summarise(rows: list[dict]) -> list[dict]:
    groups = defaultdict(list)
    for row in rows:
        groups[(row["detector"], row["features"], row["estimator"])].append(row)
    table = []
    for (detector, features, estimator), items in groups.items():
        table.append({
            "detector": detector, "features": features, "estimator": estimator, "sets": len(items),
            **{key: round(float(np.mean([r[key] for r in items])), 4) for key in ("nmi", "ari", "f1")},
            **({} if items[0]["k"] is None else {
                "k_mean": round(float(np.mean([r["k"] for r in items])), 3),
                "k_error": round(float(np.mean([abs(r["k"] - r["true_k"]) for r in items])), 3),
                "k_exact": round(float(np.mean([r["k"] == r["true_k"] for r in items])), 3)}),
        })
    return table


def scale(dim: int, regions: int = 10_000, per_image: int = 5, k: int = 5) -> list[dict]:
    """Timing of the clustering steps on ``regions`` synthetic region features (unit vectors around k centres)."""
    rng = np.random.default_rng(0)
    centres = rng.normal(size=(k, dim))
    truth = rng.integers(0, k, regions)
    x = centres[truth] + rng.normal(scale=0.6, size=(regions, dim))
    x = (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)
    owner = np.arange(regions) // per_image
    area = rng.uniform(100, 5000, regions)
    out = []
    for estimator in ESTIMATORS:
        tracemalloc.start()  # numpy reports its buffers to tracemalloc: the peak is the arrays the steps allocate
        start = time.perf_counter()
        estimate = estimate_k(x, estimator, seed=0)
        estimate_s = time.perf_counter() - start
        labels, centroids = kmeans(x, estimate.k, seed=0)
        cluster_s = time.perf_counter() - start - estimate_s
        merge_regions(soft_assign(x, centroids), owner, area, int(owner.max()) + 1)
        total = time.perf_counter() - start
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        out.append({"estimator": estimator, "regions": regions, "dim": dim, "true_k": k, "k": estimate.k,
                    "estimate_s": round(estimate_s, 2), "cluster_s": round(cluster_s, 2), "total_s": round(total, 2),
                    "peak_mb": round(peak / 2**20, 1), "features_mb": round(x.nbytes / 2**20, 1),
                    "region_ari": round(clustering_metrics(truth, labels)["ari"], 4)})
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--categories", nargs="+", default=list(SYNTH_CATEGORIES))
    parser.add_argument("--n-defect", type=int, default=6, help="defective test images per planted type")
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--scale-dim", type=int, default=768)
    parser.add_argument("--json", default=str(Path(__file__).parent / "results" / "bench_discovery.json"))
    args = parser.parse_args()
    start = time.perf_counter()
    rows = run_sets(args)
    table = summarise(rows)
    timing = scale(args.scale_dim)
    print("\n| detector | features | estimator | NMI | ARI | F1 | mean K | mean abs(K - K*) | K = K* |\n"
          "|---|---|---|---|---|---|---|---|---|")
    for r in sorted(table, key=lambda r: (r["detector"], r["features"], r["estimator"])):
        k = (f"{r['k_mean']:.2f} | {r['k_error']:.2f} | {r['k_exact']:.2f}" if "k_error" in r else "- | - | -")
        print(f"| {r['detector']} | {r['features']} | {r['estimator']} | {r['nmi']:.3f} | {r['ari']:.3f} | "
              f"{r['f1']:.3f} | {k} |")
    print("\n| estimator | regions | dim | K | estimate s | cluster s | total s | peak MB (features MB) | region ARI |"
          "\n"
          "|---|---|---|---|---|---|---|---|---|")
    for r in timing:
        print(f"| {r['estimator']} | {r['regions']} | {r['dim']} | {r['k']} | {r['estimate_s']} | {r['cluster_s']} | "
              f"{r['total_s']} | {r['peak_mb']} ({r['features_mb']}) | {r['region_ari']} |")
    elapsed = time.perf_counter() - start
    document = {
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count(), "python": platform.python_version()},
        "weights": "random (tiny test backbones)", "seeds": args.seeds, "categories": args.categories,
        "n_defect": args.n_defect, "size": args.size, "elapsed_s": round(elapsed, 1),
        "summary": table, "scale": timing, "rows": rows,
    }
    write_json(document, Path(args.json))
    print(f"\n{elapsed:.0f} s -> {args.json}")


def write_json(document: dict, path: Path) -> None:
    """Indented JSON with one line per row (288 rows would be 5,000 lines indented)."""
    rows = document["rows"]
    text = json.dumps({**document, "rows": "ROWS"}, indent=1, default=float)
    lines = ",\n  ".join(json.dumps(row, default=float) for row in rows)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text.replace('"ROWS"', f"[\n  {lines}\n ]") + "\n")


if __name__ == "__main__":
    main()
