"""The greenhouse in containers: a broker, both services, one network.

tests/test_stack.py brings it up once per module.  Run this file to bring
it up by hand (Ctrl-C takes it down):

    python tests/helpers/stack.py
"""

import os
import time
from pathlib import Path

import docker
from docker.types import IPAMConfig, IPAMPool

ROOT = Path(__file__).resolve().parents[2]
NETWORK_NAME = "greenhouse-net"
SUBNET = "172.31.240.0/24"
BROKER_NAME = "greenhouse-broker"
SERVICE_NAMES = ["greenhouse-climate", "greenhouse-irrigation"]
MODULES = {
    "greenhouse-climate": "greenhouse.climate",
    "greenhouse-irrigation": "greenhouse.irrigation",
}
SERVICE_IMAGE = "greenhouse-service:test"
BROKER_IMAGE = os.environ.get("GREENHOUSE_BROKER_IMAGE", "eclipse-mosquitto:2")
BASE_IMAGE = os.environ.get("GREENHOUSE_BASE_IMAGE", "python:3.12-slim")
BROKER_CONFIG_DIR = Path("/tmp/greenhouse-stack")
HOST_PORT = 1884  # 1883 is taken by the developer's own mosquitto


class GreenhouseStack:
    def __init__(self):
        self.docker = docker.from_env()
        self.network = None
        self.containers = {}

    def build_image(self):
        self.docker.images.build(
            path=str(ROOT),
            dockerfile="tests/docker/Dockerfile.service",
            tag=SERVICE_IMAGE,
            buildargs={"BASE_IMAGE": BASE_IMAGE},
            rm=True,
        )

    def clean(self):
        """Remove what an interrupted run left behind."""
        for name in SERVICE_NAMES + [BROKER_NAME]:
            try:
                self.docker.containers.get(name).remove(force=True)
            except docker.errors.NotFound:
                pass
        for network in self.docker.networks.list(names=[NETWORK_NAME]):
            network.remove()

    def create_network(self):
        ipam = IPAMConfig(pool_configs=[IPAMPool(subnet=SUBNET)])
        self.network = self.docker.networks.create(NETWORK_NAME, driver="bridge", ipam=ipam)

    def start_broker(self):
        BROKER_CONFIG_DIR.mkdir(parents=True, exist_ok=True)
        (BROKER_CONFIG_DIR / "mosquitto.conf").write_text(
            "listener 1883\nallow_anonymous true\npersistence false\n"
        )
        self.containers[BROKER_NAME] = self.docker.containers.run(
            BROKER_IMAGE,
            command=["mosquitto", "-c", "/mosquitto/config/mosquitto.conf"],
            name=BROKER_NAME,
            network=NETWORK_NAME,
            ports={"1883/tcp": HOST_PORT},
            volumes={str(BROKER_CONFIG_DIR): {"bind": "/mosquitto/config", "mode": "ro"}},
            detach=True,
        )
        time.sleep(2)

    def start_services(self):
        for name in SERVICE_NAMES:
            self.containers[name] = self.docker.containers.run(
                SERVICE_IMAGE,
                command=["python3", "-m", MODULES[name]],
                name=name,
                network=NETWORK_NAME,
                environment={
                    "MQTT_HOST": BROKER_NAME,
                    "MQTT_PORT": "1883",
                    "MQTT_CLIENT_ID": name,
                    "VENT_OPEN_AT": "25",
                },
                detach=True,
            )
        time.sleep(3)

    def up(self):
        self.clean()
        self.build_image()
        self.create_network()
        self.start_broker()
        self.start_services()
        return self

    def down(self):
        for name in SERVICE_NAMES:
            container = self.containers.pop(name, None)
            if container is not None:
                container.stop(timeout=5)
                time.sleep(0.5)
                container.remove()
        broker = self.containers.pop(BROKER_NAME, None)
        if broker is not None:
            broker.remove(force=True)
        if self.network is not None:
            self.network.remove()
        self.docker.close()


if __name__ == "__main__":
    stack = GreenhouseStack().up()
    print(f"broker on localhost:{HOST_PORT}; Ctrl-C stops the stack")
    try:
        while True:
            time.sleep(1)
    except KeyboardInterrupt:
        stack.down()
