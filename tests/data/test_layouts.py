"""The dataset layout registry: declarations resolve, listing stays torch-free, and a layout registered from
outside (here a toy one) reaches ``load_samples`` and ``zsad eval``'s options without editing zsad."""

from __future__ import annotations

import contextlib
import io
import subprocess
import sys
from pathlib import Path

import pytest

from zsad.data.layouts import LAYOUTS, LayoutOption, layout_names, layout_options, load_samples
from zsad.data.layouts.base import Sample, SampleSets
from zsad.errors import DatasetError


def test_every_declared_layout_resolves_to_a_callable() -> None:
    assert layout_names() == ["mvtec", "mvtec_loco", "btad", "visa", "realiad", "hf", "folder", "manifest"]
    for name in layout_names(with_aliases=True):
        assert callable(LAYOUTS.get(name)), name
    assert LAYOUTS.get("mpdd") is LAYOUTS.get("mvtec")
    assert [o.name for o in layout_options("realiad")] == ["json_dir", "image_root"]
    assert all(isinstance(o, LayoutOption) and o.help for n in layout_names() for o in layout_options(n))


def test_importing_the_layouts_imports_neither_torch_nor_a_layout_module() -> None:
    code = ("import sys, zsad.data.layouts as l; l.layout_names(); "
            "print(sorted(m for m in sys.modules if m in ('torch', 'transformers', 'datasets') "
            "or (m.startswith('zsad.data.layouts.') and m != 'zsad.data.layouts.base')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         cwd=Path(__file__).resolve().parents[2]).stdout
    assert out.strip() == "[]"


@pytest.fixture
def toy_layout():
    """A layout defined outside zsad with one option: the files in root with the given suffix, as one category."""

    @LAYOUTS.register("toy_layout", help="toy images for the registry test",
                      options=(LayoutOption("suffix", "file suffix of the toy images (default .png)"),))
    def read_toy(root, categories=None, split="test", suffix=".png") -> SampleSets:
        paths = sorted(Path(root).glob(f"*{suffix}"))
        return {"toy": [Sample(path=p, label=0, mask_path=None, category="toy", defect=None) for p in paths]}

    yield read_toy
    LAYOUTS.unregister("toy_layout")


def test_a_registered_layout_appears_in_eval_help_with_its_option(toy_layout) -> None:
    from zsad.cli.main import build_parser

    out = io.StringIO()
    with contextlib.redirect_stdout(out), pytest.raises(SystemExit):
        build_parser().parse_args(["eval", "--help"])
    text = " ".join(out.getvalue().split())  # argparse wraps lines
    assert "toy_layout: toy images for the registry test" in text
    assert "--suffix SUFFIX toy_layout: file suffix of the toy images (default .png)" in text
    assert "--split-csv SPLIT_CSV visa: split file" in text
    from zsad.errors import ZsadError
    from zsad.evaluation.cli import dataset_options

    args = build_parser().parse_args(["eval", "--dataset", "toy_layout", "--root", "r", "--suffix", ".jpg"])
    assert dataset_options(args) == {"suffix": ".jpg"}
    args = build_parser().parse_args(["eval", "--dataset", "toy_layout", "--root", "r", "--suffix", ".jpg",
                                      "--split-csv", "other.csv"])
    with pytest.raises(ZsadError, match="--split-csv is an option of the visa layout, not of --dataset toy_layout"):
        dataset_options(args)  # another layout's option would silently read other data than asked


def test_load_samples_of_a_registered_layout(toy_layout, tmp_path: Path) -> None:
    for name in ("b.png", "a.png", "c.jpg"):
        (tmp_path / name).write_bytes(b"x")
    assert [s.path.name for s in load_samples("toy_layout", tmp_path)["toy"]] == ["a.png", "b.png"]
    assert [s.path.name for s in load_samples("toy_layout", tmp_path, suffix=".jpg")["toy"]] == ["c.jpg"]


def test_an_undeclared_option_is_refused_naming_the_layout_options(toy_layout, tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="dataset layout 'toy_layout' has no option 'split_csv'; "
                                           "use only its options: suffix"):
        load_samples("toy_layout", tmp_path, split_csv="x.csv")
    with pytest.raises(DatasetError, match="layout 'mvtec' has no option 'cache_dir'; it takes none, so drop it"):
        load_samples("mvtec", tmp_path, cache_dir="x")
