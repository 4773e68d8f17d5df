"""Topic namespaces: every topic a test or service uses lives under a prefix.

The prefix carries the run and the worker (``test/{run8}/{worker_id}``) and
each test gets its own sub-namespace, so neither live nor retained messages
cross from one worker or test to another.  :meth:`TopicNamespace.strip`
removes only a *leading* prefix; a topic outside the namespace is an error.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from parallel_isolation.identity import Identity

__all__ = [
    "MAX_CLIENT_ID_BYTES",
    "MAX_TOPIC_BYTES",
    "TopicError",
    "TopicNamespace",
    "validate_client_id",
    "validate_filter",
    "validate_topic",
]

MAX_TOPIC_BYTES = 65535
_SHARE = "$share/"


class TopicError(ValueError):
    """A topic or filter that MQTT (or our namespace) does not allow."""


def _check_common(value: str, what: str) -> None:
    if not isinstance(value, str):
        msg = f"{what} must be a str, got {type(value).__name__}: {value!r}"
        raise TopicError(msg)
    if value == "":
        msg = f"{what} must not be empty"
        raise TopicError(msg)
    if "\x00" in value:
        msg = f"{what} {value!r} contains a NUL character"
        raise TopicError(msg)
    _check_mqtt_string(value, what, MAX_TOPIC_BYTES)


def _check_mqtt_string(value: str, what: str, limit: int) -> None:
    """An MQTT string: encodable as UTF-8 and at most ``limit`` bytes long."""
    try:
        size = len(value.encode("utf-8"))
    except UnicodeEncodeError as error:
        msg = f"{what} {value!r} is not valid UTF-8: {error.reason}"
        raise TopicError(msg) from None
    if size > limit:
        msg = f"{what} is {size} bytes long; MQTT allows at most {limit}"
        raise TopicError(msg)


def validate_topic(topic: str) -> str:
    """Check a publish topic (no wildcards, no ``$`` topics); return it."""
    _check_common(topic, "topic")
    if "+" in topic or "#" in topic:
        msg = f"topic {topic!r} contains a wildcard; wildcards are only allowed in subscriptions"
        raise TopicError(msg)
    if topic.startswith("$"):
        msg = f"topic {topic!r} starts with '$'; such topics are reserved for the broker"
        raise TopicError(msg)
    return topic


def validate_filter(topic_filter: str) -> str:
    """Check a subscription filter (``+`` whole level, ``#`` last level only)."""
    _check_common(topic_filter, "topic filter")
    levels = topic_filter.split("/")
    for index, level in enumerate(levels):
        if "#" in level and (level != "#" or index != len(levels) - 1):
            msg = f"topic filter {topic_filter!r}: '#' must be a whole level and the last one"
            raise TopicError(msg)
        if "+" in level and level != "+":
            msg = f"topic filter {topic_filter!r}: '+' must occupy a whole level"
            raise TopicError(msg)
    if topic_filter.startswith("$"):
        msg = f"topic filter {topic_filter!r} starts with '$'; broker topics are outside any namespace"
        raise TopicError(msg)
    return topic_filter


MAX_CLIENT_ID_BYTES = 65535  # an MQTT string


def validate_client_id(client_id: str) -> str:
    """Check an MQTT client id: non-empty UTF-8, within MQTT's limit, no NUL or wildcard."""
    if not isinstance(client_id, str) or not client_id:
        msg = f"MQTT client id must be a non-empty string, got {client_id!r}"
        raise TopicError(msg)
    for char, what in (("\x00", "a NUL character"), ("+", "a wildcard"), ("#", "a wildcard")):
        if char in client_id:
            msg = f"MQTT client id {client_id!r} contains {what} ({char!r})"
            raise TopicError(msg)
    _check_mqtt_string(client_id, "MQTT client id", MAX_CLIENT_ID_BYTES)
    return client_id


def level_for_test(nodeid: str) -> str:
    """A short, stable topic level for one test (``t-<8 hex of its node id>``)."""
    return "t-" + hashlib.sha256(nodeid.encode()).hexdigest()[:8]


@dataclass(frozen=True)
class TopicNamespace:
    """A topic prefix and the translations in and out of it."""

    prefix: str

    __test__ = False  # not a test class, despite the module's vocabulary

    def __post_init__(self) -> None:
        validate_topic(self.prefix)
        if self.prefix.endswith("/") or self.prefix.startswith("/") or "//" in self.prefix:
            msg = f"namespace prefix {self.prefix!r} must not have empty levels"
            raise TopicError(msg)

    @classmethod
    def for_worker(cls, identity: Identity, root: str = "test") -> TopicNamespace:
        """``{root}/{run8}/{worker_id}``: the worker's namespace."""
        return cls(f"{root}/{identity.run_id}/{identity.worker_id}")

    def child(self, level: str) -> TopicNamespace:
        """A sub-namespace one (or more) levels down."""
        return TopicNamespace(f"{self.prefix}/{level}")

    def for_test(self, nodeid: str) -> TopicNamespace:
        """The per-test sub-namespace; retained messages never leak across tests."""
        return self.child(level_for_test(nodeid))

    def topic(self, topic: str) -> str:
        """Prefix a bare publish topic."""
        validate_topic(topic)
        return validate_topic(f"{self.prefix}/{topic}")

    def filter(self, topic_filter: str) -> str:
        """Prefix a subscription filter, keeping a ``$share/<group>/`` head in front."""
        head = ""
        body = topic_filter
        if isinstance(topic_filter, str) and topic_filter.startswith(_SHARE):
            group, sep, body = topic_filter[len(_SHARE) :].partition("/")
            if not group or not sep or "+" in group or "#" in group:
                msg = f"shared subscription {topic_filter!r} must look like $share/<group>/<filter>"
                raise TopicError(msg)
            head = f"{_SHARE}{group}/"
        validate_filter(body)
        full = f"{self.prefix}/{body}"
        _check_common(full, "topic filter")
        return head + full

    def owns(self, topic: str) -> bool:
        return topic.startswith(self.prefix + "/")

    def strip(self, topic: str) -> str:
        """Remove the leading prefix; a topic outside the namespace is an error."""
        lead = self.prefix + "/"
        if not topic.startswith(lead):
            msg = f"topic {topic!r} is outside the namespace {self.prefix!r}"
            raise TopicError(msg)
        bare = topic[len(lead) :]
        if bare == "":
            msg = f"topic {topic!r} is the namespace root itself, not a topic inside it"
            raise TopicError(msg)
        return bare
