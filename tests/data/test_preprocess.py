"""Resize + normalise: the resampling filter is the one named (bicubic for CLIP, bilinear for MuSc's DINO path)."""
import numpy as np
import pytest
import torch
from PIL import Image

from zsad.data.preprocess import to_batch


@pytest.mark.parametrize("name, resample", [("bicubic", Image.BICUBIC), ("bilinear", Image.BILINEAR)])
def test_to_batch_resizes_with_the_named_filter_and_normalises(name, resample):
    rng = np.random.default_rng(0)
    image = Image.fromarray((rng.random((50, 70, 3)) * 255).astype(np.uint8))
    batch = to_batch([image], 32, (0.5, 0.4, 0.3), (0.2, 0.25, 0.3), resample=name)
    expected = np.asarray(image.resize((32, 32), resample), dtype=np.float32) / 255.0
    expected = (expected - np.array([0.5, 0.4, 0.3])) / np.array([0.2, 0.25, 0.3])
    torch.testing.assert_close(batch[0].permute(1, 2, 0), torch.from_numpy(expected).float(), atol=1e-5, rtol=1e-5)
    with pytest.raises(ValueError, match="resample"):
        to_batch([image], 32, (0.5,) * 3, (0.2,) * 3, resample="nearest")
