"""Greedy coreset: checked against a naive farthest-point loop and the 2-approximation of the k-center problem."""
from __future__ import annotations

import itertools

import pytest
import torch

from zsad.errors import ZsadError
from zsad.scoring.coreset import greedy_coreset, random_projection


def _naive_farthest_point(z: torch.Tensor, n: int) -> list[int]:
    """Textbook greedy k-center with explicit loops, in float64: start farthest from the centroid."""
    z = z.double()
    m = z.shape[0]
    centroid = z.mean(dim=0)
    start = max(range(m), key=lambda i: float(((z[i] - centroid) ** 2).sum()))
    chosen = [start]
    while len(chosen) < n:
        best_i, best_d = -1, -1.0
        for i in range(m):
            if i in chosen:
                continue
            d = min(float(((z[i] - z[j]) ** 2).sum()) for j in chosen)
            if d > best_d:
                best_i, best_d = i, d
        chosen.append(best_i)
    return chosen


def _covering_radius(z: torch.Tensor, idx: torch.Tensor) -> float:
    return float(torch.cdist(z.double(), z[idx].double()).min(dim=1).values.max())


def test_selection_is_the_greedy_farthest_point_sequence_in_the_projection() -> None:
    x = torch.randn(60, 200, generator=torch.Generator().manual_seed(1))
    got = greedy_coreset(x, 15, projection_dim=16, seed=3)
    z = random_projection(x, 16, seed=3)
    assert z.shape == (60, 16)
    assert got.dtype == torch.long and got.shape == (15,)
    assert got.tolist() == _naive_farthest_point(z, 15)


def test_narrow_features_are_not_projected() -> None:
    x = torch.randn(40, 8, generator=torch.Generator().manual_seed(2))
    assert torch.equal(random_projection(x, 128, seed=0), x)
    assert greedy_coreset(x, 10).tolist() == _naive_farthest_point(x, 10)


def test_projection_depends_on_seed_only() -> None:
    x = torch.randn(20, 300, generator=torch.Generator().manual_seed(3))
    assert torch.equal(random_projection(x, 32, seed=5), random_projection(x, 32, seed=5))
    assert not torch.allclose(random_projection(x, 32, seed=5), random_projection(x, 32, seed=6))
    # Linear: the projection of a sum is the sum of the projections.
    assert torch.allclose(random_projection(x[:1] + x[1:2], 32, seed=5),
                          random_projection(x[:1], 32, seed=5) + random_projection(x[1:2], 32, seed=5), atol=1e-5)


def test_full_size_keeps_everything() -> None:
    x = torch.randn(25, 6, generator=torch.Generator().manual_seed(4))
    assert sorted(greedy_coreset(x, 25).tolist()) == list(range(25))
    assert sorted(greedy_coreset(x, 99).tolist()) == list(range(25))


def test_covering_radius_shrinks_as_n_grows() -> None:
    x = torch.randn(200, 300, generator=torch.Generator().manual_seed(5))
    z = random_projection(x, 32, seed=0)
    radii = [_covering_radius(z, greedy_coreset(x, n, projection_dim=32)) for n in (1, 5, 20, 80, 200)]
    assert all(a >= b for a, b in zip(radii, radii[1:]))
    assert radii[0] > radii[2] > radii[3] and radii[-1] < 1e-4
    # Nested: a smaller coreset is a prefix of a larger one.
    assert greedy_coreset(x, 80, projection_dim=32)[:20].tolist() == greedy_coreset(x, 20, projection_dim=32).tolist()


def test_within_twice_the_optimal_covering_radius() -> None:
    x = torch.randn(12, 2, generator=torch.Generator().manual_seed(6))
    pairwise = ((x[:, None].double() - x[None].double()) ** 2).sum(dim=-1).sqrt()
    for n in (2, 3, 4):
        optimal = min(
            float(pairwise[:, list(s)].min(dim=1).values.max()) for s in itertools.combinations(range(12), n)
        )
        assert _covering_radius(x, greedy_coreset(x, n)) <= 2 * optimal + 1e-9


def test_duplicates_still_give_distinct_indices() -> None:
    x = torch.tensor([[0.0, 0.0], [1.0, 1.0]]).repeat(5, 1)  # 10 rows, 2 distinct points
    idx = greedy_coreset(x, 7)
    assert len(set(idx.tolist())) == 7


def test_bad_arguments_raise_zsad_errors() -> None:
    with pytest.raises(ZsadError):
        greedy_coreset(torch.randn(5, 3), 0)
    with pytest.raises(ZsadError):
        greedy_coreset(torch.randn(5), 2)
    with pytest.raises(ZsadError):
        greedy_coreset(torch.randn(0, 3), 1)
