"""What a run records about its references and learned prompts, and the runs it refuses."""
from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import pytest
from standin_detector import StandInDetector

from zsad.errors import ZsadError
from zsad.evaluation import draw_reference_lists, evaluate, save_reference_lists
from zsad.evaluation.provenance import trained_on


@pytest.fixture(scope="module")
def synth(tmp_path_factory) -> Path:
    from zsad.data.synth import generate_dataset

    root = tmp_path_factory.mktemp("prov")
    return generate_dataset(root / "data", categories=["pill"], n_train=4, n_test_good=3, n_test_defect=1, size=96)


def _sha(path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def test_k_shot_and_given_references_are_recorded_with_hashes(synth: Path, tmp_path: Path) -> None:
    run = evaluate(StandInDetector(), "mvtec", synth, shots=2, seeds=(0, 1))
    used = {str(p) for seed in ("0", "1") for p in run.description["references"]["lists"]["pill"]["2"][seed]}
    files = run.description["reference_files"]
    assert {Path(f["path"]).relative_to(synth).as_posix() for f in files} == used
    assert all(f["sha256"] == _sha(f["path"]) for f in files)
    assert run.description["good_images"] is None

    folder = tmp_path / "refs"
    folder.mkdir()
    for path in sorted((synth / "pill" / "train" / "good").glob("*.png"))[:2]:
        shutil.copy(path, folder / path.name)
    detector = StandInDetector()
    run = evaluate(detector, "mvtec", synth, good_images=[str(folder)])
    assert run.description["good_images"] == [str(folder)] and run.description["shots"] == 0
    assert [Path(f["path"]).name for f in run.description["reference_files"]] == sorted(
        p.name for p in folder.iterdir())
    assert all(f["sha256"] == _sha(f["path"]) for f in run.description["reference_files"])
    assert detector.calls[0]["references"] == [str(folder)]
    assert run.description["evidence"] == ["text"]


def test_references_that_are_test_images_are_refused(synth: Path, tmp_path: Path) -> None:
    folder = tmp_path / "refs"
    folder.mkdir()
    test_image = sorted((synth / "pill" / "test" / "good").glob("*.png"))[0]
    shutil.copy(test_image, folder / "renamed.png")  # same bytes under another name
    with pytest.raises(ZsadError, match="1 reference image.*are test images of this run.*train split"):
        evaluate(StandInDetector(), "mvtec", synth, good_images=[str(folder)])
    with pytest.raises(ZsadError, match="are test images"):
        evaluate(StandInDetector(), "mvtec", synth, good_images=[str(test_image)])


def test_reference_lists_of_another_root_are_refused(synth: Path, tmp_path: Path) -> None:
    other = tmp_path / "other" / "data"
    shutil.copytree(synth, other)
    lists = save_reference_lists(draw_reference_lists("mvtec", other, ["pill"], shots=(1,), seeds=(0,)),
                                 tmp_path / "lists.json")
    with pytest.raises(ZsadError, match="drawn for mvtec at .*other/data, this run is mvtec at"):
        evaluate(StandInDetector(), "mvtec", synth, shots=1, references=lists)
    assert evaluate(StandInDetector(), "mvtec", other, shots=1, references=lists).description["shots"] == 1


def test_trained_on_reads_the_adapter_card(tmp_path: Path) -> None:
    adapter = tmp_path / "my-adapter"
    adapter.mkdir()
    (adapter / "config.json").write_text(json.dumps({"format": "zsad-adapter"}))
    (adapter / "card.json").write_text(json.dumps({"data": {"kind": "visa", "root": "/d/VisA", "categories": None},
                                                   "source": "zsad train"}))
    settings = {"text_head": {"prompts": f"learned:{adapter}"},
                "ran": {"text_head": {"text_head": "learned", "adapter": "x"}}}
    assert trained_on(settings) == {"adapter": str(adapter), "source": "zsad train",
                                    "data": {"kind": "visa", "root": "/d/VisA", "categories": None}}
    official = {"text_head": {"prompts": "learned:/ckpt/epoch_15.pth"}, "ran": {"text_head": {"text_head": "learned"}}}
    assert trained_on(official) == {"adapter": "/ckpt/epoch_15.pth", "data": None, "source": None}
    assert trained_on({"text_head": {"prompts": "winclip"}, "ran": {"text_head": {"text_head": "prompts"}}}) is None
