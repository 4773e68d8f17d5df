"""The MQTT connection every service shares: prefix, last will, status."""

import json
import logging
import threading

import paho.mqtt.client as mqtt

log = logging.getLogger(__name__)


class ServiceBus:
    def __init__(self, name, settings):
        self.name = name
        self.settings = settings
        self.handlers = {}
        self.connected = threading.Event()
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=settings.client_id)
        self.client.will_set(self.status_topic, "offline", qos=1, retain=True)
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = self._on_disconnect
        self.client.on_message = self._on_message

    @property
    def status_topic(self):
        return self.settings.topic(f"status/{self.name}")

    def subscribe(self, topic_filter, handler):
        self.handlers[topic_filter] = handler

    def publish(self, suffix, payload, retain=False):
        if not isinstance(payload, (str, bytes)):
            payload = json.dumps(payload)
        self.client.publish(self.settings.topic(suffix), payload, qos=1, retain=retain)

    def start(self, timeout=10.0):
        self.client.connect(self.settings.host, self.settings.port, keepalive=30)
        self.client.loop_start()
        if not self.connected.wait(timeout):
            raise RuntimeError(
                f"{self.name}: no connection to {self.settings.host}:{self.settings.port}"
            )

    def stop(self):
        info = self.client.publish(self.status_topic, "offline", qos=1, retain=True)
        info.wait_for_publish(5)
        self.client.disconnect()
        self.client.loop_stop()

    def _on_connect(self, client, userdata, flags, reason_code, properties):
        for topic_filter in self.handlers:
            client.subscribe(self.settings.topic(topic_filter), qos=1)
        client.publish(self.status_topic, "online", qos=1, retain=True)
        log.info("%s connected as %s", self.name, self.settings.client_id)
        self.connected.set()

    def _on_disconnect(self, client, userdata, flags, reason_code, properties):
        self.connected.clear()

    def _on_message(self, client, userdata, message):
        topic = self.settings.local(message.topic)
        for topic_filter, handler in self.handlers.items():
            if mqtt.topic_matches_sub(topic_filter, topic):
                try:
                    handler(topic, json.loads(message.payload))
                except Exception:
                    log.exception("%s: bad message on %s", self.name, topic)
