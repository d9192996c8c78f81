"""Speed and memory per backbone and method: ms/image split into backbone forward and the rest, peak memory, and
mutual scoring's scaling with the number of images N.

Each (backbone, method) runs in a fresh subprocess on N generated 224 px images (``zsad synth``), so its peak RSS
(``resource.getrusage`` max RSS; on CUDA torch's peak allocated memory) is its own:

- forward: the backbone alone on preprocessed batches (``to_batch`` + ``backbone(batch)``), ms/image;
- detect: ``Detector.detect`` end to end (decode, forward, scoring, fusion, post-processing, verdict), ms/image;
- scoring = detect - forward - decode (decode = ``load_image`` alone): everything zsad adds to the backbone.

Mutual scaling: ``mutual_scores`` on random tokens shaped like the backbone's features for each N (its cost does
not depend on the content), ms/image and peak RSS above the features; O(N^2) distances make ms/image grow ~N.

    python eval/bench_speed.py --out eval/results/speed            # tiny random models, a few minutes on a CPU
    python eval/bench_speed.py --backbones ViT-L-14-336 dinov2-large --images 64 --out speed-gpu

Writes ``speed.json``, ``speed.md`` and ``speed.png`` (with matplotlib) into ``--out``. Tiny models have random
weights: their times say how the pipeline scales, not how a ViT-L runs; the tables say so.
"""
from __future__ import annotations

import argparse
import json
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=REPO / "eval" / "results" / "speed")
    parser.add_argument("--backbones", nargs="+", default=["tiny-clip", "tiny-dinov2"])
    parser.add_argument("--methods", nargs="+", default=["text", "fewshot", "mutual", "auto"])
    parser.add_argument("--images", type=int, default=24, help="test images per detect run")
    parser.add_argument("--shots", type=int, default=4, help="references for fewshot/auto")
    parser.add_argument("--mutual-sizes", type=int, nargs="+", default=[8, 16, 32, 64])
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def _rss_mb() -> float:
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # bytes on macOS, KiB on Linux
    return peak / 2**20 if platform.system() == "Darwin" else peak / 1024


def _peak_gpu_mb(device) -> float | None:
    import torch

    return torch.cuda.max_memory_allocated(device) / 2**20 if device.type == "cuda" else None


def worker_detect(job: dict) -> dict:
    import torch

    from zsad.data.images import load_image
    from zsad.data.preprocess import to_batch
    from zsad.detector import Detector

    root = Path(job["root"])
    tests = sorted((root / "pill" / "test").rglob("*.png"))[: job["images"]]
    refs = sorted((root / "pill" / "train" / "good").glob("*.png"))[: job["shots"]]
    references = refs if job["method"] in ("fewshot", "auto") else None
    detector = Detector(job["backbone"], method=job["method"], batch_size=job["batch_size"], device=job["device"])
    backbone = detector.backbone
    device = next(backbone.parameters()).device
    detector.detect(tests[:4] if job["method"] != "mutual" else tests[:8], references=references)  # warm-up
    rss_before = _rss_mb()

    tick = time.perf_counter()
    images = [load_image(p) for p in tests]
    decode = time.perf_counter() - tick

    tick = time.perf_counter()
    with torch.inference_mode():
        for start in range(0, len(images), job["batch_size"]):
            chunk = [i.image for i in images[start : start + job["batch_size"]]]
            backbone(to_batch(chunk, backbone.input_size, backbone.mean, backbone.std).to(device))
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    forward = time.perf_counter() - tick

    tick = time.perf_counter()
    results = detector.detect(tests, references=references)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    detect = time.perf_counter() - tick
    n = len(tests)
    return {
        "backbone": job["backbone"], "method": job["method"], "images": n,
        "ok": sum(r.ok for r in results),
        "input_size": backbone.input_size,
        "ms_decode": 1000 * decode / n, "ms_forward": 1000 * forward / n, "ms_detect": 1000 * detect / n,
        "ms_scoring": 1000 * max(detect - forward - decode, 0.0) / n,
        "peak_rss_mb": _rss_mb(), "rss_before_mb": rss_before, "peak_gpu_mb": _peak_gpu_mb(device),
    }


def worker_mutual(job: dict) -> dict:
    import torch

    from zsad.backbones import load_backbone
    from zsad.scoring.mutual import MutualConfig, mutual_scores

    backbone = load_backbone(job["backbone"])
    with torch.inference_mode():
        probe = backbone(torch.zeros(1, 3, backbone.input_size, backbone.input_size))
    shape = probe.patch_tokens.shape[1:]
    generator = torch.Generator().manual_seed(0)
    tokens = torch.randn((job["n"], *shape), generator=generator)
    cls = torch.randn((job["n"], probe.cls.shape[-1]), generator=generator)
    rss_before = _rss_mb()
    tick = time.perf_counter()
    mutual_scores(tokens, cls, MutualConfig())
    seconds = time.perf_counter() - tick
    return {"backbone": job["backbone"], "n": job["n"], "tokens": list(shape), "ms_total": 1000 * seconds,
            "ms_per_image": 1000 * seconds / job["n"], "peak_rss_mb": _rss_mb(),
            "rss_above_features_mb": _rss_mb() - rss_before}


def _spawn(job: dict) -> dict:
    done = subprocess.run([sys.executable, __file__, "--worker", json.dumps(job)], capture_output=True, text=True,
                          env={**__import__("os").environ, "HF_HUB_OFFLINE": "1"})
    if done.returncode != 0:
        return {**job, "error": done.stderr.strip().splitlines()[-1] if done.stderr.strip() else "failed"}
    return json.loads(done.stdout.strip().splitlines()[-1])


def _random(name: str) -> bool:
    return name.startswith("tiny-")


def write_outputs(out: Path, data: dict) -> None:
    random_note = " (random weights)" if any(_random(b) for b in data["backbones"]) else ""
    lines = [f"# Speed and memory{random_note}\n", f"{data['machine']}, {data['images']} images of 224 px, "
             f"batch {data['batch_size']}, device {data['device']}.\n",
             "| backbone | method | decode ms/img | forward ms/img | scoring ms/img | detect ms/img | peak RSS MB |",
             "|---|---|---:|---:|---:|---:|---:|"]
    for row in data["detect"]:
        name = row["backbone"] + (" (random weights)" if _random(row["backbone"]) else "")
        if "error" in row:
            lines.append(f"| {name} | {row['method']} | error: {row['error']} | | | | |")
            continue
        lines.append(f"| {name} | {row['method']} | {row['ms_decode']:.1f} | {row['ms_forward']:.1f} | "
                     f"{row['ms_scoring']:.1f} | {row['ms_detect']:.1f} | {row['peak_rss_mb']:.0f} |")
    lines += ["", "Mutual scoring (MuSc, r = 1, 3, 5) on random tokens shaped like each backbone's features:", "",
              "| backbone | N | total ms | ms/image | peak RSS MB | RSS above features MB |",
              "|---|---:|---:|---:|---:|---:|"]
    for row in data["mutual"]:
        if "error" in row:
            lines.append(f"| {row['backbone']} | {row['n']} | error: {row['error']} | | | |")
            continue
        lines.append(f"| {row['backbone']}{' (random weights)' if _random(row['backbone']) else ''} | {row['n']} | "
                     f"{row['ms_total']:.0f} | {row['ms_per_image']:.1f} | {row['peak_rss_mb']:.0f} | "
                     f"{row['rss_above_features_mb']:.0f} |")
    (out / "speed.md").write_text("\n".join(lines) + "\n")
    try:
        import matplotlib

        matplotlib.use("Agg", force=True)
        import matplotlib.pyplot as plt
    except ImportError:
        return
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4))
    rows = [r for r in data["detect"] if "error" not in r]
    labels = [f"{r['backbone']}\n{r['method']}" for r in rows]
    bottom = [0.0] * len(rows)
    for part, colour in (("ms_decode", "tab:grey"), ("ms_forward", "tab:blue"), ("ms_scoring", "tab:orange")):
        values = [r[part] for r in rows]
        left.bar(labels, values, bottom=bottom, label=part.removeprefix("ms_"), color=colour)
        bottom = [b + v for b, v in zip(bottom, values)]
    left.set(ylabel="ms / image", title=f"detect time split{random_note}")
    left.tick_params(axis="x", labelsize=7)
    left.legend()
    for backbone in data["backbones"]:
        points = [r for r in data["mutual"] if r["backbone"] == backbone and "error" not in r]
        right.plot([p["n"] for p in points], [p["ms_per_image"] for p in points], marker="o", label=backbone)
    right.set(xlabel="N images", ylabel="ms / image", xscale="log", yscale="log",
              title=f"mutual scoring vs N{random_note}")
    right.legend()
    fig.savefig(out / "speed.png", dpi=90, bbox_inches="tight")


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.worker:
        job = json.loads(args.worker)
        print(json.dumps(worker_mutual(job) if job["kind"] == "mutual" else worker_detect(job)))
        return 0
    sys.path.insert(0, str(REPO))
    from zsad.data.synth import generate_dataset

    import tempfile

    args.out.mkdir(parents=True, exist_ok=True)
    scratch = tempfile.TemporaryDirectory(prefix="zsad-bench-speed-")
    root = generate_dataset(Path(scratch.name), categories=["pill"], n_train=args.shots,
                            n_test_good=max(args.images - 4, 1), n_test_defect=2, size=224, seed=0)
    started = time.perf_counter()
    detect = []
    for backbone in args.backbones:
        for method in args.methods:
            if method == "text" and "dinov2" in backbone.lower():
                continue  # no text tower
            row = _spawn({"kind": "detect", "backbone": backbone, "method": method, "root": str(root),
                          "images": args.images, "shots": args.shots, "batch_size": args.batch_size,
                          "device": args.device})
            detect.append(row)
            print(json.dumps(row), file=sys.stderr)
    mutual = []
    for backbone in args.backbones:
        for n in args.mutual_sizes:
            row = _spawn({"kind": "mutual", "backbone": backbone, "n": n})
            mutual.append(row)
            print(json.dumps(row), file=sys.stderr)
    data = {"machine": f"{platform.processor() or platform.machine()}, {__import__('os').cpu_count()} CPUs",
            "device": args.device, "images": args.images, "batch_size": args.batch_size,
            "backbones": args.backbones, "detect": detect, "mutual": mutual,
            "seconds": round(time.perf_counter() - started, 1)}
    (args.out / "speed.json").write_text(json.dumps(data, indent=1) + "\n")
    write_outputs(args.out, data)
    print((args.out / "speed.md").read_text())
    return 0


if __name__ == "__main__":
    sys.exit(main())
