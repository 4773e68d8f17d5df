"""Polling loops of the Docker backend survive one failed poll (no engine needed)."""

from __future__ import annotations

import pytest

from parallel_isolation.containers.broker import await_listening
from parallel_isolation.containers.engine import ContainerError


class Flaky:
    """A broker container whose engine fails the first log read, then says mosquitto runs."""

    def __init__(self, failures: int) -> None:
        self.failures = failures
        self.polls = 0

    def logs(self, tail: int | None = None) -> str:
        self.polls += 1
        if self.polls <= self.failures:
            raise ContainerError("docker logs failed (HTTP 500): a busy engine")
        return "1700000000: mosquitto version 2.0.11 running\n"

    def is_running(self) -> bool:
        return True


@pytest.mark.parametrize("failures", [1, 3])
def test_a_failed_log_poll_is_asked_again(failures: int) -> None:
    container = Flaky(failures)
    await_listening(container, timeout=60)
    assert container.polls == failures + 1


def test_polls_that_keep_failing_end_at_the_deadline() -> None:
    container = Flaky(failures=10**9)
    await_listening(container, timeout=0.3)  # returns: the readiness check reports after it
    assert container.polls > 1
