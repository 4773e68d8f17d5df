"""The shared service base: configuration, logging, topics, scheduling, MQTT.

Every service is a subclass of :class:`MqttService` configured by a frozen
subclass of :class:`ServiceConfig`.  The base owns the paho-mqtt 2.x client
(unique client id, last will, reconnect with backoff), the topic prefix, the
retained health message, one scheduler thread for all timers, and the
``python -m`` entry point (:func:`run_service`) that blocks until SIGTERM or
SIGINT.  Nothing here knows about the test toolkit: the services depend only
on paho-mqtt and the standard library.
"""

from __future__ import annotations

import dataclasses
import heapq
import itertools
import json
import logging
import math
import os
import secrets
import signal
import socket
import sys
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from types import TracebackType
from typing import Any, ClassVar, Self

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

__all__ = [
    "BadPayload",
    "ConfigError",
    "MqttService",
    "Scheduler",
    "ServiceConfig",
    "StructuredFormatter",
    "TimerHandle",
    "TopicPrefix",
    "configure_logging",
    "default_client_id",
    "knob",
    "log_event",
    "parse_json_object",
    "run_service",
]

LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
HEALTH_FAILURE = "Failed to publish health"
"""The start of the ERROR line logged whenever a health publish fails."""


# ---------------------------------------------------------------------------
# configuration


class ConfigError(ValueError):
    """A configuration value is invalid; the message names the variable."""


def _parse_float(raw: str) -> float:
    value = float(raw)
    if not math.isfinite(value):
        msg = "must be a finite number"
        raise ValueError(msg)
    return value


def _parse_int(raw: str) -> int:
    return int(raw, 10)


def _parse_str(raw: str) -> str:
    return raw


def _parse_level(raw: str) -> str:
    return raw.upper()


def _parse_prefix(raw: str) -> str:
    return raw.rstrip("/")


def _parse_csv(raw: str) -> tuple[str, ...]:
    return tuple(part.strip() for part in raw.split(",") if part.strip())


PARSERS: dict[str, Callable[[str], Any]] = {
    "float": _parse_float,
    "int": _parse_int,
    "str": _parse_str,
    "level": _parse_level,
    "prefix": _parse_prefix,
    "csv": _parse_csv,
}


def positive(value: float) -> str | None:
    return None if value > 0 else "must be > 0"


def non_negative(value: float) -> str | None:
    return None if value >= 0 else "must be >= 0"


def unit_interval(value: float) -> str | None:
    return None if 0.0 <= value <= 1.0 else "must be within [0, 1]"


def port_number(value: int) -> str | None:
    return None if 1 <= value <= 65535 else "must be a TCP port within [1, 65535]"


def log_level(value: str) -> str | None:
    return None if value in LOG_LEVELS else f"must be one of {', '.join(LOG_LEVELS)}"


def not_empty(value: str) -> str | None:
    return None if value.strip() else "must not be empty"


def topic_prefix(value: str) -> str | None:
    if value == "":
        return None
    if "+" in value or "#" in value:
        return "must not contain MQTT wildcards (+ or #)"
    if "\x00" in value:
        return "must not contain NUL"
    if value.startswith("$"):
        return "must not start with '$' (reserved for the broker)"
    if value.startswith("/") or "//" in value:
        return "must not contain empty topic levels"
    return None


def knob(
    env: str,
    default: Any,
    parser: str,
    check: Callable[[Any], str | None] | None = None,
    doc: str = "",
) -> Any:
    """Declare a config field read from environment variable ``env``.

    ``parser`` names an entry of :data:`PARSERS` (text to value); ``check``
    validates the typed value and returns an error text or ``None``.  The
    checks run in ``__post_init__``, so a config built directly in Python is
    validated as strictly as one built from the environment.
    """
    return field(
        default=default,
        metadata={"env": env, "parser": PARSERS[parser], "check": check, "doc": doc},
    )


@dataclass(frozen=True, kw_only=True)
class ServiceConfig:
    """Settings every service shares; subclasses add their own knobs.

    Build one from an environment mapping with :meth:`from_env`; fields not
    present in the mapping keep their defaults.
    """

    mqtt_broker: str = knob("MQTT_BROKER", "localhost", "str", not_empty, "broker host")
    mqtt_port: int = knob("MQTT_PORT", 1883, "int", port_number, "broker port")
    topic_prefix: str = knob(
        "TOPIC_PREFIX", "", "prefix", topic_prefix, "prefix of every topic, no trailing slash"
    )
    client_id: str = knob(
        "MQTT_CLIENT_ID", "", "str", None, "MQTT client id; default: service, host, pid, random"
    )
    health_interval: float = knob(
        "HEALTH_INTERVAL", 10.0, "float", positive, "seconds between health messages"
    )
    log_level: str = knob("LOG_LEVEL", "INFO", "level", log_level, "logging level")
    max_payload_bytes: int = knob(
        "MAX_PAYLOAD_BYTES", 65536, "int", positive, "larger payloads are dropped"
    )
    mqtt_keepalive: int = knob("MQTT_KEEPALIVE", 30, "int", positive, "MQTT keepalive seconds")
    reconnect_min_delay: int = knob(
        "RECONNECT_MIN_DELAY", 1, "int", positive, "first reconnect delay (seconds)"
    )
    reconnect_max_delay: int = knob(
        "RECONNECT_MAX_DELAY", 10, "int", positive, "longest reconnect delay (seconds)"
    )

    def __post_init__(self) -> None:
        for spec in dataclasses.fields(self):
            check = spec.metadata.get("check")
            if check is None:
                continue
            value = getattr(self, spec.name)
            problem = check(value)
            if problem is not None:
                env = spec.metadata.get("env", spec.name)
                msg = f"{env}={value!r} is invalid: {problem}"
                raise ConfigError(msg)
        if self.reconnect_max_delay < self.reconnect_min_delay:
            msg = (
                f"RECONNECT_MAX_DELAY={self.reconnect_max_delay!r} is invalid: must be >= "
                f"RECONNECT_MIN_DELAY={self.reconnect_min_delay!r}"
            )
            raise ConfigError(msg)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Self:
        """Read every knob from ``env`` (default :data:`os.environ`).

        Empty or missing variables keep the default.  A value that does not
        parse or fails its check raises :class:`ConfigError` naming the
        variable and the value.
        """
        source: Mapping[str, str] = os.environ if env is None else env
        values: dict[str, Any] = {}
        for spec in dataclasses.fields(cls):
            name = spec.metadata.get("env")
            if name is None:
                continue
            raw = source.get(name)
            if raw is None or raw.strip() == "":
                continue
            try:
                values[spec.name] = spec.metadata["parser"](raw.strip())
            except ValueError as error:
                msg = f"{name}={raw!r} is invalid: {error}"
                raise ConfigError(msg) from None
        return cls(**values)

    @classmethod
    def env_knobs(cls) -> list[tuple[str, Any, str]]:
        """``(variable, default, description)`` for every knob, for docs and --help."""
        return [
            (spec.metadata["env"], spec.default, spec.metadata.get("doc", ""))
            for spec in dataclasses.fields(cls)
            if "env" in spec.metadata
        ]


def default_client_id(service: str) -> str:
    """A client id unique per process and instance: service, host, pid, random."""
    host = socket.gethostname().split(".")[0] or "host"
    return f"{service}-{host}-{os.getpid()}-{secrets.token_hex(3)}"


# ---------------------------------------------------------------------------
# logging


class StructuredFormatter(logging.Formatter):
    """``2026-11-24T15:00:00.123Z INFO fire_consensus event=trigger ...``, one line."""

    def format(self, record: logging.LogRecord) -> str:
        stamp = datetime.fromtimestamp(record.created, UTC)
        when = stamp.strftime("%Y-%m-%dT%H:%M:%S.") + f"{stamp.microsecond // 1000:03d}Z"
        source = record.name.removeprefix("wildfire.")
        text = record.getMessage()
        if record.exc_info:
            text = f"{text} exc={_quote(self.formatException(record.exc_info))}"
        return f"{when} {record.levelname} {source} {text.replace(chr(10), chr(92) + 'n')}"


def configure_logging(level: str) -> None:
    """Send every log record to stderr, one structured line each (for ``main``)."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(StructuredFormatter())
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)


def _quote(value: object) -> str:
    text = ",".join(map(str, value)) if isinstance(value, list | tuple) else str(value)
    if text == "" or any(ch.isspace() or ch in '="' for ch in text):
        return json.dumps(text)
    return text


def log_event(logger: logging.Logger, level: int, event: str, **fields: object) -> None:
    """Log ``event=<event> key=value ...`` (values quoted when they need it)."""
    if not logger.isEnabledFor(level):
        return
    parts = [f"event={event}"]
    parts.extend(f"{key}={_quote(value)}" for key, value in fields.items())
    logger.log(level, "%s", " ".join(parts))


# ---------------------------------------------------------------------------
# topics and payloads


@dataclass(frozen=True)
class TopicPrefix:
    """Maps bare service topics to broker topics and back.

    An empty prefix means bare topics on the broker.  :meth:`strip` removes
    only a *leading* prefix and returns ``None`` for topics outside it.
    """

    prefix: str = ""

    def __post_init__(self) -> None:
        problem = topic_prefix(self.prefix)
        if problem is not None or self.prefix.endswith("/"):
            msg = f"TOPIC_PREFIX={self.prefix!r} is invalid: {problem or 'trailing slash'}"
            raise ConfigError(msg)

    def full(self, topic: str) -> str:
        """The broker topic (or filter) for a bare one."""
        return f"{self.prefix}/{topic}" if self.prefix else topic

    def strip(self, topic: str) -> str | None:
        """The bare topic, or ``None`` when ``topic`` is outside the prefix."""
        if not self.prefix:
            return topic
        lead = self.prefix + "/"
        if topic.startswith(lead) and len(topic) > len(lead):
            return topic[len(lead) :]
        return None


class BadPayload(ValueError):
    """An incoming payload that cannot be used; logged at WARNING and dropped."""


def parse_json_object(payload: bytes) -> dict[str, Any]:
    """Decode a JSON object payload or raise :class:`BadPayload`."""
    try:
        value = json.loads(payload)
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        msg = f"not valid JSON: {error}"
        raise BadPayload(msg) from None
    if not isinstance(value, dict):
        msg = f"expected a JSON object, got {type(value).__name__}"
        raise BadPayload(msg)
    return value


def require_number(data: Mapping[str, Any], key: str, *, default: float | None = None) -> float:
    """``data[key]`` as a finite float (``bool`` is not a number here)."""
    value = data.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int | float):
        msg = f"{key!r} must be a number, got {value!r}"
        raise BadPayload(msg)
    if not math.isfinite(value):
        msg = f"{key!r} must be finite, got {value!r}"
        raise BadPayload(msg)
    return float(value)


def require_text(data: Mapping[str, Any], key: str, *, default: str | None = None) -> str:
    """``data[key]`` as a non-empty string."""
    value = data.get(key, default)
    if not isinstance(value, str) or not value.strip():
        msg = f"{key!r} must be a non-empty string, got {value!r}"
        raise BadPayload(msg)
    return value


def valid_topic_level(value: str) -> bool:
    """True when ``value`` can be used as one topic level (an id in a topic)."""
    return bool(value) and not any(ch in value for ch in "/+#\x00") and len(value) <= 128


# ---------------------------------------------------------------------------
# scheduling


class TimerHandle:
    """A scheduled callback; :meth:`cancel` prevents any further run."""

    __slots__ = ("_cancelled", "callback", "interval", "name")

    def __init__(self, callback: Callable[[], object], interval: float | None, name: str) -> None:
        self.callback = callback
        self.interval = interval
        self.name = name
        self._cancelled = False

    def cancel(self) -> None:
        self._cancelled = True

    @property
    def cancelled(self) -> bool:
        return self._cancelled


class Scheduler:
    """All of a service's timers on one daemon thread.

    Callbacks run on the scheduler thread, one at a time.  :meth:`stop` wakes
    the thread, waits for a running callback to finish and joins it; after
    it returns no callback runs again, and nothing can be scheduled.
    """

    def __init__(self, name: str, logger: logging.Logger) -> None:
        self._name = name
        self._logger = logger
        self._cond = threading.Condition()
        self._heap: list[tuple[float, int, TimerHandle]] = []
        self._seq = itertools.count()
        self._stopped = False
        self._thread: threading.Thread | None = None

    @property
    def thread(self) -> threading.Thread | None:
        return self._thread

    def start(self) -> None:
        with self._cond:
            if self._stopped:
                msg = f"scheduler {self._name!r} was stopped; create a new one"
                raise RuntimeError(msg)
            if self._thread is not None:
                return
            self._thread = threading.Thread(target=self._run, name=self._name, daemon=True)
            self._thread.start()

    def call_later(
        self, delay: float, callback: Callable[[], object], name: str = ""
    ) -> TimerHandle:
        """Run ``callback`` once, ``delay`` seconds from now."""
        return self._add(max(0.0, delay), TimerHandle(callback, None, name))

    def call_every(
        self,
        interval: float,
        callback: Callable[[], object],
        name: str = "",
        first_delay: float | None = None,
    ) -> TimerHandle:
        """Run ``callback`` every ``interval`` seconds (first after ``first_delay``)."""
        if interval <= 0:
            msg = f"interval must be > 0, got {interval!r}"
            raise ValueError(msg)
        delay = interval if first_delay is None else max(0.0, first_delay)
        return self._add(delay, TimerHandle(callback, interval, name))

    def _add(self, delay: float, handle: TimerHandle) -> TimerHandle:
        with self._cond:
            if self._stopped:
                handle.cancel()
                return handle
            heapq.heappush(self._heap, (time.monotonic() + delay, next(self._seq), handle))
            self._cond.notify()
        return handle

    def pending(self) -> int:
        with self._cond:
            return sum(1 for _, _, handle in self._heap if not handle.cancelled)

    def stop(self, timeout: float = 2.0) -> None:
        """Cancel every timer and join the thread (unless called from it)."""
        with self._cond:
            self._stopped = True
            for _, _, handle in self._heap:
                handle.cancel()
            self._heap.clear()
            self._cond.notify_all()
            thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout)
            if thread.is_alive():
                log_event(self._logger, logging.ERROR, "scheduler_stuck", thread=thread.name)

    def _run(self) -> None:
        while True:
            with self._cond:
                handle = self._next_due()
                if handle is None:
                    return
            try:
                handle.callback()
            except Exception:
                self._logger.exception(
                    "event=timer_error timer=%s", handle.name or handle.callback.__name__
                )

    def _next_due(self) -> TimerHandle | None:
        """Wait (holding the condition) for the next due timer; None when stopped."""
        while not self._stopped:
            if not self._heap:
                self._cond.wait()
                continue
            due, _, handle = self._heap[0]
            if handle.cancelled:
                heapq.heappop(self._heap)
                continue
            now = time.monotonic()
            if due > now:
                self._cond.wait(due - now)
                continue
            heapq.heappop(self._heap)
            if handle.interval is not None:
                following = due + handle.interval
                if following <= now:
                    following = now + handle.interval
                heapq.heappush(self._heap, (following, next(self._seq), handle))
            return handle
        return None


# ---------------------------------------------------------------------------
# the service base


class MqttService:
    """Base of every service: MQTT connection, prefix, health, timers, lifecycle.

    Subclasses set :attr:`SERVICE_NAME` and :attr:`CONFIG_CLASS`, return their
    bare subscriptions from :meth:`subscriptions`, handle bare topics in
    :meth:`handle_message` (raise :class:`BadPayload` for unusable input), and
    add fields to :meth:`health_fields`.

    ``start()`` returns once the network loop and the scheduler run; the
    service connects in the background, retrying with backoff.  On every
    (re)connect it subscribes, and once the broker acknowledged the
    subscriptions it publishes ``online`` (retained) on
    ``system/<service>/lwt`` and a health message; :meth:`wait_ready` waits
    for that moment.  ``stop()`` cancels every timer, publishes ``offline``,
    disconnects and joins the threads.
    """

    SERVICE_NAME: ClassVar[str] = "service"
    CONFIG_CLASS: ClassVar[type[ServiceConfig]] = ServiceConfig

    def __init__(self, config: ServiceConfig | None = None) -> None:
        self.config = config if config is not None else self.CONFIG_CLASS.from_env()
        self.name = self.SERVICE_NAME
        self.client_id = self.config.client_id or default_client_id(self.name)
        self.topics = TopicPrefix(self.config.topic_prefix)
        self.logger = logging.getLogger(f"wildfire.{self.name}")
        self.logger.setLevel(self.config.log_level)
        self.lwt_topic = f"system/{self.name}/lwt"
        self.health_topic = f"system/{self.name}/health"
        self.scheduler = Scheduler(f"{self.name}-scheduler", self.logger)
        self.messages_received = 0
        self.messages_dropped = 0
        self.health_published = 0
        self.health_failures = 0
        self._client: mqtt.Client | None = None
        self._state_lock = threading.Lock()
        self._started = False
        self._stopping = False
        self._ready = threading.Event()
        self._subscribe_mid: int | None = None
        self._start_time = time.monotonic()

    # -- hooks for subclasses ------------------------------------------

    def subscriptions(self) -> list[tuple[str, int]]:
        """Bare topic filters and their QoS."""
        return []

    def handle_message(self, topic: str, payload: bytes) -> None:
        """Handle one message on a bare topic; raise BadPayload to drop it."""

    def health_fields(self) -> dict[str, Any]:
        """Service-specific fields added to every health message."""
        return {}

    def on_start(self) -> None:
        """Called at the end of :meth:`start` (schedule service timers here)."""

    def on_ready(self) -> None:
        """Called on the network thread after each (re)connect is complete."""

    def on_stop(self) -> None:
        """Called during :meth:`stop`, after the scheduler stopped, before offline."""

    # -- lifecycle -----------------------------------------------------

    @property
    def connected(self) -> bool:
        client = self._client
        return client is not None and client.is_connected()

    @property
    def running(self) -> bool:
        return self._started and not self._stopping

    def uptime(self) -> float:
        return time.monotonic() - self._start_time

    def start(self) -> None:
        """Start the network loop and the scheduler; connect in the background."""
        with self._state_lock:
            if self._started or self._stopping:
                msg = f"{self.name} was already started or stopped; services are single-use"
                raise RuntimeError(msg)
            self._started = True
        self._start_time = time.monotonic()
        try:
            self._start()
        except BaseException:
            # leave nothing running behind a failed start
            self.stop()
            raise

    def _start(self) -> None:
        client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=self.client_id,
            clean_session=True,
            protocol=mqtt.MQTTv311,
        )
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_subscribe = self._on_subscribe
        client.on_message = self._on_message
        client.on_connect_fail = self._on_connect_fail
        client.will_set(self.topics.full(self.lwt_topic), "offline", qos=1, retain=True)
        client.reconnect_delay_set(self.config.reconnect_min_delay, self.config.reconnect_max_delay)
        self._client = client
        log_event(
            self.logger,
            logging.INFO,
            "starting",
            broker=f"{self.config.mqtt_broker}:{self.config.mqtt_port}",
            prefix=self.config.topic_prefix or "-",
            client_id=self.client_id,
            pid=os.getpid(),
        )
        client.connect_async(
            self.config.mqtt_broker, self.config.mqtt_port, keepalive=self.config.mqtt_keepalive
        )
        client.loop_start()
        self._name_network_thread(client)
        self.scheduler.start()
        self.scheduler.call_every(self.config.health_interval, self.publish_health, name="health")
        self.on_start()

    def _name_network_thread(self, client: mqtt.Client) -> None:
        # paho names its loop thread "paho-mqtt-client-<id>"; leak detection
        # attributes threads by their service-name prefix, so rename it.
        thread = getattr(client, "_thread", None)
        if isinstance(thread, threading.Thread):
            thread.name = f"{self.name}-mqtt-{self.client_id}"

    def wait_ready(self, timeout: float = 10.0) -> bool:
        """Wait until connected, subscribed and announced ``online``."""
        return self._ready.wait(timeout)

    def stop(self, timeout: float = 2.0) -> None:
        """Cancel timers, publish offline, disconnect; idempotent."""
        with self._state_lock:
            if self._stopping or not self._started:
                self._stopping = True
                return
            self._stopping = True
        deadline = time.monotonic() + timeout
        self.scheduler.stop(timeout=max(0.1, timeout / 2))
        try:
            self.on_stop()
        except Exception:
            self.logger.exception("event=on_stop_error")
        client = self._client
        if client is not None:
            self._publish_offline(client, deadline)
            client.disconnect()
            # paho's loop_stop checks its thread handle, then joins it; the network
            # thread, ending after the disconnect, may clear the handle in between
            # (paho issue 872): that thread is already on its way out.
            ending = client._thread
            try:
                client.loop_stop()
            except AttributeError:
                if ending is None or client._thread is not None:
                    raise
            self._client = None
        self._ready.clear()
        log_event(self.logger, logging.INFO, "stopped", uptime=f"{self.uptime():.3f}")

    def _publish_offline(self, client: mqtt.Client, deadline: float) -> None:
        if not client.is_connected():
            log_event(self.logger, logging.INFO, "offline_skipped", reason="not connected")
            return
        info = client.publish(self.topics.full(self.lwt_topic), "offline", qos=1, retain=True)
        try:
            info.wait_for_publish(timeout=max(0.1, deadline - time.monotonic() - 0.2))
        except (RuntimeError, ValueError) as error:
            log_event(self.logger, logging.WARNING, "offline_publish_failed", reason=error)

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # -- publishing ----------------------------------------------------

    def publish(
        self,
        topic: str,
        payload: Mapping[str, Any] | str | bytes,
        *,
        qos: int = 0,
        retain: bool = False,
    ) -> bool:
        """Publish on a bare topic; JSON-encode mappings.  False when not sent."""
        client = self._client
        data: str | bytes = (
            json.dumps(payload, separators=(",", ":")) if isinstance(payload, Mapping) else payload
        )
        if client is None:
            log_event(self.logger, logging.WARNING, "publish_failed", topic=topic, reason="stopped")
            return False
        info = client.publish(self.topics.full(topic), data, qos=qos, retain=retain)
        if info.rc == mqtt.MQTT_ERR_NO_CONN and qos > 0:
            # paho keeps QoS 1/2 messages and sends them after the reconnect
            log_event(
                self.logger,
                logging.WARNING,
                "publish_queued",
                topic=topic,
                reason="not connected; sent after reconnect",
            )
            return True
        if info.rc != mqtt.MQTT_ERR_SUCCESS:
            log_event(
                self.logger,
                logging.WARNING,
                "publish_failed",
                topic=topic,
                reason=mqtt.error_string(info.rc),
            )
            return False
        return True

    def health_payload(self) -> dict[str, Any]:
        payload: dict[str, Any] = {
            "service": self.name,
            "timestamp": time.time(),
            "uptime": round(self.uptime(), 3),
            "mqtt_connected": self.connected,
            "pid": os.getpid(),
            "client_id": self.client_id,
            "messages_received": self.messages_received,
            "messages_dropped": self.messages_dropped,
        }
        payload.update(self.health_fields())
        return payload

    def publish_health(self) -> bool:
        """Publish retained health now; on failure log ``Failed to publish health: ...``."""
        client = self._client
        try:
            if client is None:
                reason = "client is gone (service stopped)"
            elif not client.is_connected():
                reason = "not connected to the broker"
            else:
                payload = json.dumps(self.health_payload(), separators=(",", ":"))
                info = client.publish(
                    self.topics.full(self.health_topic), payload, qos=0, retain=True
                )
                if info.rc == mqtt.MQTT_ERR_SUCCESS:
                    self.health_published += 1
                    return True
                reason = mqtt.error_string(info.rc)
        except (OSError, ValueError, RuntimeError) as error:
            reason = f"{type(error).__name__}: {error}"
        self.health_failures += 1
        self.logger.error("%s: %s", HEALTH_FAILURE, reason)
        return False

    # -- paho callbacks (network thread) -------------------------------

    def _on_connect(
        self,
        client: mqtt.Client,
        userdata: Any,
        flags: Any,
        reason_code: Any,
        properties: Any,
    ) -> None:
        if reason_code.is_failure:
            log_event(self.logger, logging.ERROR, "connect_refused", reason=reason_code)
            return
        if self._stopping:
            return
        filters = [(self.topics.full(topic), qos) for topic, qos in self.subscriptions()]
        log_event(self.logger, logging.INFO, "connected", subscriptions=len(filters))
        if not filters:
            self._announce_ready(client)
            return
        result, mid = client.subscribe(filters)
        if result != mqtt.MQTT_ERR_SUCCESS:
            log_event(
                self.logger, logging.ERROR, "subscribe_failed", reason=mqtt.error_string(result)
            )
            return
        self._subscribe_mid = mid

    def _on_subscribe(
        self,
        client: mqtt.Client,
        userdata: Any,
        mid: int,
        reason_codes: Any,
        properties: Any,
    ) -> None:
        if mid != self._subscribe_mid or self._stopping:
            return
        failed = [str(code) for code in reason_codes if code.is_failure]
        if failed:
            log_event(self.logger, logging.ERROR, "subscribe_refused", reasons=failed)
        self._announce_ready(client)

    def _announce_ready(self, client: mqtt.Client) -> None:
        client.publish(self.topics.full(self.lwt_topic), "online", qos=1, retain=True)
        log_event(self.logger, logging.INFO, "online", topic=self.topics.full(self.lwt_topic))
        try:
            self.on_ready()
        except Exception:
            self.logger.exception("event=on_ready_error")
        self.publish_health()
        self._ready.set()

    def _on_disconnect(
        self,
        client: mqtt.Client,
        userdata: Any,
        flags: Any,
        reason_code: Any,
        properties: Any,
    ) -> None:
        self._ready.clear()
        level = logging.INFO if self._stopping else logging.WARNING
        log_event(self.logger, level, "disconnected", reason=reason_code)

    def _on_connect_fail(self, client: mqtt.Client, userdata: Any) -> None:
        log_event(
            self.logger,
            logging.WARNING,
            "connect_failed",
            broker=f"{self.config.mqtt_broker}:{self.config.mqtt_port}",
        )

    def _on_message(self, client: mqtt.Client, userdata: Any, message: mqtt.MQTTMessage) -> None:
        topic = self.topics.strip(message.topic)
        if topic is None:
            log_event(self.logger, logging.DEBUG, "foreign_topic_ignored", topic=message.topic)
            return
        self.messages_received += 1
        payload = bytes(message.payload)
        if len(payload) > self.config.max_payload_bytes:
            self.messages_dropped += 1
            log_event(
                self.logger,
                logging.WARNING,
                "payload_dropped",
                topic=topic,
                reason="oversized",
                size=len(payload),
                limit=self.config.max_payload_bytes,
            )
            return
        try:
            self.handle_message(topic, payload)
        except BadPayload as error:
            self.messages_dropped += 1
            log_event(
                self.logger, logging.WARNING, "payload_dropped", topic=topic, reason=str(error)
            )
        except Exception:
            # A bug in a handler must not kill the network thread: log it
            # with its traceback and keep serving.
            self.messages_dropped += 1
            self.logger.exception("event=handler_error topic=%s", topic)


# ---------------------------------------------------------------------------
# python -m entry point


def run_service(
    service_class: type[MqttService],
    env: Mapping[str, str] | None = None,
    argv: Iterable[str] | None = None,
) -> int:
    """Build the service from the environment, run it until SIGTERM/SIGINT.

    Returns the process exit status: 0 after a clean stop, 2 for a bad
    configuration (the error names the variable and its value).
    """
    args = list(sys.argv[1:] if argv is None else argv)
    if args and args[0] in {"-h", "--help"}:
        print(_usage(service_class))
        return 0
    try:
        config = service_class.CONFIG_CLASS.from_env(env)
    except ConfigError as error:
        configure_logging("INFO")
        logging.getLogger(f"wildfire.{service_class.SERVICE_NAME}").critical(
            "event=config_error error=%s", _quote(str(error))
        )
        return 2
    configure_logging(config.log_level)
    # Block SIGTERM/SIGINT before any thread exists (threads inherit the mask)
    # and take them synchronously with sigwait: no handler runs at a random
    # point of the main thread, so nothing can deadlock on a lock it holds.
    signals = {signal.SIGTERM, signal.SIGINT}
    previous_mask = signal.pthread_sigmask(signal.SIG_BLOCK, signals)
    service = service_class(config)
    try:
        service.start()
        received = signal.Signals(signal.sigwait(signals))
        log_event(service.logger, logging.INFO, "signal_received", signal=received.name)
    finally:
        service.stop()
        signal.pthread_sigmask(signal.SIG_SETMASK, previous_mask)
    return 0


def _usage(service_class: type[MqttService]) -> str:
    lines = [
        f"usage: python -m wildfire.{service_class.SERVICE_NAME}",
        "",
        "Configured only through environment variables:",
    ]
    for name, default, doc in service_class.CONFIG_CLASS.env_knobs():
        lines.append(f"  {name:<24} default {default!r:<14} {doc}")
    return "\n".join(lines)
