"""MVTec LOCO AD through ``evaluate``: a generated LOCO tree, the protocol tables equal the official evaluation
(``tests/metrics/official_loco.py``) applied to the same maps and ground-truth PNGs."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from standin_detector import StandInDetector

from zsad.errors import ZsadError
from zsad.evaluation import evaluate, load_run, save_run
from zsad.evaluation.loco import read_defect_types, read_regions
from zsad.metrics.spro import LOCO_KINDS, spro_key

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "metrics"))
import official_loco as off  # noqa: E402

CONFIG = [
    {"defect_name": "missing_part", "pixel_value": 255, "saturation_threshold": 60, "relative_saturation": False},
    {"defect_name": "extra_part", "pixel_value": 254, "saturation_threshold": 5000, "relative_saturation": False},
    {"defect_name": "scratch", "pixel_value": 253, "saturation_threshold": 0.4, "relative_saturation": True},
]
SIZE = (48, 32)  # width, height: not square, so that map and mask orientation matter


def write_loco(root: Path, category: str, seed: int) -> None:
    """train/good, test/{good, logical_anomalies, structural_anomalies} and one ground-truth folder per anomalous
    image with one PNG per defect (grey value = the defect's pixel_value; sometimes two overlapping defects)."""
    rng = np.random.default_rng(seed)
    base = root / category
    (base / "defects_config.json").parent.mkdir(parents=True, exist_ok=True)
    (base / "defects_config.json").write_text(json.dumps(CONFIG))
    width, height = SIZE

    def image(defects: list[np.ndarray]) -> Image.Image:
        pixels = 120 + 10 * rng.standard_normal((height, width))
        for mask in defects:
            pixels[mask] += rng.uniform(40, 110)
        return Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8)).convert("RGB")

    for split, folder, count in (("train", "good", 2), ("test", "good", 4)):
        (base / split / folder).mkdir(parents=True, exist_ok=True)
        for i in range(count):
            image([]).save(base / split / folder / f"{i:03d}.png")
    for kind in LOCO_KINDS:
        (base / "test" / kind).mkdir(parents=True, exist_ok=True)
        for i in range(3):
            masks, values = [], []
            for _ in range(1 + (i % 2)):
                mask = np.zeros((height, width), bool)
                h, w = int(rng.integers(3, 13)), int(rng.integers(3, 17))
                y, x = int(rng.integers(0, height - h)), int(rng.integers(0, width - w))
                mask[y:y + h, x:x + w] = True
                masks.append(mask)
                values.append(CONFIG[int(rng.integers(0, len(CONFIG)))]["pixel_value"])
            image(masks).save(base / "test" / kind / f"{i:03d}.png")
            gt = base / "ground_truth" / kind / f"{i:03d}"
            gt.mkdir(parents=True)
            for j, (mask, value) in enumerate(zip(masks, values)):
                Image.fromarray(mask.astype(np.uint8) * value).save(gt / f"{j:03d}.png")


@pytest.fixture(scope="module")
def loco(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("loco")
    write_loco(root, "juice_bottle", 0)
    write_loco(root, "pushpins", 1)
    return root


def official_of(run, category: str) -> dict:
    """The official evaluation of one category, on the run's own full-size maps and the PNGs as the official
    script reads them; image scores: the detector's (the official script would take map maxima)."""
    records = run.records_of(category)
    defects = off.defects_from_list(CONFIG)
    maps, gt, kinds = [], [], []
    for record in records:
        maps.append(run.anomaly_map(record))
        kinds.append("good" if record.label == 0 else record.defect)
        gt.append(None if record.mask_path is None else
                  [off.channel_from_array(np.array(Image.open(p)), defects) for p in sorted(Path(record.mask_path).glob("*.png"))])
    scores = np.unique(np.concatenate([m.ravel() for m in maps]).astype(np.float64))
    thresholds = np.concatenate([[scores[-1] + 1e-6], scores[::-1], [scores[0] - 1e-6]])
    result = off.evaluate_object(gt, maps, kinds, thresholds=thresholds)
    by_kind = {k: [r.score for r in records if (r.defect or "good") == k] for k in ("good", *LOCO_KINDS)}
    result["classification"]["auc_roc"] = {k: off.classification_auc(by_kind["good"], by_kind[k]) for k in LOCO_KINDS}
    return result


def test_loco_protocol_equals_the_official_evaluation(loco: Path, tmp_path: Path) -> None:
    run = evaluate(StandInDetector(), "mvtec_loco", loco)
    assert set(run.protocol_tables) == {"logical_anomalies", "structural_anomalies", "mean"}
    for category in ("juice_bottle", "pushpins"):
        official = official_of(run, category)
        for kind in LOCO_KINDS:
            row = run.protocol_tables[kind].rows[category]
            assert row["i_auroc"] == pytest.approx(official["classification"]["auc_roc"][kind], abs=1e-12)
            for limit in off.MAX_FPRS:
                assert row[spro_key(limit)] == pytest.approx(
                    official["localization"]["auc_spro"][kind][limit], abs=1e-6), (category, kind, limit)
        for key, value in run.protocol_tables["mean"].rows[category].items():
            halves = [run.protocol_tables[k].rows[category][key] for k in LOCO_KINDS]
            assert value == pytest.approx(sum(halves) / 2)
    benchmark = run.protocol_tables["mean"].mean()  # the benchmark number: mean over categories of the mean
    assert benchmark[spro_key(0.05)] == pytest.approx(np.mean(
        [run.protocol_tables["mean"].rows[c][spro_key(0.05)] for c in ("juice_bottle", "pushpins")]))
    # the pooled table stays: union masks, one AUROC over both kinds
    assert {"i_auroc", "p_auroc", "aupro"} <= set(run.table.rows["pushpins"])
    assert set(run.defect_tables["pushpins"].rows) == set(LOCO_KINDS)
    save_run(run, tmp_path / "run")
    assert load_run(tmp_path / "run").protocol_tables == run.protocol_tables
    saved = json.loads((tmp_path / "run" / "metrics.json").read_text())["protocol_metrics"]
    assert saved["mean"]["mean"][spro_key(0.05)] == pytest.approx(benchmark[spro_key(0.05)])


def test_loco_ground_truth_reader(loco: Path, tmp_path: Path) -> None:
    defects = read_defect_types(loco / "juice_bottle")
    assert {d.name for d in defects.values()} == {"missing_part", "extra_part", "scratch"}
    folder = loco / "juice_bottle" / "ground_truth" / "logical_anomalies" / "001"
    regions = read_regions(folder, defects, SIZE)
    assert len(regions) == 2 and all(r.mask.shape == (SIZE[1], SIZE[0]) for r in regions)
    assert regions[0].defect == defects[int(np.array(Image.open(folder / "000.png")).max())]
    bad = tmp_path / "bad"
    bad.mkdir()
    Image.fromarray(np.full((4, 4), 7, np.uint8)).save(bad / "000.png")
    with pytest.raises(ZsadError, match="grey value 7 is not in defects_config.json"):
        read_regions(bad, defects, (4, 4))
    with pytest.raises(ZsadError, match="defects_config.json.*saturation thresholds"):
        read_defect_types(tmp_path)


def test_loco_without_defects_config_keeps_auroc_and_says_why(loco: Path, tmp_path: Path) -> None:
    import shutil

    root = tmp_path / "loco"
    shutil.copytree(loco / "pushpins", root / "pushpins")
    (root / "pushpins" / "defects_config.json").unlink()
    run = evaluate(StandInDetector(), "mvtec_loco", root)
    row = run.protocol_tables["logical_anomalies"].rows["pushpins"]
    assert not np.isnan(row["i_auroc"]) and np.isnan(row[spro_key(0.05)])
    assert "LOCO AU-sPRO skipped" in run.notes["pushpins"] and "defects_config.json" in run.notes["pushpins"]
