"""Issue 6 items 8 and 11: an interrupted `zsad detect` resumes with `--resume`; a bad `--out` fails before work.

Runs are real subprocesses killed with SIGKILL (no clean-up handler runs), once while images are being scored and
once while overlays are being written. ``--input-size 448`` and ``--batch-size 1`` slow the tiny model down enough
(about 1 s of scoring and 1.5 s of writing for 40 images) for the poll loop to catch the run halfway; each test
asserts that the kill really came before the run finished.
"""
from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
import time
from contextlib import redirect_stderr
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

pytestmark = pytest.mark.slow  # starts other processes: skipped by the fast lane, -m 'not slow'

ENV = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
N_IMAGES = 40


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("resume") / "images"
    root.mkdir()
    rng = np.random.default_rng(0)
    for index in range(N_IMAGES):
        array = (rng.random((256, 256, 3)) * 60 + 100).astype(np.uint8)
        if index % 5 == 0:
            y, x = rng.integers(20, 200, size=2)
            array[y : y + 30, x : x + 30] = (240, 30, 30)
        Image.fromarray(array).save(root / f"{index:03d}.png")
    return root


def _command(folder: Path, out: Path, *extra) -> list[str]:
    return [sys.executable, "-m", "zsad.cli.main", "detect", str(folder), "--backbone", "tiny-clip",
            "--method", "text", "--batch-size", "1", "--input-size", "448", "--out", str(out), *extra]


def _run(folder: Path, out: Path, *extra) -> None:
    done = subprocess.run(_command(folder, out, *extra), env=ENV, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]


def _kill_when(folder: Path, out: Path, ready) -> None:
    """Start a run, SIGKILL it as soon as ``ready()`` holds, and check it had not finished."""
    process = subprocess.Popen(_command(folder, out), env=ENV, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 240
    try:
        while not ready():
            assert process.poll() is None, "the run finished before it could be interrupted"
            assert time.monotonic() < deadline, "the run never reached the point to interrupt"
            time.sleep(0.005)
        process.send_signal(signal.SIGKILL)
        assert process.wait(timeout=30) == -signal.SIGKILL
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert not (out / "results.json").exists() and not (out / "results.csv").exists()


def _journal_lines(out: Path) -> list[str]:
    path = out / "journal" / "scored.jsonl"
    return path.read_text().splitlines() if path.is_file() else []


def _overlays(out: Path) -> list[Path]:
    folder = out / "overlays"
    return sorted(p for p in folder.glob("*_overlay.png")) if folder.is_dir() else []


@pytest.fixture(scope="module")
def uninterrupted(folder, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("whole") / "out"
    _run(folder, out)
    return out


def test_killed_while_scoring_resumes_to_the_uninterrupted_results(folder, uninterrupted, tmp_path):
    out = tmp_path / "out"
    _kill_when(folder, out, lambda: len(_journal_lines(out)) >= 3)
    before = [json.loads(line)["path"] for line in _journal_lines(out) if line.endswith("}")]
    assert 3 <= len(before) < N_IMAGES, "killed halfway through scoring"
    assert not _overlays(out)

    _run(folder, out, "--resume")
    assert (out / "results.csv").read_text() == (uninterrupted / "results.csv").read_text()
    # The images journaled before the kill were not scored again: each input is in the journal once.
    after = [json.loads(line)["path"] for line in _journal_lines(out) if line.endswith("}")]
    assert sorted(after) == sorted(set(after)) and len(after) == N_IMAGES
    assert after[: len(before)] == before
    assert [p.name for p in _overlays(out)] == [p.name for p in _overlays(uninterrupted)]


def test_killed_while_writing_resumes_to_the_uninterrupted_results(folder, uninterrupted, tmp_path):
    out = tmp_path / "out"
    _kill_when(folder, out, lambda: len(_overlays(out)) >= 3)
    written = {p.name: p.stat().st_mtime_ns for p in _overlays(out)}
    assert 3 <= len(written) < N_IMAGES, "killed halfway through writing"
    assert len(_journal_lines(out)) == N_IMAGES  # scoring had finished

    _run(folder, out, "--resume")
    assert (out / "results.csv").read_text() == (uninterrupted / "results.csv").read_text()
    assert len(_journal_lines(out)) == N_IMAGES  # nothing was scored again
    assert [p.name for p in _overlays(out)] == [p.name for p in _overlays(uninterrupted)]
    assert not list((out / "overlays").glob("*.part.png"))
    kept = {name: (out / "overlays" / name).stat().st_mtime_ns for name in written}
    assert sum(kept[name] == written[name] for name in written) >= len(written) - 1  # the one being saved may redo


def test_without_resume_a_rerun_starts_over(folder, uninterrupted, tmp_path):
    out = tmp_path / "out"
    _kill_when(folder, out, lambda: len(_journal_lines(out)) >= 3)
    _run(folder, out)
    assert len(_journal_lines(out)) == N_IMAGES
    assert (out / "results.csv").read_text() == (uninterrupted / "results.csv").read_text()


def test_out_naming_an_existing_file_fails_before_any_work(folder, tmp_path, monkeypatch):
    import zsad.detector
    from zsad.cli.main import main

    def no_model(*args, **kwargs):
        raise AssertionError("a model was loaded before --out was checked")

    monkeypatch.setattr(zsad.detector, "load_backbone", no_model)
    target = tmp_path / "results.txt"
    target.write_text("keep me")
    stderr = io.StringIO()
    started = time.monotonic()
    with redirect_stderr(stderr):
        code = main(["detect", str(folder), "--backbone", "tiny-clip", "--out", str(target)])
    assert time.monotonic() - started < 1.0
    message = stderr.getvalue()
    assert code == 2
    assert message.count("\n") == 1 and message.startswith("zsad: error: --out ") and "existing file" in message
    assert target.read_text() == "keep me"

    # The same through the command line: one line, exit 2, no progress bar (no work started).
    done = subprocess.run(_command(folder, target), env=ENV, capture_output=True, text=True, timeout=120)
    assert done.returncode == 2 and done.stderr.count("\n") == 1, done.stderr
    assert "existing file" in done.stderr and "scoring" not in done.stderr and "Traceback" not in done.stderr

    # A folder below an existing file cannot be created either.
    nested = subprocess.run(_command(folder, target / "sub"), env=ENV, capture_output=True, text=True, timeout=120)
    assert nested.returncode == 2 and nested.stderr.count("\n") == 1 and "is a file" in nested.stderr, nested.stderr
