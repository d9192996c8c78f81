"""Which page session runs which job, so that closing or reloading a tab cancels its run.

Why: a run is a worker thread Gradio cannot stop; when the page that asked for it went away, the run went on and the
next user's run queued behind it. The page registers its run's ``threading.Event`` under its session; the page's
unload event (a closed tab, a reload) sets it, and ``Detector.detect`` stops at its next batch.
"""
from __future__ import annotations

import threading


class Jobs:
    def __init__(self):
        self._events: dict[str, threading.Event] = {}
        self._lock = threading.Lock()
        self.cancelled = 0

    def start(self, session: str | None) -> threading.Event:
        """A fresh cancel event for ``session``'s run (a second run of the same page replaces the first's)."""
        event = threading.Event()
        with self._lock:
            if session:
                self._events[session] = event
        return event

    def cancel(self, session: str | None) -> bool:
        """Set the cancel event of ``session``'s running job; True when there was one."""
        with self._lock:
            event = self._events.pop(session, None) if session else None
        if event is None:
            return False
        event.set()
        self.cancelled += 1
        return True

    def finish(self, session: str | None, event: threading.Event) -> None:
        with self._lock:
            if session and self._events.get(session) is event:
                del self._events[session]
