"""One command for the field's protocols over data sets: every run saved (``zsad eval`` format) and reported.

Protocols (``PROTOCOLS``, data): zero-shot text, mutual (MuSc), k-shot few-shot for k = 1, 2, 4 over several seeds
from fixed reference lists written once per data set (``reference_lists.json``), and auto (every evidence the
inputs allow, fused: ``fuse=True``). Each protocol names its backbone and method; ``--backbone-clip`` / ``--backbone-dino`` swap the
defaults (tiny random models, for smoke runs on a CPU) for real ones.

Data sets: any number of ``KIND=ROOT`` (``mvtec=../shared/data/mvtec3d_rgb``, ``visa=/data/VisA`` ...) and, with
``--synth``, a ``zsad synth`` set generated into the output folder.

    python eval/run_protocols.py --out eval-out --synth --data mvtec=../shared/data/mvtec3d_rgb

writes ``eval-out/runs/<data>/<protocol>/`` (run folders), ``eval-out/reports/<data>/<protocol>/report.html``
and ``eval-out/index.md`` / ``index.html`` (mean of every run, linking each report). Nothing is printed into a
report by hand; rerunning with the same arguments reproduces the numbers (seeded reference lists, seeded runs).
"""
from __future__ import annotations

import argparse
import html
import json
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


@dataclass(frozen=True)
class Protocol:
    name: str
    method: str
    family: str  # "clip" or "dino": which --backbone-* it runs on
    shots: int = 0
    seeds: tuple[int, ...] = (0,)
    options: dict = field(default_factory=dict)  # extra Detector keyword arguments


PROTOCOLS = [
    Protocol("zero-shot-text", "text", "clip"),
    Protocol("mutual", "mutual", "dino", options={"layers": (1,)}),
    *[Protocol(f"{k}-shot", "fewshot", "dino", shots=k, seeds=(0, 1, 2), options={"layers": (1,)}) for k in (1, 2, 4)],
    Protocol("auto-fused", "auto", "clip", options={"fuse": True}),
]


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True, type=Path)
    parser.add_argument("--data", nargs="*", default=[], metavar="KIND=ROOT",
                        help="data sets, e.g. mvtec=../shared/data/mvtec3d_rgb visa=/data/VisA")
    parser.add_argument("--synth", action="store_true", help="also generate and evaluate a zsad synth set")
    parser.add_argument("--synth-categories", nargs="+", default=["pill", "weave"])
    parser.add_argument("--protocols", nargs="+", default=[p.name for p in PROTOCOLS],
                        choices=[p.name for p in PROTOCOLS])
    parser.add_argument("--categories", nargs="+", default=None, help="restrict every data set to these")
    parser.add_argument("--backbone-clip", default="tiny-clip")
    parser.add_argument("--backbone-dino", default="tiny-dinov2")
    parser.add_argument("--published", default=None, help="published results CSV (default ../shared/...)")
    parser.add_argument("--device", default="auto")
    return parser.parse_args(argv)


def data_sets(args) -> list[tuple[str, str, Path]]:
    """(label, kind, root) of every data set to run."""
    out = []
    for item in args.data:
        kind, _, root = item.partition("=")
        if not root:
            raise SystemExit(f"--data {item}: write KIND=ROOT, e.g. mvtec=../shared/data/mvtec3d_rgb")
        out.append((f"{kind}-{Path(root).name}", kind, Path(root)))
    if args.synth:
        from zsad.data.synth import generate_dataset

        root = args.out / "synth-data"
        generate_dataset(root, categories=args.synth_categories, n_train=8, n_test_good=10, n_test_defect=3,
                         size=224, seed=0, overwrite=True)
        out.append(("synth", "mvtec", root))
    if not out:
        raise SystemExit("nothing to run: give --data KIND=ROOT and/or --synth")
    return out


def main(argv=None) -> int:
    args = parse_args(argv)
    from zsad.detector import Detector
    from zsad.evaluation import (
        draw_reference_lists,
        evaluate,
        load_reference_lists,
        save_reference_lists,
        save_run,
    )
    from zsad.report.build import write_report
    from zsad.report.cli import default_published

    published = Path(args.published) if args.published else default_published()
    published = published if published.is_file() else None
    protocols = [p for p in PROTOCOLS if p.name in args.protocols]
    summary = []
    started = time.perf_counter()
    for label, kind, root in data_sets(args):
        lists_path = args.out / "runs" / label / "reference_lists.json"
        shots = sorted({p.shots for p in protocols if p.shots})
        seeds = sorted({s for p in protocols if p.shots for s in p.seeds})
        if shots and not lists_path.is_file():
            save_reference_lists(draw_reference_lists(kind, root, args.categories, shots, seeds), lists_path)
        lists = load_reference_lists(lists_path) if shots else None
        detectors = {}
        for protocol in protocols:
            backbone = args.backbone_clip if protocol.family == "clip" else args.backbone_dino
            key = (backbone, protocol.method, tuple(sorted(protocol.options.items())))
            if key not in detectors:
                detectors[key] = Detector(backbone, method=protocol.method, device=args.device, **protocol.options)
            tick = time.perf_counter()
            run = evaluate(detectors[key], kind, root, categories=args.categories, shots=protocol.shots,
                           seeds=protocol.seeds, references=lists if protocol.shots else None)
            run.description["protocol"] = protocol.name
            run_dir = args.out / "runs" / label / protocol.name
            save_run(run, run_dir)
            report_dir = args.out / "reports" / label / protocol.name
            write_report(run, report_dir, published)
            seconds = time.perf_counter() - tick
            summary.append({"data": label, "protocol": protocol.name, "backbone": backbone,
                            "random_weights": run.random_weights, "seconds": round(seconds, 1),
                            "mean": run.table.to_dict().get("mean", {}), "report": str(report_dir.relative_to(args.out) / "report.html")})
            print(f"{label} {protocol.name}: {seconds:.1f} s, mean I-AUROC "
                  f"{100 * run.table.mean().get('i_auroc', float('nan')):.1f}", file=sys.stderr)
    total = time.perf_counter() - started
    write_index(args.out, summary, total)
    print(f"done in {total:.0f} s: {args.out / 'index.html'}")
    return 0


def write_index(out: Path, summary: list[dict], total: float) -> None:
    from zsad.metrics.table import HEADERS

    keys = [k for k in HEADERS if any(k in row["mean"] for row in summary)]
    random_note = " (random weights)" if any(row["random_weights"] for row in summary) else ""
    head = "| data | protocol | backbone |" + "".join(f" {HEADERS[k]} |" for k in keys) + " s | report |"
    lines = [f"# zsad protocols{random_note}\n", f"Total {total:.0f} s.\n", head,
             "|---|---|---|" + "---:|" * (len(keys) + 1) + "---|"]
    for row in summary:
        backbone = row["backbone"] + (" (random weights)" if row["random_weights"] else "")
        values = "".join(" n/a |" if row["mean"].get(k) is None else f" {100 * row['mean'][k]:.1f} |" for k in keys)
        lines.append(f"| {row['data']} | {row['protocol']} | {backbone} |{values} {row['seconds']} | "
                     f"[report]({row['report']}) |")
    (out / "index.md").write_text("\n".join(lines) + "\n")
    (out / "index.json").write_text(json.dumps({"total_s": round(total, 1), "runs": summary}, indent=1) + "\n")
    rows = "".join(
        "<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in line.strip("|").split("|")[:-1])
        + f"<td><a href='{html.escape(row['report'])}'>report</a></td></tr>"
        for line, row in zip(lines[4:], summary))
    header = "".join(f"<th>{html.escape(c.strip())}</th>" for c in head.strip("|").split("|"))
    (out / "index.html").write_text(
        f"<!doctype html><meta charset='utf-8'><title>zsad protocols{random_note}</title>"
        f"<h1>zsad protocols{html.escape(random_note)}</h1><p>Total {total:.0f} s.</p>"
        f"<table border=1 cellpadding=4><tr>{header}</tr>{rows}</table>")


if __name__ == "__main__":
    sys.exit(main())
