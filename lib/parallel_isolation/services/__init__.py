"""The generic service runner: start the system under test as processes or containers."""
