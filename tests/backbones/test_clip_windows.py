"""WinCLIP window embeddings of the CLIP backbone against independent computations with open_clip's own modules."""
import pytest
import torch

from zsad.backbones import BackboneSpec, load_backbone
from zsad.backbones.clip import CLIPBackbone, build_tiny_clip, window_patch_index
from zsad.errors import ZsadError


@pytest.fixture(scope="module")
def tiny():
    return build_tiny_clip()


def masked_window_embedding(model, image: torch.Tensor, window: list[int]) -> torch.Tensor:
    """Independent reference: the projected CLS output of open_clip's own transformer on the *full* token sequence
    under an attention mask that lets the CLS and the window's patches see only each other. A window pass must
    equal it: LayerNorms and MLPs act per token, so tokens outside the window cannot reach the CLS."""
    visual = model.visual
    x = visual.conv1(image[None]).flatten(2).transpose(1, 2)
    x = torch.cat([visual.class_embedding.view(1, 1, -1), x], dim=1) + visual.positional_embedding
    x = visual.ln_pre(x)
    n = x.shape[1]
    seen = torch.zeros(n, dtype=torch.bool)
    seen[0] = True
    seen[torch.tensor(window) + 1] = True
    allowed = (seen[:, None] & seen[None, :]) | ~seen[:, None]  # rows outside the window: anything, unused
    mask = torch.zeros(n, n).masked_fill(~allowed, float("-inf"))
    out = visual.transformer(x, attn_mask=mask)
    return visual.ln_post(out[:, 0]) @ visual.proj


def test_window_index_lists_windows_and_their_patches_row_major():
    index = window_patch_index((3, 4), 2)
    assert index.shape == (6, 4)
    assert index[0].tolist() == [0, 1, 4, 5]
    assert index[2].tolist() == [2, 3, 6, 7]
    assert index[5].tolist() == [6, 7, 10, 11]
    assert window_patch_index((15, 15), 3).shape == (169, 9)
    with pytest.raises(ZsadError, match="does not fit"):
        window_patch_index((3, 4), 4)


def test_window_embeddings_equal_the_vit_restricted_to_the_window(tiny):
    model, tokenizer = tiny
    backbone = CLIPBackbone(model, tokenizer, "tiny", windows=(2, 3))
    images = torch.randn(2, 3, 224, 224)
    with torch.inference_mode():
        features = backbone(images)
        for size in (2, 3):
            index = window_patch_index((14, 14), size)
            embeddings = features.windows.windows[size]
            assert embeddings.shape == (2, 15 - size, 15 - size, 32)
            for i in range(2):
                for w in (0, 7, 14 - size, len(index) - 1):  # corners, an inner window, the last one
                    row, col = divmod(w, 15 - size)
                    expected = masked_window_embedding(model, images[i], index[w].tolist())[0]
                    torch.testing.assert_close(embeddings[i, row, col], expected, atol=1e-5, rtol=1e-5)


def test_windows_differ_from_each_other_and_from_the_image(tiny):
    # anomalib issue 2571: with open_clip >= 2.26 its sequence/batch transpose made every window identical.
    model, tokenizer = tiny
    backbone = CLIPBackbone(model, tokenizer, "tiny", windows=(2,))
    with torch.inference_mode():
        features = backbone(torch.randn(1, 3, 224, 224))
    flat = features.windows.windows[2].reshape(-1, 32)
    spread = torch.cdist(flat, flat)
    assert spread[~torch.eye(len(flat), dtype=torch.bool)].min() > 1e-4
    assert (flat - features.cls).norm(dim=1).min() > 1e-4


def test_patch_embeddings_are_open_clip_output_tokens_and_the_rest_is_unchanged(tiny):
    model, tokenizer = tiny
    images = torch.randn(2, 3, 224, 224)
    plain = CLIPBackbone(model, tokenizer, "tiny")
    windowed = CLIPBackbone(model, tokenizer, "tiny", windows=(2, 3))
    model.visual.output_tokens = True
    try:
        with torch.inference_mode():
            expected_cls, expected_tokens = model.visual(images)
            a, b = plain(images), windowed(images)
    finally:
        model.visual.output_tokens = False
    assert a.windows is None
    torch.testing.assert_close(b.windows.patch_embeddings.reshape(2, 196, 64), expected_tokens, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(b.cls, expected_cls, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(b.patch_tokens, a.patch_tokens)
    torch.testing.assert_close(b.projected, a.projected)


def test_chunking_and_batching_do_not_change_window_embeddings(tiny):
    model, tokenizer = tiny
    images = torch.randn(3, 3, 96, 96)  # 6 x 6 grid, interpolated positional embeddings
    whole = CLIPBackbone(model, tokenizer, "tiny", input_size=96, windows=(2, 3))
    chunked = CLIPBackbone(model, tokenizer, "tiny", input_size=96, windows=(2, 3), window_batch=16)
    with torch.inference_mode():
        together = whole(images).windows
        in_chunks = chunked(images).windows
        alone = [whole(images[i : i + 1]).windows for i in range(3)]
    for k in (2, 3):
        torch.testing.assert_close(in_chunks.windows[k], together.windows[k], atol=1e-5, rtol=1e-5)
        for i in range(3):
            torch.testing.assert_close(alone[i].windows[k][0], together.windows[k][i], atol=1e-5, rtol=1e-5)


def test_windows_travel_with_select_concat_and_to(tiny):
    model, tokenizer = tiny
    backbone = CLIPBackbone(model, tokenizer, "tiny", input_size=64, windows=(2,))
    with torch.inference_mode():
        features = backbone(torch.randn(3, 3, 64, 64))
    from zsad.backbones.base import Features

    rebuilt = Features.concat([features.select(slice(0, 1)), features.select(slice(1, 3))]).to(torch.float64)
    assert rebuilt.windows.windows[2].dtype == torch.float64
    torch.testing.assert_close(rebuilt.windows.windows[2].float(), features.windows.windows[2])
    torch.testing.assert_close(rebuilt.windows.patch_embeddings.float(), features.windows.patch_embeddings)


def test_windows_are_refused_where_they_cannot_exist(tiny):
    model, tokenizer = tiny
    with pytest.raises(ZsadError, match="need a CLIP backbone"):
        load_backbone(BackboneSpec(name="tiny-dinov2", windows=(2, 3)))
    with pytest.raises(ZsadError, match="must be positive"):
        CLIPBackbone(model, tokenizer, "tiny", windows=(0,))
    backbone = CLIPBackbone(model, tokenizer, "tiny", input_size=32, windows=(3,))  # 2 x 2 grid
    with pytest.raises(ZsadError, match="does not fit"), torch.inference_mode():
        backbone(torch.randn(1, 3, 32, 32))
    assert load_backbone(BackboneSpec(name="tiny-clip", windows=(3, 2))).windows == (2, 3)


def direct_window_embedding(visual, positional, image: torch.Tensor, window: list[int]) -> torch.Tensor:
    """Independent reference, straight from the definition: build [CLS + window tokens], each with its own
    positional embedding, run open_clip's own ``visual.transformer`` on it, take ln_post + proj of the CLS."""
    patches = visual.conv1(image[None]).flatten(2).transpose(1, 2)[0]  # [h*w, W]
    tokens = [visual.class_embedding + positional[0]] + [patches[p] + positional[p + 1] for p in window]
    x = visual.ln_pre(torch.stack(tokens)[None])
    return visual.ln_post(visual.transformer(x)[:, 0]) @ visual.proj


class VisionOnly(torch.nn.Module):
    """Just the image tower: CLIPBackbone only touches ``model.visual`` on the image side."""

    def __init__(self, visual):
        super().__init__()
        self.visual = visual


@pytest.mark.parametrize("shape", ["tiny", "ViT-B-16-plus-240"])
def test_every_window_equals_the_direct_definition(tiny, shape):
    size = 96  # 6 x 6 grid: interpolated positional embeddings
    if shape == "tiny":
        visual = tiny[0].visual
    else:
        import open_clip
        from open_clip.model import CLIPVisionCfg, _build_vision_tower

        config = open_clip.get_model_config("ViT-B-16-plus-240")
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(0)
            visual = _build_vision_tower(config["embed_dim"], CLIPVisionCfg(**config["vision_cfg"])).eval()
        size = 64  # 4 x 4 grid; the published 240 px costs ~12 plain forwards, eval/bench_winclip.py runs it
    backbone = CLIPBackbone(VisionOnly(visual), None, shape, input_size=size, windows=(2, 3))
    image = torch.randn(1, 3, size, size)
    with torch.inference_mode():
        features = backbone(image)
        grid = features.grid
        positional = backbone._positional_embedding(grid)
        for k in (2, 3):
            index = window_patch_index(grid, k)
            for w in range(len(index)):
                row, col = divmod(w, grid[1] - k + 1)
                expected = direct_window_embedding(visual, positional, image[0], index[w].tolist())[0]
                torch.testing.assert_close(features.windows.windows[k][0, row, col], expected, atol=1e-5, rtol=1e-5)


def test_v_v_attention_leaves_windows_and_winclip_patch_embeddings_unchanged(tiny):
    model, tokenizer = tiny
    images = torch.randn(2, 3, 64, 64)
    plain = CLIPBackbone(model, tokenizer, "tiny", input_size=64, windows=(2, 3))
    with_vv = CLIPBackbone(model, tokenizer, "tiny", input_size=64, windows=(2, 3), vv_layers=2)
    with torch.inference_mode():
        a, b = plain(images), with_vv(images)
    assert not torch.allclose(a.projected[:, -1], b.projected[:, -1])  # V-V does change the text-path tokens
    for k in (2, 3):
        torch.testing.assert_close(b.windows.windows[k], a.windows.windows[k])
    torch.testing.assert_close(b.windows.patch_embeddings, a.windows.patch_embeddings)
