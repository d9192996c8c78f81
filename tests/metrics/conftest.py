"""Make the in-test transcription of the official MVTec LOCO AD evaluation importable (pytest runs with importlib
mode, which puts no test folder on sys.path)."""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
