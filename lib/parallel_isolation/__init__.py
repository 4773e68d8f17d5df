"""Parallel-safe MQTT + Docker integration testing under pytest-xdist."""

from __future__ import annotations

from parallel_isolation.host.ports import PortAllocator, PortExhaustedError
from parallel_isolation.identity import Identity, Owner
from parallel_isolation.mqtt.brokers import (
    BrokerBackend,
    BrokerCrashedError,
    BrokerError,
    BrokerStartError,
    TestMQTTBroker,
)
from parallel_isolation.mqtt.client import (
    MessageRecorder,
    MessageTimeout,
    NamespacedClient,
    ReceivedMessage,
    connect_client,
)
from parallel_isolation.mqtt.topics import (
    TopicError,
    TopicNamespace,
    validate_filter,
    validate_topic,
)
from parallel_isolation.services import (
    CallableReady,
    EnvNames,
    LogReady,
    MqttReady,
    PortReady,
    RunningService,
    ServiceConfigError,
    ServiceError,
    ServiceSpec,
    TestProcess,
)
from parallel_isolation.session.context import ParallelTestContext, WorkerContext
from parallel_isolation.settings import Settings

__all__ = [
    "BrokerBackend",
    "BrokerCrashedError",
    "BrokerError",
    "BrokerStartError",
    "CallableReady",
    "EnvNames",
    "Identity",
    "LogReady",
    "MessageRecorder",
    "MessageTimeout",
    "MqttReady",
    "NamespacedClient",
    "Owner",
    "ParallelTestContext",
    "PortAllocator",
    "PortExhaustedError",
    "PortReady",
    "ReceivedMessage",
    "RunningService",
    "ServiceConfigError",
    "ServiceError",
    "ServiceSpec",
    "Settings",
    "TestMQTTBroker",
    "TestProcess",
    "TopicError",
    "TopicNamespace",
    "WorkerContext",
    "connect_client",
    "validate_filter",
    "validate_topic",
]
