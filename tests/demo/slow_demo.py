"""``zsad demo`` whose model is made slow on purpose, for the browser test of cancel-on-reload: one image per batch,
each backbone pass waits a second and prints "zsad-test: batch" to stdout. A run of 12 images then takes 12 s,
long enough to close its page while it runs, and the log counts how many batches ran.

Run as: python tests/demo/slow_demo.py --backbone tiny-clip --device cpu --port N (the ``zsad demo`` flags).
"""
import logging
import sys
import time

from zsad.demo import session
from zsad.detector import Detector

_extract, _get = Detector.extract, session.DetectorCache.get


def slow_extract(self, images, progress=False):
    print(f"zsad-test: batch of {len(images)}", flush=True)
    time.sleep(1.0)
    return _extract(self, images, progress)


def one_per_batch(self, **options):
    return _get(self, **{**options, "batch_size": 1})


Detector.extract = slow_extract
session.DetectorCache.get = one_per_batch

if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(name)s: %(message)s")
    from zsad.cli.main import main

    sys.exit(main(["demo", *sys.argv[1:]]))
