"""Deployment runtimes: ms/image of an exported scorer graph in torch eager, onnxruntime and OpenVINO (fp32, and INT8
by onnxruntime's dynamic quantisation), at batch 1 and 8, on 1 thread and on all; the maps' and scores' deviation of
each from torch eager; the installed size of each runtime.

Graphs (``zsad.export``), on random weights (no pretrained weights can be loaded here; latency does not depend on
the weights' values, but the deviations of INT8 do, so treat those as indicative):

- ``vit-b-16``: open_clip ViT-B-16 (``pretrained="random"``) at 224 px, zero-shot text scoring (``TextGraph``,
  WinCLIP's prompt ensemble for "object").
- ``dinov2-small``: transformers' Dinov2Model with dinov2-small's shape (384 wide, 12 blocks, 6 heads, patch 14;
  built from a config, offline) at 448 px with the hub position rule, AnomalyDINO's few-shot scoring against a
  1-shot memory baked into the graph (``ReferenceGraph``, cosine, top 1 %).
- ``tiny-clip``, ``tiny-dinov2``: the test models, for a quick run (``--models tiny-clip tiny-dinov2``).

Inputs are generated product images (``zsad synth``, preprocessed as the detector does). Times are the median of
``--repeats`` calls after one warm-up call per (runtime, batch, threads), divided by the batch; the machine's load
average is recorded, since other processes on a shared machine slow every row (the all-threads rows most). Sizes are
the files each distribution installed (``importlib.metadata``), alone and with everything it requires, and those of
each way of running (``ENVIRONMENTS``: zsad's model stack, zsad-runtime with each engine).

    python eval/bench_runtime.py                       # ~10 minutes on 2 cores; writes eval/results/bench_runtime.json
    python eval/bench_runtime.py --models tiny-clip tiny-dinov2 --repeats 1 --out /tmp/bench.json   # a minute
    python eval/bench_runtime.py --sizes-only          # the installed sizes alone, into the recorded JSON
"""
from __future__ import annotations

import argparse
import importlib.metadata
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from timing import cpu_name  # noqa: E402

import numpy as np

REPO = Path(__file__).resolve().parents[1]
RUNTIME_PACKAGES = {"torch": "torch", "onnxruntime": "onnxruntime", "openvino": "openvino"}
# What each way of running installs: the distributions named and everything they require (no extras). zsad's model
# stack is its torch-side requirements; zsad-runtime's environment is its requirements (numpy, Pillow:
# runtime/pyproject.toml) and one engine.
ENVIRONMENTS = {
    "zsad model stack (torch, torchvision, open_clip_torch, transformers)":
        ["torch", "torchvision", "open-clip-torch", "transformers"],
    "zsad-runtime with onnxruntime (numpy, pillow, onnxruntime)": ["numpy", "pillow", "onnxruntime"],
    "zsad-runtime with openvino (numpy, pillow, openvino)": ["numpy", "pillow", "openvino"],
}


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=["vit-b-16", "dinov2-small"],
                        choices=["vit-b-16", "dinov2-small", "tiny-clip", "tiny-dinov2"])
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 8])
    parser.add_argument("--threads", type=int, nargs="+", default=None,
                        help="thread counts (default: 1 and all cores)")
    parser.add_argument("--repeats", type=int, default=2, help="timed calls per setting, after one warm-up call")
    parser.add_argument("--no-int8", action="store_true", help="skip the INT8 rows")
    parser.add_argument("--out", type=Path, default=REPO / "eval" / "results" / "bench_runtime.json")
    parser.add_argument("--sizes-only", action="store_true",
                        help="recompute only the installed sizes (they do not depend on the timed run) into --out")
    return parser.parse_args(argv)


# -- what is measured ----------------------------------------------------------------------------------------------

def build_graph(name: str, images):
    """(graph, preprocessed images [8, 3, S, S] as a torch tensor) for a model name; images: PIL product images."""
    import torch

    from zsad.backbones import BackboneSpec, load_backbone
    from zsad.backbones.dinov2 import DINOv2Backbone, TinyDINOv2Config, build_tiny_dinov2
    from zsad.data.preprocess import to_batch
    from zsad.export.graphs import ReferenceGraph, TextGraph
    from zsad.scoring.reference import ReferenceMemory
    from zsad.scoring.text_heads import load_text_head

    if name == "dinov2-small":  # dinov2-small's published shape, random weights, no hub access
        model = build_tiny_dinov2(TinyDINOv2Config(image_size=518, patch_size=14, hidden_size=384, layers=12, heads=6))
        backbone = DINOv2Backbone(model, "dinov2-small (random)", 448, pos_interpolation="dinov2-hub")
    elif name == "vit-b-16":
        backbone = load_backbone(BackboneSpec("ViT-B-16", pretrained="random", input_size=224))
    else:
        backbone = load_backbone(BackboneSpec(name, input_size=112 if "dinov2" in name else 128))
    batch = to_batch(images[1:9], backbone.input_size, backbone.mean, backbone.std)
    with torch.inference_mode():
        if backbone.has_text:
            return TextGraph(backbone, load_text_head("winclip", backbone).embeddings("object")), batch
        reference = to_batch(images[:1], backbone.input_size, backbone.mean, backbone.std)
        memory = ReferenceMemory.build(backbone(reference).patch_tokens[:, -1:])
    return ReferenceGraph(backbone, memory), batch


def runners(graph, folder: Path, int8: bool) -> dict[str, tuple[str, object]]:
    """runtime label -> (precision, make(threads) -> callable(numpy images) -> (maps, scores))."""
    import torch

    from zsad.export.convert import export_onnx, quantize_int8, to_openvino
    from zsad_runtime.engines import OnnxRuntimeGraph, OpenVINOGraph

    def torch_eager(threads: int):
        torch.set_num_threads(threads)

        def run(images: np.ndarray):
            with torch.inference_mode():
                return tuple(t.numpy() for t in graph(torch.from_numpy(images)))

        return run

    onnx_path = export_onnx(graph, None, folder / "graph.onnx")
    made = {"torch eager": ("fp32", torch_eager),
            "onnxruntime": ("fp32", lambda threads: OnnxRuntimeGraph(onnx_path, threads))}
    try:
        xml = to_openvino(onnx_path)
        made["openvino"] = ("fp32", lambda threads: OpenVINOGraph(xml, threads))
    except Exception as error:  # openvino not installed, or the conversion failed: say so in the table
        print(f"openvino skipped: {error}", file=sys.stderr)
    if int8:
        int8_path = quantize_int8(onnx_path, folder / "graph-int8.onnx")
        made["onnxruntime int8"] = ("int8", lambda threads: OnnxRuntimeGraph(int8_path, threads))
    return made


def timed(run, images: np.ndarray, repeats: int) -> tuple[float, tuple[np.ndarray, ...]]:
    """(median seconds per call after one warm-up call, the warm-up's outputs)."""
    outputs = run(images)
    samples = []
    for _ in range(repeats):
        start = time.perf_counter()
        run(images)
        samples.append(time.perf_counter() - start)
    return statistics.median(samples), outputs


def bench_model(name: str, images, args, threads_list: list[int]) -> list[dict]:
    graph, batch = build_graph(name, images)
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        tick = time.perf_counter()
        made = runners(graph, Path(folder), not args.no_int8)
        export_s = time.perf_counter() - tick
        reference = None
        for runtime, (precision, make) in made.items():
            for threads in threads_list:
                run = make(threads)
                for size in args.batches:
                    images_np = np.ascontiguousarray(batch[:size].numpy())
                    seconds, (maps, scores) = timed(run, images_np, args.repeats)
                    if runtime == "torch eager" and size == max(args.batches) and reference is None:
                        reference = (maps, scores)
                    rows.append({"model": name, "graph": graph.method, "input_size": graph.input_size,
                                 "runtime": runtime, "precision": precision, "batch": size, "threads": threads,
                                 "ms_per_image": 1000 * seconds / size, "outputs": (maps, scores)})
    for row in rows:  # deviation from torch eager on the same images (the largest batch holds the others)
        maps, scores = row.pop("outputs")
        ref_maps, ref_scores = reference[0][: len(maps)], reference[1][: len(scores)]
        row["max_map_deviation"] = float(np.abs(maps - ref_maps).max())
        row["max_score_deviation"] = float(np.abs(scores - ref_scores).max())
        row["map_range"] = float(ref_maps.max() - ref_maps.min())
        row["export_s"] = round(export_s, 1)
    for row in rows:
        base = next(r for r in rows if r["runtime"] == "torch eager" and r["batch"] == row["batch"]
                    and r["threads"] == row["threads"])
        row["vs_torch"] = row["ms_per_image"] / base["ms_per_image"]
    return rows


# -- install sizes -------------------------------------------------------------------------------------------------

def _installed_bytes(dist: importlib.metadata.Distribution) -> int:
    total = 0
    for file in dist.files or []:
        try:
            total += Path(dist.locate_file(file)).stat().st_size
        except OSError:
            pass
    return total


def _requirements(dist: importlib.metadata.Distribution) -> list[str]:
    from packaging.requirements import Requirement

    names = []
    for text in dist.requires or []:
        requirement = Requirement(text)
        if requirement.marker is None or requirement.marker.evaluate({"extra": ""}):
            names.append(requirement.name)
    return names


def _closure(names: list[str]) -> dict[str, importlib.metadata.Distribution]:
    """The installed distributions ``names`` and everything they require (no extras), by normalised name."""
    seen: dict[str, importlib.metadata.Distribution] = {}
    todo = []
    for name in names:
        try:
            todo.append(importlib.metadata.distribution(name))
        except importlib.metadata.PackageNotFoundError:
            pass
    while todo:
        dist = todo.pop()
        key = dist.metadata["Name"].lower().replace("_", "-")
        if key in seen:
            continue
        seen[key] = dist
        for name in _requirements(dist):
            try:
                todo.append(importlib.metadata.distribution(name))
            except importlib.metadata.PackageNotFoundError:
                pass
    return seen


def install_sizes(package: str) -> dict:
    """MB installed by the distribution alone and by it with every distribution it requires (no extras)."""
    try:
        root = importlib.metadata.distribution(package)
    except importlib.metadata.PackageNotFoundError:
        return {"package": package, "installed": False}
    seen = _closure([package])
    return {"package": package, "version": root.version, "installed": True,
            "alone_mb": round(_installed_bytes(root) / 2**20, 1),
            "with_requirements_mb": round(sum(_installed_bytes(d) for d in seen.values()) / 2**20, 1),
            "requirements": sorted(k for k in seen if k != package)}


def environment_sizes() -> list[dict]:
    """MB installed by each way of running (``ENVIRONMENTS``), each distribution counted once."""
    out = []
    for label, names in ENVIRONMENTS.items():
        seen = _closure(names)
        out.append({"environment": label, "mb": round(sum(_installed_bytes(d) for d in seen.values()) / 2**20, 1),
                    "distributions": sorted(seen)})
    return out


# -- report --------------------------------------------------------------------------------------------------------

def markdown(data: dict) -> str:
    machine = data["machine"]
    load = machine["load_average_1min"]
    lines = [f"Machine: {machine['cpu']}, {machine['cores']} cores, load average {load['before']} before and "
             f"{load['after']} after the run; random weights; median of {data['setup']['repeats']} calls after a "
             "warm-up.", "",
             "| model | graph | runtime | precision | batch | threads | ms/image | vs torch | max map dev | "
             "max score dev |", "|---|---|---|---|---|---|---|---|---|---|"]
    for r in data["rows"]:
        lines.append(f"| {r['model']} {r['input_size']} px | {r['graph']} | {r['runtime']} | {r['precision']} | "
                     f"{r['batch']} | {r['threads']} | {r['ms_per_image']:.1f} | {r['vs_torch']:.2f}x | "
                     f"{r['max_map_deviation']:.1e} (range {r['map_range']:.2g}) | {r['max_score_deviation']:.1e} |")
    lines += ["", "| runtime | version | installed alone (MB) | with its requirements (MB) |", "|---|---|---|---|"]
    for s in data["install_sizes"]:
        if s["installed"]:
            lines.append(f"| {s['package']} | {s['version']} | {s['alone_mb']} | {s['with_requirements_mb']} |")
    lines += ["", "| environment | installed (MB) |", "|---|---|"]
    lines += [f"| {e['environment']} | {e['mb']} |" for e in data.get("environments", [])]
    return "\n".join(lines)


def main(argv=None) -> None:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    args = parse_args(argv)
    if args.sizes_only:
        data = json.loads(args.out.read_text())
        data.update(install_sizes=[install_sizes(p) for p in RUNTIME_PACKAGES.values()],
                    environments=environment_sizes())
        args.out.write_text(json.dumps(data, indent=1) + "\n")
        print(markdown(data))
        return
    import torch
    from PIL import Image

    from zsad.data.synth import generate_dataset

    threads_list = args.threads or sorted({1, os.cpu_count() or 1})
    with tempfile.TemporaryDirectory() as folder:
        generate_dataset(folder, categories=["pill"], n_train=1, n_test_good=6, n_test_defect=1, size=448, seed=0)
        paths = sorted((Path(folder) / "pill" / "train").rglob("*.png")) + sorted(
            (Path(folder) / "pill" / "test").rglob("*.png"))
        images = [Image.open(p).convert("RGB") for p in paths]
    if len(images) < 1 + max(args.batches):
        raise SystemExit(f"need {1 + max(args.batches)} generated images, got {len(images)}")
    load_before = os.getloadavg()
    start = time.perf_counter()
    rows = []
    for name in args.models:
        rows += bench_model(name, images, args, threads_list)
        print(f"{name}: done after {time.perf_counter() - start:.0f} s", file=sys.stderr)
    data = {
        "setup": {"models": args.models, "batches": args.batches, "threads": threads_list, "repeats": args.repeats,
                  "weights": "random", "total_s": round(time.perf_counter() - start, 1)},
        "machine": {"cpu": cpu_name(), "cores": os.cpu_count(), "platform": platform.platform(),
                    "torch": torch.__version__,
                    # other processes on the machine: a load above the core count slows every row, more so the
                    # rows on all threads
                    "load_average_1min": {"before": round(load_before[0], 2), "after": round(os.getloadavg()[0], 2)}},
        "rows": rows,
        "install_sizes": [install_sizes(p) for p in RUNTIME_PACKAGES.values()],
        "environments": environment_sizes(),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(data, indent=1) + "\n")
    print(markdown(data))


if __name__ == "__main__":
    main()
