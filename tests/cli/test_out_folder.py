"""Issue 20 items 1-2: ``--resume`` reuses a journaled result only when everything that determines it matches, and
a non-empty ``--out`` is written into only when it holds a zsad run of the same settings or with ``--overwrite``,
which removes only the files zsad wrote.

Each case compares with a fresh run into an empty folder: a result that was rescored equals the fresh one, a
refusal is one line naming what changed and leaves the folder as it was.
"""
from __future__ import annotations

import io
import json
import os
import shutil
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from zsad.cli.main import main

# One image per backbone pass: a rescored image then meets the backbone as in a fresh run, bit for bit (a batch of
# another composition changes float rounding in the last bits).
BASE = ["--backbone", "tiny-clip", "--method", "text", "--input-size", "64", "--batch-size", "1"]


def _images(folder: Path, seed: int, count: int = 4) -> Path:
    folder.mkdir(parents=True)
    rng = np.random.default_rng(seed)
    for index in range(count):
        array = (rng.random((48, 48, 3)) * 80 + 90).astype(np.uint8)
        array[10 + index : 20 + index, 12:22] = (230, 40, 40) if index == 2 else array[10:20, 12:22]
        Image.fromarray(array).save(folder / f"{index:03d}.png")
    return folder


def _detect(*argv) -> tuple[int, str]:
    err = io.StringIO()
    with redirect_stdout(io.StringIO()), redirect_stderr(err):
        code = main(["detect", *map(str, argv)])
    return code, err.getvalue()


def _csv(out: Path) -> bytes:
    return (out / "results.csv").read_bytes()


def _journal_lines(out: Path) -> int:
    return len((out / "journal" / "scored.jsonl").read_text().splitlines())


def _overlays(out: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted((out / "overlays").glob("*.png"))}


def _fresh(tmp_path: Path, name: str, *argv) -> Path:
    out = tmp_path / name
    code, err = _detect(*argv, "--out", out)
    assert code == 0, err
    return out


@pytest.fixture
def folder(tmp_path) -> Path:
    return _images(tmp_path / "a", seed=0)


def _state(out: Path) -> dict[str, bytes]:
    return {str(p.relative_to(out)): p.read_bytes() for p in sorted(out.rglob("*")) if p.is_file()}


def test_a_changed_option_is_refused_or_rescored_never_reused(folder, tmp_path):
    out = _fresh(tmp_path, "out", folder, *BASE)
    before = _state(out)
    code, err = _detect(folder, *BASE, "--input-size", "96", "--out", out, "--resume")
    assert code == 2 and err.count("\n") == 1
    assert "backbone.input_size 64 -> 96" in err and "--resume=rescore-changed" in err
    assert _state(out) == before  # a refusal changes nothing
    # a run-time-only setting (how many images per pass) is not a change
    assert _detect(folder, *BASE, "--batch-size", "2", "--out", out, "--resume")[0] == 0
    assert _csv(out) == before["results.csv"] and _journal_lines(out) == 4

    code, err = _detect(folder, *BASE, "--input-size", "96", "--out", out, "--resume=rescore-changed")
    assert code == 0, err
    fresh = _fresh(tmp_path, "fresh", folder, *BASE, "--input-size", "96")
    assert _csv(out) == _csv(fresh) != before["results.csv"]
    assert _overlays(out) == _overlays(fresh)


def test_a_changed_file_is_refused_or_rescored_and_a_touched_one_reused(folder, tmp_path):
    out = _fresh(tmp_path, "out", folder, *BASE)
    first = _csv(out)
    stamp = (folder / "001.png").stat().st_mtime_ns
    os.utime(folder / "001.png", ns=(stamp + 10**9, stamp + 10**9))  # touched: same bytes, new time
    assert _detect(folder, *BASE, "--out", out, "--resume")[0] == 0
    assert _csv(out) == first and _journal_lines(out) == 4  # reused: nothing scored again

    changed = np.asarray(Image.open(folder / "003.png")).copy()
    changed[5:40, 5:40] = (20, 200, 20)
    Image.fromarray(changed).save(folder / "003.png")
    os.utime(folder / "003.png", ns=(stamp, stamp))  # even with the old time: its size or content tells
    shutil.copy(folder / "003.png", folder / "002.png")
    code, err = _detect(folder, *BASE, "--out", out, "--resume")
    assert code == 2 and err.count("\n") == 1 and "2 input(s) changed since they were scored" in err
    assert "002.png (" in err and "003.png (" in err
    assert _csv(out) == first

    code, err = _detect(folder, *BASE, "--out", out, "--resume=rescore-changed")
    assert code == 0 and "scoring again 2 input(s)" in err
    assert _journal_lines(out) == 6  # only the changed images were scored again
    fresh = _fresh(tmp_path, "fresh", folder, *BASE)
    assert _csv(out) == _csv(fresh) != first
    assert _overlays(out) == _overlays(fresh)


def test_another_folder_into_the_same_out_is_scored_and_never_shows_old_overlays(folder, tmp_path):
    other = _images(tmp_path / "b", seed=1)  # the same file names, other pictures
    out = _fresh(tmp_path, "out", folder, *BASE)
    assert _detect(other, *BASE, "--out", out, "--resume")[0] == 0
    fresh = _fresh(tmp_path, "fresh", other, *BASE)
    assert _csv(out) == _csv(fresh)
    assert _overlays(out) == _overlays(fresh)  # every overlay drawn from the other folder's images
    records = json.loads((out / "results.json").read_text())["results"]
    assert all(r["path"].startswith(str(other)) for r in records)


def test_a_changed_reference_set_is_refused_or_rescored(folder, tmp_path):
    good_a, good_b = _images(tmp_path / "good_a", seed=5, count=2), _images(tmp_path / "good_b", seed=6, count=2)
    fewshot = ["--backbone", "tiny-clip", "--method", "fewshot", "--input-size", "64", "--batch-size", "1"]
    out = _fresh(tmp_path, "out", folder, *fewshot, "--references", good_a)
    first = _csv(out)
    code, err = _detect(folder, *fewshot, "--references", good_b, "--out", out, "--resume")
    assert code == 2 and "references.sha256" in err and _csv(out) == first
    assert _detect(folder, *fewshot, "--references", good_b, "--out", out, "--resume=rescore-changed")[0] == 0
    fresh = _fresh(tmp_path, "fresh", folder, *fewshot, "--references", good_b)
    assert _csv(out) == _csv(fresh) != first


def test_a_non_empty_out_is_refused_unless_overwrite_which_leaves_other_files(folder, tmp_path, monkeypatch):
    import zsad.detector

    out = tmp_path / "mine"
    (out / "overlays").mkdir(parents=True)
    (out / "notes.txt").write_text("keep")
    (out / "overlays" / "drawing.png").write_bytes(b"keep too")

    def no_model(*args, **kwargs):
        raise AssertionError("a model was loaded before --out was checked")

    with monkeypatch.context() as patch:
        patch.setattr(zsad.detector, "load_backbone", no_model)
        code, err = _detect(folder, *BASE, "--out", out)
    assert code == 2 and err.count("\n") == 1 and "not empty" in err and "--overwrite" in err

    assert _detect(folder, *BASE, "--out", out, "--overwrite")[0] == 0
    assert len(_overlays(out)) == 5  # four overlays and the user's drawing
    # Another run of the same settings replaces its own files; the previous inputs' overlays do not stay behind.
    other = _images(tmp_path / "b", seed=1, count=2)
    (other / "000.png").rename(other / "x.png")
    assert _detect(other, *BASE, "--out", out)[0] == 0
    assert sorted(_overlays(out)) == ["001_overlay.png", "drawing.png", "x_overlay.png"]
    # Other settings: refused without --overwrite, replaced with it; the user's files stay through both.
    code, err = _detect(other, *BASE, "--input-size", "96", "--out", out)
    assert code == 2 and "other settings (backbone.input_size 64 -> 96)" in err and "--overwrite" in err
    assert _detect(folder, *BASE, "--input-size", "96", "--out", out, "--overwrite")[0] == 0
    fresh = _fresh(tmp_path, "fresh", folder, *BASE, "--input-size", "96")
    assert _csv(out) == _csv(fresh)
    assert (out / "notes.txt").read_text() == "keep" and (out / "overlays" / "drawing.png").read_bytes() == b"keep too"
    assert set(_overlays(out)) == set(_overlays(fresh)) | {"drawing.png"}


def test_overwrite_removes_only_what_the_journal_and_results_list(folder, tmp_path):
    from zsad.outputs import remove_written, written_files

    out = _fresh(tmp_path, "out", folder, *BASE)
    (out / "journal" / "mine.txt").write_text("keep")
    (out / "results.txt").write_text("keep")
    listed = {str(p.relative_to(out)) for p in written_files(out)}
    assert listed == {"results.json", "results.csv", "journal/run.json", "journal/scored.jsonl",
                      "journal/overlays.jsonl", *(f"overlays/{n}" for n in _overlays(out))}
    # a hand-edited log naming a file outside the folder removes nothing there
    outside = tmp_path / "outside.png"
    outside.write_bytes(b"x")
    with open(out / "journal" / "overlays.jsonl", "a") as handle:
        handle.write(json.dumps({"overlay": "../outside.png", "digest": "0"}) + "\n")
    assert remove_written(out) == len(listed)
    assert outside.exists() and _state(out) == {"journal/mine.txt": b"keep", "results.txt": b"keep"}


def test_overlays_are_named_by_the_path_inside_the_input_and_unique(tmp_path):
    from zsad.outputs import overlay_names
    from zsad.results import AnomalyResult

    results = [AnomalyResult("good/000.png", "/d/a/good/000.png"), AnomalyResult("good/000.png", "/d/b/good/000.png"),
               AnomalyResult("x.png", "/d/x.png"), AnomalyResult("x.png", "/d/x.png"), AnomalyResult("image 0")]
    assert overlay_names(results) == ["a_good_000_overlay.png", "b_good_000_overlay.png", "x_overlay.png",
                                      "x~2_overlay.png", "image 0_overlay.png"]


def test_a_resume_mode_other_than_rescore_changed_is_a_parser_error(folder, capsys):
    with pytest.raises(SystemExit) as stop:
        main(["detect", "--resume", str(folder)])
    assert stop.value.code == 2 and "--resume=rescore-changed" in capsys.readouterr().err


def test_a_file_is_the_same_by_size_and_time_or_else_by_content(tmp_path):
    from zsad.outputs.journal import file_change, file_identity

    path = tmp_path / "x.bin"
    path.write_bytes(b"a" * 10)
    journaled = file_identity(path)
    assert file_change(str(path), journaled) is None
    stamp = path.stat().st_mtime_ns
    os.utime(path, ns=(stamp + 10**9, stamp + 10**9))
    assert file_change(str(path), journaled) is None  # touched only: the sha256 is the same
    path.write_bytes(b"b" * 10)
    os.utime(path, ns=(stamp + 2 * 10**9, stamp + 2 * 10**9))
    assert file_change(str(path), journaled) == "content"
    os.utime(path, ns=(stamp, stamp))
    assert file_change(str(path), journaled) is None  # same size and time: not read (the quick check)
    path.write_bytes(b"b" * 11)
    assert file_change(str(path), journaled) == "size"
    path.unlink()
    assert file_change(str(path), journaled) == "missing"
