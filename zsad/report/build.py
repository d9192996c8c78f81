"""A report of one evaluation run: markdown, JSON and one self-contained HTML page (plots embedded as base64 PNG).

Every number comes from the run folder that ``zsad eval`` wrote (``load_run``) or from the published CSV; nothing
is typed by hand. The tables are ``MetricTable``'s own renderings, so they equal ``zsad eval``'s output. The title
and the published comparison name the setting the run actually ran in (``published.setting_of``: zero-shot,
k-shot with which lists, reference-based with which images, prompts trained on which data), and every reference
file is listed with its sha256. Beside the pooled table: the official protocol's tables where the data set has one
(MVTec LOCO AD: logical, structural and their mean; the comparison then uses the mean's I-AUROC, the protocol's
number), a per-defect-type table per category, and for ``zsad eval --discover`` runs the discovered types with
their NMI / ARI / cluster F1 against the true types (``zsad.report.types``).
"""
from __future__ import annotations

import base64
import html
import json
import math
from pathlib import Path
from typing import Any

from zsad.evaluation.run import EvaluationRun
from zsad.metrics.table import HEADERS, MEAN_ROW, MetricTable
from zsad.report import figures
from zsad.report.published import PublishedRow, matching, protocol_of, read_published, setting_of, why_none
from zsad.report.types import types_data, types_html, types_markdown

RANDOM_NOTE = ("**Randomly initialised backbone**: these numbers measure the pipeline, not detection accuracy with "
               "trained weights.")


def _name(run: EvaluationRun, setting: dict[str, Any]) -> str:
    d = run.description
    det = d.get("detector", {})
    name = (f"{det.get('backbone')} {det.get('method')} {setting['label']} on {d.get('dataset')} "
            f"{Path(d.get('root', '')).name}")
    return name + (figures.RANDOM_SUFFIX if run.random_weights else "")


def weights_text(env: dict[str, Any]) -> str:
    """How the backbone's weights are described: a random model is never "default" weights."""
    if env.get("random_weights"):
        return "random weights"
    return str(env.get("pretrained") or "pretrained tag not recorded")


def compared_metrics(run: EvaluationRun) -> dict[str, float | None]:
    """The run's numbers set beside published rows: the protocol's own where the data set has one (MVTec LOCO AD:
    the mean over categories of the mean of logical and structural I-AUROC), else the pooled mean row."""
    if "mean" in run.protocol_tables:
        return {"i_auroc": run.protocol_tables["mean"].to_dict()[MEAN_ROW].get("i_auroc"), "p_auroc": None,
                "aupro": None}
    return run.table.to_dict().get(MEAN_ROW, {})


def report_data(run: EvaluationRun, published: list[PublishedRow] | None = None) -> dict[str, Any]:
    """The JSON side of the report: title, protocol, environment, tables (fractions), matched published rows."""
    protocol = protocol_of(run.description)
    setting = setting_of(run.description)
    matched = matching(published or [], protocol)
    det = run.description.get("detector", {})
    return {
        "title": _name(run, setting),
        "random_weights": run.random_weights,
        "protocol": protocol,
        "setting": setting,
        "metrics": run.table.to_dict(),
        "metrics_by_seed": {str(s): t.to_dict() for s, t in run.tables.items()},
        "protocol_metrics": {name: t.to_dict() for name, t in run.protocol_tables.items()},
        "defect_metrics": {c: t.to_dict(with_mean=False) for c, t in run.defect_tables.items()},
        "defect_types": types_data(run),
        "compared_metrics": compared_metrics(run),
        "reference_files": run.description.get("reference_files") or [],
        "reference_lists": run.description.get("reference_lists") or [],
        "reference_source": run.description.get("reference_source"),
        "notes": run.notes,
        "verdict_rules": verdict_rules(run),
        "published": [
            {"method": r.method, "setting": r.setting, "backbone": r.backbone, "input": r.input, "dataset": r.dataset,
             "metrics": r.metrics, "source": r.source} for r in matched
        ],
        "published_note": None if matched else (why_none(protocol) if published is not None else
                                                "no published results file given"),
        "environment": {
            "versions": run.description.get("versions"),
            "device": det.get("device"),
            "backbone": det.get("backbone"),
            "pretrained": det.get("pretrained"),
            "input_size": det.get("input_size"),
            "weights_fingerprint": det.get("weights_fingerprint"),
            "random_weights": det.get("random_weights"),
            "method": det.get("method"),
            "preset": det.get("preset"),
            "settings": det.get("settings"),
            "dataset": run.description.get("dataset"),
            "root": run.description.get("root"),
            "shots": run.description.get("shots"),
            "seeds": run.description.get("seeds"),
            "setting": setting["detail"],
            "trained_on": det.get("trained_on"),
            "started": run.description.get("started"),
            "duration_s": run.description.get("duration_s"),
            "n_images": run.description.get("n_images"),
        },
    }


def _pct(value: float | None) -> str:
    return "n/a" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{100 * value:.1f}"


def published_markdown(data: dict[str, Any]) -> str:
    if not data["published"]:
        return f"No published number set beside this run: {data['published_note']}.\n"
    mean = data["compared_metrics"]
    keys = ["i_auroc", "p_auroc", "aupro"]
    lines = ["| method | setting | backbone | input |" + "".join(f" {HEADERS[k]} |" for k in keys) + " source |",
             "|---|---|---|---:|" + "---:|" * len(keys) + "---|",
             f"| zsad (this run) | {data['protocol']['setting_label']} | {data['protocol']['backbone']} | "
             f"{data['protocol']['input']} |" + "".join(f" {_pct(mean.get(k))} |" for k in keys) + " this report |"]
    for row in data["published"]:
        lines.append(f"| {row['method']} | {row['setting']} | {row['backbone']} | {row['input']} |"
                     + "".join(f" {_pct(row['metrics'].get(k))} |" for k in keys) + f" {row['source']} |")
    return "\n".join(lines) + "\n"


def markdown(run: EvaluationRun, data: dict[str, Any], figure_files: dict[str, str]) -> str:
    env = data["environment"]
    parts = [f"# {data['title']}\n"]
    if run.random_weights:
        parts.append(RANDOM_NOTE + "\n")
    parts.append(f"## Metrics (%){figures.RANDOM_SUFFIX if run.random_weights else ''}\n")
    parts.append(run.table.to_markdown())
    if len(run.tables) > 1:
        parts.append("Mean over seeds " + ", ".join(map(str, run.tables)) + "; per seed:\n")
        for seed, table in run.tables.items():
            parts.append(f"\nSeed {seed}:\n\n" + table.to_markdown())
    if data["verdict_rules"]:
        parts.append("\nVerdicts and masks decided by (the columns Verdict F1 to Mask F1):\n\n" + "".join(
            f"- {v['category']}, seed {v['seed']}: {v['words']}; masks: {v['mask_rule'] or 'n/a'}\n"
            for v in data["verdict_rules"]))
    if run.notes:
        parts.append("\nNotes:\n\n" + "".join(f"- {c}: {n}\n" for c, n in run.notes.items()))
    for title, tables, with_mean in _breakdown_sections(run):
        parts.append(f"\n## {title}\n")
        for name, table in tables.items():
            parts.append(f"\n{name}:\n\n" + table.to_markdown(with_mean=with_mean))
    parts.append(types_markdown(data["defect_types"]))
    parts.append("\n## Published results with the same protocol\n")
    parts.append(published_markdown(data))
    if figure_files:
        parts.append("\n## Plots\n")
        for name, file in figure_files.items():
            parts.append(f"![{name}]({file})\n")
    parts.append("\n## Environment\n")
    fingerprint = env.get("weights_fingerprint") or {}
    versions = env.get("versions") or {}
    lines = [
        ("setting", f"{data['setting']['label']}: {env['setting']}"),
        ("backbone", f"{env['backbone']} ({weights_text(env)}), input {env['input_size']} px"),
        ("random weights", str(env["random_weights"])),
        ("weights sha256", f"{fingerprint.get('sha256')} ({fingerprint.get('parameters')} parameters)"),
        ("method / preset", f"{env['method']} / {env['preset']}"),
        ("data set", f"{env['dataset']} at {env['root']}"),
        ("shots / seeds", f"{env['shots']} / {env['seeds']}"),
        ("device", json.dumps(env["device"])),
        ("versions", ", ".join(f"{k} {v}" for k, v in versions.items())),
        ("run", f"started {env['started']}, {env['duration_s']} s, {env['n_images']} image records"),
    ]
    parts.append("".join(f"- {k}: {v}\n" for k, v in lines))
    parts.append(references_markdown(data["reference_files"], data.get("reference_lists"),
                                     data.get("reference_source")))
    parts.append("\nResolved settings:\n\n```json\n" + json.dumps(env["settings"], indent=1) + "\n```\n")
    return "\n".join(parts)


def verdict_rules(run: EvaluationRun) -> list[dict[str, Any]]:
    """Per (category, seed) pass: the rule that decided its verdicts and how sure it was (the first scored image's
    record: one rule decides a whole pass)."""
    from zsad.verdict import certainty_words

    seen: dict[tuple[str, int], dict[str, Any]] = {}
    for record in run.records:
        key = (record.category, record.seed)
        if key not in seen and record.ok and record.verdict_rule:
            seen[key] = {"category": record.category, "seed": record.seed, "rule": record.verdict_rule,
                         "certainty": record.certainty, "mask_rule": record.mask_rule,
                         "words": certainty_words(record.verdict_rule, record.certainty)}
    return list(seen.values())


SHOWN_REFERENCES = 60


def reference_lines(files: list[dict[str, Any]], lists: list[dict[str, Any]] | None = None) -> list[str]:
    """One line per reference list (``category, k-shot, seed: file (sha256 start), ...``), or per file for runs
    recorded before lists were; at most ``SHOWN_REFERENCES`` lines (report.json has them all)."""
    sha = {f["path"]: str(f.get("sha256"))[:16] for f in files}
    if lists:
        lines = []
        for item in lists:
            head = (f"{item['category']}, {item['shots']}-shot, seed {item['seed']}" if item.get("shots")
                    else "every category")
            lines.append(f"{head}: " + ", ".join(f"{Path(p).name} (sha256 {sha.get(p, 'n/a')})"
                                                 for p in item["files"]))
    else:
        lines = [f"{f['path']} (sha256 {sha[f['path']]})" for f in files]
    if len(lines) > SHOWN_REFERENCES:
        more = len(lines) - SHOWN_REFERENCES
        lines = [*lines[:SHOWN_REFERENCES], f"... and {more} more (report.json lists them all)"]
    return lines


def references_markdown(files: list[dict[str, Any]], lists: list[dict[str, Any]] | None = None,
                        source: str | None = None) -> str:
    """The reference images a run used, list by list, with the start of their sha256 (all in report.json)."""
    if not files:
        return "\nReference images: none.\n"
    head = f"\nReference images ({len(files)} files" + (f"; {source}" if source else "") + "):\n\n"
    return head + "".join(f"- {line}\n" for line in reference_lines(files, lists))


def _breakdown_sections(run: EvaluationRun) -> list[tuple[str, dict[str, MetricTable], bool]]:
    """(title, tables by name, with mean row): the official protocol's tables, then the per-defect-type ones."""
    out = []
    if run.protocol_tables:
        out.append(("MVTec LOCO AD protocol (%): logical and structural anomalies, each with the good images; the "
                    "mean row is the benchmark number", run.protocol_tables, True))
    if run.defect_tables:
        out.append(("Per defect type (%): each type's images against the good images", run.defect_tables, False))
    return out


def _html_table(rows: dict[str, dict[str, float | None]], keys: list[str]) -> str:
    head = "<tr><th>category</th>" + "".join(f"<th>{html.escape(HEADERS.get(k, k))}</th>" for k in keys) + "</tr>"
    body = "".join(
        f"<tr{' class=mean' if c == MEAN_ROW else ''}><td>{html.escape(c)}</td>"
        + "".join(f"<td>{_pct(row.get(k))}</td>" for k in keys) + "</tr>"
        for c, row in rows.items())
    return f"<table>{head}{body}</table>"


def _markdown_table_to_html(text: str) -> str:
    lines = [line for line in text.strip().splitlines() if line.startswith("|")]
    if len(lines) < 2:
        return f"<p>{html.escape(text)}</p>"
    cells = [[html.escape(c.strip()) for c in line.strip("|").split("|")] for line in lines]
    head = "<tr>" + "".join(f"<th>{c}</th>" for c in cells[0]) + "</tr>"
    body = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in row) + "</tr>" for row in cells[2:])
    return f"<table>{head}{body}</table>"


def html_page(run: EvaluationRun, data: dict[str, Any], pngs: dict[str, bytes]) -> str:
    keys = run.table.metrics
    style = ("body{font-family:sans-serif;max-width:1100px;margin:2em auto;color:#222}"
             "table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:3px 8px;"
             "text-align:right}td:first-child,th:first-child{text-align:left}tr.mean{font-weight:bold}"
             ".random{background:#fff3cd;border:1px solid #e0c060;padding:.6em}img{max-width:100%}"
             "pre{background:#f5f5f5;padding:.6em;overflow:auto}")
    parts = [f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(data['title'])}</title>"
             f"<style>{style}</style></head><body><h1>{html.escape(data['title'])}</h1>"]
    if run.random_weights:
        parts.append("<p class=random><b>Randomly initialised backbone</b>: these numbers measure the pipeline, "
                     "not detection accuracy with trained weights.</p>")
    parts.append(f"<h2>Metrics (%){html.escape(figures.RANDOM_SUFFIX if run.random_weights else '')}</h2>")
    parts.append(_html_table(data["metrics"], keys))
    if len(run.tables) > 1:
        for seed, table in data["metrics_by_seed"].items():
            parts.append(f"<h3>Seed {html.escape(seed)}</h3>" + _html_table(table, keys))
    if run.notes:
        parts.append("<ul>" + "".join(f"<li>{html.escape(c)}: {html.escape(n)}</li>" for c, n in run.notes.items())
                     + "</ul>")
    for title, tables, with_mean in _breakdown_sections(run):
        parts.append(f"<h2>{html.escape(title)}</h2>")
        for name, table in tables.items():
            rows = table.to_dict(with_mean=with_mean)
            parts.append(f"<h3>{html.escape(name)}</h3>" + _html_table(rows, table.metrics))
    parts.append(types_html(data["defect_types"], _markdown_table_to_html))
    parts.append("<h2>Published results with the same protocol</h2>")
    parts.append(_markdown_table_to_html(published_markdown(data)))
    if pngs:
        parts.append("<h2>Plots</h2>")
        for name, png in pngs.items():
            parts.append(f"<h3>{html.escape(name)}</h3><img alt='{html.escape(name)}' "
                         f"src='data:image/png;base64,{base64.b64encode(png).decode()}'>")
    else:
        parts.append("<p>Plots need matplotlib: <code>pip install 'zsad[report]'</code>.</p>")
    files = data["reference_files"]
    parts.append("<h2>Reference images</h2>" + (
        (f"<p>{html.escape(data['reference_source'])}</p>" if data.get("reference_source") else "")
        + "<ul>" + "".join(f"<li>{html.escape(line)}</li>"
                           for line in reference_lines(files, data.get("reference_lists"))) + "</ul>"
        if files else "<p>none</p>"))
    parts.append("<h2>Environment</h2><pre>" + html.escape(json.dumps(data["environment"], indent=1)) + "</pre>")
    parts.append("</body></html>")
    return "".join(parts)


def write_report(run: EvaluationRun, out_dir: str | Path, published_csv: str | Path | None = None,
                 plots: bool = True) -> dict[str, Path]:
    """Write ``report.md``, ``report.json``, ``report.html`` and the plots as PNG files; returns their paths."""
    from zsad.errors import ZsadError

    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise ZsadError(f"{out}: exists and is not a folder; pass a folder for the report")
    out.mkdir(parents=True, exist_ok=True)
    published = read_published(published_csv) if published_csv is not None else None
    data = report_data(run, published)
    pngs = figures.all_figures(run) if plots else {}
    files = {}
    for name, png in pngs.items():
        path = out / f"{name}.png"
        path.write_bytes(png)
        files[name] = path
    data["figures"] = {name: path.name for name, path in files.items()}
    paths = {"markdown": out / "report.md", "json": out / "report.json", "html": out / "report.html"}
    paths["markdown"].write_text(markdown(run, data, data["figures"]))
    paths["json"].write_text(json.dumps(data, indent=1, allow_nan=False) + "\n")
    paths["html"].write_text(html_page(run, data, pngs))
    return paths | files
