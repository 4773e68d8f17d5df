"""A namespaced paho-mqtt client and event-driven message waiting.

:class:`NamespacedClient` wraps a paho 2.x client: topics going out (publish,
subscribe, unsubscribe, will, per-topic callbacks) are prefixed, topics coming
in are stripped, whenever the callbacks are assigned.  Every incoming message
is also kept by a :class:`MessageRecorder` so tests can wait for a message
matching a predicate until a deadline, and fail with what they did see.
"""

from __future__ import annotations

import json
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode

from parallel_isolation.mqtt.topics import (
    TopicError,
    TopicNamespace,
    validate_client_id,
    validate_filter,
)

__all__ = [
    "PAHO_LOOP_STOP",
    "MessageRecorder",
    "MessageTimeout",
    "NamespacedClient",
    "ReceivedMessage",
    "connect_client",
    "guard_loop_stop",
    "stop_network_loop",
    "topic_matches",
]

Predicate = Callable[["ReceivedMessage"], bool]
MessageCallback = Callable[["NamespacedClient", Any, "ReceivedMessage"], None]


#: paho's own ``Client.loop_stop``, as it was before any :func:`guard_loop_stop`.
PAHO_LOOP_STOP = paho.Client.loop_stop


def stop_network_loop(client: paho.Client) -> MQTTErrorCode:
    """``client.loop_stop()`` without paho's race with its own network thread.

    paho's ``loop_stop`` checks its thread handle, then joins it; the network
    thread clears that handle itself as it ends (after a disconnect). When the
    thread ends between the two, ``loop_stop`` raises ``AttributeError`` on
    ``None.join`` (seen in loaded soak runs, in tests' teardown: the common
    ``disconnect(); loop_stop()``). The thread ending is what was asked for:
    wait for it and go on.
    """
    thread = getattr(client, "_thread", None)
    try:
        return PAHO_LOOP_STOP(client)
    except AttributeError:
        if getattr(client, "_thread", None) is not None or thread is None:
            raise
        if thread is not threading.current_thread():
            thread.join()
        return MQTTErrorCode.MQTT_ERR_SUCCESS


def guard_loop_stop(enable: bool = True) -> bool:
    """Give every paho client :func:`stop_network_loop`'s ``loop_stop`` (or
    paho's own back, with ``enable=False``); whether anything changed.

    The plugin does this for the whole test session, so the suite's own
    clients (``client.disconnect(); client.loop_stop()`` in a fixture) do not
    fail their teardown when the machine is busy.  Only the race case behaves
    differently: paho's error there becomes the wait it meant.
    """
    wanted = stop_network_loop if enable else PAHO_LOOP_STOP
    if paho.Client.loop_stop is wanted:
        return False
    paho.Client.loop_stop = wanted  # type: ignore[assignment,method-assign]
    return True


def topic_matches(topic_filter: str, topic: str) -> bool:
    """MQTT filter matching (``+`` one level, ``#`` the rest)."""
    return bool(paho.topic_matches_sub(topic_filter, topic))


class MessageTimeout(AssertionError):
    """No message matched before the deadline."""


@dataclass(frozen=True)
class ReceivedMessage:
    """An incoming message, its topic already stripped of the namespace."""

    topic: str
    payload: bytes
    qos: int
    retain: bool
    received: float = field(default_factory=time.monotonic)
    full_topic: str = ""

    def text(self) -> str:
        return self.payload.decode("utf-8", errors="replace")

    def json(self) -> Any:
        return json.loads(self.payload)


class MessageRecorder:
    """Thread-safe record of received messages with deadline waits."""

    def __init__(self, limit: int = 10_000) -> None:
        self._messages: list[ReceivedMessage] = []
        self._cond = threading.Condition()
        self._limit = limit

    def record(self, message: ReceivedMessage) -> None:
        with self._cond:
            self._messages.append(message)
            if len(self._messages) > self._limit:
                del self._messages[: len(self._messages) - self._limit]
            self._cond.notify_all()

    def messages(self, topic_filter: str = "#") -> list[ReceivedMessage]:
        with self._cond:
            return [m for m in self._messages if topic_matches(topic_filter, m.topic)]

    def clear(self) -> None:
        with self._cond:
            self._messages.clear()

    def wait_for(
        self,
        topic_filter: str = "#",
        predicate: Predicate | None = None,
        *,
        timeout: float = 10.0,
        since: float | None = None,
    ) -> ReceivedMessage:
        """The first message on ``topic_filter`` satisfying ``predicate``.

        Messages already received count (subscribe first, then act, then wait)
        unless ``since`` (a ``time.monotonic()`` value) excludes older ones.
        On timeout, raises :class:`MessageTimeout` naming the topics seen.
        """
        validate_filter(topic_filter)
        deadline = time.monotonic() + timeout
        checked = 0
        with self._cond:
            while True:
                for message in self._messages[checked:]:
                    if since is not None and message.received < since:
                        continue
                    if topic_matches(topic_filter, message.topic) and (
                        predicate is None or _safe(predicate, message)
                    ):
                        return message
                checked = len(self._messages)
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise MessageTimeout(self._timeout_text(topic_filter, predicate, timeout))
                self._cond.wait(remaining)

    def _timeout_text(self, topic_filter: str, predicate: Predicate | None, timeout: float) -> str:
        seen = Counter(m.topic for m in self._messages)
        matching = [m for m in self._messages if topic_matches(topic_filter, m.topic)]
        shown = ", ".join(f"{topic} x{count}" for topic, count in seen.most_common(15)) or "none"
        detail = ""
        if matching and predicate is not None:
            last = matching[-1].payload[:200]
            detail = f"; {len(matching)} on the filter failed the predicate, last payload {last!r}"
        return (
            f"no message on {topic_filter!r}{' matching the predicate' if predicate else ''} "
            f"within {timeout:.1f} s{detail}; topics seen: {shown}"
        )


def _safe(predicate: Predicate, message: ReceivedMessage) -> bool:
    """A predicate that raises (bad JSON, missing key) simply does not match."""
    try:
        return bool(predicate(message))
    except (ValueError, KeyError, TypeError, AttributeError, IndexError):
        return False


_WRAPPED_CALLBACKS = frozenset({"on_message"})


class NamespacedClient:
    """A paho client whose topics live in a :class:`TopicNamespace`.

    Attribute access falls through to the wrapped client, so ``connect``,
    ``loop_start``, ``on_connect`` and the rest work as usual.  ``on_message``
    and :meth:`message_callback_add` callbacks receive
    :class:`ReceivedMessage` values with bare topics.
    """

    def __init__(
        self,
        client: paho.Client,
        namespace: TopicNamespace,
        recorder: MessageRecorder | None = None,
    ) -> None:
        object.__setattr__(self, "_client", client)
        object.__setattr__(self, "namespace", namespace)
        object.__setattr__(self, "recorder", recorder or MessageRecorder())
        object.__setattr__(self, "_on_message", None)
        object.__setattr__(self, "_callbacks", [])
        object.__setattr__(self, "_suback", {})
        object.__setattr__(self, "_suback_lock", threading.Lock())
        object.__setattr__(self, "foreign", 0)
        client.on_message = self._dispatch
        client.on_subscribe = self._on_suback

    # -- attribute plumbing -------------------------------------------

    @property
    def client(self) -> paho.Client:
        return self._client  # type: ignore[no-any-return]

    def __getattr__(self, name: str) -> Any:
        return getattr(self._client, name)

    def loop_stop(self) -> None:
        """Stop the network thread (see :func:`stop_network_loop`)."""
        stop_network_loop(self._client)

    def __setattr__(self, name: str, value: Any) -> None:
        if name in _WRAPPED_CALLBACKS:
            object.__setattr__(self, "_on_message", value)
        elif name == "on_subscribe":
            object.__setattr__(self, "_user_on_subscribe", value)
        elif name in self.__dict__ or name.startswith("_"):
            object.__setattr__(self, name, value)
        else:
            setattr(self._client, name, value)

    @property
    def on_message(self) -> MessageCallback | None:
        return self._on_message  # type: ignore[no-any-return]

    # -- outgoing -----------------------------------------------------

    def publish(
        self,
        topic: str,
        payload: Any = None,
        qos: int = 0,
        retain: bool = False,
        properties: Any = None,
    ) -> paho.MQTTMessageInfo:
        if isinstance(payload, dict | list):
            payload = json.dumps(payload)
        info: paho.MQTTMessageInfo = self._client.publish(
            self.namespace.topic(topic), payload, qos, retain, properties
        )
        return info

    def subscribe(
        self,
        topic: str | tuple[str, int] | list[tuple[str, int]],
        qos: int = 0,
        *,
        wait: bool = True,
        timeout: float = 5.0,
    ) -> tuple[int, int | None]:
        """Subscribe to bare filters; by default wait for the broker's SUBACK.

        Waiting closes the race where a message published right after
        ``subscribe`` reaches the broker before the subscription does.
        """
        if isinstance(topic, str):
            request: Any = self.namespace.filter(topic)
        elif isinstance(topic, tuple):
            request = (self.namespace.filter(topic[0]), topic[1])
        else:
            request = [(self.namespace.filter(t), q) for t, q in topic]
        event = threading.Event()
        with self._suback_lock:
            rc, mid = self._client.subscribe(request, qos)
            if mid is not None:
                self._suback[mid] = event
        if rc != paho.MQTT_ERR_SUCCESS:
            msg = f"subscribe to {topic!r} failed: {paho.error_string(rc)}"
            raise ConnectionError(msg)
        if wait and mid is not None and not self._in_network_thread() and not event.wait(timeout):
            msg = f"no SUBACK for {topic!r} within {timeout:.1f} s"
            raise MessageTimeout(msg)
        return rc, mid

    def unsubscribe(self, topic: str | list[str]) -> tuple[int, int | None]:
        filters: str | list[str] = (
            self.namespace.filter(topic)
            if isinstance(topic, str)
            else [self.namespace.filter(t) for t in topic]
        )
        result: tuple[int, int | None] = self._client.unsubscribe(filters)
        return result

    def will_set(
        self,
        topic: str,
        payload: Any = None,
        qos: int = 0,
        retain: bool = False,
        properties: Any = None,
    ) -> None:
        self._client.will_set(self.namespace.topic(topic), payload, qos, retain, properties)

    def message_callback_add(self, topic_filter: str, callback: MessageCallback) -> None:
        validate_filter(topic_filter)
        self._callbacks.append((topic_filter, callback))

    def message_callback_remove(self, topic_filter: str) -> None:
        object.__setattr__(
            self, "_callbacks", [(f, cb) for f, cb in self._callbacks if f != topic_filter]
        )

    # -- waiting ------------------------------------------------------

    def wait_for(
        self,
        topic_filter: str = "#",
        predicate: Predicate | None = None,
        *,
        timeout: float = 10.0,
        since: float | None = None,
    ) -> ReceivedMessage:
        recorder: MessageRecorder = self.recorder
        return recorder.wait_for(topic_filter, predicate, timeout=timeout, since=since)

    def messages(self, topic_filter: str = "#") -> list[ReceivedMessage]:
        recorder: MessageRecorder = self.recorder
        return recorder.messages(topic_filter)

    # -- incoming -----------------------------------------------------

    def _in_network_thread(self) -> bool:
        thread = getattr(self._client, "_thread", None)
        return thread is not None and thread is threading.current_thread()

    def _on_suback(self, client: paho.Client, userdata: Any, mid: int, *rest: Any) -> None:
        with self._suback_lock:
            event = self._suback.pop(mid, None)
        if event is not None:
            event.set()
        user = self.__dict__.get("_user_on_subscribe")
        if user is not None:
            user(client, userdata, mid, *rest)

    def _dispatch(self, client: paho.Client, userdata: Any, message: paho.MQTTMessage) -> None:
        try:
            bare = self.namespace.strip(message.topic)
        except TopicError:
            object.__setattr__(self, "foreign", self.foreign + 1)
            return
        received = ReceivedMessage(
            topic=bare,
            payload=bytes(message.payload),
            qos=message.qos,
            retain=bool(message.retain),
            full_topic=message.topic,
        )
        self.recorder.record(received)
        handled = False
        for topic_filter, callback in list(self._callbacks):
            if topic_matches(topic_filter, bare):
                callback(self, userdata, received)
                handled = True
        if not handled and self._on_message is not None:
            self._on_message(self, userdata, received)


def connect_client(
    host: str,
    port: int,
    *,
    client_id: str,
    namespace: TopicNamespace,
    will: tuple[str, bytes | str, int, bool] | None = None,
    timeout: float = 10.0,
    keepalive: int = 30,
    clean_session: bool = True,
) -> NamespacedClient:
    """Create, connect and start a namespaced client; wait for CONNACK."""
    validate_client_id(client_id)
    raw = paho.Client(
        CallbackAPIVersion.VERSION2,
        client_id=client_id,
        clean_session=clean_session,
        protocol=paho.MQTTv311,
    )
    client = NamespacedClient(raw, namespace)
    if will is not None:
        client.will_set(*will)
    connected = threading.Event()
    failure: list[str] = []

    def on_connect(_c: paho.Client, _u: Any, _f: Any, reason: Any, _p: Any) -> None:
        if reason.is_failure:
            failure.append(str(reason))
        connected.set()

    raw.on_connect = on_connect
    try:
        raw.connect(host, port, keepalive)
    except OSError as error:
        msg = f"cannot connect MQTT client {client_id!r} to {host}:{port}: {error}"
        raise ConnectionError(msg) from error
    raw.loop_start()
    if not connected.wait(timeout) or failure:
        stop_network_loop(raw)
        raw.disconnect()
        why = failure[0] if failure else f"no CONNACK within {timeout:.1f} s"
        msg = f"MQTT client {client_id!r} could not connect to {host}:{port}: {why}"
        raise ConnectionError(msg)
    return client


def disconnect_quietly(clients: Iterable[NamespacedClient | paho.Client]) -> None:
    """Disconnect and stop the network loops of ``clients`` (teardown helper)."""
    for client in clients:
        client.disconnect()
        stop_network_loop(client.client if isinstance(client, NamespacedClient) else client)
