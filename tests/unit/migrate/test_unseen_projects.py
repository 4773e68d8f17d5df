"""The tool on test suites written in styles it was not built around.

fixtures/ holds five small projects in the manner of other MQTT codebases:
unittest classes with class attributes, a module-level client with
publishing helpers, a conftest with a fixed broker container and a raw
``mqtt_client`` fixture, aiomqtt async tests, tests that drive the docker
CLI from a pytest class.  For each: the exact findings, a rewrite that
compiles, is idempotent and leaves only what needs a human.
"""

from __future__ import annotations

import shutil
from collections import defaultdict
from pathlib import Path

import pytest

from parallel_isolation.migrate import check_paths, migrate_paths

FIXTURES = Path(__file__).parent / "fixtures"

EXPECTED = {
    "async_gateway/test_gateway_async.py": [
        (17, "PI101"), (17, "PI102"), (17, "PI110"), (18, "PI107"), (30, "PI101"), (30, "PI102"),
        (30, "PI110"), (31, "PI107"), (32, "PI107"), (33, "PI112"), (40, "PI101"), (42, "PI108"),
    ],
    "compose_cli/test_compose_stack.py": [
        (14, "PI113"), (23, "PI105"), (24, "PI105"), (25, "PI105"), (31, "PI104"), (31, "PI105"),
        (31, "PI103"), (34, "PI112"), (35, "PI104"), (36, "PI111"), (42, "PI110"), (43, "PI101"),
        (43, "PI102"), (50, "PI105"), (50, "PI104"), (57, "PI107"), (58, "PI104"), (59, "PI112"),
        (63, "PI111"),
    ],
    "sensor_module_client/test_sensor_readings.py": [
        (12, "PI101"), (13, "PI102"), (21, "PI109"), (26, "PI110"), (33, "PI108"), (44, "PI107"),
        (46, "PI107"), (57, "PI110"), (59, "PI107"), (61, "PI108"), (67, "PI108"),
    ],
    "sensorhub/conftest.py": [
        (14, "PI102"), (25, "PI111"), (28, "PI111"), (31, "PI104"), (32, "PI103"), (35, "PI112"),
        (38, "PI111"), (42, "PI114"), (43, "PI110"), (44, "PI101"), (58, "PI108"), (61, "PI107"),
    ],
    "sensorhub/test_hub_pipeline.py": [
        (24, "PI109"), (29, "PI107"), (35, "PI107"), (51, "PI104"), (52, "PI106"), (53, "PI115"),
        (53, "PI101"), (53, "PI102"), (57, "PI107"),
    ],
    "thermostat_unittest/test_thermostat.py": [
        (14, "PI101"), (15, "PI102"), (19, "PI110"), (31, "PI107"), (32, "PI112"), (35, "PI109"),
        (39, "PI107"), (40, "PI112"), (44, "PI107"), (45, "PI110"), (46, "PI101"), (46, "PI102"),
        (47, "PI107"), (48, "PI112"),
    ],
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
    ],
    "sensor_module_client/test_sensor_readings.py": [
        'def send_reading(sensor, value, unit="C", *, topic_namespace):',
        "def _calibrate(self, sensor, offset, *, topic_namespace):",
        "send_reading(sensor, 20.5, topic_namespace=topic_namespace)",
        'client = mqtt.Client(client_id="sensor-gateway-tests")',
    ],
    "sensorhub/conftest.py": [
        "def mosquitto(docker_client, isolation_worker):",
        'name=isolation_worker.container_name("sensorhub-broker"),',
        "client.connect(mqtt_broker.host, mqtt_broker.port)",
    ],
    "sensorhub/test_hub_pipeline.py": [
        'if topic_namespace.strip(msg.topic).startswith("hub/status/"):',
        'hub.watch(topic_namespace.filter("hub/devices/+/registered"))',
        'environment={"MQTT_BROKER": mqtt_broker.host, "MQTT_PORT": str(mqtt_broker.port), '
        '"TOPIC_PREFIX": topic_namespace.prefix},',
    ],
    "thermostat_unittest/test_thermostat.py": [],
}

#: What the codemod must leave to a human (codes of the remaining findings).
LEFT = {
    "async_gateway/test_gateway_async.py": ["PI112"],
    "compose_cli/test_compose_stack.py": ["PI103", "PI111", "PI111", "PI112", "PI112", "PI113"],
    "sensor_module_client/test_sensor_readings.py": ["PI101", "PI102", "PI109", "PI110"],
    "sensorhub/conftest.py": [
        "PI102", "PI103", "PI107", "PI108", "PI111", "PI111", "PI111", "PI112", "PI114",
    ],
    "sensorhub/test_hub_pipeline.py": ["PI106"],
    "thermostat_unittest/test_thermostat.py": sorted(c for _, c in EXPECTED[
        "thermostat_unittest/test_thermostat.py"
    ]),
}


def _relative(path: str, root: Path) -> str:
    return Path(path).resolve().relative_to(root.resolve()).as_posix()


def test_findings_on_unseen_projects() -> None:
    found: dict[str, list[tuple[int, str]]] = defaultdict(list)
    for finding in check_paths([FIXTURES], jobs=1):
        found[_relative(finding.path, FIXTURES)].append((finding.line, finding.code))
    assert {k: sorted(v) for k, v in found.items()} == {
        k: sorted(v) for k, v in EXPECTED.items()
    }


@pytest.fixture
def projects(tmp_path: Path) -> Path:
    root = tmp_path / "projects"
    shutil.copytree(FIXTURES, root)
    return root


def test_rewrite_compiles_is_idempotent_and_leaves_the_rest(projects: Path) -> None:
    report = migrate_paths([projects], write=True, jobs=1)
    assert not report.failed
    written = {_relative(r.path, projects) for r in report.files if r.written}
    assert written == set(EXPECTED) - {"thermostat_unittest/test_thermostat.py"}
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
    assert len(alone) == 5 * sum(len(v) for v in EXPECTED.values())
