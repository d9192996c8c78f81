"""Graded defects of ``zsad synth``: levels recorded in the manifest, planted area monotone in the size level,
contrast applied as a blend, and the default output untouched."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from zsad.data import synth
from zsad.data.severity import Severity, severity_for
from zsad.data.synth import SYNTH_CATEGORIES, generate_dataset
from zsad.errors import DatasetError

SIZE = 96


@pytest.fixture(scope="module")
def graded(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return generate_dataset(tmp_path_factory.mktemp("graded") / "set", categories=["pill", "weave"], size=SIZE,
                            seed=5, n_train=1, n_test_good=1, n_test_defect=9, severity_levels=3)


def test_manifest_records_every_test_image_with_its_levels_and_area(graded: Path) -> None:
    for category in ("pill", "weave"):
        manifest = json.loads((graded / category / "manifest.json").read_text())
        assert manifest["severity_levels"] == 3 and manifest["graded"] == ["size", "contrast"]
        records = {r["image"]: r for r in manifest["images"]}
        defects = SYNTH_CATEGORIES[category].defects
        assert len(records) == 1 + 9 * len(defects)
        assert records["test/good/000.png"]["defect"] is None and records["test/good/000.png"]["area_fraction"] == 0
        for defect in defects:
            pairs = {(records[f"test/{defect}/{i:03d}.png"]["size_level"],
                      records[f"test/{defect}/{i:03d}.png"]["contrast_level"]) for i in range(9)}
            assert pairs == {(s, c) for s in (1, 2, 3) for c in (1, 2, 3)}  # every combination once
            for i in range(9):
                record = records[f"test/{defect}/{i:03d}.png"]
                mask = np.asarray(Image.open(graded / category / record["mask"])) > 0
                assert record["area_fraction"] == pytest.approx(mask.mean())
                assert record["defect"] == defect


def test_planted_area_rises_strictly_with_the_size_level(graded: Path) -> None:
    for category in ("pill", "weave"):
        records = [r for r in json.loads((graded / category / "manifest.json").read_text())["images"] if r["defect"]]
        for defect in SYNTH_CATEGORIES[category].defects:
            by_level = {level: [r["area_fraction"] for r in records
                                if r["defect"] == defect and r["size_level"] == level] for level in (1, 2, 3)}
            assert max(by_level[1]) < min(by_level[2]) and max(by_level[2]) < min(by_level[3]), (category, defect)
            assert 0.005 <= min(by_level[1]) and max(by_level[3]) <= 0.05


def test_contrast_blends_the_painted_defect_over_the_clean_image() -> None:
    spec = SYNTH_CATEGORIES["pill"]
    strong = synth._graded(synth._DEFECT_PAINTERS["stain"], np.random.default_rng(0), spec.render(
        np.random.default_rng(1), SIZE), SIZE, spec.colours, Severity(3, size_level=2, contrast_level=3))
    scene = spec.render(np.random.default_rng(1), SIZE)
    weak = synth._graded(synth._DEFECT_PAINTERS["stain"], np.random.default_rng(0), scene, SIZE, spec.colours,
                         Severity(3, size_level=2, contrast_level=1))
    assert np.array_equal(strong[1], weak[1])  # same outline
    clean = scene.composite()
    assert np.allclose(weak[0] - clean, (strong[0] - clean) / 3)


def test_default_output_is_unchanged(tmp_path: Path) -> None:
    """severity_levels=0 writes what the generator always wrote: no manifest, the same bytes."""
    plain = generate_dataset(tmp_path / "plain", categories=["washer"], size=SIZE, seed=2, n_train=1,
                             n_test_good=1, n_test_defect=2)
    off = generate_dataset(tmp_path / "off", categories=["washer"], size=SIZE, seed=2, n_train=1, n_test_good=1,
                           n_test_defect=2, severity_levels=0, graded=("size",))
    files = sorted(p.relative_to(plain) for p in plain.rglob("*") if p.is_file())
    assert files == sorted(p.relative_to(off) for p in off.rglob("*") if p.is_file())
    assert not (plain / "washer" / "manifest.json").exists()
    assert all((plain / f).read_bytes() == (off / f).read_bytes() for f in files)


def test_severity_assignment_and_errors(tmp_path: Path) -> None:
    assert severity_for(4, 3) == Severity(3, size_level=2, contrast_level=2)
    assert severity_for(4, 3, ("size",)) == Severity(3, size_level=2)
    assert severity_for(4, 3, ("contrast",)) == Severity(3, contrast_level=2)
    with pytest.raises(DatasetError, match="grade one or both"):
        generate_dataset(tmp_path / "x", severity_levels=2, graded=("colour",))
    with pytest.raises(DatasetError, match="severity_levels=-1"):
        generate_dataset(tmp_path / "x", severity_levels=-1)
    with pytest.raises(DatasetError, match="size_level=4"):
        Severity(3, size_level=4)
