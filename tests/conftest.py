"""Shared fixtures. The suite never touches the network: HF_HUB_OFFLINE is set before anything imports the hub."""
import os
import sys

os.environ["HF_HUB_OFFLINE"] = "1"

from pathlib import Path  # noqa: E402

import pytest  # noqa: E402
import torch  # noqa: E402


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


@pytest.fixture(scope="session")
def tiny_clip():
    from zsad.backbones import load_backbone

    return load_backbone("tiny-clip")


@pytest.fixture(scope="session")
def synth_root(tmp_path_factory) -> Path:
    """A small planted-defect dataset shared by the integration tests."""
    from zsad.data.synth import generate_dataset

    root = tmp_path_factory.mktemp("synth")
    return generate_dataset(root, categories=["pill"], n_train=2, n_test_good=4, n_test_defect=1, size=96, seed=0)


@pytest.fixture(scope="session")
def tiny_adapter(tmp_path_factory) -> Path:
    """A learned-prompt adapter with fixed random prompts (no training, so nothing but the seed decides them), on
    tiny-clip in AnomalyCLIP's backbone setting scaled to 4 blocks (DPAM layer 3, 64 px, layers 2 and 4)."""
    from zsad.backbones import BackboneSpec, load_backbone
    from zsad.learning.adapters import AdapterConfig, base_model_description, save_adapter
    from zsad.learning.prompt_learner import AnomalyCLIPPromptLearner, PromptLearnerConfig

    spec = BackboneSpec("tiny-clip", input_size=64, layers=(2, 4), dpam_layer=3, cls_ln_post=False,
                        pos_interpolation="bilinear")
    backbone = load_backbone(spec)
    config = PromptLearnerConfig(depth=2, n_ctx=4, t_n_ctx=2)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(7)
        learner = AnomalyCLIPPromptLearner(backbone.model, backbone.tokenizer, config)
    out = tmp_path_factory.mktemp("adapters") / "regression"
    save_adapter(out, AdapterConfig(
        prompt_learner=config.to_dict(),
        backbone={"input_size": 64, "layers": [2, 4], "vv_layers": 2, "dpam_layer": 3,
                  "pos_interpolation": "bilinear", "cls_ln_post": False},
        base_model=base_model_description(backbone),
    ), {f"prompt_learner.{k}": v for k, v in learner.state_dict().items()})
    return out


SHARED_DATA = Path(__file__).resolve().parents[1] / ".." / "shared" / "data"

# ``tests/standin_detector.py`` (a duck-typed detector for evaluation and report tests) importable as
# ``standin_detector``: pytest runs with --import-mode=importlib, which puts no test folder on sys.path.
if "standin_detector" not in sys.modules:
    import importlib.util

    _spec = importlib.util.spec_from_file_location("standin_detector", Path(__file__).parent / "standin_detector.py")
    _module = importlib.util.module_from_spec(_spec)
    sys.modules["standin_detector"] = _module
    _spec.loader.exec_module(_module)
