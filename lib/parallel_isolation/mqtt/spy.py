"""A broker-side spy per worker: records messages outside the worker's namespaces.

When a worker's broker starts, :func:`watch` connects one extra client to it
(its own client id, clean session, QoS 0) subscribed to ``#``.  Every message
whose topic is not under a namespace the worker handed out — the worker
namespace ``test/{run8}/{worker}``, which contains every test's
sub-namespace — is cross-talk: a bare topic from a test that bypassed the
namespace, or a foreign client publishing into this broker.  Findings go to
``<worker>/crosstalk.jsonl`` (:data:`~parallel_isolation.artifacts.CROSSTALK_FILE`); ``invoke validate`` maps them to tests.

The spy stays out of the way: it publishes nothing but its own flush canary
when it stops (under ``_isolation/``), ignores the toolkit's canaries, never counts ``$`` topics (``#`` does not match
them), reconnects after a broker restart, and its network thread's name
starts with :data:`~parallel_isolation.ownership.SESSION_THREAD_PREFIX` so the
leak detector knows it belongs to the session.  A spy that cannot start
records ``spy_failed`` and the run goes on.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import socket
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion

from parallel_isolation.artifacts import EventLog
from parallel_isolation.ownership import SESSION_THREAD_PREFIX

__all__ = ["IGNORED_PREFIXES", "CrossTalkSpy", "watch"]

log = logging.getLogger(__name__)

IGNORED_PREFIXES = ("_isolation/",)
"""Topics of the toolkit's own canaries (broker readiness), never cross-talk."""
_MAX_RECORDS = 2000
_TCP_QUICKACK: int | None = getattr(socket, "TCP_QUICKACK", None)
_PAYLOAD_PREVIEW = 160


class CrossTalkSpy:
    """A ``#`` subscriber on one broker that records topics outside ``allowed``."""

    def __init__(
        self,
        *,
        host: str,
        port: int,
        client_id: str,
        allowed: tuple[str, ...],
        out_path: Path,
        events: EventLog | None = None,
        thread_name: str = f"{SESSION_THREAD_PREFIX}-spy",
    ) -> None:
        self.host = host
        self.port = port
        self.client_id = client_id
        self.allowed = tuple(prefix.rstrip("/") + "/" for prefix in allowed)
        self.out_path = out_path
        self.events = events
        self.thread_name = thread_name
        self.seen = 0
        self.recorded = 0
        self.dropped = 0
        self._subscribed = threading.Event()
        self._lock = threading.Lock()
        self._seen_changed = threading.Condition(self._lock)
        self._thread: threading.Thread | None = None
        self._flushes: dict[str, threading.Event] = {}
        self._client = paho.Client(
            CallbackAPIVersion.VERSION2, client_id=client_id, clean_session=True
        )
        self._client.on_connect = self._on_connect
        self._client.on_subscribe = self._on_subscribe
        self._client.on_message = self._on_message
        self._client.on_disconnect = self._on_disconnect
        self._client.reconnect_delay_set(1, 2)

    # -- lifecycle ------------------------------------------------------

    def start(self, timeout: float = 5.0) -> CrossTalkSpy:
        """Connect and wait until the ``#`` subscription is acknowledged."""
        self.out_path.parent.mkdir(parents=True, exist_ok=True)
        self._client.connect(self.host, self.port, keepalive=30)
        self._thread = threading.Thread(
            target=self._client.loop_forever,
            kwargs={"retry_first_connection": True},
            name=self.thread_name,
            daemon=True,
        )
        self._thread.start()
        if not self.wait_subscribed(timeout):
            self.stop()
            msg = (
                f"cross-talk spy {self.client_id!r} on {self.host}:{self.port}: "
                f"subscription to '#' not acknowledged within {timeout:.1f} s"
            )
            raise TimeoutError(msg)
        self._emit("spy_started", port=self.port, client_id=self.client_id, allowed=self.allowed)
        return self

    def flush(self, timeout: float = 2.0) -> bool:
        """Wait until everything published before now has reached the spy.

        Publishes a canary to itself: the broker delivers to one subscriber
        in order, so once the canary is back, every earlier message is too.
        (Needed because a broker may hold small packets back for a while,
        e.g. mosquitto without ``set_tcp_nodelay``.)
        """
        if not self._subscribed.is_set():
            return False
        token = f"{IGNORED_PREFIXES[0]}spy-flush/{uuid.uuid4().hex}"
        arrived = threading.Event()
        self._flushes[token] = arrived
        try:
            self._client.publish(token, b"", qos=0)
            return arrived.wait(timeout)
        finally:
            self._flushes.pop(token, None)

    def stop(self, timeout: float = 5.0) -> None:
        """Flush, disconnect and join the network thread (bounded)."""
        flushed = self.flush(timeout)
        thread = self._thread
        self._thread = None
        self._client.disconnect()
        if thread is not None:
            thread.join(timeout)
        self._emit(
            "spy_stopped",
            port=self.port,
            seen=self.seen,
            crosstalk=self.recorded + self.dropped,
            alive=bool(thread and thread.is_alive()),
            flushed=flushed,
        )

    def wait_subscribed(self, timeout: float) -> bool:
        """Wait until the spy is (re)connected and its ``#`` subscription acknowledged."""
        return self._subscribed.wait(timeout)

    def wait_seen(self, count: int, timeout: float) -> bool:
        """Wait until the spy received at least ``count`` messages in total."""
        with self._seen_changed:
            return self._seen_changed.wait_for(lambda: self.seen >= count, timeout)

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    # -- paho callbacks (network thread) ----------------------------------

    def _on_connect(
        self, client: paho.Client, _userdata: Any, _flags: Any, reason: Any, _props: Any = None
    ) -> None:
        self._quickack()
        if not getattr(reason, "is_failure", False):
            client.subscribe("#", qos=0)

    def _quickack(self) -> None:
        # ACK at once what the broker sent: a broker socket without TCP_NODELAY
        # (mosquitto's default) otherwise holds the next message back until our
        # delayed ACK (~40 ms), and the spy would see it late and attribute it
        # to the wrong test.  TCP_QUICKACK is not sticky, so it is re-armed on
        # every packet.
        sock = self._client.socket()
        if isinstance(sock, socket.socket) and _TCP_QUICKACK is not None:
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.IPPROTO_TCP, _TCP_QUICKACK, 1)

    def _on_subscribe(self, *_args: Any) -> None:
        self._quickack()
        self._subscribed.set()

    def _on_disconnect(self, *_args: Any) -> None:
        self._subscribed.clear()

    def _on_message(self, _client: paho.Client, _userdata: Any, message: paho.MQTTMessage) -> None:
        self._quickack()
        topic = message.topic
        if not topic.startswith(self.allowed) and not topic.startswith(IGNORED_PREFIXES):
            self._record(topic, message)
        elif topic in self._flushes:
            self._flushes[topic].set()
        with self._seen_changed:  # counted once recorded, so waiters see the record
            self.seen += 1
            self._seen_changed.notify_all()

    def _record(self, topic: str, message: paho.MQTTMessage) -> None:
        with self._seen_changed:
            if self.recorded >= _MAX_RECORDS:
                self.dropped += 1
                return
            self.recorded += 1
        payload = bytes(message.payload)
        record = {
            "ts": round(time.time(), 4),
            "topic": topic,
            "qos": message.qos,
            "retain": bool(message.retain),
            "size": len(payload),
            "payload": payload[:_PAYLOAD_PREVIEW].decode("utf-8", errors="replace"),
        }
        line = (json.dumps(record) + "\n").encode()
        fd = os.open(self.out_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        try:
            os.write(fd, line)
        finally:
            os.close(fd)

    def _emit(self, kind: str, **fields: Any) -> None:
        if self.events is not None:
            self.events.emit(kind, **fields)


def watch(
    *,
    host: str,
    port: int,
    client_id: str,
    allowed: tuple[str, ...],
    out_path: Path,
    events: EventLog,
    thread_name: str,
) -> CrossTalkSpy | None:
    """Start a spy on a freshly started broker; None (and a ``spy_failed`` event) if it cannot."""
    spy = CrossTalkSpy(
        host=host,
        port=port,
        client_id=client_id,
        allowed=allowed,
        out_path=out_path,
        events=events,
        thread_name=thread_name,
    )
    try:
        return spy.start()
    except (OSError, TimeoutError) as error:
        events.emit("spy_failed", port=port, error=str(error))
        log.warning("cross-talk spy not started on %s:%s: %s", host, port, error)
        return None
