"""Issue 8: prompts learned on two generated categories carry over to the two others (tiny random CLIP).

Random weights hold no shared notion of "damage", so transfer exists only where the features allow it:
``eval/cross_category.py`` runs every split and seed and shows that training on one texture and one object
transfers to the other texture and object, while training on two textures (or two objects) does not; its
logistic-regression probe shows that no linear direction in the features transfers there either. This test pins the
two texture+object splits of data seed 0 with the benchmark's settings.
"""
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "eval"))
from cross_category import backbone, generate, train_and_compare  # noqa: E402


@pytest.fixture(scope="module")
def synth(tmp_path_factory):
    return generate(tmp_path_factory.mktemp("cross"), seed=0)


@pytest.mark.parametrize("seen, unseen", [(("weave", "pill"), ("grain", "washer")),
                                          (("grain", "pill"), ("weave", "washer"))])
def test_learned_prompts_beat_hand_written_on_unseen_categories(synth, tmp_path, seen, unseen):
    row = train_and_compare(backbone(), synth, seen, unseen, tmp_path / "adapter")
    assert row["loss_last_epoch"] < 0.7 * row["loss_first_epoch"]
    assert row["seen_p_auroc_learned"] > row["seen_p_auroc_hand"] + 0.1
    assert row["unseen_p_auroc_learned"] > row["unseen_p_auroc_hand"] + 0.2
    assert row["unseen_p_auroc_learned"] > 0.5  # above chance, not only the hand prompts' random sign undone
