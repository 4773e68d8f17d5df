"""Shared test configuration: the pytester plugin for plugin tests."""

pytest_plugins = ["pytester"]
