"""``zsad`` command line: detect, eval, synth.

Expected problems (bad paths, missing weights, bad options) print one line ``zsad: error: ...`` and exit 2; a run
where every image failed exits 1; anything else is a bug and keeps its traceback.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from zsad.errors import ZsadError


def _add_model_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("model")
    group.add_argument("--backbone", default="ViT-L-14-336",
                       help="open_clip name, dinov2-{small,base,large}[-reg], HF id, local folder, or tiny-clip")
    group.add_argument("--pretrained", default=None,
                       help="open_clip pretrained tag, checkpoint file, or 'random' (default: the model's usual tag)")
    group.add_argument("--input-size", type=int, default=None, help="backbone input side in px (default per model)")
    group.add_argument("--layers", type=int, nargs="+", default=None, help="backbone layers to use (1-based)")
    group.add_argument("--vv-layers", type=int, default=0, help="V-V attention in the last K CLIP blocks")
    group.add_argument("--object", dest="object_name", default=None, help="object name for text prompts")
    group.add_argument("--batch-size", type=int, default=8)
    group.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N")
    group.add_argument("--precision", default="auto", choices=["auto", "fp32", "bf16", "fp16"])
    group.add_argument("--threshold", type=float, default=None, help="fixed verdict threshold on the image score")
    evidence = parser.add_argument_group("evidence")
    evidence.add_argument("--method", default="auto", choices=["auto", "text", "fewshot", "mutual"],
                          help="auto: every evidence the inputs allow (references -> fewshot, a batch -> mutual, "
                               "CLIP -> text), fused")
    evidence.add_argument("--references", nargs="+", default=None,
                          help="good reference images/folders for few-shot scoring, or a saved memory .safetensors")
    evidence.add_argument("--rotations", action="store_true", help="add 90/180/270-degree copies of the references")
    evidence.add_argument("--coreset", type=float, default=None, help="keep this fraction of reference patches")
    evidence.add_argument("--mutual-max-refs", type=int, default=None,
                          help="compare each image with at most this many others (bounds mutual scoring's O(N^2))")
    evidence.add_argument("--mutual-groups", type=int, default=1, help="score the batch in this many random groups")
    evidence.add_argument("--no-rscin", action="store_true", help="disable RsCIN re-scoring of mutual image scores")


def _detector(args):
    from zsad.backbones import BackboneSpec
    from zsad.detector import Detector, DetectorConfig
    from zsad.scoring.mutual import MutualConfig
    from zsad.scoring.reference import ReferenceConfig
    from zsad.scoring.text import TextConfig
    from zsad.verdict import ThresholdRule

    layers = tuple(args.layers) if args.layers else None
    config = DetectorConfig(
        backbone=BackboneSpec(args.backbone, args.pretrained, args.input_size, layers, args.vv_layers),
        method=args.method,
        text=TextConfig(object_name=args.object_name or "object"),
        reference=ReferenceConfig(coreset_ratio=args.coreset),
        reference_rotations=args.rotations,
        mutual=MutualConfig(max_refs=args.mutual_max_refs, groups=args.mutual_groups,
                            rscin_k=None if args.no_rscin else MutualConfig.rscin_k),
        batch_size=args.batch_size,
        device=args.device,
        precision=args.precision,
        threshold=ThresholdRule("fixed", args.threshold) if args.threshold is not None else ThresholdRule(),
    )
    return Detector(config=config)


def _references(args):
    if not args.references:
        return None
    if len(args.references) == 1 and args.references[0].endswith(".safetensors"):
        return args.references[0]
    return args.references


def cmd_detect(args) -> int:
    from zsad.data.images import load_image
    from zsad.outputs import write_results

    for path in args.paths:
        if not Path(path).exists():
            raise ZsadError(f"{path}: no such file or folder; check the path")
    detector = _detector(args)
    references = _references(args)
    if references is not None and not isinstance(references, str):
        references = detector.build_memory(references, progress=True)
        if args.save_memory:
            references.save(args.save_memory)
            print(f"saved reference memory to {args.save_memory}", file=sys.stderr)
    if args.calibrate:
        from zsad.data.datasets import manifest_samples

        samples = [s for group in manifest_samples(args.calibrate).values() for s in group]
        value = detector.calibrate([s.path for s in samples], [s.label for s in samples], references=references,
                                   progress=True)
        print(f"calibrated threshold {value:.6g} (F1-max on {args.calibrate})", file=sys.stderr)
    results = detector.detect(args.paths, references=references, object_name=args.object_name, progress=True)
    run_info = {
        "backbone": args.backbone, "pretrained": args.pretrained, "object": args.object_name or "object",
        "input_size": detector.backbone.input_size, "layers": list(detector.backbone.layers),
        "method": args.method, "references": args.references,
    }
    report = write_results(results, Path(args.out), run_info, load_image=lambda r: load_image(r.path).image)
    failed = [r for r in results if r.error]
    anomalous = sum(r.is_anomalous is True for r in results)
    print(f"{len(results) - len(failed)} images scored, {anomalous} anomalous, {len(failed)} skipped -> {report}")
    for result in failed:
        print(f"skipped {result.path}: {result.error}", file=sys.stderr)
    return 1 if len(failed) == len(results) else 0


def cmd_eval(args) -> int:
    from zsad.evaluation import evaluate

    table = evaluate(
        _detector(args), args.dataset, Path(args.root), categories=args.categories, out_dir=Path(args.out),
        object_name=args.object_name, shots=args.shots, seed=args.seed,
    )
    print(table.to_markdown())
    return 0


def cmd_synth(args) -> int:
    from zsad.data.synth import generate_dataset

    out = generate_dataset(
        Path(args.out), categories=args.category, n_train=args.n_train, n_test_good=args.n_test_good,
        n_test_defect=args.n_test_defect, size=args.size, seed=args.seed,
    )
    print(f"wrote {out}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    from zsad import __version__

    parser = argparse.ArgumentParser(prog="zsad", description="Zero-shot visual anomaly detection")
    parser.add_argument("--version", action="version", version=f"zsad {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)

    detect = commands.add_parser("detect", help="score images: heat-map overlays + results.json/csv")
    detect.add_argument("paths", nargs="+", help="image files and/or folders")
    detect.add_argument("--out", default="zsad-out", help="output folder (default: zsad-out)")
    detect.add_argument("--calibrate", default=None,
                        help="labelled manifest (CSV/JSON with path,label) to set the threshold by F1-max")
    detect.add_argument("--save-memory", default=None, help="save the reference memory to this .safetensors file")
    _add_model_options(detect)
    detect.set_defaults(run=cmd_detect)

    evaluate = commands.add_parser("eval", help="metrics on a labelled dataset (MVTec AD, VisA, manifest)")
    evaluate.add_argument("--dataset", required=True, choices=["mvtec", "visa", "folder", "manifest"])
    evaluate.add_argument("--root", required=True, help="dataset root (or manifest file)")
    evaluate.add_argument("--categories", nargs="+", default=None)
    evaluate.add_argument("--out", default="zsad-eval", help="folder for metrics.json and metrics.md")
    evaluate.add_argument("--shots", type=int, default=0,
                          help="k-shot: k good training images per category as references (seeded draw)")
    evaluate.add_argument("--seed", type=int, default=0, help="seed of the k-shot reference draw")
    _add_model_options(evaluate)
    evaluate.set_defaults(run=cmd_eval)

    synth = commands.add_parser("synth", help="generate an MVTec-layout dataset with planted defects")
    synth.add_argument("out")
    synth.add_argument("--category", nargs="+", default=None, help="categories (default: all)")
    synth.add_argument("--n-train", type=int, default=10)
    synth.add_argument("--n-test-good", type=int, default=10)
    synth.add_argument("--n-test-defect", type=int, default=4, help="per defect type")
    synth.add_argument("--size", type=int, default=256)
    synth.add_argument("--seed", type=int, default=0)
    synth.set_defaults(run=cmd_synth)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.run(args)
    except ZsadError as error:
        print(f"zsad: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("zsad: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
