"""``zsad demo``'s options: parsed by the parser ``add_demo_parser`` adds, checked before anything is served."""
import argparse

import pytest

from zsad.demo import add_demo_parser, run_demo
from zsad.demo.cli import settings_from_args
from zsad.errors import ZsadError


def _parse(argv):
    parser = argparse.ArgumentParser(prog="zsad")
    add_demo_parser(parser.add_subparsers(dest="command", required=True))
    return parser.parse_args(["demo", *argv])


def test_defaults_bind_localhost_and_limit_uploads():
    args = _parse([])
    assert args.host == "127.0.0.1" and args.run is run_demo
    settings = settings_from_args(_parse(["--backbone", "tiny-clip", "--max-images", "5", "--no-examples"]))
    assert (settings.backbone, settings.max_images, settings.examples) == ("tiny-clip", 5, False)
    assert settings.max_file_size == "20mb"


@pytest.mark.parametrize("argv", [["--port", "0"], ["--port", "70000"], ["--max-images", "0"]])
def test_bad_numbers_are_refused_by_the_parser(argv):
    with pytest.raises(SystemExit):
        _parse(argv)


def test_an_unknown_preset_is_a_clear_error():
    with pytest.raises(ZsadError, match="unknown preset"):
        settings_from_args(_parse(["--preset", "nope"]))
    assert settings_from_args(_parse(["--preset", "musc"])).preset == "musc"


