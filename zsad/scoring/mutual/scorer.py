"""The mutual scorer: collects the batch's patch tokens, scores them against each other at the end of the run."""
from __future__ import annotations

import sys
from dataclasses import replace

import torch

from zsad.backbones.base import Features
from zsad.scoring.base import AnomalyMaps, Scorer, ScorerContext, ScoringRun
from zsad.scoring.mutual.config import MutualConfig
from zsad.scoring.mutual.cost import plan_mutual
from zsad.parallel import num_processes
from zsad.scoring.mutual.output import rscin_cls_mode
from zsad.scoring.mutual.pipeline import mutual_scores

# Features of a mutual batch are kept in float16 above this size: 1,000 images at ViT-L-14/518 with 4 layers
# are 22 GB in float32 but 11 GB in float16, and distances are computed in float32 chunks anyway.
FP32_LIMIT_BYTES = 4 * 2**30
MIN_EXPLICIT_BATCH = 3  # --method mutual: the smallest batch worth comparing (auto: MutualConfig.min_batch)


class MutualScorer(Scorer):
    """MuSc: every image's patches against the patches of the other images of the batch."""

    name = "mutual"
    in_auto = True
    decides = ("min_batch",)
    strength = 20
    per_image = False

    @classmethod
    def unavailable(cls, config: MutualConfig, ctx: ScorerContext, run: ScoringRun) -> str | None:
        needed = MIN_EXPLICIT_BATCH if run.explicit else config.min_batch
        if run.n_images < needed:
            return f"mutual scoring needs a batch of at least {needed} test images, got {run.n_images}"
        return None

    def start(self, run: ScoringRun) -> None:
        super().start(run)
        self.tokens: torch.Tensor | None = None
        self.cls: list[torch.Tensor] = []
        self.count = 0

    def add(self, features: Features, start: int) -> None:
        if self.tokens is None:
            local = self.run.n_images if self.run.local_images is None else self.run.local_images
            shape = (local, *features.patch_tokens.shape[1:])
            big = torch.Size(shape).numel() * 4 > FP32_LIMIT_BYTES
            self.tokens = torch.empty(shape, dtype=torch.float16 if big else torch.float32)
        self.tokens[start : start + len(features.patch_tokens)] = features.patch_tokens
        self.cls.append(features.cls)
        self.count = max(self.count, start + len(features.patch_tokens))
        return None

    def finish(self) -> AnomalyMaps:
        state = self.run.state
        mine = None if self.tokens is None else (self.tokens[: self.count], torch.cat(self.cls))
        if num_processes(state) > 1:
            # Every process compares its queries with all images, so each needs every process's tokens.
            from accelerate.utils import gather_object

            pieces = [piece for piece in gather_object([mine]) if piece is not None]
            mine = (torch.cat([t for t, _ in pieces]), torch.cat([c for _, c in pieces]))
        if mine is None:
            return None
        tokens, cls = mine  # fewer tokens than inputs when some inputs could not be read
        config = self.resolved_config(tokens.shape)
        self.resolved = config
        if self.run.progress and (state is None or state.is_main_process):
            print(self.plan.describe(), file=sys.stderr)
        result = mutual_scores(tokens, cls, config, state=state,
                               progress=self.run.progress and (state is None or state.is_main_process))
        self.tokens, self.cls = None, []
        return AnomalyMaps(result.maps.float().cpu(), result.scores.float().cpu(), self.name)

    def resolved_config(self, shape) -> MutualConfig:
        """The configured settings with what depends on the run filled in: the default group bound for large
        batches (MuSc's divide_num), the upsampling size of the official image score, the RsCIN CLS mode of the
        backbone family."""
        config = self.config
        n_images, n_layers, h, w, dim = shape
        self.plan = plan_mutual(n_images, h * w, dim, n_layers, config.radii, max_refs=config.max_refs,
                                groups=config.groups)
        changes = {"groups": self.plan.groups}
        if config.image_score_from == "upsampled_max" and config.upsample_size is None:
            changes["upsample_size"] = self.ctx.backbone.input_size
        if config.rscin_cls == "auto":
            changes["rscin_cls"] = rscin_cls_mode(self.ctx.backbone.family)
        return replace(config, **changes)

    def describe(self) -> dict:
        """The settings resolved from the run (groups, upsampling size, RsCIN CLS mode), once it has run."""
        resolved = getattr(self, "resolved", None)
        if resolved is None:
            return {}
        return {"groups": resolved.groups, "upsample_size": resolved.upsample_size, "rscin_cls": resolved.rscin_cls}
