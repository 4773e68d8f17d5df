"""One engine stream per container: its output as it is written, and the moment it ends.

A :class:`LogFollower` reads ``docker logs --follow`` of one container on a
daemon thread, from the container's start until it exits.  What the manager
used to poll for, it answers without another request:

* the output so far (readiness lines, log tails, the log saved at removal);
* whether the container still runs (the stream ends when it exits);
* waiting for a line (mosquitto's ``running``) or for the end, on a condition
  variable rather than a polling loop.

The thread is the worker's container manager's, not a test's: its name
starts with :data:`~parallel_isolation.ownership.SESSION_THREAD_PREFIX`, and
it ends when its container exits (a container a test leaves behind is
reported as such by the recorder and by ``validate``).

The stream is read with a client that has no read timeout (a quiet container
must not look like an exited one).  If the stream breaks for another reason
(the engine went away), :attr:`LogFollower.error` says why and callers fall
back to asking the engine.
"""

from __future__ import annotations

import codecs
import threading
import time
from typing import Any

from parallel_isolation.ownership import SESSION_THREAD_PREFIX

__all__ = ["LogFollower"]


class LogFollower:
    """The output of one container, read on one stream until the container exits."""

    def __init__(self, api: Any, container_id: str, name: str) -> None:
        self._api = api
        self.container_id = container_id
        self.name = name
        self._parts: list[str] = []
        self._size = 0
        self._cond = threading.Condition()
        self._ended = False
        self.error: str | None = None
        self._thread = threading.Thread(
            target=self._run, name=f"{SESSION_THREAD_PREFIX}-logs-{name}", daemon=True
        )

    def start(self) -> LogFollower:
        self._thread.start()
        return self

    def _run(self) -> None:
        decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        try:
            stream = self._api.logs(
                self.container_id, stdout=True, stderr=True, stream=True, follow=True
            )
            for chunk in stream:
                text = decoder.decode(bytes(chunk))
                if text:
                    with self._cond:
                        self._parts.append(text)
                        self._size += len(text)
                        self._cond.notify_all()
        except Exception as error:  # noqa: BLE001 - any failure ends the stream; callers fall back
            self.error = f"{type(error).__name__}: {error}"
        finally:
            tail = decoder.decode(b"", final=True)
            with self._cond:
                if tail:
                    self._parts.append(tail)
                self._ended = True
                self._cond.notify_all()

    @property
    def ended(self) -> bool:
        """True once the stream is over: the container exited (or, with :attr:`error`, broke)."""
        with self._cond:
            return self._ended

    @property
    def exited(self) -> bool:
        """True when the stream ended because the container exited."""
        with self._cond:
            return self._ended and self.error is None

    def text(self) -> str:
        """Everything the container wrote so far (stdout and stderr, in order)."""
        with self._cond:
            if len(self._parts) > 1:
                self._parts[:] = ["".join(self._parts)]
            return self._parts[0] if self._parts else ""

    def tail(self, lines: int) -> str:
        return "".join(self.text().splitlines(keepends=True)[-lines:])

    def wait_for(self, needle: str, timeout: float) -> bool:
        """Until ``needle`` appears in the output (True) or the stream ends or time runs out."""
        deadline = time.monotonic() + timeout
        checked = 0  # the text before this offset (less the needle's length) holds no match
        with self._cond:
            while True:
                text = "".join(self._parts)
                if needle in text[max(0, checked - len(needle)) :]:
                    return True
                checked = len(text)
                remaining = deadline - time.monotonic()
                if self._ended or remaining <= 0:
                    return False
                self._cond.wait(remaining)

    def wait_ended(self, timeout: float) -> bool:
        """Until the stream ends (the container exited) and its thread is gone.

        False when time ran out first.
        """
        deadline = time.monotonic() + timeout
        with self._cond:
            if not self._cond.wait_for(lambda: self._ended, timeout):
                return False
        self._thread.join(max(0.0, deadline - time.monotonic()))
        return not self._thread.is_alive()
