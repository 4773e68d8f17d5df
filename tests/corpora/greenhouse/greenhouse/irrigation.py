"""Irrigation: opens a zone's valve when its soil is too dry.

Listens on ``sensors/<zone>/moisture`` ({"percent": 22}) and publishes
``actuators/valve/<zone>`` ("open" / "closed"); every command is also
appended to ``VALVE_LOG`` when it is set (the valve board reads it).
"""

import logging
import os
import signal
import threading

from greenhouse.bus import ServiceBus
from greenhouse.settings import MqttSettings, env_float


class IrrigationService:
    def __init__(self, settings=None):
        self.settings = settings or MqttSettings.from_env("irrigation")
        self.minimum = env_float("MOISTURE_MIN", 30)
        self.maximum = env_float("MOISTURE_MAX", 60)
        self.valve_log = os.environ.get("VALVE_LOG")
        self.valves = {}
        self.bus = ServiceBus("irrigation", self.settings)
        self.bus.subscribe("sensors/+/moisture", self.on_moisture)

    def on_moisture(self, topic, reading):
        zone = topic.split("/")[1]
        percent = float(reading["percent"])
        state = self.valves.get(zone, "closed")
        if state == "closed" and percent < self.minimum:
            state = "open"
        elif state == "open" and percent >= self.maximum:
            state = "closed"
        else:
            return
        self.valves[zone] = state
        if self.valve_log:
            with open(self.valve_log, "a") as log:
                log.write(f"{zone} {state}\n")
        self.bus.publish(f"actuators/valve/{zone}", state)

    def start(self):
        self.bus.start()
        return self

    def stop(self):
        self.bus.stop()


def main():
    logging.basicConfig(level=logging.INFO)
    service = IrrigationService().start()
    done = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: done.set())
    signal.signal(signal.SIGINT, lambda *_: done.set())
    done.wait()
    service.stop()


if __name__ == "__main__":
    main()
