"""CLIP features against open_clip's own computations and direct formulas, on the tiny random CLIP."""
import json

import open_clip
import pytest
import torch
import torch.nn.functional as F

from zsad.backbones import BackboneSpec, load_backbone
from zsad.backbones.clip import CLIPBackbone, build_tiny_clip, default_layers
from zsad.errors import ZsadError


@pytest.fixture(scope="module")
def tiny():
    model, tokenizer = build_tiny_clip()
    return model, tokenizer


def test_cls_embedding_equals_open_clip_encode_image(tiny):
    model, tokenizer = tiny
    backbone = CLIPBackbone(model, tokenizer, "tiny")
    x = torch.randn(2, 3, 224, 224)
    with torch.inference_mode():
        features = backbone(x)
        expected = model.encode_image(x)
    torch.testing.assert_close(features.cls, expected, atol=1e-5, rtol=1e-5)


def test_intermediate_tokens_and_projection_match_open_clip(tiny):
    model, tokenizer = tiny
    backbone = CLIPBackbone(model, tokenizer, "tiny", layers=(1, 3, 4))
    x = torch.randn(2, 3, 224, 224)
    with torch.inference_mode():
        features = backbone(x)
        reference = model.visual.forward_intermediates(x, indices=[0, 2, 3], output_fmt="NLC", intermediates_only=True)
    assert features.patch_tokens.shape == (2, 3, 14, 14, 64)
    for i, tokens in enumerate(reference["image_intermediates"]):
        torch.testing.assert_close(features.patch_tokens[:, i].reshape(2, 196, 64), tokens, atol=1e-5, rtol=1e-5)
        with torch.no_grad():
            ln = model.visual.ln_post
            projected = F.layer_norm(tokens, (64,), ln.weight, ln.bias, ln.eps) @ model.visual.proj
        torch.testing.assert_close(features.projected[:, i].reshape(2, 196, -1), projected, atol=1e-5, rtol=1e-5)


def test_positional_embedding_is_interpolated_for_other_input_sizes(tiny):
    model, tokenizer = tiny
    backbone = CLIPBackbone(model, tokenizer, "tiny", input_size=320)
    with torch.inference_mode():
        features = backbone(torch.randn(1, 3, 320, 320))
    assert features.patch_tokens.shape[2:4] == (20, 20)
    pos = backbone._positional_embedding((20, 20))
    grid = model.visual.positional_embedding[1:].reshape(1, 14, 14, -1).permute(0, 3, 1, 2)
    expected = F.interpolate(grid, size=(20, 20), mode="bicubic", align_corners=False).permute(0, 2, 3, 1)
    torch.testing.assert_close(pos[1:], expected.reshape(400, -1))
    torch.testing.assert_close(pos[:1], model.visual.positional_embedding[:1])
    with pytest.raises(ZsadError, match="multiple of the patch size"):
        CLIPBackbone(model, tokenizer, "tiny", input_size=300)


def _vv_reference(block, x):
    """V-V attention written out per head: softmax(v v^T / sqrt(d)) v, then the output projection."""
    attn = block.attn
    width, heads = x.shape[-1], attn.num_heads
    d = width // heads
    v = x @ attn.in_proj_weight[2 * width :].T + attn.in_proj_bias[2 * width :]
    outs = []
    for h in range(heads):
        vh = v[..., h * d : (h + 1) * d]
        weights = torch.softmax(vh @ vh.transpose(-1, -2) / d**0.5, dim=-1)
        outs.append(weights @ vh)
    return attn.out_proj(torch.cat(outs, dim=-1))


def test_vv_attention_path_matches_direct_computation(tiny):
    model, tokenizer = tiny
    plain = CLIPBackbone(model, tokenizer, "tiny", layers=(2, 3, 4))
    vv = CLIPBackbone(model, tokenizer, "tiny", layers=(2, 3, 4), vv_layers=2)
    x = torch.randn(2, 3, 224, 224)
    with torch.inference_mode():
        f_plain, f_vv = plain(x), vv(x)
        # reference: run the original path, and a side path from block 3 on that adds V-V attention only
        visual = model.visual
        h = visual.conv1(x).flatten(2).transpose(1, 2)
        h = torch.cat([visual.class_embedding.expand(2, 1, -1), h], 1) + visual.positional_embedding
        h = visual.ln_pre(h)
        blocks = visual.transformer.resblocks
        h = blocks[1](blocks[0](h))
        side = h
        side = side + _vv_reference(blocks[2], blocks[2].ln_1(h))
        h = blocks[2](h)
        layer3 = side[:, 1:]
        side = side + _vv_reference(blocks[3], blocks[3].ln_1(h))
        layer4 = side[:, 1:]
    torch.testing.assert_close(f_vv.patch_tokens[:, 0], f_plain.patch_tokens[:, 0])  # layer 2: before the V-V blocks
    # V-V feeds only the text path: projected tokens come from the side path, raw tokens stay CLIP's own
    with torch.inference_mode():
        projected3, projected4 = (visual.ln_post(t) @ visual.proj for t in (layer3, layer4))
    torch.testing.assert_close(f_vv.projected[:, 1].reshape(2, 196, -1), projected3, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(f_vv.projected[:, 2].reshape(2, 196, -1), projected4, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(f_vv.patch_tokens, f_plain.patch_tokens)
    torch.testing.assert_close(f_vv.cls, f_plain.cls)  # the image embedding stays CLIP's own
    assert not torch.allclose(f_vv.projected[:, 2], f_plain.projected[:, 2])


def test_text_encoding_uses_the_tokenizer_and_text_tower(tiny):
    model, tokenizer = tiny
    backbone = CLIPBackbone(model, tokenizer, "tiny")
    texts = ["a photo of a damaged bottle.", "a photo of a bottle."]
    torch.testing.assert_close(backbone.encode_text(texts), model.encode_text(tokenizer(texts)))


def test_default_layers_are_depth_quarters():
    assert default_layers(24) == (6, 12, 18, 24)
    assert default_layers(12) == (3, 6, 9, 12)
    assert default_layers(4) == (1, 2, 3, 4)


def test_layer_and_vv_options_are_validated(tiny):
    model, tokenizer = tiny
    with pytest.raises(ZsadError, match="layers must be within 1..4"):
        CLIPBackbone(model, tokenizer, "tiny", layers=(0, 5))
    with pytest.raises(ZsadError, match="vv_layers"):
        CLIPBackbone(model, tokenizer, "tiny", vv_layers=9)


def test_local_dir_checkpoint_loads_through_open_clip(tmp_path, tiny):
    """The real loading path (open_clip local-dir: schema) with a tiny architecture written to disk."""
    model, _ = tiny
    config = {
        "model_cfg": {
            "embed_dim": 32,
            "vision_cfg": {"image_size": 224, "patch_size": 16, "width": 64, "layers": 4, "head_width": 32},
            "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 2},
        },
        "preprocess_cfg": {"mean": list(open_clip.OPENAI_DATASET_MEAN), "std": list(open_clip.OPENAI_DATASET_STD)},
    }
    (tmp_path / "open_clip_config.json").write_text(json.dumps(config))
    torch.save(model.state_dict(), tmp_path / "open_clip_pytorch_model.bin")
    backbone = load_backbone(BackboneSpec(f"local-dir:{tmp_path}"))
    x = torch.randn(1, 3, 224, 224)
    with torch.inference_mode():
        torch.testing.assert_close(backbone(x).cls, model.encode_image(x), atol=1e-5, rtol=1e-5)
