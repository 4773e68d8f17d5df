"""The irrigation service and the valve board it drives (unittest style).

The valve board is a file the service appends commands to; on the real
greenhouse it is the board's command FIFO.
"""

import json
import os
import queue
import time
import unittest

import paho.mqtt.client as mqtt

from greenhouse.irrigation import IrrigationService

VALVE_BOARD = "/tmp/greenhouse-valve-board.log"
SERVICE_ENV = {
    "MQTT_HOST": "localhost",
    "MQTT_PORT": "1883",
    "MQTT_CLIENT_ID": "irrigation-unittest",
    "VALVE_LOG": VALVE_BOARD,
}


class IrrigationServiceTest(unittest.TestCase):
    def setUp(self):
        open(VALVE_BOARD, "w").close()
        for key, value in SERVICE_ENV.items():
            os.environ[key] = value
        self.service = IrrigationService().start()
        self.messages = queue.Queue()
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="valve-board-tester")
        self.client.on_message = lambda client, userdata, msg: self.messages.put((msg.topic, msg.payload.decode()))
        self.client.connect("localhost", 1883)
        self.client.loop_start()
        self.client.subscribe("actuators/valve/+", qos=1)
        time.sleep(0.5)

    def tearDown(self):
        self.service.stop()
        self.client.disconnect()
        self.client.loop_stop()
        for key in SERVICE_ENV:
            os.environ.pop(key, None)

    def send_moisture(self, bed, percent):
        self.client.publish(f"sensors/{bed}/moisture", json.dumps({"percent": percent}), qos=1)

    def test_dry_bed_opens_its_valve(self):
        self.send_moisture("bed1", 12)
        topic, state = self.messages.get(timeout=10)
        self.assertEqual(topic, "actuators/valve/bed1")
        self.assertEqual(state, "open")

    def test_wet_bed_leaves_the_valve_closed(self):
        self.send_moisture("bed2", 48)
        self.send_moisture("bed2", 15)
        topic, state = self.messages.get(timeout=10)
        self.assertEqual((topic, state), ("actuators/valve/bed2", "open"))

    def test_board_receives_every_command(self):
        self.send_moisture("bed3", 10)
        self.send_moisture("bed3", 80)
        for _ in range(2):
            self.messages.get(timeout=10)
        with open(VALVE_BOARD) as board:
            self.assertEqual(board.read().splitlines(), ["bed3 open", "bed3 closed"])


if __name__ == "__main__":
    unittest.main()
