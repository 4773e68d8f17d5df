"""Service configuration, read from the environment when a service starts."""

import os
from dataclasses import dataclass


@dataclass
class MqttSettings:
    host: str
    port: int
    client_id: str
    topic_prefix: str = ""

    @classmethod
    def from_env(cls, service_name):
        return cls(
            host=os.environ.get("MQTT_HOST", "localhost"),
            port=int(os.environ.get("MQTT_PORT", "1883")),
            client_id=os.environ.get("MQTT_CLIENT_ID", service_name),
            topic_prefix=os.environ.get("MQTT_TOPIC_PREFIX", "").strip("/"),
        )

    def topic(self, suffix):
        """The full topic of ``suffix`` under the configured prefix."""
        return f"{self.topic_prefix}/{suffix}" if self.topic_prefix else suffix

    def local(self, topic):
        """``topic`` without the prefix (what the service logic works with)."""
        if self.topic_prefix and topic.startswith(self.topic_prefix + "/"):
            return topic[len(self.topic_prefix) + 1 :]
        return topic


def env_float(name, default):
    return float(os.environ.get(name, default))
