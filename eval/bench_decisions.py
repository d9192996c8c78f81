"""Benchmark of decisions: verdicts, false alarms, masks and severity on `zsad synth` batches of known defect rate.

    python eval/bench_decisions.py            # 3 seeds x 5 defect rates x {few-shot, mutual, fused}, + severity
    python eval/bench_decisions.py --quick    # 1 seed, 3 rates, batches of 40: a few minutes on 2 CPU cores

For each seed, a pool of `zsad synth` images (one category, MVTec layout, 8 good references) is scored by the
README's detector (``tiny-dinov2``, layer 1, 336 px; ``make_detector``); each batch takes the first good images and
the first defects of the pool (defect types in turn) so that a fraction ``rate`` of it is defective. Per evidence
and batch it measures, against the labels and planted masks:

- image AUROC and the oracle F1 (best threshold chosen with the labels, ``zsad.metrics.f1_max``);
- verdict F1 of each rule of ``zsad.decisions``: "conformal" (references' leave-one-out scores, ``--alpha``),
  "conformal_mixture" (its flags that the mixture rule confirms), "mixture" and "gamma_gmm" (contamination
  estimates from every evidence's scores), "mad" (today's rule) and "defect_rate" (told the true rate); the
  default verdict is "conformal_mixture" with references and "mixture" without, and the goal is checked on it;
- the conformal false-alarm rate, per batch and, since its guarantee is over draws of the references, averaged
  over ``--far-draws`` sets of k references drawn from ``--spare-references`` good images (the goal's check);
- mask IoU (pooled over the batch's pixels, at the masks' resolution) of the test-time classifier masks, the
  conformal patch masks and today's MAD rule, against the oracle (the best single threshold on the batch's maps);
  masks follow the default verdict: a normal verdict has no mask;
  the default mask is the conformal one with references and the test-time classifier's without (the goal is
  checked on it);
- on a graded set (``severity_levels=3``: size x contrast levels), Spearman's rho of image scores against the
  severity levels and of mask areas against planted areas.

Verdicts come from one of two places (``--verdicts``): ``apply`` applies zsad.decisions to the Detector's scores
and patch-grid maps here (every rule side by side); ``results`` also reads ``AnomalyResult.is_anomalous`` and the
mask the result shows (``shown_mask``) from the Detector's own runs (few-shot, mutual, and a real ``--fuse`` run),
which measures exactly what ``zsad detect`` decides with its defaults (row "detector").

Fused evidence = few-shot + mutual through ``zsad.scoring.fusion.fuse``, the function the Detector's ``--fuse``
calls, applied to the two single-evidence runs (the mutual run is not repeated). Conformal verdicts and masks of a
fused run use its few-shot evidence: the references have no mutual score, so the fused score has no calibration.
Writes JSON (``--json``) and prints a markdown table; see ``eval/results/bench_decisions.json``.
"""
from __future__ import annotations

import argparse
import json
import math
import platform
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from zsad.data.images import load_image, load_mask
from zsad.data.layouts.mvtec import mvtec_samples
from zsad.data.synth import SYNTH_CATEGORIES, generate_dataset
from zsad.decisions import conformal_masks, mad_masks, test_time_masks
from zsad.metrics import f1_max, image_metrics
from zsad.metrics.decisions import iou_max, mask_iou, severity_rho, verdict_metrics
from zsad.scoring.base import AnomalyMaps
from zsad.scoring.fusion import fuse
from zsad.verdict import ThresholdRule, decide_threshold

RULES = ("conformal", "mixture", "gamma_gmm", "gamma_gmm_wide", "mad", "defect_rate")  # + "conformal_mixture"
EVIDENCE = ("fewshot", "mutual", "fused")


def make_detector(method: str, fuse: bool = False):
    """The README's first command, as Python: the one place this benchmark builds a Detector."""
    from zsad.detector import Detector

    return Detector("tiny-dinov2", layers=(1,), input_size=336, method=method, fuse=fuse)


def reference_calibration(detector, references: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """Leave-one-out image scores [k] and patch maps [k, h, w] of the references, as ``build_memory`` keeps them
    (``ReferenceMemory.normal_scores`` / ``normal_maps``)."""
    memory = detector.build_memory(references)
    return memory.normal_scores.numpy(), memory.normal_maps.numpy()


def patch_features(detector, paths: list[str]) -> np.ndarray:
    """[N, h, w, C] tokens of the layer the few-shot and mutual maps are computed on (layer 1)."""
    features = detector.extract([load_image(p) for p in paths])
    return features.patch_tokens[:, -1].numpy()


def pool(root: Path, category: str, seed: int, batch: int, rates: list[float], references: int, size: int,
         spare: int) -> dict:
    """Generate the seed's images once: the test pool (good images, defects with types in turn), the k references
    the runs use (the first k good training images) and all ``max(k, spare)`` good training images."""
    counts = [_counts(batch, rate) for rate in rates]
    types = SYNTH_CATEGORIES[category].defects
    generate_dataset(root, categories=[category], n_train=max(references, spare),
                     n_test_good=max(g for g, _ in counts),
                     n_test_defect=math.ceil(max(d for _, d in counts) / len(types)), size=size, seed=seed)
    samples = mvtec_samples(root, [category], "test")[category]
    good = [s for s in samples if s.label == 0]
    by_type = {t: sorted((s for s in samples if s.label == 1 and s.path.parent.name == t), key=lambda s: s.path.name)
               for t in types}
    defects = [by_type[t][i] for i in range(len(next(iter(by_type.values())))) for t in types]  # types in turn
    train = sorted(str(p) for p in (root / category / "train" / "good").glob("*.png"))
    return {"good": good, "defects": defects, "references": train[:references], "spare": train}


def _counts(batch: int, rate: float) -> tuple[int, int]:
    defective = min(batch, max(1, round(rate * batch)))
    return batch - defective, defective


def run_evidence(paths: list[str], references: list[str], detectors: dict, cache: dict) -> dict[str, dict]:
    """Scores, grid maps and Detector results of each evidence for one batch. Few-shot scores and maps do not
    depend on the batch and are cached; its verdicts do, so with a "fused" detector (``--verdicts results``) nothing
    is cached and the fused run is the Detector's own."""
    if "fused" in detectors:
        cache = {}
    missing = [p for p in paths if p not in cache]
    if missing:
        for path, result in zip(missing, detectors["fewshot"].detect(missing, references=references)):
            cache[path] = result
    runs = {"fewshot": {"results": [cache[p] for p in paths]}, "mutual": {"results": detectors["mutual"].detect(paths)}}
    for run in runs.values():
        run["scores"] = np.array([r.score for r in run["results"]], dtype=np.float64)
        run["grid"] = np.stack([r.grid_map for r in run["results"]])
    if "fused" in detectors:
        results = detectors["fused"].detect(paths, references=references)
        runs["fused"] = {"results": results, "scores": np.array([r.score for r in results], dtype=np.float64),
                         "grid": np.stack([r.grid_map for r in results])}
    else:
        fused = fuse([AnomalyMaps(torch.from_numpy(runs[n]["grid"]).float(),
                                  torch.from_numpy(runs[n]["scores"]).float(), n) for n in ("fewshot", "mutual")])
        runs["fused"] = {"results": None, "scores": fused.scores.numpy().astype(np.float64),
                         "grid": fused.maps.numpy()}
    for name, run in runs.items():
        run["columns"] = (np.stack([runs["fewshot"]["scores"], runs["mutual"]["scores"]], axis=1)
                          if name == "fused" else run["scores"][:, None])
    return runs


def false_alarm_check(detector, spare: list[str], normals: list[str], k: int, alpha: float, draws: int,
                      seed: int) -> dict:
    """The conformal guarantee is marginal (over draws of the references), so one run says little: draw ``draws``
    sets of k references from the spare good images, calibrate on each set's leave-one-out scores and measure the
    false-alarm rate on the pool's normal test images; the mean estimates the rate the guarantee bounds."""
    from zsad.decisions import conformal_threshold
    from zsad.scoring.fewshot import reference_tokens
    from zsad.scoring.reference import ReferenceMemory

    fewshot = detector.config.scorer("fewshot")

    def tokens(paths: list[str]) -> torch.Tensor:
        features = detector.extract([load_image(p) for p in paths])
        return reference_tokens(fewshot, detector.context, detector.context.transform(features))

    config = replace(fewshot.memory_config(), coreset_ratio=None)
    spare_tokens, normal_tokens = tokens(spare), tokens(normals)
    rng, rates = np.random.default_rng(seed), []
    for _ in range(draws):
        chosen = spare_tokens[rng.choice(len(spare), k, replace=False)]
        loo = [ReferenceMemory.build(chosen[np.arange(k) != i], config).score(chosen[i:i + 1]).scores.numpy()
               for i in range(k)]
        scores = ReferenceMemory.build(chosen, config).score(normal_tokens).scores.numpy()
        rates.append(float(np.mean(scores >= conformal_threshold(np.concatenate(loo), alpha).value)))
    return {"draws": draws, "references": k, "spare_references": len(spare), "normal_images": len(normals),
            "false_alarm_rate": float(np.mean(rates)), "standard_error": float(np.std(rates) / np.sqrt(draws)),
            "guarantee": conformal_threshold(np.zeros(k), alpha).rate, "rates": rates}


def upsampled(grid: np.ndarray, size: int) -> np.ndarray:
    return F.interpolate(torch.from_numpy(np.ascontiguousarray(grid, dtype=np.float32))[:, None], size=(size, size),
                         mode="bilinear", align_corners=False)[:, 0].numpy()


def decide(name: str, run: dict, few: dict, labels: np.ndarray, calibration, features: np.ndarray,
           alpha: float, mode: str, rules_wanted=RULES) -> tuple[dict, dict]:
    """Verdict rules -> (verdicts per rule, rule descriptions) and the masks of the default rule."""
    verdicts, rules = {}, {}
    for rule in rules_wanted:
        if rule == "conformal" and (calibration is None or name == "mutual"):
            continue
        kind = ThresholdRule(rule, {"defect_rate": float(labels.mean())}.get(rule, 3.0), false_alarm_rate=alpha)
        scores = few["scores"] if rule == "conformal" else run["scores"]
        threshold = decide_threshold(scores, kind, calibration=calibration[0] if calibration else None,
                                     evidence_scores=run["columns"])
        verdicts[rule] = np.zeros(len(scores), bool) if threshold.value is None else scores >= threshold.value
        rules[rule] = {"name": threshold.name, "rule": threshold.rule, "certainty": threshold.certainty}
    if "conformal" in verdicts and "mixture" in verdicts:  # = the library rule for one evidence
        verdicts["conformal_mixture"] = verdicts["conformal"] & verdicts["mixture"]
    default = next(r for r in ("conformal_mixture", "conformal", "mixture", *RULES) if r in verdicts)
    if mode == "results" and run["results"] is not None:
        verdicts["detector"] = np.array([bool(r.is_anomalous) for r in run["results"]])
        default = "detector"
    gate = verdicts[default]
    masks = {"mad": mad_masks(run["grid"])}
    if calibration is not None and name != "mutual":
        masks["conformal"] = conformal_masks(few["grid"], calibration[1], verdicts=gate)
    masks["test_time"] = test_time_masks(run["grid"], features, verdicts=gate, fallback=masks.get("conformal"))
    return {"verdicts": verdicts, "rules": rules, "default": default}, masks


def evaluate(name, run, few, labels, truth, calibration, features, alpha, mode, rules_wanted=RULES) -> dict:
    decided, masks = decide(name, run, few, labels, calibration, features, alpha, mode, rules_wanted)
    row = {"evidence": name, **{k: v for k, v in image_metrics(run["scores"], labels).items() if k == "i_auroc"},
           "oracle_f1": f1_max(run["scores"], labels)[0], "default_rule": decided["default"], "rules": {}}
    for rule, flags in decided["verdicts"].items():
        row["rules"][rule] = {**verdict_metrics(flags, labels), **decided["rules"].get(rule, {})}
    if "conformal" in decided["rules"]:
        row["guaranteed_false_alarm_rate"] = decided["rules"]["conformal"]["certainty"]["false_alarm_rate"]
    size = truth.shape[-1]
    row["oracle_iou"] = iou_max(upsampled(run["grid"], size), truth)[0]
    if mode == "results" and run["results"] is not None:
        grid = np.stack([r.shown_mask() for r in run["results"]]).astype(np.float32)
        masks = {"detector": replace(masks["mad"], values=grid, cut=0.5)}
    row["masks"] = {k: {"iou": mask_iou(m.at((size, size)), truth), "name": m.name, "rule": m.rule}
                    for k, m in masks.items()}
    row["default_mask"] = next(k for k in ("detector", "conformal", "test_time") if k in masks)
    return row


def severity(root: Path, category: str, seed: int, references: int, size: int, detectors: dict, alpha: float,
             n_good: int) -> list[dict]:
    """Spearman's rho on a graded set: scores vs size / contrast / combined level, mask areas vs planted areas."""
    generate_dataset(root, categories=[category], n_train=references, n_test_good=n_good, n_test_defect=9,
                     size=size, seed=seed + 1000, severity_levels=3)
    manifest = json.loads((root / category / "manifest.json").read_text())["images"]
    paths = [str(root / category / r["image"]) for r in manifest]
    labels = np.array([r["defect"] is not None for r in manifest])
    truth = np.stack([load_mask(root / category / r["mask"] if r["mask"] else None, (size, size)) for r in manifest])
    refs = sorted(str(p) for p in (root / category / "train" / "good").glob("*.png"))
    calibration = reference_calibration(detectors["fewshot"], refs)
    runs = run_evidence(paths, refs, detectors, {})
    features = patch_features(detectors["fewshot"], paths)
    sizes = np.array([r["size_level"] or 0 for r in manifest])
    contrasts = np.array([r["contrast_level"] or 0 for r in manifest])
    planted = np.array([r["area_fraction"] for r in manifest])
    rows = []
    for name, run in runs.items():
        decided, masks = decide(name, run, runs["fewshot"], labels, calibration, features, alpha, "apply")
        chosen = masks["conformal" if "conformal" in masks else "test_time"]
        area = chosen.at((size, size)).reshape(len(paths), -1).mean(axis=1)
        s, d = run["scores"], labels
        rows.append({
            "evidence": name, "seed": seed, "mask_rule": chosen.name,
            "rho_score_size": severity_rho(s[d & (contrasts == 3)], sizes[d & (contrasts == 3)]),
            "rho_score_contrast": severity_rho(s[d & (sizes == 3)], contrasts[d & (sizes == 3)]),
            "rho_score_severity": severity_rho(s[d], (sizes + contrasts)[d]),
            "rho_area_planted": severity_rho(area[d], planted[d]),
            "rho_area_planted_found": severity_rho(area[d & (area > 0)], planted[d & (area > 0)]),
            "mask_iou": mask_iou(chosen.at((size, size)), truth),
            "verdict_recall": float(decided["verdicts"][decided["default"]][d].mean()),
        })
    return rows


def run_seed(args, seed: int, work: Path) -> tuple[list[dict], list[dict]]:
    detectors = {"fewshot": make_detector("fewshot"), "mutual": make_detector("mutual")}
    if args.verdicts == "results":
        detectors["fused"] = make_detector("auto", fuse=True)
    data = pool(work / f"pool{seed}", args.category, seed, args.batch, args.rates, args.references, args.size,
                args.spare_references)
    calibration = reference_calibration(detectors["fewshot"], data["references"])
    far = (false_alarm_check(detectors["fewshot"], data["spare"], [str(s.path) for s in data["good"]],
                             args.references, args.alpha, args.far_draws, seed)
           if args.far_draws and len(data["spare"]) > args.references else None)
    if far:
        print(f"seed {seed}: conformal false-alarm rate over {far['draws']} reference draws "
              f"{far['false_alarm_rate']:.3f} +- {far['standard_error']:.3f} (guarantee {far['guarantee']:.3f})")
    cache, rows = {}, []
    for rate in args.rates:
        n_good, n_defect = _counts(args.batch, rate)
        samples = data["good"][:n_good] + data["defects"][:n_defect]
        labels = np.array([s.label for s in samples], dtype=bool)
        truth = np.stack([load_mask(s.mask_path, (args.size, args.size)) for s in samples])
        runs = run_evidence([str(s.path) for s in samples], data["references"], detectors, cache)
        features = patch_features(detectors["fewshot"], [str(s.path) for s in samples])
        for name in args.evidence:
            row = evaluate(name, runs[name], runs["fewshot"], labels, truth, calibration, features, args.alpha,
                           args.verdicts, args.rules)
            rows.append({"seed": seed, "rate": rate, "batch": len(samples), "defective": int(labels.sum()), **row})
            print(_line(rows[-1]), flush=True)
    sev = severity(work / f"graded{seed}", args.category, seed, args.references, args.size, detectors, args.alpha,
                   args.severity_good) if args.severity_good else []
    return rows, sev, ([{"seed": seed, **far}] if far else [])


def _line(row: dict) -> str:
    rules = " ".join(f"{k}={v['f1']:.2f}" for k, v in row["rules"].items())
    masks = " ".join(f"{k}={v['iou']:.2f}" for k, v in row["masks"].items())
    return (f"seed {row['seed']} rate {row['rate']:.2f} {row['evidence']:7s} auroc={row['i_auroc']:.3f} "
            f"oracle_f1={row['oracle_f1']:.2f} | {rules} | oracle_iou={row['oracle_iou']:.2f} {masks}")


def summarise(rows: list[dict], sev: list[dict], far: list[dict]) -> dict:
    """Means over seeds per (evidence, rate), and the issue's goals checked on them."""
    table = []
    for name in dict.fromkeys(r["evidence"] for r in rows):
        for rate in dict.fromkeys(r["rate"] for r in rows):
            group = [r for r in rows if r["evidence"] == name and r["rate"] == rate]
            if not group:
                continue
            mean = lambda values: float(np.nanmean(values)) if len(values) else float("nan")
            entry = {"evidence": name, "rate": rate, "seeds": len(group),
                     "i_auroc": mean([g["i_auroc"] for g in group]),
                     "oracle_f1": mean([g["oracle_f1"] for g in group]), "default_rule": group[0]["default_rule"],
                     "f1": {rule: mean([g["rules"][rule]["f1"] for g in group if rule in g["rules"]])
                            for rule in group[0]["rules"]},
                     "oracle_iou": mean([g["oracle_iou"] for g in group]),
                     "iou": {k: mean([g["masks"][k]["iou"] for g in group]) for k in group[0]["masks"]}}
            if "guaranteed_false_alarm_rate" in group[0]:
                entry["false_alarm_rate"] = mean([g["rules"]["conformal"]["false_alarm_rate"] for g in group])
                entry["guaranteed_false_alarm_rate"] = group[0]["guaranteed_false_alarm_rate"]
            default_f1 = entry["f1"][entry["default_rule"]]
            entry["goal_verdict"] = (bool(default_f1 >= 0.9 * entry["oracle_f1"])
                                     if entry["i_auroc"] >= 0.95 else None)
            entry["default_mask"] = group[0]["default_mask"]
            entry["goal_mask"] = bool(entry["iou"][entry["default_mask"]] >= 0.8 * entry["oracle_iou"])
            table.append(entry)
    severity_summary = {}
    for name in dict.fromkeys(s["evidence"] for s in sev):
        group = [s for s in sev if s["evidence"] == name]
        severity_summary[name] = {k: float(np.nanmean([g[k] for g in group])) for k in group[0]
                                  if k.startswith(("rho", "mask_iou", "verdict"))}
    false_alarms = {}
    if far:
        rates = np.concatenate([f["rates"] for f in far])
        false_alarms = {"draws": int(rates.size), "false_alarm_rate": float(rates.mean()),
                        "standard_error": float(rates.std() / np.sqrt(rates.size)),
                        "guarantee": far[0]["guarantee"], "references": far[0]["references"]}
        false_alarms["goal_within_guarantee"] = bool(
            false_alarms["false_alarm_rate"] <= false_alarms["guarantee"] + 2 * false_alarms["standard_error"])
    return {"table": table, "severity": severity_summary, "false_alarms": false_alarms}


def markdown(summary: dict) -> str:
    rules = list(dict.fromkeys(rule for e in summary["table"] for rule in e["f1"]))
    masks = list(dict.fromkeys(mask for e in summary["table"] for mask in e["iou"]))
    number = lambda value: "-" if value is None or np.isnan(value) else f"{value:.2f}"
    lines = ["| evidence | rate | AUROC | oracle F1 | " + " | ".join(f"F1 {r}" for r in rules)
             + " | FAR (guarantee) | oracle IoU | " + " | ".join(f"IoU {m}" for m in masks) + " | goals V/M |",
             "|" + "---|" * (7 + len(rules) + len(masks))]
    for e in summary["table"]:
        far = (f"{e['false_alarm_rate']:.3f} ({e['guaranteed_false_alarm_rate']:.3f})"
               if "false_alarm_rate" in e else "-")
        goals = {True: "yes", False: "NO", None: "n/a"}
        lines.append(" | ".join([
            f"| {e['evidence']}", f"{e['rate']:.0%}", f"{e['i_auroc']:.3f}", number(e["oracle_f1"]),
            *(number(e["f1"].get(r)) for r in rules), far, number(e["oracle_iou"]),
            *(number(e["iou"].get(m)) for m in masks), f"{goals[e['goal_verdict']]}/{goals[e['goal_mask']]} |"]))
    if summary.get("false_alarms"):
        f = summary["false_alarms"]
        lines += ["", (f"Conformal false-alarm rate with {f['references']} references, over {f['draws']} reference "
                       f"draws: {f['false_alarm_rate']:.3f} +- {f['standard_error']:.3f} (guarantee "
                       f"{f['guarantee']:.3f}; within: {'yes' if f['goal_within_guarantee'] else 'NO'})")]
    if summary["severity"]:
        lines += ["", ("| evidence | rho score~size | rho score~contrast | rho score~size+contrast | rho area~planted "
                       "| (flagged only) | mask IoU | recall |"), "|---|---|---|---|---|---|---|---|"]
        for name, s in summary["severity"].items():
            lines.append(f"| {name} | {number(s['rho_score_size'])} | {number(s['rho_score_contrast'])} | "
                         f"{number(s['rho_score_severity'])} | {number(s['rho_area_planted'])} | "
                         f"{number(s['rho_area_planted_found'])} | {number(s['mask_iou'])} | "
                         f"{number(s['verdict_recall'])} |")
    return "\n".join(lines)


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="1 seed, rates 5/30/80 %%, batches of 40")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--rates", type=float, nargs="+", default=[0.01, 0.05, 0.3, 0.6, 0.8])
    parser.add_argument("--batch", type=int, default=100, help="images per test batch")
    parser.add_argument("--references", type=int, default=8, help="good reference images (README: 8)")
    parser.add_argument("--alpha", type=float, default=0.01, help="requested false-alarm rate")
    parser.add_argument("--category", default="pill", choices=sorted(SYNTH_CATEGORIES))
    parser.add_argument("--size", type=int, default=256, help="generated image size")
    parser.add_argument("--evidence", nargs="+", default=list(EVIDENCE), choices=EVIDENCE)
    parser.add_argument("--rules", nargs="+", default=list(RULES), choices=RULES,
                        help="verdict rules to measure (gamma_gmm is the slowest: about a quarter of the time)")
    parser.add_argument("--severity-good", type=int, default=45, help="good images of the graded set (0: skip)")
    parser.add_argument("--spare-references", type=int, default=40,
                        help="good training images to draw reference sets from for the false-alarm check")
    parser.add_argument("--far-draws", type=int, default=50, help="reference draws of the false-alarm check (0: skip)")
    parser.add_argument("--verdicts", choices=("apply", "results"), default="apply",
                        help="apply zsad.decisions here, or read the Detector's own verdicts and masks")
    parser.add_argument("--json", type=Path, default=Path(__file__).parent / "results" / "bench_decisions.json")
    args = parser.parse_args(argv)
    if args.quick:
        args.seeds, args.rates, args.batch = args.seeds[:1], [0.05, 0.3, 0.8], 40
        args.severity_good = min(args.severity_good, 20)
        args.far_draws = min(args.far_draws, 20)
    return args


def main(argv=None) -> None:
    args = parse_args(argv)
    start, rows, sev, far = time.time(), [], [], []
    with tempfile.TemporaryDirectory(prefix="bench_decisions_") as work:
        for seed in args.seeds:
            seed_rows, seed_sev, seed_far = run_seed(args, seed, Path(work))
            rows += seed_rows
            sev += seed_sev
            far += seed_far
    summary = summarise(rows, sev, far)
    report = {"settings": {k: (v.name if isinstance(v, Path) else v) for k, v in vars(args).items()},
              "machine": {"platform": platform.platform(), "cpus": torch.get_num_threads(),
                          "torch": torch.__version__},
              "seconds": time.time() - start, "summary": summary, "runs": rows, "severity_runs": sev,
              "false_alarm_runs": far}
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(report, indent=1, default=float) + "\n")
    print(markdown(summary))
    print(f"\n{time.time() - start:.0f} s; JSON: {args.json}")


if __name__ == "__main__":
    main()
