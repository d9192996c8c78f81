"""Run the zsad demo as a script (``python demo/app.py [--port 7860 --backbone tiny-clip ...]``), e.g. as a hosted
Space. The app itself is ``zsad.demo`` (``zsad demo`` runs the same)."""
import sys

from zsad.demo.__main__ import run

if __name__ == "__main__":
    sys.exit(run())
