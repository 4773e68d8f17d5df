from __future__ import annotations

from pathlib import Path

import pytest

from parallel_isolation.session.context import probe_host_for
from parallel_isolation.settings import (
    OPTIONS,
    Option,
    SettingError,
    Settings,
    parse_bool,
    parse_publish_host,
)


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


# --- bad input: every setting, from every source, is one usage error naming it ----------

# An invalid value of every setting (a new setting must add one here).
INVALID: dict[str, str] = {
    "backend": "kubernetes",
    "port_base": "twenty thousand",
    "block_size": "0",
    "artifacts": "runs\x00here",
    "state_dir": "/tmp/\x00state",
    "require_docker": "maybe",
    "publish_host": "0.0.0.0",
    "fork_workers": "sometimes",
    "durations_file": ".test_durations\x00",
    "test_timeout": "-5",
    "fail_on": "sometimes",
}


def test_every_setting_has_an_invalid_example() -> None:
    assert set(INVALID) == {option.field for option in OPTIONS}


@pytest.mark.parametrize("option", OPTIONS, ids=lambda o: o.field)
@pytest.mark.parametrize("source", ["env", "ini"])
def test_an_invalid_value_names_its_source(option: Option, source: str) -> None:
    raw = INVALID[option.field]
    env = {option.env: raw} if source == "env" else {}
    ini = {option.field: raw} if source == "ini" else {}
    where = f"environment variable {option.env}" if source == "env" else f"ini key {option.ini}"
    with pytest.raises(SettingError) as caught:
        Settings.resolve(cli={}, env=env, ini=ini)
    message = str(caught.value)
    assert message.startswith(f"{where}: "), message
    assert repr(raw) in message or raw in message, message


@pytest.mark.parametrize(
    "host", ["0.0.0.0", "::", " 0.0.0.0 ", "two words", "", "host/path", "a" * 254]
)
def test_publish_host_refuses_wildcards_and_junk(host: str) -> None:
    with pytest.raises(ValueError, match=r"every interface|expected a host name"):
        parse_publish_host(host)


@pytest.mark.parametrize("host", ["127.0.0.1", "::1", "10.0.0.5", "engine.example", "localhost"])
def test_publish_host_takes_one_address(host: str) -> None:
    assert parse_publish_host(host) == host


@pytest.mark.parametrize(
    ("args", "env", "named"),
    [
        (["--isolation-port-base=abc"], {}, "--isolation-port-base"),
        (["--isolation-backend=kubernetes"], {}, "--isolation-backend"),
        ([], {"ISOLATION_PUBLISH_HOST": "0.0.0.0"}, "environment variable ISOLATION_PUBLISH_HOST"),
        (
            [],
            {"ISOLATION_FORK_WORKERS": "sometimes"},
            "environment variable ISOLATION_FORK_WORKERS",
        ),
        (
            ["--isolation-backend=docker"],
            {"ISOLATION_DOCKER_API_SLOTS": "-1"},
            "environment variable ISOLATION_DOCKER_API_SLOTS",
        ),
    ],
    ids=["cli-int", "cli-choice", "env-host", "env-flag", "env-api-slots"],
)
def test_a_bad_setting_stops_pytest_with_one_usage_error(
    pytester: pytest.Pytester,
    monkeypatch: pytest.MonkeyPatch,
    args: list[str],
    env: dict[str, str],
    named: str,
) -> None:
    pytester.makepyfile(test_x="def test_x(): pass")
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    result = pytester.runpytest_subprocess("-p", "no:randomly", *args)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    errors = [line for line in result.errlines if named in line]
    assert len(errors) == 1, result.errlines
    assert not any("Traceback" in line for line in [*result.outlines, *result.errlines])
