"""Issue 6 item 10: V-V attention feeds the text path only.

With ``vv_layers=2`` the text maps change (the point of V-V), while few-shot and mutual scoring, which compare
patch tokens with other images' patch tokens, must see exactly the tokens of the plain forward pass.
"""
from __future__ import annotations

import numpy as np
import pytest

from zsad.detector import Detector


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(5)
    images = (rng.random((5, 64, 64, 3)) * 255).astype(np.uint8)
    images[2, 20:36, 20:36] = (255, 0, 0)  # one odd patch so maps are not flat
    references = list((rng.random((2, 64, 64, 3)) * 255).astype(np.uint8))
    return images, references


def _run(method, vv, data, **kwargs):
    images, references = data
    detector = Detector("tiny-clip", method=method, vv_layers=vv, threshold=0.5)
    assert detector.backbone.vv_layers == vv
    return detector.detect(images, references=references if method == "fewshot" else None, **kwargs)


def _scores_and_grids(results):
    assert all(r.ok for r in results)
    return np.array([r.score for r in results]), np.stack([r.grid_map for r in results])


@pytest.mark.parametrize("method", ["fewshot", "mutual"])
def test_vv_leaves_patch_token_evidence_unchanged(method, data):
    plain_scores, plain_grids = _scores_and_grids(_run(method, 0, data))
    vv_scores, vv_grids = _scores_and_grids(_run(method, 2, data))
    np.testing.assert_allclose(vv_scores, plain_scores, rtol=0, atol=1e-6)
    np.testing.assert_allclose(vv_grids, plain_grids, rtol=0, atol=1e-6)


def test_vv_changes_text_evidence(data):
    plain_scores, plain_grids = _scores_and_grids(_run("text", 0, data))
    vv_scores, vv_grids = _scores_and_grids(_run("text", 2, data))
    assert np.abs(vv_grids - plain_grids).max() > 1e-4
    assert np.abs(vv_scores - plain_scores).max() > 1e-5
