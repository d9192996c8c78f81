"""``python -m zsad.demo`` (and ``demo/app.py``): the same as ``zsad demo``, with the CLI's one error handling."""
import sys

from zsad.cli.main import main


def run(argv: list[str] | None = None) -> int:
    return main(["demo", *(sys.argv[1:] if argv is None else argv)])


if __name__ == "__main__":
    sys.exit(run())
