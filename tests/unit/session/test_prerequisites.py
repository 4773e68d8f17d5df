"""What a run needs is checked once, before any worker starts: one message per problem, with the fix."""

from __future__ import annotations

import pytest

from parallel_isolation.session.prerequisites import Prerequisites, check, port_problem
from parallel_isolation.settings import Settings

ALL_THERE = Prerequisites(mosquitto=lambda: None, engine=lambda: None, images=lambda _: None)


def probes(**missing: str) -> Prerequisites:
    def answer(name: str) -> str | None:
        return missing.get(name)

    return Prerequisites(
        mosquitto=lambda: answer("mosquitto"),
        engine=lambda: answer("engine"),
        images=lambda _project: answer("images"),
    )


@pytest.mark.parametrize("backend", ["auto", "process", "embedded", "docker"])
def test_nothing_to_say_when_everything_is_there(backend: str) -> None:
    assert check(Settings(backend=backend), workers=12, probes=ALL_THERE) == []


def test_process_backend_without_mosquitto() -> None:
    problems = check(
        Settings(backend="process"), workers=4, probes=probes(mosquitto="no mosquitto")
    )
    assert problems == ["no mosquitto"]
    # Other backends do not need it.
    for backend in ("auto", "embedded"):
        assert check(Settings(backend=backend), workers=4, probes=probes(mosquitto="x")) == []


def test_docker_backend_without_an_engine_skips_the_image_check() -> None:
    asked: list[str] = []

    def images(_project: object) -> str | None:
        asked.append("images")
        return "no images"

    found = check(
        Settings(backend="docker"),
        workers=2,
        probes=Prerequisites(
            mosquitto=lambda: "x", engine=lambda: "no Docker engine: gone", images=images
        ),
    )
    assert found == ["the docker backend cannot run: no Docker engine: gone"]
    assert asked == [], "no image question without an engine"


def test_docker_backend_without_images() -> None:
    found = check(Settings(backend="docker"), workers=2, probes=probes(images="build them"))
    assert found == ["build them"]


def test_required_docker_needs_an_engine_on_any_backend() -> None:
    settings = Settings(backend="embedded", require_docker=True)
    found = check(settings, workers=2, probes=probes(engine="no Docker engine: gone"))
    assert found == ["Docker is required (--require-docker): no Docker engine: gone"]
    assert check(Settings(backend="embedded"), workers=2, probes=probes(engine="gone")) == []


@pytest.mark.parametrize(
    ("base", "block", "workers", "expected"),
    [
        (20000, 100, 12, None),
        (65000, 100, 5, None),  # 65000..65499
        (65000, 100, 6, "need ports up to 65599, past 65535"),
        (64000, 100, 24, "choose --isolation-port-base 63136 or lower"),
        (1024, 5000, 13, "use smaller blocks (--isolation-port-block) or at most 12 workers"),
        (20000, 100, 0, None),
    ],
)
def test_port_blocks_must_fit(base: int, block: int, workers: int, expected: str | None) -> None:
    problem = port_problem(Settings(port_base=base, block_size=block), workers)
    if expected is None:
        assert problem is None
    else:
        assert problem is not None
        assert expected in problem
        assert f"{workers} workers with port blocks of {block} from port base {base}" in problem


def test_every_problem_is_reported_at_once() -> None:
    settings = Settings(backend="process", port_base=65000, require_docker=True)
    found = check(settings, workers=8, probes=probes(mosquitto="no mosquitto", engine="no engine"))
    assert len(found) == 3
