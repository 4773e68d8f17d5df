"""Shared fixtures: one mosquitto for the whole session on the standard port.

The services and the tests connect to localhost:1883, like a developer's
machine where mosquitto already runs.
"""

import shutil
import socket
import subprocess
import time

import pytest

MOSQUITTO_CONF = "/tmp/greenhouse-test-mosquitto.conf"


def broker_is_up(port=1883):
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


@pytest.fixture(scope="session", autouse=True)
def mosquitto():
    if broker_is_up():
        yield None  # someone already runs one
        return
    with open(MOSQUITTO_CONF, "w") as conf:
        conf.write("listener 1883 127.0.0.1\nallow_anonymous true\npersistence false\n")
    proc = subprocess.Popen(
        [shutil.which("mosquitto") or "/usr/sbin/mosquitto", "-c", MOSQUITTO_CONF],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    for _ in range(50):
        if broker_is_up():
            break
        time.sleep(0.1)
    yield proc
    proc.terminate()
    proc.wait(timeout=10)
