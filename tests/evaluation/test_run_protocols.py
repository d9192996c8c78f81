"""eval/run_protocols.py: every data-set option reaches the layout, runs are named uniquely, reference lists of
another root are refused."""
from __future__ import annotations

import csv
import json
import shutil
import sys
from pathlib import Path

import pytest
from standin_detector import StandInDetector

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "eval"))
import run_protocols  # noqa: E402


def standin(*args, **kwargs) -> StandInDetector:
    return StandInDetector()


@pytest.fixture(scope="module")
def twins(tmp_path_factory) -> tuple[Path, Path]:
    """Two different data sets with the same base name."""
    from zsad.data.synth import generate_dataset

    base = tmp_path_factory.mktemp("twins")
    a = generate_dataset(base / "a" / "data", categories=["pill"], n_train=2, n_test_good=2, n_test_defect=1,
                         size=96, seed=0)
    b = generate_dataset(base / "b" / "data", categories=["pill"], n_train=2, n_test_good=3, n_test_defect=1,
                         size=96, seed=1)
    return a, b


def test_data_options_are_parsed_per_data_set(tmp_path: Path) -> None:
    visa = run_protocols.parse_data(f"visa={tmp_path},split_csv={tmp_path / 's.csv'}")
    assert visa.kind == "visa" and visa.options == {"split_csv": str(tmp_path / "s.csv")}
    realiad = run_protocols.parse_data(f"realiad={tmp_path},json_dir=/j,image-root=/i")
    assert realiad.options == {"json_dir": "/j", "image_root": "/i"}
    assert run_protocols.parse_data(f"hf={tmp_path},cache_dir=/c").options == {"cache_dir": "/c"}
    with pytest.raises(SystemExit, match="'json_dir=/j' is not an option of visa.*split_csv="):
        run_protocols.parse_data(f"visa={tmp_path},json_dir=/j")
    with pytest.raises(SystemExit, match="write KIND=ROOT"):
        run_protocols.parse_data("mvtec")
    # another split file is another data set: another label
    other = run_protocols.parse_data(f"visa={tmp_path},split_csv={tmp_path / 't.csv'}")
    assert other.label != visa.label and other.label.startswith(f"visa-{tmp_path.name}-")


def test_same_base_name_runs_do_not_overwrite_each_other(twins, tmp_path: Path) -> None:
    a, b = twins
    out = tmp_path / "out"
    argv = ["--out", str(out), "--no-plots", "--protocols", "zero-shot-text", "1-shot", "--data", f"mvtec={a}",
            f"mvtec={b}"]
    assert run_protocols.main(argv, make_detector=standin) == 0
    index = json.loads((out / "index.json").read_text())["runs"]
    labels = sorted({row["data"] for row in index})
    assert len(labels) == 2 and all(label.startswith("mvtec-data-") for label in labels)
    for label, root in zip([next(r["data"] for r in index if r["root"] == str(x)) for x in (a, b)], (a, b)):
        run = json.loads((out / "runs" / label / "zero-shot-text" / "run.json").read_text())
        assert run["description"]["root"] == str(root)
        assert len(run["records"]) == sum(1 for _ in (root / "pill" / "test").rglob("*.png"))
        lists = json.loads((out / "runs" / label / "reference_lists.json").read_text())
        assert lists["root"] == str(root)
        assert (out / "reports" / label / "1-shot" / "report.html").is_file()
    with pytest.raises(SystemExit, match="given twice"):
        run_protocols.main(["--out", str(out), "--data", f"mvtec={a}", f"mvtec={a}"], make_detector=standin)


def test_reference_lists_of_another_root_are_refused(twins, tmp_path: Path) -> None:
    a, b = twins
    out = tmp_path / "out"
    argv = ["--out", str(out), "--no-plots", "--protocols", "1-shot", "--data", f"mvtec={a}"]
    assert run_protocols.main(argv, make_detector=standin) == 0
    label_a = run_protocols.parse_data(f"mvtec={a}").label
    label_b = run_protocols.parse_data(f"mvtec={b}").label
    (out / "runs" / label_b).mkdir(parents=True)
    shutil.copy(out / "runs" / label_a / "reference_lists.json", out / "runs" / label_b / "reference_lists.json")
    with pytest.raises(SystemExit, match=f"drawn for mvtec at {a}, not mvtec at {b}; delete it"):
        run_protocols.main(["--out", str(out), "--no-plots", "--protocols", "1-shot", "--data", f"mvtec={b}"],
                           make_detector=standin)


def test_split_csv_reaches_the_visa_layout(twins, tmp_path: Path) -> None:
    """A VisA-layout data set whose split file is not at the default place runs only if split_csv is passed on
    (to the reference draw and to the evaluation)."""
    a, _ = twins
    rows = []
    for image in sorted((a / "pill").rglob("*.png")):
        parts = image.relative_to(a / "pill").parts
        if parts[0] == "ground_truth":
            continue
        split, label = parts[0], "normal" if parts[1] == "good" else "anomaly"
        mask = ""
        if label == "anomaly":
            mask = str((a / "pill" / "ground_truth" / parts[1] / f"{image.stem}_mask.png").relative_to(a))
        rows.append({"object": "pill", "split": split, "label": label, "image": str(image.relative_to(a)),
                     "mask": mask})
    split_csv = tmp_path / "elsewhere.csv"
    with split_csv.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=["object", "split", "label", "image", "mask"])
        writer.writeheader()
        writer.writerows(rows)
    out = tmp_path / "out"
    argv = ["--out", str(out), "--no-plots", "--protocols", "1-shot", "--data", f"visa={a},split_csv={split_csv}"]
    assert run_protocols.main(argv, make_detector=standin) == 0
    run = json.loads(next((out / "runs").glob("visa-data-*/1-shot/run.json")).read_text())
    assert run["description"]["dataset_options"] == {"split_csv": str(split_csv)}
    assert len(run["records"]) == 3 * sum(1 for r in rows if r["split"] == "test")  # seeds 0, 1, 2
    assert {Path(f["path"]).parts[-3] for f in run["description"]["reference_files"]} == {"train"}


def test_folder_options_and_k_shot_skipped_without_a_train_split(twins, tmp_path: Path) -> None:
    """A folder has no train split: its k-shot protocols are not run (the index says why), the others are;
    ``normal_dirs=no,healthy`` keeps its comma."""
    a, _ = twins
    folder = tmp_path / "parts" / "test"
    shutil.copytree(a / "pill" / "test" / "good", folder / "no")
    shutil.copytree(next(p for p in (a / "pill" / "test").iterdir() if p.name != "good"), folder / "yes")
    parsed = run_protocols.parse_data(f"folder={folder},normal_dirs=no,healthy")
    assert parsed.options == {"normal_dirs": "no,healthy"}
    assert run_protocols.DATA_OPTIONS["folder"] == ("normal_dirs",)
    out = tmp_path / "out"
    argv = ["--out", str(out), "--no-plots", "--protocols", "zero-shot-text", "1-shot", "--data",
            f"folder={folder},normal_dirs=no"]
    assert run_protocols.main(argv, make_detector=standin) == 0
    index = json.loads((out / "index.json").read_text())
    assert [row["protocol"] for row in index["runs"]] == ["zero-shot-text"]
    assert [row["protocol"] for row in index["skipped"]] == ["1-shot"]
    assert "no train split" in index["skipped"][0]["why"] and "--references" in index["skipped"][0]["why"]
    assert "1-shot: not run: " in (out / "index.md").read_text()
    run = json.loads(next((out / "runs").glob("folder-test-*/zero-shot-text/run.json")).read_text())
    assert run["description"]["categories"] == ["parts"]  # a root named test takes its parent's name


def test_reference_lists_naming_test_images_are_refused(twins, tmp_path: Path) -> None:
    from zsad.errors import ZsadError
    from zsad.evaluation import draw_reference_lists, save_reference_lists

    a, _ = twins
    out = tmp_path / "out"
    label = run_protocols.parse_data(f"mvtec={a}").label
    lists = draw_reference_lists("mvtec", a, ["pill"], shots=(1,), seeds=(0, 1, 2))
    lists.add("pill", 1, 2, [min((a / "pill" / "test" / "good").glob("*.png"))])
    save_reference_lists(lists, out / "runs" / label / "reference_lists.json")
    with pytest.raises(ZsadError, match="1-shot reference lists: 1 reference image.*are test images of this run"):
        run_protocols.main(["--out", str(out), "--no-plots", "--protocols", "1-shot", "--data", f"mvtec={a}"],
                           make_detector=standin)
