"""Independent transcriptions of the official AnomalyCLIP code (github.com/zqhang/AnomalyCLIP), for equivalence
tests only. Written for these tests from the official files named in each docstring; they follow the official
control flow line by line (sequence-first layout, dual V-V path, deep prompts cast with ``.half()``, ...) and use
only the raw weights of an open_clip model, never zsad's code. zsad does not import this module.
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from scipy.ndimage import gaussian_filter


# ---------------------------------------------------------------- prompt_ensemble.py: AnomalyCLIP_PromptLearner
def official_prompt_buffers(model, tokenizer, n_ctx: int) -> dict[str, torch.Tensor]:
    """The buffers AnomalyCLIP_PromptLearner.__init__ registers (random-init branch, classnames ['object'])."""
    prefix = " ".join(["X"] * n_ctx)
    out = {}
    for tag, template in (("pos", "{}"), ("neg", "damaged {}")):
        tokenized = tokenizer([prefix + " " + template.format("object") + "."])
        with torch.no_grad():
            embedding = model.token_embedding(tokenized)
        n, l, d = embedding.shape
        embedding = embedding.reshape(1, 1, l, d).permute(1, 0, 2, 3)
        out[f"token_prefix_{tag}"] = embedding[:, :, :1, :].clone()
        out[f"token_suffix_{tag}"] = embedding[:, :, 1 + n_ctx:, :].clone()
        out[f"tokenized_prompts_{tag}"] = tokenized.reshape(1, 1, l).permute(1, 0, 2).clone()
    return out


def official_prompt_forward(state):
    """AnomalyCLIP_PromptLearner.forward: (prompts, tokenized_prompts, compound_prompts_text)."""
    prompts_pos = torch.cat([state["token_prefix_pos"], state["ctx_pos"], state["token_suffix_pos"]], dim=2)
    prompts_neg = torch.cat([state["token_prefix_neg"], state["ctx_neg"], state["token_suffix_neg"]], dim=2)
    _, _, l, d = prompts_pos.shape
    prompts_pos = prompts_pos.reshape(-1, l, d)
    _, _, l, d = prompts_neg.shape
    prompts_neg = prompts_neg.reshape(-1, l, d)
    prompts = torch.cat([prompts_pos, prompts_neg], dim=0)
    _, l, d = state["tokenized_prompts_pos"].shape
    tp = state["tokenized_prompts_pos"].reshape(-1, d)
    _, l, d = state["tokenized_prompts_neg"].shape
    tn = state["tokenized_prompts_neg"].reshape(-1, d)
    tokenized = torch.cat((tp, tn), dim=0)
    n_deep = len([k for k in state if k.startswith("compound_prompts_text.")])
    compound = [state[f"compound_prompts_text.{i}"] for i in range(n_deep)]
    return prompts, tokenized, compound


def _mha_seq_first(attn, x, mask=None):
    return F.multi_head_attention_forward(
        x, x, x, attn.embed_dim, attn.num_heads, attn.in_proj_weight, attn.in_proj_bias, None, None, False, 0.0,
        attn.out_proj.weight, attn.out_proj.bias, training=False, need_weights=False, attn_mask=mask,
    )[0]


# ---------------------------------------------------------- AnomalyCLIP_lib/AnomalyCLIP.py: encode_text_learn
def official_encode_text_learn(model, prompts, tokenized_prompts, deep_compound_prompts_text, t_n_ctx):
    """AnomalyCLIP.encode_text_learn + Transformer(text) + ResidualAttentionBlock_learnable_token.forward."""
    x = prompts + model.positional_embedding
    x = x.permute(1, 0, 2)  # NLD -> LND
    counter = 0
    for i, r in enumerate(model.transformer.resblocks):
        if i != 0:  # not first_layer
            if not (counter > len(deep_compound_prompts_text) - 1):
                prefix = x[:1, :, :]
                suffix = x[1 + t_n_ctx:, :, :]
                textual_context = deep_compound_prompts_text[counter]
                textual_context = textual_context.expand(x.shape[1], -1, -1).permute(1, 0, 2).half()
                x = torch.cat([prefix, textual_context, suffix], dim=0)
                counter += 1
        x = x + _mha_seq_first(r.attn, r.ln_1(x), model.attn_mask)
        x = x + r.mlp(r.ln_2(x))
    x = x.permute(1, 0, 2)
    x = model.ln_final(x)
    return x[torch.arange(x.shape[0]), tokenized_prompts.argmax(dim=-1)] @ model.text_projection


def official_text_features(model, state, t_n_ctx):
    """test.py: text features [1, 2, D] normalised."""
    prompts, tokenized, compound = official_prompt_forward(state)
    text_features = official_encode_text_learn(model, prompts, tokenized, compound, t_n_ctx).float()
    text_features = torch.stack(torch.chunk(text_features, dim=0, chunks=2), dim=1)
    return text_features / text_features.norm(dim=-1, keepdim=True)


# ----------------------------------------- AnomalyCLIP_lib/AnomalyCLIP.py: VisionTransformer with DAPM_replace
def _vv_attention(attn, x_nld):
    """Attention.forward (qkv_bias=True): returns [x (v-v), x_ori] in NLD."""
    B, N, C = x_nld.shape
    heads = attn.num_heads
    scale = (C // heads) ** -0.5
    qkv = F.linear(x_nld, attn.in_proj_weight, attn.in_proj_bias)
    qkv = qkv.reshape(B, N, 3, heads, C // heads).permute(2, 0, 3, 1, 4)
    q, k, v = qkv[0], qkv[1], qkv[2]
    attn_ori = ((q @ k.transpose(-2, -1)) * scale).softmax(dim=-1)
    k = v
    q = k
    attn_vv = ((q @ k.transpose(-2, -1)) * scale).softmax(dim=-1)
    x_ori = (attn_ori @ v).transpose(1, 2).reshape(B, N, C)
    x = (attn_vv @ v).transpose(1, 2).reshape(B, N, C)
    x = F.linear(x, attn.out_proj.weight, attn.out_proj.bias)
    x_ori = F.linear(x_ori, attn.out_proj.weight, attn.out_proj.bias)
    return [x, x_ori]


def official_encode_image(visual, image, features_list, DPAM_layer, pretrain_side):
    """VisionTransformer.forward(..., DPAM_layer) with DAPM_replace(DPAM_layer) done before, ffn=False.
    Returns (image_features [B, D], patch_tokens list of [B, 1 + N, D] after ln_post @ proj)."""
    replaced = set()
    for i in range(1, DPAM_layer):  # DAPM_replace: resblocks[-i] for i in 1..DPAM_layer-1
        replaced.add(len(visual.transformer.resblocks) - i)
    x = visual.conv1(image)
    x = x.reshape(x.shape[0], x.shape[1], -1).permute(0, 2, 1)
    x = torch.cat([visual.class_embedding.to(x.dtype) + torch.zeros(x.shape[0], 1, x.shape[-1], dtype=x.dtype), x], dim=1)
    pos = visual.positional_embedding
    side = int((pos.shape[0] - 1) ** 0.5)
    assert side == pretrain_side
    new_side = int((x.shape[1] - 1) ** 0.5)
    if side != new_side:
        new_pos = pos[1:, :].reshape(-1, side, side, x.shape[-1]).permute(0, 3, 1, 2)
        new_pos = F.interpolate(new_pos, (new_side, new_side), mode="bilinear")
        new_pos = new_pos.reshape(-1, x.shape[-1], new_side * new_side).transpose(1, 2)
        pos = torch.cat([pos[:1, :], new_pos[0]], 0)
    x = x + pos
    x = visual.ln_pre(x)
    x = x.permute(1, 0, 2)  # LND
    out_tokens = []
    for idx0, r in enumerate(visual.transformer.resblocks):
        idx = idx0 + 1
        if idx0 in replaced:
            if isinstance(x, list):
                x, x_ori = x
                x_res, x_ori_res = [t.transpose(0, 1) for t in _vv_attention(r.attn, r.ln_1(x_ori).transpose(0, 1))]
                x_ori = x_ori + x_ori_res
                x_ori = x_ori + r.mlp(r.ln_2(x_ori))
                x = x + x_res
                x = [x, x_ori]
            else:
                x_res, x_ori_res = [t.transpose(0, 1) for t in _vv_attention(r.attn, r.ln_1(x).transpose(0, 1))]
                x_ori = x + x_ori_res
                x_ori = x_ori + r.mlp(r.ln_2(x_ori))
                x = x + x_res
                x = [x, x_ori]
        else:
            x = x + _mha_seq_first(r.attn, r.ln_1(x))
            x = x + r.mlp(r.ln_2(x))
        if idx in features_list:
            out_tokens.append((x[0] if isinstance(x, list) else x).clone())
    x, x_ori = x if isinstance(x, list) else (x, x)
    patch_tokens = [visual.ln_post(t.permute(1, 0, 2)) @ visual.proj for t in out_tokens]
    return x_ori[0, :, :] @ visual.proj, patch_tokens


# ------------------------------------------------- model_load.py + test.py: similarity, maps and image score
def compute_similarity(image_features, text_features, t=2):
    prob_1 = image_features[:, :1, :] @ text_features.t()
    b, n_t, n_i, c = image_features.shape[0], text_features.shape[0], image_features.shape[1], image_features.shape[2]
    feats = image_features.reshape(b, n_i, 1, c) * text_features.reshape(1, 1, n_t, c)
    similarity = feats.sum(-1)
    return (similarity / 0.07).softmax(-1), prob_1


def get_similarity_map(sm, shape):
    side = int(sm.shape[1] ** 0.5)
    sm = sm.reshape(sm.shape[0], side, side, -1).permute(0, 3, 1, 2)
    sm = torch.nn.functional.interpolate(sm, shape, mode="bilinear")
    return sm.permute(0, 2, 3, 1)


def official_test_outputs(image_features, patch_features, text_features, image_size, sigma=4):
    """test.py's per-image loop body: (text_probs [B], anomaly_map [B, S, S] after gaussian_filter)."""
    image_features = image_features / image_features.norm(dim=-1, keepdim=True)
    text_probs = image_features @ text_features.permute(0, 2, 1)
    text_probs = (text_probs / 0.07).softmax(-1)
    text_probs = text_probs[:, 0, 1]
    anomaly_map_list = []
    for patch_feature in patch_features:
        patch_feature = patch_feature / patch_feature.norm(dim=-1, keepdim=True)
        similarity, _ = compute_similarity(patch_feature, text_features[0])
        similarity_map = get_similarity_map(similarity[:, 1:, :], image_size)
        anomaly_map = (similarity_map[..., 1] + 1 - similarity_map[..., 0]) / 2.0
        anomaly_map_list.append(anomaly_map)
    anomaly_map = torch.stack(anomaly_map_list).sum(dim=0)
    anomaly_map = torch.stack([torch.from_numpy(gaussian_filter(i, sigma=sigma)) for i in anomaly_map.detach().cpu()],
                              dim=0)
    return text_probs, anomaly_map


def random_official_state(width: int, n_ctx: int = 12, depth: int = 9, t_n_ctx: int = 4, seed: int = 0):
    """Random values under the official state-dict names and shapes (incl. the unused projections)."""
    g = torch.Generator().manual_seed(seed)
    state = {"ctx_pos": torch.randn(1, 1, n_ctx, width, generator=g) * 0.3,
             "ctx_neg": torch.randn(1, 1, n_ctx, width, generator=g) * 0.3}
    for i in range(depth - 1):
        state[f"compound_prompts_text.{i}"] = torch.randn(t_n_ctx, width, generator=g) * 0.3
        state[f"compound_prompt_projections.{i}.weight"] = torch.randn(896, width, generator=g)
        state[f"compound_prompt_projections.{i}.bias"] = torch.randn(896, generator=g)
    return state


__all__ = ["np"]


# ------------------------------------------------------------------------- loss.py: FocalLoss, BinaryDiceLoss
def official_focal_loss(logit, target, gamma=2, smooth=1e-5):
    """FocalLoss() defaults (apply_nonlin None, alpha None, balance_index 0, size_average True)."""
    num_class = logit.shape[1]
    logit = logit.view(logit.size(0), logit.size(1), -1).permute(0, 2, 1).contiguous().view(-1, num_class)
    target = torch.squeeze(target, 1).view(-1, 1)
    alpha = torch.ones(num_class, 1)
    idx = target.cpu().long()
    one_hot_key = torch.FloatTensor(target.size(0), num_class).zero_().scatter_(1, idx, 1)
    one_hot_key = torch.clamp(one_hot_key, smooth / (num_class - 1), 1.0 - smooth)
    pt = (one_hot_key * logit).sum(1) + smooth
    logpt = pt.log()
    alpha = torch.squeeze(alpha[idx])
    return (-1 * alpha * torch.pow((1 - pt), gamma) * logpt).mean()


def official_dice_loss(input, targets):
    N = targets.size()[0]
    input_flat = input.view(N, -1)
    targets_flat = targets.view(N, -1)
    intersection = input_flat * targets_flat
    N_dice_eff = (2 * intersection.sum(1) + 1) / (input_flat.sum(1) + targets_flat.sum(1) + 1)
    return 1 - N_dice_eff.sum() / N
