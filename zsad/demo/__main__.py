"""``python -m zsad.demo`` (and ``demo/app.py``): the same as ``zsad demo``, with the command line's one error
handling (``zsad.errors.run_command``)."""
import argparse
import sys

from zsad.demo.cli import configure_parser
from zsad.errors import ZSAD_CODE, run_command


def run(argv: list[str] | None = None) -> int:
    def command() -> int:
        parser = configure_parser(argparse.ArgumentParser(
            prog="zsad demo", formatter_class=argparse.ArgumentDefaultsHelpFormatter))
        args = parser.parse_args(sys.argv[1:] if argv is None else argv)
        return args.run(args)

    return run_command(command, "zsad", own=ZSAD_CODE)


if __name__ == "__main__":
    sys.exit(run())
