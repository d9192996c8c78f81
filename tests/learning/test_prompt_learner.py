"""Prompt learner + official checkpoint import against an in-test transcription of the official code."""
import pytest
import torch
from official_anomalyclip import official_prompt_buffers, official_text_features, random_official_state

from zsad.backbones.clip import CLIPBackbone, TinyCLIPConfig, build_tiny_clip
from zsad.errors import ZsadError
from zsad.learning.head import LearnedPromptHead, load_learned_head
from zsad.learning.official import import_official, learner_from_official
from zsad.learning.prompt_learner import AnomalyCLIPPromptLearner, PromptLearnerConfig
from zsad.scoring.text_heads import load_text_head


def _backbone(text_layers=2, seed=0):
    model, tokenizer = build_tiny_clip(TinyCLIPConfig(text_layers=text_layers, seed=seed))
    return CLIPBackbone(model, tokenizer, "tiny-clip")


def _official_checkpoint(backbone, tmp_path, depth, n_ctx=12, t_n_ctx=4, seed=0):
    state = random_official_state(32, n_ctx=n_ctx, depth=depth, t_n_ctx=t_n_ctx, seed=seed)
    state.update(official_prompt_buffers(backbone.model, backbone.tokenizer, n_ctx))
    path = tmp_path / "epoch_15.pth"
    torch.save({"prompt_learner": state}, path)
    return path, state


@pytest.mark.parametrize("text_layers,depth,n_ctx,t_n_ctx", [(2, 9, 12, 4), (4, 3, 12, 4), (4, 9, 6, 2)])
def test_imported_checkpoint_gives_official_text_embeddings(tmp_path, text_layers, depth, n_ctx, t_n_ctx):
    backbone = _backbone(text_layers)
    path, state = _official_checkpoint(backbone, tmp_path, depth, n_ctx, t_n_ctx)
    with torch.no_grad():
        expected = official_text_features(backbone.model, state, t_n_ctx)[0]  # [2, D]
    # direct loading of the .pth, and import -> adapter folder -> load
    direct = load_text_head(f"learned:{path}", backbone)
    out = import_official(path, backbone, tmp_path / "adapters" / "official")
    imported = load_text_head(f"learned:{out}", backbone)
    for head in (direct, imported):
        assert isinstance(head, LearnedPromptHead)
        got = head.embeddings("anything")
        assert got.shape == (2, 32)
        torch.testing.assert_close(got, expected, atol=1e-5, rtol=0)
    assert (out / "weights.safetensors").is_file() and (out / "card.md").is_file()


def test_half_rounding_of_deep_prompts_matters_and_is_kept(tmp_path):
    backbone = _backbone(4)
    path, state = _official_checkpoint(backbone, tmp_path, depth=3)
    learner = learner_from_official(backbone, path)
    with torch.no_grad():
        expected = official_text_features(backbone.model, state, 4)[0]
        kept = learner(backbone.model)
        learner.config = PromptLearnerConfig(**{**learner.config.to_dict(), "half_deep_prompts": False})
        unrounded = learner(backbone.model)
    assert (kept - expected).abs().max() < 1e-6
    assert (unrounded - expected).abs().max() > (kept - expected).abs().max()


def test_checkpoint_of_another_base_model_is_refused(tmp_path):
    trained_on = _backbone(2, seed=1)
    path, _ = _official_checkpoint(trained_on, tmp_path, depth=9)
    with pytest.raises(ZsadError, match="another base model"):
        learner_from_official(_backbone(2, seed=0), path)


def test_not_a_checkpoint_is_a_clear_error(tmp_path):
    bad = tmp_path / "x.pth"
    torch.save({"something": torch.zeros(1)}, bad)
    with pytest.raises(ZsadError, match="not an AnomalyCLIP checkpoint"):
        load_learned_head(_backbone(), bad)
    with pytest.raises(ZsadError, match="not found"):
        load_text_head("learned:no-such-adapter", _backbone())


def test_learner_gradients_reach_only_prompt_parameters():
    backbone = _backbone(4)
    backbone.model.requires_grad_(False)
    learner = AnomalyCLIPPromptLearner(backbone.model, backbone.tokenizer, PromptLearnerConfig(depth=3))
    head = LearnedPromptHead(backbone, learner)
    with torch.enable_grad():
        emb = head.embeddings("object")
        assert emb.requires_grad
        (emb * torch.randn_like(emb)).sum().backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in learner.parameters())
    assert all(p.grad is None for p in backbone.model.parameters())
    # cached under no-grad, refreshed when the parameters change
    with torch.no_grad():
        first = head.embeddings("object").clone()
        learner.ctx_neg.add_(1.0)
        second = head.embeddings("object")
    assert not torch.allclose(first, second)
    torch.testing.assert_close(second.norm(dim=-1), torch.ones(2))
