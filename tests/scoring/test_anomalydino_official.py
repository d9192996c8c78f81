"""The anomalydino preset against a transcription of AnomalyDINO's official code (``official_anomalydino.py``):
identical patch features in, patch distances, image scores and full-resolution maps out, to float tolerance."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

import official_anomalydino as official
from zsad.backbones.dinov2 import TinyDINOv2Config, build_tiny_dinov2, hub_position_embeddings
from zsad.config import build_config
from zsad.data.preprocess import to_batch
from zsad.scoring.postprocess import MapPostprocess
from zsad.scoring.reference import ReferenceConfig, ReferenceMemory, image_scores

TOL = 1e-6


def _preset_post(input_size: int = 448) -> MapPostprocess:
    config = build_config(preset="anomalydino")
    return MapPostprocess(input_size, config.sigma, config.align_corners, config.gaussian_padding, config.smooth_at)


def _dino_like(generator: torch.Generator, n: int, rows: int, cols: int, dim: int = 384) -> torch.Tensor:
    """[n, 1, rows, cols, dim] tokens with a shared direction, so cosines sit near 1 as DINOv2's do."""
    shared = torch.randn(dim, generator=generator) * 3
    return shared + torch.randn(n, 1, rows, cols, dim, generator=generator)


def test_preset_names_the_official_settings():
    config = build_config(preset="anomalydino")
    assert config.backbone.name == "dinov2-small" and config.backbone.input_size == 448
    assert config.backbone.pos_interpolation == "dinov2-hub" and config.precision == "fp32"
    assert config.reference == ReferenceConfig(metric="cosine", image_score="top1pct")
    assert config.reference_layers is None and config.method == "fewshot"  # the last layer, as get_intermediate_layers
    assert (config.sigma, config.smooth_at, config.gaussian_padding) == (4.0, "original", "symmetric")


@pytest.mark.parametrize("grid", [(32, 32), (48, 32), (10, 20), (5, 7)])  # 10, 15, 2 and 0 -> max top patches
def test_patch_distances_and_image_scores_match_official(grid):
    generator = torch.Generator().manual_seed(sum(grid))
    refs, tests = _dino_like(generator, 2, *grid), _dino_like(generator, 3, *grid)
    scored = ReferenceMemory.build(refs, build_config(preset="anomalydino").reference).score(tests)
    bank = refs[:, 0].reshape(-1, refs.shape[-1]).numpy()
    for i in range(tests.shape[0]):
        distances = official.knn_distances(bank, tests[i, 0].reshape(-1, tests.shape[-1]).numpy())
        assert np.abs(scored.maps[i].numpy() - distances.reshape(grid)).max() <= TOL
        assert abs(float(scored.scores[i]) - official.mean_top1p(distances)) <= TOL


def test_image_score_count_is_the_officials_for_every_grid():
    # official: int(n * 0.01), the max when that is 0; zsad: max(1, n // 100). Same count for every grid size.
    for n in (1, 99, 100, 199, 200, 1024, 1536, 2304, 10_000, 123_456):
        values = torch.arange(n, dtype=torch.float64).flip(0)
        assert float(image_scores(values.view(1, 1, n))) == pytest.approx(official.mean_top1p(values.numpy()), abs=1e-9)


@pytest.mark.parametrize("size", [(1024, 1024), (700, 500), (64, 48)])  # (width, height) of the original image
def test_full_resolution_map_matches_official_dists2map(size):
    grid = np.random.default_rng(size[0]).random((32, 32)).astype(np.float32) * 0.4
    ours = _preset_post().apply(grid, size)
    theirs = official.dists2map(grid.astype(np.float64), (size[1], size[0]))
    assert ours.shape == theirs.shape == (size[1], size[0])
    assert np.abs(ours - theirs).max() <= TOL
    # zsad's default (smooth at 448 px, then resize) is another map: the preset's options are what makes it equal
    assert np.abs(MapPostprocess(448).apply(grid, size) - theirs).max() > 1e-3


def test_oracle_resize_and_gaussian_are_scipys():
    ndimage = pytest.importorskip("scipy.ndimage")
    image = np.random.default_rng(0).random((40, 56))
    assert np.abs(official.gaussian_filter(image, 4.0) - ndimage.gaussian_filter(image, sigma=4)).max() <= 1e-12
    # cv2 is not installed: its INTER_LINEAR upsampling is torch's half-pixel bilinear (weights in float32)
    grid = np.random.default_rng(1).random((7, 9))
    up = torch.nn.functional.interpolate(torch.from_numpy(grid)[None, None], size=(50, 33), mode="bilinear",
                                         align_corners=False)[0, 0].numpy()
    assert np.abs(official.cv2_resize_linear(grid, 33, 50) - up).max() <= 1e-6


def test_hub_position_embedding_rule_is_dinov2s_and_differs_from_transformers():
    model = build_tiny_dinov2(TinyDINOv2Config())
    embeddings = model.embeddings
    tokens = torch.zeros(1, 1 + 32 * 32, model.config.hidden_size)
    default = embeddings.interpolate_pos_encoding(tokens, 448, 448)
    hub = hub_position_embeddings(embeddings.position_embeddings, 32, 32)
    theirs = official.hub_interpolate_pos_encoding(embeddings.position_embeddings, 14, 448, 448)
    assert torch.equal(hub, theirs)
    assert (default - theirs).abs().max() > 1e-3


def _official_features(model, image: Image.Image) -> tuple[np.ndarray, tuple[int, int]]:
    """get_intermediate_layers(image)[0] of a DINOv2 with the hub's position rule: last block, final LayerNorm."""
    tensor, grid = official.prepare_image(image)
    embeddings = model.embeddings
    with torch.inference_mode():  # DinoVisionTransformer.prepare_tokens_with_masks, then the blocks and the norm
        x = embeddings.patch_embeddings(tensor[None])
        x = torch.cat((embeddings.cls_token, x), dim=1)
        x = x + official.hub_interpolate_pos_encoding(embeddings.position_embeddings, 14, *tensor.shape[-2:])
        for block in model.encoder.layer:
            x = block(x)
        tokens = model.layernorm(x)[0, 1:]
    return tokens.numpy(), grid


def test_tiny_dinov2_detection_matches_the_official_pipeline(tmp_path):
    from zsad.data.synth import generate_dataset
    from zsad.detector import Detector

    root = generate_dataset(tmp_path / "data", categories=["grain"], n_train=2, n_test_good=1, n_test_defect=1,
                            size=224)
    refs = sorted((root / "grain" / "train" / "good").glob("*.png"))
    tests = sorted(p for p in (root / "grain" / "test").rglob("*.png"))
    detector = Detector(preset="anomalydino", backbone="tiny-dinov2", device="cpu")
    results = detector.detect([str(p) for p in tests], references=[str(p) for p in refs])

    model = build_tiny_dinov2(TinyDINOv2Config()).eval()  # the same seeded weights, run as the official code runs
    bank = np.concatenate([_official_features(model, Image.open(p).convert("RGB"))[0] for p in refs])
    worst = {"distances": 0.0, "score": 0.0, "map": 0.0}
    for path, result in zip(tests, results):
        image = Image.open(path).convert("RGB")
        features, grid = _official_features(model, image)
        distances, score, full = official.score_image(bank, features, grid, (image.height, image.width))
        worst["distances"] = max(worst["distances"], float(np.abs(result.grid_map - distances).max()))
        worst["score"] = max(worst["score"], abs(result.score - score))
        worst["map"] = max(worst["map"], float(np.abs(result.anomaly_map - full).max()))
    assert max(worst.values()) <= TOL, worst


@pytest.mark.parametrize("size", [(1024, 1024), (900, 900)])
def test_preprocessing_matches_the_official_transform_on_square_images(size):
    rng = np.random.default_rng(size[0])
    image = Image.fromarray(rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8))
    theirs, grid = official.prepare_image(image)
    ours = to_batch([image], 448, official.IMAGENET_MEAN, official.IMAGENET_STD, "bicubic")[0]
    assert grid == (32, 32) and ours.shape == theirs.shape
    assert (ours - theirs).abs().max() <= TOL


def test_non_square_images_are_where_preprocessing_still_differs():
    # official: shorter side to 448, aspect kept, top-left crop to a multiple of 14 (VisA's 1500 x 1000 -> 48 x 32
    # patches); zsad resizes every image to 448 x 448 (32 x 32 patches). Documented in the preset's protocol.
    image = Image.new("RGB", (1500, 1000))
    theirs, grid = official.prepare_image(image)
    assert grid == (32, 48) and tuple(theirs.shape) == (3, 448, 672)
    assert tuple(to_batch([image], 448, official.IMAGENET_MEAN, official.IMAGENET_STD)[0].shape) == (3, 448, 448)


def test_memory_built_with_the_hub_rule_is_refused_under_the_other(tmp_path):
    from zsad.detector import Detector
    from zsad.errors import ZsadError

    images = [Image.fromarray(np.full((64, 64, 3), v, dtype=np.uint8)) for v in (40, 90)]
    hub = Detector(backbone="tiny-dinov2", input_size=224, pos_interpolation="dinov2-hub", device="cpu")
    hub.build_memory(images).save(tmp_path / "m.safetensors")
    assert hub.build_memory(tmp_path / "m.safetensors").meta["pos_interpolation"] == "dinov2-hub"
    with pytest.raises(ZsadError, match="pos_interpolation"):
        Detector(backbone="tiny-dinov2", input_size=224, device="cpu").build_memory(tmp_path / "m.safetensors")
