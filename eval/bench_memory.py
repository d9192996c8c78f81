"""Peak memory of `zsad detect` as the folder grows, and on one 81-megapixel image, measured in one run.

    python eval/bench_memory.py [--small 200] [--large 2000] [--size 512] [--huge 9000] [--json FILE]

1. **Scaling.** ``zsad detect`` (tiny-clip, ``--method text``, overlays written) on ``--small`` and ``--large``
   generated images of ``--size`` px (smooth gradient + shapes + noise, JPEG). Peak RSS is measured by GNU
   ``/usr/bin/time`` around the zsad process. The per-image record bytes are what a run keeps per image until results are
   written: the ``AnomalyResult`` (patch-grid map, evidence, regions, explanation) plus its JSON record, measured
   with ``tracemalloc`` on an in-process run. Bounded memory means
   ``peak(large) <= peak(small) + (large - small) * per_image_bytes`` (+ allocator slack, reported as such).
2. **Huge image.** One ``--huge`` x ``--huge`` JPEG through ``zsad detect --backbone tiny-clip`` (default method):
   peak RSS and wall time. The decoded RGB image alone is ``3 * huge**2`` bytes (243 MB at 9000 px).

Random weights: memory and time do not depend on them. Timing varies with the machine's load; the numbers are
recorded with the machine in the JSON.
"""
from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

ENV = {**os.environ, "HF_HUB_OFFLINE": "1"}


def make_image(rng: np.random.Generator, size: int) -> Image.Image:
    """A smooth background with a few shapes and mild noise (compresses well, so 2,000 files stay small)."""
    ramp = np.linspace(0, 1, size, dtype=np.float32)
    base = rng.uniform(60, 200, 3).astype(np.float32)
    array = base + 40 * (ramp[None, :, None] * rng.uniform(-1, 1, 3) + ramp[:, None, None] * rng.uniform(-1, 1, 3))
    image = Image.fromarray(np.clip(array, 0, 255).astype(np.uint8))
    draw = ImageDraw.Draw(image)
    for _ in range(rng.integers(1, 4)):
        x, y = rng.integers(0, size, 2)
        r = int(rng.integers(size // 20, size // 6))
        colour = tuple(int(c) for c in rng.integers(0, 256, 3))
        (draw.ellipse if rng.random() < 0.5 else draw.rectangle)([x - r, y - r, x + r, y + r], fill=colour)
    noise = rng.normal(0, 4, (size, size, 3)).astype(np.float32)
    return Image.fromarray(np.clip(np.asarray(image, np.float32) + noise, 0, 255).astype(np.uint8))


def generate(folder: Path, count: int, size: int, seed: int = 0) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    for index in range(count):
        make_image(rng, size).save(folder / f"{index:05d}.jpg", quality=90)


def run_detect(args: list[str], work: Path) -> dict:
    """Run ``zsad detect ARGS`` in a child process; its peak RSS (bytes) and wall time.

    The peak comes from GNU time (``/usr/bin/time -f %M``), whose own child is the zsad process: ``ru_maxrss`` of a
    child forked from this (large) benchmark process would include this process's pages from before the exec.
    """
    report = work / "time.txt"
    command = ["/usr/bin/time", "-f", "%M", "-o", str(report),
               sys.executable, "-m", "zsad.cli.main", "detect", *args]
    started = time.perf_counter()
    done = subprocess.run(command, env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    wall = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"zsad detect failed ({done.returncode}): {done.stderr[-2000:]}")
    return {"peak_rss_bytes": int(report.read_text().split()[-1]) * 1024, "wall_s": wall}


def per_image_bytes(folder: Path, count: int, work: Path) -> dict:
    """Bytes a run needs per additional image until its results are written (the per-image records).

    Measured as the marginal traced peak (``tracemalloc``: Python objects and numpy arrays) of detect + writing
    results.json/csv without overlays, between ``count // 10`` and ``count`` images, so per-batch buffers cancel
    out. Torch tensors are not traced: the patch-grid maps exist as torch tensors in up to three copies while the
    run is decided (per-batch parts, their concatenation, the fused maps the results point into), added as
    ``3 * grid_map.nbytes``.
    """
    from zsad.detector import Detector
    from zsad.outputs import write_results

    detector = Detector("tiny-clip", method="text")
    paths = sorted(folder.iterdir())[:count]
    detector.detect(paths[:8])  # warm-up: text embeddings, allocator

    def traced_peak(n: int) -> tuple[int, int]:
        gc.collect()
        tracemalloc.start()
        base = tracemalloc.get_traced_memory()[0]
        results = detector.detect(paths[:n])
        write_results(results, work / f"records-{n}", {"command": "detect"})
        peak = tracemalloc.get_traced_memory()[1] - base
        tracemalloc.stop()
        return peak, results[0].grid_map.nbytes

    small_n = max(1, count // 10)
    small, _ = traced_peak(small_n)
    large, grid = traced_peak(count)
    traced = (large - small) / (count - small_n)
    return {"traced_python_numpy": traced, "grid_map_bytes": grid, "torch_grid_copies": 3 * grid,
            "total": traced + 3 * grid}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--small", type=int, default=200)
    parser.add_argument("--large", type=int, default=2000)
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--huge", type=int, default=9000, help="side of the one huge image (0: skip)")
    parser.add_argument("--json", default=None)
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="zsad-bench-memory-"))
    try:
        numbers: dict = {"machine": {"cpu": platform.processor() or platform.machine(), "cores": os.cpu_count(),
                                     "python": platform.python_version()},
                         "backbone": "tiny-clip (random weights)", "method": "text", "image_size": args.size}
        started = time.perf_counter()
        generate(work / "large", args.large, args.size)
        (work / "small").mkdir()
        for path in sorted((work / "large").iterdir())[: args.small]:
            shutil.copy(path, work / "small" / path.name)
        numbers["generate_s"] = time.perf_counter() - started
        baseline = work / "baseline.txt"
        subprocess.run(["/usr/bin/time", "-f", "%M", "-o", str(baseline), sys.executable, "-c",
                        "from zsad.backbones import load_backbone; import zsad.cli.main; load_backbone('tiny-clip')"],
                       env=ENV, check=True)
        numbers["runtime_baseline_rss_bytes"] = int(baseline.read_text().split()[-1]) * 1024  # torch+open_clip+model
        common = ["--backbone", "tiny-clip", "--method", "text"]
        small = run_detect([str(work / "small"), *common, "--out", str(work / "out-small")], work)
        large = run_detect([str(work / "large"), *common, "--out", str(work / "out-large")], work)
        records = per_image_bytes(work / "small", min(args.small, 200), work)
        record = records["total"]
        allowed = small["peak_rss_bytes"] + (args.large - args.small) * record
        numbers["scaling"] = {
            "small": {"images": args.small, **small}, "large": {"images": args.large, **large},
            "per_image_record_bytes": record, "per_image_record_parts": records,
            "growth_bytes_per_image": (large["peak_rss_bytes"] - small["peak_rss_bytes"]) / (args.large - args.small),
            "allowed_large_peak_bytes": allowed,
            "large_within_small_plus_records": large["peak_rss_bytes"] <= allowed,
        }
        print(f"peak RSS: {args.small} images {small['peak_rss_bytes'] / 2**20:.0f} MiB ({small['wall_s']:.0f} s), "
              f"{args.large} images {large['peak_rss_bytes'] / 2**20:.0f} MiB ({large['wall_s']:.0f} s); "
              f"per-image record {record:.0f} B; allowed {allowed / 2**20:.0f} MiB")
        if args.huge:
            huge = work / "huge.jpg"
            make_image(np.random.default_rng(1), args.huge).save(huge, quality=90)
            result = run_detect([str(huge), "--backbone", "tiny-clip", "--out", str(work / "out-huge")], work)
            numbers["huge"] = {"side": args.huge, "decoded_rgb_bytes": 3 * args.huge**2, **result}
            print(f"{args.huge} x {args.huge} JPEG: peak RSS {result['peak_rss_bytes'] / 2**20:.0f} MiB, "
                  f"{result['wall_s']:.1f} s (decoded image {3 * args.huge**2 / 2**20:.0f} MiB)")
        if args.json:
            Path(args.json).write_text(json.dumps(numbers, indent=2))
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
