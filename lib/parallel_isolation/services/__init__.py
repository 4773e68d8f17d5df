"""Services of any kind, registered once per project and started by name from tests.

* :mod:`~parallel_isolation.services.spec` what a service is (command, env names,
  image, readiness);
* :mod:`~parallel_isolation.services.catalog` the registered services
  (pyproject.toml and the ``isolation_services`` fixture);
* :mod:`~parallel_isolation.services.runner` starting and stopping them for a test;
* :mod:`~parallel_isolation.services.readiness` waiting until each is ready;
* :mod:`~parallel_isolation.services.process` a test's own processes (``popen``).
"""

from __future__ import annotations

from parallel_isolation.services.catalog import ServiceCatalog, UnknownServiceError
from parallel_isolation.services.process import ProcessStartError, TestProcess
from parallel_isolation.services.runner import RunningService, ServiceError, ServiceRunner
from parallel_isolation.services.spec import (
    CallableReady,
    EnvNames,
    LogReady,
    MqttReady,
    PortReady,
    Readiness,
    ServiceConfigError,
    ServiceSpec,
)

__all__ = [
    "CallableReady",
    "EnvNames",
    "LogReady",
    "MqttReady",
    "PortReady",
    "ProcessStartError",
    "Readiness",
    "RunningService",
    "ServiceCatalog",
    "ServiceConfigError",
    "ServiceError",
    "ServiceRunner",
    "ServiceSpec",
    "TestProcess",
    "UnknownServiceError",
]
