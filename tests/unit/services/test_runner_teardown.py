"""The service runner's teardown: one service that cannot be stopped does not keep the others."""

from __future__ import annotations

import pytest

from parallel_isolation.session.context import ParallelTestContext


def test_a_service_that_cannot_be_stopped_does_not_keep_the_others_running(
    parallel_test_context: ParallelTestContext, monkeypatch: pytest.MonkeyPatch
) -> None:
    runner = parallel_test_context.services
    first = runner.start("gpio_trigger")
    second = runner.start("fire_consensus")  # stopped first (reverse order)
    real_stop = second.stop

    def refused(grace: float = 5.0) -> int | None:
        raise RuntimeError("the engine went away (a bad event fed by the test)")

    monkeypatch.setattr(second, "stop", refused)
    try:
        problems = runner.stop_all()
        assert not first.is_running(), "the first service was left running"
        assert problems == [
            f"{second.describe()} could not be stopped: the engine went away "
            "(a bad event fed by the test)"
        ]
    finally:
        real_stop()
    assert not second.is_running()
