"""MQTT: topic namespaces, the namespaced client, brokers and their backends, the cross-talk spy."""
