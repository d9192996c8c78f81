"""A scripted OpenAI-compatible chat server on 127.0.0.1, started by the tests (real HTTP, real ``openai`` client).

The server pops one scripted step per request: ("reply", content) answers a chat completion with that message
content; ("status", code) answers an HTTP error; ("sleep", seconds, content) answers late; ("body", bytes) sends
raw bytes. When the script is empty, ``default`` (a callable of the request body) answers. Every request's JSON
body and headers are recorded.
"""
from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest


def completion(content: str, model: str = "scripted") -> bytes:
    return json.dumps({
        "id": "chatcmpl-test", "object": "chat.completion", "created": 0, "model": model,
        "choices": [{"index": 0, "finish_reason": "stop",
                     "message": {"role": "assistant", "content": content}}],
        "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
    }).encode()


class ScriptedServer:
    def __init__(self):
        self.script: list[tuple] = []
        self.requests: list[dict] = []
        self.headers: list[dict] = []
        self.default = None
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_POST(self):
                length = int(self.headers.get("Content-Length", 0))
                body = json.loads(self.rfile.read(length) or b"{}")
                owner.requests.append(body)
                owner.headers.append({k.lower(): v for k, v in self.headers.items()})
                step = owner.script.pop(0) if owner.script else ("default",)
                try:
                    if step[0] == "status":
                        self._send(step[1], json.dumps({"error": {"message": "scripted failure"}}).encode())
                    elif step[0] == "sleep":
                        time.sleep(step[1])
                        self._send(200, completion(step[2]))
                    elif step[0] == "body":
                        self._send(200, step[1])
                    elif step[0] == "reply":
                        self._send(200, completion(step[1]))
                    else:
                        content = owner.default(body) if owner.default else "{}"
                        self._send(200, completion(content))
                except (BrokenPipeError, ConnectionResetError):
                    pass

            def _send(self, code: int, payload: bytes):
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def server():
    srv = ScriptedServer()
    yield srv
    srv.close()


@pytest.fixture
def make_openai_llm(server):
    from zsad.reasoning.llm import LLMConfig, make_llm

    def build(**overrides):
        sleeps = []
        config = LLMConfig(**{"backend": "openai", "model": "scripted", "base_url": server.base_url,
                              "timeout": 2.0, "max_retries": 2, "backoff": 0.01, **overrides})
        llm = make_llm(config, sleep=sleeps.append)
        llm.sleeps = sleeps
        return llm

    return build


@pytest.fixture(scope="session")
def toy():
    """The toy vision-language model module (tests/reasoning/toy_vlm.py)."""
    import importlib.util
    from pathlib import Path

    spec = importlib.util.spec_from_file_location("zsad_test_toy_vlm", Path(__file__).with_name("toy_vlm.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
