"""Weights that cannot be had fail at once with a message naming the model, where zsad looked and the fix."""
import time

import pytest

from zsad.backbones import BackboneSpec, load_backbone
from zsad.backbones.weights import hub_reachable
from zsad.errors import WeightsUnavailableError, ZsadError

# Generous bound: what matters is that no minute-long hub retry loop runs (the hub client retries ~45 s offline).
NO_RETRY_BOUND_S = 15


@pytest.mark.parametrize("name", ["ViT-B-16", "dinov2-small"])
@pytest.mark.parametrize("offline_how", ["HF_HUB_OFFLINE", "unreachable endpoint"])
def test_missing_weights_fail_fast_with_a_fix(name, offline_how, monkeypatch, tmp_path):
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path))  # an empty cache
    if offline_how == "HF_HUB_OFFLINE":
        monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    else:
        monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
        monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")  # discard port: connection refused at once
        assert not hub_reachable()
    start = time.monotonic()
    with pytest.raises(WeightsUnavailableError) as error:
        load_backbone(BackboneSpec(name))
    assert time.monotonic() - start < NO_RETRY_BOUND_S
    message = str(error.value)
    assert str(tmp_path) in message  # where it looked
    assert "pass" in message and ("--pretrained" in message or "--backbone /path" in message)  # how to fix
    assert "\n" not in message


def test_unknown_backbone_and_tag_are_named():
    with pytest.raises(ZsadError, match="unknown backbone 'ViT-Nope'"):
        load_backbone("ViT-Nope")
    with pytest.raises(ZsadError, match="unknown pretrained tag 'nope' for ViT-B-16; known tags: .*openai"):
        load_backbone(BackboneSpec("ViT-B-16", pretrained="nope"))
    with pytest.raises(ZsadError, match="file not found"):
        load_backbone(BackboneSpec("ViT-B-16", pretrained="/nowhere/model.safetensors"))
    with pytest.raises(ZsadError, match="backbone folder /nowhere/dinov2 not found"):
        load_backbone("/nowhere/dinov2")


def test_random_weights_need_no_download():
    backbone = load_backbone(BackboneSpec("tiny-clip"))
    assert backbone.family == "clip" and backbone.input_size == 224
