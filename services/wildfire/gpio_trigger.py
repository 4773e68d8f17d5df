"""Pump controller: a simulated GPIO board driven by a state machine.

::

    IDLE -trigger-> PRIMING -> STARTING -> RUNNING -(no trigger for FIRE_OFF_DELAY)->
    REDUCING_RPM -> STOPPING -> REFILLING -> COOLDOWN -> IDLE

* A trigger while RUNNING extends the run; during PRIMING/STARTING it is
  noted (the fire-off countdown restarts from it); during REDUCING_RPM it
  returns to RUNNING; during STOPPING, REFILLING or ERROR it is refused
  (logged and published); during COOLDOWN it starts a new cycle.
* ``MAX_ENGINE_RUNTIME`` (counted from ignition, entering STARTING) is a hard
  limit: RUNNING goes to REDUCING_RPM, STARTING and REDUCING_RPM go straight
  to STOPPING.
* Emergency stop (``fire/emergency`` ``stop``) shuts the engine down at once
  (STOPPING, skipping RPM reduction), then refills and cools down as usual.
* A GPIO write failure puts the machine in ERROR with every output off;
  ``reset`` returns to IDLE once the outputs can be written again.

:class:`PumpStateMachine` is pure (time passed in, deadlines computed, no
threads); :class:`GpioTrigger` is the MQTT service that feeds it events and
wakes it at its next deadline.
"""

from __future__ import annotations

import enum
import json
import logging
import threading
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

from wildfire.common import (
    BadPayload,
    MqttService,
    ServiceConfig,
    TimerHandle,
    knob,
    log_event,
    non_negative,
    positive,
    run_service,
)

__all__ = [
    "PINS",
    "GPIOError",
    "GpioTrigger",
    "GpioTriggerConfig",
    "Outcome",
    "PumpEvent",
    "PumpState",
    "PumpStateMachine",
    "PumpTimings",
    "SimulatedGPIO",
    "Transition",
    "main",
    "parse_command",
    "pins_for",
]


class PumpState(enum.StrEnum):
    IDLE = "IDLE"
    PRIMING = "PRIMING"
    STARTING = "STARTING"
    RUNNING = "RUNNING"
    REDUCING_RPM = "REDUCING_RPM"
    STOPPING = "STOPPING"
    REFILLING = "REFILLING"
    COOLDOWN = "COOLDOWN"
    ERROR = "ERROR"


class PumpEvent(enum.StrEnum):
    TRIGGER = "trigger"
    PHASE_DONE = "phase_done"
    FIRE_OFF = "fire_off"
    MAX_RUNTIME = "max_runtime"
    EMERGENCY_STOP = "emergency_stop"
    RESET = "reset"
    FAULT = "fault"


S = PumpState
E = PumpEvent

TRANSITIONS: Mapping[tuple[PumpState, PumpEvent], PumpState] = {
    (S.IDLE, E.TRIGGER): S.PRIMING,
    (S.COOLDOWN, E.TRIGGER): S.PRIMING,
    (S.REDUCING_RPM, E.TRIGGER): S.RUNNING,
    (S.PRIMING, E.PHASE_DONE): S.STARTING,
    (S.STARTING, E.PHASE_DONE): S.RUNNING,
    (S.REDUCING_RPM, E.PHASE_DONE): S.STOPPING,
    (S.STOPPING, E.PHASE_DONE): S.REFILLING,
    (S.REFILLING, E.PHASE_DONE): S.COOLDOWN,
    (S.COOLDOWN, E.PHASE_DONE): S.IDLE,
    (S.RUNNING, E.FIRE_OFF): S.REDUCING_RPM,
    (S.STARTING, E.MAX_RUNTIME): S.STOPPING,
    (S.RUNNING, E.MAX_RUNTIME): S.REDUCING_RPM,
    (S.REDUCING_RPM, E.MAX_RUNTIME): S.STOPPING,
    (S.PRIMING, E.EMERGENCY_STOP): S.STOPPING,
    (S.STARTING, E.EMERGENCY_STOP): S.STOPPING,
    (S.RUNNING, E.EMERGENCY_STOP): S.STOPPING,
    (S.REDUCING_RPM, E.EMERGENCY_STOP): S.STOPPING,
    (S.ERROR, E.RESET): S.IDLE,
    **{(state, E.FAULT): S.ERROR for state in PumpState if state is not S.ERROR},
}
"""Every allowed ``(state, event) -> next state``; anything else is refused or a no-op."""

TRIGGER_NOTED = frozenset({S.PRIMING, S.STARTING, S.RUNNING})
"""States where a trigger is accepted without a transition (it extends the run)."""

ENGINE_ON = frozenset({S.STARTING, S.RUNNING, S.REDUCING_RPM})

PINS = (
    "MAIN_VALVE",
    "PRIMING_VALVE",
    "IGNITION_START",
    "IGNITION_ON",
    "IGNITION_OFF",
    "RPM_REDUCE",
    "REFILL_VALVE",
)

_PINS_ON: Mapping[PumpState, frozenset[str]] = {
    S.IDLE: frozenset(),
    S.PRIMING: frozenset({"MAIN_VALVE", "PRIMING_VALVE"}),
    S.STARTING: frozenset({"MAIN_VALVE", "PRIMING_VALVE", "IGNITION_START", "IGNITION_ON"}),
    S.RUNNING: frozenset({"MAIN_VALVE", "IGNITION_ON", "REFILL_VALVE"}),
    S.REDUCING_RPM: frozenset({"MAIN_VALVE", "IGNITION_ON", "REFILL_VALVE", "RPM_REDUCE"}),
    S.STOPPING: frozenset({"MAIN_VALVE", "IGNITION_OFF", "REFILL_VALVE"}),
    S.REFILLING: frozenset({"REFILL_VALVE"}),
    S.COOLDOWN: frozenset(),
    S.ERROR: frozenset(),
}


def pins_for(state: PumpState) -> dict[str, bool]:
    """The output pin levels of ``state``."""
    on = _PINS_ON[state]
    return {pin: pin in on for pin in PINS}


# ---------------------------------------------------------------------------
# pure state machine


@dataclass(frozen=True)
class PumpTimings:
    """Durations in seconds (all from the environment)."""

    prime: float = 180.0
    start: float = 5.0
    rpm_reduction: float = 10.0
    stop: float = 5.0
    refill: float = 300.0
    cooldown: float = 60.0
    fire_off_delay: float = 1800.0
    max_engine_runtime: float = 1800.0

    def __post_init__(self) -> None:
        for name in ("prime", "start", "rpm_reduction", "stop", "refill", "cooldown"):
            if getattr(self, name) < 0:
                msg = f"{name} duration must be >= 0, got {getattr(self, name)!r}"
                raise ValueError(msg)
        if self.fire_off_delay <= 0 or self.max_engine_runtime <= 0:
            msg = "fire_off_delay and max_engine_runtime must be > 0"
            raise ValueError(msg)

    def phase(self, state: PumpState) -> float | None:
        """How long a timed state lasts (None: untimed)."""
        return {
            S.PRIMING: self.prime,
            S.STARTING: self.start,
            S.REDUCING_RPM: self.rpm_reduction,
            S.STOPPING: self.stop,
            S.REFILLING: self.refill,
            S.COOLDOWN: self.cooldown,
        }.get(state)


@dataclass(frozen=True)
class Transition:
    previous: PumpState
    state: PumpState
    event: PumpEvent
    reason: str
    at: float


@dataclass(frozen=True)
class Outcome:
    """Result of one event: a transition, an accepted no-op, or a refusal."""

    event: PumpEvent
    state: PumpState
    accepted: bool
    transition: Transition | None = None
    note: str = ""


@dataclass
class PumpStateMachine:
    """The pump's states, deadlines and engine runtime; no threads, no I/O."""

    timings: PumpTimings = field(default_factory=PumpTimings)
    now: float = 0.0
    state: PumpState = S.IDLE
    entered: float = 0.0
    last_trigger: float | None = None
    engine_started: float | None = None
    last_runtime: float = 0.0
    limit_reached: bool = False
    history: list[Transition] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.entered = self.now

    @property
    def pins(self) -> dict[str, bool]:
        return pins_for(self.state)

    def runtime(self, now: float) -> float:
        """Engine runtime: of the current run, else of the last one."""
        if self.engine_started is not None:
            return max(0.0, now - self.engine_started)
        return self.last_runtime

    def handle(self, event: PumpEvent, now: float, reason: str = "") -> Outcome:
        """Apply ``event`` at time ``now``."""
        if event is E.TRIGGER:
            self.last_trigger = now
            if self.limit_reached and self.state in ENGINE_ON:
                return Outcome(event, self.state, False, note="max engine runtime reached")
            if self.state in TRIGGER_NOTED:
                note = "extended" if self.state is S.RUNNING else "already starting"
                return Outcome(event, self.state, True, note=note)
        target = TRANSITIONS.get((self.state, event))
        if target is None:
            refused = event is E.TRIGGER or event is E.RESET
            note = f"{event} not allowed in {self.state}"
            return Outcome(event, self.state, not refused, note=note if refused else "no-op")
        transition = self._enter(target, event, now, reason or str(event))
        return Outcome(event, self.state, True, transition=transition)

    def _enter(self, target: PumpState, event: PumpEvent, now: float, reason: str) -> Transition:
        previous = self.state
        if event is E.MAX_RUNTIME:
            self.limit_reached = True
        if target is S.STARTING:
            self.engine_started = now
            self.limit_reached = False
        elif target not in ENGINE_ON and self.engine_started is not None:
            self.last_runtime = now - self.engine_started
            self.engine_started = None
        self.state = target
        self.entered = now
        transition = Transition(previous, target, event, reason, now)
        self.history.append(transition)
        if len(self.history) > 200:
            del self.history[:100]
        return transition

    def next_deadline(self) -> tuple[float, PumpEvent] | None:
        """The earliest timed event pending in this state, if any."""
        candidates: list[tuple[float, PumpEvent]] = []
        phase = self.timings.phase(self.state)
        if phase is not None:
            candidates.append((self.entered + phase, E.PHASE_DONE))
        if self.state is S.RUNNING:
            since = max(self.entered, self.last_trigger or self.entered)
            candidates.append((since + self.timings.fire_off_delay, E.FIRE_OFF))
        if self.engine_started is not None and self.state in ENGINE_ON and not self.limit_reached:
            limit = self.engine_started + self.timings.max_engine_runtime
            candidates.append((limit, E.MAX_RUNTIME))
        if not candidates:
            return None
        # MAX_RUNTIME wins a tie: it is the hard limit.
        return min(candidates, key=lambda item: (item[0], item[1] is not E.MAX_RUNTIME))

    def advance(self, now: float) -> list[Transition]:
        """Fire every deadline due at ``now`` (in order); return the transitions."""
        done: list[Transition] = []
        for _ in range(len(PumpState) * 4):
            due = self.next_deadline()
            if due is None or due[0] > now:
                break
            reasons = {
                E.PHASE_DONE: f"{self.state.lower()} complete",
                E.FIRE_OFF: "fire off",
                E.MAX_RUNTIME: "max engine runtime reached",
            }
            outcome = self.handle(due[1], due[0], reasons.get(due[1], str(due[1])))
            if outcome.transition is not None:
                done.append(outcome.transition)
        return done


# ---------------------------------------------------------------------------
# simulated GPIO


class GPIOError(RuntimeError):
    """A pin could not be written."""


class SimulatedGPIO:
    """Output pins as in-memory levels; :meth:`fail_pin` simulates a broken line."""

    def __init__(self, pins: Iterable[str] = PINS) -> None:
        self._levels = dict.fromkeys(pins, False)
        self._failing: set[str] = set()
        self._lock = threading.Lock()

    def write(self, pin: str, level: bool) -> None:
        with self._lock:
            if pin not in self._levels:
                msg = f"unknown pin {pin!r}"
                raise GPIOError(msg)
            if pin in self._failing:
                msg = f"pin {pin} does not respond"
                raise GPIOError(msg)
            self._levels[pin] = level

    def apply(self, levels: Mapping[str, bool]) -> list[str]:
        """Write every level that differs; return pins that changed.  Raises GPIOError."""
        changed = [pin for pin, level in levels.items() if self.read(pin) != level]
        for pin in changed:
            self.write(pin, levels[pin])
        return changed

    def all_off(self) -> None:
        """Best effort: every pin low, skipping the failing ones."""
        with self._lock:
            for pin in self._levels:
                if pin not in self._failing:
                    self._levels[pin] = False

    def read(self, pin: str) -> bool:
        with self._lock:
            return self._levels[pin]

    def snapshot(self) -> dict[str, bool]:
        with self._lock:
            return dict(self._levels)

    def fail_pin(self, pin: str) -> None:
        with self._lock:
            self._failing.add(pin)

    def repair(self) -> None:
        with self._lock:
            self._failing.clear()


# ---------------------------------------------------------------------------
# commands


_COMMANDS = {
    "start": E.TRIGGER,
    "trigger": E.TRIGGER,
    "stop": E.EMERGENCY_STOP,
    "emergency_stop": E.EMERGENCY_STOP,
    "reset": E.RESET,
}


def parse_command(payload: bytes) -> PumpEvent:
    """``fire/emergency`` payload (JSON command/action or plain text) -> event."""
    try:
        text = payload.decode("utf-8").strip()
    except UnicodeDecodeError:
        msg = "command is not UTF-8 text"
        raise BadPayload(msg) from None
    command: object = text
    if text[:1] in '{"':
        try:
            value = json.loads(text)
        except json.JSONDecodeError as error:
            msg = f"not valid JSON: {error}"
            raise BadPayload(msg) from None
        command = value.get("command", value.get("action")) if isinstance(value, dict) else value
    if not isinstance(command, str) or command.strip().lower() not in _COMMANDS:
        msg = f"unknown command {command!r}; expected one of {', '.join(sorted(_COMMANDS))}"
        raise BadPayload(msg)
    return _COMMANDS[command.strip().lower()]


def parse_trigger(payload: bytes) -> None:
    """Validate a ``fire/trigger`` payload (JSON with action trigger, or plain ``trigger``)."""
    text = payload.strip()
    if text.lower() in {b"trigger", b"start"}:
        return
    try:
        value = json.loads(text)
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        msg = f"not valid JSON: {error}"
        raise BadPayload(msg) from None
    if not isinstance(value, dict):
        msg = f"expected a JSON object, got {type(value).__name__}"
        raise BadPayload(msg)
    action = value.get("action", "trigger")
    if action != "trigger":
        msg = f"fire/trigger action must be 'trigger', got {action!r}"
        raise BadPayload(msg)


# ---------------------------------------------------------------------------
# the service


@dataclass(frozen=True, kw_only=True)
class GpioTriggerConfig(ServiceConfig):
    """Environment knobs of the pump controller (durations in seconds)."""

    prime_duration: float = knob("PRIME_DURATION", 180.0, "float", non_negative, "priming time")
    start_duration: float = knob("START_DURATION", 5.0, "float", non_negative, "ignition time")
    rpm_reduction_duration: float = knob(
        "RPM_REDUCTION_DURATION", 10.0, "float", non_negative, "RPM reduction before stop"
    )
    stop_duration: float = knob("STOP_DURATION", 5.0, "float", non_negative, "engine stop time")
    refill_duration: float = knob(
        "REFILL_DURATION", 300.0, "float", non_negative, "reservoir refill time"
    )
    cooldown_duration: float = knob(
        "COOLDOWN_DURATION", 60.0, "float", non_negative, "rest before IDLE"
    )
    fire_off_delay: float = knob(
        "FIRE_OFF_DELAY", 1800.0, "float", positive, "run on this long after the last trigger"
    )
    max_engine_runtime: float = knob(
        "MAX_ENGINE_RUNTIME", 1800.0, "float", positive, "hard limit on engine runtime"
    )

    def timings(self) -> PumpTimings:
        return PumpTimings(
            prime=self.prime_duration,
            start=self.start_duration,
            rpm_reduction=self.rpm_reduction_duration,
            stop=self.stop_duration,
            refill=self.refill_duration,
            cooldown=self.cooldown_duration,
            fire_off_delay=self.fire_off_delay,
            max_engine_runtime=self.max_engine_runtime,
        )


class GpioTrigger(MqttService):
    """The pump controller.  ``GpioTrigger(GpioTriggerConfig.from_env(env))``."""

    SERVICE_NAME: ClassVar[str] = "gpio_trigger"
    CONFIG_CLASS: ClassVar[type[ServiceConfig]] = GpioTriggerConfig
    config: GpioTriggerConfig
    TELEMETRY_TOPIC: ClassVar[str] = "system/trigger_telemetry"
    GPIO_TOPIC: ClassVar[str] = "gpio/status"

    def __init__(
        self, config: GpioTriggerConfig | None = None, gpio: SimulatedGPIO | None = None
    ) -> None:
        super().__init__(config if config is not None else GpioTriggerConfig.from_env())
        self.gpio = gpio or SimulatedGPIO()
        self.machine = PumpStateMachine(self.config.timings(), now=time.monotonic())
        self._lock = threading.RLock()
        self._timer: TimerHandle | None = None
        self.trigger_count = 0
        self.refused_count = 0

    @property
    def state(self) -> PumpState:
        return self.machine.state

    def subscriptions(self) -> list[tuple[str, int]]:
        return [("fire/trigger", 1), ("fire/emergency", 1)]

    def health_fields(self) -> dict[str, Any]:
        with self._lock:
            return {
                "state": str(self.machine.state),
                "trigger_count": self.trigger_count,
                "refused_count": self.refused_count,
                "runtime": round(self.machine.runtime(time.monotonic()), 3),
                "pins": self.gpio.snapshot(),
            }

    def on_start(self) -> None:
        with self._lock:
            self._apply_pins(self.machine.state)

    def on_ready(self) -> None:
        # Make the retained telemetry reflect the current state after (re)connect.
        self._publish_telemetry("state", reason="connected", previous=None)

    def on_stop(self) -> None:
        with self._lock:
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None

    # -- inputs ----------------------------------------------------------

    def handle_message(self, topic: str, payload: bytes) -> None:
        if topic == "fire/trigger":
            parse_trigger(payload)
            self.dispatch(E.TRIGGER, "fire trigger")
        elif topic == "fire/emergency":
            event = parse_command(payload)
            reason = "manual start" if event is E.TRIGGER else f"emergency {event}"
            self.dispatch(event, reason)

    def inject_fault(self, reason: str = "injected fault") -> Outcome:
        """Simulate a hardware fault: ERROR with every output off."""
        return self.dispatch(E.FAULT, reason)

    def dispatch(self, event: PumpEvent, reason: str = "") -> Outcome:
        """Feed one event to the machine, drive the pins, publish, re-arm the timer."""
        with self._lock:
            if not self.running:
                return Outcome(event, self.machine.state, False, note="service stopped")
            now = time.monotonic()
            self._advance(now)
            outcome = self.machine.handle(event, now, reason)
            if event is E.TRIGGER:
                if outcome.accepted:
                    self.trigger_count += 1
                else:
                    self.refused_count += 1
            if outcome.transition is not None:
                self._on_transition(outcome.transition)
            self._rearm()
        self._report(outcome, reason)
        return outcome

    def _report(self, outcome: Outcome, reason: str) -> None:
        if outcome.transition is not None:
            return
        if not outcome.accepted:
            log_event(
                self.logger,
                logging.WARNING,
                f"{outcome.event}_refused",
                state=outcome.state,
                reason=outcome.note,
            )
            self._publish_telemetry(f"{outcome.event}_refused", reason=outcome.note, previous=None)
        elif outcome.note in {"extended", "already starting"}:
            log_event(
                self.logger, logging.INFO, "trigger_noted", state=outcome.state, note=outcome.note
            )
        else:
            log_event(self.logger, logging.INFO, f"{outcome.event}_ignored", state=outcome.state)

    # -- timers ----------------------------------------------------------

    def _on_deadline(self) -> None:
        with self._lock:
            self._timer = None
            if not self.running:
                return
            self._advance(time.monotonic())
            self._rearm()

    def _advance(self, now: float) -> None:
        for transition in self.machine.advance(now):
            self._on_transition(transition)

    def _rearm(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        due = self.machine.next_deadline()
        if due is not None and self.running:
            delay = due[0] - time.monotonic()
            self._timer = self.scheduler.call_later(delay, self._on_deadline, name="pump-deadline")

    # -- outputs ---------------------------------------------------------

    def _on_transition(self, transition: Transition) -> None:
        pins_ok = self._apply_pins(transition.state)
        log_event(
            self.logger,
            logging.INFO,
            "state_change",
            previous=transition.previous,
            state=transition.state,
            reason=transition.reason,
        )
        # The transition's own state: when deadlines were overdue, advance()
        # made several transitions at once and the machine is already further.
        self._publish_telemetry(
            "state_change",
            reason=transition.reason,
            previous=transition.previous,
            state=transition.state,
        )
        if not pins_ok:
            fault = self.machine.handle(E.FAULT, transition.at, "gpio write failed")
            if fault.transition is not None:
                self._on_transition(fault.transition)

    def _apply_pins(self, state: PumpState) -> bool:
        try:
            changed = self.gpio.apply(pins_for(state))
        except GPIOError as error:
            log_event(self.logger, logging.ERROR, "gpio_error", state=state, reason=str(error))
            self.gpio.all_off()
            self._publish_gpio(state)
            return False
        if changed:
            self._publish_gpio(state)
        return True

    def _publish_gpio(self, state: PumpState) -> None:
        """The pins as just applied for ``state`` (the machine may already be further)."""
        self.publish(
            self.GPIO_TOPIC,
            {
                "pins": self.gpio.snapshot(),
                "state": str(state),
                "timestamp": time.time(),
            },
            qos=1,
            retain=True,
        )

    def _publish_telemetry(
        self,
        event: str,
        *,
        reason: str,
        previous: PumpState | None,
        state: PumpState | None = None,
    ) -> None:
        with self._lock:
            payload = {
                "event": event,
                "state": str(state if state is not None else self.machine.state),
                "previous_state": str(previous) if previous is not None else None,
                "reason": reason,
                "pins": self.gpio.snapshot(),
                "runtime": round(self.machine.runtime(time.monotonic()), 3),
                "trigger_count": self.trigger_count,
                "timestamp": time.time(),
            }
        self.publish(self.TELEMETRY_TOPIC, payload, qos=1, retain=True)


def main() -> int:
    """``python -m wildfire.gpio_trigger``: run until SIGTERM/SIGINT."""
    return run_service(GpioTrigger)


if __name__ == "__main__":
    raise SystemExit(main())
