"""One command for the field's protocols over data sets: every run saved (``zsad eval`` format) and reported.

Protocols (``PROTOCOLS``, data): zero-shot text, mutual (MuSc), k-shot few-shot for k = 1, 2, 4 over several seeds
from fixed reference lists written once per data set (``reference_lists.json``), and auto (every evidence the
inputs allow, fused: ``fuse=True``). Each protocol names its backbone and method; ``--backbone-clip`` / ``--backbone-dino`` swap the
defaults (tiny random models, for smoke runs on a CPU) for real ones.

Data sets: any number of ``KIND=ROOT[,OPTION=VALUE...]`` (``mvtec=../shared/data/mvtec3d_rgb``,
``visa=/data/VisA,split_csv=/data/VisA/split_csv/1cls.csv``, ``realiad=/data/Real-IAD,json_dir=...,image_root=...``,
``hf=NAME,cache_dir=...``, ``folder=/data/parts/test,normal_dirs=no,healthy``: a part without ``=`` continues the
value before it; ``DATA_OPTIONS`` lists each layout's options, read from the layout declarations that ``zsad eval``
takes its flags from) and, with ``--synth``, a ``zsad synth`` set generated into the output folder.

k-shot protocols draw their references from the train split; a data set without one (a folder, a manifest without
a ``split`` column) runs the other protocols, and the index says why its k-shot runs are missing.

    python eval/run_protocols.py --out eval-out --synth --data mvtec=../shared/data/mvtec3d_rgb

writes ``eval-out/runs/<data>/<protocol>/`` (run folders), ``eval-out/reports/<data>/<protocol>/report.html``
and ``eval-out/index.md`` / ``index.html`` (mean of every run, linking each report). Nothing is printed into a
report by hand; rerunning with the same arguments reproduces the numbers (seeded reference lists, seeded runs).

``<data>`` is ``KIND-BASENAME-HASH``, the hash over the kind, the resolved root and the options: two roots with the
same base name (``/a/data``, ``/b/data``), or one root read with two split files, never share a folder, and a
rerun with the same arguments finds its own. Each data set's ``reference_lists.json`` records the data set and root
it was drawn for; a file made for another one is refused rather than silently giving another data set's images.
"""
from __future__ import annotations

import argparse
import hashlib
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
    parser.add_argument("--data", nargs="*", default=[], metavar="KIND=ROOT[,OPTION=VALUE...]",
                        help="data sets, e.g. mvtec=../shared/data/mvtec3d_rgb "
                             "visa=/data/VisA,split_csv=/data/VisA/split_csv/1cls.csv; options: "
                             + "; ".join(f"{k}: {', '.join(v)}" for k, v in DATA_OPTIONS.items()))
    parser.add_argument("--synth", action="store_true", help="also generate and evaluate a zsad synth set")
    parser.add_argument("--synth-categories", nargs="+", default=["pill", "weave"])
    parser.add_argument("--protocols", nargs="+", default=[p.name for p in PROTOCOLS],
                        choices=[p.name for p in PROTOCOLS])
    parser.add_argument("--categories", nargs="+", default=None, help="restrict every data set to these")
    parser.add_argument("--backbone-clip", default="tiny-clip")
    parser.add_argument("--backbone-dino", default="tiny-dinov2")
    parser.add_argument("--published", default=None, help="published results CSV (default ../shared/...)")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--no-plots", action="store_true", help="reports with tables only (faster; no matplotlib)")
    return parser.parse_args(argv)


def _data_options() -> dict[str, tuple[str, ...]]:
    """The data-set options of each layout (``zsad eval``'s data set option group), from the layout declarations."""
    from zsad.data.layouts import layout_names, layout_options

    return {kind: tuple(o.name for o in layout_options(kind)) for kind in layout_names(with_aliases=True)
            if layout_options(kind)}


DATA_OPTIONS = _data_options()


@dataclass(frozen=True)
class DataSet:
    label: str
    kind: str
    root: Path
    options: dict = field(default_factory=dict)


def parse_data(item: str) -> DataSet:
    """``KIND=ROOT[,OPTION=VALUE...]`` -> a ``DataSet`` with its unique label."""
    head, *rest = item.split(",")
    kind, _, root = head.partition("=")
    if not kind or not root:
        raise SystemExit(f"--data {item}: write KIND=ROOT[,OPTION=VALUE...], e.g. mvtec=../shared/data/mvtec3d_rgb")
    options: dict[str, str] = {}
    for part in rest:
        if "=" not in part and options:  # normal_dirs=no,healthy: the value goes on
            last = list(options)[-1]
            options[last] += f",{part}"
            continue
        key, _, value = part.partition("=")
        key = key.strip().replace("-", "_")
        allowed = DATA_OPTIONS.get(kind, ())
        if key not in allowed or not value:
            listed = ", ".join(f"{k}=..." for k in allowed) or "none"
            raise SystemExit(f"--data {item}: {part!r} is not an option of {kind} (its options: {listed})")
        options[key] = value
    return DataSet(label_of(kind, Path(root), options), kind, Path(root), options)


def label_of(kind: str, root: Path, options: dict) -> str:
    """``KIND-BASENAME-HASH``: readable, and distinct for distinct (kind, resolved root, options)."""
    key = json.dumps([kind, str(root.expanduser().resolve()), sorted(options.items())])
    return f"{kind}-{root.name or 'root'}-{hashlib.sha256(key.encode()).hexdigest()[:8]}"


def data_sets(args) -> list[DataSet]:
    """Every data set to run, in order; the same data set given twice is an error."""
    out = [parse_data(item) for item in args.data]
    if args.synth:
        from zsad.data.synth import generate_dataset

        root = args.out / "synth-data"
        generate_dataset(root, categories=args.synth_categories, n_train=8, n_test_good=10, n_test_defect=3,
                         size=224, seed=0, overwrite=True)
        out.append(DataSet("synth", "mvtec", root))
    if not out:
        raise SystemExit("nothing to run: give --data KIND=ROOT and/or --synth")
    labels = [d.label for d in out]
    twice = sorted({label for label in labels if labels.count(label) > 1})
    if twice:
        raise SystemExit(f"--data: {', '.join(twice)} given twice; give each data set once")
    return out


def reference_lists_for(data: DataSet, path: Path, categories, shots: list[int], seeds: list[int]):
    """The data set's reference lists: read from ``path`` when it exists (refused if drawn for another data set
    or root, or lacking a needed list), else drawn with the seeds and written there."""
    from zsad.errors import ZsadError
    from zsad.evaluation import draw_reference_lists, load_reference_lists, save_reference_lists

    if not path.is_file():
        save_reference_lists(draw_reference_lists(data.kind, data.root, categories, shots, seeds, **data.options), path)
    lists = load_reference_lists(path)
    same_root = Path(lists.root).expanduser().resolve() == data.root.expanduser().resolve()
    if lists.dataset != data.kind or not same_root:
        raise SystemExit(f"{path}: drawn for {lists.dataset} at {lists.root}, not {data.kind} at {data.root}; delete "
                         "it (new lists are drawn) or pass another --out")
    for category in categories or lists.lists:
        for k in shots:
            for seed in seeds:
                try:
                    lists.get(category, k, seed)
                except ZsadError:
                    raise SystemExit(f"{path}: has no {k}-shot list for {category!r}, seed {seed}; delete it (new "
                                     "lists are drawn) or pass another --out") from None
    return lists


def main(argv=None, make_detector=None) -> int:
    """``make_detector(backbone, method, device, **options)`` builds each protocol's detector (default:
    ``zsad.Detector``; tests pass a stand-in)."""
    args = parse_args(argv)
    from zsad.errors import DatasetError
    from zsad.evaluation import evaluate, save_run
    from zsad.report.build import write_report
    from zsad.report.cli import default_published

    if make_detector is None:
        from zsad.detector import Detector

        def make_detector(backbone, method, device, **options):
            return Detector(backbone, method=method, device=device, **options)

    published = Path(args.published) if args.published else default_published()
    published = published if published.is_file() else None
    protocols = [p for p in PROTOCOLS if p.name in args.protocols]
    summary = []
    started = time.perf_counter()
    skipped = []
    for data in data_sets(args):
        shots = sorted({p.shots for p in protocols if p.shots})
        seeds = sorted({s for p in protocols if p.shots for s in p.seeds})
        lists_path = args.out / "runs" / data.label / "reference_lists.json"
        lists, why = None, None
        if shots:
            try:
                lists = reference_lists_for(data, lists_path, args.categories, shots, seeds)
            except DatasetError as error:  # no train split: the k-shot protocols cannot run on this data set
                why = str(error)
                print(f"{data.label}: k-shot protocols skipped: {why}", file=sys.stderr)
        detectors = {}
        for protocol in protocols:
            if protocol.shots and lists is None:
                skipped.append({"data": data.label, "protocol": protocol.name, "why": why})
                continue
            backbone = args.backbone_clip if protocol.family == "clip" else args.backbone_dino
            key = (backbone, protocol.method, tuple(sorted(protocol.options.items())))
            if key not in detectors:
                detectors[key] = make_detector(backbone, protocol.method, args.device, **protocol.options)
            tick = time.perf_counter()
            run = evaluate(detectors[key], data.kind, data.root, categories=args.categories, shots=protocol.shots,
                           seeds=protocol.seeds, references=lists if protocol.shots else None,
                           dataset_options=data.options)
            run.description["protocol"] = protocol.name
            run_dir = args.out / "runs" / data.label / protocol.name
            save_run(run, run_dir)
            report_dir = args.out / "reports" / data.label / protocol.name
            write_report(run, report_dir, published, plots=not args.no_plots)
            seconds = time.perf_counter() - tick
            summary.append({"data": data.label, "kind": data.kind, "root": str(data.root), "options": data.options,
                            "protocol": protocol.name, "backbone": backbone,
                            "random_weights": run.random_weights, "seconds": round(seconds, 1),
                            "mean": run.table.to_dict().get("mean", {}),
                            "report": str(report_dir.relative_to(args.out) / "report.html")})
            print(f"{data.label} {protocol.name}: {seconds:.1f} s, mean I-AUROC "
                  f"{100 * run.table.mean().get('i_auroc', float('nan')):.1f}", file=sys.stderr)
    total = time.perf_counter() - started
    write_index(args.out, summary, total, skipped)
    print(f"done in {total:.0f} s: {args.out / 'index.html'}")
    return 0


def write_index(out: Path, summary: list[dict], total: float, skipped: list[dict] | None = None) -> None:
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
    skipped = skipped or []
    notes = [f"- {row['data']} {row['protocol']}: not run: {row['why']}" for row in skipped]
    (out / "index.md").write_text("\n".join(lines + ([""] + notes if notes else [])) + "\n")
    (out / "index.json").write_text(json.dumps({"total_s": round(total, 1), "runs": summary, "skipped": skipped},
                                               indent=1) + "\n")
    rows = "".join(
        "<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in line.strip("|").split("|")[:-1])
        + f"<td><a href='{html.escape(row['report'])}'>report</a></td></tr>"
        for line, row in zip(lines[4:], summary))
    header = "".join(f"<th>{html.escape(c.strip())}</th>" for c in head.strip("|").split("|"))
    (out / "index.html").write_text(
        f"<!doctype html><meta charset='utf-8'><title>zsad protocols{random_note}</title>"
        f"<h1>zsad protocols{html.escape(random_note)}</h1><p>Total {total:.0f} s.</p>"
        f"<table border=1 cellpadding=4><tr>{header}</tr>{rows}</table>"
        + ("<ul>" + "".join(f"<li>{html.escape(n[2:])}</li>" for n in notes) + "</ul>" if notes else ""))


if __name__ == "__main__":
    sys.exit(main())
