"""The pump state machine without a broker: transitions, deadlines, pins."""

from __future__ import annotations

import pytest

from wildfire.common import BadPayload
from wildfire.gpio_trigger import (
    PINS,
    TRANSITIONS,
    GPIOError,
    PumpEvent,
    PumpState,
    PumpStateMachine,
    PumpTimings,
    SimulatedGPIO,
    parse_command,
    parse_trigger,
    pins_for,
)

S, E = PumpState, PumpEvent
TIMINGS = PumpTimings(
    prime=1.0, start=1.0, rpm_reduction=1.0, stop=1.0, refill=5.0, cooldown=2.0,
    fire_off_delay=10.0, max_engine_runtime=100.0,
)
FULL_CYCLE = [
    S.PRIMING, S.STARTING, S.RUNNING, S.REDUCING_RPM, S.STOPPING, S.REFILLING, S.COOLDOWN, S.IDLE,
]


def machine(timings: PumpTimings = TIMINGS) -> PumpStateMachine:
    return PumpStateMachine(timings, now=0.0)


def run_until_idle(m: PumpStateMachine, start: float, limit: float = 1000.0) -> list[PumpState]:
    """Advance deadline by deadline (no wall clock) until IDLE or ERROR."""
    states = []
    now = start
    while m.state not in (S.IDLE, S.ERROR) and now < limit:
        due = m.next_deadline()
        assert due is not None, f"stuck in {m.state}"
        now = due[0]
        states.extend(t.state for t in m.advance(now))
    return states


def test_full_cycle_from_one_trigger() -> None:
    m = machine()
    outcome = m.handle(E.TRIGGER, 0.0, "fire")
    assert outcome.transition is not None
    assert outcome.transition.state is S.PRIMING
    assert [S.PRIMING, *run_until_idle(m, 0.0)] == FULL_CYCLE
    # runtime counted from ignition (t=1) to engine stop (entering STOPPING)
    stopping = next(t for t in m.history if t.state is S.STOPPING)
    assert m.last_runtime == pytest.approx(stopping.at - 1.0)
    # RUNNING began at t=2; fire off 10 s later
    reducing = next(t for t in m.history if t.state is S.REDUCING_RPM)
    assert reducing.at == pytest.approx(12.0)
    assert reducing.reason == "fire off"


def test_trigger_while_running_extends() -> None:
    m = machine()
    m.handle(E.TRIGGER, 0.0)
    m.advance(2.0)
    assert m.state is S.RUNNING
    outcome = m.handle(E.TRIGGER, 8.0)
    assert outcome.accepted
    assert outcome.transition is None
    assert outcome.note == "extended"
    assert m.advance(12.0) == []  # the original fire-off time passed: still running
    assert m.state is S.RUNNING
    assert m.next_deadline() == (18.0, E.FIRE_OFF)
    assert [t.state for t in m.advance(18.0)] == [S.REDUCING_RPM]


def test_fire_off_counts_from_reaching_running() -> None:
    """A trigger during a long priming still leaves FIRE_OFF_DELAY of pumping."""
    m = machine(PumpTimings(prime=30, start=1, fire_off_delay=10, max_engine_runtime=100))
    m.handle(E.TRIGGER, 0.0)
    m.advance(31.0)
    assert m.state is S.RUNNING
    assert m.next_deadline() == (41.0, E.FIRE_OFF)


def test_trigger_during_rpm_reduction_returns_to_running() -> None:
    m = machine()
    m.handle(E.TRIGGER, 0.0)
    m.advance(12.0)
    assert m.state is S.REDUCING_RPM
    outcome = m.handle(E.TRIGGER, 12.5)
    assert outcome.transition is not None
    assert outcome.transition.state is S.RUNNING


def test_max_runtime_is_a_hard_limit() -> None:
    m = machine(PumpTimings(prime=1, start=1, rpm_reduction=1, stop=1, refill=1, cooldown=1,
                            fire_off_delay=50, max_engine_runtime=5))
    m.handle(E.TRIGGER, 0.0)
    for now in (2.5, 3.5, 4.5, 5.5):  # triggers keep coming
        m.advance(now)
        m.handle(E.TRIGGER, now)
    m.advance(6.0)  # ignition at t=1, limit at t=6
    assert m.state is S.REDUCING_RPM
    assert m.history[-1].reason == "max engine runtime reached"
    refused = m.handle(E.TRIGGER, 6.1)  # the fire is still there, but the limit holds
    assert not refused.accepted
    assert refused.note == "max engine runtime reached"
    assert m.state is S.REDUCING_RPM
    assert [t.state for t in m.advance(7.0)] == [S.STOPPING]
    assert m.last_runtime == pytest.approx(6.0)  # ignition at 1, engine off at 7


def test_max_runtime_during_start_goes_to_stopping() -> None:
    m = machine(PumpTimings(prime=0.5, start=10, max_engine_runtime=2, fire_off_delay=5))
    m.handle(E.TRIGGER, 0.0)
    assert [t.state for t in m.advance(3.0)] == [S.STARTING, S.STOPPING]


@pytest.mark.parametrize("state", [S.PRIMING, S.STARTING, S.RUNNING, S.REDUCING_RPM])
def test_emergency_stop_stops_the_engine(state: PumpState) -> None:
    m = machine()
    m.handle(E.TRIGGER, 0.0)
    m.advance({S.PRIMING: 0.5, S.STARTING: 1.5, S.RUNNING: 5.0, S.REDUCING_RPM: 12.5}[state])
    assert m.state is state
    outcome = m.handle(E.EMERGENCY_STOP, 13.0, "emergency stop")
    assert outcome.transition is not None
    assert outcome.transition.state is S.STOPPING
    assert run_until_idle(m, 13.0) == [S.REFILLING, S.COOLDOWN, S.IDLE]


@pytest.mark.parametrize("state", [S.STOPPING, S.REFILLING])
def test_trigger_refused_while_stopping_or_refilling(state: PumpState) -> None:
    m = machine()
    m.handle(E.TRIGGER, 0.0)
    m.advance({S.STOPPING: 13.5, S.REFILLING: 15.0}[state])
    assert m.state is state
    outcome = m.handle(E.TRIGGER, 15.0)
    assert not outcome.accepted
    assert m.state is state


def test_trigger_during_cooldown_starts_again() -> None:
    m = machine()
    m.handle(E.TRIGGER, 0.0)
    m.advance(19.5)
    assert m.state is S.COOLDOWN
    assert m.handle(E.TRIGGER, 19.6).state is S.PRIMING


def test_fault_and_reset() -> None:
    m = machine()
    m.handle(E.TRIGGER, 0.0)
    assert m.handle(E.FAULT, 0.5, "gpio").state is S.ERROR
    assert m.next_deadline() is None
    assert not m.handle(E.TRIGGER, 1.0).accepted
    assert m.handle(E.RESET, 2.0).state is S.IDLE
    assert not m.handle(E.RESET, 3.0).accepted  # nothing to reset


# (state, event) table: everything not in TRANSITIONS leaves the state alone
@pytest.mark.parametrize("state", list(PumpState))
@pytest.mark.parametrize("event", list(PumpEvent))
def test_transition_table_is_total(state: PumpState, event: PumpEvent) -> None:
    m = machine()
    m.state = state
    if state in (S.STARTING, S.RUNNING, S.REDUCING_RPM):
        m.engine_started = 0.0
    outcome = m.handle(event, 1.0)
    expected = TRANSITIONS.get((state, event))
    if expected is None:
        assert m.state is state
        assert outcome.transition is None
    else:
        assert m.state is expected


def test_pins_per_state() -> None:
    assert not any(pins_for(S.IDLE).values())
    assert not any(pins_for(S.ERROR).values())
    assert pins_for(S.RUNNING)["IGNITION_ON"]
    assert pins_for(S.RUNNING)["MAIN_VALVE"]
    assert pins_for(S.STARTING)["IGNITION_START"]
    assert pins_for(S.REDUCING_RPM)["RPM_REDUCE"]
    assert not pins_for(S.REFILLING)["IGNITION_ON"]
    assert pins_for(S.REFILLING)["REFILL_VALVE"]
    for state in PumpState:
        assert set(pins_for(state)) == set(PINS)


@pytest.mark.parametrize(
    "kwargs", [{"prime": -1}, {"fire_off_delay": 0}, {"max_engine_runtime": -5}]
)
def test_timings_are_validated(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError, match="must be"):
        PumpTimings(**kwargs)


def test_simulated_gpio_failure() -> None:
    gpio = SimulatedGPIO()
    assert gpio.apply(pins_for(S.RUNNING)) == ["MAIN_VALVE", "IGNITION_ON", "REFILL_VALVE"]
    gpio.fail_pin("IGNITION_ON")
    with pytest.raises(GPIOError, match="IGNITION_ON"):
        gpio.apply(pins_for(S.IDLE))
    gpio.all_off()
    assert gpio.snapshot()["IGNITION_ON"] is True  # stuck
    gpio.repair()
    gpio.apply(pins_for(S.IDLE))
    assert not any(gpio.snapshot().values())
    with pytest.raises(GPIOError, match="unknown pin"):
        gpio.write("NOPE", True)


@pytest.mark.parametrize(
    ("payload", "event"),
    [
        (b"stop", E.EMERGENCY_STOP),
        (b" STOP\n", E.EMERGENCY_STOP),
        (b"start", E.TRIGGER),
        (b"reset", E.RESET),
        (b'{"command": "stop"}', E.EMERGENCY_STOP),
        (b'{"action": "reset"}', E.RESET),
        (b'"start"', E.TRIGGER),
    ],
)
def test_parse_command(payload: bytes, event: PumpEvent) -> None:
    assert parse_command(payload) is event


@pytest.mark.parametrize(
    "payload",
    [b"", b"explode", b"{", b'{"command": 3}', b"[1]", b"\xff", b'{"command": "launch"}', b"null"],
)
def test_parse_command_rejects(payload: bytes) -> None:
    with pytest.raises(BadPayload):
        parse_command(payload)


@pytest.mark.parametrize("payload", [b'{"action": "trigger"}', b"{}", b"trigger", b" start "])
def test_parse_trigger_accepts(payload: bytes) -> None:
    parse_trigger(payload)


@pytest.mark.parametrize("payload", [b'{"action": "stop"}', b"[]", b"fire!", b"\xff\xfe"])
def test_parse_trigger_rejects(payload: bytes) -> None:
    with pytest.raises(BadPayload):
        parse_trigger(payload)
