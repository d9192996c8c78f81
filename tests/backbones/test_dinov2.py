"""DINOv2 features against transformers' own outputs, and the local/hub-cache loading paths."""
import pytest
import torch

from zsad.backbones import BackboneSpec, load_backbone
from zsad.backbones.dinov2 import DINOv2Backbone, TinyDINOv2Config, build_tiny_dinov2


@pytest.mark.parametrize("registers", [0, 4])
def test_patch_tokens_are_normed_hidden_states_without_prefix_tokens(registers):
    model = build_tiny_dinov2(TinyDINOv2Config(registers=registers))
    backbone = DINOv2Backbone(model, "tiny", input_size=112, layers=(2, 4))
    x = torch.randn(2, 3, 112, 112)
    with torch.inference_mode():
        features = backbone(x)
        out = model(pixel_values=x, output_hidden_states=True)
        expected_layers = [model.layernorm(out.hidden_states[layer])[:, 1 + registers :] for layer in (2, 4)]
    assert features.patch_tokens.shape == (2, 2, 8, 8, 48)
    for i, expected in enumerate(expected_layers):
        torch.testing.assert_close(features.patch_tokens[:, i].reshape(2, 64, 48), expected)
    torch.testing.assert_close(features.cls, out.pooler_output)
    assert features.projected is None


def test_local_folder_loads_with_transformers(tmp_path):
    model = build_tiny_dinov2(TinyDINOv2Config(registers=4))
    model.save_pretrained(tmp_path / "my-dinov2")
    backbone = load_backbone(BackboneSpec(str(tmp_path / "my-dinov2"), input_size=56))
    assert backbone.family == "dinov2" and backbone.prefix_tokens == 5
    x = torch.randn(1, 3, 56, 56)
    with torch.inference_mode():
        torch.testing.assert_close(backbone(x).cls, model(pixel_values=x).pooler_output)


def test_hub_cache_is_used_offline(tmp_path, monkeypatch):
    """A model already in the Hugging Face cache loads by its short name with the network off."""
    from huggingface_hub import constants

    model = build_tiny_dinov2()
    snapshot = tmp_path / "models--facebook--dinov2-small" / "snapshots" / "0123abcd"
    model.save_pretrained(snapshot)
    (tmp_path / "models--facebook--dinov2-small" / "refs").mkdir()
    (tmp_path / "models--facebook--dinov2-small" / "refs" / "main").write_text("0123abcd")
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path))
    backbone = load_backbone(BackboneSpec("dinov2-small", input_size=56))
    x = torch.randn(1, 3, 56, 56)
    with torch.inference_mode():
        torch.testing.assert_close(backbone(x).cls, model(pixel_values=x).pooler_output)
