"""From a configured ``Detector`` to a deployment bundle that ``zsad-runtime`` runs without torch.

The wiring from a detector to a graph lives here (the detector layer: ``zsad.export`` may not import the detector):
the scorer ``detect`` would run is planned and started as ``detect`` starts it (``zsad.scoring.planning``, the
detector's ``ScorerContext``: its text rows for the object name, its reference memory, its settings), and its graph
is built from the detector's own backbone (``graph_of``). The bundle then records what ``detect`` resolves around
the scorer: the preprocessing, the method's post-processing (``Detector.postprocess_for``), the verdict rule with
the scorer's natural threshold, every setting as results.json records it, and fingerprints of the preset, the
adapter, the references and memory, the text rows and the weights.

Decisions:

- Mutual scoring (MuSc) is refused with the reason: an image's map depends on every other image of the batch, and
  its batch-bounded blocks and data-dependent guards do not fit one graph (``zsad.export.graphs``). Exporting the
  backbone alone (``FeatureGraph``) would leave a runtime that cannot score; so ``zsad export`` says to use
  ``zsad detect`` for MuSc, or a per-image method.
- Fusion (``--fuse``, the ``zsad`` preset) is refused too: its robust scales are taken over the run and ``auto``
  fuses mutual scoring in for batches of 8 or more, so no per-image bundle would give ``zsad detect``'s numbers.
- ``--method auto`` becomes the per-image method ``auto`` would pick without a batch (references -> few-shot,
  learned prompts -> AnomalyCLIP, otherwise text); the bundle names it, and ``zsad export`` says it on stderr.
- The verdict rule is not frozen into a number: the bundle records the rule (mad or fixed) and the scorer's natural
  threshold, and the runtime decides over each call's images with the same code (``zsad_runtime.verdict``). The
  conformal rules (verdicts and masks from the references' leave-one-out scores) run there too: the bundle carries
  those scores (``calibration.npz``). The batch's contamination estimate and the test-time mask stay in zsad, so
  the default "auto" rules are refused with the flags that export what runs (``runtime_calibration``) rather than
  deciding otherwise than ``zsad detect`` would.
- Explanations in a bundle are factual; the rule and LLM explainers and a definition's concept transform (which acts
  on features before few-shot scoring) stay in zsad, and exporting with them is refused with the fix.
- Export runs on the CPU in fp32 (``Detector(device="cpu", precision="fp32")``, which ``zsad export`` builds): the
  graph is fp32, and the references' memory is computed as the runtime's inputs will be.
"""
from __future__ import annotations

import hashlib
import shutil
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from zsad_runtime.bundle import Bundle, sha256_file
from zsad_runtime.preprocess import Preprocess
from zsad_runtime.verdict import MASK_KINDS, MaskSpec, RuleSpec

from zsad import __version__
from zsad.config_fields import jsonable
from zsad.detector import Detector
from zsad.errors import ZsadError
from zsad.export.graphs import AnomalyCLIPGraph, ExportGraph, ReferenceGraph, TextGraph, WinCLIPGraph
from zsad.scoring import planning
from zsad.scoring.base import Scorer, ScoringRun
from zsad.verdict import RUNTIME_RULES

PER_IMAGE_GRAPHS = ("text", "anomalyclip", "winclip", "fewshot")


def exportable_scorer(detector: Detector, references=None, object_name: str | None = None) -> Scorer:
    """The scorer ``detect`` would run for one image with these references, started as ``detect`` starts it; a
    ``ZsadError`` naming the fix for what a bundle cannot hold (see the module docstring)."""
    config = detector.config
    if config.fuse:
        raise ZsadError("fused evidence is not exported: fusion puts each evidence on the scale of the run (and "
                        "fuses mutual scoring in for batches of 8 or more), so it needs zsad; export one method "
                        f"(--method {'|'.join(PER_IMAGE_GRAPHS)}) or run zsad detect")
    if config.method == "mutual":
        raise ZsadError("mutual scoring (MuSc) is not exported: each image's map depends on every other image of "
                        "the batch, which stays in torch; run it with zsad detect, or export a per-image method "
                        f"(--method {'|'.join(PER_IMAGE_GRAPHS)}; few-shot with --references)")
    explicit = config.method != "auto"
    run = ScoringRun(n_images=1, references=references,
                     object_name=object_name or config.text_head.object_name, explicit=explicit)
    try:
        [planned] = planning.plan(config.method, config.fuse, config.scorers, detector.context, run)
    except ZsadError as error:
        raise ZsadError(f"nothing to export: {error} (mutual scoring is not exported; pass --references for "
                        "few-shot scoring)") from None
    if planned.name not in PER_IMAGE_GRAPHS:
        raise ZsadError(f"the {planned.name} scorer has no exportable graph; export one of "
                        f"{', '.join(PER_IMAGE_GRAPHS)}")
    if detector.explainer.name != "factual":
        raise ZsadError(f"a bundle explains factually; the {detector.explainer.name} explainer stays in zsad: export "
                        "with --explain factual (the runtime does not run rules or LLMs)")
    if (detector.reasoning is not None and detector.reasoning.definition is not None
            and not planned.cls.text_space):
        raise ZsadError(f"a definition's concept transform acts on the features before {planned.name} scoring and is "
                        "not part of the graph; export without --define, or with a text method")
    scorer = planned.build(detector.context)
    scorer.start(run)
    return scorer


def graph_of(detector: Detector, scorer: Scorer, memory_as_input: bool | None = None) -> ExportGraph:
    """The export graph of a started scorer, on the detector's backbone."""
    backbone = detector.backbone
    if scorer.name == "text":
        return TextGraph(backbone, scorer.text, scorer.config)
    if scorer.name == "anomalyclip":
        return AnomalyCLIPGraph(backbone, scorer.text, scorer.config)
    if scorer.name == "winclip":
        return WinCLIPGraph(backbone, scorer.text, scorer.config, scorer.memory, memory_as_input=memory_as_input)
    if scorer.name == "fewshot":
        from zsad.scoring.fewshot import memory_layers

        return ReferenceGraph(backbone, scorer.memory, memory_layers(scorer.config, detector.context),
                              memory_as_input=memory_as_input)
    raise ZsadError(f"no per-image graph for the {scorer.name} scorer")


CALIBRATION_FILE = "calibration.npz"


def runtime_calibration(config, scorer: Scorer) -> tuple[np.ndarray, np.ndarray] | None:
    """The references' leave-one-out scores and maps a bundle carries for its conformal rules (None when its rules
    need none); a ``ZsadError`` naming the flags when the runtime cannot decide as the detector would."""
    threshold, mask = config.threshold.kind, config.mask.kind
    if threshold not in RUNTIME_RULES or mask not in MASK_KINDS:
        raise ZsadError(
            f"--threshold-rule {threshold} --mask-rule {mask}: the runtime decides verdicts by the "
            f"{', '.join(RUNTIME_RULES)} rules and masks by the {' or '.join(MASK_KINDS)} rule; the batch's "
            "contamination estimate and the test-time mask stay in zsad. Export with --threshold-rule conformal "
            "--mask-rule conformal (with --references; what auto runs with references, without the batch estimate), "
            "or --threshold-rule mad (or --threshold T) --mask-rule mad, or run zsad detect")
    if "conformal" not in (threshold, mask):
        return None
    calibration = scorer.calibration()
    if calibration is None:
        raise ZsadError(f"the conformal rules need the references' leave-one-out scores, which the {scorer.name} "
                        "scorer of this export does not have: pass --references with two or more good images (a "
                        "memory saved by an older zsad has none: build it again), or choose the mad rules")
    return calibration


def export_bundle(detector: Detector, out: str | Path, *, fmt: str = "onnx", int8: bool = False, references=None,
                  object_name: str | None = None, memory_as_input: bool | None = None, preset: str | None = None,
                  command: list[str] | None = None) -> Bundle:
    """Write the bundle of ``detector`` into ``out`` (a new or empty folder): the graph, ``zsad-runtime.json``,
    card.md and card.json. ``references``: good images or a saved memory, for few-shot methods; ``preset``: the
    preset as the user named it (a name or a file), to fingerprint its file; ``command``: recorded in the card."""
    if detector.device.type != "cpu" or detector.dtype != torch.float32:
        raise ZsadError(f"export needs the detector on the CPU in fp32 (it is on {detector.device}, "
                        f"{str(detector.dtype).removeprefix('torch.')}): build it with device='cpu', precision='fp32'")
    out = Path(out)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise ZsadError(f"--out {out}: exists and is not an empty folder; pass a new or empty folder")
    config = detector.config
    object_name = object_name or config.text_head.object_name
    scorer = exportable_scorer(detector, references, object_name)
    calibration = runtime_calibration(config, scorer)
    graph = graph_of(detector, scorer, memory_as_input)
    try:
        from zsad.export.bundle import model_card, write_card, write_graph

        spec = write_graph(graph, out, fmt, int8)
        if calibration is not None:
            np.savez(out / CALIBRATION_FILE, normal_scores=calibration[0], normal_maps=calibration[1])
            spec = replace(spec, files={**spec.files, CALIBRATION_FILE: sha256_file(out / CALIBRATION_FILE)})
        post = detector.postprocess_for(scorer.name)
        detector.last_run = {"scorers": [scorer.name], "evidence": {scorer.name: scorer.describe()},
                             "postprocess": jsonable(post)}
        bundle = Bundle(
            method=scorer.name, graph=spec,
            preprocess=Preprocess(graph.input_size, config.backbone.resize, graph.mean, graph.std),
            postprocess=post, threshold=RuleSpec(config.threshold.kind, config.threshold.value,
                                                 config.threshold.min_batch, config.threshold.false_alarm_rate),
            masks=MaskSpec(config.mask.kind, config.mask.false_alarm_rate),
            calibration_file=None if calibration is None else CALIBRATION_FILE,
            natural_threshold=scorer.natural_threshold(), object_name=object_name,
            fingerprints=fingerprints(detector, graph, references, preset), settings=jsonable(detector.describe()),
            zsad_version=__version__, root=out)
        bundle.write(out)
        from zsad.evaluation.environment import is_random_weights

        backbone = config.backbone
        write_card(out, model_card(bundle, _preset_card(preset or config.preset), is_random_weights(
            backbone.name, backbone.pretrained), command))
    except BaseException:
        shutil.rmtree(out, ignore_errors=True)  # never leave a half-written bundle
        raise
    return bundle


# -- fingerprints ------------------------------------------------------------------------------------------------

def _tensor_sha256(tensors: dict[str, torch.Tensor]) -> str:
    digest = hashlib.sha256()
    for name in sorted(tensors):
        data = tensors[name].detach().float().cpu().contiguous().numpy()
        digest.update(name.encode())
        digest.update(str(tuple(data.shape)).encode())
        digest.update(data.tobytes())
    return digest.hexdigest()


def fingerprints(detector: Detector, graph: ExportGraph, references, preset: str | None) -> dict[str, Any]:
    """sha256 of what decides the numbers beyond the graph file: preset file, adapter files, reference files and
    memory, text rows; and the backbone's weights fingerprint (``zsad.evaluation.environment``)."""
    from zsad.evaluation.environment import weights_fingerprint
    from zsad.evaluation.provenance import expand_references, reference_files

    config = detector.config
    out: dict[str, Any] = {"backbone": {"name": config.backbone.name, "pretrained": config.backbone.pretrained,
                                        "weights": weights_fingerprint(detector.backbone)}}
    preset_name = preset or config.preset
    out["preset"] = None
    if preset_name:
        found = _preset_file(preset_name)
        out["preset"] = {"name": config.preset, "source": str(found) if found else preset_name,
                         "sha256": sha256_file(found) if found else None}
    out["adapter"] = _adapter_fingerprint(config.text_head.prompts)
    memory = graph.memory_tensors()
    if references is not None or memory:
        given = references if isinstance(references, (list, tuple)) else [references] if references else []
        out["references"] = {
            "given": [str(item) for item in given if isinstance(item, (str, Path))] or None,
            "files": reference_files(expand_references(references)),
            "memory": {"sha256": _tensor_sha256(memory), "shapes": {k: list(v.shape) for k, v in memory.items()}},
        }
    if hasattr(graph, "text"):
        out["text"] = {"sha256": _tensor_sha256({"text": graph.text}), "prompts": config.text_head.prompts}
    return out


def _preset_file(name: str) -> Path | None:
    from importlib import resources

    path = Path(name)
    if path.suffix in (".yaml", ".yml"):
        return path if path.is_file() else None
    resource = resources.files("zsad.preset_files") / f"{name}.yaml"
    return Path(str(resource)) if resource.is_file() else None


def _preset_card(name: str | None) -> dict[str, Any] | None:
    if not name:
        return None
    from zsad.presets import load_preset

    try:
        return load_preset(name).describe()
    except ZsadError:
        return {"name": name}


def _adapter_fingerprint(prompts: str | None) -> dict[str, Any] | None:
    """The files behind ``--prompts learned:NAME`` (an adapter folder or an official checkpoint) with their sha256."""
    if not prompts or not prompts.startswith("learned:"):
        return None
    from zsad.learning.adapters import resolve_adapter_dir

    value = prompts.split(":", 1)[1]
    path = Path(value).expanduser()
    files = [path] if path.suffix in (".pth", ".pt") else sorted(
        p for p in resolve_adapter_dir(value).iterdir() if p.is_file())
    return {"spec": prompts, "files": {str(p): sha256_file(p) for p in files}}


__all__ = ["export_bundle", "exportable_scorer", "fingerprints", "graph_of"]
