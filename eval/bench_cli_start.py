"""How long ``zsad --help`` and an option error take, and how much memory they use, beside importing torch.

Each command runs in a fresh process ``--repeats`` times; the table reports the median wall time and the peak
resident memory of the child (``wait4``'s ru_maxrss). Help and option errors import no model library
(tests/test_package.py checks that); this shows what that buys on the machine at hand:

    python eval/bench_cli_start.py --json eval/results/bench_cli_start.json
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time

COMMANDS = {
    "zsad --help": ["-m", "zsad.cli.main", "--help"],
    "zsad detect --help": ["-m", "zsad.cli.main", "detect", "--help"],
    "zsad eval --help": ["-m", "zsad.cli.main", "eval", "--help"],
    "zsad detect x --threshold nan (option error)": ["-m", "zsad.cli.main", "detect", "x", "--threshold", "nan"],
    "python -c 'import torch' (for scale)": ["-c", "import torch"],
}


def run(argv: list[str]) -> tuple[float, float]:
    """(wall seconds, peak RSS in MiB) of one fresh process."""
    start = time.perf_counter()
    child = subprocess.Popen([sys.executable, *argv], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    _, _, usage = os.wait4(child.pid, 0)
    return time.perf_counter() - start, usage.ru_maxrss / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--json", default=None, help="also write the numbers to this file")
    args = parser.parse_args()
    rows = []
    for name, argv in COMMANDS.items():
        runs = [run(argv) for _ in range(args.repeats)]
        rows.append({"command": name, "median_s": statistics.median(r[0] for r in runs),
                     "peak_rss_mib": max(r[1] for r in runs)})
    print(f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, {args.repeats} runs each")
    print("| command | median wall s | peak RSS MiB |")
    print("|---|---:|---:|")
    for row in rows:
        print(f"| {row['command']} | {row['median_s']:.2f} | {row['peak_rss_mib']:.0f} |")
    if args.json:
        with open(args.json, "w") as handle:
            json.dump({"cpu": platform.processor() or platform.machine(), "cores": os.cpu_count(),
                       "repeats": args.repeats, "rows": rows}, handle, indent=2)


if __name__ == "__main__":
    main()
