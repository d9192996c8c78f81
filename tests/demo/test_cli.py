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




@pytest.mark.slow  # starts the server in another process
def test_the_console_shows_where_the_page_is_and_no_gradio_banner(tmp_path):
    """Gradio's lines (a share link this app never makes, its own Ctrl+C notice) stay off the console; zsad prints
    the page's address, and Ctrl+C ends the server with exit code 0."""
    import os
    import signal
    import socket
    import subprocess
    import sys
    import time
    import urllib.request

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONUNBUFFERED": "1"}
    out, err = tmp_path / "out", tmp_path / "err"
    with out.open("w") as stdout, err.open("w") as stderr:
        process = subprocess.Popen([sys.executable, "-m", "zsad.demo", "--backbone", "tiny-clip", "--port", str(port),
                                    "--no-examples"], stdout=stdout, stderr=stderr, env=env)
    try:
        deadline = time.monotonic() + 180
        while "serving" not in err.read_text():
            assert process.poll() is None and time.monotonic() < deadline, err.read_text()[-2000:]
            time.sleep(0.2)
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=20) as reply:
            assert reply.status == 200
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=60) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert out.read_text() == ""
    assert err.read_text() == f"zsad demo: serving http://127.0.0.1:{port}/ (Ctrl+C stops it)\n"
