"""Shared timing helper for the benchmarks in eval/ (median of repeats, wall clock)."""
from __future__ import annotations

import statistics
import time


def timed(fn, repeats: int) -> float:
    samples = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - start)
    return statistics.median(samples)
