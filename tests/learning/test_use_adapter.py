"""A trained adapter in use: API, `zsad detect`, `zsad eval` and the demo's prompt list, with the adapter's own
base model and backbone settings unless options say otherwise."""
import csv
import json
import os
import warnings

import pytest
import torch

from zsad.backbones import BackboneSpec, load_backbone
from zsad.cli.main import main
from zsad.config import build_config
from zsad.detector import Detector
from zsad.learning.data import layout_items
from zsad.learning.prompt_learner import PromptLearnerConfig
from zsad.learning.train import TrainConfig, train
from zsad.scoring.anomalyclip import AnomalyCLIPConfig, anomalyclip_scores
from zsad.scoring.text_heads import load_text_head

SPEC = BackboneSpec("tiny-clip", input_size=64, layers=(2, 4), dpam_layer=3, cls_ln_post=False,
                    pos_interpolation="bilinear")


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    from zsad.data.synth import generate_dataset

    root = tmp_path_factory.mktemp("use")
    data = generate_dataset(root / "data", categories=["pill"], n_train=1, n_test_good=2, n_test_defect=1, size=64)
    config = TrainConfig(epochs=1, batch_size=4, lr=0.01, prompt_learner=PromptLearnerConfig(depth=2, n_ctx=4,
                                                                                             t_n_ctx=2))
    train(load_backbone(SPEC), layout_items("mvtec", data), root / "adapters" / "pills", config, progress=False)
    return data, root / "adapters" / "pills"


def test_without_an_adapter_the_preset_settings_stand():
    assert build_config(preset="anomalyclip").backbone.input_size == 518


def test_api_detects_with_the_adapter_as_trained(trained):
    data, adapter = trained
    config = build_config(preset="anomalyclip", prompts=f"learned:{adapter}")
    assert (config.backbone.name, config.backbone.pretrained, config.backbone.input_size) == ("tiny-clip", "random", 64)
    assert (config.backbone.layers, config.backbone.dpam_layer, config.backbone.vv_layers) == ((2, 4), 3, 2)
    detector = Detector(preset="anomalyclip", prompts=f"learned:{adapter}")
    images = sorted((data / "pill" / "test").glob("*/*.png"))
    results = detector.detect(images)
    assert all(r.ok and list(r.evidence) == ["anomalyclip"] for r in results), [r.error for r in results]
    # the scores are the AnomalyCLIP formula with the learned rows, on a backbone built as in training
    backbone = load_backbone(SPEC)
    text = load_text_head(f"learned:{adapter}", backbone).embeddings("object")
    assert not text.requires_grad
    items = layout_items("mvtec", data)
    from zsad.data.images import load_image
    from zsad.learning.data import TrainDataset

    batch = torch.stack([TrainDataset([i], 64, backbone.mean, backbone.std)[0][0] for i in items
                         if str(i.image) == str(images[0])])
    with torch.no_grad():
        expected = anomalyclip_scores(backbone(batch), text, AnomalyCLIPConfig()).scores
    assert load_image(images[0]).image.size == (64, 64)
    assert results[0].score == pytest.approx(float(expected[0]), abs=1e-5)
    assert detector.describe()["ran"]["text_head"]["adapter"] == "pills"


def test_explicit_options_win_with_a_warning(trained):
    _, adapter = trained
    with pytest.warns(UserWarning, match=r"input_size 128 \(option\) replaces 64 \(adapter pills\); the learned "
                                         "prompts then run outside the setting they were trained in"):
        config = build_config(prompts=f"learned:{adapter}", input_size=128)
    assert config.backbone.input_size == 128
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        build_config(prompts=f"learned:{adapter}", input_size=64, backbone="tiny-clip")


def test_cli_detect_and_eval_with_the_adapter(trained, tmp_path, capsys):
    data, adapter = trained
    assert main(["detect", str(data / "pill" / "test"), "--preset", "anomalyclip", "--prompts",
                 f"learned:{adapter}", "--out", str(tmp_path / "d")]) == 0
    rows = list(csv.DictReader(open(tmp_path / "d" / "results.csv")))
    assert len(rows) == 7 and all(r["evidence"] == "anomalyclip" and not r["error"] for r in rows)
    assert main(["eval", "--dataset", "mvtec", "--root", str(data), "--preset", "anomalyclip", "--prompts",
                 f"learned:{adapter}", "--out", str(tmp_path / "e")]) == 0
    run = json.loads((tmp_path / "e" / "run.json").read_text())
    assert "learned" in json.dumps(run)
    capsys.readouterr()
    assert main(["detect", str(data / "pill" / "test" / "good"), "--prompts", f"learned:{adapter}",
                 "--input-size", "128", "--out", str(tmp_path / "w")]) == 0
    assert "zsad: warning: settings override a preset or adapter: input_size 128 (option) replaces 64 (adapter " \
           "pills); the learned prompts then run outside the setting they were trained in" in capsys.readouterr().err


def test_demo_lists_adapters_under_the_working_folder(trained, monkeypatch):
    from zsad.demo.session import prompt_choices

    monkeypatch.chdir(trained[1].parent.parent)
    assert "learned:pills" in prompt_choices()
    monkeypatch.chdir(os.path.dirname(__file__))
    assert not any(c.startswith("learned:") for c in prompt_choices())
