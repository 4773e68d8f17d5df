"""The shared service base: config, topics, logging, scheduler, health, lifecycle."""

from __future__ import annotations

import json
import logging
import re
import threading
import time
from typing import Any

import paho.mqtt.client as paho
import pytest

from wildfire.common import (
    HEALTH_FAILURE,
    BadPayload,
    ConfigError,
    Scheduler,
    ServiceConfig,
    StructuredFormatter,
    TopicPrefix,
    default_client_id,
    log_event,
    parse_json_object,
)
from wildfire.fire_consensus import FireConsensus, FireConsensusConfig
from wildfire.gpio_trigger import GpioTrigger, GpioTriggerConfig

# -- configuration -----------------------------------------------------------


def test_defaults_without_environment() -> None:
    config = ServiceConfig.from_env({})
    assert (config.mqtt_broker, config.mqtt_port, config.topic_prefix) == ("localhost", 1883, "")
    assert config.health_interval == 10.0
    assert config.max_payload_bytes == 65536


@pytest.mark.parametrize(
    ("env", "field", "expected"),
    [
        ({"MQTT_BROKER": "broker.local"}, "mqtt_broker", "broker.local"),
        ({"MQTT_PORT": " 1884 "}, "mqtt_port", 1884),
        ({"TOPIC_PREFIX": "test/ab/gw0/"}, "topic_prefix", "test/ab/gw0"),
        ({"TOPIC_PREFIX": ""}, "topic_prefix", ""),
        ({"HEALTH_INTERVAL": "0.25"}, "health_interval", 0.25),
        ({"LOG_LEVEL": "debug"}, "log_level", "DEBUG"),
        ({"MQTT_CLIENT_ID": "custom-1"}, "client_id", "custom-1"),
        ({"MAX_PAYLOAD_BYTES": "10"}, "max_payload_bytes", 10),
    ],
    ids=lambda value: str(value) if not isinstance(value, dict) else ",".join(value),
)
def test_env_values_are_parsed(env: dict[str, str], field: str, expected: Any) -> None:
    assert getattr(ServiceConfig.from_env(env), field) == expected


@pytest.mark.parametrize(
    ("env", "variable"),
    [
        ({"MQTT_PORT": "abc"}, "MQTT_PORT='abc'"),
        ({"MQTT_PORT": "0"}, "MQTT_PORT=0"),
        ({"MQTT_PORT": "70000"}, "MQTT_PORT=70000"),
        ({"HEALTH_INTERVAL": "0"}, "HEALTH_INTERVAL=0.0"),
        ({"HEALTH_INTERVAL": "nan"}, "HEALTH_INTERVAL='nan'"),
        ({"HEALTH_INTERVAL": "soon"}, "HEALTH_INTERVAL='soon'"),
        ({"LOG_LEVEL": "LOUD"}, "LOG_LEVEL='LOUD'"),
        ({"TOPIC_PREFIX": "test/#"}, "TOPIC_PREFIX='test/#'"),
        ({"TOPIC_PREFIX": "a/+/b"}, "TOPIC_PREFIX='a/+/b'"),
        ({"TOPIC_PREFIX": "$SYS/x"}, "TOPIC_PREFIX='$SYS/x'"),
        ({"TOPIC_PREFIX": "a//b"}, "TOPIC_PREFIX='a//b'"),
        ({"MAX_PAYLOAD_BYTES": "-1"}, "MAX_PAYLOAD_BYTES=-1"),
        ({"RECONNECT_MIN_DELAY": "5", "RECONNECT_MAX_DELAY": "2"}, "RECONNECT_MAX_DELAY=2"),
    ],
    ids=lambda value: value if isinstance(value, str) else None,
)
def test_bad_env_names_variable_and_value(env: dict[str, str], variable: str) -> None:
    with pytest.raises(ConfigError) as info:
        ServiceConfig.from_env(env)
    assert variable in str(info.value)


@pytest.mark.parametrize(
    ("env", "variable"),
    [
        ({"MIN_CONFIDENCE": "1.5"}, "MIN_CONFIDENCE"),
        ({"CONSENSUS_THRESHOLD": "0"}, "CONSENSUS_THRESHOLD"),
        ({"AREA_GROWTH_RATIO": "0.9"}, "AREA_GROWTH_RATIO"),
        ({"MIN_AREA_RATIO": "0.5", "MAX_AREA_RATIO": "0.4"}, "MIN_AREA_RATIO"),
        ({"MOVING_AVERAGE_WINDOW": "2.5"}, "MOVING_AVERAGE_WINDOW"),
    ],
)
def test_consensus_knobs_are_validated(env: dict[str, str], variable: str) -> None:
    with pytest.raises(ConfigError, match=variable):
        FireConsensusConfig.from_env(env)


def test_direct_construction_is_validated_too() -> None:
    with pytest.raises(ConfigError, match="PRIME_DURATION"):
        GpioTriggerConfig(prime_duration=-1.0)


def test_default_client_id_is_unique_and_names_the_service() -> None:
    first, second = default_client_id("fire_consensus"), default_client_id("fire_consensus")
    assert first != second
    assert first.startswith("fire_consensus-")
    service = FireConsensus(FireConsensusConfig())
    assert service.client_id.startswith("fire_consensus-")
    assert FireConsensus(FireConsensusConfig()).client_id != service.client_id


# -- topics ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("prefix", "bare", "full"),
    [
        ("", "fire/trigger", "fire/trigger"),
        ("test/ab12/gw0/t-1", "fire/trigger", "test/ab12/gw0/t-1/fire/trigger"),
        ("p", "camera/announce/+", "p/camera/announce/+"),
        ("p", "#", "p/#"),
    ],
)
def test_prefix_full_and_strip_roundtrip(prefix: str, bare: str, full: str) -> None:
    topics = TopicPrefix(prefix)
    assert topics.full(bare) == full
    if "+" not in bare and "#" not in bare:
        assert topics.strip(full) == bare


@pytest.mark.parametrize(
    ("prefix", "incoming", "expected"),
    [
        # only a LEADING prefix is removed (str.replace would mangle these)
        ("test/x", "test/x/fire/test/x/trigger", "fire/test/x/trigger"),
        ("a", "a/a/a", "a/a"),
        # outside the prefix: ignored
        ("test/x", "test/xy/fire/trigger", None),
        ("test/x", "other/test/x/fire", None),
        ("test/x", "test/x", None),
        ("test/x", "test/x/", None),
        ("", "anything/at/all", "anything/at/all"),
    ],
)
def test_strip_removes_only_a_leading_prefix(
    prefix: str, incoming: str, expected: str | None
) -> None:
    assert TopicPrefix(prefix).strip(incoming) == expected


@pytest.mark.parametrize("prefix", ["a/#", "+", "a/", "/a", "$SYS"])
def test_invalid_prefix_is_refused(prefix: str) -> None:
    with pytest.raises(ConfigError, match="TOPIC_PREFIX"):
        TopicPrefix(prefix)


# -- payloads and logging ----------------------------------------------------


@pytest.mark.parametrize(
    "payload",
    [b"", b"not json", b"[1, 2]", b'"text"', b"\xff\xfe", b"{", b"null", b"42"],
)
def test_parse_json_object_rejects_non_objects(payload: bytes) -> None:
    with pytest.raises(BadPayload):
        parse_json_object(payload)


def test_structured_line_format() -> None:
    logger = logging.getLogger("wildfire.fire_consensus")
    record = logger.makeRecord(
        logger.name, logging.INFO, __file__, 1, "event=trigger cameras=cam1,cam2", (), None
    )
    line = StructuredFormatter().format(record)
    assert re.fullmatch(
        r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z INFO fire_consensus event=trigger "
        r"cameras=cam1,cam2",
        line,
    ), line


def test_log_event_quotes_values_and_stays_on_one_line(
    caplog: pytest.LogCaptureFixture,
) -> None:
    logger = logging.getLogger("wildfire.test_log_event")
    with caplog.at_level(logging.INFO, logger=logger.name):
        log_event(logger, logging.INFO, "x", cameras=["a", "b"], reason="two words", empty="")
    message = caplog.records[-1].getMessage()
    assert message == 'event=x cameras=a,b reason="two words" empty=""'
    try:
        raise ValueError("line one\nline two")
    except ValueError:
        record = logger.makeRecord(
            logger.name, logging.ERROR, __file__, 1, "boom", (), __import__("sys").exc_info()
        )
    assert "\n" not in StructuredFormatter().format(record)


# -- scheduler ---------------------------------------------------------------


def test_scheduler_runs_once_and_periodically_then_stops_for_good() -> None:
    scheduler = Scheduler("unit-scheduler", logging.getLogger("wildfire.unit"))
    once, every = threading.Event(), threading.Semaphore(0)
    calls: list[str] = []
    scheduler.start()
    scheduler.call_later(0.01, lambda: (calls.append("once"), once.set()))
    scheduler.call_every(0.01, lambda: (calls.append("tick"), every.release()))
    assert once.wait(5)
    for _ in range(3):
        assert every.acquire(timeout=5)
    assert scheduler.thread is not None
    assert scheduler.thread.name == "unit-scheduler"
    scheduler.stop()
    assert not scheduler.thread.is_alive()
    count = len(calls)
    late = scheduler.call_later(0, lambda: calls.append("late"))
    assert late.cancelled
    assert scheduler.pending() == 0
    assert len(calls) == count


def test_scheduler_cancel_and_failing_callback(caplog: pytest.LogCaptureFixture) -> None:
    scheduler = Scheduler("unit-scheduler-2", logging.getLogger("wildfire.unit"))
    fired = threading.Event()
    after_error = threading.Event()
    scheduler.start()
    try:
        cancelled = scheduler.call_later(0.02, fired.set)
        cancelled.cancel()

        def explode() -> None:
            raise RuntimeError("timer bug")

        scheduler.call_later(0.0, explode, name="explode")
        scheduler.call_later(0.05, after_error.set)
        assert after_error.wait(5), "a failing callback killed the scheduler"
        assert not fired.is_set()
        assert any("timer_error" in r.getMessage() for r in caplog.records)
    finally:
        scheduler.stop()


def test_scheduler_rejects_bad_interval() -> None:
    scheduler = Scheduler("unit-scheduler-3", logging.getLogger("wildfire.unit"))
    with pytest.raises(ValueError, match="interval"):
        scheduler.call_every(0, lambda: None)


# -- health and lifecycle against the broker ---------------------------------


def test_health_is_published_retained_right_after_connect(
    start_service: Any, mqtt_client: Any
) -> None:
    mqtt_client.subscribe("system/fire_consensus/#")
    service = start_service(FireConsensus, HEALTH_INTERVAL=30)
    mqtt_client.wait_for("system/fire_consensus/lwt", lambda m: m.payload == b"online")
    health = mqtt_client.wait_for("system/fire_consensus/health").json()
    # both are retained: a late subscriber gets them from the broker
    mqtt_client.subscribe("system/+/health")
    mqtt_client.subscribe("system/+/lwt")
    mqtt_client.wait_for("system/fire_consensus/health", lambda m: m.retain)
    mqtt_client.wait_for("system/fire_consensus/lwt", lambda m: m.retain and m.payload == b"online")
    for key in ("timestamp", "uptime", "service", "mqtt_connected", "pid"):
        assert key in health
    assert health["service"] == "fire_consensus"
    assert health["mqtt_connected"] is True
    assert health["cameras_online"] == 0
    assert health["trigger_count"] == 0
    assert service.health_published >= 1


def test_health_failure_is_logged_when_disconnected_and_when_client_is_gone(
    start_service: Any, dead_port: int, wildfire_log: pytest.LogCaptureFixture,
    wait_until: Any, find_log: Any,
) -> None:
    service = start_service(
        GpioTrigger, ready=False, MQTT_BROKER="127.0.0.1", MQTT_PORT=dead_port,
        HEALTH_INTERVAL=0.05,
    )
    wait_until(
        lambda: find_log(wildfire_log, f"{HEALTH_FAILURE}: not connected to the broker"),
        what="health failure logged",
    )
    assert service.health_failures >= 1
    started = time.monotonic()
    service.stop()
    assert time.monotonic() - started < 2.0
    assert service.publish_health() is False
    assert any(
        r.levelno == logging.ERROR and r.getMessage() == f"{HEALTH_FAILURE}: client is gone "
        "(service stopped)"
        for r in wildfire_log.records
    )


def test_no_timer_fires_after_stop(
    start_service: Any, mqtt_client: Any, wildfire_log: pytest.LogCaptureFixture,
    wait_until: Any,
) -> None:
    """The upstream bug: a leaked health timer fired after its client was torn down."""
    interval = 0.05
    mqtt_client.subscribe("system/gpio_trigger/health")
    service = start_service(GpioTrigger, HEALTH_INTERVAL=interval)
    # a few periodic health messages prove the timer runs
    wait_until(lambda: service.health_published >= 3, what="three health messages")
    service.stop()
    stopped_at = time.time()
    published, failures = service.health_published, service.health_failures
    leftovers = [t.name for t in threading.enumerate() if t.name.startswith("gpio_trigger")]
    assert leftovers == [], f"threads alive after stop(): {leftovers}"
    assert service.scheduler.pending() == 0
    # Ten health intervals must pass without any new health message on the broker.
    with pytest.raises(AssertionError):
        mqtt_client.wait_for(
            "system/gpio_trigger/health",
            lambda m: json.loads(m.payload)["timestamp"] > stopped_at,
            timeout=10 * interval,
        )
    assert (service.health_published, service.health_failures) == (published, failures)
    assert not [r for r in wildfire_log.records if HEALTH_FAILURE in r.getMessage()]


def test_stop_is_idempotent_and_start_is_single_use(start_service: Any) -> None:
    service = start_service(GpioTrigger)
    service.stop()
    service.stop()
    with pytest.raises(RuntimeError, match="already started or stopped"):
        service.start()


def test_stop_before_start_and_context_manager(service_env: Any) -> None:
    config = GpioTriggerConfig.from_env(service_env("gpio_trigger"))
    GpioTrigger(config).stop()
    with GpioTrigger(config) as service:
        assert service.wait_ready(10)
        assert service.connected
    assert not service.connected


def test_stop_while_broker_unreachable_is_quick(start_service: Any, dead_port: int) -> None:
    service = start_service(
        FireConsensus, ready=False, MQTT_BROKER="127.0.0.1", MQTT_PORT=dead_port
    )
    started = time.monotonic()
    service.stop()
    assert time.monotonic() - started < 2.0
    assert not [t for t in threading.enumerate() if t.name.startswith("fire_consensus")]


def test_messages_outside_the_prefix_are_ignored_and_oversized_dropped(
    wildfire_log: pytest.LogCaptureFixture, find_log: Any
) -> None:
    # The broker never routes a foreign topic to a prefixed subscription, so
    # feed the message callback directly, as paho would.
    config = GpioTriggerConfig(topic_prefix="test/x", max_payload_bytes=16, log_level="DEBUG")
    service = GpioTrigger(config)
    foreign = paho.MQTTMessage(topic=b"test/xy/fire/trigger")
    foreign.payload = b'{"action": "trigger"}'
    service._on_message(None, None, foreign)  # type: ignore[arg-type]
    assert service.messages_received == 0
    assert find_log(wildfire_log, "foreign_topic_ignored")
    big = paho.MQTTMessage(topic=b"test/x/fire/trigger")
    big.payload = b"{" + b" " * 64 + b"}"
    service._on_message(None, None, big)  # type: ignore[arg-type]
    assert (service.messages_received, service.messages_dropped) == (1, 1)
    assert find_log(wildfire_log, "reason=oversized", logging.WARNING)


def test_handler_bug_does_not_escape_the_callback(
    wildfire_log: pytest.LogCaptureFixture, find_log: Any
) -> None:
    class Broken(GpioTrigger):
        def handle_message(self, topic: str, payload: bytes) -> None:
            raise KeyError("bug")

    service = Broken(GpioTriggerConfig())
    message = paho.MQTTMessage(topic=b"fire/trigger")
    message.payload = b"{}"
    service._on_message(None, None, message)  # type: ignore[arg-type]
    assert service.messages_dropped == 1
    assert find_log(wildfire_log, "handler_error", logging.ERROR)


def test_reconnects_after_broker_restart(
    start_service: Any, mqtt_broker: Any, mqtt_client: Any, wait_until: Any,
    wildfire_log: pytest.LogCaptureFixture, find_log: Any,
) -> None:
    """The broker goes away and comes back: online again, subscriptions restored."""
    service = start_service(GpioTrigger, PRIME_DURATION=30)
    mqtt_broker.restart()
    wait_until(
        lambda: len(find_log(wildfire_log, "event=online")) >= 2,
        timeout=15,
        what="service reconnected and announced online again",
    )
    assert service.wait_ready(0)
    assert find_log(wildfire_log, "event=disconnected", logging.WARNING)
    # the test's own client reconnects too (it noticed the outage long ago);
    # its subscriptions must be renewed
    wait_until(mqtt_client.is_connected, timeout=15, what="test client reconnected")
    mqtt_client.subscribe("system/gpio_trigger/lwt", qos=1)
    mqtt_client.subscribe("system/trigger_telemetry", qos=1)
    # persistence is off: "online" and the telemetry were re-published after reconnect
    mqtt_client.wait_for("system/gpio_trigger/lwt", lambda m: m.payload == b"online")
    mqtt_client.publish("fire/trigger", json.dumps({"action": "trigger"}), qos=1)
    mqtt_client.wait_for("system/trigger_telemetry", lambda m: m.json()["state"] == "PRIMING")


def test_failed_start_leaves_nothing_running(dead_port: int) -> None:
    class Failing(GpioTrigger):
        SERVICE_NAME = "failing_start"

        def on_start(self) -> None:
            raise OSError("simulated start failure")

    service = Failing(GpioTriggerConfig(mqtt_broker="127.0.0.1", mqtt_port=dead_port))
    with pytest.raises(OSError, match="simulated"):
        service.start()
    assert not [t.name for t in threading.enumerate() if t.name.startswith("failing_start")]
    with pytest.raises(RuntimeError, match="single-use"):
        service.start()
