"""What one move of the demo's threshold slider costs for a run of 32 images, on the machine at hand.

A run of 32 synthetic pill images (``zsad synth``, 256 px) is scored once with the random ``tiny-clip``; then the
slider's handler is replayed: ``apply_threshold`` and every view it returns (gallery tiles, the selected image,
table, summary, results.csv), plus Gradio's own processing of those outputs (``Gallery``, ``Image`` and
``Dataframe`` ``postprocess``: copying files into its cache, encoding the selected image), which is what the page
waits for besides the network. Moves sweep the slider from one end to the other and back (each position flips some
verdicts); "first sweep" draws the tiles of verdicts not seen before, later sweeps find every tile cached.

Goal (issue 17): under 0.3 s per move for 32 images on 2 cores. Before this change a move re-blended and re-encoded
every overlay (2.6-2.9 s for 16 images).

    python eval/bench_demo_slider.py --json eval/results/bench_demo_slider.json
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import tempfile
import time
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=32)
    parser.add_argument("--positions", type=int, default=24, help="slider positions per sweep")
    parser.add_argument("--sweeps", type=int, default=3)
    parser.add_argument("--json", default=None, help="also write the numbers to this file")
    args = parser.parse_args()

    import gradio as gr
    import numpy as np
    import pandas as pd
    import torch

    from zsad.data.images import list_images
    from zsad.data.synth import generate_dataset
    from zsad.demo.session import (
        TABLE_COLUMNS, DemoSettings, DetectorCache, RunRequest, apply_threshold, detail, gallery, run_detection,
        slider_bounds, summary, table_rows, write_csv,
    )

    threads = torch.get_num_threads()
    work = Path(tempfile.mkdtemp(prefix="zsad-bench-slider-"))
    root = generate_dataset(work, categories=["pill"], n_train=1, n_test_good=args.images - 5, n_test_defect=1,
                            size=256, seed=0) / "pill" / "test"
    paths = [str(p) for p in list_images([root])][: args.images]
    settings = DemoSettings(backbone="tiny-clip", device="cpu", max_images=args.images)
    start = time.perf_counter()
    state = run_detection(DetectorCache(), RunRequest(images=paths, object_name="pill"), settings)
    run_s = time.perf_counter() - start

    with gr.Blocks():
        components = (gr.Gallery(format="png"), gr.Image(type="pil", format="png"), gr.Dataframe())

    def show(state, index=0):
        """The slider handler's outputs, as the page gets them (views + Gradio's postprocessing)."""
        picture, text, rules = detail(state, index)
        table = pd.DataFrame(table_rows(state), columns=TABLE_COLUMNS)
        outputs = (gallery(state), table, write_csv(state), summary(state), picture, text, rules)
        components[0].postprocess(outputs[0])
        components[1].postprocess(picture)
        components[2].postprocess(table)
        return outputs

    start = time.perf_counter()
    show(state)  # what the run shows: the first tiles and heat maps
    first_view_s = time.perf_counter() - start
    low, high, _ = slider_bounds(state)
    forth = list(np.linspace(low, high, args.positions))
    sweeps = []
    for sweep in range(args.sweeps):
        times = []
        for value in forth if sweep % 2 == 0 else forth[::-1]:
            start = time.perf_counter()
            state = apply_threshold(state, float(value))
            show(state, index=len(paths) // 2)
            times.append(time.perf_counter() - start)
        sweeps.append({"median_s": statistics.median(times), "max_s": max(times), "moves": len(times)})
    # the old way, for scale: every move blended and encoded every overlay again (overlay() per image, PIL images
    # handed to the gallery, which encodes each one)
    from dataclasses import replace

    from zsad.outputs import overlay

    full = []
    for value in forth[:: max(1, len(forth) // 3)][:3]:
        start = time.perf_counter()
        state = apply_threshold(state, float(value))
        tiles = [(overlay(image, r if r.is_anomalous else replace(r, regions=()), state.value_range), r.name)
                 for r, image in zip(state.results, state.images)]
        components[0].postprocess(tiles)
        full.append(time.perf_counter() - start)
    verdicts = {r.verdict for r in state.results}
    row = {"images": len(paths), "torch_threads": threads, "run_s": run_s, "first_view_s": first_view_s,
           "first_sweep": sweeps[0], "later_sweeps": sweeps[1:], "tiles_drawn": state.renders.drawn,
           "full_redraw_gallery_only_median_s": statistics.median(full),
           "goal": "a slider move under 0.3 s for 32 images on 2 cores"}
    print(f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, torch threads {threads}, "
          f"{len(paths)} images (run {run_s:.1f} s, first view {first_view_s:.2f} s, "
          f"{state.renders.drawn} tiles drawn, final verdicts {sorted(verdicts)})")
    print("| sweep | moves | median s per move | max s per move |")
    print("|---|---:|---:|---:|")
    for number, sweep in enumerate(sweeps, start=1):
        label = "1 (draws new tiles)" if number == 1 else f"{number} (cached)"
        print(f"| {label} | {sweep['moves']} | {sweep['median_s']:.3f} | {sweep['max_s']:.3f} |")
    print(f"| the old way: every overlay redrawn and encoded (gallery only) | {len(full)} | "
          f"{statistics.median(full):.3f} | {max(full):.3f} |")
    if args.json:
        with open(args.json, "w") as handle:
            json.dump({"cpu": platform.processor() or platform.machine(), "cores": os.cpu_count(), **row}, handle,
                      indent=2)


if __name__ == "__main__":
    main()
