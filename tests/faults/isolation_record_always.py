"""pytest plugin for fault runs of foreign suites: record the run even if no test uses our fixtures.

Loaded with ``-p isolation_record_always`` (the harness copies it next to the
suite).  The recorder writes only once the run directory exists; this session
fixture creates the worker context (and so the directory) in every worker.
"""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session", autouse=True)
def _isolation_record_always(isolation_worker: object) -> None:
    """Create the worker context so the run is recorded."""
