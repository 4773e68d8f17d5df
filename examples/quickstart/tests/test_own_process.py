"""A process the test starts itself: marked, logged and stopped like the services."""

from __future__ import annotations


def test_alarm_listener_gets_the_alarm(parallel_test_context, mqtt_broker, mqtt_client):
    # Retained, so the listener gets it however late it subscribes.
    mqtt_client.publish("alarms/boiler", b"overheat", qos=1, retain=True).wait_for_publish(5)
    listener = parallel_test_context.popen(
        [
            "mosquitto_sub",
            "-h", mqtt_broker.host,
            "-p", str(mqtt_broker.port),
            "-t", parallel_test_context.namespace.topic("alarms/boiler"),
            "-C", "1",
        ],
        name="alarm-listener",
    )
    try:
        assert listener.wait(timeout=20) == 0
        assert listener.log_text().strip() == "overheat"
    finally:
        mqtt_client.publish("alarms/boiler", b"", qos=1, retain=True).wait_for_publish(5)
