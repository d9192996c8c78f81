"""What a new user trips over, round 3 (issue 20): options the chosen evidence does not read, ``auto`` and learned
prompts, messages, and the items the settings refactor fixed (kept fixed here)."""
from __future__ import annotations

import io
import os
import shutil
from contextlib import redirect_stderr, redirect_stdout
from importlib import resources
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from zsad.cli.main import main


@pytest.fixture(scope="module")
def batch(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("round3") / "images"
    folder.mkdir()
    rng = np.random.default_rng(3)
    for index in range(8):
        Image.fromarray((rng.random((40, 40, 3)) * 255).astype(np.uint8)).save(folder / f"{index}.png")
    return folder


def _warnings_of(*argv) -> list[str]:
    err = io.StringIO()
    with redirect_stdout(io.StringIO()), redirect_stderr(err):
        assert main(["detect", *map(str, argv)]) == 0
    return [line for line in err.getvalue().splitlines() if line.startswith("zsad: warning:")]


def test_an_option_the_chosen_evidence_does_not_read_is_reported_once(batch, tmp_path):
    prompts = tmp_path / "mine.yaml"
    shutil.copy(resources.files("zsad.prompts") / "winclip.yaml", prompts)
    tiny = ["--backbone", "tiny-clip", "--input-size", "64"]
    # auto on 8 images runs mutual scoring, which reads neither the text head nor V-V attention
    assert _warnings_of(batch, *tiny, "--prompts", prompts, "--out", tmp_path / "a") == [
        "zsad: warning: --prompts is not used by mutual scoring; use --method winclip, text or anomalyclip"]
    assert _warnings_of(batch, *tiny, "--vv-layers", "2", "--out", tmp_path / "b") == [
        "zsad: warning: --vv-layers is not used by mutual scoring; use --method text or anomalyclip"]
    # the same options where they are read: nothing to report
    assert _warnings_of(batch, *tiny, "--method", "text", "--prompts", prompts, "--vv-layers", "2",
                        "--out", tmp_path / "c") == []
    # another scorer's own section, and references that text scoring does not read
    assert _warnings_of(batch, *tiny, "--method", "text", "--mutual-max-refs", "3", "--references", batch / "0.png",
                        "--out", tmp_path / "d") == [
        "zsad: warning: --references is not used by text scoring; use --method winclip or fewshot",
        "zsad: warning: --mutual-max-refs is not used by text scoring; use --method mutual"]
    # what decides whether auto picks a scorer is read by every auto run
    assert _warnings_of(batch, *tiny, "--min-mutual-batch", "9", "--out", tmp_path / "e") == []


def test_what_a_scorer_reads_comes_from_its_declaration():
    """A scorer registered from outside declares what it reads beyond its section; no list in the CLI knows it."""
    from dataclasses import dataclass

    from zsad.config_fields import setting
    from zsad.scoring.base import Scorer
    from zsad.scoring.planning import unused_settings
    from zsad.scoring.registry import SCORERS

    @dataclass(frozen=True)
    class ToyConfig:
        power: float = setting(1.0, help="exponent")

    class ToyScorer(Scorer):
        name = "toy"
        reads = ("postprocess.sigma",)

    SCORERS.register("toy", config=ToyConfig, help="toy")(ToyScorer)
    try:
        given = ["postprocess.sigma", "scorers.toy.power", "text_head.prompts", "backbone.input_size"]
        assert unused_settings(given, ["text"]) == {"postprocess.sigma": ["toy"], "scorers.toy.power": ["toy"]}
        assert unused_settings(given, ["toy"]) == {"text_head.prompts": ["winclip", "text", "anomalyclip"]}
    finally:
        SCORERS.unregister("toy")


def test_auto_prefers_learned_prompts_over_the_batch_size():
    """The user's explicit learned prompts decide before the batch size: AnomalyCLIP, not mutual scoring, on 8
    images (the rule is zsad.scoring.planning's docstring)."""
    from zsad.detector import Detector
    from zsad.scoring import planning
    from zsad.scoring.text_heads import TextHead

    class Learned(TextHead):
        def describe(self):
            return {"text_head": "learned"}

    assert "learned prompts -> AnomalyCLIP" in planning.__doc__
    assert Detector("tiny-clip", text_head=Learned()).plan_evidence(8, has_references=False) == ["anomalyclip"]
    assert Detector("tiny-clip").plan_evidence(8, has_references=False) == ["mutual"]
    assert Detector("tiny-clip", text_head=Learned()).plan_evidence(8, has_references=True) == ["fewshot"]


def test_method_help_says_auto_runs_the_strongest_evidence_alone(capsys):
    with pytest.raises(SystemExit):
        main(["detect", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "auto: the strongest evidence the inputs allow, alone" in text and "with --fuse every one, fused" in text


def test_one_image_is_one_image():
    from zsad.verdict import ThresholdRule, decide_threshold

    rule = decide_threshold(np.array([0.3]), ThresholdRule()).rule
    assert "only 1 image for" in rule and "1 images" not in rule
    assert "only 2 images for" in decide_threshold(np.array([0.3, 0.4]), ThresholdRule()).rule


def test_a_broken_link_given_directly_is_called_one(tmp_path, capsys):
    os.symlink(tmp_path / "gone.png", tmp_path / "link.png")
    assert main(["detect", str(tmp_path / "link.png"), "--backbone", "tiny-clip", "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "link.png: broken symbolic link" in err


def test_processes_share_the_cores_so_torchrun_prints_no_thread_banner(monkeypatch):
    import zsad.parallel

    seen = {}

    def call(command, env):
        seen.update(command=command, env=env)
        return 0

    monkeypatch.setattr(zsad.parallel.subprocess, "call", call)
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    assert zsad.parallel.relaunch(2, ["detect", "x", "--processes", "2"]) == 0
    assert seen["env"]["OMP_NUM_THREADS"] == str(max(1, (os.cpu_count() or 1) // 2))
    assert "--processes" not in seen["command"] and seen["command"][-2:] == ["detect", "x"]


def test_demo_takes_pretrained_weights_as_its_backbone_help_says():
    import argparse

    from zsad.demo import add_demo_parser
    from zsad.demo.cli import settings_from_args

    parser = argparse.ArgumentParser(prog="zsad")
    add_demo_parser(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["demo", "--backbone", "ViT-B-16", "--pretrained", "random"])
    assert settings_from_args(args).pretrained == "random"
    assert "--pretrained" in parser._subparsers._group_actions[0].choices["demo"].format_help()


def test_unused_option_warning_names_flags_not_internal_paths():
    from zsad.config import explicit_changes, flag_of
    from zsad.config import build_config

    config = build_config(backbone="tiny-clip", dpam_layer=3, prompts="winclip")
    assert explicit_changes(config) == {"backbone.name": "tiny-clip", "backbone.vv_layers": 2,
                                        "backbone.dpam_layer": 3}  # prompts: the default, so nothing changed
    assert sorted(flag_of(p) for p in explicit_changes(config)) == ["--backbone", "--dpam-layer", "--vv-layers"]
    assert flag_of("text_head.object_name") == "--object" and flag_of("references") == "--references"


def test_a_channels_first_array_is_one_image_or_refused_with_both_fixes():
    from zsad.data.images import load_image
    from zsad.data.sources import expand_sources
    from zsad.errors import ZsadError

    rng = np.random.default_rng(0)
    chw = (rng.random((3, 20, 24)) * 255).astype(np.uint8)
    hwc = np.ascontiguousarray(chw.transpose(1, 2, 0))
    # one array is one image: read channels-first, the same pixels as its (H, W, C) transpose
    np.testing.assert_array_equal(np.asarray(load_image(chw).image), hwc)
    assert load_image(chw).original_size == (24, 20)
    # alone, 3 x H x W is as often three greyscale images: refused with both fixes, not guessed
    with pytest.raises(ZsadError, match=r"\(3, 20, 24\) is either one channels-first image or 3 greyscale images; "
                                        r"pass array.transpose\(1, 2, 0\) \(or \[array\]\) for one image, or "
                                        r"list\(array\) for 3"):
        expand_sources(chw)
    assert len(expand_sources([chw])) == 1 and len(expand_sources(list(chw))) == 3
    assert len(expand_sources(chw[:1])) == 1  # 1 x H x W: one greyscale image either way
    assert len(expand_sources(np.zeros((5, 20, 24), np.uint8))) == 5  # N greyscale images
    batch = np.stack([chw, chw[::-1]])  # N x C x H x W: each item one channels-first image
    sources = expand_sources(batch)
    assert len(sources) == 2
    np.testing.assert_array_equal(np.asarray(load_image(sources[1].item).image), hwc[..., ::-1])
    assert len(expand_sources(np.zeros((2, 20, 24), np.uint8))) == 2  # 2 channels are no image: 2 greyscale ones


def test_random_clip_weights_asked_for_are_built_without_open_clips_warning(caplog):
    """open_clip's "initialized randomly" record is dropped at its one call; other records and later ones pass."""
    import logging

    import open_clip

    from zsad.backbones.clip import RANDOM_INIT_MESSAGE, load_open_clip

    calls = []

    def create_model(name, pretrained=None, **kwargs):
        calls.append(pretrained)
        logging.warning(f"{RANDOM_INIT_MESSAGE} '{name}'. Model initialized randomly.")  # as open_clip's factory
        logging.warning("something else")
        return "model"

    original = open_clip.create_model
    open_clip.create_model = create_model
    try:
        assert load_open_clip("ViT-B-16", None)[0] == "model" and calls == [None]
    finally:
        open_clip.create_model = original
    logging.warning(f"{RANDOM_INIT_MESSAGE} outside the call")
    assert [r.getMessage() for r in caplog.records] == ["something else", f"{RANDOM_INIT_MESSAGE} outside the call"]
    assert not logging.getLogger().filters


def test_adapter_weights_and_memories_are_written_readable_like_the_other_files(tmp_path):
    import torch

    from zsad.learning.adapters import AdapterConfig, read_adapter, save_adapter
    from zsad.scoring.reference import ReferenceMemory

    umask = os.umask(0o022)
    os.umask(umask)
    config = AdapterConfig(base_model={"name": "tiny-clip"})
    folder = save_adapter(tmp_path / "a", config, {"prompt_learner.ctx": torch.ones(2, 3)})
    mode = lambda path: path.stat().st_mode & 0o777  # noqa: E731
    assert mode(folder / "weights.safetensors") == mode(folder / "config.json") == 0o666 & ~umask
    assert torch.equal(read_adapter(folder)[1]["prompt_learner.ctx"], torch.ones(2, 3))
    memory = ReferenceMemory.build(torch.rand(2, 1, 3, 3, 8))
    memory.save(tmp_path / "m.safetensors")
    assert mode(tmp_path / "m.safetensors") == 0o666 & ~umask
    assert torch.equal(ReferenceMemory.load(tmp_path / "m.safetensors").bank, memory.bank)


def test_the_readme_links_nothing_outside_the_repository():
    import re

    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    assert "../" not in readme and "/work/" not in readme
    for target in re.findall(r"\]\(([^)\s]+)\)", readme):
        assert target.startswith(("http://", "https://", "#")) or not target.startswith(("/", "~")), target
    assert "(docs/design.md)" in readme
