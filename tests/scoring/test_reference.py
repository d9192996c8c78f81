"""Few-shot reference scoring, checked against explicit loops over test and memory patches."""
from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch

from zsad.errors import ZsadError
from zsad.scoring.reference import ReferenceConfig, ReferenceMemory, image_scores


def _randn(*shape: int, seed: int) -> torch.Tensor:
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed))


def _brute_force_maps(refs: list[torch.Tensor], test: torch.Tensor, metric: str) -> torch.Tensor:
    """Loops over every test patch and every reference patch of the same layer, in float64."""
    b, n_layers, h, w, _ = test.shape
    maps = torch.zeros(b, h, w, dtype=torch.float64)
    for i in range(b):
        for y in range(h):
            for x in range(w):
                total = 0.0
                for layer in range(n_layers):
                    q = test[i, layer, y, x].double()
                    best = math.inf
                    for ref in refs:
                        for k in range(ref.shape[0]):
                            for ry in range(ref.shape[2]):
                                for rx in range(ref.shape[3]):
                                    m = ref[k, layer, ry, rx].double()
                                    if metric == "cosine":
                                        d = 1.0 - float(q @ m) / float(q.norm() * m.norm())
                                    else:
                                        d = float(((q - m) ** 2).sum().sqrt())
                                    best = min(best, d)
                    total += best
                maps[i, y, x] = total / n_layers
    return maps


def _top_fraction(values: list[float]) -> float:
    k = max(1, len(values) // 100)
    return sum(sorted(values, reverse=True)[:k]) / k


@pytest.mark.parametrize("metric", ["cosine", "l2"])
def test_maps_equal_brute_force_on_a_different_grid(metric: str) -> None:
    refs = [_randn(2, 2, 3, 3, 5, seed=0), _randn(1, 2, 2, 4, 5, seed=1)]  # two sets, e.g. original + rotated
    test = _randn(2, 2, 4, 2, 5, seed=2) * 3.0
    memory = ReferenceMemory.build(refs, ReferenceConfig(metric=metric, chunk_size=4))
    result = memory.score(test)
    expected = _brute_force_maps(refs, test, metric)
    assert result.source == "fewshot"
    assert result.maps.shape == (2, 4, 2) and result.scores.shape == (2,)
    torch.testing.assert_close(result.maps.double(), expected, atol=1e-5, rtol=0)
    # 8 patches: top 1 % rounds down to zero patches, so at least one, i.e. the max.
    torch.testing.assert_close(result.scores.double(), expected.flatten(1).amax(dim=1), atol=1e-5, rtol=0)


@pytest.mark.parametrize("metric", ["cosine", "l2"])
def test_chunked_equals_unchunked(metric: str) -> None:
    refs = _randn(3, 2, 5, 5, 16, seed=3) + 4.0  # offset: large norms stress the L2 expansion
    test = _randn(3, 2, 6, 6, 16, seed=4) + 4.0
    whole = ReferenceMemory.build(refs, ReferenceConfig(metric=metric, chunk_size=100_000)).score(test)
    for chunk in (3, 7, 64):
        part = ReferenceMemory.build(refs, ReferenceConfig(metric=metric, chunk_size=chunk)).score(test)
        torch.testing.assert_close(part.maps, whole.maps, atol=1e-6, rtol=0)
        torch.testing.assert_close(part.scores, whole.scores, atol=1e-6, rtol=0)


def test_image_scores_by_direct_formula() -> None:
    for h, w in ((3, 3), (10, 25), (20, 20), (14, 14)):
        maps = _randn(3, h, w, seed=h * w)
        top = image_scores(maps, "top1pct")
        biggest = image_scores(maps, "max")
        for i in range(3):
            values = maps[i].flatten().tolist()
            assert top[i].item() == pytest.approx(_top_fraction(values), abs=1e-6)
            assert biggest[i].item() == pytest.approx(max(values), abs=1e-7)


def test_config_image_score_is_used() -> None:
    refs = _randn(2, 1, 4, 4, 8, seed=5)
    test = _randn(2, 1, 20, 15, 8, seed=6)  # 300 patches: top 1 % = mean of the 3 highest
    top = ReferenceMemory.build(refs, ReferenceConfig(image_score="top1pct")).score(test)
    mx = ReferenceMemory.build(refs, ReferenceConfig(image_score="max")).score(test)
    torch.testing.assert_close(top.maps, mx.maps)
    for i in range(2):
        values = top.maps[i].flatten().tolist()
        assert top.scores[i].item() == pytest.approx(_top_fraction(values), abs=1e-6)
        assert mx.scores[i].item() == pytest.approx(max(values), abs=1e-7)


def test_planted_outlier_gets_the_top_score() -> None:
    refs = _randn(4, 2, 6, 6, 32, seed=7)
    clean = refs[:1] + 0.05 * _randn(1, 2, 6, 6, 32, seed=8)  # a good image close to a reference
    bad = clean.clone()
    bad[0, :, 2, 4] = _randn(2, 32, seed=9) * 5.0
    for metric in ("cosine", "l2"):
        memory = ReferenceMemory.build(refs, ReferenceConfig(metric=metric))
        result = memory.score(torch.cat([clean, bad]))
        assert divmod(int(result.maps[1].argmax()), 6) == (2, 4)
        assert result.scores[1] > 2 * result.scores[0]


def test_concatenated_and_listed_sets_give_the_same_memory() -> None:
    a, b = _randn(2, 3, 4, 4, 8, seed=10), _randn(3, 3, 4, 4, 8, seed=11)
    test = _randn(2, 3, 5, 3, 8, seed=12)
    listed = ReferenceMemory.build([a, b]).score(test)
    joined = ReferenceMemory.build(torch.cat([a, b])).score(test)
    torch.testing.assert_close(listed.maps, joined.maps)


def test_coreset_memory_is_a_subset_and_scores_no_lower() -> None:
    refs = _randn(4, 2, 5, 5, 12, seed=13)
    test = _randn(2, 2, 5, 5, 12, seed=14)
    full = ReferenceMemory.build(refs)
    sub = ReferenceMemory.build(refs, ReferenceConfig(coreset_ratio=0.3))
    assert full.source_patches == sub.source_patches == 100
    assert sub.bank.shape == (2, 30, 12)
    for layer in range(2):  # every kept row is one of the layer's own rows
        diff = (sub.bank[layer][:, None] - full.bank[layer][None]).abs().amax(dim=-1)
        assert bool((diff.min(dim=1).values == 0).all())
    assert bool((sub.score(test).maps >= full.score(test).maps - 1e-6).all())
    kept_all = ReferenceMemory.build(refs, ReferenceConfig(coreset_ratio=1.0))
    torch.testing.assert_close(kept_all.score(test).maps, full.score(test).maps)


def test_low_precision_features_are_accepted() -> None:
    refs = _randn(2, 1, 3, 3, 8, seed=15)
    test = _randn(1, 1, 3, 3, 8, seed=16)
    memory = ReferenceMemory.build(refs.bfloat16())
    result = memory.score(test.bfloat16())
    assert memory.bank.dtype == torch.float32 and result.maps.dtype == torch.float32
    expected = _brute_force_maps([refs.bfloat16().float()], test.bfloat16().float(), "cosine")
    torch.testing.assert_close(result.maps.double(), expected, atol=1e-5, rtol=0)


def test_save_load_round_trip_and_metadata_check(tmp_path: Path) -> None:
    refs = _randn(2, 2, 4, 4, 8, seed=17)
    test = _randn(2, 2, 3, 3, 8, seed=18)
    config = ReferenceConfig(metric="l2", image_score="max", coreset_ratio=0.5, chunk_size=5, seed=3)
    meta = {"backbone": "ViT-B-16/openai", "layers": "6,9", "input_size": "224"}
    memory = ReferenceMemory.build(refs, config, meta)
    path = tmp_path / "memory.safetensors"
    memory.save(path)

    loaded = ReferenceMemory.load(path, expect_meta={"backbone": "ViT-B-16/openai", "layers": "6,9"})
    assert loaded.config == config and loaded.meta == meta and loaded.source_patches == 32
    assert torch.equal(loaded.bank, memory.bank)
    before, after = memory.score(test), loaded.score(test)
    assert torch.equal(before.maps, after.maps) and torch.equal(before.scores, after.scores)

    with pytest.raises(ZsadError, match="backbone"):
        ReferenceMemory.load(path, expect_meta={"backbone": "dinov2-base"})
    with pytest.raises(ZsadError, match="patch_size"):
        ReferenceMemory.load(path, expect_meta={"patch_size": "14"})
    with pytest.raises(ZsadError, match="not found"):
        ReferenceMemory.load(tmp_path / "missing.safetensors")
    (tmp_path / "junk.safetensors").write_bytes(b"not a tensor file")
    with pytest.raises(ZsadError):
        ReferenceMemory.load(tmp_path / "junk.safetensors")
    from safetensors.torch import save_file

    save_file({"bank": torch.zeros(1, 1, 1)}, str(tmp_path / "other.safetensors"))
    with pytest.raises(ZsadError, match="not a zsad reference memory"):
        ReferenceMemory.load(tmp_path / "other.safetensors")


def test_mismatched_or_malformed_inputs_raise_zsad_errors() -> None:
    memory = ReferenceMemory.build(_randn(1, 2, 3, 3, 8, seed=19))
    with pytest.raises(ZsadError, match="layers"):
        memory.score(_randn(1, 3, 3, 3, 8, seed=20))
    with pytest.raises(ZsadError, match="channels"):
        memory.score(_randn(1, 2, 3, 3, 4, seed=20))
    with pytest.raises(ZsadError):
        memory.score(_randn(2, 3, 3, 8, seed=20))
    with pytest.raises(ZsadError):
        ReferenceMemory.build([_randn(1, 2, 3, 3, 8, seed=0), _randn(1, 2, 3, 3, 6, seed=0)])
    with pytest.raises(ZsadError):
        ReferenceMemory.build([])
    with pytest.raises(ZsadError, match="NaN"):
        ReferenceMemory.build(torch.full((1, 1, 2, 2, 3), float("nan")))
    with pytest.raises(ZsadError):
        ReferenceMemory.build(_randn(1, 1, 2, 2, 3, seed=0), meta={"layers": 3})  # type: ignore[dict-item]
    for bad in ({"metric": "dot"}, {"image_score": "mean"}, {"coreset_ratio": 0.0}, {"chunk_size": 0}):
        with pytest.raises(ZsadError):
            ReferenceConfig(**bad)  # type: ignore[arg-type]
