"""Two CPU processes (torchrun + accelerate's gloo backend) give the single-process result."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from zsad.scoring.mutual import MutualConfig, mutual_scores

pytestmark = pytest.mark.slow  # starts other processes: skipped by the fast lane, -m 'not slow'

WORKER = Path(__file__).with_name("mutual_worker.py")
REPO = Path(__file__).resolve().parents[2]


def _launch(src: Path, dst: Path) -> None:
    env = dict(os.environ)
    env.update(OMP_NUM_THREADS="1", HF_HUB_OFFLINE="1", PYTHONPATH=f"{REPO}{os.pathsep}{env.get('PYTHONPATH', '')}")
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           str(WORKER), str(src), str(dst)]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]


def test_two_processes_equal_one(tmp_path):
    tokens = torch.randn(9, 2, 4, 4, 8)
    cls = torch.randn(9, 6) + 1.0
    config = {"radii": (1, 3), "query_chunk": 2, "ref_chunk": 3, "max_refs": 5, "seed": 7}
    torch.save({"tokens": tokens, "cls": cls, "config": config}, tmp_path / "in.pt")
    _launch(tmp_path / "in.pt", tmp_path / "out.pt")

    shares = [torch.load(f"{tmp_path / 'out.pt'}.rank{rank}") for rank in (0, 1)]
    assert all(s["num_processes"] == 2 for s in shares)  # really two processes, each with half of the work
    assert shares[0]["share"] + shares[1]["share"] == list(range(10)) and shares[1]["share"]

    got = torch.load(tmp_path / "out.pt")
    single = mutual_scores(tokens, cls, MutualConfig(**config))
    assert torch.allclose(got["maps"], single.maps, atol=1e-5)
    assert torch.allclose(got["scores"], single.scores, atol=1e-5)
