"""The tool on test suites written in styles it was not built around.

fixtures/ holds five small projects in the manner of other MQTT codebases:
unittest classes with class attributes, a module-level client with
publishing helpers, a conftest with a fixed broker container and a raw
``mqtt_client`` fixture, aiomqtt async tests, tests that drive the docker
CLI from a pytest class.  For each: the exact findings, a rewrite that
compiles, is idempotent and leaves only what needs a person.  (The larger
evidence, a corpus written before the tool was changed for it, is
tests/corpora/greenhouse: see test_corpus_evidence.py.)
"""

from __future__ import annotations

import shutil
from collections import defaultdict
from pathlib import Path

import pytest

from parallel_isolation.migrate import check_paths, migrate_paths

FIXTURES = Path(__file__).parent / "fixtures"

#: One finding per distinct hazard (a name, a constant, an inline literal), at
#: its definition; the other sites are listed under it, not counted again.
EXPECTED = {
    "async_gateway/test_gateway_async.py": [
        (12, "PI107"), (17, "PI101"), (17, "PI102"), (17, "PI110"), (30, "PI101"), (30, "PI102"),
        (30, "PI110"), (31, "PI107"), (33, "PI112"), (40, "PI101"), (42, "PI108"),
    ],
    "compose_cli/test_compose_stack.py": [
        (14, "PI113"), (23, "PI105"), (31, "PI103"), (31, "PI104"), (34, "PI112"), (36, "PI111"),
        (58, "PI104"), (59, "PI112"), (63, "PI111"),
    ],
    "sensor_module_client/test_sensor_readings.py": [
        (12, "PI101"), (13, "PI102"), (21, "PI109"), (26, "PI110"), (57, "PI110"),
    ],
    "sensorhub/conftest.py": [
        (14, "PI102"), (14, "PI103"), (25, "PI111"), (28, "PI111"), (31, "PI104"), (35, "PI112"),
        (38, "PI111"), (42, "PI114"), (58, "PI108"), (61, "PI107"),
    ],
    "sensorhub/test_hub_pipeline.py": [(24, "PI109"), (29, "PI107"), (51, "PI104"), (52, "PI106")],
    "thermostat_unittest/test_thermostat.py": [
        (14, "PI101"), (15, "PI102"), (19, "PI110"), (31, "PI107"), (32, "PI112"), (35, "PI109"),
        (39, "PI107"), (40, "PI112"), (44, "PI107"), (45, "PI110"), (46, "PI101"), (46, "PI102"),
        (47, "PI107"), (48, "PI112"),
    ],
}

#: Sites a finding lists under it (other than where it is reported).
RELATED = {
    ("compose_cli/test_compose_stack.py", 23, "PI105"): {24, 25, 31, 50},
    ("compose_cli/test_compose_stack.py", 31, "PI103"): {43},
    ("sensor_module_client/test_sensor_readings.py", 21, "PI109"): {33, 44, 46, 59, 61, 67},
    ("async_gateway/test_gateway_async.py", 12, "PI107"): {18, 32},
}

#: Lines the rewrite must contain (stripped), per file.
REWRITTEN = {
    "async_gateway/test_gateway_async.py": [
        "async def gateway(mqtt_broker, parallel_test_context, topic_namespace):",
        'async with aiomqtt.Client(mqtt_broker.host, mqtt_broker.port, identifier='
        'parallel_test_context.client_id("gateway-probe")) as probe:',
        "await probe.publish(topic_namespace.topic(GATEWAY_TOPIC), json.dumps({\"cmd\": \"ping\"}))",
    ],
    "compose_cli/test_compose_stack.py": [
        "def network(isolation_worker):",
        "yield isolation_worker.network_name(NETWORK)",
        "def _start_service(self, name, image, *, parallel_test_context):",
        'self._start_service(parallel_test_context.container_name("e2e-detector"), "detector:latest", '
        "parallel_test_context=parallel_test_context)",
        # the test's client stays on the stack's broker, published on the fixed port (PI103)
        'client.connect("localhost", 1883)',
    ],
    "sensor_module_client/test_sensor_readings.py": [
        'alarms = mqtt.Client(client_id=parallel_test_context.client_id("sensor-alarms"))',
        # the module-level client's callback cannot be given the namespace, so no topic is
        'client.publish(f"sensors/{sensor}/reading", json.dumps({"value": value, "unit": unit}))',
    ],
    "sensorhub/conftest.py": [
        "def mosquitto(docker_client, isolation_worker):",
        'name=isolation_worker.container_name("sensorhub-broker"),',
        "def __init__(self, client, *, topic_namespace):",
        'self.client.publish(self.topic_namespace.topic("hub/commands"), f"{device_id}:{action}")',
    ],
    "sensorhub/test_hub_pipeline.py": [
        'if topic_namespace.strip(msg.topic).startswith("hub/status/"):',
        "return HubDriver(mqtt_client, topic_namespace=topic_namespace)",
    ],
    "thermostat_unittest/test_thermostat.py": [
        "@pytest.fixture(autouse=True)",
        "def _isolation_fixtures(self, mqtt_broker, parallel_test_context, topic_namespace):",
        'self.client.subscribe(self.topic_namespace.filter("home/thermostat/#"))',
        'assert subscribed.wait(10), "no SUBACK for the subscription"',
        'if self.topic_namespace.strip(msg.topic) == "home/thermostat/state":',
        "late.connect(self.mqtt_broker.host, self.mqtt_broker.port)",
    ],
}

#: What the codemod must leave to a person (codes of the remaining findings).
LEFT = {
    "async_gateway/test_gateway_async.py": ["PI112"],
    "compose_cli/test_compose_stack.py": ["PI103", "PI111", "PI111", "PI112", "PI112", "PI113"],
    "sensor_module_client/test_sensor_readings.py": ["PI101", "PI102", "PI109", "PI110"],
    "sensorhub/conftest.py": ["PI102", "PI103", "PI111", "PI111", "PI111", "PI112", "PI114"],
    "sensorhub/test_hub_pipeline.py": ["PI106"],
    "thermostat_unittest/test_thermostat.py": ["PI101", "PI102", "PI110", "PI112"],
}


def _relative(path: str, root: Path) -> str:
    return Path(path).resolve().relative_to(root.resolve()).as_posix()


def test_findings_on_unseen_projects() -> None:
    found: dict[str, list[tuple[int, str]]] = defaultdict(list)
    related: dict[tuple[str, int, str], set[int]] = {}
    for finding in check_paths([FIXTURES], jobs=1):
        name = _relative(finding.path, FIXTURES)
        found[name].append((finding.line, finding.code))
        related[(name, finding.line, finding.code)] = {
            int(site.rsplit(":", 2)[-2]) for site in finding.related
        }
    assert {k: sorted(v) for k, v in found.items()} == {
        k: sorted(v) for k, v in EXPECTED.items()
    }
    for key, lines in RELATED.items():
        assert related[key] == lines, key


@pytest.fixture
def projects(tmp_path: Path) -> Path:
    root = tmp_path / "projects"
    shutil.copytree(FIXTURES, root)
    return root


def test_rewrite_compiles_is_idempotent_and_leaves_the_rest(projects: Path) -> None:
    report = migrate_paths([projects], write=True, jobs=1)
    assert not report.failed
    written = {_relative(r.path, projects) for r in report.files if r.written}
    assert written == set(EXPECTED)
    for result in report.files:
        name = _relative(result.path, projects)
        text = Path(result.path).read_text()
        compile(text, name, "exec")
        lines = {line.strip() for line in text.splitlines()}
        missing = [line for line in REWRITTEN[name] if line not in lines]
        assert not missing, f"{name}: {missing}"
        assert sorted(f.code for f in result.findings) == sorted(LEFT[name]), name
    again = migrate_paths([projects], write=True, jobs=1)
    assert not again.changed
    remaining = check_paths([projects], jobs=1)
    assert sorted(f.code for f in remaining) == sorted(c for codes in LEFT.values() for c in codes)
    assert not any(f.autofix for f in remaining)


def test_diff_mode_never_writes(projects: Path) -> None:
    before = {p: p.read_bytes() for p in projects.rglob("*.py")}
    report = migrate_paths([projects], write=True, diff=True, jobs=1)
    assert report.changed
    assert report.diff().count("+++ b/") == len(report.changed)
    assert {p: p.read_bytes() for p in projects.rglob("*.py")} == before


def test_pool_gives_the_same_results(projects: Path) -> None:
    copies = projects / "copies"
    for index in range(4):
        shutil.copytree(FIXTURES, copies / f"copy{index}")
    alone = check_paths([projects], jobs=1)
    pooled = check_paths([projects], jobs=2)
    assert pooled == alone
    for index in range(4):
        assert any(f"copy{index}" in finding.path for finding in alone), index
