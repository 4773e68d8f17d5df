"""Docker: the engine connection, API slots, the container manager, the Docker broker backend, services as containers."""
