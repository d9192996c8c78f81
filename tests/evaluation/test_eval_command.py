"""``zsad eval`` in-process with a stand-in detector: option and data errors come before the model is built, as one
``zsad: error:`` line; a yes/no folder runs with ``--normal-dirs``."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from standin_detector import StandInDetector

from zsad.cli import main as cli
from zsad.evaluation import draw_reference_lists, save_reference_lists


@pytest.fixture(scope="module")
def synth(tmp_path_factory) -> Path:
    from zsad.data.synth import generate_dataset

    root = tmp_path_factory.mktemp("evalcmd")
    return generate_dataset(root / "data", categories=["pill"], n_train=3, n_test_good=3, n_test_defect=1, size=64)


@pytest.fixture
def built(monkeypatch) -> list:
    """Every detector the command builds (a stand-in), so a test can tell whether the model would have loaded."""
    made: list = []

    def make(args, config=None):
        made.append(StandInDetector())
        return made[-1]

    monkeypatch.setattr(cli, "make_detector", make)
    return made


def _eval(capsys, *args) -> tuple[int, str, str]:
    code = cli.main(["eval", "--backbone", "tiny-clip", *map(str, args)])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture(scope="module")
def yes_no(synth: Path, tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("yesno") / "parts"
    shutil.copytree(synth / "pill" / "test" / "good", folder / "no")
    shutil.copytree(synth / "pill" / "test" / "hole", folder / "yes")
    return folder


def test_yes_no_folder_fails_before_the_model_and_runs_with_normal_dirs(yes_no: Path, built, capsys,
                                                                        tmp_path: Path) -> None:
    code, _, err = _eval(capsys, "--dataset", "folder", "--root", yes_no, "--out", tmp_path / "a")
    assert code == 2 and not built and err.count("\n") == 1 and "Traceback" not in err
    assert err.startswith("zsad: error: ") and "have no label" in err and "--normal-dirs no" in err
    code, out, err = _eval(capsys, "--dataset", "folder", "--root", yes_no, "--normal-dirs", "no",
                           "--out", tmp_path / "b")
    assert code == 0, err
    assert len(built) == 1 and "| parts |" in out
    run = json.loads((tmp_path / "b" / "run.json").read_text())
    assert {(r["label"], r["defect"]) for r in run["records"]} == {(0, None), (1, "yes")}
    assert run["description"]["dataset_options"] == {"normal_dirs": "no"}


def test_shots_on_a_folder_is_refused_before_the_model(synth: Path, built, capsys, tmp_path: Path) -> None:
    code, _, err = _eval(capsys, "--dataset", "folder", "--root", synth / "pill" / "test", "--shots", "1",
                         "--out", tmp_path / "o")
    assert code == 2 and not built
    assert "no train split" in err and "--references DIR" in err and "'split' column" in err


def test_a_reference_list_naming_a_test_image_is_refused_before_the_model(synth: Path, built, capsys,
                                                                          tmp_path: Path) -> None:
    lists = draw_reference_lists("mvtec", synth, ["pill"], shots=(1,), seeds=(0,))
    lists.add("pill", 1, 0, [min((synth / "pill" / "test" / "good").glob("*.png"))])
    path = save_reference_lists(lists, tmp_path / "lists.json")
    code, _, err = _eval(capsys, "--dataset", "mvtec", "--root", synth, "--shots", "1", "--reference-lists", path,
                         "--out", tmp_path / "o")
    assert code == 2 and not built and "are test images of this run" in err
    code, _, err = _eval(capsys, "--dataset", "mvtec", "--root", synth, "--references", synth / "pill" / "test",
                         "--out", tmp_path / "o")
    assert code == 2 and not built and "--references: " in err and "are test images" in err


def test_reference_lists_are_written_once_and_read_back(synth: Path, built, capsys, tmp_path: Path) -> None:
    path = tmp_path / "lists.json"
    args = ["--dataset", "mvtec", "--root", synth, "--shots", "2", "--seeds", "0", "1", "--reference-lists", path]
    code, _, err = _eval(capsys, *args, "--out", tmp_path / "a")
    assert code == 0 and f"wrote reference lists to {path}" in err
    code, _, err = _eval(capsys, *args, "--out", tmp_path / "b")
    assert code == 0 and "wrote reference lists" not in err
    a, b = (json.loads((tmp_path / x / "run.json").read_text())["description"] for x in "ab")
    assert a["reference_lists"] == b["reference_lists"] and a["reference_files"] == b["reference_files"]
    assert all(Path(f).parent.parent.name == "train" for item in a["reference_lists"] for f in item["files"])
    assert b["reference_source"].endswith(f"(lists read from {path})")


def test_option_errors_come_first(synth: Path, built, capsys, tmp_path: Path) -> None:
    code, _, err = _eval(capsys, "--dataset", "mvtec", "--root", synth, "--normal-dirs", "no", "--out", tmp_path)
    assert code == 2 and not built and "--normal-dirs is an option of the folder layout, not of --dataset mvtec" in err
    code, _, err = _eval(capsys, "--dataset", "mvtec", "--root", synth, "--reference-lists", tmp_path / "x.json",
                         "--out", tmp_path / "o")
    assert code == 2 and not built and "--reference-lists holds k-shot lists; pass --shots K" in err
    code, _, err = _eval(capsys, "--dataset", "folder", "--root", tmp_path / "missing", "--out", tmp_path / "o")
    assert code == 2 and not built and "missing" in err
