"""RsCIN: re-scoring with a constrained image-level neighbourhood (MuSc, step 3).

A single image's max patch score is noisy; images that look alike as a whole (close image embeddings) should
get similar scores. RsCIN smooths each image's score over its k most similar images, for several k.

Definition, following the official code (xrli-U/MuSc, models/modules/_RsCIN.py, ``RsCIN`` and ``MMO``):

- s = min-max normalised image scores (so the output lies in [0, 1]). A constant s (max == min) carries no
  ranking; it becomes all zeros instead of MuSc's division by zero.
- W = cosine similarities of the image embeddings (MuSc L2-normalises CLIP's image features, so its
  ``cls @ cls.T`` is the cosine).
- For each k: every row of W keeps its k largest entries, the image itself included (its cosine 1 is the
  row's maximum), the rest set to 0; rows are divided by their sums (P_k = D^-1 W_k); s_k = P_k s.
  k larger than N keeps the whole row.
- Output: the mean of s_k over the k list. k = 1 alone returns s.

One guard that MuSc lacks: negative cosines are clamped to 0 before the row normalisation; otherwise a row whose
kept entries sum to <= 0 would be undefined or flip signs. Images of one product have positive cosines, where
this changes nothing. ``clamp_negative=False`` keeps negative similarities as the official code does, and clamps
only the rows whose kept similarities sum to <= 0 (where the official code is undefined or flips signs).

Image embeddings per backbone family in the official code (models/musc.py): CLIP's pooled, projected embedding
is L2-normalised (line 175), so ``cls @ cls.T`` is the cosine: ``cls_mode="normalized"``. DINO and DINOv2 feed
the model's output (the final-LayerNorm CLS token, lines 165 and 171) without normalisation, so RsCIN weighs
images by raw dot products: ``cls_mode="raw"``. With raw dot products an image is not necessarily among its own
k most similar images; the k largest entries of its row are kept whatever they are, as in the official ``MMO``.
"""
from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F

from zsad.errors import ZsadError


def minmax(scores: torch.Tensor) -> torch.Tensor:
    """Scores mapped to [0, 1]; all zeros when they are constant."""
    span = scores.max() - scores.min()
    if span <= 0:
        return torch.zeros_like(scores)
    return (scores - scores.min()) / span


CLS_MODES = ("normalized", "raw")


def rscin(
    scores: torch.Tensor,
    cls: torch.Tensor,
    k_list: Sequence[int] = (1, 2, 3),
    *,
    cls_mode: str = "normalized",
    clamp_negative: bool = True,
) -> torch.Tensor:
    """Re-scored image scores [N] (float32, in [0, 1] with the clamp) from raw scores [N] and image embeddings [N, D].

    cls_mode: "normalized" compares L2-normalised embeddings (cosines); "raw" their plain dot products.
    clamp_negative: set negative similarities to 0 (True), or keep them except in rows whose kept sum is <= 0.
    """
    if scores.dim() != 1 or cls.dim() != 2 or cls.shape[0] != scores.shape[0]:
        raise ZsadError(
            f"RsCIN needs scores [N] and image embeddings [N, D] for the same N, got {tuple(scores.shape)} "
            f"and {tuple(cls.shape)}"
        )
    if not k_list or any(k < 1 for k in k_list):
        raise ZsadError(f"RsCIN window sizes {tuple(k_list)} must be positive integers such as (1, 2, 3)")
    if cls_mode not in CLS_MODES:
        raise ZsadError(f"RsCIN cls_mode={cls_mode!r} must be one of {', '.join(CLS_MODES)}")
    s = minmax(scores.double())
    emb = cls.double()
    if cls_mode == "normalized":
        emb = F.normalize(emb, dim=-1)
    similarity = emb @ emb.T
    if clamp_negative:
        similarity.clamp_(min=0.0)
    n = similarity.shape[0]
    rescored = torch.zeros_like(s)
    for k in k_list:
        kept = torch.topk(similarity, min(k, n), dim=1).indices
        weights = torch.zeros_like(similarity).scatter_(1, kept, similarity.gather(1, kept))
        if not clamp_negative:
            bad = weights.sum(dim=1) <= 0
            if bad.any():
                weights[bad] = weights[bad].clamp(min=0.0)
        rescored += (weights / weights.sum(dim=1, keepdim=True)) @ s
    return (rescored / len(k_list)).float()
