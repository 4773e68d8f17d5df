"""docs/api.md is checked against the code: every public member, fixture, marker, option,
variable, label, file name and command the code has is named there."""

from __future__ import annotations

import dataclasses
import inspect
import re
from pathlib import Path

import pytest

from parallel_isolation import artifacts, ownership, plugin
from parallel_isolation.cli import COMMANDS
from parallel_isolation.containers.services import ContainerService
from parallel_isolation.identity import Identity
from parallel_isolation.images import ImagesError
from parallel_isolation.images.recipe import project_image_specs
from parallel_isolation.mqtt.brokers import TestMQTTBroker
from parallel_isolation.mqtt.client import NamespacedClient, ReceivedMessage
from parallel_isolation.mqtt.topics import TopicNamespace
from parallel_isolation.project import find_project
from parallel_isolation.recording.recorder import EXPECT_MARKER_HELP
from parallel_isolation.services import (
    CallableReady,
    EnvNames,
    LogReady,
    MqttReady,
    PortReady,
    ServiceConfigError,
    ServiceRunner,
    ServiceSpec,
    TestProcess,
)
from parallel_isolation.services.catalog import specs_from_project
from parallel_isolation.services.runner import ProcessService
from parallel_isolation.session.context import ParallelTestContext
from parallel_isolation.settings import reference_markdown

ROOT = Path(__file__).resolve().parents[3]
API = (ROOT / "docs" / "api.md").read_text()
ENV_NAME = re.compile(r"\"((?:ISOLATION|DOCKER)_[A-Z_]+)\"")
NOT_ENV = {"DOCKER_EVENTS"}  # a constant of the validator, not a variable

# Each object and the heading of its section in docs/api.md.
SECTIONS: list[tuple[type, str]] = [
    (ParallelTestContext, "## `ParallelTestContext`"),
    (NamespacedClient, "## `NamespacedClient`"),
    (ReceivedMessage, "## `ReceivedMessage`"),
    (TopicNamespace, "## `TopicNamespace`"),
    (TestMQTTBroker, "## `TestMQTTBroker`"),
    (ServiceSpec, "### `ServiceSpec`"),
    (EnvNames, "### `EnvNames`"),
    (MqttReady, "### Readiness"),
    (LogReady, "### Readiness"),
    (PortReady, "### Readiness"),
    (CallableReady, "### Readiness"),
    (ServiceRunner, "### `ServiceRunner`"),
    (ProcessService, "### `RunningService`"),
    (ContainerService, "### `RunningService`"),
    (TestProcess, "## `TestProcess`"),
]


def section(heading: str) -> str:
    """The text under ``heading`` up to the next heading of the same or a higher level."""
    assert heading in API, f"docs/api.md has no section {heading!r}"
    level = heading.split(" ")[0]
    body = API.split(heading + "\n", 1)[1]
    stop = re.search(rf"^#{{1,{len(level)}}} ", body, flags=re.MULTILINE)
    return body[: stop.start()] if stop else body


def marked(name: str) -> str:
    """The text between ``<!-- name:start -->`` and ``<!-- name:end -->``."""
    return API.split(f"<!-- {name}:start -->\n", 1)[1].split(f"<!-- {name}:end -->", 1)[0]


def public_members(cls: type) -> set[str]:
    """Methods, properties, class attributes, dataclass fields and attributes set in the source."""
    names = {name for name in dir(cls) if not name.startswith("_")}
    if dataclasses.is_dataclass(cls):
        names |= {field.name for field in dataclasses.fields(cls)}
    source = inspect.getsource(cls)
    names |= set(re.findall(r"self\.([a-z][a-z0-9_]*)\s*(?::[^=\n]*)?=[^=]", source))
    names |= set(re.findall(r'object\.__setattr__\(self, "([a-z][a-z0-9_]*)"', source))
    return names


def documented(name: str, text: str) -> bool:
    return re.search(rf"`{re.escape(name)}[`(]", text) is not None


@pytest.mark.parametrize(("cls", "heading"), SECTIONS, ids=[c.__name__ for c, _ in SECTIONS])
def test_every_public_member_is_documented(cls: type, heading: str) -> None:
    members = public_members(cls)
    assert len(members) >= 3, f"the member scan of {cls.__name__} found almost nothing"
    text = section(heading)
    missing = sorted(name for name in members if not documented(name, text))
    assert not missing, f"docs/api.md ({heading}) does not document {cls.__name__}.{missing}"


def test_every_fixture_is_documented() -> None:
    fixtures = {
        name
        for name, value in vars(plugin).items()
        if hasattr(value, "_fixture_function_marker")
        or type(value).__name__ == "FixtureFunctionDefinition"
    }
    assert {"parallel_test_context", "mqtt_client", "isolation_services"} <= fixtures
    text = section("## Fixtures")
    missing = sorted(name for name in fixtures if f"| `{name}` |" not in text)
    assert not missing, f"docs/api.md does not document the fixtures {missing}"


def test_markers_are_the_plugins() -> None:
    names = {
        help_text.split(":")[0].split("(")[0]
        for help_text in (EXPECT_MARKER_HELP, plugin.DOCKER_MARKER_HELP)
    }
    rows = marked("markers")
    for name in names:
        assert documented(name, rows), f"marker {name} is not in docs/api.md"


def test_options_table_is_generated_from_the_options() -> None:
    assert marked("config-reference") == reference_markdown()


def test_every_environment_variable_the_code_reads_is_documented() -> None:
    names: set[str] = set()
    for path in (ROOT / "lib" / "parallel_isolation").rglob("*.py"):
        names |= set(ENV_NAME.findall(path.read_text()))
    names -= NOT_ENV
    assert len(names) > 10, "the scan found almost nothing: the pattern is broken"
    missing = sorted(name for name in names if f"`{name}`" not in API)
    assert not missing, f"docs/api.md does not document {missing}"


def test_marker_variables_and_labels_are_ownerships() -> None:
    variables = marked("marker-variables")
    assert [line.split("`")[1] for line in variables.splitlines()[2:]] == list(
        ownership.MARKER_VARIABLES
    )
    env = ownership.marker_env(_identity(), "service:x")
    assert env[ownership.MARKER_ENV] == ownership.MARKER_VALUE
    assert f"always `{ownership.MARKER_VALUE}`" in variables
    labels = marked("labels")
    constants = {
        value
        for name, value in vars(ownership).items()
        if name.endswith("_LABEL") and isinstance(value, str)
    }
    assert len(constants) >= 8
    missing = sorted(label for label in constants if f"`{label}`" not in labels)
    assert not missing, f"docs/api.md does not document the labels {missing}"
    assert f"`{ownership.OWNER_FILE}`" in section("### Owner files")


def _identity() -> Identity:
    return Identity.resolve(run_id="a1b2c3d4", worker_id="gw0")


def test_state_directory_layout_names_what_the_code_creates() -> None:
    created: set[str] = set()
    for path in (ROOT / "lib" / "parallel_isolation").rglob("*.py"):
        text = path.read_text()
        created |= set(re.findall(r"state_dir(?:\(\))?\)? / \"([a-z][a-z.-]*)\"", text))
        created |= set(re.findall(r"default_state_dir\(\)\) / \"([a-z][a-z.-]*)\"", text))
    assert {"ports", "locks", "tmp"} <= created, created
    layout = marked("state-layout")
    missing = sorted(name for name in created if f"`{name}" not in layout)
    assert not missing, f"docs/api.md's state directory does not name {missing}"


def test_artifacts_layout_names_every_file() -> None:
    names = {
        value
        for name, value in vars(artifacts).items()
        if name.endswith(("_FILE", "_DIR")) and isinstance(value, str)
    }
    assert {"run.json", "events.jsonl", "logs"} <= names
    layout = marked("artifacts-layout")
    missing = sorted(name for name in names if name not in layout)
    assert not missing, f"docs/api.md's artifacts layout does not name {missing}"


def test_every_command_is_documented() -> None:
    rows = marked("commands")
    missing = [c.name for c in COMMANDS if f"`parallel-isolation {c.name}`" not in rows]
    assert not missing, f"docs/api.md does not document the commands {missing}"


def _known_keys(error: Exception) -> list[str]:
    known = str(error).split("known: ", 1)[1]
    return [key.strip() for key in known.split(",")]


def test_every_pyproject_key_is_documented(tmp_path: Path) -> None:
    """The keys the parsers accept (their own error lists them) appear in the examples."""
    (tmp_path / "ctx").mkdir()
    (tmp_path / "pyproject.toml").write_text(
        "[tool.parallel-isolation.services.s]\nnot-a-key = 1\n"
        '[tool.parallel-isolation.images.i]\nref = "i"\ncontext = "ctx"\nnot-a-key = 1\n'
    )
    project = find_project(tmp_path)
    with pytest.raises(ServiceConfigError) as services_error:
        specs_from_project(project)
    with pytest.raises(ImagesError) as images_error:
        project_image_specs(project)
    service_keys = _known_keys(services_error.value)
    image_keys = _known_keys(images_error.value)
    assert "command" in service_keys
    assert "context" in image_keys
    services, images = section("## Services"), section("## Images")
    assert not [k for k in service_keys if not re.search(rf"^{re.escape(k)} = ", services, re.M)]
    assert not [k for k in image_keys if not re.search(rf"^{re.escape(k)} = ", images, re.M)]
