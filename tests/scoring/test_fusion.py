"""Fusion against a direct computation of the documented robust z-score rule."""
import numpy as np
import pytest
import torch

from zsad.scoring.base import AnomalyMaps
from zsad.scoring.fusion import fuse


def test_single_evidence_is_returned_unchanged():
    only = AnomalyMaps(torch.rand(2, 3, 3), torch.rand(2), "text")
    assert fuse([only]) is only


def test_fused_values_are_means_of_robust_z_scores():
    g = torch.Generator().manual_seed(0)
    text = AnomalyMaps(torch.rand(3, 4, 4, generator=g), torch.rand(3, generator=g), "text")
    fewshot = AnomalyMaps(5 + 20 * torch.rand(3, 4, 4, generator=g), 5 + 20 * torch.rand(3, generator=g), "fewshot")
    fused = fuse([text, fewshot])
    expected_map = np.zeros((3, 4, 4))
    expected_score = np.zeros(3)
    for item in (text, fewshot):
        values = item.maps.numpy().ravel().astype(np.float64)
        median = np.median(values)
        scale = 1.4826 * np.median(np.abs(values - median))
        expected_map += (item.maps.numpy() - median) / scale / 2
        expected_score += (item.scores.numpy() - median) / scale / 2
    np.testing.assert_allclose(fused.maps.numpy(), expected_map, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(fused.scores.numpy(), expected_score, rtol=1e-4, atol=1e-4)
    assert fused.source == "text+fewshot"


def test_scale_of_one_evidence_does_not_dominate():
    base = torch.rand(2, 5, 5, generator=torch.Generator().manual_seed(1))
    a = AnomalyMaps(base, base.flatten(1).max(1).values, "a")
    b = AnomalyMaps(base * 1000 + 7, (base * 1000 + 7).flatten(1).max(1).values, "b")
    fused = fuse([a, b])
    alone = fuse([a, AnomalyMaps(base, a.scores, "a2")])
    torch.testing.assert_close(fused.maps, alone.maps, rtol=1e-4, atol=1e-4)


def test_constant_evidence_does_not_divide_by_zero():
    flat = AnomalyMaps(torch.full((1, 2, 2), 0.3), torch.tensor([0.3]), "flat")
    other = AnomalyMaps(torch.rand(1, 2, 2), torch.rand(1), "other")
    assert torch.isfinite(fuse([flat, other]).maps).all()


def test_empty_is_an_error():
    with pytest.raises(ValueError):
        fuse([])
