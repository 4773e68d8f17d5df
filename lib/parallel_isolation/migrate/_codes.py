"""The hazard codes: one registry read by the linter, the codemod and the docs.

Every code says what it finds, why that breaks once pytest-xdist runs the
file on several workers, and what the parallel-safe form looks like.
``docs/migration.md`` embeds :func:`codes_markdown` between markers and a
test keeps the two identical.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

__all__ = ["CODES", "Code", "Severity", "codes_markdown"]

Severity = Literal["error", "warning"]
Autofix = Literal["yes", "partly", "no"]


@dataclass(frozen=True)
class Code:
    """One hazard: identifier, short name, severity and its documentation."""

    code: str
    name: str
    severity: Severity
    summary: str
    why: str
    fix: str
    autofix: Autofix


_ALL = (
    Code(
        "PI001",
        "syntax-error",
        "error",
        "The file does not parse; it is reported and skipped, never rewritten.",
        "Nothing can be checked in a file Python cannot read, and a rewrite could only make "
        "it worse.",
        "Fix the syntax error (the message carries the parser's line and column), then run "
        "the check again.",
        "no",
    ),
    Code(
        "PI002",
        "rewrite-failed",
        "error",
        "The codemod produced code that does not compile; the file was left as it was.",
        "A rewrite that breaks a file is worse than none.",
        "Report it with the file; migrate the file by hand meanwhile.",
        "no",
    ),
    Code(
        "PI101",
        "broker-host",
        "error",
        "Hard-coded MQTT broker host (`connect('localhost', ...)`, `MQTT_BROKER=...`, a "
        "`BROKER_HOST` constant).",
        "Every worker connects to the same broker, so they hear each other's messages, and one "
        "worker restarting or killing 'its' broker takes the others down.",
        "`client.connect(mqtt_broker.host, mqtt_broker.port)`: the plugin's `mqtt_broker` "
        "fixture is one broker per worker.",
        "yes",
    ),
    Code(
        "PI102",
        "broker-port",
        "error",
        "Hard-coded MQTT broker port (1883, 8883, 18833, or any literal port passed to `connect`).",
        "Only one process can listen on a port: the second worker's broker fails to start or, "
        "worse, silently uses the first worker's.",
        "`mqtt_broker.port` (allocated per worker, reserved host-wide), "
        "`str(mqtt_broker.port)` in environments.",
        "partly",
    ),
    Code(
        "PI103",
        "published-port",
        "error",
        "A fixed host port in a container's port mapping (`ports={'1883/tcp': 1883}`, "
        "`-p 1883:1883`).",
        "Docker refuses the second container with 'port is already allocated'.",
        "Publish on a port reserved for the test, bound to 127.0.0.1: "
        "`ports={'1883/tcp': ('127.0.0.1', parallel_test_context.port('mqtt'))}`, or let the "
        "plugin's docker backend run the broker.",
        "no",
    ),
    Code(
        "PI104",
        "container-name",
        "error",
        "A fixed container name (`name='mqtt-broker-test'`, `containers.get(...)`, `--name`).",
        "Docker names are unique per host: the second worker gets 'Conflict. The container "
        "name ... is already in use', and name-based cleanup removes a sibling's container.",
        "`parallel_test_context.container_name('mqtt-broker-test')` in tests and "
        "function-scoped fixtures, `isolation_worker.container_name(...)` in wider fixtures: "
        "`{service}-{worker}-{run}`.",
        "yes",
    ),
    Code(
        "PI105",
        "network-name",
        "error",
        "A fixed Docker network name (`networks.create('test-net')`, `network='test-net'`).",
        "Workers share (or fail to create) one network, so containers reach a sibling's broker "
        "by name and removing the network breaks the other worker.",
        "`parallel_test_context.network_name('test-net')` (or "
        "`isolation_worker.network_name(...)` in wider fixtures).",
        "yes",
    ),
    Code(
        "PI106",
        "host-network",
        "error",
        "`network_mode='host'` (or `--network host`).",
        "Containers on the host network share the host's ports and see every worker's broker "
        "on localhost.",
        "Put the containers on the worker's own network and give them "
        "`parallel_test_context.service_env(service, in_container=True)`.",
        "no",
    ),
    Code(
        "PI107",
        "bare-topic",
        "error",
        "A bare topic literal in `publish`, `subscribe`, `will_set`, `message_callback_add` "
        "(or a helper parameter that reaches one).",
        "All workers publish and subscribe to the same topics: tests receive each other's "
        "messages and retained messages leak from one test into the next.",
        "`client.publish(topic_namespace.topic('fire/trigger'))`, "
        "`client.subscribe(topic_namespace.filter('system/+/health'))`; or use the plugin's "
        "`mqtt_client`, which namespaces bare topics itself.",
        "yes",
    ),
    Code(
        "PI108",
        "built-topic",
        "error",
        "A topic built without a namespace (f-string, `+`, `%`, `.format`).",
        "Same as PI107: the built topic is identical on every worker.",
        "Wrap the built topic: `topic_namespace.topic(f'camera/{camera}/fire')`.",
        "yes",
    ),
    Code(
        "PI109",
        "incoming-topic",
        "error",
        "An incoming message's topic compared with, or parsed as, a bare topic "
        "(`msg.topic == 'fire/trigger'`, `msg.topic.split('/')`).",
        "Once topics are namespaced, the full topic carries the prefix: the comparison never "
        "matches and index-based parsing reads the prefix.",
        "`topic_namespace.strip(msg.topic) == 'fire/trigger'` (strips only the leading "
        "prefix; a foreign topic raises).",
        "yes",
    ),
    Code(
        "PI110",
        "client-id",
        "error",
        "A fixed MQTT client id (`Client(client_id='test-client')`, `MQTT_CLIENT_ID=...`).",
        "The broker allows one session per client id: a second worker connecting with the same "
        "id kicks the first off, which reconnects and kicks the second off, and so on.",
        "`parallel_test_context.client_id('test-client')`: unique per run, worker and use.",
        "yes",
    ),
    Code(
        "PI111",
        "name-cleanup",
        "error",
        "Cleanup by name pattern: containers listed and removed by name substring, `prune`, "
        "`pkill`/`killall`.",
        "It removes what sibling workers and other runs are still using; the upstream project "
        "that cleaned up this way deleted its own workers' containers mid-test.",
        "Remove only what the test created (keep the handle), or select by the plugin's labels "
        "and the owner's liveness (`invoke cleanup-orphans`).",
        "no",
    ),
    Code(
        "PI112",
        "sleep-wait",
        "warning",
        "`time.sleep` used to wait for a message or a state (any sleep but one in a loop that "
        "re-checks a condition, such as `while not ready(): sleep(0.1)`).",
        "Under load (12 workers on 2 cores) the sleep is too short and the test flakes; "
        "unloaded it wastes the time every run.",
        "Wait until a deadline for the named condition: "
        "`mqtt_client.wait_for('fire/trigger', predicate, timeout=10)`, "
        "`wait_for_message(...)`; after a raw client's `subscribe()`/`connect()` the codemod "
        "waits for the SUBACK/CONNACK itself.",
        "partly",
    ),
    Code(
        "PI113",
        "shared-temp-path",
        "error",
        "A fixed path under `/tmp` (or `/var/tmp`, `/dev/shm`).",
        "Workers read and write the same file: one truncates or deletes what another is using.",
        "pytest's `tmp_path` (per test) or `tmp_path_factory` (per session and worker); for a "
        "device that only one user may hold, the exclusive-lock API.",
        "no",
    ),
    Code(
        "PI114",
        "shadowed-fixture",
        "error",
        "The module defines a fixture named like one of the plugin's (`mqtt_broker`, "
        "`mqtt_client`, ...).",
        "The local fixture hides the plugin's per-worker one, typically with a shared broker.",
        "Delete the local fixture and use the plugin's.",
        "no",
    ),
    Code(
        "PI115",
        "service-env-prefix",
        "error",
        "A service environment (a mapping, `monkeypatch.setenv`/`os.environ` calls, a mapping "
        "copied into `os.environ`) sets the broker but not the variable the services read "
        "for their topic prefix (learned from their source, `TOPIC_PREFIX` by default).",
        "The service then publishes and subscribes on bare topics, shared by every worker, "
        "while the test's topics are namespaced.",
        "Set the services' prefix variable to `topic_namespace.prefix`, or build the whole "
        "environment with `parallel_test_context.service_env(service)`.",
        "yes",
    ),
    Code(
        "PI116",
        "fixed-subnet",
        "error",
        "A Docker network with a fixed subnet (`IPAMPool(subnet='172.28.0.0/16')`, `--subnet`).",
        "The second worker's network overlaps the first's and Docker refuses to create it.",
        "Leave the subnet to Docker (no IPAM config), or give each worker its own.",
        "no",
    ),
    Code(
        "PI117",
        "shared-image-build",
        "error",
        "An image tag every worker builds (`images.build(tag='app:test')`, "
        "`docker build -t app:test`).",
        "Workers build and re-tag the same image at the same time: slow, and one worker's "
        "build can replace the image another is starting containers from.",
        "Build the image once per run before the workers start (or tag it per worker).",
        "no",
    ),
)

CODES: Mapping[str, Code] = {code.code: code for code in _ALL}


def codes_markdown() -> str:
    """The codes as the Markdown section embedded in ``docs/migration.md``."""
    lines = [
        "| code | name | severity | auto-fix | finds |",
        "| --- | --- | --- | --- | --- |",
    ]
    lines += [
        f"| {c.code} | {c.name} | {c.severity} | {c.autofix} | {c.summary} |"
        for c in CODES.values()
    ]
    for c in CODES.values():
        lines += [
            "",
            f"### {c.code} {c.name}",
            "",
            c.summary,
            "",
            f"- **Why it breaks under xdist:** {c.why}",
            f"- **Parallel-safe form:** {c.fix}",
            f"- **Auto-fix:** {c.autofix}",
        ]
    return "\n".join(lines) + "\n"
