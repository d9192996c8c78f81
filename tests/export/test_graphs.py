"""The export graphs (as torch modules) compute what zsad's detector computes, and refuse what they cannot export."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from zsad.backbones import BackboneSpec, load_backbone
from zsad.errors import ZsadError
from zsad.export.graphs import FeatureGraph, ReferenceGraph, TextGraph, WinCLIPGraph
from zsad.scoring.reference import ReferenceConfig, ReferenceMemory
from zsad.scoring.winclip import WinCLIPConfig

CASES = ["text-clip", "fewshot-clip-l2-input", "anomalydino", "winclip", "winclip+input", "anomalyclip"]


@pytest.mark.parametrize("name", CASES)
def test_graph_equals_the_detector(cases, name):
    case = cases(name)
    with torch.inference_mode():
        maps, scores = case.graph(case.images, *case.graph.memory_inputs().values())
    assert maps.shape == case.maps.shape and scores.shape == case.scores.shape
    assert case.maps.std() > 0 and np.ptp(case.scores) > 0  # the images differ: a constant output proves nothing
    np.testing.assert_allclose(maps.numpy(), case.maps, rtol=0, atol=1e-5)
    np.testing.assert_allclose(scores.numpy(), case.scores, rtol=0, atol=1e-5)


def test_memory_becomes_an_input_above_the_size_limit(cases):
    case = cases("anomalydino")
    backbone, bank = case.graph.backbone, case.graph.bank
    memory = ReferenceMemory.build(torch.zeros(1, 1, 2, 2, bank.shape[-1]) + 1.0)
    memory.bank = bank.clone()
    baked = ReferenceGraph(backbone, memory, bake_limit_mb=1.0)
    given = ReferenceGraph(backbone, memory, bake_limit_mb=bank.numel() * 4 / 2**20 / 2)
    assert not baked.memory_as_input and baked.input_names == ("images",)
    assert given.memory_as_input and given.input_names == ("images", "bank")
    assert given.dynamic_axes()["bank"] == {1: "bank_rows"}
    assert given.describe()["memory"] == {"as_input": True, "shapes": {"bank": list(bank.shape)}}
    images = case.images[:2]
    with torch.inference_mode():
        for a, b in zip(baked(images), given(images, bank)):
            assert torch.equal(a, b)
    with pytest.raises(ZsadError, match=r"inputs \['bank'\] after the images; got 0"):
        given(images)


def test_describe_names_what_a_runtime_needs(cases):
    described = cases("winclip").graph.describe()
    assert described["method"] == "winclip" and described["input_size"] == 64 and described["grid"] == [4, 4]
    assert described["inputs"] == ["images"] and described["outputs"] == ["maps", "scores"]
    assert described["memory"] is None and described["settings"]["scales"] == [2, 3]
    assert len(described["mean"]) == 3 and len(described["std"]) == 3


def test_refusals_name_the_fix():
    clip = load_backbone(BackboneSpec("tiny-clip", input_size=64))
    dino = load_backbone(BackboneSpec("tiny-dinov2", input_size=56))
    windowed = load_backbone(BackboneSpec("tiny-clip", input_size=64, windows=(2,)))
    text = torch.nn.functional.normalize(torch.randn(2, 32), dim=-1)
    with pytest.raises(ZsadError, match="tiny-dinov2 has no text tower"):
        TextGraph(dino, torch.zeros(2, 48))
    with pytest.raises(ZsadError, match=r"windows=\(\)\)\) or export the winclip graph"):
        TextGraph(windowed, text)
    with pytest.raises(ZsadError, match=r"must be \[2, 32\].*got \(3, 32\)"):
        TextGraph(clip, torch.zeros(3, 32))
    with pytest.raises(ZsadError, match="does not fit the 4x4 patch grid"):
        WinCLIPGraph(clip, text, WinCLIPConfig(scales=(5,)))
    memory = ReferenceMemory.build(torch.randn(1, 2, 4, 4, 48), ReferenceConfig())
    with pytest.raises(ZsadError, match=r"holds 2 layer\(s\) but layers \[4\]"):
        ReferenceGraph(dino, memory)
    with pytest.raises(ZsadError, match=r"reference layers \[7\] are not among"):
        ReferenceGraph(dino, memory, layers=(3, 7))


def test_feature_graph_returns_the_backbone_features():
    dino = load_backbone(BackboneSpec("tiny-dinov2-reg", input_size=56))
    images = torch.randn(2, 3, 56, 56)
    with torch.inference_mode():
        tokens, cls = FeatureGraph(dino)(images)
        features = dino(images)
    assert torch.equal(tokens, features.patch_tokens) and torch.equal(cls, features.cls)
