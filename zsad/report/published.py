"""The anchor methods' published numbers (``published_results.csv``), the setting a run actually ran in, and which
published rows it may be set beside.

The CSV (kept outside the package, in ``../shared/published_results.csv`` by default; every row carries its
``source``) has the columns ``method, setting, backbone, input, dataset, i_auroc, p_auroc, aupro, source`` with
metrics in percent. A published row is shown next to a run only when everything that defines the protocol matches:

- benchmark (``benchmark_of``): the run's layout *and its full category set*: a published mean is over all of a
  benchmark's categories, so one LOCO, BTAD, MPDD or Real-IAD category (or 14 of MVTec AD's 15) is no benchmark.
  MPDD read with the ``mvtec`` layout (it ships in that layout) is MPDD. Any other data set matches nothing;
- setting (``setting_of``), derived from what ran, not from a flag: the evidence the detector used (from the
  records: ``text``, ``winclip``, ``fewshot``, ``mutual`` ...), the reference images (seeded k-shot lists from the
  train split, or images the user gave with ``--references``), and the training data of learned prompts (the
  adapter's card). Families: ``zero-shot`` (text evidence only), ``zero-shot mutual`` (mutual scoring of the test
  batch alone), ``zero-shot (trained on other data)`` (learned prompts trained on another data set), ``k-shot``.
  A ``--references`` run is ``reference-based``: published k-shot numbers average seeded draws from the train
  split, which a hand-picked set is not, so it matches nothing; nor do prompts trained on the test benchmark
  itself, prompts whose training data is not recorded, or mutual scoring fused with other evidence;
- backbone (``"<open_clip name> <pretrained tag>"`` or the Hugging Face name, as the CSV writes it), input size,
  and the method when the run used a preset named after it.

Runs with randomly initialised weights match nothing: their numbers say nothing about the published setting.
"""
from __future__ import annotations

import csv
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from zsad.errors import ZsadError

MVTEC_AD_CATEGORIES = frozenset({
    "bottle", "cable", "capsule", "carpet", "grid", "hazelnut", "leather", "metal_nut", "pill", "screw", "tile",
    "toothbrush", "transistor", "wood", "zipper",
})
VISA_CATEGORIES = frozenset({
    "candle", "capsules", "cashew", "chewinggum", "fryum", "macaroni1", "macaroni2", "pcb1", "pcb2", "pcb3", "pcb4",
    "pipe_fryum",
})
LOCO_CATEGORIES = frozenset({"breakfast_box", "juice_bottle", "pushpins", "screw_bag", "splicing_connectors"})
BTAD_CATEGORIES = frozenset({"01", "02", "03"})
MPDD_CATEGORIES = frozenset({"bracket_black", "bracket_brown", "bracket_white", "connector", "metal_plate", "tubes"})
REALIAD_CATEGORIES = frozenset({
    "audiojack", "bottle_cap", "button_battery", "end_cap", "eraser", "fire_hood", "mint", "mounts", "pcb",
    "phone_battery", "plastic_nut", "plastic_plug", "porcelain_doll", "regulator", "rolled_strip_base",
    "sim_card_set", "switch", "tape", "terminalblock", "toothbrush", "toy", "toy_brick", "transistor1", "u_block",
    "usb", "usb_adaptor", "vcpill", "wooden_beads", "woodstick", "zipper",
})
# benchmark -> (its full category set, the layouts that read it)
BENCHMARKS: dict[str, tuple[frozenset[str], tuple[str, ...]]] = {
    "mvtec": (MVTEC_AD_CATEGORIES, ("mvtec",)),
    "visa": (VISA_CATEGORIES, ("visa",)),
    "mvtec_loco": (LOCO_CATEGORIES, ("mvtec_loco",)),
    "btad": (BTAD_CATEGORIES, ("btad",)),
    "mpdd": (MPDD_CATEGORIES, ("mpdd", "mvtec")),
    "realiad": (REALIAD_CATEGORIES, ("realiad",)),
}
CSV_METRICS = {"i_auroc": "i_auroc", "p_auroc": "p_auroc", "aupro": "aupro"}
TEXT_EVIDENCE = frozenset({"text", "winclip", "anomalyclip"})
OTHER_DATA = "zero-shot (trained on other data)"


@dataclass(frozen=True)
class PublishedRow:
    method: str
    setting: str
    backbone: str
    input: int | None
    dataset: str
    metrics: dict[str, float]  # fractions, like zsad's tables
    source: str


def read_published(path: str | Path) -> list[PublishedRow]:
    path = Path(path)
    if not path.is_file():
        raise ZsadError(f"{path}: published results CSV not found; pass --published PATH")
    rows = []
    with path.open(newline="", encoding="utf-8") as handle:
        for row in csv.DictReader(handle):
            metrics = {key: float(row[col]) / 100.0 for key, col in CSV_METRICS.items() if (row.get(col) or "").strip()}
            rows.append(PublishedRow(
                method=row["method"].strip(), setting=row["setting"].strip(), backbone=row["backbone"].strip(),
                input=int(row["input"]) if (row.get("input") or "").strip() else None,
                dataset=row["dataset"].strip(), metrics=metrics, source=row["source"].strip(),
            ))
    return rows


def benchmark_of(description: dict[str, Any]) -> str | None:
    """The published benchmark a run's data set is, or None when it is none of them (or only part of one)."""
    kind = description.get("dataset")
    categories = frozenset(description.get("categories") or [])
    for name, (full, layouts) in BENCHMARKS.items():
        if kind in layouts and categories == full:
            return name
    return None


def _same_data(data: dict[str, Any], description: dict[str, Any]) -> bool:
    """Training data (an adapter card's ``data``: kind, root, categories) is the evaluated data: the same root, the
    same layout with a category in common, or the same full benchmark. Training on all categories of another root
    of the same layout counts as other data: the layout alone cannot tell MVTec AD from MPDD."""
    train_root, test_root = data.get("root"), description.get("root")
    if train_root and test_root:
        try:
            if Path(train_root).expanduser().resolve() == Path(test_root).expanduser().resolve():
                return True
        except OSError:
            pass
    kind, categories = data.get("kind"), set(data.get("categories") or [])
    if kind == description.get("dataset") and categories & set(description.get("categories") or []):
        return True
    trained = benchmark_of({"dataset": kind, "categories": sorted(categories)}) if categories else None
    return trained is not None and trained == benchmark_of(description)


def setting_of(description: dict[str, Any]) -> dict[str, Any]:
    """The setting a run ran in, from its description: ``family`` (what published settings are compared on),
    ``label`` (short, for titles), ``detail`` (references and training data in words), ``comparable`` and, when
    not, ``why``. Descriptions written before ``evidence`` was recorded fall back to the detector's method."""
    detector = description.get("detector") or {}
    shots = int(description.get("shots") or 0)
    evidence = description.get("evidence")
    used = set(evidence) if evidence is not None else {"mutual" if detector.get("method") == "mutual" else "text"}
    files = description.get("reference_files") or []
    trained = detector.get("trained_on")
    out: dict[str, Any] = {"comparable": True, "why": None, "evidence": sorted(used), "trained_on": trained}
    if shots:
        seeds = ", ".join(map(str, description.get("seeds") or []))
        family = label = f"{shots}-shot"
        detail = f"{shots} good training images per category, seeded lists from the train split (seeds {seeds})"
    elif description.get("good_images") is not None:
        family = "reference-based"
        label = f"reference-based ({len(files)} given images)" if files else "reference-based"
        detail = (f"the same {len(files) or 'given'} good reference images (--references) for every category")
        out.update(comparable=False, why="the references were given (--references), not drawn from the train split "
                                         "with seeds as the published k-shot protocols do")
    elif "mutual" in used:
        family = label = "zero-shot mutual" if used == {"mutual"} else "zero-shot mutual+" + "+".join(
            sorted(used - {"mutual"}))
        detail = "no reference image; each test image scored against the other test images of its category"
        if used != {"mutual"}:
            out.update(comparable=False, why="mutual scoring fused with other evidence is not a published setting")
    else:
        family = label = "zero-shot"
        detail = "no reference image, no training on the test data"
    if trained:
        data = trained.get("data") or {}
        if not data.get("kind") and not data.get("root"):
            family, label = f"{family} (trained on unrecorded data)", f"{label}, learned prompts"
            detail += f"; learned prompts {trained.get('adapter')} whose card does not record the training data"
            out.update(comparable=False, why="the learned prompts' training data is not recorded in the adapter card")
        elif _same_data(data, description):
            family = label = "trained on the test data"
            detail += f"; learned prompts {trained.get('adapter')} trained on this data set ({data.get('kind')} at " \
                      f"{data.get('root')})"
            out.update(comparable=False, why="the learned prompts were trained on the evaluated data set")
        else:
            family = OTHER_DATA if family == "zero-shot" else f"{family} (trained on other data)"
            label += f", prompts trained on {data.get('kind')}"
            detail += f"; learned prompts {trained.get('adapter')} trained on {data.get('kind')} at {data.get('root')}"
    out.update(family=family, label=label, detail=detail)
    return out


def row_family(setting: str) -> str:
    """A published row's setting in the families of ``setting_of``."""
    text = setting.strip().lower()
    if text.startswith("zero-shot mutual"):
        return "zero-shot mutual"
    if text.startswith("zero-shot (trained on"):
        return OTHER_DATA
    if text == "zero-shot" or re.fullmatch(r"\d+-shot", text):
        return text
    return text  # e.g. "1 normal prompt": a protocol zsad does not run, matches no family


def protocol_of(description: dict[str, Any]) -> dict[str, Any]:
    """The run's protocol in the CSV's terms (what ``matching`` compares)."""
    detector = description.get("detector", {})
    pretrained = detector.get("pretrained")
    backbone = f"{detector.get('backbone')} {pretrained}" if pretrained else str(detector.get("backbone"))
    setting = setting_of(description)
    return {"dataset": benchmark_of(description), "dataset_kind": description.get("dataset"),
            "categories": sorted(description.get("categories") or []), "setting": setting["family"],
            "setting_label": setting["label"], "setting_detail": setting["detail"],
            "comparable": setting["comparable"], "not_comparable_because": setting["why"],
            "backbone": backbone, "input": detector.get("input_size"), "preset": detector.get("preset"),
            "random_weights": bool(detector.get("random_weights"))}


def matching(rows: list[PublishedRow], protocol: dict[str, Any]) -> list[PublishedRow]:
    if protocol["random_weights"] or protocol["dataset"] is None or not protocol.get("comparable", True):
        return []
    out = []
    for row in rows:
        if row.dataset != protocol["dataset"] or row.input != protocol["input"] or row.backbone != protocol["backbone"]:
            continue
        if row_family(row.setting) != protocol["setting"]:
            continue
        if protocol["preset"] and row.method.lower().rstrip("+") != str(protocol["preset"]).lower().rstrip("+"):
            continue
        out.append(row)
    return out


def why_none(protocol: dict[str, Any]) -> str:
    if protocol["random_weights"]:
        return "randomly initialised weights: no published number applies"
    if protocol["dataset"] is None:
        return (f"data set ({protocol['dataset_kind']}, {len(protocol.get('categories') or [])} categories) is not a "
                "published benchmark in full; published means are over all of a benchmark's categories")
    if not protocol.get("comparable", True):
        return f"setting {protocol['setting_label']}: {protocol['not_comparable_because']}"
    return (f"no published row with dataset {protocol['dataset']}, setting {protocol['setting']}, backbone "
            f"{protocol['backbone']}, input {protocol['input']}" +
            (f", method {protocol['preset']}" if protocol["preset"] else ""))
