"""Tests of the zsad.data.layouts readers on tiny layouts built in tmp_path, and on ../shared/data when present."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from zsad.data import (
    DATASET_KINDS,
    Sample,
    folder_samples,
    load_samples,
    manifest_samples,
    mvtec_samples,
    visa_samples,
)
from zsad.errors import DatasetError

SHARED_DATA = Path(__file__).resolve().parents[2] / ".." / "shared" / "data"


def _touch(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"x")  # datasets only collect paths; pixels are never read here
    return path


def _by_path(samples: list[Sample]) -> dict[Path, Sample]:
    return {s.path: s for s in samples}


# ------------------------------------------------------------------------------------------------ MVTec


@pytest.fixture
def mvtec_root(tmp_path: Path) -> Path:
    root = tmp_path / "mvtec"
    for relative in [
        "bottle/train/good/000.png", "bottle/train/good/001.png",
        "bottle/test/good/000.png",
        "bottle/test/crack/000.png", "bottle/test/crack/001.png",  # 001 has no mask
        "bottle/ground_truth/crack/000_mask.png",
        "bottle/test/crack/.DS_Store", "bottle/test/crack/notes.txt",
        "screw/test/good/000.png", "screw/test/thread/004.PNG", "screw/ground_truth/thread/004_mask.png",
    ]:
        _touch(root / relative)
    (root / "license.txt").write_text("CC BY-NC-SA")
    (root / "empty_folder").mkdir()  # neither train/ nor test/: not a category
    return root


def test_mvtec_test_split(mvtec_root: Path) -> None:
    result = mvtec_samples(mvtec_root)
    assert list(result) == ["bottle", "screw"]
    bottle = _by_path(result["bottle"])
    assert set(bottle) == {mvtec_root / f"bottle/test/{d}/{n}.png" for d, n in
                           [("good", "000"), ("crack", "000"), ("crack", "001")]}
    good = bottle[mvtec_root / "bottle/test/good/000.png"]
    assert (good.label, good.mask_path, good.defect, good.category) == (0, None, None, "bottle")
    crack = bottle[mvtec_root / "bottle/test/crack/000.png"]
    assert (crack.label, crack.defect) == (1, "crack")
    assert crack.mask_path == mvtec_root / "bottle/ground_truth/crack/000_mask.png"
    unmasked = bottle[mvtec_root / "bottle/test/crack/001.png"]
    assert (unmasked.label, unmasked.mask_path) == (1, None)
    screw = result["screw"]
    assert [s.path.name for s in screw] == ["000.png", "004.PNG"]  # upper-case suffix accepted
    assert screw[1].mask_path == mvtec_root / "screw/ground_truth/thread/004_mask.png"
    assert [s.path for s in result["bottle"]] == sorted(s.path for s in result["bottle"])


def test_mvtec_train_split_and_category_filter(mvtec_root: Path) -> None:
    result = mvtec_samples(mvtec_root, categories=["bottle"], split="train")
    assert list(result) == ["bottle"]
    assert [(s.path.name, s.label, s.mask_path) for s in result["bottle"]] == [("000.png", 0, None),
                                                                                ("001.png", 0, None)]


def test_mvtec_errors(mvtec_root: Path, tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="missing_root.*not found"):
        mvtec_samples(tmp_path / "missing_root")
    with pytest.raises(DatasetError, match="'cable' not found; available: bottle, screw"):
        mvtec_samples(mvtec_root, categories=["cable"])
    with pytest.raises(DatasetError, match="screw.*no train split"):
        mvtec_samples(mvtec_root, categories=["screw"], split="train")
    with pytest.raises(DatasetError, match="bottle/val: category 'bottle' has no val split"):
        mvtec_samples(mvtec_root, split="val")
    with pytest.raises(DatasetError, match="unknown split 'dev'; use 'train', 'test' or 'val'"):
        mvtec_samples(mvtec_root, split="dev")
    with pytest.raises(DatasetError, match="itself a category folder"):
        mvtec_samples(mvtec_root / "bottle")
    (tmp_path / "flat").mkdir()
    with pytest.raises(DatasetError, match="no category folders"):
        mvtec_samples(tmp_path / "flat")


def test_mvtec_3d_original_layout(tmp_path: Path) -> None:
    root = tmp_path / "mvtec3d"
    for relative in ["tire/train/good/rgb/000.png", "tire/train/good/xyz/000.tiff",
                     "tire/test/good/rgb/000.png", "tire/test/hole/rgb/000.png", "tire/test/hole/gt/000.png",
                     "tire/test/hole/xyz/000.tiff"]:
        _touch(root / relative)
    test = mvtec_samples(root)["tire"]
    assert [(s.path.relative_to(root).as_posix(), s.label, s.defect) for s in test] == [
        ("tire/test/good/rgb/000.png", 0, None), ("tire/test/hole/rgb/000.png", 1, "hole")]
    assert test[1].mask_path == root / "tire/test/hole/gt/000.png"
    assert [s.path.name for s in mvtec_samples(root, split="train")["tire"]] == ["000.png"]


# ------------------------------------------------------------------------------------------------ VisA


def _write_csv(path: Path, header: list[str], rows: list[list[str]]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(rows)
    return path


VISA_HEADER = ["object", "split", "label", "image", "mask"]
VISA_ROWS = [
    ["candle", "train", "normal", "candle/Data/Images/Normal/0000.JPG", ""],
    ["candle", "test", "normal", "candle/Data/Images/Normal/0001.JPG", ""],
    ["candle", "test", "anomaly", "candle/Data/Images/Anomaly/000.JPG", "candle/Data/Masks/Anomaly/000.png"],
    ["pcb1", "test", "anomaly", "pcb1/Data/Images/Anomaly/007.JPG", "pcb1/Data/Masks/Anomaly/007.png"],
    ["pcb1", "train", "normal", "pcb1/Data/Images/Normal/0003.JPG", ""],
]


def test_visa_split_csv(tmp_path: Path) -> None:
    _write_csv(tmp_path / "split_csv" / "1cls.csv", VISA_HEADER, VISA_ROWS)
    result = visa_samples(tmp_path)
    assert list(result) == ["candle", "pcb1"]
    candle = _by_path(result["candle"])
    normal = candle[tmp_path / "candle/Data/Images/Normal/0001.JPG"]
    assert (normal.label, normal.mask_path, normal.defect) == (0, None, None)
    anomaly = candle[tmp_path / "candle/Data/Images/Anomaly/000.JPG"]
    assert (anomaly.label, anomaly.defect) == (1, "anomaly")
    assert anomaly.mask_path == tmp_path / "candle/Data/Masks/Anomaly/000.png"
    assert len(candle) == 2
    train = visa_samples(tmp_path, categories=["pcb1"], split="train")
    assert [(s.path.name, s.label) for s in train["pcb1"]] == [("0003.JPG", 0)]


def test_visa_custom_split_file_and_errors(tmp_path: Path) -> None:
    custom = _write_csv(tmp_path / "other.csv", VISA_HEADER, VISA_ROWS[:3])
    assert list(visa_samples(tmp_path, split_csv=custom)) == ["candle"]
    with pytest.raises(DatasetError, match="1cls.csv: VisA split file not found"):
        visa_samples(tmp_path)
    bad = _write_csv(tmp_path / "bad.csv", VISA_HEADER, [VISA_ROWS[1], ["candle", "test", "broken", "x.JPG", ""]])
    with pytest.raises(DatasetError, match="bad.csv: row 3 has label 'broken'"):
        visa_samples(tmp_path, split_csv=bad)
    no_mask_column = _write_csv(tmp_path / "cols.csv", VISA_HEADER[:4], [r[:4] for r in VISA_ROWS])
    with pytest.raises(DatasetError, match="missing column.*mask"):
        visa_samples(tmp_path, split_csv=no_mask_column)
    with pytest.raises(DatasetError, match="'fryum' not found"):
        visa_samples(tmp_path, categories=["fryum"], split_csv=custom)


# ------------------------------------------------------------------------------------------------ folders


def test_folder_samples(tmp_path: Path) -> None:
    batch = tmp_path / "widgets"
    for name in ["b.png", "a.jpg", "sub/c.png", ".hidden.png"]:
        _touch(batch / name)
    loose = _touch(tmp_path / "loose.bmp")
    result = folder_samples([batch, loose])
    assert list(result) == ["images", "widgets"]
    assert [s.path for s in result["widgets"]] == [batch / "a.jpg", batch / "b.png", batch / "sub" / "c.png"]
    assert all(s.label is None and s.mask_path is None and s.defect is None for s in result["widgets"])
    assert [s.path for s in result["images"]] == [loose]
    assert folder_samples(batch)["widgets"][0].category == "widgets"


def test_folder_with_good_and_defect_subfolders_is_labelled(tmp_path: Path) -> None:
    split = tmp_path / "cable"
    for name in ["good/1.png", "Good/2.png", "scratch/3.png", "cut/deep/4.png"]:
        _touch(split / name)
    samples = {s.path.name: s for s in folder_samples(split)["cable"]}
    assert {name: (s.label, s.defect) for name, s in samples.items()} == {
        "1.png": (0, None), "2.png": (0, None), "3.png": (1, "scratch"), "4.png": (1, "cut"),
    }


# ------------------------------------------------------------------------------------------------ manifests


def test_manifest_csv(tmp_path: Path) -> None:
    manifest = _write_csv(tmp_path / "lists" / "m.csv", ["path", "label", "mask", "category"], [
        ["imgs/a.png", "good", "", "cap"],
        ["imgs/b.png", "Defect", "masks/b.png", "cap"],
        ["/abs/c.png", "", "", ""],
        ["imgs/d.png", "1", "", "cap"],
        ["imgs/e.png", "0", "", "cap"],
    ])
    result = manifest_samples(manifest)
    assert list(result) == ["cap", "images"]
    cap = _by_path(result["cap"])
    base = tmp_path / "lists"
    assert cap[base / "imgs/a.png"].label == 0
    assert (cap[base / "imgs/b.png"].label, cap[base / "imgs/b.png"].mask_path) == (1, base / "masks/b.png")
    assert (cap[base / "imgs/d.png"].label, cap[base / "imgs/e.png"].label) == (1, 0)
    unlabelled = result["images"][0]
    assert (unlabelled.path, unlabelled.label) == (Path("/abs/c.png"), None)


def test_manifest_json(tmp_path: Path) -> None:
    manifest = tmp_path / "m.json"
    manifest.write_text(json.dumps([
        {"path": "a.png", "label": 0},
        {"path": "b.png", "label": "anomalous", "mask": "b_mask.png", "category": "nut", "defect": "bent"},
        {"path": "c.png", "label": "normal", "category": "nut"},
    ]))
    result = manifest_samples(manifest)
    assert [(s.path.name, s.label, s.category) for s in result["images"]] == [("a.png", 0, "images")]
    nut = result["nut"]
    assert [(s.path, s.label, s.mask_path, s.defect) for s in nut] == [
        (tmp_path / "b.png", 1, tmp_path / "b_mask.png", "bent"), (tmp_path / "c.png", 0, None, None)]


@pytest.mark.parametrize(
    ("rows", "pattern"),
    [
        ([{"path": "a.png"}, {"label": 1}], "row 2 has no 'path'"),
        ([{"path": "a.png", "label": "maybe"}], "row 1 has label 'maybe'"),
        ([{"path": "a.png", "label": 2}], "row 1 has label 2"),
        (["a.png"], "row 1 is not an object"),
        ([], "manifest has no rows"),
        ({"path": "a.png"}, "must be a list of objects"),
    ],
)
def test_manifest_json_errors(tmp_path: Path, rows: object, pattern: str) -> None:
    manifest = tmp_path / "m.json"
    manifest.write_text(json.dumps(rows))
    with pytest.raises(DatasetError, match=pattern):
        manifest_samples(manifest)


def test_manifest_csv_and_file_errors(tmp_path: Path) -> None:
    bad = _write_csv(tmp_path / "m.csv", ["path", "label"], [["a.png", "ok"], ["", "1"]])
    with pytest.raises(DatasetError, match=r"m.csv: row 3 has no 'path'"):
        manifest_samples(bad)
    with pytest.raises(DatasetError, match="gone.csv: manifest file not found"):
        manifest_samples(tmp_path / "gone.csv")
    (tmp_path / "m.yaml").write_text("- a.png")
    with pytest.raises(DatasetError, match="unknown manifest format '.yaml'"):
        manifest_samples(tmp_path / "m.yaml")
    (tmp_path / "broken.json").write_text("[{")
    with pytest.raises(DatasetError, match="not valid JSON"):
        manifest_samples(tmp_path / "broken.json")


# ------------------------------------------------------------------------------------------------ dispatch


def test_load_samples_dispatches_every_kind(mvtec_root: Path, tmp_path: Path) -> None:
    assert set(DATASET_KINDS) == {"mvtec", "mpdd", "mvtec_loco", "btad", "visa", "realiad", "hf", "folder", "manifest"}
    assert load_samples("mvtec", mvtec_root, ["screw"]) == mvtec_samples(mvtec_root, ["screw"])
    _write_csv(tmp_path / "visa" / "split_csv" / "1cls.csv", VISA_HEADER, VISA_ROWS)
    assert load_samples("visa", tmp_path / "visa", split="train") == visa_samples(tmp_path / "visa", split="train")
    folder = mvtec_root / "bottle" / "test"  # labelled by its good/ sub-folder; a split folder: named by its parent
    assert load_samples("folder", [folder]) == folder_samples([folder])
    assert list(load_samples("folder", folder)) == ["bottle"]
    manifest = tmp_path / "m.json"
    manifest.write_text(json.dumps([{"path": "a.png", "category": "x"}, {"path": "b.png", "category": "y"}]))
    assert list(load_samples("manifest", manifest, categories=["y"])) == ["y"]
    with pytest.raises(DatasetError, match="'z' not found; available: x, y"):
        load_samples("manifest", manifest, categories=["z"])
    with pytest.raises(DatasetError, match="unknown dataset kind 'coco'; use one of mvtec, mpdd, mvtec_loco, btad, visa, realiad, hf, folder, manifest"):
        load_samples("coco", mvtec_root)


# ------------------------------------------------------------------------------------------------ real data


def _shared_manifest_rows(category_dir: Path) -> list[dict[str, str]]:
    with (category_dir / "manifest.csv").open(newline="") as handle:
        return list(csv.DictReader(handle))


@pytest.mark.skipif(not SHARED_DATA.is_dir(), reason="../shared/data is not present")
@pytest.mark.parametrize("dataset", ["magnetic_tile", "mvtec3d_rgb", "mvtec_ad_subset"])
def test_shared_real_data_matches_its_manifests(dataset: str) -> None:
    """The MVTec reader must find exactly the images, labels and masks that each category's manifest lists."""
    root = SHARED_DATA / dataset
    for split in ("test", "train"):
        expected_categories = {
            c.name for c in root.iterdir() if c.is_dir() and any(
                r["split"] == split for r in _shared_manifest_rows(c))
        }
        if not expected_categories:
            with pytest.raises(DatasetError, match=f"no {split} split"):
                mvtec_samples(root, split=split)
            continue
        result = mvtec_samples(root, categories=sorted(expected_categories), split=split)
        for category, samples in result.items():
            category_dir = root / category
            expected = {
                (r["image"], r["mask"] or None, 0 if r["defect"] == "good" else 1)
                for r in _shared_manifest_rows(category_dir) if r["split"] == split
            }
            found = {
                (s.path.relative_to(category_dir).as_posix(),
                 s.mask_path.relative_to(category_dir).as_posix() if s.mask_path else None, s.label)
                for s in samples
            }
            assert found == expected, (dataset, category, split)
            assert len(found) == len(samples)


# ------------------------------------------------------------------------------------------------ more layouts


def _png(path: Path, array) -> Path:
    import numpy as np
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.asarray(array, dtype=np.uint8)).save(path)
    return path


def test_mpdd_is_the_mvtec_layout(mvtec_root: Path) -> None:
    assert load_samples("mpdd", mvtec_root) == mvtec_samples(mvtec_root)


def test_mvtec_loco_mask_folders_and_validation_split(tmp_path: Path) -> None:
    import numpy as np

    from zsad.data.layouts.base import load_sample_mask
    from zsad.data.layouts.mvtec import loco_samples

    root = tmp_path / "loco"
    for relative in ["juice_bottle/train/good/000.png", "juice_bottle/validation/good/000.png",
                     "juice_bottle/test/good/000.png", "juice_bottle/test/logical_anomalies/000.png",
                     "juice_bottle/test/structural_anomalies/000.png"]:
        _touch(root / relative)
    first = np.zeros((4, 6), np.uint8)
    first[0, 0] = 255
    second = np.zeros((4, 6), np.uint8)
    second[3, 5] = 237  # LOCO gives each region its own grey value (its saturation threshold)
    _png(root / "juice_bottle/ground_truth/logical_anomalies/000/000.png", first)
    _png(root / "juice_bottle/ground_truth/logical_anomalies/000/001.png", second)
    _png(root / "juice_bottle/ground_truth/structural_anomalies/000/000.png", first)
    samples = _by_path(loco_samples(root)["juice_bottle"])
    logical = samples[root / "juice_bottle/test/logical_anomalies/000.png"]
    assert (logical.label, logical.defect) == (1, "logical_anomalies")
    assert logical.mask_path == root / "juice_bottle/ground_truth/logical_anomalies/000"
    assert samples[root / "juice_bottle/test/good/000.png"].mask_path is None
    mask = load_sample_mask(logical.mask_path, (6, 4))
    assert mask.sum() == 2 and mask[0, 0] and mask[3, 5]
    assert load_sample_mask(None, (6, 4)).sum() == 0
    validation = load_samples("mvtec_loco", root, split="validation")["juice_bottle"]
    assert [s.path for s in validation] == [root / "juice_bottle/validation/good/000.png"]


def test_btad_numbered_categories_ok_ko_and_mask_suffixes(tmp_path: Path) -> None:
    from zsad.data.layouts.mvtec import btad_samples

    root = tmp_path / "btad"
    for relative in ["01/train/ok/0000.bmp", "01/test/ok/0000.bmp", "01/test/ko/0001.bmp",
                     "01/ground_truth/ko/0001.png",
                     "02/train/ok/0000.png", "02/test/ok/0000.png", "02/test/ko/0002.png",
                     "02/ground_truth/ko/0002.png",
                     "03/train/ok/0000.bmp", "03/test/ok/0000.bmp", "03/test/ko/0003.bmp",
                     "03/ground_truth/ko/0003.bmp"]:
        _touch(root / relative)
    result = btad_samples(root)
    assert list(result) == ["01", "02", "03"]
    for category, stem, mask_suffix in [("01", "0001", ".png"), ("02", "0002", ".png"), ("03", "0003", ".bmp")]:
        samples = result[category]
        assert [s.label for s in samples] == [1, 0]
        assert samples[0].defect == "ko" and samples[1].defect is None
        assert samples[0].mask_path == root / category / "ground_truth/ko" / f"{stem}{mask_suffix}"
    train = load_samples("btad", root, split="train")
    assert [s.path.name for s in train["03"]] == ["0000.bmp"] and train["03"][0].label == 0


def _realiad_root(tmp_path: Path) -> Path:
    root = tmp_path / "Real-IAD"
    images = root / "realiad_1024" / "audiojack"
    for relative in ["OK/S0001/audiojack_0001_OK_C1_20231021.jpg", "OK/S0002/audiojack_0002_OK_C1_20231021.jpg",
                     "NG/BX/S0003/audiojack_0003_NG_BX_C1_20231021.jpg",
                     "NG/BX/S0003/audiojack_0003_NG_BX_C1_20231021.png"]:
        _touch(images / relative)
    split = {
        "meta": {"prefix": "", "normal_class": "OK", "pre_transform": None},
        "train": [{"category": "audiojack", "anomaly_class": "OK", "mask_path": None,
                   "image_path": "OK/S0001/audiojack_0001_OK_C1_20231021.jpg"}],
        "test": [
            {"category": "audiojack", "anomaly_class": "BX",
             "image_path": "NG/BX/S0003/audiojack_0003_NG_BX_C1_20231021.jpg",
             "mask_path": "NG/BX/S0003/audiojack_0003_NG_BX_C1_20231021.png"},
            {"category": "audiojack", "anomaly_class": "OK", "mask_path": None,
             "image_path": "OK/S0002/audiojack_0002_OK_C1_20231021.jpg"},
        ],
    }
    jsons = root / "realiad_jsons" / "realiad_jsons"
    jsons.mkdir(parents=True)
    (jsons / "audiojack.json").write_text(json.dumps(split))
    return root


def test_realiad_json_split_files(tmp_path: Path) -> None:
    from zsad.data.layouts.realiad import realiad_samples

    root = _realiad_root(tmp_path)
    images = root / "realiad_1024" / "audiojack"
    test = realiad_samples(root)["audiojack"]
    assert [(s.path, s.label, s.defect, s.mask_path) for s in test] == [
        (images / "NG/BX/S0003/audiojack_0003_NG_BX_C1_20231021.jpg", 1, "BX",
         images / "NG/BX/S0003/audiojack_0003_NG_BX_C1_20231021.png"),
        (images / "OK/S0002/audiojack_0002_OK_C1_20231021.jpg", 0, None, None),
    ]
    assert all(s.path.is_file() for s in test)
    train = load_samples("realiad", root, split="train")["audiojack"]
    assert [s.label for s in train] == [0]
    with pytest.raises(DatasetError, match="json_dir"):
        realiad_samples(tmp_path / "Real-IAD" / "realiad_1024")


def _hf_rows(tmp_path: Path):
    import numpy as np

    image = np.full((8, 8, 3), 120, np.uint8)
    mask = np.zeros((8, 8), np.uint8)
    mask[2:4, 2:4] = 255
    good = _png(tmp_path / "src" / "good.png", image)
    bad = _png(tmp_path / "src" / "bad.png", image // 2)
    bad_mask = _png(tmp_path / "src" / "bad_mask.png", mask)
    return {"image": [str(good), str(bad), str(good)], "mask": [None, str(bad_mask), None],
            "label": [0, 1, 0], "category": ["cap", "cap", "nut"], "defect": ["", "scratch", ""]}


@pytest.mark.parametrize("form", ["save_to_disk", "parquet"])
def test_hf_datasets_formats(tmp_path: Path, form: str) -> None:
    import datasets as hf
    import numpy as np
    from PIL import Image

    from zsad.data.layouts.hf import hf_samples

    rows = _hf_rows(tmp_path)
    features = hf.Features({"image": hf.Image(), "mask": hf.Image(), "label": hf.ClassLabel(names=["good", "defect"]),
                            "category": hf.Value("string"), "defect": hf.Value("string")})
    data = hf.DatasetDict({"test": hf.Dataset.from_dict(rows, features=features)})
    data = hf.DatasetDict({"test": data["test"].cast_column("image", hf.Image()).map(lambda r: r)})  # embed bytes
    if form == "save_to_disk":
        source = tmp_path / "saved"
        data.save_to_disk(str(source))
    else:
        source = tmp_path / "parquet" / "test-00000.parquet"
        source.parent.mkdir()
        data["test"].to_parquet(str(source))
    cache = tmp_path / "cache"
    result = hf_samples(source, cache_dir=cache)
    assert list(result) == ["cap", "nut"]
    cap = sorted(result["cap"], key=lambda s: s.label)  # sorted by path, which depends on how bytes were stored
    assert [s.label for s in cap] == [0, 1]
    anomalous = cap[1]
    assert anomalous.defect == "scratch" and anomalous.mask_path is not None and anomalous.mask_path.is_file()
    assert np.array_equal(np.asarray(Image.open(anomalous.path)), np.asarray(Image.open(rows["image"][1])))
    assert np.asarray(Image.open(anomalous.mask_path)).astype(bool).sum() == 4
    assert cap[0].mask_path is None
    assert list(load_samples("hf", source, categories=["nut"], cache_dir=cache)) == ["nut"]


def test_hf_paths_on_disk_are_used_in_place_and_split_column(tmp_path: Path) -> None:
    import datasets as hf

    from zsad.data.layouts.hf import hf_samples

    rows = _hf_rows(tmp_path)
    rows["split"] = ["train", "test", "test"]
    source = tmp_path / "plain"
    hf.Dataset.from_dict(rows).save_to_disk(str(source))
    result = hf_samples(source, cache_dir=tmp_path / "cache")
    assert [s.path for s in result["cap"]] == [Path(rows["image"][1])]
    assert [s.path for s in hf_samples(source, split="train", cache_dir=tmp_path / "cache")["cap"]] == [
        Path(rows["image"][0])]
    assert not (tmp_path / "cache").exists()
