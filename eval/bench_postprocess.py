"""Full-size maps in numpy (what every ``AnomalyResult`` computes since zsad-runtime) against the torch version zsad
computed before: ms per map, and the largest difference.

``MapPostprocess.apply`` (``zsad_runtime.postprocess``) turns a patch-grid map into the map on the image's frame: it
runs once per image for each overlay, per image for the pixel metrics of ``zsad eval``, and in the runtime. The torch
reference is the pre-move arithmetic: ``zsad.postprocess.maps.smooth`` (bilinear + Gaussian on tensors, still zsad's
for training) and ``F.interpolate`` to the frame. Settings: a 37 x 37 grid (ViT-L/14 at 518 px) to MVTec-like frames
(700 and 1024 px square), an overlay's 2048 x 1536, and AnomalyDINO's smoothing at the original size (32 x 32 grid at
448 px); one thread each (torch.set_num_threads(1), and numpy's BLAS limited to one thread before it loads). Times are
the median of ``--repeats`` calls after one warm-up call (which builds and caches numpy's axis matrices, as the first
image of a run does).

    python eval/bench_postprocess.py            # a minute; writes eval/results/bench_postprocess.json
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from timing import cpu_name  # noqa: E402

for _variable in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_variable, "1")  # one thread for numpy's BLAS too, before numpy loads

import numpy as np  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
# (name, grid, input size, frame (width, height), sigma, padding, smooth_at)
SETTINGS = [
    ("ViT-L/14 518 px -> 700 x 700", 37, 518, (700, 700), 4.0, "mirror", "input"),
    ("ViT-L/14 518 px -> 1024 x 1024", 37, 518, (1024, 1024), 4.0, "mirror", "input"),
    ("ViT-L/14 518 px -> 2048 x 1536 (overlay)", 37, 518, (2048, 1536), 4.0, "mirror", "input"),
    ("AnomalyDINO 448 px, smoothed at 1024 x 1024", 32, 448, (1024, 1024), 4.0, "symmetric", "original"),
]


def torch_map(grid_map: np.ndarray, size, input_size: int, sigma: float, padding: str, smooth_at: str):
    import torch
    import torch.nn.functional as F

    from zsad.postprocess.maps import gaussian_blur, smooth

    grid = torch.from_numpy(grid_map)[None]
    width, height = size
    if smooth_at == "original":
        up = F.interpolate(grid[:, None], size=(height, width), mode="bilinear", align_corners=False)
        return gaussian_blur(up, sigma, padding)[0, 0].numpy()
    up = smooth(grid, input_size, sigma, False, padding)
    if (height, width) != tuple(up.shape[1:]):
        up = F.interpolate(up[:, None], size=(height, width), mode="bilinear", align_corners=False)[:, 0]
    return up[0].numpy()


def timed(run, repeats: int) -> tuple[float, np.ndarray]:
    out = run()
    samples = []
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        samples.append(time.perf_counter() - start)
    return statistics.median(samples), out


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--out", type=Path, default=REPO / "eval" / "results" / "bench_postprocess.json")
    args = parser.parse_args(argv)
    import torch
    from zsad_runtime.postprocess import MapPostprocess

    torch.set_num_threads(1)
    load_before = os.getloadavg()[0]
    rows = []
    for name, grid, input_size, size, sigma, padding, smooth_at in SETTINGS:
        grid_map = (np.random.default_rng(grid).random((grid, grid)) * 3).astype(np.float32)
        post = MapPostprocess(input_size, sigma, False, padding, smooth_at)
        numpy_s, ours = timed(lambda: post.apply(grid_map, size), args.repeats)
        torch_s, theirs = timed(lambda: torch_map(grid_map, size, input_size, sigma, padding, smooth_at),
                                args.repeats)
        rows.append({"setting": name, "numpy_ms": round(1000 * numpy_s, 1), "torch_ms": round(1000 * torch_s, 1),
                     "numpy_vs_torch": round(numpy_s / torch_s, 2),
                     "max_difference": float(np.abs(ours - theirs).max()), "map_range": float(np.ptp(theirs))})
    data = {"machine": {"cpu": cpu_name(), "cores": os.cpu_count(),
                        "torch": torch.__version__, "numpy": np.__version__,
                        "load_average_1min": {"before": round(load_before, 2), "after": round(os.getloadavg()[0], 2)}},
            "repeats": args.repeats, "threads": 1, "rows": rows}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(data, indent=1) + "\n")
    print("| setting | numpy ms | torch ms | numpy / torch | max difference |\n|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['setting']} | {r['numpy_ms']} | {r['torch_ms']} | {r['numpy_vs_torch']}x | "
              f"{r['max_difference']:.1e} (range {r['map_range']:.2g}) |")


if __name__ == "__main__":
    main()
