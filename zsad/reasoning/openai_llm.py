"""The ``openai`` LLM backend: an OpenAI-compatible chat-completions server through the ``openai`` client's async API.

Why async: ``--llm-timeout`` is the wall time of one request. The synchronous client's timeout is per read, so a
server trickling one byte a second held a request 12 s under a 2 s timeout; here every request runs on one event
loop (a daemon thread per client) inside ``asyncio.wait_for``, which cancels it, connection included, at the
deadline. Several caller threads (the explanation pool, ``--llm-concurrency``) share the loop, so their requests
are really in flight together. The client's own retries are off: retries, backoff, ``Retry-After`` and the breaker
are ``zsad.reasoning.llm.LLM``'s, the same for every backend.

Replies are read as bytes with a cap, then checked to be a chat completion: a proxy's HTML page, a JSON error
object or a body that is not UTF-8 is reported as what it is ("not a chat completion", "non-UTF-8 reply"), not
validated as if it were the answer. The key is redacted from every message that quotes the server.
"""
from __future__ import annotations

import asyncio
import email.utils
import json
import os
import threading
import time
import weakref
from typing import Any, Sequence

from pydantic import BaseModel

from zsad.errors import ZsadError, require
from zsad.reasoning.llm import LLM, LLMConfig, ReasoningError, Retryable

ENVELOPE_BYTES = 65_536  # what the completion's JSON envelope may add around the message
HINTS = {
    401: "the server refused the key: check the variable named by --llm-api-key-env",
    403: "the key may not use this model or endpoint: check --llm-model and the key's permissions",
    404: "no such model or endpoint: check --llm-model and --llm-base-url (it usually ends in /v1)",
}


def retry_after(headers) -> float | None:
    """The server's ``Retry-After`` (seconds or an HTTP date; ``retry-after-ms`` first) in seconds, or None."""
    if headers is None:
        return None
    value = headers.get("retry-after-ms")
    if value is not None:
        try:
            return max(0.0, float(value) / 1000)
        except ValueError:
            pass
    value = headers.get("retry-after")
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        return max(0.0, when.timestamp() - time.time())


def _stop(loop: asyncio.AbstractEventLoop) -> None:
    if not loop.is_closed():
        loop.call_soon_threadsafe(loop.stop)


class OpenAIChatLLM(LLM):
    """An OpenAI-compatible chat server (OpenAI, vLLM, Ollama, llama.cpp, LM Studio)."""

    name = "openai"

    def __init__(self, config: LLMConfig, sleep=None, client=None, **kwargs):
        super().__init__(config, sleep, **kwargs)
        if not config.model:
            raise ZsadError("the openai LLM backend needs a model name (--llm-model)")
        self._client = client  # an ``openai.AsyncOpenAI`` (tests may pass one)
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._secret = ""

    # -- the client and its loop ------------------------------------------------------------------------------

    def _key(self) -> str:
        variable = self.config.api_key_env
        if not variable:
            return "not-needed"
        key = os.environ.get(variable, "")
        if not key:
            raise ReasoningError(
                f"environment variable {variable} (named by --llm-api-key-env) is not set; set it (export "
                f"{variable}=...) or drop --llm-api-key-env for a server without keys", cause="no API key", fatal=True)
        return key

    def _runner(self):
        with self._lock:
            if self._client is None:
                openai = require("openai", "llm")
                self._secret = self._key()
                self._client = openai.AsyncOpenAI(api_key=self._secret, base_url=self.config.base_url,
                                                  timeout=self.config.timeout, max_retries=0)
            if self._loop is None:
                loop = asyncio.new_event_loop()
                threading.Thread(target=loop.run_forever, name="zsad-llm", daemon=True).start()
                weakref.finalize(self, _stop, loop)  # the loop ends with its client
                self._loop = loop
            return self._loop, self._client

    def redact(self, text: str) -> str:
        return text.replace(self._secret, "[key]") if len(self._secret) >= 4 else text

    def _call(self, make) -> bytes:
        """Run ``make(client)`` (a coroutine reading a reply) on the loop within the wall-time deadline; openai's
        errors become ``Retryable`` (timeouts, connections, 429, 5xx) or ``ReasoningError`` (the rest)."""
        openai = require("openai", "llm")
        loop, client = self._runner()
        timeout = self.config.timeout

        async def bounded():
            return await asyncio.wait_for(make(client), timeout)

        try:
            return asyncio.run_coroutine_threadsafe(bounded(), loop).result()
        except (TimeoutError, asyncio.TimeoutError, openai.APITimeoutError):
            raise Retryable("timeout", f"no complete reply within {timeout:g} s") from None
        except openai.APIConnectionError as error:
            reason = error.__cause__ or error
            raise Retryable("unreachable", f"cannot reach {self.config.base_url}: {type(reason).__name__}") from None
        except openai.APIStatusError as error:
            status = error.status_code
            if status == 429 or status >= 500:
                raise Retryable("rate limited" if status == 429 else f"HTTP {status}", f"HTTP {status}",
                                retry_after(getattr(error.response, "headers", None))) from None
            hint = HINTS.get(status, "the server rejected the request")
            raise ReasoningError(f"{self.name} LLM refused the request: HTTP {status} ({hint})",
                                 cause=f"HTTP {status}", fatal=status in HINTS) from None

    async def _read(self, response) -> bytes:
        cap = self.config.max_response_bytes + ENVELOPE_BYTES
        body = bytearray()
        async for chunk in response.iter_bytes():
            body.extend(chunk)
            if len(body) > cap:
                raise ReasoningError(f"{self.name} LLM reply exceeds {self.config.max_response_bytes} bytes; "
                                     "rejected unread", cause="oversize reply")
        return bytes(body)

    # -- the up-front check -----------------------------------------------------------------------------------

    def check(self) -> None:
        """Key variable set, server reachable, and the model among those it lists (where it has /models)."""
        self._key()

        async def models(client):
            async with client.models.with_streaming_response.list() as response:
                return await self._read(response)

        url = self.config.base_url or "the default OpenAI URL"
        for attempt in range(self.config.max_retries + 1):
            try:
                body = self._call(models)
                break
            except Retryable as error:
                if error.cause == "HTTP 501":
                    return  # the server lists no models (Not Implemented): it cannot be checked there
                if error.cause == "unreachable" or attempt == self.config.max_retries:
                    fix = ("start it or fix --llm-base-url" if error.cause in ("unreachable", "timeout")
                           else "the server is failing; try again later")
                    raise ReasoningError(f"the LLM server at {url} did not answer its model list ({error}); {fix}",
                                         cause=error.cause) from None
                self.wait(error, attempt)
            except ReasoningError as error:
                if error.cause in ("HTTP 404", "HTTP 405"):
                    return  # the server lists no models: it cannot be checked there
                status = int(error.cause[5:]) if error.cause.startswith("HTTP ") else 0
                hint = HINTS.get(status, "check --llm-base-url and the server's log")
                raise ReasoningError(f"the LLM server at {url} refused its model list: {error.cause} ({hint})",
                                     cause=error.cause, fatal=True) from None
        try:
            listed = [item.get("id") for item in json.loads(body.decode("utf-8")).get("data", [])
                      if isinstance(item, dict)]
        except (ValueError, AttributeError):
            raise ReasoningError(f"{url}/models is not an OpenAI-compatible model list; check --llm-base-url (it "
                                 "usually ends in /v1)", cause="not a chat completion", fatal=True) from None
        if listed and self.config.model not in listed:
            shown = ", ".join(str(name) for name in listed[:10]) + (", ..." if len(listed) > 10 else "")
            raise ReasoningError(f"model {self.config.model!r} is not served by {url} (it serves: {shown}); pass one "
                                 "of these with --llm-model", cause="HTTP 404", fatal=True)

    # -- one request ------------------------------------------------------------------------------------------

    def _request(self, messages: list[dict], schema: type[BaseModel], urls: Sequence[str]) -> dict[str, Any]:
        messages = [dict(message) for message in messages]
        if urls:
            last = max(i for i, message in enumerate(messages) if message["role"] == "user")
            parts = [{"type": "text", "text": messages[last]["content"]}]
            parts += [{"type": "image_url", "image_url": {"url": url}} for url in urls]
            messages[last]["content"] = parts
        request: dict[str, Any] = {
            "model": self.config.model, "messages": messages,
            "temperature": self.config.temperature, "max_tokens": self.config.max_tokens,
        }
        if self.config.structured == "json_schema":
            request["response_format"] = {"type": "json_schema", "json_schema": {
                "name": schema.__name__, "schema": schema.model_json_schema(), "strict": False}}
        elif self.config.structured == "json_object":
            request["response_format"] = {"type": "json_object"}
        return request

    def _complete(self, messages, schema, urls) -> str:
        request = self._request(messages, schema, urls)

        async def post(client):
            async with client.chat.completions.with_streaming_response.create(**request) as response:
                return await self._read(response)

        return self.message_content(self._call(post))

    def message_content(self, body: bytes) -> str:
        """The assistant message of a chat-completion body; anything else is a ``ReasoningError`` saying what it
        was (never handed to the schema validation as if it were the answer)."""
        try:
            text = body.decode("utf-8")
        except UnicodeDecodeError as error:
            raise ReasoningError(f"{self.name} LLM reply is not UTF-8 text (byte {error.start}); check the server",
                                 cause="non-UTF-8 reply") from None
        try:
            data = json.loads(text)
            message = data["choices"][0]["message"]
            content = message.get("content")
        except (ValueError, KeyError, IndexError, TypeError, AttributeError):
            snippet = self.redact(" ".join(text[:80].split()))
            raise ReasoningError(f"{self.name} LLM reply is not a chat completion (it starts {snippet!r}); check "
                                 "that --llm-base-url is an OpenAI-compatible API (usually ending in /v1)",
                                 cause="not a chat completion") from None
        if content is None and message.get("refusal"):
            raise ReasoningError(f"{self.name} LLM refused to answer: {self.redact(str(message['refusal'])[:200])}",
                                 cause="refusal")
        if content is None:
            return ""
        return content if isinstance(content, str) else json.dumps(content)
