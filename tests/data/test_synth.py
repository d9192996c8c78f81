"""Tests of zsad.data.synth: layout, determinism, exact masks, area range, variation and detectability."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from scipy import ndimage

from zsad.data import synth
from zsad.data.layouts.mvtec import mvtec_samples
from zsad.data.images import load_image, load_mask
from zsad.data.synth import DEFECT_TYPES, SYNTH_CATEGORIES, generate_dataset, make_image
from zsad.errors import DatasetError

SIZE = 128  # geometry scales with size; small keeps the tests fast
COUNTS = {"n_train": 3, "n_test_good": 2, "n_test_defect": 1}


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return generate_dataset(tmp_path_factory.mktemp("synth") / "set", size=SIZE, seed=7, **COUNTS)


def _files(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_categories_cover_textures_objects_and_defect_types() -> None:
    kinds = [c.kind for c in SYNTH_CATEGORIES.values()]
    assert kinds.count("texture") >= 2 and kinds.count("object") >= 2
    for category in SYNTH_CATEGORIES.values():
        assert set(category.defects) <= set(DEFECT_TYPES)
        if category.kind == "texture":
            assert "missing_part" not in category.defects
    assert set().union(*(c.defects for c in SYNTH_CATEGORIES.values())) == set(DEFECT_TYPES)


def test_layout(dataset: Path) -> None:
    files = _files(dataset)
    readme = files.pop("README.txt").decode()
    assert "seed=7" in readme and "Seed: 7" in readme
    expected = set()
    for name, category in SYNTH_CATEGORIES.items():
        expected |= {f"{name}/train/good/{i:03d}.png" for i in range(COUNTS["n_train"])}
        expected |= {f"{name}/test/good/{i:03d}.png" for i in range(COUNTS["n_test_good"])}
        for defect in category.defects:
            for i in range(COUNTS["n_test_defect"]):
                expected |= {f"{name}/test/{defect}/{i:03d}.png", f"{name}/ground_truth/{defect}/{i:03d}_mask.png"}
    assert set(files) == expected
    image = Image.open(dataset / "pill" / "train" / "good" / "000.png")
    assert (image.mode, image.size) == ("RGB", (SIZE, SIZE))


def test_masks_non_empty_exactly_for_defective_images_and_in_area_range(dataset: Path) -> None:
    test = mvtec_samples(dataset, split="test")
    assert set(test) == set(SYNTH_CATEGORIES)
    for category, samples in test.items():
        assert sum(s.label == 1 for s in samples) == len(SYNTH_CATEGORIES[category].defects) * COUNTS["n_test_defect"]
        for sample in samples:
            mask = load_mask(sample.mask_path, (SIZE, SIZE))
            if sample.label == 0:
                assert sample.mask_path is None and not mask.any()
                continue
            raw = np.asarray(Image.open(sample.mask_path))
            assert set(np.unique(raw)) <= {0, 255}
            assert 0.005 <= mask.mean() <= 0.05, (sample.path, mask.mean())
    assert all(s.label == 0 for s in mvtec_samples(dataset, split="train")["weave"])


def test_two_runs_are_byte_identical_and_seed_matters(dataset: Path, tmp_path: Path) -> None:
    again = generate_dataset(tmp_path / "again", size=SIZE, seed=7, **COUNTS)
    assert _files(again) == _files(dataset)
    other = generate_dataset(tmp_path / "other", categories=["grain"], size=SIZE, seed=8, **COUNTS)
    assert (other / "grain/train/good/000.png").read_bytes() != (dataset / "grain/train/good/000.png").read_bytes()


def test_each_image_has_its_own_stream(dataset: Path, tmp_path: Path) -> None:
    """A subset of categories, or fewer images, gives the same files as the full run."""
    subset = generate_dataset(tmp_path / "subset", categories=["washer"], size=SIZE, seed=7,
                              n_train=1, n_test_good=2, n_test_defect=1)
    for relative, content in _files(subset).items():
        if relative != "README.txt":
            assert content == (dataset / relative).read_bytes(), relative


@pytest.mark.parametrize(
    ("category", "defect"), [(c, d) for c, spec in SYNTH_CATEGORIES.items() for d in spec.defects]
)
def test_mask_is_exactly_the_changed_pixels(category: str, defect: str) -> None:
    """Paint each defect on a rendered scene (before noise) and compare its mask with the pixels it changed."""
    spec = SYNTH_CATEGORIES[category]
    rng = np.random.default_rng(3)
    scene = spec.render(rng, SIZE)
    clean = scene.composite()
    painted, mask = synth._DEFECT_PAINTERS[defect](rng, scene, SIZE, spec.colours)
    changed = np.abs(painted - clean).max(axis=-1) > 1.0
    assert mask.any()
    assert (changed & mask).sum() >= 0.99 * mask.sum()  # (almost) every masked pixel visibly changed
    if defect in {"stain", "missing_part"}:  # soft stain edges and anti-aliased object edges: within 2 px
        assert not (changed & ~ndimage.binary_dilation(mask, iterations=2)).any()
    else:
        assert not (changed & ~mask).any()


def test_normal_images_vary_beyond_noise(dataset: Path) -> None:
    for category in SYNTH_CATEGORIES:
        a, b = (np.asarray(Image.open(dataset / category / "train" / "good" / f"00{i}.png"), dtype=float)
                for i in (0, 1))
        smooth_diff = np.abs(ndimage.gaussian_filter(a - b, sigma=(2, 2, 0)))  # noise averages out
        assert smooth_diff.max() > 20, category


def _patches(path: Path, stride: int) -> torch.Tensor:
    pixels = torch.from_numpy(np.asarray(load_image(path).image, dtype=np.float32) / 255.0)
    return torch.nn.functional.unfold(pixels.permute(2, 0, 1)[None], kernel_size=8, stride=stride)[0].T


def test_defects_stand_out_to_a_patch_nearest_neighbour_detector(dataset: Path) -> None:
    """The intended use: every defective image scores above every good one when each test patch is scored by
    its distance to the nearest patch of the good training images (brute force, raw pixels)."""
    for category in SYNTH_CATEGORIES:
        train = mvtec_samples(dataset, [category], "train")[category]
        memory = torch.cat([_patches(s.path, stride=4) for s in train])  # dense memory, tiled queries
        scores = {0: [], 1: []}
        for sample in mvtec_samples(dataset, [category], "test")[category]:
            distances = torch.cdist(_patches(sample.path, stride=8), memory).min(dim=1).values
            scores[sample.label].append(float(distances.max()))
        assert min(scores[1]) > max(scores[0]), (category, scores)


def test_make_image_good_and_defective() -> None:
    image, mask = make_image("weave", None, size=SIZE, rng=np.random.default_rng(0))
    assert image.shape == (SIZE, SIZE, 3) and image.dtype == np.uint8 and not mask.any()
    image, mask = make_image("pill", "missing_part", size=SIZE, rng=np.random.default_rng(0))
    assert mask.shape == (SIZE, SIZE) and mask.any()


def test_errors(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="unknown synthetic category 'carpet'; use one of weave"):
        generate_dataset(tmp_path / "x", categories=["carpet"])
    with pytest.raises(DatasetError, match="'weave' has no defect 'missing_part'"):
        make_image("weave", "missing_part", rng=np.random.default_rng(0))
    with pytest.raises(DatasetError, match="n_test_good=-1"):
        generate_dataset(tmp_path / "x", n_test_good=-1)
    with pytest.raises(DatasetError, match="size=32"):
        generate_dataset(tmp_path / "x", size=32)
    out = generate_dataset(tmp_path / "x", categories=["grain"], size=64, n_train=1, n_test_good=1, n_test_defect=0)
    with pytest.raises(DatasetError, match="grain: already exists"):
        generate_dataset(out, categories=["grain"], size=64, n_train=1, n_test_good=1, n_test_defect=0)
    stale = out / "grain" / "train" / "good" / "999.png"
    stale.write_bytes(b"old")
    generate_dataset(out, categories=["grain"], size=64, n_train=1, n_test_good=0, n_test_defect=0, overwrite=True)
    assert not stale.exists() and (out / "grain" / "train" / "good" / "000.png").exists()
