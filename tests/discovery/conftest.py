"""Make the in-test transcription of the official AnomalyNCD code importable (pytest runs with importlib mode)."""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
