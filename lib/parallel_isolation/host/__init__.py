"""The host: port allocation, exclusive locks, child processes, /proc reading."""
