"""The tool on projects spread over several modules.

A value that flows between a test, its helper module and its conftest is
rewritten at every site or at none; a test and the services it starts end up
on the same broker and prefix; the prefix variable is the one the services
read; a ``__main__`` block does not block a rewrite but is named.
"""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from parallel_isolation.migrate import Finding, check_paths, migrate_paths

HELPER = """\
import docker

NETWORK = "shop-net"
NAMES = ["shop-db", "shop-api"]


class Stack:
    def __init__(self):
        self.docker = docker.from_env()

    def up(self):
        self.docker.networks.create(NETWORK)
        for name in NAMES:
            self.docker.containers.run("img", name=name, network=NETWORK)
        return self


if __name__ == "__main__":
    Stack().up()
"""

TEST = """\
import pytest

from helpers import Stack


@pytest.fixture(scope="module")
def stack():
    return Stack().up()


def test_api_runs(stack):
    assert stack.docker.containers.get("shop-api").status == "running"
"""


def _project(tmp_path: Path, files: dict[str, str]) -> Path:
    root = tmp_path / "project"
    for name, text in {"pyproject.toml": "[project]\nname = 'p'\n", **files}.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text))
    return root


def _line(finding: Finding) -> str:
    return f"{Path(finding.path).name}:{finding.line} {finding.code}"


def test_a_name_shared_by_a_helper_and_a_test_is_rewritten_in_both(tmp_path: Path) -> None:
    root = _project(tmp_path, {"tests/helpers.py": HELPER, "tests/test_shop.py": TEST})
    report = migrate_paths([root / "tests"], write=True, jobs=1)
    helper = (root / "tests" / "helpers.py").read_text()
    test = (root / "tests" / "test_shop.py").read_text()
    assert "def __init__(self, *, isolation_worker):" in helper
    assert "self.isolation_worker = isolation_worker" in helper
    assert "name=self.isolation_worker.container_name(name)" in helper
    assert "NAMES = [\"shop-db\", \"shop-api\"]" in helper  # the list: never isolated twice
    assert "self.docker.networks.create(self.isolation_worker.network_name(NETWORK))" in helper
    assert "def stack(isolation_worker):" in test
    assert "return Stack(isolation_worker=isolation_worker).up()" in test
    assert 'containers.get(parallel_test_context.container_name("shop-api"))' in test
    left = [_line(f) for f in report.findings]
    assert left == ["helpers.py:20 PI104"]  # the __main__ block: named, not blocking
    (main,) = report.findings
    assert "__main__" in main.message
    assert "isolation_worker" in main.message
    again = migrate_paths([root / "tests"], write=True, jobs=1)
    assert not again.changed


def test_a_helper_not_being_migrated_holds_the_shared_name_back(tmp_path: Path) -> None:
    root = _project(tmp_path, {"tests/helpers.py": HELPER, "tests/test_shop.py": TEST})
    test_file = root / "tests" / "test_shop.py"
    report = migrate_paths([test_file], write=True, jobs=1)
    assert test_file.read_text() == textwrap.dedent(TEST)
    (finding,) = [f for f in report.findings if f.code == "PI104"]
    assert not finding.autofix
    # Reported where it is held back (the helper, only read), the test's site under it.
    assert finding.path.endswith("helpers.py")
    assert "only read" in finding.message
    assert any(site.startswith(f"{test_file}:12:") for site in finding.related), finding.related


CONFTEST = """\
import os
import subprocess
import sys

import pytest


class Services:
    def __init__(self):
        self.procs = []

    def start(self, module):
        env = {**os.environ, "MQTT_BROKER": "localhost", "MQTT_PORT": "1883"}
        self.procs.append(subprocess.Popen([sys.executable, "-m", module], env=env))


@pytest.fixture
def services():
    running = Services()
    yield running
    for proc in running.procs:
        proc.terminate()
"""

SERVICE_TEST = """\
import paho.mqtt.client as mqtt


def test_alarm(services):
    services.start("shop.alarm")
    client = mqtt.Client()
    client.connect("localhost", 1883)
    client.publish("shop/alarm", b"1")
"""

SERVICE_SOURCE = """\
import os

PREFIX = os.environ.get("SHOP_TOPIC_PREFIX", "")
"""


def test_the_test_and_the_services_it_starts_move_together(tmp_path: Path) -> None:
    root = _project(
        tmp_path,
        {
            "shop/alarm.py": SERVICE_SOURCE,
            "tests/conftest.py": CONFTEST,
            "tests/test_alarm.py": SERVICE_TEST,
        },
    )
    migrate_paths([root / "tests"], write=True, jobs=1)
    conftest = (root / "tests" / "conftest.py").read_text()
    test = (root / "tests" / "test_alarm.py").read_text()
    assert '"MQTT_BROKER": self.mqtt_broker.host' in conftest
    assert '"SHOP_TOPIC_PREFIX": self.topic_namespace.prefix' in conftest  # what the service reads
    assert "Services(mqtt_broker=mqtt_broker, topic_namespace=topic_namespace)" in conftest
    assert "client.connect(mqtt_broker.host, mqtt_broker.port)" in test
    assert 'client.publish(topic_namespace.topic("shop/alarm"), b"1")' in test


def test_a_test_stays_with_services_that_cannot_move(tmp_path: Path) -> None:
    root = _project(
        tmp_path,
        {
            "shop/alarm.py": SERVICE_SOURCE,
            "tests/conftest.py": CONFTEST,
            "tests/test_alarm.py": SERVICE_TEST,
        },
    )
    test_file = root / "tests" / "test_alarm.py"
    findings = check_paths([test_file], jobs=1)
    by_code = {f.code: f for f in findings}
    # The conftest is not being migrated: its services stay on localhost:1883, so
    # the test's client must stay there too, and the finding says where it is held.
    assert not by_code["PI101"].autofix or "conftest.py" in by_code["PI101"].path
    blocked = [f for f in findings if not f.autofix and f.code in ("PI101", "PI102", "PI115")]
    assert blocked
    assert all(len(f.message) + len(f.code) + 1 <= 160 for f in findings)


def test_the_prefix_variable_comes_from_the_services_source(tmp_path: Path) -> None:
    root = _project(
        tmp_path,
        {
            "shop/alarm.py": SERVICE_SOURCE,
            "tests/test_env.py": """\
                def test_env(mqtt_broker):
                    env = {"MQTT_BROKER": mqtt_broker.host, "TOPIC_PREFIX": "p"}
            """,
        },
    )
    (finding,) = check_paths([root / "tests"], jobs=1)
    assert finding.code == "PI115"
    assert "SHOP_TOPIC_PREFIX" in finding.message
    assert "it sets TOPIC_PREFIX" in finding.message


def test_the_prefix_setting_wins(tmp_path: Path) -> None:
    root = _project(
        tmp_path,
        {
            "shop/alarm.py": SERVICE_SOURCE,
            "tests/test_env.py": """\
                def test_env(mqtt_broker):
                    env = {"MQTT_BROKER": mqtt_broker.host}
            """,
        },
    )
    (root / "pyproject.toml").write_text(
        "[project]\nname = 'p'\n[tool.parallel-isolation]\nprefix-env = 'SVC_PREFIX'\n"
    )
    (finding,) = check_paths([root / "tests"], jobs=1)
    assert "SVC_PREFIX" in finding.message


def test_registered_services_name_the_prefix_variable(tmp_path: Path) -> None:
    """``[tool.parallel-isolation.services]`` says what the services read (default TOPIC_PREFIX)."""
    root = _project(
        tmp_path,
        {
            "shop/alarm.py": SERVICE_SOURCE,  # reads SHOP_TOPIC_PREFIX, but is not registered
            "tests/test_env.py": """\
                def test_env(mqtt_broker):
                    env = {"MQTT_BROKER": mqtt_broker.host}
            """,
        },
    )
    (root / "pyproject.toml").write_text(
        "[project]\nname = 'p'\n"
        "[tool.parallel-isolation.services.alarm]\nmodule = 'shop.alarm'\n"
        "[tool.parallel-isolation.services.pump]\nmodule = 'shop.pump'\n"
        "[tool.parallel-isolation.services.relay]\ncommand = ['relay']\n"
        "env-names = { prefix = 'RELAY_PREFIX' }\n"
    )
    (finding,) = check_paths([root / "tests"], jobs=1)
    assert "not TOPIC_PREFIX" in finding.message


def test_a_nested_project_is_not_read_for_the_prefix(tmp_path: Path) -> None:
    root = _project(
        tmp_path,
        {
            "examples/demo/pyproject.toml": "[project]\nname = 'demo'\n",
            "examples/demo/relay.py": SERVICE_SOURCE,  # another project's service
            "tests/test_env.py": """\
                def test_env(mqtt_broker):
                    env = {"MQTT_BROKER": mqtt_broker.host}
            """,
        },
    )
    (finding,) = check_paths([root / "tests"], jobs=1)
    assert "SHOP_TOPIC_PREFIX" not in finding.message
    assert "not TOPIC_PREFIX" in finding.message


@pytest.mark.parametrize(
    "directory",
    [
        Path(__file__).parent / "fixtures",
        Path(__file__).resolve().parents[2] / "legacy",
        Path(__file__).resolve().parents[2] / "corpora" / "greenhouse" / "tests",
    ],
    ids=["fixtures", "legacy", "corpus"],
)
def test_every_message_fits_on_a_line(directory: Path) -> None:
    findings = check_paths([directory], jobs=1)
    assert findings
    too_long = [
        str(f)
        for f in findings
        if len(f"{f.code} {f.message}{' [auto-fix]' if f.autofix else ''}") > 160
    ]
    assert not too_long, too_long
    chains = [f.message for f in findings if f.message.count(" is called from ") > 1]
    assert not chains, chains
