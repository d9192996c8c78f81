"""Writing a bundle's files: the graph in its format, the memory file, and the model card.

``zsad.deploy`` decides what is exported (which scorer, its text rows and memory, the thresholds); this module writes
it: ``write_graph`` exports an ``ExportGraph`` to ``graph.onnx`` (fp32, or INT8 weights) or OpenVINO's
``graph.xml`` + ``graph.bin``, saves the memory tensors of a graph that takes its memory as inputs
(``memory.npz``), and returns the ``GraphSpec`` that ``zsad-runtime.json`` records (files with their sha256).
``model_card`` renders what a quality engineer needs to know about a bundle (card.md, card.json).
"""
from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
from zsad_runtime.bundle import GRAPH_FORMATS, Bundle, GraphSpec, sha256_file

from zsad.errors import ZsadError
from zsad.export.convert import export_onnx, quantize_int8, to_openvino
from zsad.export.graphs import ExportGraph

MEMORY_FILE = "memory.npz"


def write_graph(graph: ExportGraph, folder: Path, fmt: str = "onnx", int8: bool = False) -> GraphSpec:
    """The graph's files in ``folder`` (see the module docstring)."""
    if fmt not in GRAPH_FORMATS:
        raise ZsadError(f"--format {fmt}: use one of {', '.join(GRAPH_FORMATS)}")
    if int8 and fmt != "onnx":
        raise ZsadError("--int8 is onnxruntime's dynamic quantisation of the backbone's weights and gives an ONNX "
                        "graph; use --format onnx with --int8 (OpenVINO runs that file too: --engine openvino)")
    folder.mkdir(parents=True, exist_ok=True)
    work = folder / "export-work"
    work.mkdir(exist_ok=True)
    try:
        # The final name from the start: an ONNX file names its external-data file, which must not be renamed.
        if int8:
            onnx_path = quantize_int8(export_onnx(graph, None, work / "fp32" / "graph.onnx"), work / "graph.onnx")
        else:
            onnx_path = export_onnx(graph, None, work / "graph.onnx")
        if fmt == "openvino":
            to_openvino(onnx_path, folder / "graph.xml")
            written = ["graph.xml", "graph.bin"]
        else:
            written = []
            for file in sorted(work.glob("graph.onnx*")):  # the graph and its external data, if any
                shutil.move(str(file), folder / file.name)
                written.append(file.name)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    memory = graph.memory_inputs()
    if memory:
        np.savez(folder / MEMORY_FILE, **{name: tensor.numpy() for name, tensor in memory.items()})
        written.append(MEMORY_FILE)
    described = graph.describe()
    return GraphSpec(file=written[0], format=fmt, precision="int8" if int8 else "fp32",
                     inputs=list(graph.input_names), outputs=list(graph.output_names),
                     files={name: sha256_file(folder / name) for name in written},
                     memory_file=MEMORY_FILE if memory else None, describe=described)


def model_card(bundle: Bundle, preset: dict[str, Any] | None, random_weights: bool,
               command: list[str] | None) -> dict[str, Any]:
    """What the bundle detects with, from what, how it decides, and its limits (card.json)."""
    backbone = bundle.settings.get("backbone", {})
    graph = bundle.graph.describe
    references = bundle.fingerprints.get("references")
    limits = [
        "Maps and scores equal zsad detect's with the same settings to 1e-4 in fp32 (tests/runtime); an INT8 graph "
        "deviates (eval/results/bench_runtime.json measures how much).",
        "The verdict rule decides over the images of each detect call: pass a whole batch, or export with "
        "--threshold T for a fixed threshold.",
        "Mutual scoring (MuSc), fusion of several evidences, and rule or LLM explanations are not in a bundle; "
        "they run in zsad.",
    ]
    if random_weights:
        limits.insert(0, "The backbone has random weights: its scores say nothing about real products.")
    rule = bundle.threshold
    return {
        "title": f"zsad {(graph.get('settings') or {}).get('method') or bundle.method} detector"
                 + (f" ({preset['name']} preset)" if preset else ""),
        "method": bundle.method,
        "object_name": bundle.object_name,
        "text_prompts": bundle.fingerprints.get("text", {}).get("prompts"),
        "preset": preset,
        "backbone": {"name": backbone.get("name"), "pretrained": backbone.get("pretrained"),
                     "input_size": bundle.preprocess.input_size, "random_weights": random_weights},
        "evidence": graph.get("settings"),
        "references": None if not references else {"images": len(references.get("files") or []),
                                                   "memory_sha256": references.get("memory", {}).get("sha256")},
        "verdict": {"rule": rule.kind, "value": rule.value, "min_batch": rule.min_batch,
                    "natural_threshold": bundle.natural_threshold},
        "postprocess": {"sigma": bundle.postprocess.sigma, "smooth_at": bundle.postprocess.smooth_at,
                        "align_corners": bundle.postprocess.align_corners, "padding": bundle.postprocess.padding},
        "graph": {"file": bundle.graph.file, "format": bundle.graph.format, "precision": bundle.graph.precision,
                  "memory_as_input": bundle.graph.memory_file is not None},
        "limitations": limits,
        "run": ["zsad-runtime detect BUNDLE IMAGES --out DIR", "python: zsad_runtime.Runtime(BUNDLE).detect(IMAGES)"],
        "exported_with": {"zsad_version": bundle.zsad_version, "command": command},
    }


def card_markdown(card: dict[str, Any]) -> str:
    preset = card.get("preset") or {}
    verdict = card["verdict"]
    rule = (f"fixed threshold {verdict['value']:g}" if verdict["rule"] == "fixed" else
            f"batch median + {verdict['value']:g} x 1.4826 x MAD of the image scores of each detect call "
            f"({verdict['min_batch']} images or more; below that "
            + (f"the natural threshold {verdict['natural_threshold']:g})" if verdict["natural_threshold"] is not None
               else "no verdict)"))
    prompts = f"; object name in the prompts: `{card['object_name']}`" if card.get("text_prompts") else ""
    lines = [f"# {card['title']}", "",
             f"- Method: `{card['method']}`{prompts}",
             f"- Backbone: {card['backbone']['name']} ({card['backbone']['pretrained']}), input "
             f"{card['backbone']['input_size']} px" + (" — random weights" if card["backbone"]["random_weights"]
                                                         else ""),
             f"- Verdict: {rule}",
             "- Maps: " + (f"Gaussian sigma {card['postprocess']['sigma']:g} px at the "
                           f"{card['postprocess']['smooth_at']} size ({card['postprocess']['padding']} border)"
                           if card["postprocess"]["sigma"] > 0 else "bilinear upsampling, no smoothing"),
             f"- Graph: {card['graph']['file']} ({card['graph']['format']}, {card['graph']['precision']})"]
    if card.get("references"):
        lines.append(f"- References: {card['references']['images']} good images in the memory (sha256 "
                     f"{str(card['references']['memory_sha256'])[:16]}...)")
    if preset:
        lines += ["", f"## Preset `{preset['name']}`: {preset.get('title', '')}", "",
                  f"Paper: {preset.get('paper', '')}", "", f"Code: {preset.get('code', '')}", "",
                  str(preset.get("protocol", "")).strip()]
    lines += ["", "## Limitations", "", *[f"- {item}" for item in card["limitations"]], "", "## Run", "",
              "```bash", card["run"][0], "```", "",
              f"Exported with zsad {card['exported_with']['zsad_version']}"
              + (f": `{' '.join(card['exported_with']['command'])}`" if card['exported_with']['command'] else ""), ""]
    return "\n".join(lines)


def write_card(folder: Path, card: dict[str, Any]) -> None:
    (folder / "card.json").write_text(json.dumps(card, indent=1) + "\n")
    (folder / "card.md").write_text(card_markdown(card))
