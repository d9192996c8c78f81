"""Mutual scoring (MuSc) checked against loop-by-loop reference implementations written here from the paper's
definitions, on tiny random tensors."""
from __future__ import annotations

import math

import pytest
import torch

from zsad.errors import ZsadError
from zsad.scoring.mutual import (
    MutualConfig,
    auto_chunks,
    interval_bounds,
    lnamd,
    msm,
    mutual_scores,
    plan_blocks,
    reference_sets,
    rscin,
)


# ----------------------------------------------------------------------------------------------------------------
# brute-force references (explicit loops, float64)

def brute_lnamd(maps: torch.Tensor, r: int, l2: bool = True) -> torch.Tensor:
    """maps [N, h, w, C] -> LayerNorm over the whole map, r x r zero-padded mean (divide by r*r), unit norm."""
    maps = maps.double()
    n, h, w, c = maps.shape
    out = torch.zeros_like(maps)
    for i in range(n):
        values = maps[i].flatten().tolist()
        mean = sum(values) / len(values)
        var = sum((v - mean) ** 2 for v in values) / len(values)
        normed = (maps[i] - mean) / math.sqrt(var + 1e-5)
        for y in range(h):
            for x in range(w):
                acc = torch.zeros(c, dtype=torch.float64)
                for dy in range(-(r // 2), r // 2 + 1):
                    for dx in range(-(r // 2), r // 2 + 1):
                        if 0 <= y + dy < h and 0 <= x + dx < w:
                            acc += normed[y + dy, x + dx]
                acc /= r * r
                out[i, y, x] = acc / acc.norm() if l2 else acc
    return out


def brute_msm(z: torch.Tensor, interval: tuple[float, float], refs: list[set[int]] | None = None) -> torch.Tensor:
    """z [N, P, C] -> [N, P]: mean of sorted per-image nearest-patch distances, ranks [int(n lo), int(n hi))."""
    z = z.double()
    n, p, _ = z.shape
    out = torch.zeros(n, p, dtype=torch.float64)
    for i in range(n):
        others = sorted(set(range(n)) - {i}) if refs is None else sorted(refs[i])
        k_min = int(len(others) * interval[0])
        k_max = max(int(len(others) * interval[1]), k_min + 1)
        for a in range(p):
            minima = []
            for j in others:
                minima.append(min(float((z[i, a] - z[j, b]).norm()) for b in range(p)))
            minima.sort()
            chosen = minima[k_min:k_max]
            out[i, a] = sum(chosen) / len(chosen)
    return out


def brute_rscin(scores: torch.Tensor, cls: torch.Tensor, k_list) -> torch.Tensor:
    """Official MMO written out: per row keep the k most similar images (self included), weighted mean of s."""
    s = [(float(v) - float(scores.min())) / float(scores.max() - scores.min()) for v in scores]
    n = len(s)
    sim = [[max(0.0, float(torch.nn.functional.cosine_similarity(cls[i].double(), cls[j].double(), dim=0)))
            for j in range(n)] for i in range(n)]
    out = [0.0] * n
    for k in k_list:
        for i in range(n):
            kept = sorted(range(n), key=lambda j: -sim[i][j])[: min(k, n)]
            out[i] += sum(sim[i][j] * s[j] for j in kept) / sum(sim[i][j] for j in kept) / len(k_list)
    return torch.tensor(out)


# ----------------------------------------------------------------------------------------------------------------
# LNAMD

@pytest.mark.parametrize("r", [1, 3, 5])
def test_lnamd_equals_brute_force(r):
    maps = torch.randn(3, 4, 5, 6) * 3 + 1
    assert torch.allclose(lnamd(maps, r), brute_lnamd(maps, r).float(), atol=1e-5)


def test_lnamd_without_l2_and_with_layers_and_half_precision():
    tokens = torch.randn(2, 3, 4, 4, 8)  # [N, L, h, w, C]: each (image, layer) map is independent
    out = lnamd(tokens, 3, l2_normalize=False, chunk=4)
    for layer in range(3):
        assert torch.allclose(out[:, layer], brute_lnamd(tokens[:, layer], 3, l2=False).float(), atol=1e-5)
    half = lnamd(tokens.half(), 3, out_dtype=torch.float16)
    assert half.dtype == torch.float16
    assert torch.allclose(half.float(), lnamd(tokens.half().float(), 3), atol=2e-3)


def test_lnamd_rejects_even_radius():
    with pytest.raises(ZsadError, match="odd"):
        lnamd(torch.randn(2, 4, 4, 8), 2)


# ----------------------------------------------------------------------------------------------------------------
# MSM

@pytest.mark.parametrize("n, interval", [(5, (0.0, 0.3)), (6, (0.2, 0.8)), (4, (0.0, 1.0))])
def test_msm_equals_brute_force(n, interval):
    z = torch.randn(n, 4, 4, 8)
    expected = brute_msm(z.reshape(n, 16, 8), interval).reshape(n, 4, 4)
    assert torch.allclose(msm(z, interval), expected.float(), atol=1e-5)


def test_interval_bounds_follow_musc_and_keep_one_value():
    assert interval_bounds(199, (0.0, 0.3)) == (0, 59)  # int(199 * 0.3), as MuSc's topmin_max
    assert interval_bounds(10, (0.1, 0.5)) == (1, 5)
    assert interval_bounds(2, (0.0, 0.3)) == (0, 1)  # MuSc would average an empty set here
    assert interval_bounds(3, (0.9, 1.0)) == (2, 3)


@pytest.mark.parametrize("query_chunk, ref_chunk", [(1, 1), (2, 3), (3, 1), (7, 7), (4, 2)])
def test_msm_chunking_does_not_change_the_result(query_chunk, ref_chunk):
    z = torch.randn(7, 3, 3, 8)
    whole = msm(z, query_chunk=7, ref_chunk=7)
    chunked = msm(z, query_chunk=query_chunk, ref_chunk=ref_chunk)
    assert torch.allclose(chunked, whole, atol=1e-6)


def test_msm_is_unchanged_by_a_tiny_memory_budget():
    z = torch.randn(6, 3, 3, 8)
    assert torch.allclose(msm(z, memory_mb=1e-3), msm(z, query_chunk=6, ref_chunk=6), atol=1e-6)


def test_msm_duplicate_images_score_zero_not_nan():
    z = torch.nn.functional.normalize(torch.randn(1, 16, 32), dim=-1).repeat(4, 1, 1) * 3.0
    scores = msm(z)
    assert torch.isfinite(scores).all()
    assert scores.abs().max() < 1e-2


def test_msm_half_precision_storage_matches_float32_of_the_same_values():
    z = torch.nn.functional.normalize(torch.randn(5, 9, 8), dim=-1).half()
    assert torch.allclose(msm(z), msm(z.float()), atol=1e-5)


# ----------------------------------------------------------------------------------------------------------------
# bounding the O(N^2) work

def test_max_refs_compares_each_image_with_exactly_m_others_each_used_m_times():
    n, m = 11, 4
    refs = reference_sets(n, max_refs=m, seed=3)
    assert all(len(r) == m and i not in r for i, r in enumerate(refs))
    used = [sum(j in r for r in refs) for j in range(n)]
    assert used == [m] * n
    assert refs != reference_sets(n, max_refs=m, seed=4)  # the subset is random, and seeded
    assert refs == reference_sets(n, max_refs=m, seed=3, query_chunk=5)  # chunking never changes it


def test_max_refs_scores_equal_brute_force_on_the_documented_subsets():
    n, m = 9, 3
    z = torch.randn(n, 6, 8)
    refs = reference_sets(n, max_refs=m, seed=1)
    expected = brute_msm(z, (0.0, 0.7), refs).float()
    for query_chunk, ref_chunk in [(1, 1), (3, 2), (4, 5), (9, 9)]:
        got = msm(z, (0.0, 0.7), max_refs=m, seed=1, query_chunk=query_chunk, ref_chunk=ref_chunk)
        assert torch.allclose(got, expected, atol=1e-5)


def test_max_refs_at_least_n_minus_one_is_the_full_comparison():
    z = torch.randn(6, 5, 8)
    assert torch.allclose(msm(z, max_refs=5), msm(z), atol=1e-6)
    assert torch.allclose(msm(z, max_refs=50, query_chunk=2), msm(z), atol=1e-6)


def test_groups_partition_the_batch_and_score_each_group_alone():
    n, groups = 10, 3
    refs = reference_sets(n, groups=groups, seed=2)
    parts = {frozenset(r | {i}) for i, r in enumerate(refs)}
    assert sorted(len(p) for p in parts) == [3, 3, 4]
    assert set().union(*parts) == set(range(n))
    z = torch.randn(n, 4, 8)
    assert torch.allclose(msm(z, groups=groups, seed=2), brute_msm(z, (0.0, 0.3), refs).float(), atol=1e-5)
    with pytest.raises(ZsadError, match="at most 5 groups"):
        plan_blocks(n, query_chunk=2, groups=6)


def test_plan_covers_every_image_once():
    for kwargs in [{}, {"max_refs": 3}, {"groups": 2}, {"groups": 2, "max_refs": 2}]:
        blocks = plan_blocks(13, query_chunk=4, seed=5, **kwargs)
        queries = torch.cat([b.queries for b in blocks]).sort().values
        assert torch.equal(queries, torch.arange(13))
        for b in blocks:
            assert torch.equal(b.valid.sum(1), torch.full((len(b.queries),), b.n_refs))


# ----------------------------------------------------------------------------------------------------------------
# RsCIN

def test_rscin_equals_brute_force():
    scores = torch.rand(7)
    cls = torch.randn(7, 5) + 1.0  # images of one product: positive cosines
    for k_list in [(1, 2, 3), (1, 8, 9), (2,), (4, 6)]:
        assert torch.allclose(rscin(scores, cls, k_list), brute_rscin(scores, cls, k_list).float(), atol=1e-6)


def test_rscin_k1_is_minmax_and_negative_cosines_do_not_break_rows():
    scores = torch.tensor([2.0, 5.0, 3.0, 4.0])
    cls = torch.randn(4, 3)
    assert torch.allclose(rscin(scores, cls, (1,)), (scores - 2) / 3)
    out = rscin(scores, -cls.abs() * torch.tensor([1.0, -1.0, 1.0, -1.0])[:, None], (2, 3))
    assert torch.isfinite(out).all() and (out >= 0).all() and (out <= 1).all()
    assert torch.equal(rscin(torch.ones(4), cls, (1, 2)), torch.zeros(4))


# ----------------------------------------------------------------------------------------------------------------
# the whole scorer

def test_mutual_scores_equals_brute_force_pipeline():
    n, layers, h, w, c = 5, 2, 4, 4, 8
    tokens = torch.randn(n, layers, h, w, c)
    cls = torch.randn(n, 6) + 1.0
    config = MutualConfig(radii=(1, 3), interval=(0.0, 0.5), rscin_k=(1, 2, 3))
    result = mutual_scores(tokens, cls, config)

    expected = torch.zeros(n, h * w, dtype=torch.float64)
    for layer in range(layers):
        for r in config.radii:
            z = brute_lnamd(tokens[:, layer], r).reshape(n, h * w, c)
            expected += brute_msm(z, config.interval) / (layers * len(config.radii))
    expected_maps = expected.reshape(n, h, w).float()
    assert result.source == "mutual"
    assert result.maps.shape == (n, h, w) and result.scores.shape == (n,)
    assert torch.allclose(result.maps, expected_maps, atol=1e-5)
    raw = expected_maps.flatten(1).amax(1)
    assert torch.allclose(result.scores, brute_rscin(raw, cls, config.rscin_k).float(), atol=1e-5)

    no_rscin = mutual_scores(tokens, cls, MutualConfig(radii=(1, 3), interval=(0.0, 0.5), rscin_k=None))
    assert torch.allclose(no_rscin.scores, raw, atol=1e-5)
    assert torch.allclose(mutual_scores(tokens, None, config).scores, raw, atol=1e-5)


def test_mutual_scores_chunked_equals_unchunked_and_half_input_is_close():
    tokens = torch.randn(6, 2, 3, 3, 8)
    cls = torch.randn(6, 4) + 1.0
    whole = mutual_scores(tokens, cls, MutualConfig(query_chunk=6, ref_chunk=6))
    chunked = mutual_scores(tokens, cls, MutualConfig(query_chunk=1, ref_chunk=2))
    assert torch.allclose(chunked.maps, whole.maps, atol=1e-6)
    assert torch.allclose(chunked.scores, whole.scores, atol=1e-6)
    half = mutual_scores(tokens.half(), cls, MutualConfig())
    assert half.maps.dtype == torch.float32
    assert torch.allclose(half.maps, whole.maps, atol=5e-3)


def test_planted_outlier_patch_gets_the_highest_score():
    n, h, w, c = 8, 5, 5, 16
    base = torch.randn(1, 1, h, w, c)
    tokens = base + 0.05 * torch.randn(n, 1, h, w, c)  # eight views of one product
    tokens[3, 0, 2, 1] = 4.0 * torch.randn(c)  # one defect
    result = mutual_scores(tokens, torch.randn(n, 4) + 2.0, MutualConfig(radii=(1,), rscin_k=None))
    flat = int(result.maps.flatten().argmax())
    assert divmod(flat, h * w) == (3, 2 * w + 1)
    assert int(result.scores.argmax()) == 3


def test_bad_inputs_raise_clear_errors():
    with pytest.raises(ZsadError, match="at least 2 images"):
        mutual_scores(torch.randn(1, 1, 2, 2, 4))
    with pytest.raises(ZsadError, match=r"\[N, L, h, w, C\]"):
        mutual_scores(torch.randn(3, 2, 2, 4))
    with pytest.raises(ZsadError, match="image embeddings"):
        mutual_scores(torch.randn(3, 1, 2, 2, 4), torch.randn(2, 5))
    with pytest.raises(ZsadError, match="odd"):
        MutualConfig(radii=(1, 2))
    with pytest.raises(ZsadError, match="interval"):
        MutualConfig(interval=(0.5, 0.3))
    with pytest.raises(ZsadError, match="max_refs"):
        MutualConfig(max_refs=0)


def test_auto_chunks_respect_the_budget_for_vit_l_at_518_with_1000_images():
    p, c, n, interval, budget_mb = 37 * 37, 1024, 1000, (0.0, 0.3), 2048
    q, rc = auto_chunks(p, c, n, interval, budget_mb)
    k_max = math.ceil(n * interval[1])
    buffers = q * p * (4 * c + 4 * n + 12 * k_max) + 4 * q * p * rc * p + 4 * rc * p * c
    assert q >= 1 and rc >= 1
    assert buffers <= budget_mb * 2**20
    # the buffers grow linearly with N (minima), never with N^2
    q2, rc2 = auto_chunks(p, c, 2 * n, interval, budget_mb)
    assert q2 * p * 4 * 2 * n <= budget_mb * 2**20
