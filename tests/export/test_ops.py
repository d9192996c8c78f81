"""The export-friendly steps of zsad.export.ops against the eager functions they replace."""
from __future__ import annotations

import pytest
import torch

from zsad.backbones import BackboneSpec, load_backbone
from zsad.errors import ZsadError
from zsad.export import ops
from zsad.scoring import reference, winclip


@pytest.fixture(scope="module")
def windowed():
    return load_backbone(BackboneSpec("tiny-clip", input_size=80, windows=(2, 3), dpam_layer=3))


def test_window_features_equal_the_backbone_forward(windowed):
    """Bitwise: the same modules on the same tokens, only the batching of the window sequences differs; a small
    window_batch makes the eager pass walk several chunks (sequences of two images in one chunk)."""
    windowed.window_batch = 7
    images = torch.randn(3, 3, 80, 80)
    with torch.inference_mode():
        eager = windowed(images)
        cls, patches, windows = ops.clip_window_features(windowed, images, (2, 3))
    windowed.window_batch = 4096
    torch.testing.assert_close(cls, eager.cls, rtol=0, atol=1e-6)
    torch.testing.assert_close(patches, eager.windows.patch_embeddings, rtol=0, atol=1e-6)
    for k in (2, 3):
        assert windows[k].shape == eager.windows.windows[k].shape == (3, 6 - k, 6 - k, 32)
        torch.testing.assert_close(windows[k], eager.windows.windows[k], rtol=0, atol=1e-6)


@pytest.mark.parametrize("metric", ["cosine", "l2"])
@pytest.mark.parametrize("chunk", [5, 64, None])
def test_nearest_distances_equal_the_eager_search(metric, chunk):
    generator = torch.Generator().manual_seed(1)
    queries = torch.randn(37, 8, generator=generator) * 3
    memory = torch.randn(23, 8, generator=generator) * 3
    if metric == "cosine":
        memory = torch.nn.functional.normalize(memory, dim=1)
    memory[4] = queries[2] / (queries[2].norm() if metric == "cosine" else 1)  # an exact match: distance 0
    expected = reference.nearest_distances(queries, memory, metric, chunk_size=4)
    got = ops.nearest_distances(queries, memory, metric, chunk)
    torch.testing.assert_close(got, expected, rtol=0, atol=1e-6)
    assert float(got[2]) == pytest.approx(0.0, abs=1e-6)


def test_nearest_distances_refuse_an_unknown_metric():
    with pytest.raises(ZsadError, match="unknown metric 'dot'"):
        ops.nearest_distances(torch.zeros(2, 3), torch.zeros(2, 3), "dot")


@pytest.mark.parametrize("size", [1, 2, 3])
def test_harmonic_aggregation_is_bitwise_the_eager_one(size):
    scores = torch.rand(2, 6 - size + 1, 7 - size + 1, generator=torch.Generator().manual_seed(size)) + 0.01
    scores[0, 0, 0] = 0.0  # a zero score: its patches get a harmonic mean of 0, as in the eager version
    expected = winclip.harmonic_aggregation(scores, size)
    got = ops.harmonic_aggregation(scores, size)
    assert torch.equal(got, expected)
    assert float(got[0, 0, 0]) == 0.0
