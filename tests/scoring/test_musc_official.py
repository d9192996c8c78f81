"""zsad's MuSc under the official options equals the official MuSc pipeline, on random tensors.

``official_*`` below is an independent transcription, written for this test, of what the official code
(github.com/xrli-U/MuSc, commit b76b93d) computes in ``models/musc.py: MuSc.make_category_data`` from the
backbone's tokens onwards, with its modules ``models/modules/_LNAMD.py`` (``LNAMD._embed``), ``_MSM.py``
(``MSM``/``compute_scores_fast``) and ``_RsCIN.py`` (``RsCIN``/``MMO``). It follows the official data layout
(per-layer [B, 1 + P, C] token lists with the CLS first, LayerNorm modules over [C, h, w], ``nn.Unfold`` windows
averaged by ``adaptive_avg_pool1d``, per-image ``cdist``, two ``topk`` calls, the ``D^-1 W`` product of MMO) rather
than zsad's (avg_pool2d, chunked matrix products, scatter), so the two share no code. It is not part of zsad.

zsad is run as a user selects the official path: ``mutual_scores(tokens, cls, official_config(S, family=...,
dataset=...))`` for the image scores and ``official_postprocess(S).apply`` for the maps at the input size S.
"""
from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from zsad.errors import ZsadError
from zsad.scoring.mutual import (
    RSCIN_K,
    MutualConfig,
    mutual_scores,
    official_config,
    official_postprocess,
    rscin,
    rscin_cls_mode,
    rscin_k_for,
    upsampled_max,
)
from zsad.scoring.postprocess import MapPostprocess

DEFAULT_STORED = Path(__file__).parent / "data" / "mutual_default.pt"


# ----------------------------------------------------------------------------------------------------------------
# Transcription of the official pipeline (written for this test; official line numbers in comments)

def official_lnamd(layer_tokens: list[torch.Tensor], r: int) -> torch.Tensor:
    """_LNAMD.py LNAMD._embed: list of [B, 1 + P, C] -> [B, P, n_layers, C] (before the unit normalisation)."""
    batch = layer_tokens[0].shape[0]
    normed = []
    for feature in layer_tokens:
        feature = feature[:, 1:, :]  # the CLS (a fake zero token for DINOv2) is dropped
        side = int(math.sqrt(feature.shape[1]))
        feature = feature.reshape(batch, side, side, feature.shape[2]).permute(0, 3, 1, 2)
        feature = torch.nn.LayerNorm(list(feature.shape[1:]))(feature)  # fresh module: weight 1, bias 0, eps 1e-5
        normed.append(feature)
    windows = []
    for feature in normed:
        c = feature.shape[1]
        if r != 1:
            unfolded = torch.nn.Unfold(kernel_size=r, stride=1, padding=(r - 1) // 2, dilation=1)(feature)
            unfolded = unfolded.reshape(batch, c, r, r, -1).permute(0, 4, 1, 2, 3)  # [B, P, C, r, r]
        else:
            unfolded = feature.reshape(batch, c, -1, 1, 1).permute(0, 2, 1, 3, 4)
        windows.append(unfolded.reshape(-1, *unfolded.shape[-3:]))  # [B * P, C, r, r]
    pooled = [
        F.adaptive_avg_pool1d(w.reshape(len(w), 1, -1), w.shape[1]).squeeze(1) for w in windows
    ]  # MeanMapper: C * r * r values -> C bins of r * r
    stacked = torch.stack(pooled, dim=1)  # [B * P, n_layers, C]
    return stacked.reshape(batch, -1, *stacked.shape[-2:])


def official_msm(z: torch.Tensor, topmin_min: float = 0.0, topmin_max: float = 0.3) -> torch.Tensor:
    """_MSM.py MSM with compute_scores_fast: z [N, P, C] -> [N, P] float64."""
    n, p, c = z.shape
    rows = []
    for i in range(n):
        refs = torch.cat((z[:i], z[i + 1 :]), dim=0)
        dist = torch.cdist(z[i : i + 1], refs.reshape(-1, c)).reshape(p, n - 1, p)
        dist = torch.min(dist, -1)[0]
        k_max = int(dist.shape[1] * topmin_max) if topmin_max < 1 else topmin_max
        k_min = int(dist.shape[1] * topmin_min) if topmin_min < 1 else topmin_min
        vals = torch.topk(dist.float(), k_max, largest=False, sorted=True)[0]
        vals = torch.topk(vals.float(), k_max - k_min, largest=True, sorted=True)[0]
        rows.append(vals.mean(dim=1).double())
    return torch.stack(rows)


def official_mmo(w: torch.Tensor, score: torch.Tensor, k_list) -> torch.Tensor:
    """_RsCIN.py MMO: keep the k largest of each row (drop the N - k smallest), P = D^-1 W_k, mean of P s."""
    outs = []
    n = w.shape[0]
    for k in k_list:
        dropped = torch.topk(w.float(), n - k, largest=False, sorted=True)[1]
        w_mask = w.clone()
        for i in range(n):
            w_mask[i, dropped[i]] = 0
        d = torch.zeros_like(w).float()
        for i in range(n):
            d[i, i] = 1 / w_mask[i, :].sum()
        outs.append((d @ w_mask) @ score.clone().unsqueeze(-1))
    return torch.cat(outs, -1).mean(-1)


@torch.no_grad()
def official_rscin(scores_old: torch.Tensor, cls_tokens: torch.Tensor, k_list) -> torch.Tensor:
    """_RsCIN.py RsCIN: min-max scores, similarity = cls @ cls.T as given (numpy float32 in the official code)."""
    scores_old = scores_old.double().numpy()
    cls_np = cls_tokens.float().numpy()
    scores = (scores_old - scores_old.min()) / (scores_old.max() - scores_old.min())
    similarity = torch.tensor(cls_np @ cls_np.T)
    return official_mmo(similarity.float(), torch.tensor(scores).float(), k_list)


@torch.no_grad()  # the official code runs under torch.no_grad() (lines 161, 193)
def official_musc(
    tokens: torch.Tensor, image_features: torch.Tensor, family: str, image_size: int, k_score, r_list=(1, 3, 5)
) -> tuple[torch.Tensor, torch.Tensor]:
    """models/musc.py make_category_data (divide_num = 1): tokens [N, L, h, w, C] -> (maps [N, S, S], scores [N])."""
    n, n_layers, h, w, c = tokens.shape
    # lines 163-176: per-layer [B, 1 + P, C] lists, CLS first (DINOv2: a fake zero CLS, line 167-168)
    layer_tokens = [torch.cat([torch.zeros(n, 1, c), tokens[:, l].reshape(n, h * w, c)], dim=1) for l in range(n_layers)]
    if family == "clip":
        image_features = image_features / image_features.norm(dim=-1, keepdim=True)  # line 175
    maps_r = []
    for r in r_list:  # lines 186-217
        features = official_lnamd(layer_tokens, r)
        features = features / features.norm(dim=-1, keepdim=True)  # line 195
        maps_l = torch.stack([official_msm(features[:, :, l, :]) for l in range(n_layers)])
        maps_r.append(maps_l.mean(0))
    mean_map = torch.stack(maps_r).mean(0)  # line 218, float64 [N, P]
    side = int(math.sqrt(mean_map.shape[1]))
    up = F.interpolate(mean_map.view(n, 1, side, side), size=image_size, mode="bilinear", align_corners=True)
    ac_score = up.numpy().reshape(n, -1).max(-1)  # line 240
    scores_cls = official_rscin(torch.from_numpy(ac_score), image_features, k_score)  # line 248
    return up[:, 0], scores_cls


# ----------------------------------------------------------------------------------------------------------------
# Inputs

def random_tokens(n: int = 10, n_layers: int = 3, side: int = 6, dim: int = 12, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    tokens = torch.randn(n, n_layers, side, side, dim, generator=g)
    # per-layer offsets and scales, as real layers have, and a planted defect in image 2
    tokens = tokens * torch.tensor([0.5, 2.0, 7.0][:n_layers]).view(1, -1, 1, 1, 1) + 3.0
    tokens[2, :, 1:3, 2:4] += 4.0
    return tokens


def clip_like_cls(n: int, dim: int = 16, seed: int = 1) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, dim, generator=g) + 0.5  # CLIP's projected embedding (normalised by the pipeline)


def dino_like_cls(n: int, dim: int = 16, seed: int = 2) -> torch.Tensor:
    """Raw CLS tokens with unequal norms and some negative dot products, as the official DINO path sees them."""
    g = torch.Generator().manual_seed(seed)
    cls = torch.randn(n, dim, generator=g) + 0.5
    return cls * torch.linspace(0.5, 3.0, n).unsqueeze(1)


# ----------------------------------------------------------------------------------------------------------------
# Equivalence with the official pipeline

SIZE = 83  # (83 - 1) / (6 - 1) is not an integer: most grid points fall between output pixels


@pytest.mark.parametrize(
    "family,dataset,make_cls",
    [("clip", "mvtec", clip_like_cls), ("clip", "visa", clip_like_cls),
     ("dinov2", "mvtec", dino_like_cls), ("dinov2", "visa", dino_like_cls)],
)
def test_official_options_equal_the_official_pipeline(family, dataset, make_cls):
    n = 10
    tokens = random_tokens(n)
    cls = make_cls(n)
    k_score = {"mvtec": [1, 2, 3], "visa": [1, 8, 9]}[dataset]
    ref_maps, ref_scores = official_musc(tokens, cls, family, SIZE, k_score)

    config = official_config(SIZE, family=family, dataset=dataset)
    out = mutual_scores(tokens, cls, config)
    post = official_postprocess(SIZE)
    maps = torch.stack([torch.from_numpy(post.apply(m.numpy(), (SIZE, SIZE))) for m in out.maps])

    assert maps.shape == ref_maps.shape
    assert torch.allclose(maps.double(), ref_maps, atol=1e-4, rtol=0)
    assert torch.allclose(out.scores.double(), ref_scores.double(), atol=1e-4, rtol=0)


def test_official_test_inputs_exercise_every_difference_from_the_default():
    """The inputs above would catch each of the three output differences if zsad's official path lacked it."""
    n = 10
    tokens = random_tokens(n)
    default = mutual_scores(tokens, None, MutualConfig(rscin_k=None))
    # 1. upsampled max != grid max (by more than the tolerance) for at least one image
    up = upsampled_max(default.maps.double(), SIZE)
    assert (default.maps.flatten(1).amax(1).double() - up).abs().max() > 1e-3
    # 2. raw DINO CLS: some image is not among its own top-k, and some kept dot products are negative
    cls = dino_like_cls(n)
    dots = cls @ cls.T
    top2 = torch.topk(dots, 2, dim=1).indices
    assert not all(i in top2[i] for i in range(n))
    top9 = torch.topk(dots, 9, dim=1).values
    assert (top9 < 0).any() and (top9.sum(1) > 0).all()
    # 3. so the raw and normalised RsCIN differ, and so do the clamped and official (unclamped) raw ones
    s = torch.rand(n, generator=torch.Generator().manual_seed(3))
    raw = rscin(s, cls, (1, 8, 9), cls_mode="raw", clamp_negative=False)
    assert (raw - rscin(s, cls, (1, 8, 9))).abs().max() > 1e-3
    assert (raw - rscin(s, cls, (1, 8, 9), cls_mode="raw", clamp_negative=True)).abs().max() > 1e-3
    # 4. the official maps (align_corners=True, no Gaussian) differ from the default post-processing
    grid = default.maps[0].numpy()
    assert abs(official_postprocess(SIZE).apply(grid, (SIZE, SIZE)) - MapPostprocess(SIZE).apply(grid, (SIZE, SIZE))).max() > 1e-3


def test_rscin_alone_equals_official_for_both_cls_modes():
    n = 12
    g = torch.Generator().manual_seed(5)
    scores = torch.rand(n, generator=g).double()
    for cls, family in ((clip_like_cls(n), "clip"), (dino_like_cls(n), "dinov2")):
        fed = cls / cls.norm(dim=-1, keepdim=True) if family == "clip" else cls
        for k_list in ([1, 2, 3], [1, 8, 9]):
            ref = official_rscin(scores, fed, k_list)
            ours = rscin(scores, cls, k_list, cls_mode=rscin_cls_mode(family), clamp_negative=False)
            assert torch.allclose(ours.double(), ref.double(), atol=1e-6)


def test_raw_rscin_rows_the_official_code_cannot_normalise_are_clamped():
    # image 0's kept dot products sum to < 0 with k = 2: the official code would flip its sign
    cls = torch.tensor([[1.0, 0.0], [-3.0, 0.1], [-2.0, 0.0], [0.0, 1.0]])
    s = torch.tensor([0.0, 1.0, 0.5, 0.2])
    out = rscin(s, cls, (2,), cls_mode="raw", clamp_negative=False)
    assert torch.isfinite(out).all() and (out >= 0).all() and (out <= 1).all()
    assert out[0] == pytest.approx(0.0)  # only its own (positive) entry survives the clamp: its own score


def test_upsampled_max_is_the_max_of_the_interpolated_map_and_chunking_is_exact():
    maps = torch.rand(9, 5, 5, generator=torch.Generator().manual_seed(0)).double()
    full = F.interpolate(maps.unsqueeze(1), size=(40, 40), mode="bilinear", align_corners=True).flatten(1).amax(1)
    assert torch.equal(upsampled_max(maps, 40, chunk=2), full)
    assert (upsampled_max(maps, 40) <= maps.flatten(1).amax(1) + 1e-12).all()
    # 5 x 5 -> 41: (41 - 1) / (5 - 1) = 10, every grid point is an output pixel: upsampled max == grid max
    assert torch.allclose(upsampled_max(maps, 41), maps.flatten(1).amax(1))


# ----------------------------------------------------------------------------------------------------------------
# Options and presets

def test_official_config_names_the_official_settings():
    config = official_config(518, family="clip", dataset="visa", memory_mb=512.0)
    assert config.radii == (1, 3, 5) and config.interval == (0.0, 0.3)
    assert config.rscin_k == (1, 8, 9) and config.memory_mb == 512.0
    assert (config.image_score_from, config.upsample_size, config.upsample_align_corners) == ("upsampled_max", 518, True)
    assert config.rscin_cls == "normalized" and not config.rscin_clamp_negative
    assert official_config(518, family="dinov2").rscin_cls == "raw"
    assert official_config(518, family="dinov2").rscin_k == (1, 2, 3)
    assert RSCIN_K == {"mvtec": (1, 2, 3), "visa": (1, 8, 9), "btad": (1, 2, 3)}
    assert rscin_k_for("mvtec_ad") == (1, 2, 3) and rscin_k_for("VisA") == (1, 8, 9)
    post = official_postprocess(518)
    assert (post.input_size, post.sigma, post.align_corners) == (518, 0.0, True)


def test_bad_official_options_raise_clear_errors():
    with pytest.raises(ZsadError, match="upsample_size"):
        mutual_scores(torch.randn(3, 1, 2, 2, 4), None, MutualConfig(image_score_from="upsampled_max"))
    with pytest.raises(ZsadError, match="image_score_from"):
        MutualConfig(image_score_from="max")
    with pytest.raises(ZsadError, match="rscin_cls"):
        MutualConfig(rscin_cls="cosine")
    with pytest.raises(ZsadError, match="RsCIN dataset kind"):
        rscin_k_for("mvtec3d")
    with pytest.raises(ZsadError, match="family"):
        rscin_cls_mode("siglip")


# ----------------------------------------------------------------------------------------------------------------
# The default path is unchanged

def test_default_path_equals_the_stored_output_of_the_previous_code():
    """Outputs of mutual_scores at commit 4b55a6c (before the official options), stored in data/mutual_default.pt."""
    stored = torch.load(DEFAULT_STORED)
    tokens, cls = stored["tokens"], stored["cls"]
    out = mutual_scores(tokens, cls)
    assert torch.allclose(out.maps, stored["maps"], atol=1e-6)
    assert torch.allclose(out.scores, stored["scores"], atol=1e-6)
    assert torch.allclose(mutual_scores(tokens, None).scores, stored["scores_no_rscin"], atol=1e-6)
    other = mutual_scores(tokens, cls, MutualConfig(rscin_k=(1, 3, 5), radii=(1, 3)))
    assert torch.allclose(other.maps, stored["maps_k135_r13"], atol=1e-6)
    assert torch.allclose(other.scores, stored["scores_k135_r13"], atol=1e-6)
    # and the stored case does exercise the clamp of negative cosines
    emb = F.normalize(cls, dim=-1)
    assert (emb @ emb.T < 0).any()


# ----------------------------------------------------------------------------------------------------------------
# How the official code feeds tokens (models/musc.py lines 59, 161-176), transcribed on zsad's tiny backbones

@torch.no_grad()
def official_clip_tokens(model, images: torch.Tensor, feature_layers: list[int]):
    """open_clip VisionTransformer.forward + Transformer.forward of the official code's vendored open_clip
    (models/backbone/open_clip/transformer.py lines 319-339 and 554-614), with its positional embedding resized
    once at load (model.py resize_pos_embed: bicubic, align_corners=False). Returns per-layer [B, 1 + P, W]
    tokens and the L2-normalised pooled embedding (musc.py line 175)."""
    visual = model.visual
    features_list = [l + 1 for l in feature_layers]  # musc.py line 59
    x = visual.conv1(images)
    x = x.reshape(x.shape[0], x.shape[1], -1).permute(0, 2, 1)
    x = torch.cat([visual.class_embedding + torch.zeros(x.shape[0], 1, x.shape[-1]), x], dim=1)
    pos = visual.positional_embedding
    grid = int(math.sqrt(x.shape[1] - 1))
    old = int(math.sqrt(pos.shape[0] - 1))
    if grid != old:
        img = pos[1:].reshape(1, old, old, -1).permute(0, 3, 1, 2)
        img = F.interpolate(img, size=(grid, grid), mode="bicubic", align_corners=False)
        pos = torch.cat([pos[:1], img.permute(0, 2, 3, 1).reshape(grid * grid, -1)])
    x = visual.ln_pre(x + pos)
    out_tokens, idx = [], 0
    for block in visual.transformer.resblocks:
        idx += 1
        x = block(x)
        if idx in features_list:  # 1-based: the residual stream after block idx, before ln_post, no projection
            out_tokens.append(x)
    pooled = visual.ln_post(x[:, 0]) @ visual.proj
    return out_tokens, pooled / pooled.norm(dim=-1, keepdim=True)


@pytest.mark.parametrize("input_size", [224, 288])
def test_clip_tokens_are_the_official_ones(input_size):
    from zsad.backbones import BackboneSpec, load_backbone

    feature_layers = [0, 1, 3]  # as configs/musc.yaml line 11 writes them (0-based; [5, 11, 17, 23] for ViT-L)
    backbone = load_backbone(BackboneSpec("tiny-clip", input_size=input_size, layers=tuple(l + 1 for l in feature_layers)))
    images = torch.randn(2, 3, input_size, input_size, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        feats = backbone(images)
    tokens, image_features = official_clip_tokens(backbone.model, images, feature_layers)
    n, n_layers, h, w, c = feats.patch_tokens.shape
    for l in range(n_layers):
        assert torch.allclose(feats.patch_tokens[:, l].reshape(n, h * w, c), tokens[l][:, 1:], atol=1e-5)
    assert torch.allclose(F.normalize(feats.cls, dim=-1), image_features, atol=1e-5)


@torch.no_grad()
def official_dinov2_tokens(model, images: torch.Tensor, feature_layers: list[int]):
    """DINOv2 get_intermediate_layers(x, n=[l - 1 for l in features_list], return_class_token=False) with its default
    norm=True (models/backbone/dino_vision_transformer.py lines 238-288; musc.py line 164), and the model's output
    ``dino_model(x)`` = the final-LayerNorm CLS token, not normalised (line 165); on transformers' modules."""
    n = [l + 1 - 1 for l in feature_layers]  # features_list = feature_layers + 1; the call subtracts 1 again
    x = model.embeddings(images)
    outputs = []
    for i, layer in enumerate(model.encoder.layer):
        out = layer(x)
        x = out[0] if isinstance(out, tuple) else out
        if i in n:  # 0-based block index
            outputs.append(x)
    outputs = [model.layernorm(o)[:, 1:] for o in outputs]  # norm=True, then the CLS is dropped
    return outputs, model.layernorm(x)[:, 0]


def test_dinov2_tokens_are_the_official_ones():
    from zsad.backbones import BackboneSpec, load_backbone

    feature_layers = [0, 2, 3]
    backbone = load_backbone(BackboneSpec("tiny-dinov2", input_size=224, layers=tuple(l + 1 for l in feature_layers)))
    images = torch.randn(2, 3, 224, 224, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        feats = backbone(images)
    tokens, cls = official_dinov2_tokens(backbone.model, images, feature_layers)
    n, n_layers, h, w, c = feats.patch_tokens.shape
    for l in range(n_layers):
        assert torch.allclose(feats.patch_tokens[:, l].reshape(n, h * w, c), tokens[l], atol=1e-5)
    assert torch.allclose(feats.cls, cls, atol=1e-5)  # raw: RsCIN must not normalise it (rscin_cls="raw")
