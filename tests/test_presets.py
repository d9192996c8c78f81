"""Presets as data: every built-in preset resolves, options override its fields, results record every setting."""
from __future__ import annotations

import json
from dataclasses import asdict, fields

import pytest

from zsad.config import DetectorConfig, build_config
from zsad.errors import ZsadError
from zsad.presets import list_presets, load_preset


def test_every_builtin_preset_resolves_and_names_its_paper():
    assert {"winclip", "winclip+", "anomalyclip", "musc", "anomalydino", "zsad"} <= set(list_presets())
    for name in list_presets():
        preset = load_preset(name)
        config = build_config(preset=name)
        assert config.preset == name and preset.paper and preset.protocol
        assert config.backbone.name == preset.options["backbone"]


def test_preset_fields_follow_the_published_settings():
    musc = build_config(preset="musc")
    assert musc.method == "mutual" and musc.backbone.input_size == 518 and musc.backbone.layers == (6, 12, 18, 24)
    assert musc.backbone.quick_gelu is False and musc.sigma == 0 and musc.align_corners is True
    assert musc.postprocess.sigma == 0 and musc.scorer("mutual").radii == (1, 3, 5)
    assert musc.mutual.radii == (1, 3, 5) and musc.mutual.interval == (0.0, 0.3) and musc.mutual.rscin_k == (1, 2, 3)
    assert musc.mutual.image_score_from == "upsampled_max" and musc.mutual.rscin_clamp_negative is False
    clip = build_config(preset="anomalyclip")
    assert clip.backbone.dpam_layer == 20 and clip.backbone.pos_interpolation == "bilinear"
    assert clip.backbone.cls_ln_post is False and clip.method == "anomalyclip"
    winclip = build_config(preset="winclip")
    assert winclip.backbone.windows == (2, 3) and winclip.backbone.input_size == 240 and winclip.method == "winclip"
    assert build_config(preset="zsad").fuse is True
    dino = build_config(preset="musc-dinov2")
    assert dino.resize == "bilinear" and dino.mutual.rscin_cls == "raw" and dino.backbone.name == "dinov2-large"


def test_explicit_options_override_the_preset_and_user_files_work(tmp_path):
    config = build_config(preset="musc", input_size=336, rscin_dataset="visa", mutual_groups=1)
    assert config.backbone.input_size == 336 and config.mutual.rscin_k == (1, 8, 9) and config.mutual.groups == 1
    assert config.mutual.image_score_from == "upsampled_max"  # untouched fields keep the preset's value
    mine = tmp_path / "mine.yaml"
    mine.write_text("name: mine\noptions:\n  backbone: tiny-clip\n  method: text\n  mutual: {radii: [1]}\n")
    assert build_config(preset=str(mine)).mutual.radii == (1,)
    with pytest.raises(ZsadError, match="unknown preset 'nope'"):
        build_config(preset="nope")
    bad = tmp_path / "bad.yaml"
    bad.write_text("options:\n  mutual: {not_a_field: 1}\n")
    with pytest.raises(ZsadError, match="unknown setting mutual.not_a_field"):
        build_config(preset=str(bad))
    assert build_config() == DetectorConfig()


def test_detect_with_the_musc_preset_records_every_resolved_setting(tmp_path):
    from zsad.cli.main import main
    from zsad.data.synth import generate_dataset

    generate_dataset(tmp_path / "data", categories=["grain"], n_train=0, n_test_good=6, n_test_defect=1, size=64)
    out = tmp_path / "out"
    # the published backbone needs weights; the tiny model of the same architecture runs the same code path
    code = main(["detect", str(tmp_path / "data" / "grain" / "test"), "--preset", "musc", "--backbone", "tiny-clip",
                 "--input-size", "224", "--layers", "1", "2", "3", "4", "--out", str(out)])
    assert code == 0
    settings = json.loads((out / "results.json").read_text())["settings"]
    assert settings["preset"] == "musc"
    assert {f.name for f in fields(DetectorConfig) if f.name != "origins"} <= set(settings)
    assert set(asdict(DetectorConfig().mutual)) <= set(settings["scorers"]["mutual"])
    assert settings["scorers"]["mutual"]["image_score_from"] == "upsampled_max"
    assert settings["ran"]["evidence"]["mutual"]["groups"] == 1 and settings["ran"]["postprocess"]["sigma"] == 0
    assert settings["origins"]["scorers.mutual.image_score_from"] == "preset musc"
    assert settings["backbone"]["input_size"] == 224 and settings["backbone"]["quick_gelu"] is False


def test_the_musc_preset_maps_are_the_official_upsampling(tmp_path):
    """Official MuSc maps: bilinear with align_corners=True to the input size, no Gaussian."""
    import numpy as np

    from zsad.data.synth import generate_dataset
    from zsad.detector import Detector
    from zsad.scoring.mutual import official_postprocess

    generate_dataset(tmp_path, categories=["grain"], n_train=0, n_test_good=3, n_test_defect=0, size=64)
    detector = Detector(preset="musc", backbone="tiny-clip", input_size=224, layers=(1, 2, 3, 4))
    result = detector.detect(tmp_path / "grain" / "test")[0]
    expected = official_postprocess(224).apply(result.grid_map, (224, 224))
    np.testing.assert_allclose(result.map_at((224, 224)), expected, atol=1e-6)
    assert result.postprocess == official_postprocess(224)


def test_detector_takes_a_preset_and_a_definition_in_words():
    from zsad.detector import Detector

    detector = Detector(preset="zsad", backbone="tiny-clip", input_size=224,
                        define="holes are defects; colour differences are normal")
    assert detector.config.fuse and detector.reasoning.definition.defects
    with pytest.raises(ZsadError, match="not both"):
        Detector(config=DetectorConfig(), preset="musc")
