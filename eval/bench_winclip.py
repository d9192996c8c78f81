"""Exact WinCLIP's cost against one plain forward of the same images, measured in one run.

    python eval/bench_winclip.py [--backbone ViT-B-16-plus-240] [--input-size 240] [--images 8] [--json PATH]

Random weights (the timing does not depend on them): ``open_clip.create_model(NAME, pretrained=None)``. Per image,
median over repeats, wall clock:
- plain: open_clip's ``encode_image`` (one forward of the CLS + all patch tokens);
- windows: zsad's backbone with WinCLIP's windows (that forward plus the window passes, sizes ``--scales``);
- scoring: WinCLIP's zero-shot maps and scores from those features, and WinCLIP+'s with ``--shots`` references.
Ratio = windows / plain. The token count alone predicts ~ (sum over k of n_windows(k) * (k*k + 1)) / (h*w + 1) + 1;
the script prints that too. Prints a markdown table; ``--json`` writes the numbers.
"""
from __future__ import annotations

import argparse
import json
import platform
import sys
from pathlib import Path

import open_clip
import torch
import torch.nn.functional as F

from zsad.backbones.clip import CLIPBackbone, window_patch_index
from zsad.scoring.winclip import WinCLIPConfig, WinCLIPMemory, winclip

sys.path.insert(0, str(Path(__file__).resolve().parent))
from timing import timed  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backbone", default="ViT-B-16-plus-240")
    parser.add_argument("--input-size", type=int, default=240)
    parser.add_argument("--scales", type=int, nargs="+", default=[2, 3])
    parser.add_argument("--images", type=int, default=8)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--shots", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--json", default=None)
    args = parser.parse_args()

    torch.manual_seed(0)
    model = open_clip.create_model(args.backbone, pretrained=None).eval().to(args.device)
    tokenizer = open_clip.get_tokenizer(args.backbone)
    backbone = CLIPBackbone(model, tokenizer, args.backbone, args.input_size, windows=tuple(args.scales))
    size = backbone.input_size
    generator = torch.Generator().manual_seed(0)
    batches = [
        torch.randn(args.batch_size, 3, size, size, generator=generator).to(args.device)
        for _ in range(max(1, args.images // args.batch_size))
    ]
    n_images = len(batches) * args.batch_size
    text = F.normalize(torch.randn(2, backbone.embed_dim, generator=generator), dim=-1).to(args.device)
    sync = torch.cuda.synchronize if args.device.startswith("cuda") else (lambda: None)

    @torch.inference_mode()
    def plain():
        for batch in batches:
            model.encode_image(batch)
        sync()

    @torch.inference_mode()
    def windowed():
        for batch in batches:
            backbone(batch)
        sync()

    with torch.inference_mode():
        features = [backbone(batch) for batch in batches]
        references = backbone(torch.randn(args.shots, 3, size, size, generator=generator).to(args.device))
        memory = WinCLIPMemory.build(references)
    config = WinCLIPConfig(scales=tuple(args.scales))

    @torch.inference_mode()
    def zero_shot():
        for f in features:
            winclip(f, text, None, config)
        sync()

    @torch.inference_mode()
    def few_shot():
        for f in features:
            winclip(f, text, memory, config)
        sync()

    plain(), windowed()  # warm-up
    # Alternate the two timings, so load from other processes on a shared machine hits both alike.
    plain_s, windows_s = [], []
    for _ in range(args.repeats):
        plain_s.append(timed(plain, 1) / n_images)
        windows_s.append(timed(windowed, 1) / n_images)
    plain_s, windows_s = sorted(plain_s)[len(plain_s) // 2], sorted(windows_s)[len(windows_s) // 2]
    zero_s = timed(zero_shot, args.repeats) / n_images
    few_s = timed(few_shot, args.repeats) / n_images

    grid = (size // backbone.patch_size,) * 2
    tokens = sum(window_patch_index(grid, k).shape[0] * (k * k + 1) for k in args.scales)
    result = {
        "backbone": args.backbone,
        "input_size": size,
        "grid": list(grid),
        "scales": list(args.scales),
        "windows_per_image": {str(k): int(window_patch_index(grid, k).shape[0]) for k in args.scales},
        "images": n_images,
        "batch_size": args.batch_size,
        "shots": args.shots,
        "device": args.device if args.device != "cpu" else f"cpu ({torch.get_num_threads()} threads)",
        "machine": platform.processor() or platform.machine(),
        "torch": torch.__version__,
        "plain_forward_s": plain_s,
        "windowed_forward_s": windows_s,
        "ratio": windows_s / plain_s,
        "token_ratio": 1 + tokens / (grid[0] * grid[1] + 1),
        "winclip_scoring_s": zero_s,
        "winclip_plus_scoring_s": few_s,
    }
    print("| per image | seconds | x plain forward |")
    print("|---|---|---|")
    print(f"| plain forward (open_clip encode_image) | {plain_s:.4f} | 1.00 |")
    print(f"| forward + WinCLIP windows {args.scales} | {windows_s:.4f} | {result['ratio']:.2f} |")
    print(f"| WinCLIP scoring (zero-shot) | {zero_s:.5f} | {zero_s / plain_s:.4f} |")
    print(f"| WinCLIP+ scoring ({args.shots} shots) | {few_s:.5f} | {few_s / plain_s:.4f} |")
    print(f"token-count prediction of the ratio: {result['token_ratio']:.2f}")
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
