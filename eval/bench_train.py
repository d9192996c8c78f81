"""Training-step cost of AnomalyCLIP prompt learning on this machine: ViT-B-16 (random weights) at 224 and 336.

Each setting runs in its own process (peak RSS = that process's ru_maxrss): build the backbone, one warm-up step,
then ``--steps`` timed steps (vision forward without gradients, learned-prompt text forward + backward, the
official losses, Adam step). Writes ``eval/results/bench_train.json``.

    python eval/bench_train.py --sizes 224 336 --batch-size 2 --steps 3
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


def one(model: str, size: int, batch: int, steps: int, threads: int | None) -> dict:
    import torch

    from zsad.backbones import BackboneSpec, load_backbone
    from zsad.learning.prompt_learner import AnomalyCLIPPromptLearner, PromptLearnerConfig
    from zsad.learning.train import TrainConfig, batch_losses

    if threads:
        torch.set_num_threads(threads)
    torch.manual_seed(0)
    backbone = load_backbone(BackboneSpec(model, pretrained="random", input_size=size, dpam_layer=9,
                                          pos_interpolation="bilinear", cls_ln_post=False))
    backbone.model.requires_grad_(False)
    learner = AnomalyCLIPPromptLearner(backbone.model, backbone.tokenizer, PromptLearnerConfig())
    optimizer = torch.optim.Adam(learner.parameters(), lr=1e-3, betas=(0.5, 0.999))
    config = TrainConfig()
    images = torch.randn(batch, 3, size, size)
    masks = (torch.rand(batch, size, size) > 0.9).float()
    has_mask = torch.ones(batch, dtype=torch.bool)
    labels = torch.arange(batch) % 2
    times = []
    for step in range(steps + 1):
        start = time.perf_counter()
        with torch.no_grad():
            features = backbone(images)
        text = learner(backbone.model)
        p_loss, i_loss = batch_losses(text, features, masks, has_mask, labels, config, size)
        optimizer.zero_grad()
        (p_loss + i_loss).backward()
        optimizer.step()
        if step:
            times.append(time.perf_counter() - start)
    return {"model": model, "input_size": size, "batch_size": batch, "steps": steps,
            "step_seconds_mean": sum(times) / len(times), "step_seconds_min": min(times),
            "seconds_per_image": sum(times) / len(times) / batch,
            "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
            "torch_threads": torch.get_num_threads()}


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", default="ViT-B-16")
    parser.add_argument("--sizes", type=int, nargs="+", default=[224, 336])
    parser.add_argument("--batch-size", type=int, default=2)
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--out", default=str(Path(__file__).parent / "results" / "bench_train.json"))
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(one(args.model, args.sizes[0], args.batch_size, args.steps, args.threads)))
        return 0
    rows = []
    for size in args.sizes:
        command = [sys.executable, __file__, "--child", "--model", args.model, "--sizes", str(size),
                   "--batch-size", str(args.batch_size), "--steps", str(args.steps)]
        if args.threads:
            command += ["--threads", str(args.threads)]
        done = subprocess.run(command, capture_output=True, text=True, check=True)
        rows.append(json.loads(done.stdout.strip().splitlines()[-1]))
        print(rows[-1])
    result = {"benchmark": "AnomalyCLIP prompt-learning training step (random weights, DPAM 9 of 12 blocks, layers "
                           "3/6/9/12, n_ctx 12, depth 9, losses at input size)",
              "machine": {"platform": platform.platform(), "processor": platform.processor(),
                          "python": platform.python_version()},
              "results": rows}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
