"""Few-shot scoring time per image against the backbone's forward time, measured in one run.

    python eval/bench_fewshot.py [--backbone ViT-B-16] [--shots 1 4 16] [--images 16]

Random weights (the timing does not depend on them). For each k, a memory of k reference images is built with the
Detector's default few-shot settings (last layer, cosine, no coreset; ``--coreset`` to subsample), then the
nearest-neighbour scoring of a batch of test features is timed against the bare backbone forward of the same
images (open_clip's ``encode_image``). Prints a markdown table: overhead = scoring time / forward time.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch

from zsad.detector import Detector
from zsad.scoring.fewshot import reference_tokens as fewshot_tokens
from zsad.scoring.reference import ReferenceMemory

sys.path.insert(0, str(Path(__file__).resolve().parent))
from timing import timed  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backbone", default="ViT-B-16")
    parser.add_argument("--input-size", type=int, default=224)
    parser.add_argument("--shots", type=int, nargs="+", default=[1, 4, 16])
    parser.add_argument("--images", type=int, default=16)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--coreset", type=float, default=None)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--json", default=None)
    args = parser.parse_args()

    detector = Detector(args.backbone, "random", input_size=args.input_size, batch_size=args.batch_size,
                        coreset=args.coreset)
    fewshot = detector.config.scorer("fewshot")
    backbone = detector.backbone

    def reference_tokens(features):
        return fewshot_tokens(fewshot, detector.context, features)
    generator = torch.Generator().manual_seed(0)
    size = backbone.input_size
    batches = [torch.randn(args.batch_size, 3, size, size, generator=generator)
               for _ in range(args.images // args.batch_size)]

    @torch.inference_mode()
    def forward():
        for batch in batches:
            backbone.model.encode_image(batch)

    with torch.inference_mode():
        test_tokens = [reference_tokens(backbone(batch)) for batch in batches]
    forward()
    forward_s = timed(forward, args.repeats) / args.images
    rows = []
    for shots in args.shots:
        with torch.inference_mode():
            refs = torch.randn(shots, 3, size, size, generator=generator)
            memory = ReferenceMemory.build(reference_tokens(backbone(refs)), fewshot.memory_config())

        def score():
            for tokens in test_tokens:
                memory.score(tokens)

        score()
        score_s = timed(score, args.repeats) / args.images
        rows.append({"shots": shots, "memory_patches": memory.num_patches, "layers": memory.num_layers,
                     "forward_s": forward_s, "fewshot_s": score_s, "overhead": score_s / forward_s})
    print(f"{args.backbone} (random) at {size} px, batch {args.batch_size}, {torch.get_num_threads()} threads")
    print("| k | memory patches x layers | forward s/img | few-shot scoring s/img | overhead |")
    print("|---:|---:|---:|---:|---:|")
    for r in rows:
        print(f"| {r['shots']} | {r['memory_patches']} x {r['layers']} | {r['forward_s']:.4f} | "
              f"{r['fewshot_s']:.5f} | {100 * r['overhead']:.1f} % |")
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
