"""No test image can become a reference, train and val rows are never scored, and the report names the setting:
on a plain folder, a manifest with a ``split`` column and a generated MVTec LOCO tree."""
from __future__ import annotations

import csv
import shutil
import sys
from pathlib import Path

import pytest
from standin_detector import StandInDetector

from zsad.data.layouts import load_samples
from zsad.errors import DatasetError, ZsadError
from zsad.evaluation import (
    draw_reference_lists,
    draw_references,
    evaluate,
    load_run,
    plan_evaluation,
    save_reference_lists,
    save_run,
)
from zsad.report.build import write_report

sys.path.insert(0, str(Path(__file__).resolve().parent))
from test_loco import write_loco  # noqa: E402


@pytest.fixture(scope="module")
def synth(tmp_path_factory) -> Path:
    from zsad.data.synth import generate_dataset

    root = tmp_path_factory.mktemp("leak")
    return generate_dataset(root / "data", categories=["pill", "weave"], n_train=4, n_test_good=3, n_test_defect=1,
                            size=64, seed=3)


@pytest.fixture(scope="module")
def manifest(synth: Path) -> Path:
    """pill and weave: train rows (train/good), val rows (the first test/good image of each), test rows (the
    rest, with masks); paths relative to the manifest's folder."""
    rows = []
    for category in ("pill", "weave"):
        for image in sorted((synth / category / "train" / "good").glob("*.png")):
            rows.append({"path": image.relative_to(synth).as_posix(), "label": "good", "mask": "",
                         "category": category, "split": "train"})
        for number, image in enumerate(sorted((synth / category / "test").rglob("*.png"))):
            defect = image.parent.name
            mask = "" if defect == "good" else (synth / category / "ground_truth" / defect /
                                                f"{image.stem}_mask.png").relative_to(synth).as_posix()
            split = "val" if defect == "good" and number == 0 else "test"
            rows.append({"path": image.relative_to(synth).as_posix(), "label": 0 if defect == "good" else 1,
                         "mask": mask, "category": category, "split": split})
    path = synth / "manifest.csv"
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=["path", "label", "mask", "category", "split"])
        writer.writeheader()
        writer.writerows(rows)
    return path


@pytest.fixture(scope="module")
def loco(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("leakloco")
    write_loco(root, "juice_bottle", 0)
    (root / "juice_bottle" / "validation" / "good").mkdir(parents=True)
    shutil.copy(root / "juice_bottle" / "train" / "good" / "000.png",
                root / "juice_bottle" / "validation" / "good" / "100.png")
    return root


def _rows(path: Path, split: str | None = None) -> list[dict]:
    return [r for r in csv.DictReader(path.open()) if split is None or r["split"] == split]


def _test_paths(run) -> set[str]:
    return {r.path for r in run.records}


def _reference_paths(run) -> set[str]:
    return {f for item in run.description["reference_lists"] for f in item["files"]}


# ------------------------------------------------------------------------------------------------ folder


def test_a_folder_refuses_shots_naming_references_and_the_split_column(synth: Path) -> None:
    folder = synth / "pill" / "test"  # a folder of test images: good/ beside the defect folders
    fix = "no train split, only test images.*--references DIR.*manifest with a 'split' column"
    with pytest.raises(DatasetError, match=fix):
        plan_evaluation("folder", folder, shots=1)
    with pytest.raises(DatasetError, match=fix):
        draw_references("folder", folder, "pill", 1, 0)
    with pytest.raises(DatasetError, match=fix):
        draw_reference_lists("folder", folder, None, shots=(1,), seeds=(0,))
    with pytest.raises(DatasetError, match="no val split"):
        load_samples("folder", folder, split="val")
    # zero-shot runs; the object name is the parent's ("pill"), not "test"
    detector = StandInDetector()
    run = evaluate(detector, "folder", folder)
    assert run.categories() == ["pill"] and detector.calls[0]["object_name"] == "pill"
    assert len(run.records) == sum(1 for _ in folder.rglob("*.png")) and not _reference_paths(run)


def test_a_folder_given_its_own_images_as_references_is_refused(synth: Path, tmp_path: Path) -> None:
    folder = synth / "pill" / "test"
    with pytest.raises(ZsadError, match="--references: 3 reference image.*are test images"):
        evaluate(StandInDetector(), "folder", folder, good_images=[str(folder / "good")])
    copies = tmp_path / "copies"
    shutil.copytree(folder / "good", copies)  # same bytes, other names
    with pytest.raises(ZsadError, match="are test images"):
        evaluate(StandInDetector(), "folder", folder, good_images=[str(copies)])


def test_yes_no_folder_needs_normal_dirs_and_says_so(tmp_path: Path, synth: Path) -> None:
    folder = tmp_path / "widgets"
    for source, target in (("good", "no"), ("hole", "yes")):
        shutil.copytree(synth / "pill" / "test" / source, folder / target)
    with pytest.raises(DatasetError, match=r"widgets: \d+ image\(s\) have no label.*none of its sub-folders "
                                           r"\(no, yes\) is a folder of normal images \(good, normal, ok\); name it "
                                           r"with --normal-dirs, e.g. --normal-dirs no"):
        load_samples("folder", folder)
    samples = load_samples("folder", folder, normal_dirs="no,healthy")["widgets"]
    assert {(s.path.parent.name, s.label, s.defect) for s in samples} == {("no", 0, None), ("yes", 1, "yes")}
    run = evaluate(StandInDetector(), "folder", folder, dataset_options={"normal_dirs": "no"})
    assert run.description["dataset_options"] == {"normal_dirs": "no"} and "i_auroc" in run.table.rows["widgets"]
    assert sorted(r.label for r in run.records) == sorted(s.label for s in samples)
    (folder / "loose.png").write_bytes((folder / "no" / next(iter(sorted(p.name for p in (folder / "no").iterdir())))
                                        ).read_bytes())
    with pytest.raises(DatasetError, match="1 image.*loose.png.*beside the class sub-folders"):
        load_samples("folder", folder, normal_dirs="no")


# ------------------------------------------------------------------------------------------------ manifest


def test_manifest_splits_are_honoured(manifest: Path, synth: Path) -> None:
    base = manifest.parent
    by_split = {split: {str(base / r["path"]) for r in _rows(manifest, split)} for split in ("train", "test", "val")}
    for split, expected in by_split.items():
        got = {str(s.path) for group in load_samples("manifest", manifest, split=split).values() for s in group}
        assert got == expected, split
    assert {str(s.path) for g in load_samples("manifest", manifest, split="validation").values() for s in g} \
        == by_split["val"]

    detector = StandInDetector()
    run = evaluate(detector, "manifest", manifest, shots=2, seeds=(0, 1, 2))
    scored = {p for call in detector.calls for p in map(str, call["paths"])}
    assert scored == _test_paths(run) == by_split["test"]  # train and val rows are never scored
    references = _reference_paths(run)
    assert references <= by_split["train"] and len(references) > 2
    assert not references & by_split["test"] and not references & by_split["val"]
    assert {str(p) for call in detector.calls for p in call["references"]} == references
    lists = run.description["reference_lists"]
    assert [(item["category"], item["seed"]) for item in lists] == [
        (c, s) for c in ("pill", "weave") for s in (0, 1, 2)]
    assert all(len(item["files"]) == 2 and all(Path(f).parts[-4:-1] == (item["category"], "train", "good")
                                                for f in item["files"]) for item in lists)
    hashed = {f["path"]: f["sha256"] for f in run.description["reference_files"]}
    assert set(hashed) == references and all(len(h) == 64 for h in hashed.values())
    assert "train split of manifest" in run.description["reference_source"]


def test_manifest_without_split_column_is_test_images_only(manifest: Path, tmp_path: Path) -> None:
    plain = tmp_path / "plain.csv"
    rows = _rows(manifest, "test")
    with plain.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=["path", "label", "mask", "category"])
        writer.writeheader()
        writer.writerows({k: str(manifest.parent / v) if k in ("path", "mask") and v else v
                          for k, v in r.items() if k != "split"} for r in rows)
    assert sum(len(g) for g in load_samples("manifest", plain).values()) == len(rows)
    with pytest.raises(DatasetError, match="manifest without a 'split' column has no train split.*--references DIR"
                                           ".*manifest with a 'split' column"):
        evaluate(StandInDetector(), "manifest", plain, shots=1)


def test_an_image_in_two_splits_and_unknown_splits_are_refused(manifest: Path, tmp_path: Path) -> None:
    rows = _rows(manifest)
    leaked = dict(rows[0], split="test", label="0")  # a train image listed again as a test image
    for name, extra, pattern in (
        ("twice.csv", [leaked], r"rows 2 and \d+ list .* in the train and test splits; an image belongs to one"),
        ("unknown.csv", [dict(rows[1], split="holdout")], r"row \d+ has split 'holdout'; .*train, test or val"),
        ("blank.csv", [dict(rows[1], split="")], r"row \d+ has no split"),
    ):
        path = tmp_path / name
        with path.open("w", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
            writer.writeheader()
            writer.writerows([{k: str(manifest.parent / v) if k in ("path", "mask") and v else v for k, v in r.items()}
                              for r in rows + extra])
        with pytest.raises(DatasetError, match=pattern):
            load_samples("manifest", path)


def test_a_train_row_with_the_bytes_of_a_test_image_is_refused(manifest: Path, tmp_path: Path) -> None:
    """A copy of a test image listed as a train row (another name, same bytes) would be drawn as a reference."""
    rows = [{k: str(manifest.parent / v) if k in ("path", "mask") and v else v for k, v in r.items()}
            for r in _rows(manifest) if r["category"] == "pill" and r["split"] != "train"]
    copy = tmp_path / "copy.png"
    shutil.copy(next(r["path"] for r in rows if r["split"] == "test" and r["label"] == "0"), copy)
    rows.append({"path": str(copy), "label": "0", "mask": "", "category": "pill", "split": "train"})
    path = tmp_path / "copied.csv"
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    with pytest.raises(ZsadError, match=r"1-shot reference lists: 1 reference image\(s\) are test images of this run \(e.g. .*copy.png = "):
        evaluate(StandInDetector(), "manifest", path, shots=1)


def test_reference_lists_naming_a_test_image_are_refused(manifest: Path, tmp_path: Path) -> None:
    lists = draw_reference_lists("manifest", manifest, ["pill"], shots=(1,), seeds=(0,))
    test_image = manifest.parent / next(r["path"] for r in _rows(manifest, "test") if r["category"] == "pill")
    lists.add("pill", 1, 0, [test_image])
    path = save_reference_lists(lists, tmp_path / "lists.json")
    with pytest.raises(ZsadError, match="1-shot reference lists of .*lists.json: 1 reference image.*are test images"):
        plan_evaluation("manifest", manifest, ["pill"], shots=1, references=path)


# ------------------------------------------------------------------------------------------------ LOCO


def test_loco_references_come_from_train_and_val_is_validation(loco: Path) -> None:
    train = {str(p) for p in (loco / "juice_bottle" / "train" / "good").glob("*.png")}
    val = load_samples("mvtec_loco", loco, split="val")["juice_bottle"]
    assert [s.path.name for s in val] == ["100.png"] and all(s.label == 0 for s in val)
    run = evaluate(StandInDetector(), "mvtec_loco", loco, shots=1, seeds=(0, 1))
    assert _reference_paths(run) <= train and not _reference_paths(run) & _test_paths(run)
    assert all("/test/" in p for p in _test_paths(run))
    assert run.protocol_tables  # the LOCO protocol ran on the k-shot run too


# ------------------------------------------------------------------------------------------------ report


def test_report_names_the_setting_and_lists_every_reference_list(manifest: Path, loco: Path, synth: Path,
                                                                 tmp_path: Path) -> None:
    shot = evaluate(StandInDetector(), "manifest", manifest, shots=2, seeds=(0, 1))
    save_run(shot, tmp_path / "run")
    paths = write_report(load_run(tmp_path / "run"), tmp_path / "report", plots=False)
    text = paths["markdown"].read_text()
    assert text.splitlines()[0].startswith("# stand-in text 2-shot on manifest")
    assert "setting: 2-shot: 2 good training images per category, seeded lists from the train split" in text
    assert "2 good images per category from the train split of manifest, seeded (lists drawn by this run)" in text
    first = shot.description["reference_lists"][0]
    assert f"- pill, 2-shot, seed 0: {Path(first['files'][0]).name} (sha256 " in text
    assert text.count("-shot, seed ") == 4
    html = paths["html"].read_text()
    assert "pill, 2-shot, seed 1: " in html and "2-shot on manifest" in html

    given = evaluate(StandInDetector(), "mvtec_loco", loco, good_images=[str(synth / "pill" / "train" / "good")])
    save_run(given, tmp_path / "given")
    text = write_report(load_run(tmp_path / "given"), tmp_path / "given-report", plots=False)["markdown"].read_text()
    assert "reference-based (4 given images) on mvtec_loco" in text.splitlines()[0]
    assert "- every category: " in text and "the given images (--references)" in text

    zero = evaluate(StandInDetector(), "mvtec_loco", loco)
    save_run(zero, tmp_path / "zero")
    text = write_report(load_run(tmp_path / "zero"), tmp_path / "zero-report", plots=False)["markdown"].read_text()
    assert " zero-shot on mvtec_loco" in text.splitlines()[0] and "Reference images: none." in text
