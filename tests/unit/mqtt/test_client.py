from __future__ import annotations

import threading

import paho.mqtt.client as paho
import pytest
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode

from parallel_isolation.mqtt.client import (
    PAHO_LOOP_STOP,
    MessageRecorder,
    MessageTimeout,
    NamespacedClient,
    ReceivedMessage,
    guard_loop_stop,
    stop_network_loop,
)
from parallel_isolation.mqtt.topics import TopicError, TopicNamespace
from parallel_isolation.session.context import ParallelTestContext


def test_prefixes_out_and_strips_in(
    mqtt_client: NamespacedClient, topic_namespace: TopicNamespace
) -> None:
    mqtt_client.subscribe("fire/+/detection", qos=1)
    mqtt_client.publish("fire/cam1/detection", {"confidence": 0.9}, qos=1)
    message = mqtt_client.wait_for("fire/#", timeout=30)
    assert message.topic == "fire/cam1/detection"
    assert message.full_topic == f"{topic_namespace.prefix}/fire/cam1/detection"
    assert message.json() == {"confidence": 0.9}


def test_callbacks_assigned_later_see_bare_topics(
    parallel_test_context: ParallelTestContext,
) -> None:
    client = parallel_test_context.mqtt_client("late")
    seen: list[str] = []
    specific: list[str] = []
    done = threading.Event()

    def on_message(c: NamespacedClient, _u: object, m: ReceivedMessage) -> None:
        seen.append(m.topic)
        done.set()

    client.on_message = on_message
    client.message_callback_add("special/#", lambda _c, _u, m: specific.append(m.topic))
    client.subscribe("#", qos=1)
    client.publish("special/a", b"1", qos=1)
    client.publish("plain/b", b"2", qos=1)
    assert done.wait(30)
    client.wait_for("special/a", timeout=30)
    assert seen == ["plain/b"]  # specific callbacks take precedence, like paho
    assert specific == ["special/a"]
    assert client.on_message is on_message


def test_last_will_is_namespaced(parallel_test_context: ParallelTestContext) -> None:
    watcher = parallel_test_context.mqtt_client("watcher")
    watcher.subscribe("clients/+/status", qos=1)
    doomed = parallel_test_context.mqtt_client(
        "doomed", will=("clients/doomed/status", "offline", 1, False)
    )
    doomed._client._sock_close()  # abrupt: no DISCONNECT, so the will fires
    doomed.loop_stop()
    will = watcher.wait_for("clients/doomed/status", timeout=10)
    assert will.payload == b"offline"


def test_retained_messages_stay_in_their_test(parallel_test_context: ParallelTestContext) -> None:
    writer = parallel_test_context.mqtt_client("writer")
    writer.publish("state/pump", b"RUNNING", qos=1, retain=True).wait_for_publish(5)
    other_ns = parallel_test_context.worker.namespace.for_test("some/other::test")
    reader = parallel_test_context.mqtt_client("reader", namespace=other_ns)
    reader.subscribe("state/#", qos=1)
    with pytest.raises(MessageTimeout):
        reader.wait_for("state/pump", timeout=0.5)
    same = parallel_test_context.mqtt_client("same")
    same.subscribe("state/#", qos=1)
    assert same.wait_for("state/pump", timeout=30).retain


@pytest.mark.isolation_expect(
    "crosstalk"
)  # the raw client publishes outside any namespace on purpose
def test_foreign_messages_are_dropped(parallel_test_context: ParallelTestContext) -> None:
    client = parallel_test_context.mqtt_client("strict")
    client.client.subscribe("#", 1)  # raw, so the broker sends us everything
    client.subscribe("mine", qos=1)  # its SUBACK implies the raw one was processed
    sender = parallel_test_context.mqtt_client("sender")
    sender.client.publish("elsewhere/x", b"?", qos=1)  # outside any namespace
    sender.publish("mine", b"!", qos=1)  # same sender, so it arrives after the foreign one
    client.wait_for("mine", timeout=30)
    assert [m.topic for m in client.messages("#")] == ["mine"]
    assert client.foreign >= 1  # retained messages of earlier tests count too


def test_publish_rejects_invalid_topics(mqtt_client: NamespacedClient) -> None:
    with pytest.raises(TopicError, match="wildcard"):
        mqtt_client.publish("fire/#", b"x")
    with pytest.raises(TopicError, match="reserved"):
        mqtt_client.publish("$SYS/x", b"x")


def test_timeout_names_what_was_seen() -> None:
    recorder = MessageRecorder()
    recorder.record(ReceivedMessage("fire/trigger", b"{}", 1, False))
    recorder.record(ReceivedMessage("pump/state", b"IDLE", 1, False))
    with pytest.raises(MessageTimeout) as info:
        recorder.wait_for("pump/state", lambda m: m.text() == "RUNNING", timeout=0.05)
    text = str(info.value)
    assert "'pump/state' matching the predicate within 0.1 s" in text
    assert "fire/trigger x1" in text
    assert "last payload b'IDLE'" in text


def test_wait_wakes_on_arrival_and_honours_since() -> None:
    recorder = MessageRecorder()
    recorder.record(ReceivedMessage("a", b"old", 0, False, received=0.0))
    threading.Timer(0.05, recorder.record, args=(ReceivedMessage("a", b"new", 0, False),)).start()
    assert recorder.wait_for("a", since=1.0, timeout=30).payload == b"new"


def test_raising_predicate_does_not_match() -> None:
    recorder = MessageRecorder()
    recorder.record(ReceivedMessage("a", b"not json", 0, False))
    recorder.record(ReceivedMessage("a", b'{"ok": true}', 0, False))
    assert recorder.wait_for("a", lambda m: m.json()["ok"], timeout=30).payload == b'{"ok": true}'


def test_wait_for_message_fixture(mqtt_client: NamespacedClient, wait_for_message) -> None:  # type: ignore[no-untyped-def]
    mqtt_client.subscribe("x/y", qos=1)
    mqtt_client.publish("x/y", b"z", qos=1)
    assert wait_for_message(mqtt_client, "x/y", timeout=30).payload == b"z"


class _RacingClient(paho.Client):
    """A paho client whose network thread ends while ``loop_stop`` runs: the
    handle reads as the thread ``reads`` more times, then as None (the thread's
    own ``finally``), which is paho's race with itself."""

    def __init__(self, thread: threading.Thread, reads: int) -> None:
        self._racing: threading.Thread | None = None
        self._reads = 0
        super().__init__(CallbackAPIVersion.VERSION2)
        self._racing, self._reads = thread, reads

    @property  # type: ignore[override]
    def _thread(self) -> threading.Thread | None:
        if self._reads <= 0:
            return None
        self._reads -= 1
        return self._racing

    @_thread.setter
    def _thread(self, value: threading.Thread | None) -> None:
        self._racing = value


def _ending_thread() -> tuple[threading.Thread, threading.Event]:
    release = threading.Event()
    thread = threading.Thread(target=release.wait, args=(30,))
    thread.start()
    return thread, release


def test_paho_loses_its_own_race_without_the_guard() -> None:
    """The reproduction is real: paho's own loop_stop fails on it."""
    thread, release = _ending_thread()
    racing = _RacingClient(thread, reads=2)  # paho's check and comparison see it
    try:
        with pytest.raises(AttributeError, match="'NoneType' object has no attribute 'join'"):
            PAHO_LOOP_STOP(racing)
    finally:
        release.set()
        thread.join()


def test_stopping_a_network_loop_that_ends_at_that_moment_is_not_an_error() -> None:
    thread, release = _ending_thread()
    racing = _RacingClient(thread, reads=3)  # ours, then paho's check and comparison
    release.set()
    stop_network_loop(racing)
    assert not thread.is_alive(), "the ended thread was waited for"


def test_other_attribute_errors_of_loop_stop_still_surface() -> None:
    class Broken(paho.Client):
        @property  # type: ignore[override]
        def _thread(self) -> threading.Thread | None:
            raise AttributeError("something else")

        @_thread.setter
        def _thread(self, value: threading.Thread | None) -> None:
            pass

    with pytest.raises(AttributeError, match="something else"):
        stop_network_loop(Broken(CallbackAPIVersion.VERSION2))


def test_a_namespaced_clients_loop_stop_survives_the_race() -> None:
    thread, release = _ending_thread()
    client = NamespacedClient(_RacingClient(thread, reads=3), TopicNamespace("test/r/gw0/t"))
    release.set()
    client.loop_stop()
    assert not thread.is_alive()


def test_the_session_guard_makes_every_paho_clients_loop_stop_safe() -> None:
    """The plugin guards the session, so a suite's own ``disconnect(); loop_stop()``
    survives the race; taking the guard off gives paho's loop_stop back."""
    guarded = paho.Client.loop_stop is not PAHO_LOOP_STOP
    assert guarded, "the plugin guards loop_stop for the session"
    try:
        assert guard_loop_stop(enable=False) is True
        assert paho.Client.loop_stop is PAHO_LOOP_STOP
        assert guard_loop_stop(enable=False) is False, "nothing left to undo"
        assert guard_loop_stop() is True
        thread, release = _ending_thread()
        release.set()
        assert _RacingClient(thread, reads=3).loop_stop() == MQTTErrorCode.MQTT_ERR_SUCCESS
        assert not thread.is_alive()
    finally:
        guard_loop_stop(enable=guarded)
