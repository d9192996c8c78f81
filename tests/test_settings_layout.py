"""The settings block of results.json in zsad 0.1's layout and in the component-owned one: every value recorded
before the settings refactor is found, equal, at its new place, except the listed corrections (values 0.1 recorded
that were not what ran).

``tests/data/regression_settings_0.1.json`` is the snapshot stored before the refactor (0.1's flat layout) and
``tests/data/regression_settings.json`` the one ``tests/test_regression.py`` compares with now. This test maps one
onto the other, so a reader of 0.1's results.json can find each setting, and the refactor provably changed where
settings are written, not what they are.
"""
from __future__ import annotations

import json
from pathlib import Path

DATA = Path(__file__).parent / "data"

# 0.1 path (prefix) -> path now; the first match wins.
MOVES = [
    ("align_corners", "ran.postprocess.align_corners"),
    ("sigma", "ran.postprocess.sigma"),
    ("smooth_at", "ran.postprocess.smooth_at"),
    ("gaussian_padding", "ran.postprocess.padding"),
    ("batch_size", "runtime.batch_size"),
    ("precision", "runtime.precision"),
    ("explainer.explainer", "ran.explainer.explainer"),
    ("min_mutual_batch", "scorers.mutual.min_batch"),
    ("reference_layers", "scorers.fewshot.layers"),
    ("reference_rotations", "scorers.fewshot.rotations"),
    ("reference.", "scorers.fewshot."),
    ("resize", "backbone.resize"),
    ("mutual.", "scorers.mutual."),
    ("scorer_options.anomalyclip.sigma", "ran.postprocess.sigma"),
    ("scorer_options.", "scorers."),
    ("text.prompts", "text_head.prompts"),
    ("text.object_name", "text_head.object_name"),
    ("text.", "scorers.text."),
    ("text_head.", "ran.text_head."),
    ("evidence.fewshot.coreset", "scorers.fewshot.coreset_ratio"),
    ("evidence.fewshot.memory_patches", "ran.evidence.fewshot.memory_patches"),
    ("evidence.fewshot.layers", "ran.evidence.fewshot.memory_layers"),
    ("evidence.fewshot.", "scorers.fewshot."),
    ("evidence.mutual.groups", "ran.evidence.mutual.groups"),
    ("evidence.mutual.rscin_cls", "ran.evidence.mutual.rscin_cls"),
    ("evidence.mutual.", "scorers.mutual."),
    ("evidence.anomalyclip.sigma", "ran.postprocess.sigma"),
    ("evidence.anomalyclip.gaussian_mode", "ran.postprocess.padding"),
    ("evidence.anomalyclip.layer_maps", "ran.evidence.anomalyclip.layer_maps"),
    ("evidence.anomalyclip.image_score", "ran.evidence.anomalyclip.image_score"),
    ("evidence.anomalyclip.", "scorers.anomalyclip."),
    ("evidence.winclip.method", "ran.evidence.winclip.method"),
    ("evidence.winclip.reference_images", "ran.evidence.winclip.reference_images"),
    ("evidence.", "scorers."),  # the rest of a scorer's settings, which 0.1 repeated per evidence
    ("text_head", "ran.text_head"),
    ("", ""),
]
# Per evidence, what 0.1 recorded under ``evidence.<name>`` from the text head moved to ``ran.evidence.<name>``
# (above), and the scorer's settings to ``scorers.<name>``: these keys are the text head's.
TEXT_HEAD_KEYS = ("prompts", "text_head", "adapter", "prompt_learner", "lora", "trained_backbone_settings")
VALUES = {("evidence.anomalyclip.gaussian_mode", "scipy-reflect"): "symmetric"}

# (case, 0.1 path): why the value now differs. 0.1 recorded these but ran something else.
CORRECTIONS = {
    ("preset-anomalyclip", "backbone.vv_layers"): "0.1 recorded 0 when V-V came from dpam_layer; 2 blocks ran",
    ("preset-anomalyclip", "gaussian_padding"): "0.1 recorded the detector's mirror; AnomalyCLIP ran symmetric",
    ("preset-anomalyclip-learned", "gaussian_padding"): "the same",
    ("preset-zsad", "evidence.text.layers"): "0.1 wrote [] for 'every extracted layer'; now the setting's own None",
    **{(case, "backbone.pretrained"): "0.1 recorded the preset's tag (or none); the tiny model ran with random weights"
       for case in ("preset-winclip", "preset-winclip+", "preset-anomalyclip", "preset-anomalyclip-learned",
                    "preset-musc", "preset-musc-dinov2", "preset-anomalydino", "preset-zsad")},
}


def flatten(value, prefix: str = "") -> dict[str, object]:
    if isinstance(value, dict):
        out = {}
        for key, item in value.items():
            out.update(flatten(item, f"{prefix}{key}."))
        return out
    return {prefix[:-1]: value}


def new_path(old: str) -> str:
    if old.startswith("evidence."):
        name, _, key = old.removeprefix("evidence.").partition(".")
        if key in TEXT_HEAD_KEYS or key.split(".")[0] in TEXT_HEAD_KEYS:
            return f"ran.evidence.{name}.{key}"
    for before, after in MOVES:
        if old == before or (before.endswith(".") and old.startswith(before)) or before == "":
            return after + old[len(before):] if before.endswith(".") or before == "" else after
    raise AssertionError(old)


def test_every_01_setting_is_found_equal_at_its_new_place():
    old = json.loads((DATA / "regression_settings_0.1.json").read_text())
    new = json.loads((DATA / "regression_settings.json").read_text())
    assert sorted(old) == sorted(new)
    differences = []
    for case in old:
        now = flatten(new[case])
        for path, value in flatten(old[case]).items():
            target = new_path(path)
            expected = VALUES.get((path, value), value) if isinstance(value, str) else value
            if target not in now:
                differences.append(f"{case}: {path} -> {target} missing")
            elif now[target] != expected and (case, path) not in CORRECTIONS:
                differences.append(f"{case}: {path}={value!r} -> {target}={now[target]!r}")
    assert not differences, "\n".join(differences)


def test_the_corrections_are_real():
    """Each listed correction is a value that did change (the list holds no stale entries)."""
    old = json.loads((DATA / "regression_settings_0.1.json").read_text())
    new = json.loads((DATA / "regression_settings.json").read_text())
    for case, path in CORRECTIONS:
        before = flatten(old[case])[path]
        assert flatten(new[case])[new_path(path)] != before, (case, path)
