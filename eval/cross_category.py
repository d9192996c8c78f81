"""Cross-category generalisation of learned prompts on generated data (issue 8's check), every split at once.

For each pair of ``zsad synth`` categories: train AnomalyCLIP's prompt learner on the pair with the random
``tiny-clip`` model, then compare pixel AUROC on the two other (unseen) categories with the hand-written WinCLIP
prompts and with the learned ones, both through the same AnomalyCLIP formula (``zsad.learning.train.evaluate``).
A third column fits a direction directly: a class-balanced logistic regression on the training categories'
patches (normalised V-V tokens against the mask on the patch grid). Two text rows rank patches by their projection
on one direction (the softmax of two similarities is a sigmoid of the difference), so the probe is a reference
for what a fixed direction fitted on the training categories reaches on the unseen ones, without the detour
through the text encoder.

What to read from it: with random weights there are no semantics of "damage" to share between categories, so the
learned prompts mostly (a) fit the training categories and (b) undo the arbitrary sign of the hand-written
prompts' random direction. Transfer is above chance only where the training pair holds one texture and one
object; the probe column shows when no transferable direction exists in the features at all.

    python eval/cross_category.py --seeds 0 1 2          # about 1 min per seed on a 2-core CPU
Writes ``eval/results/cross_category.json``.
"""
from __future__ import annotations

import argparse
import itertools
import json
import platform
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F

CATEGORIES = ("weave", "grain", "pill", "washer")
# The settings of the test in tests/learning/test_cross_category.py.
SETTINGS = {"input_size": 112, "dpam_layer": 1, "layers": (1,), "epochs": 10, "lr": 0.01, "batch_size": 4,
            "depth": 3}


def backbone():
    from zsad.backbones import BackboneSpec, load_backbone

    return load_backbone(BackboneSpec("tiny-clip", input_size=SETTINGS["input_size"],
                                      dpam_layer=SETTINGS["dpam_layer"], layers=SETTINGS["layers"],
                                      cls_ln_post=False, pos_interpolation="bilinear"))


def generate(root: Path, seed: int) -> Path:
    from zsad.data.synth import generate_dataset

    return generate_dataset(root, categories=list(CATEGORIES), n_train=1, n_test_good=3, n_test_defect=3, size=64,
                            seed=seed)


def train_and_compare(model, root: Path, train_categories, test_categories, out: Path) -> dict:
    """Loss before/after and pixel AUROC of hand-written vs learned prompts on the train and test categories."""
    from zsad.learning.data import layout_items
    from zsad.learning.prompt_learner import PromptLearnerConfig
    from zsad.learning.train import TrainConfig, evaluate, train
    from zsad.scoring.text_heads import load_text_head

    seen = layout_items("mvtec", root, list(train_categories))
    unseen = layout_items("mvtec", root, list(test_categories))
    hand = load_text_head("winclip", model).embeddings("object")
    config = TrainConfig(epochs=SETTINGS["epochs"], lr=SETTINGS["lr"], batch_size=SETTINGS["batch_size"],
                         prompt_learner=PromptLearnerConfig(depth=SETTINGS["depth"]))
    summary = train(model, seen, out, config, progress=False)
    learned = load_text_head(f"learned:{out}", model).embeddings("object")
    return {
        "train": list(train_categories), "test": list(test_categories),
        "loss_first_epoch": summary["log"][0]["total_loss"], "loss_last_epoch": summary["log"][-1]["total_loss"],
        "seen_p_auroc_hand": evaluate(model, hand, seen)["p_auroc"],
        "seen_p_auroc_learned": evaluate(model, learned, seen)["p_auroc"],
        "unseen_p_auroc_hand": evaluate(model, hand, unseen)["p_auroc"],
        "unseen_p_auroc_learned": evaluate(model, learned, unseen)["p_auroc"],
        "unseen_p_auroc_probe": evaluate(model, probe_direction(model, seen), unseen)["p_auroc"],
    }


def probe_direction(model, items, steps: int = 300, weight_decay: float = 1e-3) -> torch.Tensor:
    """Two text rows (-w, w) whose maps rank patches by a logistic regression fitted on the items' patches."""
    from zsad.learning.data import TrainDataset

    dataset = TrainDataset(items, model.input_size, model.mean, model.std)
    tokens, labels = [], []
    with torch.no_grad():
        for image, mask, has_mask, _ in dataset:
            if not has_mask:
                continue
            projected = model(image[None]).projected[0]  # [L, h, w, D]
            projected = projected / projected.norm(dim=-1, keepdim=True)
            grid = F.adaptive_avg_pool2d(mask.float()[None, None], projected.shape[1:3])[0, 0]
            for layer in projected:
                tokens.append(layer.reshape(-1, layer.shape[-1]))
                labels.append((grid.reshape(-1) > 0.3).float())
    x, y = torch.cat(tokens), torch.cat(labels)
    positive = y.mean().clamp(1e-3, 1 - 1e-3)
    weights = torch.where(y > 0, 0.5 / positive, 0.5 / (1 - positive))
    w = torch.zeros(x.shape[1], requires_grad=True)
    b = torch.zeros((), requires_grad=True)
    optimizer = torch.optim.LBFGS([w, b], max_iter=steps, line_search_fn="strong_wolfe")

    def closure():
        optimizer.zero_grad()
        loss = (F.binary_cross_entropy_with_logits(x @ w + b, y, weight=weights)
                + weight_decay * w.pow(2).sum())
        loss.backward()
        return loss

    optimizer.step(closure)
    direction = w.detach() / w.detach().norm().clamp_min(1e-12) * 0.05
    return torch.stack([-direction, direction])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0], help="data seeds of zsad synth")
    parser.add_argument("--out", default=str(Path(__file__).parent / "results" / "cross_category.json"))
    args = parser.parse_args()
    torch.manual_seed(0)
    model = backbone()
    rows = []
    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        for seed in args.seeds:
            root = generate(Path(tmp) / f"synth{seed}", seed)
            for pair in itertools.combinations(CATEGORIES, 2):
                rest = tuple(c for c in CATEGORIES if c not in pair)
                row = {"seed": seed, **train_and_compare(model, root, pair, rest, Path(tmp) / f"a{seed}{''.join(pair)}")}
                rows.append(row)
                print(f"seed {seed} train {'+'.join(pair):13s} -> test {'+'.join(rest):13s} "
                      f"loss {row['loss_first_epoch']:.2f}->{row['loss_last_epoch']:.2f}  "
                      f"seen {row['seen_p_auroc_hand']:.3f}->{row['seen_p_auroc_learned']:.3f}  "
                      f"unseen {row['unseen_p_auroc_hand']:.3f}->{row['unseen_p_auroc_learned']:.3f} "
                      f"(probe {row['unseen_p_auroc_probe']:.3f})", flush=True)
    better = sum(r["unseen_p_auroc_learned"] > r["unseen_p_auroc_hand"] for r in rows)
    print(f"learned > hand-written on unseen categories in {better} of {len(rows)} splits; "
          f"{time.perf_counter() - start:.0f} s")
    result = {"settings": {**SETTINGS, "layers": list(SETTINGS["layers"]), "backbone": "tiny-clip (random)",
                           "data": "zsad synth size 64, n_train 1, n_test_good 3, n_test_defect 3"},
              "machine": platform.processor() or platform.machine(), "torch_threads": torch.get_num_threads(),
              "rows": rows}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
