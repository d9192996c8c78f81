"""AnomalyCLIP's training losses (zqhang/AnomalyCLIP ``loss.py``), on probability maps.

``focal_loss``: the official ``FocalLoss()`` defaults (no non-linearity: the inputs are already softmax
probabilities; alpha 1; gamma 2; label smoothing 1e-5 that clamps the one-hot target to [1e-5, 1 - 1e-5] and adds
1e-5 to p_t), mean over every pixel of the batch. ``dice_loss``: ``BinaryDiceLoss`` with smoothing 1, averaged
over images. ``pixel_loss``: for each layer, focal(probs, mask) + dice(p_anomalous, mask) +
dice(p_normal, 1 - mask), summed over layers.
"""
from __future__ import annotations

import torch


def focal_loss(probs: torch.Tensor, target: torch.Tensor, gamma: float = 2.0, smooth: float = 1e-5) -> torch.Tensor:
    """probs [B, C, H, W] (C = 2), target [B, H, W] in {0, 1}."""
    c = probs.shape[1]
    flat = probs.permute(0, 2, 3, 1).reshape(-1, c)
    one_hot = torch.nn.functional.one_hot(target.reshape(-1).long(), c).to(flat.dtype)
    one_hot = one_hot.clamp(smooth / (c - 1), 1.0 - smooth)
    pt = (one_hot * flat).sum(1) + smooth
    return (-torch.pow(1 - pt, gamma) * pt.log()).mean()


def dice_loss(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    n = target.shape[0]
    p, t = pred.reshape(n, -1), target.reshape(n, -1)
    dice = (2 * (p * t).sum(1) + 1) / (p.sum(1) + t.sum(1) + 1)
    return 1 - dice.sum() / n


def pixel_loss(prob_maps: list[torch.Tensor], mask: torch.Tensor) -> torch.Tensor:
    """prob_maps: per layer [B, 2, H, W] (normal, anomalous); mask [B, H, W]."""
    total = prob_maps[0].new_zeros(())
    for probs in prob_maps:
        total = total + focal_loss(probs, mask) + dice_loss(probs[:, 1], mask) + dice_loss(probs[:, 0], 1 - mask)
    return total
