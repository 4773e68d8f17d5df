"""Parallel-safe MQTT + Docker integration testing under pytest-xdist."""

from __future__ import annotations

from parallel_isolation.brokers import (
    BrokerBackend,
    BrokerCrashedError,
    BrokerError,
    BrokerStartError,
    TestMQTTBroker,
)
from parallel_isolation.context import ParallelTestContext, WorkerContext
from parallel_isolation.identity import Identity, Owner
from parallel_isolation.mqtt import (
    MessageRecorder,
    MessageTimeout,
    NamespacedClient,
    ReceivedMessage,
    connect_client,
)
from parallel_isolation.ports import PortAllocator, PortExhaustedError
from parallel_isolation.settings import Settings
from parallel_isolation.topics import TopicError, TopicNamespace, validate_filter, validate_topic

__all__ = [
    "BrokerBackend",
    "BrokerCrashedError",
    "BrokerError",
    "BrokerStartError",
    "Identity",
    "MessageRecorder",
    "MessageTimeout",
    "NamespacedClient",
    "Owner",
    "ParallelTestContext",
    "PortAllocator",
    "PortExhaustedError",
    "ReceivedMessage",
    "Settings",
    "TestMQTTBroker",
    "TopicError",
    "TopicNamespace",
    "WorkerContext",
    "connect_client",
    "validate_filter",
    "validate_topic",
]
