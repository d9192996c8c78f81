"""BTAD, MPDD, VisA and Real-IAD read and averaged as their official evaluations do: generated data sets in each
layout, scored by the stand-in detector, give zsad tables equal to transcriptions of the official code
(``official_averaging.py``) applied to the same scores and maps: which images are a class's test set, which are
anomalous and with which mask, metrics per class, the plain mean over classes; and the full class set is the
benchmark the published comparison names."""
from __future__ import annotations

import csv
import json
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from standin_detector import StandInDetector

from zsad.evaluation import evaluate
from zsad.report.published import benchmark_of

sys.path.insert(0, str(Path(__file__).resolve().parent))
import official_averaging as off  # noqa: E402


@pytest.fixture(scope="module")
def sources(tmp_path_factory) -> list[Path]:
    """Four planted-defect category folders in the MVTec layout (two categories x two seeds)."""
    from zsad.data.synth import generate_dataset

    root = tmp_path_factory.mktemp("official")
    out = []
    for seed in (0, 1):
        data = generate_dataset(root / f"s{seed}", categories=["pill", "weave"], n_train=2, n_test_good=3,
                                n_test_defect=1, size=64, seed=seed)
        out += [data / "pill", data / "weave"]
    return out


def _save(source: Path, target: Path) -> Path:
    target.parent.mkdir(parents=True, exist_ok=True)
    with Image.open(source) as image:
        image.convert("L" if "ground_truth" in source.parts else "RGB").save(target)
    return target


def _defects(source: Path) -> list[Path]:
    return sorted(p for p in (source / "test").iterdir() if p.name != "good")


def _zsad_inputs(run) -> tuple[dict[str, float], dict[str, np.ndarray]]:
    scores = {str(Path(r.path).resolve()): r.score for r in run.records}
    maps = {str(Path(r.path).resolve()): run.anomaly_map(r) for r in run.records}
    return scores, maps


def _assert_equal(run, official: dict, keys: tuple[str, ...]) -> None:
    table = run.table.to_dict()
    assert list(table) == list(official)
    for row, values in official.items():
        for key in keys:
            assert table[row][key] == pytest.approx(values[key], abs=1e-9), (row, key)


def test_btad_equals_anomalyclip(sources, tmp_path: Path) -> None:
    """BTAD: classes 01, 02, 03; ``ok`` normal, ``ko`` anomalous with masks named like the images (.bmp in 03)."""
    root = tmp_path / "BTech"
    for cls, source in zip(off.ANOMALYCLIP_OBJECTS["btad"], sources):
        ext = ".bmp" if cls == "03" else ".png"
        for image in sorted((source / "train" / "good").glob("*.png")):
            _save(image, root / cls / "train" / "ok" / f"{image.stem}{ext}")
        for image in sorted((source / "test" / "good").glob("*.png")):
            _save(image, root / cls / "test" / "ok" / f"{image.stem}{ext}")
        for defect in _defects(source):
            for image in sorted(defect.glob("*.png")):
                name = f"{defect.name}_{image.stem}{ext}"
                _save(image, root / cls / "test" / "ko" / name)
                _save(source / "ground_truth" / defect.name / f"{image.stem}_mask.png",
                      root / cls / "ground_truth" / "ko" / name)
    run = evaluate(StandInDetector(), "btad", root)
    meta = off.anomalyclip_meta_folders(str(root), off.ANOMALYCLIP_OBJECTS["btad"], ["ok"])
    _assert_equal(run, off.anomalyclip_table(str(root), meta, *_zsad_inputs(run), off.ANOMALYCLIP_OBJECTS["btad"]),
                  ("i_auroc", "i_ap", "p_auroc"))
    assert benchmark_of(run.description) == "btad"


def test_mpdd_equals_anomalyclip(sources, tmp_path: Path) -> None:
    """MPDD: its six classes in the MVTec AD layout (``good`` normal, masks ``<stem>_mask.png``)."""
    root = tmp_path / "MPDD"
    for number, cls in enumerate(off.ANOMALYCLIP_OBJECTS["mpdd"]):
        shutil.copytree(sources[number % len(sources)], root / cls)
    run = evaluate(StandInDetector(), "mpdd", root)
    meta = off.anomalyclip_meta_folders(str(root), off.ANOMALYCLIP_OBJECTS["mpdd"], ["good"])
    _assert_equal(run, off.anomalyclip_table(str(root), meta, *_zsad_inputs(run), off.ANOMALYCLIP_OBJECTS["mpdd"]),
                  ("i_auroc", "i_ap", "p_auroc"))
    assert benchmark_of(run.description) == "mpdd"
    assert benchmark_of({**run.description, "categories": off.ANOMALYCLIP_OBJECTS["mpdd"][:5]}) is None


def test_visa_equals_anomalyclip(sources, tmp_path: Path) -> None:
    """VisA: its twelve classes through ``split_csv/1cls.csv`` (the original Data/Images, Data/Masks folders)."""
    root = tmp_path / "VisA"
    rows = []
    for number, cls in enumerate(off.ANOMALYCLIP_OBJECTS["visa"]):
        source = sources[number % len(sources)]
        count = 0
        for split, folder in (("train", source / "train" / "good"), ("test", source / "test" / "good")):
            for image in sorted(folder.glob("*.png")):
                target = _save(image, root / cls / "Data" / "Images" / "Normal" / f"{count:03d}.JPG")
                rows.append([cls, split, "normal", target.relative_to(root).as_posix(), ""])
                count += 1
        for defect in _defects(source):
            for image in sorted(defect.glob("*.png")):
                target = _save(image, root / cls / "Data" / "Images" / "Anomaly" / f"{count:03d}.JPG")
                mask = _save(source / "ground_truth" / defect.name / f"{image.stem}_mask.png",
                             root / cls / "Data" / "Masks" / "Anomaly" / f"{count:03d}.png")
                rows.append([cls, "test", "anomaly", target.relative_to(root).as_posix(),
                             mask.relative_to(root).as_posix()])
                count += 1
    (root / "split_csv").mkdir()
    with (root / "split_csv" / "1cls.csv").open("w", newline="") as handle:
        csv.writer(handle).writerows([["object", "split", "label", "image", "mask"], *rows])
    run = evaluate(StandInDetector(), "visa", root)
    meta = off.anomalyclip_meta_visa(str(root), off.ANOMALYCLIP_OBJECTS["visa"])
    _assert_equal(run, off.anomalyclip_table(str(root), meta, *_zsad_inputs(run), off.ANOMALYCLIP_OBJECTS["visa"]),
                  ("i_auroc", "i_ap", "p_auroc"))
    assert benchmark_of(run.description) == "visa"
    assert len(run.records) == sum(r[1] == "test" for r in rows)


def test_realiad_single_view_equals_adeval(sources, tmp_path: Path) -> None:
    """Real-IAD single view (``realiad_jsons_sv``): one JSON per object, OK and NG/<class> images (.jpg) with
    their masks (.png); ADEval per object, then the mean over objects. Image AUROC equal (no two scores of
    different labels share one of ADEval's 1000 bins); pixel AUROC within the histogram's approximation."""
    root = tmp_path / "Real-IAD"
    objects = ["audiojack", "bottle_cap", "zipper"]
    entries: dict[str, list[tuple[str, str | None]]] = {}
    for number, obj in enumerate(objects):
        source = sources[number]
        images = root / "realiad_1024" / obj
        data = {"meta": {"prefix": "", "normal_class": "OK"}, "train": [], "test": []}
        sample = 0
        for split, folder in (("train", source / "train" / "good"), ("test", source / "test" / "good")):
            for image in sorted(folder.glob("*.png")):
                sample += 1
                relative = f"OK/S{sample:04d}/{obj}_{sample:04d}_OK_C1_20231021.jpg"
                _save(image, images / relative)
                data[split].append({"category": obj, "anomaly_class": "OK", "image_path": relative,
                                    "mask_path": None})
                if split == "test":
                    entries.setdefault(obj, []).append((str(images / relative), None))
        for defect in _defects(source):
            code = defect.name[:2].upper()
            for image in sorted(defect.glob("*.png")):
                sample += 1
                stem = f"NG/{code}/S{sample:04d}/{obj}_{sample:04d}_NG_{code}_C1_20231021"
                _save(image, images / f"{stem}.jpg")
                _save(source / "ground_truth" / defect.name / f"{image.stem}_mask.png", images / f"{stem}.png")
                data["test"].append({"category": obj, "anomaly_class": code, "image_path": f"{stem}.jpg",
                                     "mask_path": f"{stem}.png"})
                entries[obj].append((str(images / f"{stem}.jpg"), str(images / f"{stem}.png")))
        (root / "realiad_jsons_sv").mkdir(parents=True, exist_ok=True)
        (root / "realiad_jsons_sv" / f"{obj}.json").write_text(json.dumps(data))
    run = evaluate(StandInDetector(), "realiad", root)
    official = off.adeval_objects(entries, *_zsad_inputs(run))
    _assert_equal(run, official, ("i_auroc",))
    table = run.table.to_dict()
    for row in official:
        assert table[row]["p_auroc"] == pytest.approx(official[row]["p_auroc"], abs=1e-3), row
    assert benchmark_of(run.description) is None  # 3 of Real-IAD's 30 objects are no benchmark
