"""Greenhouse controllers: climate (vents) and irrigation (valves) over MQTT."""

__version__ = "0.3.1"
