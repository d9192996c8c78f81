"""Makes ``tests/standin_detector.py`` importable as ``standin_detector`` (pytest runs with --import-mode=importlib,
which puts no test folder on sys.path)."""
import importlib.util
import sys
from pathlib import Path

if "standin_detector" not in sys.modules:
    _spec = importlib.util.spec_from_file_location("standin_detector", Path(__file__).parents[1] / "standin_detector.py")
    _module = importlib.util.module_from_spec(_spec)
    sys.modules["standin_detector"] = _module
    _spec.loader.exec_module(_module)
