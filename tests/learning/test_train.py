"""Training: official losses, frozen backbone, artifacts, resume, data sources, LoRA; on tiny-clip and synth data."""
import json

import numpy as np
import pytest
import torch
from official_anomalyclip import official_dice_loss, official_focal_loss
from PIL import Image

from zsad.backbones import BackboneSpec, load_backbone
from zsad.errors import ZsadError
from zsad.learning.data import hf_items, layout_items
from zsad.learning.lora import LoraSettings
from zsad.learning.losses import dice_loss, focal_loss
from zsad.learning.prompt_learner import PromptLearnerConfig
from zsad.learning.train import TrainConfig, train
from zsad.scoring.text_heads import load_text_head

SPEC = BackboneSpec("tiny-clip", input_size=64, dpam_layer=3, cls_ln_post=False, pos_interpolation="bilinear")
FAST = dict(epochs=2, batch_size=4, lr=0.01, prompt_learner=PromptLearnerConfig(depth=2, n_ctx=4, t_n_ctx=2))


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    from zsad.data.synth import generate_dataset

    root = tmp_path_factory.mktemp("synth")
    generate_dataset(root, categories=["weave", "grain"], n_train=1, n_test_good=2, n_test_defect=1, size=64, seed=0)
    return root


def test_losses_equal_official():
    probs = torch.rand(3, 2, 9, 7).softmax(dim=1)
    mask = (torch.rand(3, 9, 7) > 0.7).float()
    torch.testing.assert_close(focal_loss(probs, mask), official_focal_loss(probs, mask))
    torch.testing.assert_close(dice_loss(probs[:, 1], mask), official_dice_loss(probs[:, 1], mask))


def test_training_freezes_backbone_and_round_trips(data, tmp_path):
    backbone = load_backbone(SPEC)
    before = {k: v.clone() for k, v in backbone.model.state_dict().items()}
    items = layout_items("mvtec", data)
    assert any(i.label == 1 for i in items) and any(i.label == 0 for i in items)
    summary = train(backbone, items, tmp_path / "a", TrainConfig(**FAST), val_items=items, progress=False,
                    command="zsad train --test")
    after = backbone.model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)  # bit-identical CLIP weights
    log = json.loads((tmp_path / "a" / "train_log.json").read_text())
    assert [e["epoch"] for e in log] == [1, 2] and "p_auroc" in log[-1]["validation"]
    card = json.loads((tmp_path / "a" / "card.json").read_text())
    assert card["base_model"]["fingerprint"].startswith("sha256:") and card["command"] == "zsad train --test"
    # save -> load gives identical embeddings, from a freshly built backbone
    head = load_text_head(f"learned:{tmp_path / 'a'}", load_backbone(SPEC))
    ckpt = torch.load(tmp_path / "a" / "checkpoints" / "epoch_2.pt", weights_only=False)
    assert sorted(ckpt["trainable"]) == sorted(f"learner.{k}" for k in head.learner.state_dict())
    for k, v in head.learner.state_dict().items():
        assert torch.equal(v, ckpt["trainable"][f"learner.{k}"])
    assert summary["log"][-1]["total_loss"] == log[-1]["total_loss"]


def test_resume_continues_to_the_same_result(data, tmp_path):
    items = layout_items("mvtec", data)
    full = train(load_backbone(SPEC), items, tmp_path / "full", TrainConfig(**FAST), progress=False)
    train(load_backbone(SPEC), items, tmp_path / "part", TrainConfig(**{**FAST, "epochs": 2}), progress=False)
    # drop the last epoch's checkpoint and resume from epoch 1
    (tmp_path / "part" / "checkpoints" / "epoch_2.pt").unlink()
    resumed = train(load_backbone(SPEC), items, tmp_path / "part", TrainConfig(**FAST), resume=True, progress=False)
    assert resumed["log"][-1]["total_loss"] == pytest.approx(full["log"][-1]["total_loss"], rel=1e-5)
    with pytest.raises(ZsadError, match="no checkpoint"):
        train(load_backbone(SPEC), items, tmp_path / "none", TrainConfig(**FAST), resume=True, progress=False)


def test_refuses_adapter_of_another_base_model(data, tmp_path):
    train(load_backbone(SPEC), layout_items("mvtec", data), tmp_path / "a", TrainConfig(**{**FAST, "epochs": 1}),
          progress=False)
    other = load_backbone(SPEC)
    with torch.no_grad():
        other.model.text_projection.add_(1e-3)
    with pytest.raises(ZsadError, match="only work on the base model"):
        load_text_head(f"learned:{tmp_path / 'a'}", other)


def test_datasets_library_source(tmp_path):
    datasets = pytest.importorskip("datasets")
    rng = np.random.default_rng(0)
    images, masks, labels = [], [], []
    for i in range(6):
        img = rng.integers(0, 255, (40, 40, 3), dtype=np.uint8)
        mask = np.zeros((40, 40), dtype=np.uint8)
        if i % 2:
            img[10:20, 10:20] = 255
            mask[10:20, 10:20] = 255
        images.append(Image.fromarray(img))
        masks.append(Image.fromarray(mask) if i != 5 else None)  # one anomalous image without a mask
        labels.append(i % 2)
    features = datasets.Features({"image": datasets.Image(), "mask": datasets.Image(), "label": datasets.Value("int64")})
    ds = datasets.Dataset.from_dict({"image": images, "mask": masks, "label": labels}, features=features)
    ds.save_to_disk(str(tmp_path / "hf"))
    ds.to_parquet(str(tmp_path / "hf.parquet"))
    for source in (tmp_path / "hf", tmp_path / "hf.parquet"):
        items = hf_items(source, cache_dir=tmp_path / "cache")
        assert [i.label for i in items] == labels and [i.has_mask for i in items] == [True] * 5 + [False]
    summary = train(load_backbone(SPEC), items, tmp_path / "a", TrainConfig(**{**FAST, "epochs": 1}), progress=False)
    assert np.isfinite(summary["log"][0]["total_loss"])


def test_lora_with_prompts_saves_and_loads(data, tmp_path):
    backbone = load_backbone(SPEC)
    base = {k: v.clone() for k, v in backbone.model.state_dict().items()}
    config = TrainConfig(**{**FAST, "epochs": 1, "lora": LoraSettings(towers=("vision", "text"), r=2, alpha=4)})
    train(backbone, layout_items("mvtec", data), tmp_path / "a", config, progress=False)
    trained = {k: v for k, v in backbone.model.state_dict().items() if "lora_B" in k}
    assert trained and any(v.abs().sum() > 0 for v in trained.values())  # LoRA B starts at 0: it moved
    state = backbone.model.state_dict()
    for k, v in base.items():  # base weights untouched (peft keeps them under base_layer)
        assert torch.equal(v, state.get(k, state.get(k.replace(".weight", ".base_layer.weight").replace(
            ".bias", ".base_layer.bias"))))
    x = torch.randn(1, 3, 64, 64)
    fresh = load_backbone(SPEC)
    head = load_text_head(f"learned:{tmp_path / 'a'}", fresh)  # injects LoRA into ``fresh``
    with torch.no_grad():
        torch.testing.assert_close(fresh(x).projected, backbone(x).projected)
    torch.testing.assert_close(head.embeddings("object"), head.learner(backbone.model).detach(), atol=1e-6, rtol=0)


def test_loss_falls_and_seen_categories_improve(data, tmp_path):
    from zsad.learning.train import evaluate

    spec = BackboneSpec("tiny-clip", input_size=64, layers=(4,))
    backbone = load_backbone(spec)
    items = layout_items("mvtec", data)
    hand = evaluate(backbone, load_text_head("winclip", backbone).embeddings("object"), items)["p_auroc"]
    summary = train(backbone, items, tmp_path / "a", TrainConfig(**{**FAST, "epochs": 6}), progress=False)
    learned = evaluate(backbone, load_text_head(f"learned:{tmp_path / 'a'}", backbone).embeddings("object"), items)
    losses = [e["total_loss"] for e in summary["log"]]
    assert losses[-1] < losses[0]
    assert learned["p_auroc"] > hand
