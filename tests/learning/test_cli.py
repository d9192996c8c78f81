"""The learning CLI parsers and runners (wired into ``zsad`` by zsad.cli.main)."""
import argparse
import json

import torch
from official_anomalyclip import official_prompt_buffers, random_official_state

from zsad.backbones import BackboneSpec, load_backbone
from zsad.learning.cli import add_adapters_parser, add_train_parser, run_adapters, run_train


def _parser():
    parser = argparse.ArgumentParser("zsad")
    sub = parser.add_subparsers(dest="command")
    add_train_parser(sub)
    add_adapters_parser(sub)
    return parser


def test_train_and_import_commands(tmp_path, capsys):
    from zsad.data.synth import generate_dataset

    root = generate_dataset(tmp_path / "d", categories=["pill"], n_train=1, n_test_good=2, n_test_defect=1, size=64)
    tiny = ["--backbone", "tiny-clip", "--input-size", "64", "--dpam-layer", "3"]
    args = _parser().parse_args(["train", "--data", str(root), "--out", str(tmp_path / "a"), "--epochs", "1",
                                 "--depth", "2", "--n-ctx", "4", "--t-n-ctx", "2", "--quiet", *tiny])
    assert run_train(args) == 0 and (tmp_path / "a" / "weights.safetensors").is_file()
    backbone = load_backbone(BackboneSpec("tiny-clip"))
    state = random_official_state(32, depth=3)
    state.update(official_prompt_buffers(backbone.model, backbone.tokenizer, 12))
    torch.save({"prompt_learner": state}, tmp_path / "epoch_15.pth")
    args = _parser().parse_args(["adapters", "import-anomalyclip", str(tmp_path / "epoch_15.pth"),
                                 "--out", str(tmp_path / "b"), *tiny])
    assert run_adapters(args) == 0
    config = json.loads((tmp_path / "b" / "config.json").read_text())
    # the import records the setting it was given (before: always the official ViT-L one, whatever the options)
    assert config["prompt_learner"]["depth"] == 3
    assert (config["backbone"]["dpam_layer"], config["backbone"]["input_size"]) == (3, 64)
    card = json.loads((tmp_path / "b" / "card.json").read_text())
    assert "input_size 64 (official 518)" in card["note"] and "dpam_layer 3 (official 20)" in card["note"]
    assert run_adapters(_parser().parse_args(["adapters", "show", str(tmp_path / "b")])) == 0
    assert "official AnomalyCLIP checkpoint" in capsys.readouterr().out


def test_train_scales_anomalyclips_v_v_blocks_to_the_backbone_depth(tmp_path):
    """Without --vv-layers/--dpam-layer, training uses V-V in 19/24 of the blocks (AnomalyCLIP's DPAM_layer 20 on
    ViT-L's 24): 3 of tiny-clip's 4. Before, the fixed default DPAM_layer 20 failed on any smaller model."""
    from zsad.data.synth import generate_dataset

    root = generate_dataset(tmp_path / "d", categories=["pill"], n_train=1, n_test_good=1, n_test_defect=1, size=64)
    args = _parser().parse_args(["train", "--data", str(root), "--out", str(tmp_path / "a"), "--epochs", "1",
                                 "--depth", "2", "--n-ctx", "4", "--t-n-ctx", "2", "--quiet", "--backbone",
                                 "tiny-clip", "--input-size", "64"])
    assert run_train(args) == 0
    config = json.loads((tmp_path / "a" / "config.json").read_text())
    assert (config["backbone"]["vv_layers"], config["backbone"]["dpam_layer"]) == (3, 4)
