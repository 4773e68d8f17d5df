"""Registering services the two ways a project can: pyproject.toml and the conftest fixture."""

from __future__ import annotations

import pytest

PYPROJECT = """
[tool.pytest.ini_options]
addopts = "-p no:cacheprovider"

[tool.parallel-isolation.services.ticker]
command = ["{python}", "-c", "import os, time; print('tick', os.environ['TICK_PREFIX'], flush=True); time.sleep(600)"]
env-names = { prefix = "TICK_PREFIX" }
ready = { log = "^tick " }
"""

CONFTEST = """
import pytest
from parallel_isolation import EnvNames, LogReady, ServiceSpec


@pytest.fixture(scope="session")
def isolation_services():
    return [
        ServiceSpec(
            name="tocker",
            command=["sh", "-c", 'echo "tock $BROKER"; exec sleep 600'],
            env_names=EnvNames(host=None, url="BROKER"),
            ready=LogReady("^tock mqtt://"),
        )
    ]
"""

TESTS = """
def test_both_kinds(parallel_test_context):
    ticker = parallel_test_context.services.start("ticker")
    tocker = parallel_test_context.services.start("tocker")
    assert ticker.env["TICK_PREFIX"] == parallel_test_context.namespace.prefix
    assert tocker.env["BROKER"] == parallel_test_context.broker.url
    assert "MQTT_BROKER" not in tocker.env
"""


def _run(pytester: pytest.Pytester) -> pytest.RunResult:
    return pytester.runpytest_subprocess(
        "-p", "no:xdist", "--isolation-backend", "process", "--isolation-port-base", "47000",
        timeout=300,
    )  # fmt: skip


def test_pyproject_and_fixture_registrations_both_start(pytester: pytest.Pytester) -> None:
    pytester.makepyprojecttoml(PYPROJECT)
    pytester.makeconftest(CONFTEST)
    pytester.makepyfile(test_services=TESTS)
    _run(pytester).assert_outcomes(passed=1)


def test_a_name_registered_twice_names_both_places(pytester: pytest.Pytester) -> None:
    pytester.makepyprojecttoml(PYPROJECT)
    pytester.makeconftest(CONFTEST.replace('name="tocker"', 'name="ticker"'))
    pytester.makepyfile(test_services=TESTS)
    result = _run(pytester)
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(
        ["*service 'ticker' is registered twice: in *pyproject.toml*services.ticker* and in *"]
    )


def test_a_bad_pyproject_registration_is_one_usage_error(pytester: pytest.Pytester) -> None:
    pytester.makepyprojecttoml(PYPROJECT.replace("env-names", "env-namez"))
    pytester.makepyfile(test_services=TESTS)
    result = _run(pytester)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*services.ticker]: unknown key(s) env-namez; known: *"])
