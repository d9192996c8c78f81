"""The deployment cases: detectors as a user builds them (a preset or a method on a tiny backbone, on the CPU in
fp32, as ``zsad export`` builds them), each exported, run by ``zsad_runtime.Runtime`` and by ``Detector.detect`` on the
same images (the ``deployed`` fixture of this folder's conftest)."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from zsad.detector import Detector

OBJECT = "pill"
TINY_CLIP = {"backbone": "tiny-clip", "pretrained": None}
# The presets of this checkout by path: ``zsad.preset_files`` resolves to wherever zsad was installed from.
PRESETS = Path(__file__).resolve().parents[2] / "presets"


@dataclass(frozen=True)
class Spec:
    preset: str | None = None
    options: dict[str, Any] = field(default_factory=dict)
    references: bool = False
    fmt: str = "onnx"
    memory: bool | None = None  # the reference memory as a graph input (True), baked (False) or by size (None)
    adapter: bool = False  # --prompts learned: the tiny test adapter


# Every exportable preset (winclip, winclip+, anomalyclip with hand-written and learned prompts, anomalydino) on the
# tiny model of its family with sizes that fit it, the plain text and few-shot methods, a fixed threshold, the
# conformal rules (the references' leave-one-out scores in the bundle), the memory as a graph input, and an
# OpenVINO bundle.
SPECS = {
    "text": Spec(options={**TINY_CLIP, "method": "text", "input_size": 64}),
    "winclip": Spec("winclip", {**TINY_CLIP, "input_size": 64}),
    "winclip+": Spec("winclip+", {**TINY_CLIP, "input_size": 64}, references=True, memory=True),
    "anomalyclip": Spec("anomalyclip", {**TINY_CLIP, "input_size": 64, "layers": (2, 4), "dpam_layer": 3}),
    "anomalyclip-learned": Spec("anomalyclip", adapter=True),
    "anomalydino": Spec("anomalydino", {"backbone": "tiny-dinov2", "input_size": 56}, references=True),
    "anomalydino-openvino": Spec("anomalydino", {"backbone": "tiny-dinov2", "input_size": 56}, references=True,
                                 fmt="openvino"),
    "anomalydino-conformal": Spec("anomalydino", {"backbone": "tiny-dinov2", "input_size": 56,
                                                  "threshold_rule": "conformal", "mask_rule": "conformal"},
                                  references=True),
    "fewshot-l2-fixed": Spec(options={**TINY_CLIP, "method": "fewshot", "input_size": 64, "reference_metric": "l2",
                                      "reference": {"image_score": "max"}, "reference_layers": (2, 4),
                                      "layers": (2, 4), "threshold": 0.5}, references=True, memory=True),
}
EXPORTED_PRESETS = {spec.preset for spec in SPECS.values() if spec.preset}
REFUSED_PRESETS = {"musc": "mutual scoring", "musc-dinov2": "mutual scoring", "zsad": "fused evidence"}


@dataclass
class Deployed:
    bundle: Path
    detector: Detector
    runtime: Any  # zsad_runtime.Runtime
    images: list[Path]
    references: list[Path] | None
    expected: list  # Detector.detect's results
    got: list  # Runtime.detect's results


def preset(name: str) -> str:
    return str(PRESETS / f"{name}.yaml")


RUNTIME_RULES = {"threshold_rule": "mad", "mask_rule": "mad"}  # what the runtime decides with (zsad.deploy)


def make_detector(spec: Spec, adapter: Path | None = None) -> Detector:
    options = {**RUNTIME_RULES, **spec.options}
    if spec.adapter:
        options["prompts"] = f"learned:{adapter}"
    return Detector(preset=preset(spec.preset) if spec.preset else None, device="cpu", precision="fp32", **options)


