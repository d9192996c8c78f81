"""Training AnomalyCLIP's prompts (and optional LoRA adapters) with accelerate.

The recipe is the official one (zqhang/AnomalyCLIP ``train.py``): Adam, lr 1e-3, betas (0.5, 0.999), batch 8, 15
epochs, seed 111; loss = 4 * sum over layers of [focal + dice(anomalous, mask) + dice(normal, 1 - mask)] on the
layer's (normal, anomalous) probability maps upsampled to the input size, + cross-entropy of the image feature's
logits (cosine / 0.07) against the image label. The CLIP weights are frozen and the image forward runs without
gradients (unless vision LoRA is trained). zsad additions: images without a mask contribute only the image loss;
progress bars; a JSON log per epoch (losses, validation metrics); checkpoints of the trainable tensors + optimizer
every ``checkpoint_every`` epochs and ``resume``; mixed precision through accelerate (``bf16`` works on CPU).

Note: the shipped train.sh passes ``--features_list 24`` (maps of layer 24 only) although train.py defaults to
6/12/18/24; ``TrainConfig.layers`` chooses.
"""
from __future__ import annotations

import json
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from zsad.errors import ZsadError
from zsad.learning.adapters import AdapterConfig, backbone_settings, base_model_description, save_adapter
from zsad.learning.data import TrainDataset, TrainItem
from zsad.learning.lora import LoraSettings, apply_lora, lora_state
from zsad.learning.losses import pixel_loss
from zsad.learning.prompt_learner import AnomalyCLIPPromptLearner, PromptLearnerConfig

LOG = "train_log.json"


@dataclass
class TrainConfig:
    epochs: int = 15
    lr: float = 1e-3
    batch_size: int = 8
    betas: tuple[float, float] = (0.5, 0.999)
    seed: int = 111
    pixel_weight: float = 4.0  # "lam" in train.py
    temperature: float = 0.07
    layers: tuple[int, ...] | None = None  # layers whose maps enter the loss; None = all backbone layers
    prompt_learner: PromptLearnerConfig | None = field(default_factory=PromptLearnerConfig)  # None: LoRA only
    lora: LoraSettings | None = None
    mixed_precision: str = "no"  # "no" | "bf16" | "fp16"
    checkpoint_every: int = 1
    cpu: bool = False
    num_workers: int = 0

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["prompt_learner"] = self.prompt_learner.to_dict() if self.prompt_learner else None
        data["lora"] = self.lora.to_dict() if self.lora else None
        return data


class _Trainable(nn.Module):
    """What accelerate wraps: the prompt learner and the CLIP model (whose only trainable tensors are LoRA's)."""

    def __init__(self, learner: AnomalyCLIPPromptLearner | None, backbone, fixed_text: torch.Tensor | None):
        super().__init__()
        self.learner = learner
        self.clip = backbone.model
        self.backbone = [backbone]  # not a submodule: it owns ``clip`` already
        self.register_buffer("fixed_text", fixed_text if fixed_text is not None else torch.zeros(0), persistent=False)

    def forward(self, images: torch.Tensor, vision_grad: bool):
        text = self.learner(self.clip) if self.learner is not None else self.fixed_text
        with torch.set_grad_enabled(vision_grad and torch.is_grad_enabled()):
            features = self.backbone[0](images)
        return text, features


def batch_losses(text, features, masks, has_mask, labels, config: TrainConfig, size: int):
    """(pixel loss, image loss) of one batch, as the official train.py computes them."""
    image = features.cls.float()
    image = image / image.norm(dim=-1, keepdim=True)
    logits = image @ text.float().T / config.temperature
    image_loss = F.cross_entropy(logits, labels.long())
    keep = has_mask.bool()
    if not keep.any():
        return logits.new_zeros(()), image_loss
    tokens = features.take(config.layers, projected=True, what="training")[keep].float()  # [b, L, h, w, D]
    tokens = tokens / tokens.norm(dim=-1, keepdim=True)
    probs = (tokens @ text.float().T / config.temperature).softmax(dim=-1)  # [b, L, h, w, 2]
    prob_maps = [F.interpolate(probs[:, i].permute(0, 3, 1, 2), size=(size, size), mode="bilinear",
                               align_corners=False) for i in range(probs.shape[1])]
    return config.pixel_weight * pixel_loss(prob_maps, masks[keep].float()), image_loss


@torch.no_grad()
def evaluate(backbone, text: torch.Tensor, items: list[TrainItem], layers=None, batch_size: int = 8,
             sigma: float = 4.0) -> dict[str, float]:
    """Pixel and image metrics of the AnomalyCLIP formula with these text rows, at the input size."""
    from zsad.metrics.image import image_metrics
    from zsad.metrics.pixel import pixel_metrics
    from zsad.scoring.anomalyclip import AnomalyCLIPConfig, anomalyclip_scores, full_resolution

    dataset = TrainDataset(items, backbone.input_size, backbone.mean, backbone.std)
    loader = torch.utils.data.DataLoader(dataset, batch_size=batch_size, shuffle=False)
    device = next(backbone.model.parameters()).device
    maps, masks, scores, labels = [], [], [], []
    for images, mask, has_mask, label in loader:
        out = anomalyclip_scores(backbone(images.to(device)), text.to(device), AnomalyCLIPConfig(layers=layers))
        full = full_resolution(out.maps, backbone.input_size, sigma).cpu()
        keep = has_mask.bool()
        maps.append(full[keep].numpy())
        masks.append(mask[keep].numpy() > 0.5)
        scores.append(out.scores.cpu().numpy())
        labels.append(label.numpy())
    result = image_metrics(np.concatenate(scores), np.concatenate(labels))
    result.update(pixel_metrics(np.concatenate(maps), np.concatenate(masks)))
    return {k: float(v) for k, v in result.items()}


def _checkpoint_dir(out: Path) -> Path:
    return out / "checkpoints"


def _latest_checkpoint(out: Path) -> Path | None:
    found = sorted(_checkpoint_dir(out).glob("epoch_*.pt"), key=lambda p: int(p.stem.split("_")[1]))
    return found[-1] if found else None


def train(backbone, items: list[TrainItem], out: str | Path, config: TrainConfig = TrainConfig(),
          val_items: list[TrainItem] | None = None, resume: bool = False, progress: bool = True,
          command: str | None = None, data: dict[str, Any] | None = None) -> dict[str, Any]:
    """Train, write ``out/`` (adapter + card + train_log.json + checkpoints/), return the summary."""
    from accelerate import Accelerator
    from accelerate.utils import DataLoaderConfiguration, set_seed
    from tqdm.auto import tqdm

    if config.prompt_learner is None and config.lora is None:
        raise ZsadError("nothing to train: give prompt-learner settings, LoRA settings, or both")
    if not backbone.has_text:
        raise ZsadError(f"training needs a CLIP backbone with a text tower; {backbone.name} has none")
    out = Path(out)
    # Under torchrun on a machine without CUDA, accelerate must be told cpu=True (gloo); otherwise every process
    # believes it runs alone, trains on all the data and writes the same adapter folder.
    several = int(os.environ.get("WORLD_SIZE", "1")) > 1
    accelerator = Accelerator(cpu=config.cpu or (several and not torch.cuda.is_available()), mixed_precision=config.mixed_precision,
                              dataloader_config=DataLoaderConfiguration(use_seedable_sampler=True))
    set_seed(config.seed)
    base = base_model_description(backbone)  # before LoRA: the fingerprint is of the frozen base weights
    backbone.model.requires_grad_(False)
    backbone.model.to(accelerator.device)
    learner = None
    fixed_text = None
    if config.prompt_learner is not None:
        learner = AnomalyCLIPPromptLearner(backbone.model, backbone.tokenizer, config.prompt_learner)
    else:
        from zsad.scoring.text_heads import load_text_head

        fixed_text = load_text_head("winclip", backbone).embeddings("object").clone()
    lora_params = apply_lora(backbone, config.lora) if config.lora else []
    module = _Trainable(learner, backbone, fixed_text).to(accelerator.device)
    params = ([*learner.parameters()] if learner is not None else []) + lora_params
    optimizer = torch.optim.Adam(params, lr=config.lr, betas=tuple(config.betas))
    dataset = TrainDataset(items, backbone.input_size, backbone.mean, backbone.std)
    generator = torch.Generator().manual_seed(config.seed)
    loader = torch.utils.data.DataLoader(dataset, batch_size=config.batch_size, shuffle=True, generator=generator,
                                         num_workers=config.num_workers)
    module, optimizer, loader = accelerator.prepare(module, optimizer, loader)
    vision_grad = bool(config.lora and "vision" in config.lora.towers)

    log: list[dict[str, Any]] = []
    start_epoch = 0
    if resume:
        latest = _latest_checkpoint(out)
        if latest is None:
            raise ZsadError(f"--resume: no checkpoint in {_checkpoint_dir(out)}")
        state = torch.load(latest, map_location="cpu", weights_only=False)
        if state.get("config") != config.to_dict():
            raise ZsadError(f"--resume: {latest} was written with other training settings; use the same options")
        trainable = dict(accelerator.unwrap_model(module).named_parameters())
        with torch.no_grad():
            for name, value in state["trainable"].items():
                trainable[name].copy_(value)
        optimizer.load_state_dict(state["optimizer"])
        torch.set_rng_state(state["rng"])
        start_epoch = int(state["epoch"])
        log = state["log"]

    trainable_names = [n for n, p in accelerator.unwrap_model(module).named_parameters() if p.requires_grad]
    size = backbone.input_size
    for epoch in range(start_epoch, config.epochs):
        if hasattr(loader, "set_epoch"):
            loader.set_epoch(epoch)
        module.train()
        pixel_losses, image_losses = [], []
        started = time.perf_counter()
        bar = tqdm(loader, desc=f"epoch {epoch + 1}/{config.epochs}", disable=not progress or not accelerator.is_main_process)
        for images, masks, has_mask, labels in bar:
            with accelerator.autocast():
                text, features = module(images, vision_grad)
                p_loss, i_loss = batch_losses(text, features, masks, has_mask, labels, config, size)
                loss = p_loss + i_loss
            optimizer.zero_grad()
            accelerator.backward(loss)
            optimizer.step()
            pixel_losses.append(float(p_loss.detach()))
            image_losses.append(float(i_loss.detach()))
            bar.set_postfix(loss=f"{pixel_losses[-1]:.3f}", image_loss=f"{image_losses[-1]:.3f}")
        entry: dict[str, Any] = {"epoch": epoch + 1, "loss": float(np.mean(pixel_losses)),
                                 "image_loss": float(np.mean(image_losses)),
                                 "total_loss": float(np.mean(pixel_losses) + np.mean(image_losses)),
                                 "seconds": round(time.perf_counter() - started, 3)}
        if val_items and accelerator.is_main_process:
            module.eval()
            with torch.no_grad():
                text = accelerator.unwrap_model(module).learner(backbone.model) if learner is not None else fixed_text
            entry["validation"] = evaluate(backbone, text.detach(), val_items, config.layers)
        log.append(entry)
        if accelerator.is_main_process:
            out.mkdir(parents=True, exist_ok=True)
            (out / LOG).write_text(json.dumps(log, indent=2) + "\n")
            if (epoch + 1) % config.checkpoint_every == 0 or epoch + 1 == config.epochs:
                _checkpoint_dir(out).mkdir(parents=True, exist_ok=True)
                named = dict(accelerator.unwrap_model(module).named_parameters())
                torch.save({"epoch": epoch + 1, "config": config.to_dict(), "log": log, "rng": torch.get_rng_state(),
                            "trainable": {n: named[n].detach().cpu() for n in trainable_names},
                            "optimizer": optimizer.state_dict()}, _checkpoint_dir(out) / f"epoch_{epoch + 1}.pt")
        accelerator.wait_for_everyone()

    summary: dict[str, Any] = {"epochs": config.epochs, "log": log}
    if accelerator.is_main_process:
        unwrapped = accelerator.unwrap_model(module)
        tensors: dict[str, torch.Tensor] = {}
        if unwrapped.learner is not None:
            tensors.update({f"prompt_learner.{k}": v for k, v in unwrapped.learner.state_dict().items()})
        if config.lora:
            tensors.update(lora_state(backbone))
        adapter = AdapterConfig(
            kind="anomalyclip",
            prompt_learner=config.prompt_learner.to_dict() if config.prompt_learner else None,
            lora=config.lora.to_dict() if config.lora else None,
            backbone={**backbone_settings(backbone),
                      "loss_layers": list(config.layers) if config.layers else list(backbone.layers)},
            base_model=base,
        )
        final = log[-1] if log else {}
        card = {"data": data or {"images": len(items), "with_masks": sum(i.has_mask for i in items)},
                "recipe": config.to_dict(), "metrics": {k: v for k, v in final.items() if k != "seconds"},
                "command": command, "source": "zsad train"}
        save_adapter(out, adapter, tensors, card)
        summary["adapter"] = str(out)
    accelerator.wait_for_everyone()  # no process returns (and perhaps exits) while the main one still writes
    return summary


__all__ = ["TrainConfig", "train", "evaluate", "batch_losses"]
