"""Image building: apt sources, inputs hashes, and real builds on a real engine.

The parsing and hashing tests are pure.  The ``docker`` tests build (or find
up to date) the real images with :func:`build_images` and run them; without an
engine they skip with the reason, and with ``--require-docker`` the plugin
turns that skip into a failure.  Every container started here carries the tool
label and a run label unique to this module, and is removed by id.
"""

from __future__ import annotations

import contextlib
import os
import queue
import re
import shutil
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from parallel_isolation import images as im
from parallel_isolation.images import apt, cli, commands, progress, recipe
from parallel_isolation.ownership import TOOL_LABEL, TOOL_VALUE
from parallel_isolation.project import find_project

ROOT = Path(__file__).resolve().parents[3]
RUN_LABEL = "io.parallel-isolation.run"
RUN_ID = uuid.uuid4().hex[:8]
# This repository's own image, declared in its pyproject.toml.
SERVICES_IMAGE = "parallel-isolation/wildfire-services:latest"

# --- apt sources -------------------------------------------------------------------

HOST_DEB822 = """\
Types: deb
# http://snapshot.debian.org/archive/debian/20250520T000000Z
URIs: http://deb.debian.org/debian
Suites: bookworm bookworm-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
# http://snapshot.debian.org/archive/debian-security/20250520T000000Z
URIs: http://deb.debian.org/debian-security
Suites: bookworm-security
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
"""

NODESOURCE_DEB822 = """\
Types: deb
URIs: https://deb.nodesource.com/node_20.x
Suites: nodistro
Components: main
Signed-By: /usr/share/keyrings/nodesource.gpg
"""

CLASSIC = """\
# classic one-line format
deb http://ftp.de.debian.org/debian/ bookworm main contrib non-free-firmware
deb-src http://ftp.de.debian.org/debian/ bookworm main
deb http://security.debian.org/debian-security bookworm-security main
deb http://ftp.de.debian.org/debian/ bookworm-updates main
"""

THIRD_PARTY_LIST = """\
deb https://packages.cloud.google.com/apt cloud-sdk-bookworm main
deb [arch=amd64 signed-by=/etc/apt/keyrings/docker.gpg] https://download.docker.com/linux/debian bookworm stable
deb http://repo.mongodb.org/apt/debian bookworm/mongodb-org/7.0 main
"""

INLINE_KEY_DEB822 = """\
Types: deb
URIs: https://mirror.example.org/debian
Suites: bookworm
Components: main
Signed-By:
 -----BEGIN PGP PUBLIC KEY BLOCK-----
 .
 mQINBFyy...
 -----END PGP PUBLIC KEY BLOCK-----
"""


@pytest.mark.parametrize(
    ("files", "uri", "keyring"),
    [
        pytest.param(
            {"sources.list.d/debian.sources": HOST_DEB822},
            "http://deb.debian.org/debian",
            "/usr/share/keyrings/debian-archive-keyring.gpg",
            id="deb822-host",
        ),
        pytest.param(
            {"sources.list": CLASSIC}, "http://ftp.de.debian.org/debian", None, id="one-line"
        ),
        pytest.param(
            {
                "sources.list": "deb [arch=amd64 signed-by=/usr/share/keyrings/deb.gpg] "
                "https://mirror.example.org/debian bookworm main\n"
            },
            "https://mirror.example.org/debian",
            "/usr/share/keyrings/deb.gpg",
            id="one-line-signed-by",
        ),
        pytest.param(
            {
                "sources.list": "deb http://security.debian.org/debian-security "
                "bookworm-security main\ndeb http://m.example/debian bookworm main\n"
            },
            "http://m.example/debian",
            None,
            id="security-listed-first",
        ),
        pytest.param(
            {
                "sources.list": THIRD_PARTY_LIST,
                "sources.list.d/nodesource.sources": NODESOURCE_DEB822,
                "sources.list.d/debian.sources": HOST_DEB822,
            },
            "http://deb.debian.org/debian",
            "/usr/share/keyrings/debian-archive-keyring.gpg",
            id="third-party-ignored",
        ),
        pytest.param(
            {
                "sources.list.d/a.sources": HOST_DEB822.replace(
                    "Types: deb\n# http://snapshot.debian.org/archive/debian/",
                    "Types: deb\nEnabled: no\n# http://snapshot.debian.org/archive/debian/",
                ),
                "sources.list.d/b.list": "deb http://other.example/debian trixie main\n",
            },
            "http://other.example/debian",
            None,
            id="disabled-stanza-skipped-other-suite-used",
        ),
        pytest.param(
            {
                "sources.list": "deb http://trixie.example/debian trixie main\n"
                "deb http://bookworm.example/debian bookworm main\n"
            },
            "http://bookworm.example/debian",
            None,
            id="requested-suite-preferred",
        ),
        pytest.param(
            {"sources.list.d/inline.sources": INLINE_KEY_DEB822},
            "https://mirror.example.org/debian",
            None,
            id="deb822-inline-key",
        ),
        pytest.param(
            {"sources.list.d/lower.sources": HOST_DEB822.lower()},
            "http://deb.debian.org/debian",
            "/usr/share/keyrings/debian-archive-keyring.gpg",
            id="deb822-lowercase-fields",
        ),
    ],
)
def test_select_debian_mirror(
    tmp_path: Path, files: dict[str, str], uri: str, keyring: str | None
) -> None:
    for name, text in files.items():
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    mirror = apt.select_debian_mirror(apt.read_apt_sources(tmp_path), "bookworm")
    assert (mirror.uri, mirror.keyring) == (uri, keyring)
    assert str(tmp_path) in mirror.origin


@pytest.mark.parametrize(
    "files",
    [
        pytest.param({}, id="no-sources"),
        pytest.param({"sources.list": THIRD_PARTY_LIST}, id="third-party-only"),
        pytest.param(
            {"sources.list.d/n.sources": NODESOURCE_DEB822, "sources.list.d/x.list.disabled": ""},
            id="nodesource-only",
        ),
        pytest.param(
            {"sources.list": "deb-src http://deb.debian.org/debian bookworm main\n"},
            id="deb-src-only",
        ),
        pytest.param(
            {"sources.list": "deb http://deb.debian.org/debian-security bookworm-security main\n"},
            id="security-only",
        ),
        pytest.param(
            {"sources.list": "#deb http://deb.debian.org/debian bookworm main\ngarbage line\n"},
            id="commented-out",
        ),
        pytest.param(
            {"sources.list": "deb http://deb.debian.org/debian bookworm contrib\n"},
            id="no-main-component",
        ),
    ],
)
def test_missing_debian_entry_is_a_clear_error(tmp_path: Path, files: dict[str, str]) -> None:
    for name, text in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    with pytest.raises(im.MirrorNotFoundError, match="ISOLATION_DEBIAN_MIRROR"):
        apt.select_debian_mirror(apt.read_apt_sources(tmp_path), "bookworm")


def test_one_line_options_and_origin() -> None:
    (entry,) = apt.parse_one_line_sources(
        "deb [ arch=amd64,arm64 signed-by=/k.gpg trusted=yes ] http://m/debian bookworm main\n",
        "x.list",
    )
    assert entry.uris == ("http://m/debian",)
    assert entry.suites == ("bookworm",)
    assert entry.components == ("main",)
    assert entry.signed_by == "/k.gpg"
    assert entry.origin == "x.list:1"


def test_deb822_multi_value_fields() -> None:
    (entry, security) = apt.parse_deb822_sources(HOST_DEB822, "d.sources")
    assert entry.suites == ("bookworm", "bookworm-updates")
    assert entry.origin == "d.sources:1"
    assert security.uris == ("http://deb.debian.org/debian-security",)


def test_host_sources_name_a_mirror_when_on_debian() -> None:
    if not Path("/etc/debian_version").exists():
        pytest.skip("not a Debian host")
    mirror = apt.select_debian_mirror(apt.read_apt_sources(), "bookworm")
    assert mirror.uri.startswith(("http://", "https://", "file:/"))


# --- inputs hash ---------------------------------------------------------------------

BASE_FILES = (
    im.ContextFile("Dockerfile", b"FROM x\n"),
    im.ContextFile("wildfire/__init__.py", b""),
    im.ContextFile("run.sh", b"#!/bin/sh\n", executable=True),
    im.ContextFile("link", b"", link_target="run.sh"),
)


def _hash(
    *,
    dockerfile: bytes = b"ARG BASE_IMAGE\nFROM ${BASE_IMAGE}\n",
    files: tuple[im.ContextFile, ...] = BASE_FILES,
    base: str = "sha256:aaaa",
    args: dict[str, str] | None = None,
) -> str:
    return im.compute_inputs_hash(
        dockerfile=dockerfile,
        files=files,
        base_image_id=base,
        build_args=args if args is not None else {"BASE_IMAGE": "b:1", "X": "1"},
    )


def test_inputs_hash_is_stable_and_order_independent() -> None:
    reordered = _hash(files=tuple(reversed(BASE_FILES)), args={"X": "1", "BASE_IMAGE": "b:1"})
    assert _hash() == _hash() == reordered
    assert len(_hash()) == 64


@pytest.mark.parametrize(
    "changed",
    [
        pytest.param({"dockerfile": b"ARG BASE_IMAGE\nFROM ${BASE_IMAGE} \n"}, id="dockerfile"),
        pytest.param({"base": "sha256:aaab"}, id="base-id"),
        pytest.param({"args": {"BASE_IMAGE": "b:2", "X": "1"}}, id="build-arg-value"),
        pytest.param({"args": {"BASE_IMAGE": "b:1"}}, id="build-arg-removed"),
        pytest.param(
            {
                "files": (
                    *BASE_FILES[:1],
                    im.ContextFile("wildfire/__init__.py", b"#"),
                    *BASE_FILES[2:],
                )
            },
            id="file-content",
        ),
        pytest.param(
            {"files": (*BASE_FILES[:1], im.ContextFile("wildfire/init.py", b""), *BASE_FILES[2:])},
            id="file-name",
        ),
        pytest.param(
            {"files": (*BASE_FILES[:2], im.ContextFile("run.sh", b"#!/bin/sh\n"), BASE_FILES[3])},
            id="exec-bit",
        ),
        pytest.param(
            {"files": (*BASE_FILES[:3], im.ContextFile("link", b"", link_target="other"))},
            id="link-target",
        ),
        pytest.param({"files": (*BASE_FILES, im.ContextFile("new.txt", b""))}, id="file-added"),
        pytest.param({"files": BASE_FILES[1:]}, id="file-removed"),
    ],
)
def test_inputs_hash_is_sensitive(changed: dict[str, Any]) -> None:
    assert _hash(**changed) != _hash()


def test_recipe_hash_ignores_order_and_tracks_content() -> None:
    recipe = im.BaseRecipe("bookworm", packages=("python3", "mosquitto"), pip=("paho-mqtt==2.2.0",))
    same = im.BaseRecipe("bookworm", packages=("mosquitto", "python3"), pip=("paho-mqtt==2.2.0",))
    assert recipe.inputs_hash == same.inputs_hash
    assert recipe.ref == "parallel-isolation/base:bookworm"
    for other in (
        im.BaseRecipe("trixie", packages=recipe.packages, pip=recipe.pip),
        im.BaseRecipe("bookworm", packages=(*recipe.packages, "tini"), pip=recipe.pip),
        im.BaseRecipe("bookworm", packages=recipe.packages, pip=("paho-mqtt==2.1.0",)),
    ):
        assert other.inputs_hash != recipe.inputs_hash


def test_shipped_recipes_load() -> None:
    """The base recipe and the broker image's Dockerfile come with the package."""
    base = recipe.base_recipe()
    assert base.suite == "bookworm"
    assert {"python3", "mosquitto", "ca-certificates"} <= set(base.packages)
    assert any(req.startswith("paho-mqtt==2.") for req in base.pip)
    broker = recipe.broker_image_spec()
    assert broker.ref == im.MOSQUITTO_IMAGE
    assert [f.path for f in im.context_files(broker)] == [
        "Dockerfile",
        "entrypoint.sh",
        "mosquitto.conf",
    ]


def test_bad_recipe_names_the_file(tmp_path: Path) -> None:
    bad = tmp_path / "recipe.toml"
    bad.write_text('suite = "bookworm"\npackages = "python3"\n')
    with pytest.raises(im.ImagesError, match=r"recipe\.toml: 'packages' must be a list"):
        im.BaseRecipe.load(bad)


def test_context_files_skip_caches_and_dockerignore(tmp_path: Path) -> None:
    (tmp_path / "Dockerfile").write_text("FROM x\n")
    (tmp_path / ".dockerignore").write_text("secret.txt\n")
    (tmp_path / "secret.txt").write_text("no")
    pkg = tmp_path / "wildfire"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    spec = im.ImageSpec("t", "t:latest", tmp_path, tmp_path / "Dockerfile", "python:3.11-slim")
    before = im.context_files(spec)
    (pkg / "__pycache__").mkdir()
    (pkg / "__pycache__" / "__init__.cpython-311.pyc").write_bytes(b"\0")
    assert im.context_files(spec) == before
    assert [f.path for f in before] == [".dockerignore", "Dockerfile", "wildfire/__init__.py"]


def test_source_setting_errors_name_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(im.SOURCE_ENV, "sometimes")
    with pytest.raises(im.ImagesError, match=r"ISOLATION_IMAGE_SOURCE.*'sometimes'"):
        im.resolve_source()
    monkeypatch.setenv(im.SOURCE_ENV, "offline")
    assert im.resolve_source() == "offline"
    assert im.resolve_source("registry") == "registry"


def test_probe_is_bounded() -> None:
    # TEST-NET-1 address: never answers, so only the probe's own timeout ends it.
    # Unbounded, a connect would wait for the kernel's retries (minutes); the
    # deadline here is generous for a loaded machine and far below that.
    answers: list[bool] = []
    probe = threading.Thread(
        target=lambda: answers.append(im.probe_registry("https://192.0.2.1:9/v2/", timeout=0.5)),
        daemon=True,
    )
    probe.start()
    probe.join(60)
    assert not probe.is_alive(), "probe_registry ignored its 0.5 s timeout: still waiting at 60 s"
    assert answers == [False]


def test_failed_step_names_step_command_and_tail() -> None:
    events: list[im.ProgressEvent] = []
    argv = [
        sys.executable,
        "-c",
        "import sys; print('line one'); print('boom', file=sys.stderr); sys.exit(4)",
    ]
    with pytest.raises(im.StepError) as caught, progress.Step(events.append, "demo step") as step:
        commands.run_command(step, argv, timeout=30)
    error = caught.value
    assert error.step == "demo step"
    assert error.returncode == 4
    assert error.output_tail == ("line one", "boom")
    assert "'demo step' failed: exit status 4" in str(error)
    assert error.command.startswith(sys.executable)
    assert "sys.exit(4)" in error.command
    assert [e.kind for e in events] == ["start", "log", "log"]


def test_step_timeout_kills_and_reports() -> None:
    with (
        pytest.raises(im.StepError, match="timed out after 1s"),
        progress.Step(progress.no_progress, "slow") as step,
    ):
        commands.run_command(
            step,
            [sys.executable, "-c", "import time; print('started', flush=True); time.sleep(30)"],
            timeout=1,
        )


# --- real engine -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def engine() -> Iterator[Any]:
    from parallel_isolation.containers.engine import engine_problem

    problem = engine_problem()
    if problem is not None:
        pytest.skip(f"no Docker engine: {problem}")
    import docker

    client = docker.from_env(timeout=120)
    yield client
    client.close()


@pytest.fixture(scope="module")
def built(engine: Any) -> list[im.ImageResult]:
    """The images, built now or found up to date (CI builds them before the tests)."""
    return im.build_images(client=engine, project=find_project(ROOT))


def _labels() -> dict[str, str]:
    return {TOOL_LABEL: TOOL_VALUE, RUN_LABEL: RUN_ID, "io.parallel-isolation.role": "images-test"}


@pytest.fixture
def run_container(engine: Any) -> Iterator[Any]:
    """Start containers labelled for this module; remove exactly those, by id."""
    started: list[Any] = []

    def run(image: str, command: list[str] | None = None, **kwargs: Any) -> Any:
        container = engine.containers.run(
            image, command, detach=True, init=True, labels=_labels(), **kwargs
        )
        started.append(container)
        return container

    yield run
    from docker.errors import NotFound

    for container in started:
        with contextlib.suppress(NotFound):
            container.remove(force=True)


@pytest.mark.docker
def test_build_produces_labelled_images(built: list[im.ImageResult], engine: Any) -> None:
    refs = [r.ref for r in built]
    assert refs[-2:] == [im.MOSQUITTO_IMAGE, SERVICES_IMAGE]
    for result in built:
        labels = engine.api.inspect_image(result.ref)["Config"]["Labels"]
        assert labels[im.IMAGE_LABEL] == TOOL_VALUE
        assert TOOL_LABEL not in labels, "containers would inherit the tool label from the image"
        assert labels[im.INPUTS_HASH_LABEL] == result.inputs_hash


@pytest.mark.docker
def test_up_to_date_check_is_a_noop(built: list[im.ImageResult], engine: Any) -> None:
    # How fast it is (target 2 s) is a benchmark figure: nox -s bench-tools.
    events: list[im.ProgressEvent] = []
    again = im.build_images(progress=events.append, project=find_project(ROOT))
    assert [r.action for r in again] == ["up-to-date"] * len(again)
    assert [(r.ref, r.image_id) for r in again] == [(r.ref, r.image_id) for r in built]
    assert {e.step for e in events} == {"check images"}, "an up-to-date check built something"
    report = im.images_status(client=engine, project=find_project(ROOT))
    assert report.up_to_date, report.stale


@pytest.mark.docker
def test_status_cli_reports_current(
    built: list[im.ImageResult], capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli.main(["status", "--project", str(ROOT)]) == 0
    out = capsys.readouterr().out
    assert im.MOSQUITTO_IMAGE in out
    assert SERVICES_IMAGE in out
    assert "up to date" in out


def _wait_for_log(container: Any, needle: str, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        container.reload()
        logs = container.logs().decode(errors="replace")
        if needle in logs:
            return
        if container.status == "exited":
            break
        time.sleep(0.1)
    logs = container.logs().decode(errors="replace")
    pytest.fail(f"broker container did not log {needle!r} within {timeout}s; logs:\n{logs[-2000:]}")


def _round_trip(port: int) -> str:
    import paho.mqtt.client as mqtt

    client = mqtt.Client(
        mqtt.CallbackAPIVersion.VERSION2, client_id=f"images-test-{RUN_ID}-{uuid.uuid4().hex[:6]}"
    )
    connected: queue.Queue[Any] = queue.Queue()
    subscribed: queue.Queue[Any] = queue.Queue()
    received: queue.Queue[bytes] = queue.Queue()
    client.on_connect = lambda c, u, flags, rc, props: connected.put(rc)
    client.on_subscribe = lambda c, u, mid, rcs, props: subscribed.put(rcs)
    client.on_message = lambda c, u, msg: received.put(msg.payload)
    topic = f"test/{RUN_ID}/images/ping"
    client.connect("127.0.0.1", port, keepalive=10)
    client.loop_start()
    try:
        assert not connected.get(timeout=10).is_failure
        client.subscribe(topic, qos=1)
        subscribed.get(timeout=10)
        client.publish(topic, b"pong", qos=1).wait_for_publish(timeout=10)
        return received.get(timeout=10).decode()
    finally:
        client.disconnect()
        client.loop_stop()


def _published_port(container: Any) -> int:
    container.reload()
    bindings = container.ports["1883/tcp"]
    assert bindings[0]["HostIp"] == "127.0.0.1"
    return int(bindings[0]["HostPort"])


@pytest.mark.docker
def test_mosquitto_image_round_trip(built: list[im.ImageResult], run_container: Any) -> None:
    broker = run_container(
        im.MOSQUITTO_IMAGE, auto_remove=True, ports={"1883/tcp": ("127.0.0.1", None)}
    )
    _wait_for_log(broker, " running")
    assert _round_trip(_published_port(broker)) == "pong"
    assert "Config loaded from /mosquitto/config/mosquitto.conf" in broker.logs().decode()


@pytest.mark.docker
def test_mosquitto_config_override_by_env(built: list[im.ImageResult], run_container: Any) -> None:
    config = "listener 1884\nallow_anonymous true\nlog_dest stdout\nlog_type all\n"
    broker = run_container(
        im.MOSQUITTO_IMAGE,
        environment={"MOSQUITTO_CONFIG_TEXT": config},
        ports={"1884/tcp": ("127.0.0.1", None)},
    )
    _wait_for_log(broker, " running")
    broker.reload()
    port = int(broker.ports["1884/tcp"][0]["HostPort"])
    assert _round_trip(port) == "pong"


@pytest.mark.docker
def test_services_image_has_paho_and_wildfire(
    built: list[im.ImageResult], run_container: Any
) -> None:
    probe = run_container(
        SERVICES_IMAGE,
        ["python3", "-c", "import paho.mqtt, wildfire; print('ok', paho.mqtt.__version__)"],
    )
    status = probe.wait(timeout=60)
    logs = probe.logs().decode(errors="replace")
    assert status["StatusCode"] == 0, logs
    assert logs.startswith("ok 2."), logs


@pytest.mark.docker
def test_build_failure_names_step_and_output(
    built: list[im.ImageResult], engine: Any, tmp_path: Path
) -> None:
    """A broken Dockerfile of a project image fails with the step, the command and the tail."""
    project = tmp_path / "project"
    (project / "img").mkdir(parents=True)
    (project / "img" / "Dockerfile").write_text(
        "ARG BASE_IMAGE\nFROM ${BASE_IMAGE}\nRUN echo about-to-fail && exit 3\n"
    )
    ref = f"images-test-broken-{RUN_ID}:latest"
    (project / "pyproject.toml").write_text(
        f'[tool.parallel-isolation.images.broken]\nref = "{ref}"\ncontext = "img"\n'
    )
    broker_before = engine.api.inspect_image(im.MOSQUITTO_IMAGE)["Id"]
    with pytest.raises(im.StepError) as caught:
        im.build_images(
            project=find_project(project),
            cache_dir=tmp_path / "cache",
            source=built[-1].source,
            client=engine,
        )
    error = caught.value
    assert error.step == "build broken"
    assert error.command.startswith("docker build -f ")
    assert any("about-to-fail" in line for line in error.output_tail)
    assert "returned a non-zero code: 3" in str(error)
    assert engine.api.inspect_image(im.MOSQUITTO_IMAGE)["Id"] == broker_before
    from docker.errors import ImageNotFound

    with pytest.raises(ImageNotFound):
        engine.api.inspect_image(ref)


@pytest.mark.docker
def test_nothing_listens_on_1883_after_build(built: list[im.ImageResult]) -> None:
    """The base build runs mosquitto's maintainer scripts; none may start a host broker.

    Such a broker would run inside the build's root file system. Other tests of this
    suite may legitimately hold 1883 at the same time (the legacy corpora start a
    broker there, on the host's root), so only listeners rooted elsewhere count.
    """
    if shutil.which("ss") is None:
        pytest.skip("ss (iproute2) not installed")
    out = subprocess.run(
        ["ss", "-Hltnp", "sport = :1883"], capture_output=True, text=True, check=True
    ).stdout
    foreign_roots = []
    for line in out.splitlines():
        pids = [int(p) for p in re.findall(r"pid=(\d+)", line)]
        assert pids, f"a listener on 1883 with no process to judge it by: {line}"
        for pid in pids:
            with contextlib.suppress(FileNotFoundError, ProcessLookupError):
                root = os.readlink(f"/proc/{pid}/root")
                if root != "/":
                    foreign_roots.append((pid, root, line))
    assert foreign_roots == []
