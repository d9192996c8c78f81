"""AnomalyCLIP's backbone settings and inference formula against an in-test transcription of the official code."""
import pytest
import torch
from official_anomalyclip import (
    official_encode_image, official_prompt_buffers, official_test_outputs, official_text_features,
    random_official_state,
)
from scipy.ndimage import gaussian_filter

from zsad.backbones.clip import CLIPBackbone, TinyCLIPConfig, build_tiny_clip
from zsad.errors import ZsadError
from zsad.learning.official import learner_from_official
from zsad.scoring.anomalyclip import AnomalyCLIPConfig, anomalyclip_scores, full_resolution, gaussian_filter_scipy


@pytest.fixture(scope="module")
def tiny():
    return build_tiny_clip(TinyCLIPConfig(text_layers=4))


def _official_state(model, tokenizer, depth=3):
    state = random_official_state(32, depth=depth, seed=3)
    state.update(official_prompt_buffers(model, tokenizer, 12))
    return state


@pytest.mark.parametrize("dpam_layer,layers", [(3, (1, 2, 3, 4)), (4, (2, 4)), (1, (4,)), (5, (1, 4))])
def test_dpam_layer_and_bilinear_position_embedding_match_official_vision(tiny, dpam_layer, layers):
    model, tokenizer = tiny
    backbone = CLIPBackbone(model, tokenizer, "tiny", input_size=256, layers=layers, dpam_layer=dpam_layer,
                            pos_interpolation="bilinear", cls_ln_post=False)
    assert backbone.vv_layers == dpam_layer - 1
    x = torch.randn(2, 3, 256, 256)
    with torch.no_grad():
        features = backbone(x)
        image, patches = official_encode_image(model.visual, x, list(layers), dpam_layer, pretrain_side=14)
    torch.testing.assert_close(features.cls, image, atol=1e-5, rtol=1e-5)
    for i, tokens in enumerate(patches):
        torch.testing.assert_close(features.projected[:, i].reshape(2, 256, -1), tokens[:, 1:], atol=1e-5, rtol=1e-5)


def test_position_interpolation_and_cls_options_change_outputs(tiny):
    model, tokenizer = tiny
    x = torch.randn(1, 3, 256, 256)
    outs = {}
    with torch.no_grad():
        for mode in ("bicubic", "bilinear"):
            outs[mode] = CLIPBackbone(model, tokenizer, "tiny", input_size=256, pos_interpolation=mode)(x)
        plain_cls = CLIPBackbone(model, tokenizer, "tiny", input_size=256, cls_ln_post=False)(x).cls
    assert not torch.allclose(outs["bicubic"].cls, outs["bilinear"].cls)
    assert not torch.allclose(outs["bicubic"].cls, plain_cls)
    with pytest.raises(ZsadError, match="contradicts"):
        CLIPBackbone(model, tokenizer, "tiny", vv_layers=1, dpam_layer=3)
    with pytest.raises(ZsadError, match="pos_interpolation"):
        CLIPBackbone(model, tokenizer, "tiny", pos_interpolation="nearest")


def test_scipy_gaussian_is_reproduced():
    maps = torch.rand(2, 40, 37, dtype=torch.float64)
    expected = torch.stack([torch.from_numpy(gaussian_filter(m.numpy(), sigma=4)) for m in maps])
    torch.testing.assert_close(gaussian_filter_scipy(maps, 4), expected, atol=1e-12, rtol=0)


def test_maps_and_scores_equal_official_test_py(tiny, tmp_path):
    model, tokenizer = tiny
    layers = (1, 2, 3, 4)
    backbone = CLIPBackbone(model, tokenizer, "tiny", input_size=224, layers=layers, dpam_layer=3,
                            pos_interpolation="bilinear", cls_ln_post=False)
    state = _official_state(model, tokenizer)
    path = tmp_path / "epoch_1.pth"
    torch.save({"prompt_learner": state}, path)
    learner = learner_from_official(backbone, path)
    x = torch.randn(3, 3, 224, 224)
    with torch.no_grad():
        text = learner(backbone.model)
        features = backbone(x)
        ours = anomalyclip_scores(features, text, AnomalyCLIPConfig())
        ours_full = full_resolution(ours.maps, 224, sigma=4)
        official_text = official_text_features(model, state, 4)
        probs, maps = [], []
        for one in x.split(1):  # test.py runs batch_size=1 (its text_probs indexing assumes it)
            image, patches = official_encode_image(model.visual, one, list(layers), 3, pretrain_side=14)
            p, m = official_test_outputs(image, patches, official_text, 224, sigma=4)
            probs.append(p)
            maps.append(m)
        probs, maps = torch.cat(probs), torch.cat(maps)
    torch.testing.assert_close(ours.scores, probs, atol=1e-4, rtol=0)
    torch.testing.assert_close(ours_full, maps.float(), atol=1e-4, rtol=0)
    assert ours.maps.shape == (3, 14, 14)
    # the layer maps are summed, not averaged: values up to the number of layers
    assert ours.maps.max() > 1.0
