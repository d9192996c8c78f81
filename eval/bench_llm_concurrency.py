"""Explanations in flight: ``zsad detect --explain llm`` over 32 images through an OpenAI-compatible server that
answers each request in 1 s, serial (``--llm-concurrency 1``) against ``--llm-concurrency 8``.

Goal (issue 17): the concurrent run takes at most a quarter of the serial run's wall time. Both runs are the whole
command in this process (model load, scoring, 32 explanations, writing), after one warm-up run that loads the
libraries; the explaining phase alone is timed too (``Explainer.explain_many``). The server is a local
``ThreadingHTTPServer`` that sleeps ``--delay`` seconds per chat request and answers valid deductions; the model is
the random ``tiny-clip`` (the LLM's latency, not the model, is what is measured):

    python eval/bench_llm_concurrency.py --json eval/results/bench_llm_concurrency.json
"""
from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import platform
import statistics
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path


def _answer(body: dict) -> str:
    properties = body["response_format"]["json_schema"]["schema"]["properties"]
    evidence = body["messages"][-1]["content"]
    anomalous = '"numeric_verdict": "anomalous"' in evidence
    rules = properties["rule"]["enum"]
    rule = next((r for r in rules if r.startswith("A" if anomalous else "N")), rules[0])
    region = properties["region"]["enum"][0]
    return json.dumps({"verdict": "anomalous" if anomalous else "normal", "rule": rule, "region": region,
                       "explanation": f"Rule {rule} applied to {region}."})


def serve(delay: float) -> ThreadingHTTPServer:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def _send(self, payload: dict) -> None:
            data = json.dumps(payload).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self):
            self._send({"object": "list", "data": [{"id": "bench", "object": "model", "owned_by": "eval"}]})

        def do_POST(self):
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            time.sleep(delay)
            self._send({"id": "x", "object": "chat.completion", "created": 0, "model": "bench",
                        "choices": [{"index": 0, "finish_reason": "stop",
                                     "message": {"role": "assistant", "content": _answer(body)}}]})

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def run(images: Path, out: Path, url: str, concurrency: int) -> dict[str, float]:
    """One ``zsad detect`` in this process; (whole command, explaining phase) in seconds."""
    from zsad.cli.main import main
    from zsad.reasoning.explainers import LLMExplainer

    phase: list[float] = []
    original = LLMExplainer.explain_many

    def timed(self, results):
        start = time.perf_counter()
        try:
            return original(self, results)
        finally:
            phase.append(time.perf_counter() - start)

    LLMExplainer.explain_many = timed
    try:
        start = time.perf_counter()
        with contextlib.redirect_stderr(io.StringIO()), contextlib.redirect_stdout(io.StringIO()) as stdout:
            code = main(["detect", str(images), "--backbone", "tiny-clip", "--method", "text", "--out", str(out),
                         "--explain", "llm", "--llm-base-url", url, "--llm-model", "bench",
                         "--llm-concurrency", str(concurrency), "--llm-timeout", "30"])
        total = time.perf_counter() - start
    finally:
        LLMExplainer.explain_many = original
    summary = stdout.getvalue().strip().splitlines()[-1]
    if code != 0 or "explanations: 32 by LLM" not in summary:
        raise SystemExit(f"run failed (exit {code}): {summary}")
    return {"wall_s": total, "explaining_s": phase[0]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--delay", type=float, default=1.0, help="seconds the server takes per request")
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=1, help="runs of each setting; the medians are reported")
    parser.add_argument("--json", default=None, help="also write the numbers to this file")
    args = parser.parse_args()
    from zsad.data.synth import generate_dataset

    work = Path(tempfile.mkdtemp(prefix="zsad-bench-llm-"))
    images = generate_dataset(work / "data", categories=["pill"], n_train=1, n_test_good=27, n_test_defect=1,
                              size=96, seed=0) / "pill" / "test"
    n_images = sum(1 for _ in images.rglob("*.png"))
    assert n_images == 32, n_images
    server = serve(args.delay)
    url = f"http://127.0.0.1:{server.server_address[1]}/v1"
    run(images, work / "warm", url, args.concurrency)  # imports, caches: not part of either number
    runs: dict[int, list[dict[str, float]]] = {1: [], args.concurrency: []}
    for repeat in range(args.repeats):  # interleaved, so that a change in the machine's load hits both settings
        for concurrency in runs:
            runs[concurrency].append(run(images, work / f"out-{concurrency}-{repeat}", url, concurrency))
    server.shutdown()
    serial, concurrent = ({key: statistics.median(r[key] for r in runs[c]) for key in ("wall_s", "explaining_s")}
                          for c in (1, args.concurrency))
    ratio = concurrent["wall_s"] / serial["wall_s"]
    print(f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, {n_images} images, "
          f"server {args.delay:g} s per request, medians of {args.repeats} run(s), load average "
          f"{os.getloadavg()[0]:.1f}")
    print("| --llm-concurrency | whole command s | explaining s |")
    print("|---:|---:|---:|")
    print(f"| 1 | {serial['wall_s']:.1f} | {serial['explaining_s']:.1f} |")
    print(f"| {args.concurrency} | {concurrent['wall_s']:.1f} | {concurrent['explaining_s']:.1f} |")
    print(f"concurrent / serial: {ratio:.3f} of the wall time (goal <= 0.25)")
    if args.json:
        with open(args.json, "w") as handle:
            json.dump({"cpu": platform.processor() or platform.machine(), "cores": os.cpu_count(),
                       "images": n_images, "server_delay_s": args.delay, "repeats": args.repeats,
                       "load_average_1min": os.getloadavg()[0], "serial": serial,
                       "concurrency": args.concurrency, "concurrent": concurrent, "ratio": ratio,
                       "goal": "concurrent wall time <= 0.25 x serial"}, handle, indent=2)
    sys.exit(0 if ratio <= 0.25 else 1)


if __name__ == "__main__":
    main()
