"""The WinCLIP text scorer against a direct, loop-based computation of its formula on tiny tensors."""
import math

import pytest
import torch

from zsad.backbones.base import BackboneInfo, Features
from zsad.errors import ZsadError
from zsad.scoring.prompts import PromptSet, load_prompt_set
from zsad.scoring.base import ScorerContext, ScoringRun
from zsad.scoring.text import TextConfig, TextScorer, score_text
from zsad.scoring.text_heads import PromptSetHead, load_text_head


def text_of(backbone, object_name="object", prompts="winclip"):
    return PromptSetHead(backbone, load_prompt_set(prompts)).embeddings(object_name)


class FakeTextBackbone:
    """Deterministic text embeddings per sentence, so expected values can be computed by hand."""

    name = "fake"
    has_text = True

    def __init__(self, dim=6):
        self.dim = dim
        self.calls = 0

    def encode_text(self, texts):
        self.calls += 1
        rows = []
        for text in texts:
            g = torch.Generator().manual_seed(sum(map(ord, text)) * 7 + len(text))
            rows.append(torch.randn(self.dim, generator=g))
        return torch.stack(rows)


def _unit(v):
    return v / v.norm()


def direct_text_embeddings(backbone, prompt_set, object_name):
    out = []
    for label in ("normal", "anomalous"):
        sentences = prompt_set.sentences(object_name)[label]
        total = torch.zeros(backbone.dim)
        for sentence in sentences:
            total += _unit(backbone.encode_text([sentence])[0])
        out.append(_unit(total / len(sentences)))
    return out


def p_anomalous(vector, normal, anomalous, temperature):
    a = torch.dot(_unit(vector), anomalous) / temperature
    n = torch.dot(_unit(vector), normal) / temperature
    return math.exp(a) / (math.exp(a) + math.exp(n))


def make_features(b=2, layers=(2, 4), h=3, w=4, d=6):
    g = torch.Generator().manual_seed(1)
    return Features(
        patch_tokens=torch.randn(b, len(layers), h, w, 5, generator=g),
        cls=torch.randn(b, d, generator=g),
        projected=torch.randn(b, len(layers), h, w, d, generator=g),
        layers=layers,
    )


@pytest.mark.parametrize("image_score", ["cls", "max", "cls+max"])
def test_maps_and_scores_equal_the_formula(image_score):
    backbone = FakeTextBackbone()
    features = make_features()
    out = score_text(features, text_of(backbone, "bottle"), TextConfig(image_score=image_score))
    normal, anomalous = direct_text_embeddings(backbone, load_prompt_set("winclip"), "bottle")
    b, n_layers, h, w, _ = features.projected.shape
    for i in range(b):
        for y in range(h):
            for x in range(w):
                expected = sum(
                    p_anomalous(features.projected[i, l, y, x], normal, anomalous, 0.07) for l in range(n_layers)
                ) / n_layers
                assert out.maps[i, y, x].item() == pytest.approx(expected, abs=1e-5)
        cls = p_anomalous(features.cls[i], normal, anomalous, 0.07)
        top = out.maps[i].max().item()
        expected_score = {"cls": cls, "max": top, "cls+max": (cls + top) / 2}[image_score]
        assert out.scores[i].item() == pytest.approx(expected_score, abs=1e-5)
    assert out.source == "text"


def test_layer_subset_uses_only_those_layers():
    backbone = FakeTextBackbone()
    features = make_features()
    only4 = score_text(features, text_of(backbone), TextConfig(layers=(4,)))
    normal, anomalous = direct_text_embeddings(backbone, load_prompt_set(), "object")
    expected = p_anomalous(features.projected[1, 1, 2, 3], normal, anomalous, 0.07)
    assert only4.maps[1, 2, 3].item() == pytest.approx(expected, abs=1e-5)
    with pytest.raises(ZsadError, match="text scoring layers \\[7\\] were not extracted"):
        score_text(features, text_of(backbone), TextConfig(layers=(7,)))


def test_pooled_windows_use_harmonic_mean_of_covering_windows():
    backbone = FakeTextBackbone()
    features = make_features(b=1, layers=(1,), h=4, w=5)
    out = score_text(features, text_of(backbone), TextConfig(pooled_windows=(2, 3)))
    normal, anomalous = direct_text_embeddings(backbone, load_prompt_set(), "object")
    tokens = features.projected[0, 0]
    h, w = 4, 5
    for y in range(h):
        for x in range(w):
            scales = [p_anomalous(tokens[y, x], normal, anomalous, 0.07)]
            for s in (2, 3):
                covering = []
                for top in range(max(0, y - s + 1), min(y, h - s) + 1):
                    for left in range(max(0, x - s + 1), min(x, w - s) + 1):
                        window = tokens[top : top + s, left : left + s].reshape(-1, tokens.shape[-1]).mean(0)
                        covering.append(p_anomalous(window, normal, anomalous, 0.07))
                scales.append(len(covering) / sum(1 / c for c in covering))
            assert out.maps[0, y, x].item() == pytest.approx(sum(scales) / len(scales), abs=1e-5)


def test_text_embeddings_are_cached_per_object_name():
    backbone = FakeTextBackbone()
    head = load_text_head("winclip", backbone)
    head.embeddings("object")
    head.embeddings("object")
    first_calls = backbone.calls
    head.embeddings("bottle")
    head.embeddings("bottle")
    assert first_calls == 2  # normal + anomalous, once
    assert backbone.calls == 4


def context(has_text: bool, text_head=None) -> ScorerContext:
    """A scorer's context without a detector: the backbone's facts and the text head are all a scorer may use."""
    info = BackboneInfo(name="fake", family="clip" if has_text else "dinov2", pretrained=None, input_size=64,
                        patch_size=16, depth=4, layers=(2, 4), has_text=has_text)
    return ScorerContext(backbone=info, extract=lambda images, progress=False: None, text_head=text_head)


def test_the_scorer_reads_its_embeddings_from_the_detectors_text_head():
    class Head(PromptSetHead):
        asked = []

        def embeddings(self, object_name):
            self.asked.append(object_name)
            return super().embeddings(object_name)

    backbone = FakeTextBackbone()
    head = Head(backbone, load_prompt_set("winclip"))

    scorer = TextScorer(TextConfig(), context(has_text=True, text_head=head))
    scorer.start(ScoringRun(n_images=2, object_name="cable"))
    features = make_features()
    out = scorer.add(features, 0)
    assert Head.asked == ["cable"]
    expected = score_text(features, text_of(backbone, "cable"), TextConfig())
    torch.testing.assert_close(out.maps, expected.maps)
    assert scorer.natural_threshold() == 0.5


def test_prompt_set_composition_and_custom_yaml(tmp_path):
    winclip = load_prompt_set("winclip")
    sentences = winclip.sentences("bottle")
    assert len(sentences["normal"]) == len(winclip.normal) * len(winclip.templates)
    assert "a photo of a damaged bottle." in sentences["anomalous"]
    custom = tmp_path / "mine.yaml"
    custom.write_text("states:\n  normal: ['{}']\n  anomalous: ['scratched {}']\ntemplates: ['a {}']\n")
    mine = load_prompt_set(str(custom))
    assert mine.sentences("label") == {"normal": ["a label"], "anomalous": ["a scratched label"]}
    assert mine.key("label") != PromptSet("x", ("{}",), ("dented {}",), ("a {}",)).key("label")
    bad = tmp_path / "bad.yaml"
    bad.write_text("templates: ['a {}']\n")
    with pytest.raises(ZsadError, match="malformed"):
        load_prompt_set(str(bad))
    with pytest.raises(ZsadError, match="unknown prompt set 'nope'"):
        load_prompt_set("nope")


def test_backbone_without_text_is_refused():
    assert "no text tower" in TextScorer.unavailable(TextConfig(), context(has_text=False), ScoringRun(n_images=1))
