"""WinCLIP / WinCLIP+ against an independent transcription of their definition, on the tiny random CLIP."""
import pytest
import numpy as np
import torch
import torch.nn.functional as F

from zsad.backbones.base import BackboneInfo, Features
from zsad.backbones.clip import CLIPBackbone, build_tiny_clip
from zsad.errors import ZsadError
from zsad.scoring.base import ScorerContext, ScoringRun
from zsad.scoring.text_heads import TextHead
from zsad.scoring.winclip import (
    WinCLIPConfig,
    WinCLIPMemory,
    WinCLIPScorer,
    harmonic_aggregation,
    winclip,
)


# ---------------------------------------------------------------------------------------------------------------
# Independent reference, transcribed for this test from anomalib's WinCLIP
# (src/anomalib/models/image/winclip/torch_model.py and utils.py: make_masks, harmonic_aggregation,
# visual_association_score, class_scores, _get_window_embeddings, _compute_zero_shot_scores,
# _compute_few_shot_scores, forward). One change: anomalib permutes the masked sequences NLD -> LND before
# open_clip's transformer, which is batch-first since open_clip 2.26 (anomalib issue 2571: all windows come out
# identical); the transcription keeps them batch-first, which is what the paper and anomalib mean.
# ---------------------------------------------------------------------------------------------------------------
def ref_make_masks(grid_size, kernel_size, stride=1):
    height, width = grid_size
    grid = torch.arange(height * width).reshape(1, height, width)
    return F.unfold(grid.float(), kernel_size=kernel_size, stride=stride).int()


def ref_cosine_similarity(input1, input2):
    ndim = input1.ndim
    input1 = input1.unsqueeze(0) if input1.ndim == 2 else input1
    input2 = input2.repeat(input1.shape[0], 1, 1) if input2.ndim == 2 else input2
    similarity = torch.bmm(F.normalize(input1, dim=-1), F.normalize(input2, dim=-1).transpose(-2, -1))
    return similarity.squeeze(0) if ndim == 2 else similarity


def ref_class_scores(image_embeddings, text_embeddings, temperature, target_class):
    return (ref_cosine_similarity(image_embeddings, text_embeddings) / temperature).softmax(dim=-1)[..., target_class]


def ref_harmonic_aggregation(window_scores, output_size, masks):
    batch_size = window_scores.shape[0]
    height, width = output_size
    scores = []
    for idx in range(height * width):
        patch_mask = torch.any(masks == idx, dim=0)
        scores.append(sum(patch_mask) / (1 / window_scores.T[patch_mask]).sum(dim=0))
    return torch.stack(scores).T.reshape(batch_size, height, width).nan_to_num(posinf=0.0)


def ref_visual_association_score(embeddings, reference_embeddings):
    reference_embeddings = reference_embeddings.reshape(-1, embeddings.shape[-1])
    scores = ref_cosine_similarity(embeddings, reference_embeddings)
    return (1 - scores).min(dim=-1)[0] / 2


class ReferenceWinCLIP:
    def __init__(self, clip, text_embeddings, scales=(2, 3), temperature=0.07):
        self.clip = clip
        self.text_embeddings = text_embeddings
        self.scales = scales
        self.temperature = temperature
        self.grid_size = tuple(clip.visual.grid_size)
        self.masks = [ref_make_masks(self.grid_size, s, 1) for s in scales]
        self.k_shot = 0

    def encode_image(self, batch):
        outputs = {}
        hook = self.clip.visual.patch_dropout.register_forward_hook(
            lambda _m, inputs, _o: outputs.__setitem__("feature_map", inputs[0].detach())
        )
        self.clip.visual.output_tokens = True
        try:
            image_embeddings, patch_embeddings = self.clip.encode_image(batch)
        finally:
            self.clip.visual.output_tokens = False
            hook.remove()
        window_embeddings = [self._get_window_embeddings(outputs["feature_map"], m) for m in self.masks]
        return image_embeddings, window_embeddings, patch_embeddings

    def _get_window_embeddings(self, feature_map, masks):
        batch_size = feature_map.shape[0]
        n_masks = masks.shape[1]
        class_index = torch.zeros(1, n_masks, dtype=int)
        masks = torch.cat((class_index, masks + 1)).T
        masked = torch.cat([torch.index_select(feature_map, 1, mask) for mask in masks])
        masked = self.clip.visual.patch_dropout(masked)
        masked = self.clip.visual.ln_pre(masked)
        masked = self.clip.visual.transformer(masked)  # batch-first (see the note above)
        masked = self.clip.visual.ln_post(masked)
        pooled, _ = self.clip.visual._global_pool(masked)
        pooled = pooled @ self.clip.visual.proj
        return pooled.reshape((n_masks, batch_size, -1)).permute(1, 0, 2)

    def setup_references(self, images):
        self.k_shot = images.shape[0]
        _, self.visual_embeddings, self.patch_embeddings = self.encode_image(images)

    def forward(self, batch):
        image_embeddings, window_embeddings, patch_embeddings = self.encode_image(batch)
        image_scores = ref_class_scores(image_embeddings, self.text_embeddings, self.temperature, 1)
        multi_scale_scores = [image_scores.view(-1, 1, 1).repeat(1, *self.grid_size)]
        for window_embedding, mask in zip(window_embeddings, self.masks):
            scores = ref_class_scores(window_embedding, self.text_embeddings, self.temperature, 1)
            multi_scale_scores.append(ref_harmonic_aggregation(scores, self.grid_size, mask))
        zero_shot = (len(self.scales) + 1) / (1 / torch.stack(multi_scale_scores)).sum(dim=0)
        if not self.k_shot:
            return image_scores, zero_shot
        few = [ref_visual_association_score(patch_embeddings, self.patch_embeddings).reshape((-1, *self.grid_size))]
        for window_embedding, reference_embedding, mask in zip(window_embeddings, self.visual_embeddings, self.masks):
            scores = ref_visual_association_score(window_embedding, reference_embedding)
            few.append(ref_harmonic_aggregation(scores, self.grid_size, mask))
        few_shot = torch.stack(few).mean(dim=0)
        return (image_scores + few_shot.amax(dim=(-2, -1))) / 2, (zero_shot + few_shot) / 2
# ---------------------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tiny():
    model, tokenizer = build_tiny_clip()
    backbone = CLIPBackbone(model, tokenizer, "tiny", windows=(2, 3))
    g = torch.Generator().manual_seed(3)
    text = F.normalize(torch.randn(2, 32, generator=g), dim=-1)
    return model, backbone, text


def test_zero_shot_equals_the_reference(tiny):
    model, backbone, text = tiny
    images = torch.randn(2, 3, 224, 224)
    with torch.inference_mode():
        out = winclip(backbone(images), text)
        expected_scores, expected_maps = ReferenceWinCLIP(model, text).forward(images)
    assert out.source == "winclip" and out.maps.shape == (2, 14, 14)
    torch.testing.assert_close(out.maps, expected_maps, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(out.scores, expected_scores, atol=1e-5, rtol=1e-5)


def test_few_shot_equals_the_reference(tiny):
    model, backbone, text = tiny
    references, images = torch.randn(3, 3, 224, 224), torch.randn(2, 3, 224, 224)
    with torch.inference_mode():
        memory = WinCLIPMemory.build([backbone(references[:1]), backbone(references[1:])])
        out = winclip(backbone(images), text, memory, WinCLIPConfig(chunk_size=50))  # chunked search
        reference = ReferenceWinCLIP(model, text)
        reference.setup_references(references)
        expected_scores, expected_maps = reference.forward(images)
    assert out.source == "winclip+" and memory.n_images == 3
    torch.testing.assert_close(out.maps, expected_maps, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(out.scores, expected_scores, atol=1e-5, rtol=1e-5)


def test_harmonic_aggregation_on_a_worked_example():
    # 3 x 3 grid, four 2 x 2 windows (anomalib's documented example, worked by hand: the centre patch is covered by
    # all four windows: 4 / (1 + 4/3 + 2 + 4) = 0.48).
    out = harmonic_aggregation(torch.tensor([[[1.0, 0.75], [0.5, 0.25]]]), 2)
    expected = torch.tensor([[[1.0, 6 / 7, 0.75], [2 / 3, 0.48, 0.375], [0.5, 1 / 3, 0.25]]])
    torch.testing.assert_close(out, expected)


@pytest.mark.parametrize("grid,size", [((5, 7), 2), ((6, 4), 3), ((3, 3), 3)])
def test_harmonic_aggregation_equals_the_per_patch_loop(grid, size):
    hk, wk = grid[0] - size + 1, grid[1] - size + 1
    scores = torch.rand(2, hk, wk, generator=torch.Generator().manual_seed(size)) + 0.01
    expected = ref_harmonic_aggregation(scores.reshape(2, -1), grid, ref_make_masks(grid, size))
    torch.testing.assert_close(harmonic_aggregation(scores, size), expected)


def test_harmonic_aggregation_of_a_zero_score_is_zero():
    scores = torch.rand(1, 4, 5) + 0.1
    scores[0, 1, 2] = 0.0
    out = harmonic_aggregation(scores, 3)
    assert out[0, 1:4, 2:5].eq(0).all()  # every patch the zero window covers
    assert out[0, 0, 0] > 0 and torch.isfinite(out).all()


def test_an_image_among_the_references_has_zero_few_shot_evidence(tiny):
    _, backbone, text = tiny
    images = torch.randn(2, 3, 224, 224)
    with torch.inference_mode():
        features = backbone(images)
        zero_shot = winclip(features, text)
        both = winclip(features, text, WinCLIPMemory.build(features))
    torch.testing.assert_close(both.maps, zero_shot.maps / 2, atol=1e-6, rtol=1e-5)
    torch.testing.assert_close(both.scores, zero_shot.scores / 2, atol=1e-6, rtol=1e-5)


def test_features_without_windows_are_refused_with_the_fix(tiny):
    _, backbone, text = tiny
    features = Features(patch_tokens=torch.zeros(1, 1, 4, 4, 8), cls=torch.zeros(1, 32))
    with pytest.raises(ZsadError, match=r"--method winclip \(it asks the backbone for windows \[2, 3\]\)"):
        winclip(features, text)
    with torch.inference_mode():
        only_two = CLIPBackbone(backbone.model, backbone.tokenizer, "tiny", input_size=64, windows=(2,))
        features = only_two(torch.randn(1, 3, 64, 64))
    with pytest.raises(ZsadError, match=r"scales \[3\] were not computed"):
        winclip(features, text)
    with pytest.raises(ZsadError, match="positive"):
        WinCLIPConfig(scales=(0,))


class FixedHead(TextHead):
    name = "fixed"

    def __init__(self, text):
        self.text = text
        self.asked = []

    def embeddings(self, object_name):
        self.asked.append(object_name)
        return self.text


def context(backbone, text, extract=None) -> ScorerContext:
    """A scorer's context without a detector: the backbone's facts, the text head, the extract function."""
    return ScorerContext(backbone=BackboneInfo.of(backbone), extract=extract, text_head=FixedHead(text))


def test_scorer_glue_runs_winclip_and_winclip_plus(tiny):
    _, backbone, text = tiny
    images = torch.randn(2, 3, 224, 224)
    rng = np.random.default_rng(0)
    references = [(rng.random((224, 224, 3)) * 255).astype(np.uint8) for _ in range(2)]

    def extract(loaded):  # what Detector.extract does: loaded images -> normalised batch -> one forward
        from zsad.data.preprocess import to_batch

        return backbone(to_batch([i.image for i in loaded], 224, backbone.mean, backbone.std))

    ctx = context(backbone, text, extract)
    assert WinCLIPScorer.unavailable(WinCLIPConfig(), ctx, ScoringRun(n_images=2)) is None
    plain = context(CLIPBackbone(backbone.model, backbone.tokenizer, "tiny"), text)
    assert "--preset winclip" in WinCLIPScorer.unavailable(WinCLIPConfig(), plain, ScoringRun(n_images=2))

    with torch.inference_mode():
        features = backbone(images)
        scorer = WinCLIPScorer(WinCLIPConfig(), ctx)
        scorer.start(ScoringRun(n_images=2, object_name="bottle"))
        zero = scorer.add(features, 0)
        assert scorer.describe() == {"method": "winclip", "text_head": "fixed"}
        assert scorer.natural_threshold() == 0.5
        scorer.start(ScoringRun(n_images=2, object_name="bottle", references=references))
        plus = scorer.add(features, 0)
        from zsad.data.images import load_image

        expected = winclip(features, text, WinCLIPMemory.build(extract([load_image(r) for r in references])))
    assert ctx.text_head.asked == ["bottle", "bottle"]
    torch.testing.assert_close(zero.maps, winclip(features, text).maps)
    torch.testing.assert_close(plus.maps, expected.maps)
    assert scorer.describe()["method"] == "winclip+" and scorer.describe()["reference_images"] == 2
