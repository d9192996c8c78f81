"""Issue 12 item 2: single in-memory images through the Python API.

A PIL image, an H x W x 3 array and an H x W array are one image each; an N x H x W x 3 array is N images. Each
result's score is checked against scoring the same picture given as a file, so a wrong split (rows taken as
images, channels as images) fails even when the count happens to match.
"""
from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from zsad.detector import Detector


@pytest.fixture(scope="module")
def detector():
    return Detector("tiny-clip", method="text", threshold=0.5)


@pytest.fixture(scope="module")
def arrays():
    rng = np.random.default_rng(3)
    return (rng.random((3, 64, 80, 3)) * 255).astype(np.uint8)


def _score_as_file(detector, array, tmp_path, name="x.png"):
    path = tmp_path / name
    Image.fromarray(array).save(path)
    (result,) = detector.detect([path])
    return result.score


def test_single_pil_image(detector, arrays, tmp_path):
    results = detector.detect(Image.fromarray(arrays[0]))
    assert len(results) == 1 and results[0].ok, results
    assert results[0].original_size == (80, 64)
    assert results[0].score == pytest.approx(_score_as_file(detector, arrays[0], tmp_path), abs=1e-6)


def test_single_pil_image_from_a_file_keeps_its_name(detector, arrays, tmp_path):
    path = tmp_path / "part.png"
    Image.fromarray(arrays[1]).save(path)
    with Image.open(path) as image:
        (result,) = detector.detect(image)
    assert result.ok and result.name == "part.png"


def test_single_colour_array(detector, arrays, tmp_path):
    results = detector.detect(arrays[1])
    assert len(results) == 1 and results[0].ok, results
    assert results[0].original_size == (80, 64)
    assert results[0].score == pytest.approx(_score_as_file(detector, arrays[1], tmp_path), abs=1e-6)


def test_single_greyscale_array(detector, arrays, tmp_path):
    grey = arrays[2, ..., 0]
    results = detector.detect(grey)
    assert len(results) == 1 and results[0].ok, results
    assert results[0].original_size == (80, 64)
    assert results[0].score == pytest.approx(_score_as_file(detector, grey, tmp_path), abs=1e-6)


def test_batch_array_is_one_image_per_row(detector, arrays, tmp_path):
    results = detector.detect(arrays)
    assert len(results) == 3 and all(r.ok for r in results), results
    assert [r.original_size for r in results] == [(80, 64)] * 3
    for index, result in enumerate(results):
        assert result.score == pytest.approx(_score_as_file(detector, arrays[index], tmp_path, f"{index}.png"),
                                             abs=1e-6)
    assert len({r.name for r in results}) == 3


def test_list_of_mixed_inputs(detector, arrays):
    results = detector.detect([Image.fromarray(arrays[0]), arrays[1], arrays[2, ..., 0]])
    assert len(results) == 3 and all(r.ok for r in results)
