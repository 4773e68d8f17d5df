"""The log pattern table: what in a broker log, service log or test failure is a finding.

Each :class:`LogPattern` names the sources it applies to (``broker`` logs,
``service`` logs, ``test`` failure texts recorded in the event log), a
severity, a hint, and optionally an *excuse*: a named rule under which a
match is expected and downgraded to ``info`` (for example an "Address already
in use" that the port allocator retried on another port).  The first pattern
that matches a line wins, so more specific patterns come first.

Extend the table with :func:`register_pattern` (e.g. from a ``conftest.py``
or a wrapper script before calling :func:`~parallel_isolation.validate.validate_run`).
"""

from __future__ import annotations

import calendar
import re
import time
from dataclasses import dataclass

from parallel_isolation.validate.model import Severity

__all__ = [
    "EXCUSES",
    "PATTERNS",
    "LogPattern",
    "classify_log",
    "parse_log_stamp",
    "parse_log_ts",
    "register_pattern",
]

BROKER = "broker"
SERVICE = "service"
TEST = "test"
ALL_SOURCES = frozenset({BROKER, SERVICE, TEST})

EXCUSES = {
    "port-retried": "the port allocator retried on another port (port_retry/port_in_use event nearby)",
    "broker-down": "the worker's broker was paused, crashed or restarting at that moment",
}
"""Named rules that turn an expected match into ``info``; see ``scanners.logs``."""


@dataclass(frozen=True)
class LogPattern:
    """One row of the pattern table."""

    code: str
    title: str
    regex: re.Pattern[str]
    severity: Severity
    sources: frozenset[str]
    hint: str
    excuse: str | None = None

    def __post_init__(self) -> None:
        unknown = self.sources - ALL_SOURCES
        if unknown:
            msg = f"pattern {self.code!r}: unknown sources {sorted(unknown)}; use {sorted(ALL_SOURCES)}"
            raise ValueError(msg)
        if self.excuse is not None and self.excuse not in EXCUSES:
            msg = f"pattern {self.code!r}: unknown excuse {self.excuse!r}; use one of {sorted(EXCUSES)}"
            raise ValueError(msg)


PATTERNS: list[LogPattern] = [
    LogPattern(
        "client-id-clash",
        "MQTT client id used twice on one broker",
        re.compile(r"Client (?P<client>\S+) already connected, closing old connection"),
        Severity.ERROR,
        frozenset({BROKER, TEST}),
        "two connections used the same client id, so the broker kicked the older one off; "
        "use ctx.client_id() / MQTT_CLIENT_ID unique per worker and run",
    ),
    LogPattern(
        "port-allocated",
        "Docker: port is already allocated",
        re.compile(r"port is already allocated", re.IGNORECASE),
        Severity.ERROR,
        ALL_SOURCES,
        "a published port collided; publish only ports from the allocator (ctx.port())",
        excuse="port-retried",
    ),
    LogPattern(
        "address-in-use",
        "Address already in use",
        re.compile(r"Address already in use|EADDRINUSE|\[Errno 98\]", re.IGNORECASE),
        Severity.ERROR,
        ALL_SOURCES,
        "a fixed port collided with another worker or program; take ports from ctx.port()",
        excuse="port-retried",
    ),
    LogPattern(
        "container-name-conflict",
        "Docker: container name already in use",
        re.compile(r"Conflict\. The container name"),
        Severity.ERROR,
        ALL_SOURCES,
        "a fixed container name collided; name containers with ctx.container_name()",
    ),
    LogPattern(
        "network-name-conflict",
        "Docker: network already exists",
        re.compile(r"network with name \S+ already exists", re.IGNORECASE),
        Severity.ERROR,
        ALL_SOURCES,
        "a fixed network name collided; name networks with ctx.network_name()",
    ),
    LogPattern(
        "health-publish-failed",
        "A service failed to publish its health",
        re.compile(r"Failed to publish health(?::\s*(?P<reason>.*))?"),
        Severity.WARNING,
        frozenset({SERVICE}),
        "the service lost its broker: a broker stopped under a running service, or a "
        "client-id clash kicked it off",
        excuse="broker-down",
    ),
    LogPattern(
        "traceback",
        "Traceback in a log",
        re.compile(r"Traceback \(most recent call last\)"),
        Severity.ERROR,
        frozenset({BROKER, SERVICE}),
        "an unhandled exception; the lines that follow name it",
    ),
    LogPattern(
        "broker-error",
        "Broker error",
        re.compile(r"(?:^|: )Error: (?P<reason>.+)"),
        Severity.WARNING,
        frozenset({BROKER}),
        "the broker reported an error; read its log around this line",
    ),
]


def register_pattern(pattern: LogPattern, *, first: bool = False) -> None:
    """Add ``pattern`` to the table (at the front with ``first`` to take precedence)."""
    if any(existing.code == pattern.code for existing in PATTERNS):
        msg = f"a log pattern with code {pattern.code!r} exists already"
        raise ValueError(msg)
    if first:
        PATTERNS.insert(0, pattern)
    else:
        PATTERNS.append(pattern)


def classify_log(name: str) -> str:
    """``broker`` for broker logs (``mqtt-broker*.log``, ``mosquitto*``), else ``service``."""
    lowered = name.lower()
    if lowered.startswith(("mqtt-broker", "broker", "mosquitto", "amqtt")):
        return BROKER
    return SERVICE


_ISO = re.compile(
    r"^\[?(?P<date>\d{4}-\d{2}-\d{2})[T ](?P<time>\d{2}:\d{2}:\d{2})(?:[.,](?P<frac>\d+))?"
    r"(?P<tz>Z|[+-]\d{2}:?\d{2})?"
)
_EPOCH = re.compile(r"^(?P<epoch>1\d{9})(?:\.\d+)?:")


def parse_log_ts(line: str) -> float | None:
    """Epoch seconds of a log line's leading timestamp, or None (see :func:`parse_log_stamp`)."""
    stamp = parse_log_stamp(line)
    return None if stamp is None else stamp[0]


def parse_log_stamp(line: str) -> tuple[float, float] | None:
    """``(epoch seconds, resolution in seconds)`` of a log line's leading timestamp.

    Understands the services' ``2026-11-24T15:00:00.123Z`` (UTC), mosquitto's
    ``log_timestamp_format %Y-%m-%dT%H:%M:%S`` and Python's default
    ``2026-11-24 15:00:00,123`` (local time when no zone is given), and
    mosquitto's default epoch prefix ``1700000000:``.  Whole-second stamps
    have a resolution of 1 s: the event happened somewhere in that second.
    """
    match = _ISO.match(line)
    if match is not None:
        try:
            parsed = time.strptime(f"{match['date']} {match['time']}", "%Y-%m-%d %H:%M:%S")
        except ValueError:
            return None
        frac_text = match["frac"]
        frac = float("0." + frac_text) if frac_text else 0.0
        resolution = 10.0 ** -len(frac_text) if frac_text else 1.0
        tz = match["tz"]
        if tz is None:
            return time.mktime(parsed) + frac, resolution
        seconds = calendar.timegm(parsed) + frac
        if tz != "Z":
            sign = 1 if tz[0] == "+" else -1
            digits = tz[1:].replace(":", "")
            seconds -= sign * (int(digits[:2]) * 3600 + int(digits[2:]) * 60)
        return seconds, resolution
    epoch = _EPOCH.match(line)
    if epoch is not None:
        return float(epoch["epoch"]), 1.0
    return None
