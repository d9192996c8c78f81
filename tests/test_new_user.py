"""What a new user tripped over (issue: API single images, eval references, area figure, silent phases, overlays
without a legend, option validation, dropped files, messages, verdicts with references, help, packaging)."""
from __future__ import annotations

import csv
import json
import os
import tomllib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from zsad.cli.main import main
from zsad.detector import Detector

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def pills(tmp_path_factory) -> Path:
    from zsad.data.synth import generate_dataset

    root = tmp_path_factory.mktemp("newuser")
    generate_dataset(root, categories=["pill"], n_train=3, n_test_good=8, n_test_defect=1, size=64, seed=0)
    return root / "pill"


def test_anomalous_area_is_measured_on_the_maps_own_scale(pills):
    detector = Detector("tiny-clip", object_name="pill", fuse=True, mask_rule="mad")
    results = detector.detect(pills / "test", references=pills / "train" / "good")
    assert list(results[0].evidence) == ["text", "fewshot", "mutual"]
    grids = np.stack([r.grid_map for r in results])
    pixel = results[0].pixel_threshold
    assert grids.min() < pixel < grids.max()  # a threshold on the fused map's scale, not the image score's
    top = max(results, key=lambda r: r.score if r.is_anomalous is not False else -np.inf)
    stats = top.map_stats()
    assert stats["anomalous_area"] == pytest.approx(float((top.grid_map >= pixel).mean()))
    assert stats["anomalous_area"] > 0 and top.regions
    assert f"{100 * top.regions[0].area_fraction:.1f}% of the image" in top.explanation


def test_eval_uses_references(pills, tmp_path, capsys):
    code = main(["eval", "--dataset", "mvtec", "--root", str(pills.parent), "--backbone", "tiny-dinov2",
                 "--method", "fewshot", "--references", str(pills / "train" / "good"), "--out", str(tmp_path / "e")])
    assert code == 0
    run = json.loads((tmp_path / "e" / "run.json").read_text())
    assert "pill" in json.dumps(run) and "| pill |" in capsys.readouterr().out


def test_long_phases_show_progress(pills, tmp_path, capsys):
    code = main(["detect", str(pills / "test"), "--backbone", "tiny-dinov2", "--method", "mutual",
                 "--out", str(tmp_path / "m")])
    assert code == 0
    err = capsys.readouterr().err
    for phase in ("scoring", "mutual scoring of 13 images", "mutual scoring:", "writing"):
        assert phase in err, phase


def test_overlays_carry_score_verdict_threshold_and_a_colour_bar(pills, tmp_path):
    from zsad.outputs import overlay

    detector = Detector("tiny-dinov2", method="fewshot", threshold=0.0)
    result = detector.detect(pills / "test" / "hole" / "000.png", references=pills / "train" / "good")[0]
    image = Image.open(pills / "test" / "hole" / "000.png").convert("RGB")
    picture = np.asarray(overlay(image, result, (0.0, 1.0)))
    assert picture.shape[1] == image.width and picture.shape[0] > image.height  # a legend strip under the image
    strip = picture[image.height:]
    red = (strip[..., 0] > 200) & (strip[..., 1] < 80) & (strip[..., 2] < 80)  # "anomalous" text colour
    assert red.any()
    normal = Detector("tiny-dinov2", method="fewshot", threshold=1e9).detect(
        pills / "test" / "hole" / "000.png", references=pills / "train" / "good")[0]
    strip = np.asarray(overlay(image, normal, (0.0, 1.0)))[image.height:]
    green = (strip[..., 1] > 150) & (strip[..., 0] < 80)
    assert green.any()


@pytest.mark.parametrize("argv, message", [
    (["--threshold", "nan"], "finite number"),
    (["--input-size", "0"], "positive integer"),
])
def test_bad_numbers_are_refused_by_the_parser(pills, argv, message, capsys):
    with pytest.raises(SystemExit) as stop:
        main(["detect", str(pills / "test"), "--backbone", "tiny-clip", *argv])
    assert stop.value.code == 2 and message in capsys.readouterr().err


def test_bad_files_and_placement_are_refused_before_work(pills, tmp_path, capsys):
    assert main(["detect", str(pills / "test"), "--backbone", "tiny-clip", "--pretrained", "missing.pt"]) == 2
    assert "missing.pt" in capsys.readouterr().err
    (tmp_path / "file").write_text("x")
    assert main(["detect", str(pills / "test"), "--backbone", "tiny-clip", "--out", str(tmp_path / "file")]) == 2
    assert "is an existing file" in capsys.readouterr().err
    # --references before the paths no longer swallows them
    code = main(["detect", "--references", str(pills / "train" / "good"), str(pills / "test"),
                 "--backbone", "tiny-dinov2", "--out", str(tmp_path / "o")])
    assert code == 0
    rows = list(csv.DictReader(open(tmp_path / "o" / "results.csv")))
    assert len(rows) == 13 and {r["evidence"] for r in rows} == {"fewshot"}


def test_broken_links_are_listed_and_unreadable_folders_said_so(pills, tmp_path, monkeypatch, capsys):
    folder = tmp_path / "imgs"
    folder.mkdir()
    Image.open(pills / "test" / "good" / "000.png").save(folder / "a.png")
    os.symlink(folder / "gone.png", folder / "broken.png")
    os.symlink(folder / "loop.png", folder / "loop.png")
    results = Detector("tiny-clip").detect(folder)
    assert [r.name for r in results] == ["a.png", "broken.png", "loop.png"]
    assert [r.ok for r in results] == [True, False, False]
    assert all("broken symbolic link" in r.error for r in results[1:])
    from zsad.data import images

    def refuse(path):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(os, "scandir", refuse)  # what list_images reads folders with
    with pytest.raises(Exception, match="cannot be read"):
        images.list_images([folder])


def test_messages_read_as_a_user_expects(pills, tmp_path, capsys):
    bad = tmp_path / "bad"
    bad.mkdir()
    Image.open(pills / "test" / "good" / "000.png").save(bad / "a.png")
    (bad / "b.png").write_bytes(b"")
    assert main(["detect", str(bad), "--backbone", "tiny-clip", "--out", str(tmp_path / "o")]) == 0
    captured = capsys.readouterr()
    assert "1 image scored" in captured.out
    skipped = [line for line in captured.err.splitlines() if line.startswith("skipped")]
    assert len(skipped) == 1 and skipped[0].count(str(bad / "b.png")) == 1
    record = json.loads((tmp_path / "o" / "results.json").read_text())["results"][1]
    assert record["error"] and record["explanation"].startswith("not inspected")
    from zsad.evaluation.references import draw_references

    with pytest.raises(Exception, match="drop --shots"):
        draw_references("mvtec", pills.parent, "pill", 50, 0)
    source = (ROOT / "zsad" / "backbones" / "dinov2.py").read_text()
    assert "huggingface-cli" not in source and "hf download" in source


def test_few_shot_gives_a_verdict_to_a_small_batch_with_references(pills):
    detector = Detector("tiny-dinov2")  # default method: auto
    paths = sorted((pills / "test").rglob("*.png"))[:4]
    results = detector.detect(paths, references=pills / "train" / "good")
    assert all(r.verdict in ("normal", "anomalous") for r in results)
    # the references' leave-one-out scores decide, however small the batch (3 references: rate 1/4 at best)
    assert results[0].threshold_name == "conformal_mixture" and "no batch estimate to agree with" in \
        results[0].threshold_rule
    mad = Detector("tiny-dinov2", threshold_rule="mad").detect(paths, references=pills / "train" / "good")
    assert mad[0].threshold_rule.startswith("natural threshold")  # the batch rule's fallback


def test_help_shows_defaults_and_registry_choices(capsys):
    with pytest.raises(SystemExit):
        main(["detect", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    for expected in ("tiny-dinov2", "(default: ViT-L-14-336)", "images per backbone pass", "musc", "winclip",
                     "anomalyclip", "fewshot:", "mutual:"):
        assert expected in text, expected
    with pytest.raises(SystemExit):
        main(["synth", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "(default: 10)" in text and "good test images per category" in text


def test_packaging_keeps_the_checkout_clean_and_features_in_extras():
    assert "zsad-out/" in (ROOT / ".gitignore").read_text()
    readme = (ROOT / "README.md").read_text()
    first = readme.split("```bash", 1)[1].split("```", 1)[0]
    assert "zsad-out/" in first and "demo-data" not in first
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    base = " ".join(project["dependencies"])
    assert "gradio" not in base and "peft" not in base and "datasets" not in base
    extras = project["optional-dependencies"]
    assert any("gradio" in d for d in extras["demo"]) and any("peft" in d for d in extras["train"])
    for folder in ("adapters", "demo", "presets"):
        assert (ROOT / folder).is_dir()
