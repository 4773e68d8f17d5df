"""Wildfire Watch style MQTT microservices: the system under test.

Three services, each runnable as ``python -m wildfire.<module>`` and usable
in-process as a class built from a config object:

* :mod:`wildfire.camera_detector` learns cameras from announcements and
  publishes discovery, status and a Frigate camera config.
* :mod:`wildfire.fire_consensus` turns detections from several cameras into a
  ``fire/trigger`` when enough online cameras see a growing fire.
* :mod:`wildfire.gpio_trigger` drives a simulated pump through its state
  machine.

:mod:`wildfire.camera_simulator` announces fake cameras and publishes
detections for them.  The package depends only on paho-mqtt 2.x and the
standard library.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from wildfire.camera_detector import CameraDetector, CameraDetectorConfig
    from wildfire.camera_simulator import CameraSimulator, CameraSimulatorConfig
    from wildfire.common import ConfigError, MqttService, ServiceConfig, TopicPrefix
    from wildfire.fire_consensus import ConsensusEngine, FireConsensus, FireConsensusConfig
    from wildfire.gpio_trigger import GpioTrigger, GpioTriggerConfig, PumpState, PumpStateMachine

# Exports resolve lazily: ``python -m wildfire.fire_consensus`` imports this
# package first, and an eager import of the submodule here would make runpy
# warn that the module is already in sys.modules before it runs as __main__.
_EXPORTS = {
    "CameraDetector": "camera_detector",
    "CameraDetectorConfig": "camera_detector",
    "CameraSimulator": "camera_simulator",
    "CameraSimulatorConfig": "camera_simulator",
    "ConfigError": "common",
    "ConsensusEngine": "fire_consensus",
    "FireConsensus": "fire_consensus",
    "FireConsensusConfig": "fire_consensus",
    "GpioTrigger": "gpio_trigger",
    "GpioTriggerConfig": "gpio_trigger",
    "MqttService": "common",
    "PumpState": "gpio_trigger",
    "PumpStateMachine": "gpio_trigger",
    "ServiceConfig": "common",
    "TopicPrefix": "common",
}


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        msg = f"module 'wildfire' has no attribute {name!r}"
        raise AttributeError(msg)
    return getattr(importlib.import_module(f"wildfire.{module}"), name)


__all__ = [
    "CameraDetector",
    "CameraDetectorConfig",
    "CameraSimulator",
    "CameraSimulatorConfig",
    "ConfigError",
    "ConsensusEngine",
    "FireConsensus",
    "FireConsensusConfig",
    "GpioTrigger",
    "GpioTriggerConfig",
    "MqttService",
    "PumpState",
    "PumpStateMachine",
    "ServiceConfig",
    "TopicPrefix",
]
