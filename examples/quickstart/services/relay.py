"""relay: reads raw sensor values, publishes them scaled.

Subscribes to <prefix>/sensors/<id>/raw and publishes value * RELAY_SCALE on
<prefix>/sensors/<id>/scaled.  Configured by MQTT_HOST, MQTT_PORT,
MQTT_TOPIC_PREFIX and RELAY_SCALE; prints "relay ready" once subscribed.
"""

import os
import signal
import sys

import paho.mqtt.client as mqtt

PREFIX = os.environ.get("MQTT_TOPIC_PREFIX", "plant")
SCALE = float(os.environ.get("RELAY_SCALE", "1"))


def on_connect(client, userdata, flags, reason, properties):
    client.subscribe(f"{PREFIX}/sensors/+/raw", qos=1)


def on_subscribe(client, userdata, mid, reasons, properties):
    print("relay ready", flush=True)


def on_message(client, userdata, message):
    sensor = message.topic.split("/")[-2]
    try:
        value = float(message.payload) * SCALE
    except ValueError:
        print(f"ignored {message.payload!r} from {sensor}", flush=True)
        return
    client.publish(f"{PREFIX}/sensors/{sensor}/scaled", f"{value:g}", qos=1)


def stop(signum, frame):
    client.disconnect()
    sys.exit(0)


client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2)
client.on_connect = on_connect
client.on_subscribe = on_subscribe
client.on_message = on_message
signal.signal(signal.SIGTERM, stop)
client.connect(os.environ.get("MQTT_HOST", "localhost"), int(os.environ.get("MQTT_PORT", "1883")))
client.loop_forever()
