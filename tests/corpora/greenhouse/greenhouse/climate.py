"""Climate controller: opens a zone's vents when it is too warm.

Listens on ``sensors/<zone>/temperature`` ({"celsius": 29.5}) and publishes
``actuators/vent`` ({"zone": ..., "open": true/false, "celsius": ...}) when a
zone crosses ``VENT_OPEN_AT`` (and closes 2 degrees below it).
"""

import logging
import signal
import threading

from greenhouse.bus import ServiceBus
from greenhouse.settings import MqttSettings, env_float


class ClimateController:
    def __init__(self, settings=None):
        self.settings = settings or MqttSettings.from_env("climate")
        self.open_at = env_float("VENT_OPEN_AT", 28.0)
        self.vents = {}
        self.bus = ServiceBus("climate", self.settings)
        self.bus.subscribe("sensors/+/temperature", self.on_temperature)

    def on_temperature(self, topic, reading):
        zone = topic.split("/")[1]
        celsius = float(reading["celsius"])
        is_open = self.vents.get(zone, False)
        if not is_open and celsius > self.open_at:
            self.vents[zone] = True
        elif is_open and celsius < self.open_at - 2:
            self.vents[zone] = False
        else:
            return
        self.bus.publish("actuators/vent", {"zone": zone, "open": self.vents[zone], "celsius": celsius})

    def start(self):
        self.bus.start()
        return self

    def stop(self):
        self.bus.stop()


def main():
    logging.basicConfig(level=logging.INFO)
    controller = ClimateController().start()
    done = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: done.set())
    signal.signal(signal.SIGINT, lambda *_: done.set())
    done.wait()
    controller.stop()


if __name__ == "__main__":
    main()
