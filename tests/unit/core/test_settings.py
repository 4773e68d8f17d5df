from __future__ import annotations

from pathlib import Path

import pytest

from parallel_isolation.session.context import probe_host_for
from parallel_isolation.settings import OPTIONS, SettingError, Settings, parse_bool


def test_precedence_cli_over_env_over_ini_over_default(tmp_path: Path) -> None:
    resolved = Settings.resolve(
        cli={"backend": None, "port_base": 30000},
        env={
            "ISOLATION_BACKEND": "embedded",
            "ISOLATION_PORT_BASE": "31000",
            "ISOLATION_PORT_BLOCK": "50",
        },
        ini={"port_base": "32000", "block_size": "20", "publish_host": "10.0.0.5"},
        rootdir=tmp_path,
    )
    assert resolved.port_base == 30000  # CLI
    assert resolved.backend == "embedded"  # env
    assert resolved.block_size == 50  # env beats ini
    assert resolved.publish_host == "10.0.0.5"  # ini
    assert resolved.require_docker is False  # default
    assert resolved.artifacts == str(tmp_path / ".isolation/runs")


@pytest.mark.parametrize(
    ("env", "message"),
    [
        (
            {"ISOLATION_PORT_BASE": "abc"},
            "environment variable ISOLATION_PORT_BASE: expected an integer",
        ),
        ({"ISOLATION_PORT_BLOCK": "0"}, "ISOLATION_PORT_BLOCK: expected 1..5000, got 0"),
        ({"ISOLATION_PORT_BASE": "65000", "ISOLATION_PORT_BLOCK": "1000"}, "runs past port 65535"),
    ],
)
def test_errors_name_the_source(env: dict[str, str], message: str) -> None:
    with pytest.raises(SettingError, match=message):
        Settings.resolve(cli={}, env=env, ini={})


@pytest.mark.parametrize(
    ("raw", "value"), [("1", True), ("yes", True), ("off", False), ("", False)]
)
def test_booleans(raw: str, value: bool) -> None:
    assert parse_bool(raw) is value


def test_every_option_has_cli_env_ini_and_help() -> None:
    fields = set(Settings.__dataclass_fields__)
    assert {o.field for o in OPTIONS} == fields
    for option in OPTIONS:
        assert option.cli.startswith("--")
        assert option.env.isupper()
        assert option.help


@pytest.mark.parametrize(
    ("backend", "docker_host", "publish", "probe"),
    [
        ("process", "", "127.0.0.1", "127.0.0.1"),
        ("docker", "", "127.0.0.1", "127.0.0.1"),
        ("docker", "unix:///var/run/docker.sock", "127.0.0.1", "127.0.0.1"),
        ("docker", "tcp://engine.example:2376", "192.0.2.10", None),
        ("docker", "ssh://ci@engine", "127.0.0.1", None),
        ("process", "tcp://engine.example:2376", "127.0.0.1", "127.0.0.1"),
    ],
)
def test_probe_host_follows_the_engine(
    monkeypatch: pytest.MonkeyPatch, backend: str, docker_host: str, publish: str, probe: str | None
) -> None:
    monkeypatch.setenv("DOCKER_HOST", docker_host)
    assert probe_host_for(Settings(backend=backend, publish_host=publish)) == probe
