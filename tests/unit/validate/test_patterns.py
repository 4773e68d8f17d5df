"""The pattern table and log timestamp parsing."""

from __future__ import annotations

import calendar
import re
import time

import pytest

from parallel_isolation.validate import PATTERNS, LogPattern, Severity, register_pattern
from parallel_isolation.validate.patterns import classify_log, parse_log_ts

EPOCH = calendar.timegm((2026, 11, 24, 15, 0, 0, 0, 0, 0))


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("2026-11-24T15:00:00.123Z INFO fire_consensus event=x", EPOCH + 0.123),
        ("2026-11-24T15:00:00Z x", EPOCH),
        ("2026-11-24T17:00:00+02:00 x", EPOCH),
        ("2026-11-24T10:00:00-0500 x", EPOCH),
        ("1795537052: mosquitto version 2.0.11 running", 1795537052.0),
        ("Traceback (most recent call last):", None),
        ("", None),
        ("2026-13-45T99:00:00Z garbage", None),
        ('  File "x.py", line 3', None),
    ],
)
def test_parse_log_ts(line: str, expected: float | None) -> None:
    parsed = parse_log_ts(line)
    if expected is None:
        assert parsed is None
    else:
        assert parsed == pytest.approx(expected, abs=1e-3)


def test_parse_log_ts_without_zone_is_local_time() -> None:
    now = int(time.time())
    line = time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(now)) + ": Client x connected"
    assert parse_log_ts(line) == pytest.approx(now)
    python_default = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(now)) + ",250 ERROR x"
    assert parse_log_ts(python_default) == pytest.approx(now + 0.25)


@pytest.mark.parametrize(
    ("name", "kind"),
    [
        ("mqtt-broker.log", "broker"),
        ("mosquitto-20000.log", "broker"),
        ("fire_consensus-001.log", "service"),
        ("camera_detector.log", "service"),
    ],
)
def test_classify_log(name: str, kind: str) -> None:
    assert classify_log(name) == kind


def _first_match(line: str, source: str) -> str | None:
    for pattern in PATTERNS:
        if source in pattern.sources and pattern.regex.search(line):
            return pattern.code
    return None


@pytest.mark.parametrize(
    ("line", "source", "code"),
    [
        (
            "2026-11-24T15:00:00: Client legacy already connected, closing old connection.",
            "broker",
            "client-id-clash",
        ),
        ("2026-11-24T15:00:00: Error: Address already in use", "broker", "address-in-use"),
        ("OSError: [Errno 98] Address already in use", "test", "address-in-use"),
        (
            "Bind for 127.0.0.1:20000 failed: port is already allocated",
            "test",
            "port-allocated",
        ),
        (
            '409 Client Error: Conflict ("Conflict. The container name "/mqtt-broker-gw0" is already in use")',
            "service",
            "container-name-conflict",
        ),
        (
            "2026-11-24T15:00:00.001Z ERROR fire_consensus Failed to publish health: not connected",
            "service",
            "health-publish-failed",
        ),
        ("Traceback (most recent call last):", "service", "traceback"),
        ("2026-11-24T15:00:00: Error: Unable to open log file", "broker", "broker-error"),
        ("2026-11-24T15:00:00: New client connected from 127.0.0.1", "broker", None),
        ("Failed to publish health: x", "broker", None),  # services only
        ("Traceback (most recent call last):", "test", None),  # every failure has one
    ],
)
def test_pattern_table(line: str, source: str, code: str | None) -> None:
    assert _first_match(line, source) == code


def test_register_pattern_extends_and_refuses_duplicates() -> None:
    pattern = LogPattern(
        "segfault-demo",
        "Segmentation fault",
        re.compile("Segmentation fault"),
        Severity.ERROR,
        frozenset({"service"}),
        "a native crash",
    )
    register_pattern(pattern)
    try:
        assert _first_match("Segmentation fault (core dumped)", "service") == "segfault-demo"
        with pytest.raises(ValueError, match="exists already"):
            register_pattern(pattern)
    finally:
        PATTERNS.remove(pattern)


@pytest.mark.parametrize(
    ("sources", "excuse", "message"),
    [
        (frozenset({"kernel"}), None, "unknown sources"),
        (frozenset({"service"}), "because", "unknown excuse"),
    ],
)
def test_pattern_declaration_is_checked(
    sources: frozenset[str], excuse: str | None, message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        LogPattern("x", "x", re.compile("x"), Severity.INFO, sources, "", excuse)


@pytest.mark.parametrize(
    ("raw", "expected"), [("error", Severity.ERROR), (" Info ", Severity.INFO)]
)
def test_severity_parse(raw: str, expected: Severity) -> None:
    assert Severity.parse(raw) is expected


def test_severity_parse_rejects_unknown() -> None:
    with pytest.raises(ValueError, match="got 'fatal'"):
        Severity.parse("fatal")
