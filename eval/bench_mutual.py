"""Benchmark of mutual scoring against its physical floor, the bare distance matrix products.

For each batch size N, random features shaped like ViT-B-16 at 224 px (14 x 14 = 196 tokens, 768 dims, 4 layers)
are scored by ``mutual_scores`` (LNAMD, chunked MSM, RsCIN) in a fresh subprocess, and in the same subprocess
the same matrix products the distances need are timed alone: for every (layer, r) pair and every (query block,
reference block) of the plan, one [q*P x C] @ [C x rc*P] product into a preallocated buffer, with no LNAMD,
minimum, top-k or square root. The ratio mutual / bare is the overhead of everything that is not the product.

Time is linear in the number of (layer, r) pairs, each being the same products on differently aggregated
features, so ``--radii 1`` (4 pairs) predicts ``--radii 1 3 5`` (12 pairs) as 3x the time at the same ratio.

Peak memory: ``resource.getrusage`` max RSS of the subprocess (CPU) right after scoring, and the same minus
the RSS before scoring (the working memory on top of the features); on CUDA, torch's peak allocated memory.
Mutual and bare runs alternate ``--repeats`` times and the fastest of each is kept, which damps the noise of a
shared machine.

    python eval/bench_mutual.py --sizes 50 100 --radii 1 --json eval/results/bench_mutual.json
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[50, 100, 200, 400], help="batch sizes N")
    parser.add_argument("--radii", type=int, nargs="+", default=[1], help="LNAMD radii (MuSc uses 1 3 5)")
    parser.add_argument("--grid", type=int, default=14, help="tokens per side (14 = ViT-B-16 at 224)")
    parser.add_argument("--dim", type=int, default=768, help="token width C")
    parser.add_argument("--layers", type=int, default=4, help="number of layers L")
    parser.add_argument("--dtype", choices=["float32", "float16", "bfloat16"], default="float32")
    parser.add_argument("--device", default="cpu", help="cpu or cuda")
    parser.add_argument("--memory-mb", type=float, default=2048.0, help="MutualConfig.memory_mb")
    parser.add_argument("--query-chunk", type=int, default=None)
    parser.add_argument("--ref-chunk", type=int, default=None)
    parser.add_argument("--max-refs", type=int, default=None)
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    parser.add_argument("--repeats", type=int, default=1, help="alternating runs of each; the fastest is kept")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", type=Path, default=None, help="also write the results as JSON here")
    parser.add_argument("--child", type=int, default=None, help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # Linux reports KiB


def _current_rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def run_child(args: argparse.Namespace, n: int) -> dict:
    """Time one batch size; runs in its own process so that its peak RSS is its own."""
    import torch

    from zsad.scoring.mutual import MutualConfig, mutual_scores, plan_blocks
    from zsad.scoring.mutual.msm import default_query_chunk, ref_chunk_for

    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    gen = torch.Generator().manual_seed(args.seed)
    h = w = args.grid
    p, c = h * w, args.dim
    tokens = torch.randn(n, args.layers, h, w, c, generator=gen).to(device=device, dtype=getattr(torch, args.dtype))
    cls = torch.randn(n, 512, generator=gen).to(device) + 1.0
    config = MutualConfig(
        radii=tuple(args.radii), query_chunk=args.query_chunk, ref_chunk=args.ref_chunk,
        memory_mb=args.memory_mb, max_refs=args.max_refs, seed=args.seed,
    )
    # The plan mutual_scores will use, rebuilt here for the bare products.
    q = config.query_chunk or default_query_chunk(n, p, c, config.interval, config.memory_mb, config.max_refs)
    blocks = plan_blocks(n, query_chunk=q, max_refs=config.max_refs, seed=config.seed)
    pairs = args.layers * len(args.radii)

    def sync() -> None:
        if device.type == "cuda":
            torch.cuda.synchronize()

    def rows(z: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
        """A view for contiguous indices (as MSM takes them), a copy otherwise."""
        first = int(idx[0])
        if torch.equal(idx, torch.arange(first, first + len(idx))):
            return z[first : first + len(idx)]
        return z[idx.to(device)]

    def bare() -> None:
        z = torch.randn(n, p, c, generator=gen).to(device)  # float32, as the products see it
        for _ in range(pairs):
            for block in blocks:
                rc = config.ref_chunk or ref_chunk_for(len(block.queries), p, c, config.memory_mb)
                rc = min(rc, len(block.candidates))
                zq = rows(z, block.queries).reshape(-1, c)
                out = torch.empty(len(block.queries) * p, rc * p, device=device)
                for start in range(0, len(block.candidates), rc):
                    zr = rows(z, block.candidates[start : start + rc]).reshape(-1, c)
                    torch.mm(zq, zr.T, out=out[:, : zr.shape[0]])
        sync()

    rss_before = _current_rss_mb()
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
        base_cuda = torch.cuda.memory_allocated() / 2**20
    mutual_times, bare_times = [], []
    peak = None
    for rep in range(args.repeats):
        sync()
        t0 = time.perf_counter()
        result = mutual_scores(tokens, cls, config)
        sync()
        mutual_times.append(time.perf_counter() - t0)
        if peak is None:
            peak = torch.cuda.max_memory_allocated() / 2**20 if device.type == "cuda" else _rss_mb()
            working = peak - (base_cuda if device.type == "cuda" else rss_before)
        t0 = time.perf_counter()
        bare()
        bare_times.append(time.perf_counter() - t0)
    assert torch.isfinite(result.maps).all()
    n_products = pairs * sum(-(-len(b.candidates) // min(len(b.candidates), config.ref_chunk or ref_chunk_for(
        len(b.queries), p, c, config.memory_mb))) for b in blocks)
    flops = pairs * sum(2.0 * len(b.queries) * p * len(b.candidates) * p * c for b in blocks)
    return {
        "n": n, "pairs": pairs, "query_chunk": q, "products": n_products,
        "mutual_s": min(mutual_times), "bare_s": min(bare_times),
        "ratio": min(mutual_times) / min(bare_times),
        "bare_gflops": flops / min(bare_times) / 1e9,
        "features_mb": tokens.numel() * tokens.element_size() / 2**20,
        "peak_mb": peak, "working_mb": working,
    }


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.child is not None:
        print(json.dumps(run_child(args, args.child)))
        return 0
    forwarded = [a for a in (argv if argv is not None else sys.argv[1:])]
    rows = []
    for n in args.sizes:
        cmd = [sys.executable, str(Path(__file__).resolve()), *forwarded, "--child", str(n)]
        env = dict(os.environ, PYTHONPATH=f"{REPO}{os.pathsep}{os.environ.get('PYTHONPATH', '')}")
        done = subprocess.run(cmd, env=env, capture_output=True, text=True)
        if done.returncode != 0:
            print(done.stderr, file=sys.stderr)
            return done.returncode
        rows.append(json.loads(done.stdout.strip().splitlines()[-1]))
        print(f"N={n} done in {rows[-1]['mutual_s']:.1f} s", file=sys.stderr)

    import torch

    machine = {
        "platform": platform.platform(), "processor": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(), "torch": torch.__version__, "threads": args.threads or torch.get_num_threads(),
        "device": args.device,
    }
    setup = (f"{args.grid}x{args.grid} tokens x {args.dim} dims x {args.layers} layers, radii {tuple(args.radii)}, "
             f"{args.dtype}, memory_mb {args.memory_mb:g}, device {args.device}")
    print(f"\nMutual scoring vs bare distance products ({setup})\n")
    print("| N | (layer, r) pairs | query chunk | products | mutual (s) | bare products (s) | ratio | bare GFLOP/s "
          "| features (MB) | peak RSS (MB) | working (MB) |")
    print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        print(f"| {r['n']} | {r['pairs']} | {r['query_chunk']} | {r['products']} | {r['mutual_s']:.2f} | "
              f"{r['bare_s']:.2f} | {r['ratio']:.2f} | {r['bare_gflops']:.0f} | {r['features_mb']:.0f} | "
              f"{r['peak_mb']:.0f} | {r['working_mb']:.0f} |")
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"setup": vars(args) | {"json": str(args.json)}, "machine": machine,
                                         "rows": rows}, indent=2, default=str))
        print(f"\nwrote {args.json}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
