"""A circuit breaker shared by every request of one LLM client, so by one run: the definition, the rules and every
image's explanation go through the same client and the same breaker.

Why: a dead, slow or misconfigured server used to be retried for every image, one image at a time (six images at
a 2 s timeout took 73 s; at the default timeout about three minutes per image), and a refused key was re-sent for
every image. The breaker counts consecutive failed attempts (timeouts, refused connections, HTTP 429/5xx, replies
that are not a valid answer); after ``max_failures`` of them, or at once on a configuration error (HTTP 401, 403
or 404: a wrong key, model or URL does not heal by retrying), it opens. An open breaker sends nothing: every caller
gets the reason at once and uses its rule-based fallback. A valid answer resets the count.

A breaker opened by transient failures closes again after ``cooldown`` seconds, so a long-lived ``Detector`` gets
its LLM back once the server recovers; one opened by a configuration error stays open. ``clock`` is injectable so
tests decide what time it is.
"""
from __future__ import annotations

import threading
import time
from typing import Any, Callable


class CircuitBreaker:
    """Thread-safe: the explanation pool's workers share it."""

    def __init__(self, max_failures: int = 3, cooldown: float = 600.0,
                 clock: Callable[[], float] = time.monotonic):
        if max_failures < 1:
            raise ValueError("max_failures must be at least 1")
        self.max_failures = max_failures
        self.cooldown = cooldown
        self._clock = clock
        self._lock = threading.Lock()
        self.failures = 0  # consecutive failed attempts
        self.cause = ""  # the cause of the last failure, or of the opening
        self.fatal = False  # opened by a configuration error: stays open
        self.opened_at: float | None = None
        self.trips = 0  # how often it opened (a run normally trips at most once)

    @property
    def is_open(self) -> bool:
        with self._lock:
            return self._open()

    def _open(self) -> bool:
        if self.opened_at is None:
            return False
        if not self.fatal and self._clock() - self.opened_at >= self.cooldown:
            self.opened_at, self.failures = None, 0  # cooled down: try the server again
            return False
        return True

    def refusal(self) -> str | None:
        """Why no request may be sent now, or None when one may."""
        with self._lock:
            return self.reason() if self._open() else None

    def reason(self) -> str:
        if self.fatal:
            return f"the LLM was stopped after {self.cause}"
        return f"the LLM was stopped after {self.failures} consecutive failures (last: {self.cause})"

    def success(self) -> None:
        with self._lock:
            if self.opened_at is None:
                self.failures = 0

    def failure(self, cause: str, fatal: bool = False) -> bool:
        """Count one failed attempt; True when the breaker is open afterwards."""
        with self._lock:
            if self._open():
                return True
            self.failures += 1
            self.cause = cause
            if fatal or self.failures >= self.max_failures:
                self.fatal = fatal
                self.opened_at = self._clock()
                self.trips += 1
                return True
            return False

    def describe(self) -> dict[str, Any]:
        with self._lock:
            state = {"max_failures": self.max_failures, "open": self._open(), "trips": self.trips}
            if self.trips:
                state["stopped"] = self.reason()
            return state
