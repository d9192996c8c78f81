"""The in-test transcription of the official AnomalyNCD code importable (pytest runs with importlib mode), and the
reasoning tests' scripted LLM server for the LLM namer."""
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))


@pytest.fixture
def server():
    """The scripted OpenAI-compatible chat server of the reasoning tests (tests/reasoning/conftest.py)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("zsad_test_scripted_server",
                                                  Path(__file__).parents[1] / "reasoning" / "conftest.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    srv = module.ScriptedServer()
    yield srv
    srv.close()
