"""CLI faces of learning: ``zsad train`` and ``zsad adapters import-anomalyclip``; the lead's ``zsad.cli.main``
wires them with ``add_train_parser(subparsers)`` / ``add_adapters_parser(subparsers)``."""
from __future__ import annotations

import argparse
import json
import shlex
import sys

from zsad.errors import ZsadError

# AnomalyCLIP's training setting for the backbone (official train.py): ViT-L/14@336px, the position embedding
# resized bilinearly, the CLS feature without ln_post; V-V attention in the last 19 of 24 blocks (DPAM_layer 20),
# scaled to the depth of another backbone when neither --vv-layers nor --dpam-layer is given.
TRAIN_BACKBONE = {"name": "ViT-L-14-336", "pos_interpolation": "bilinear", "cls_ln_post": False}
OFFICIAL_VV_FRACTION = 19 / 24


def default_vv_layers(depth: int) -> int:
    """V-V blocks of AnomalyCLIP's setting scaled to a backbone of ``depth`` blocks (19 of ViT-L's 24)."""
    return max(1, round(depth * OFFICIAL_VV_FRACTION))


def _backbone_args(parser: argparse.ArgumentParser) -> None:
    """The backbone's flags, generated from ``BackboneSpec`` as ``zsad detect``'s are, with training's defaults."""
    from zsad.config import settings_table
    from zsad.config_fields import add_flags

    shown = {"backbone": TRAIN_BACKBONE["name"], "pos_interpolation": "bilinear", "cls_ln_post": False,
             "vv_layers": "19/24 of the depth, rounded (AnomalyCLIP's DPAM_layer 20 on ViT-L's 24 blocks)"}
    add_flags(parser, settings_table(), defaults=shown, only=lambda item: item.section == ("backbone",))


def _load_backbone(args):
    """The backbone of the parsed flags over training's defaults; V-V depth-relative unless given."""
    from zsad.backbones import BackboneSpec, load_backbone
    from zsad.config import DetectorConfig, build_config
    from zsad.config import settings_table
    from zsad.config_fields import given_options

    given = given_options(args, settings_table())
    base = DetectorConfig(backbone=BackboneSpec(**TRAIN_BACKBONE))
    backbone = load_backbone(build_config(base, keep_none=True, **given).backbone)
    if "vv_layers" not in given and "dpam_layer" not in given:
        backbone.set_vv_layers(default_vv_layers(backbone.depth))
    return backbone


def add_train_parser(subparsers) -> argparse.ArgumentParser:
    from zsad.data.layouts import layout_names

    p = subparsers.add_parser("train", help="learn AnomalyCLIP prompts (and/or LoRA) on data with masks",
                              description="Train object-agnostic prompts as AnomalyCLIP does; the defaults are the "
                              "official recipe. Protocol of the field: train on VisA, test on MVTec (and the reverse).")
    p.add_argument("--data", required=True, help="dataset root, datasets folder/parquet, or hub name (--dataset hf)")
    p.add_argument("--dataset", choices=layout_names(with_aliases=True), default="mvtec",
                   help="data set layout (every layout can feed training: its labelled images are used)")
    p.add_argument("--categories", nargs="+", default=None, help="categories to train on (default: every one)")
    p.add_argument("--val-data", default=None, help="validation set (same kind) for per-epoch metrics")
    p.add_argument("--val-categories", nargs="+", default=None,
                   help="validation categories (default: every one of --val-data)")
    p.add_argument("--out", required=True, help="adapter folder, e.g. adapters/anomalyclip-visa")
    _backbone_args(p)
    p.add_argument("--loss-layers", type=int, nargs="+", default=None, help="layers in the loss (default: all)")
    p.add_argument("--epochs", type=int, default=15, help="passes over the training images")
    p.add_argument("--lr", type=float, default=1e-3, help="Adam learning rate (betas 0.5, 0.999)")
    p.add_argument("--batch-size", type=int, default=8, help="images per optimisation step")
    p.add_argument("--seed", type=int, default=111, help="seed of the prompts' initialisation and the data order")
    p.add_argument("--n-ctx", type=int, default=12, help="learnable context tokens per prompt (official n_ctx)")
    p.add_argument("--depth", type=int, default=9,
                   help="text blocks that get learnable deep prompts (official prompt depth)")
    p.add_argument("--t-n-ctx", type=int, default=4, help="learnable tokens per deep text prompt (official t_n_ctx)")
    p.add_argument("--no-prompts", action="store_true", help="train LoRA only (with the winclip prompts)")
    p.add_argument("--lora", nargs="*", choices=("vision", "text"), default=None, help="add LoRA to these towers")
    p.add_argument("--lora-r", type=int, default=8, help="rank of the LoRA matrices")
    p.add_argument("--mixed-precision", choices=("no", "bf16", "fp16"), default="no",
                   help="autocast the forward pass (accelerate); no: float32")
    p.add_argument("--checkpoint-every", type=int, default=1, help="write a resumable checkpoint every N epochs")
    p.add_argument("--resume", action="store_true", help="continue from the last checkpoint in --out")
    p.add_argument("--cpu", action="store_true", help="train on the CPU even when a GPU is available")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    return p


def run_train(args) -> int:
    from zsad.learning.data import layout_items
    from zsad.learning.lora import LoraSettings
    from zsad.learning.prompt_learner import PromptLearnerConfig
    from zsad.learning.train import TrainConfig, train
    from zsad.parallel import close_process_group

    backbone = _load_backbone(args)
    items = layout_items(args.dataset, args.data, args.categories)
    val = layout_items(args.dataset, args.val_data, args.val_categories) if args.val_data else None
    config = TrainConfig(
        epochs=args.epochs, lr=args.lr, batch_size=args.batch_size, seed=args.seed,
        layers=tuple(args.loss_layers) if args.loss_layers else None,
        prompt_learner=None if args.no_prompts else PromptLearnerConfig(args.n_ctx, args.depth, args.t_n_ctx),
        lora=LoraSettings(towers=tuple(args.lora or ("vision",)), r=args.lora_r) if args.lora is not None else None,
        mixed_precision=args.mixed_precision, checkpoint_every=args.checkpoint_every, cpu=args.cpu,
    )
    data = {"kind": args.dataset, "root": str(args.data), "categories": args.categories, "images": len(items),
            "with_masks": sum(i.has_mask for i in items)}
    summary = train(backbone, items, args.out, config, val_items=val, resume=args.resume, progress=not args.quiet,
                    command="zsad " + " ".join(shlex.quote(a) for a in sys.argv[1:]), data=data)
    close_process_group()
    if "adapter" not in summary:
        return 0  # not the main process: the main one writes and reports
    last = summary["log"][-1] if summary["log"] else {}
    print(f"adapter written to {args.out} (epoch {last.get('epoch')}, loss {last.get('total_loss', float('nan')):.4f})")
    return 0


def add_adapters_parser(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser("adapters", help="manage learned adapters")
    sub = p.add_subparsers(dest="adapters_command", required=True)
    imp = sub.add_parser("import-anomalyclip", help="import an official AnomalyCLIP checkpoint (epoch_15.pth)")
    imp.add_argument("file", help="the official checkpoint (a .pth file holding prompt_learner)")
    imp.add_argument("--out", required=True, help="adapter folder, e.g. adapters/anomalyclip-official-visa")
    _backbone_args(imp)
    show = sub.add_parser("show", help="print an adapter's card")
    show.add_argument("adapter", help="adapter name (under ./adapters) or folder")
    return p


def run_adapters(args) -> int:
    from zsad.learning.adapters import resolve_adapter_dir

    if args.adapters_command == "import-anomalyclip":
        from zsad.learning.official import import_official

        out = import_official(args.file, _load_backbone(args), args.out,
                              command="zsad " + " ".join(shlex.quote(a) for a in sys.argv[1:]))
        print(f"imported {args.file} -> {out}")
        return 0
    if args.adapters_command == "show":
        directory = resolve_adapter_dir(args.adapter)
        card = directory / "card.json"
        print(card.read_text() if card.is_file() else json.dumps({"adapter": str(directory)}))
        return 0
    raise ZsadError(f"unknown adapters command {args.adapters_command!r}")
