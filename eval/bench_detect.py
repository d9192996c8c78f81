"""Overhead of the full Detector over the bare backbone forward, measured in one run.

    python eval/bench_detect.py [--backbone ViT-B-16] [--images 16] [--image-size 512] [--batch-size 8]

Random weights (``--pretrained random``): the timing does not depend on the weights. Both timings use the same
batch size, threads and input resolution; the detect timing starts from in-memory PIL images (so it includes
resize + normalisation, the forward pass, text scoring against cached text embeddings, upsampling, Gaussian
smoothing, resizing to the original frame, thresholds and explanations). Text embeddings are computed once by a
warm-up call, as in any real run. Prints a markdown table and the ratio detect / forward.
"""
from __future__ import annotations

import argparse
import json
import platform
import sys
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from zsad.detector import Detector
from zsad.data.preprocess import to_batch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from timing import timed  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backbone", default="ViT-B-16")
    parser.add_argument("--input-size", type=int, default=224)
    parser.add_argument("--images", type=int, default=16)
    parser.add_argument("--image-size", type=int, default=512, help="side of the in-memory test images")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--json", default=None, help="also write the numbers to this file")
    args = parser.parse_args()

    # zero-shot text scoring; "auto" would choose mutual scoring for a batch this size
    detector = Detector(args.backbone, "random", input_size=args.input_size, method="text",
                        batch_size=args.batch_size)
    rng = np.random.default_rng(0)
    images = [
        Image.fromarray((rng.random((args.image_size, args.image_size, 3)) * 255).astype(np.uint8))
        for _ in range(args.images)
    ]
    backbone = detector.backbone
    batches = [
        to_batch(images[i : i + args.batch_size], backbone.input_size, backbone.mean, backbone.std)
        for i in range(0, len(images), args.batch_size)
    ]

    @torch.inference_mode()
    def bare_forward():
        for batch in batches:
            backbone.model.encode_image(batch)

    detector.detect(images[: args.batch_size])  # warm-up: text embeddings, allocator
    bare_forward()
    forward_s = timed(bare_forward, args.repeats) / len(images)
    detect_s = timed(lambda: detector.detect(images), args.repeats) / len(images)
    numbers = {
        "backbone": args.backbone, "input_size": backbone.input_size, "images": len(images),
        "image_size": args.image_size, "batch_size": args.batch_size, "threads": torch.get_num_threads(),
        "cpu": platform.processor() or platform.machine(), "forward_s_per_image": forward_s,
        "detect_s_per_image": detect_s, "ratio": detect_s / forward_s,
    }
    print("| backbone | input | image | batch | forward s/img | detect s/img | detect / forward |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    print(f"| {args.backbone} (random) | {backbone.input_size} | {args.image_size} | {args.batch_size} | "
          f"{forward_s:.4f} | {detect_s:.4f} | {detect_s / forward_s:.3f} |")
    if args.json:
        with open(args.json, "w") as handle:
            json.dump(numbers, handle, indent=2)


if __name__ == "__main__":
    main()
