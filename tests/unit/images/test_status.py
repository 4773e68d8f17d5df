"""One rule for "are the images current?", and the project's image declarations.

The engine is a stand-in that answers ``inspect_image`` from a dict, so each
case sets up exactly the images it is about.  ``images status``, the build's
up-to-date check and the container manager's check before a test must agree.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from docker.errors import ImageNotFound

from parallel_isolation import images as im
from parallel_isolation.images import cli, recipe, status
from parallel_isolation.images.inputs import spec_hash
from parallel_isolation.project import find_project

PUBLIC_BASE = "debian:bookworm-slim"


class FakeAPI:
    def __init__(self, known: dict[str, dict[str, Any]]) -> None:
        self.known = known

    def inspect_image(self, ref: str) -> dict[str, Any]:
        if ref not in self.known:
            raise ImageNotFound(f"no such image: {ref}")
        return self.known[ref]


class FakeImages:
    def __init__(self, api: FakeAPI) -> None:
        self.api = api

    def get(self, ref: str) -> dict[str, Any]:
        return self.api.inspect_image(ref)


class FakeEngine:
    def __init__(self) -> None:
        self.api = FakeAPI({})
        self.images = FakeImages(self.api)

    def add(self, ref: str, image_id: str, labels: dict[str, str] | None = None) -> None:
        self.api.known[ref] = {"Id": image_id, "Size": 1000, "Config": {"Labels": labels or {}}}

    def add_built(self, spec: im.ImageSpec, source: str, base_ref: str, base_id: str) -> None:
        self.add(
            spec.ref,
            f"sha256:{spec.key}",
            {
                recipe.IMAGE_LABEL: "parallel-isolation",
                recipe.INPUTS_HASH_LABEL: spec_hash(spec, base_ref, base_id),
                recipe.SOURCE_LABEL: source,
                recipe.BASE_REF_LABEL: base_ref,
            },
        )


def _project(tmp_path: Path, body: str) -> Any:
    (tmp_path / "svc").mkdir(exist_ok=True)
    (tmp_path / "svc" / "Dockerfile").write_text("ARG BASE_IMAGE\nFROM ${BASE_IMAGE}\n")
    (tmp_path / "pyproject.toml").write_text(body)
    return find_project(tmp_path)


@pytest.fixture
def engine(monkeypatch: pytest.MonkeyPatch) -> FakeEngine:
    fake = FakeEngine()
    monkeypatch.delenv(im.SOURCE_ENV, raising=False)
    # The command line connects by itself: hand it the stand-in.
    monkeypatch.setattr(status, "connect", lambda client=None: fake)
    return fake


def test_registry_built_images_are_current_without_the_offline_base(
    engine: FakeEngine, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """The base is missing but nothing was built from it: every front end says current."""
    engine.add(PUBLIC_BASE, "sha256:public")
    engine.add_built(recipe.broker_image_spec(), "registry", PUBLIC_BASE, "sha256:public")
    report = im.images_status(client=engine, source="auto")
    assert not report.base.present
    assert report.up_to_date, report.stale
    assert cli.main(["status", "--project", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "parallel-isolation/base:bookworm" in out, "the base row is shown, for information"


def test_images_built_offline_are_stale_when_the_base_is(
    engine: FakeEngine, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    base = recipe.base_recipe()
    engine.add(base.ref, "sha256:oldbase", {recipe.INPUTS_HASH_LABEL: "an older recipe"})
    engine.add_built(recipe.broker_image_spec(), "offline", base.ref, "sha256:oldbase")
    report = im.images_status(client=engine, source="auto")
    assert [s.ref for s in report.stale] == [im.MOSQUITTO_IMAGE]
    assert "recipe changed" in report.stale[0].reason
    assert cli.main(["status", "--project", str(tmp_path)]) == 1
    assert "missing or stale: parallel-isolation/mosquitto:latest" in capsys.readouterr().err


def test_a_project_image_is_part_of_the_rule(engine: FakeEngine, tmp_path: Path) -> None:
    project = _project(
        tmp_path, '[tool.parallel-isolation.images.svc]\nref = "svc-test"\ncontext = "svc"\n'
    )
    engine.add(PUBLIC_BASE, "sha256:public")
    engine.add_built(recipe.broker_image_spec(), "registry", PUBLIC_BASE, "sha256:public")
    report = im.images_status(client=engine, project=project)
    assert [s.ref for s in report.stale] == ["svc-test:latest"]
    assert report.stale[0].reason == "missing"
    (spec,) = recipe.project_image_specs(project)
    engine.add("python:3.11-slim", "sha256:py")
    engine.add_built(spec, "registry", "python:3.11-slim", "sha256:py")
    assert im.images_status(client=engine, project=project).up_to_date
    (tmp_path / "svc" / "app.py").write_text("print('changed')\n")
    (changed,) = im.images_status(client=engine, project=project).stale
    assert changed.reason == "inputs changed"


def test_the_container_manager_agrees(engine: FakeEngine, tmp_path: Path) -> None:
    """Before a test, the manager builds only what the report calls stale: here nothing."""
    from parallel_isolation.artifacts import EventLog, RunArtifacts, read_events
    from parallel_isolation.containers.manager import DockerContainerManager
    from parallel_isolation.identity import Identity

    engine.add(PUBLIC_BASE, "sha256:public")
    engine.add_built(recipe.broker_image_spec(), "registry", PUBLIC_BASE, "sha256:public")
    identity = Identity.resolve(run_id="a1b2c3d4", worker_id="gw0")
    artifacts = RunArtifacts(tmp_path / "runs", identity)
    events: EventLog = artifacts.event_log()
    manager = DockerContainerManager(
        identity,
        artifacts=artifacts,
        events=events,
        client=engine,
        state_dir=tmp_path / "state",
        image_check=im.project_image_check(events),
    )
    manager.ensure_images([im.MOSQUITTO_IMAGE])
    (checked,) = [e for e in read_events(artifacts.events_path) if e["kind"] == "images_checked"]
    assert checked["stale"] == []
    assert checked["built"] == []


@pytest.mark.parametrize(
    ("body", "message"),
    [
        pytest.param(
            '[tool.parallel-isolation.images.svc]\ncontext = "svc"\n', "ref is missing", id="no-ref"
        ),
        pytest.param(
            '[tool.parallel-isolation.images.svc]\nref = "s"\ncontext = "nowhere"\n',
            "context 'nowhere' is not a directory",
            id="no-context",
        ),
        pytest.param(
            '[tool.parallel-isolation.images.svc]\nref = "s"\ncontext = "svc"\nbase = "x"\n',
            r"unknown key\(s\) base",
            id="unknown-key",
        ),
        pytest.param(
            '[tool.parallel-isolation.images.svc]\nref = "parallel-isolation/mosquitto:latest"\n'
            'context = "svc"\n',
            "the library's own image",
            id="clash-with-broker",
        ),
        pytest.param(
            '[tool.parallel-isolation.images.svc]\nref = "Bad Name"\ncontext = "svc"\n',
            "is not an image reference",
            id="bad-ref",
        ),
        pytest.param('[tool.parallel-isolation]\nimages = 3\n', "must be a table", id="not-table"),
    ],
)
def test_bad_image_declarations_name_the_file_and_key(
    tmp_path: Path, body: str, message: str
) -> None:
    project = _project(tmp_path, body)
    with pytest.raises(im.ImagesError, match=message) as caught:
        recipe.project_image_specs(project)
    assert str(tmp_path / "pyproject.toml") in str(caught.value)


def test_status_without_an_engine_exits_2(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    def no_engine(client: Any = None) -> Any:
        raise im.EngineUnavailableError("no Docker engine answers (test)")

    monkeypatch.setattr(status, "connect", no_engine)
    assert cli.main(["status", "--project", str(tmp_path)]) == 2
    assert "error: no Docker engine answers (test)" in capsys.readouterr().err
