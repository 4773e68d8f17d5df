"""Run-wide settings: declared once, validated at parse time.

Each setting has a command-line option, an environment variable and an ini
key.  Precedence: CLI > environment > ini > default.  Errors name the source
of the bad value.  The controller resolves the settings and ships them to the
workers (``workerinput``), so every worker of a run agrees.
"""

from __future__ import annotations

import ipaddress
import os
import re
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

__all__ = [
    "DEFAULT_ARTIFACTS",
    "DEFAULT_BASE",
    "DEFAULT_BLOCK_SIZE",
    "DEFAULT_BROKER_IMAGE",
    "DEFAULT_FAIL_ON",
    "DEFAULT_PUBLISH_HOST",
    "FAIL_ON_CHOICES",
    "OPTIONS",
    "STATE_DIR_ENV",
    "Option",
    "SettingError",
    "Settings",
    "default_state_dir",
    "parse_bool",
    "parse_fail_on",
]

# Every default lives here; the modules that use them import them from here.
DEFAULT_BASE = 20000
DEFAULT_BLOCK_SIZE = 100
DEFAULT_ARTIFACTS = ".isolation/runs"
DEFAULT_PUBLISH_HOST = "127.0.0.1"
DEFAULT_BROKER_IMAGE = "parallel-isolation/mosquitto:latest"
DEFAULT_FAIL_ON = "error"
STATE_DIR_ENV = "ISOLATION_STATE_DIR"


def default_state_dir() -> Path:
    """Host-wide state: ``$ISOLATION_STATE_DIR`` or ``<tmp>/parallel-isolation-<uid>``.

    One per user: the directory is private (0700), so another local user can
    neither plant reservations nor take this user's locks.
    """
    configured = os.environ.get(STATE_DIR_ENV)
    if configured:
        return Path(configured)
    return Path(tempfile.gettempdir()) / f"parallel-isolation-{os.geteuid()}"


BACKEND_CHOICES = ("auto", "process", "embedded", "docker")
FAIL_ON_CHOICES = ("never", "error", "warning")


class SettingError(ValueError):
    """A setting with a bad value; the message names where it came from."""


def parse_bool(raw: str) -> bool:
    value = raw.strip().lower()
    if value in {"1", "true", "yes", "on"}:
        return True
    if value in {"0", "false", "no", "off", ""}:
        return False
    msg = f"expected a boolean (1/0, true/false, yes/no), got {raw!r}"
    raise ValueError(msg)


def parse_backend(raw: str) -> str:
    value = raw.strip().lower()
    if value not in BACKEND_CHOICES:
        msg = f"expected one of {', '.join(BACKEND_CHOICES)}, got {raw!r}"
        raise ValueError(msg)
    return value


def parse_fail_on(raw: str) -> str:
    value = raw.strip().lower()
    if value not in FAIL_ON_CHOICES:
        msg = f"expected one of {', '.join(FAIL_ON_CHOICES)}, got {raw!r}"
        raise ValueError(msg)
    return value


def _port_int(low: int, high: int) -> Callable[[str], int]:
    def parse(raw: str) -> int:
        try:
            value = int(raw)
        except ValueError:
            msg = f"expected an integer, got {raw!r}"
            raise ValueError(msg) from None
        if not low <= value <= high:
            msg = f"expected {low}..{high}, got {value}"
            raise ValueError(msg)
        return value

    return parse


def _seconds(raw: str) -> float:
    try:
        value = float(raw)
    except ValueError:
        msg = f"expected a number of seconds, got {raw!r}"
        raise ValueError(msg) from None
    if not 0 <= value < 1e6 or value != value:  # NaN is not a duration
        msg = f"expected 0 (no limit) or a positive number of seconds, got {raw!r}"
        raise ValueError(msg)
    return value


def _text(raw: str) -> str:
    if "\x00" in raw:
        msg = f"expected a path, got {raw!r} (it contains a NUL byte)"
        raise ValueError(msg)
    return raw.strip()


_HOST_CHARS = re.compile(r"^[A-Za-z0-9.:%-]{1,253}$")


def parse_publish_host(raw: str) -> str:
    """One host address: container ports are published there and nowhere else.

    A wildcard address (``0.0.0.0``, ``::``) would publish every broker and
    service port on every interface, reachable from other machines: refused.
    """
    value = raw.strip()
    if not _HOST_CHARS.match(value):
        msg = f"expected a host name or an IP address, got {raw!r}"
        raise ValueError(msg)
    try:
        address = ipaddress.ip_address(value)
    except ValueError:
        return value
    if address.is_unspecified:
        msg = (
            f"{raw!r} is every interface: ports published there are reachable from other "
            "hosts; give one address (127.0.0.1 unless the engine is remote)"
        )
        raise ValueError(msg)
    return value


@dataclass(frozen=True)
class Option:
    """One setting's declaration (the single source for CLI, env, ini and docs)."""

    field: str
    cli: str
    env: str
    ini: str
    default: Any
    parse: Callable[[str], Any]
    help: str
    is_flag: bool = False


OPTIONS: tuple[Option, ...] = (
    Option(
        "backend",
        "--isolation-backend",
        "ISOLATION_BACKEND",
        "isolation_backend",
        "auto",
        parse_backend,
        "Broker backend: auto (process if mosquitto is installed, else embedded), "
        "process, embedded or docker.",
    ),
    Option(
        "port_base",
        "--isolation-port-base",
        "ISOLATION_PORT_BASE",
        "isolation_port_base",
        DEFAULT_BASE,
        _port_int(1024, 65000),
        "First port of worker 0's block; worker N uses base + N * block size.",
    ),
    Option(
        "block_size",
        "--isolation-port-block",
        "ISOLATION_PORT_BLOCK",
        "isolation_port_block",
        DEFAULT_BLOCK_SIZE,
        _port_int(1, 5000),
        "Ports per worker block.",
    ),
    Option(
        "artifacts",
        "--isolation-artifacts",
        "ISOLATION_ARTIFACTS_DIR",
        "isolation_artifacts",
        DEFAULT_ARTIFACTS,
        _text,
        "Directory of per-run artifacts (logs, events, snapshots); relative to the rootdir.",
    ),
    Option(
        "state_dir",
        "--isolation-state-dir",
        STATE_DIR_ENV,
        "isolation_state_dir",
        "",
        _text,
        "Host-wide state of this user's runs (port reservations, locks), private (0700); "
        "default <tmp>/parallel-isolation-<uid>.",
    ),
    Option(
        "require_docker",
        "--require-docker",
        "ISOLATION_REQUIRE_DOCKER",
        "isolation_require_docker",
        False,
        parse_bool,
        "Docker-marked tests fail instead of skipping when no engine is reachable (CI sets it).",
        is_flag=True,
    ),
    Option(
        "publish_host",
        "--isolation-publish-host",
        "ISOLATION_PUBLISH_HOST",
        "isolation_publish_host",
        DEFAULT_PUBLISH_HOST,
        parse_publish_host,
        "Address container ports are published on and clients connect to; set it to the "
        "engine host's address when DOCKER_HOST points at a remote engine. A wildcard "
        "address (0.0.0.0, ::) is refused: it would expose them to other hosts.",
    ),
    Option(
        "fork_workers",
        "--isolation-fork-workers",
        "ISOLATION_FORK_WORKERS",
        "isolation_fork_workers",
        False,
        parse_bool,
        "Fork the xdist workers (local popen ones) from one process that has already "
        "imported pytest, instead of starting each interpreter afresh; falls back with a "
        "warning if that process cannot start.",
        is_flag=True,
    ),
    Option(
        "durations_file",
        "--isolation-durations",
        "ISOLATION_DURATIONS",
        "isolation_durations",
        "",
        _text,
        "Per-test durations (JSON, pytest-split's .test_durations); with --dist loadgroup "
        "the longest tests start first and each worker queues one test ahead. Empty: "
        "xdist's own order. Relative to the rootdir.",
    ),
    Option(
        "test_timeout",
        "--isolation-test-timeout",
        "ISOLATION_TEST_TIMEOUT",
        "isolation_test_timeout",
        0.0,
        _seconds,
        "Seconds an xdist worker may spend in one test (setup, call and teardown) before "
        "the controller reports it as hung, naming the test and the worker's state, and "
        "kills the worker (its resources are left to cleanup-orphans). 0: no limit.",
    ),
    Option(
        "fail_on",
        "--isolation-fail-on",
        "ISOLATION_FAIL_ON",
        "isolation_fail_on",
        DEFAULT_FAIL_ON,
        parse_fail_on,
        "Which isolation findings of the run's end-of-run verdict fail the session: never, "
        "error (cross-talk, leaks, leftovers: the results cannot be trusted) or warning.",
    ),
)


@dataclass(frozen=True)
class Settings:
    """Resolved run-wide settings."""

    backend: str = "auto"
    port_base: int = DEFAULT_BASE
    block_size: int = DEFAULT_BLOCK_SIZE
    artifacts: str = DEFAULT_ARTIFACTS
    state_dir: str = ""
    require_docker: bool = False
    publish_host: str = DEFAULT_PUBLISH_HOST
    fork_workers: bool = False
    durations_file: str = ""
    test_timeout: float = 0.0
    fail_on: str = DEFAULT_FAIL_ON

    @classmethod
    def resolve(
        cls,
        *,
        cli: Mapping[str, Any],
        env: Mapping[str, str] | None = None,
        ini: Mapping[str, Any] | None = None,
        rootdir: Path | None = None,
    ) -> Settings:
        """Apply CLI > env > ini > default for every option.

        ``cli`` and ``ini`` map the option's ``field`` to a raw value, or None
        when not given.
        """
        environ = os.environ if env is None else env
        values: dict[str, Any] = {}
        for option in OPTIONS:
            values[option.field] = _resolve_one(option, cli, environ, ini or {})
        artifacts = Path(values["artifacts"])
        if rootdir is not None and not artifacts.is_absolute():
            artifacts = rootdir / artifacts
        values["artifacts"] = str(artifacts)
        durations = Path(values["durations_file"])
        if values["durations_file"] and rootdir is not None and not durations.is_absolute():
            values["durations_file"] = str(rootdir / durations)
        if values["port_base"] + values["block_size"] - 1 > 65535:
            msg = (
                f"port base {values['port_base']} with block size {values['block_size']} "
                "runs past port 65535"
            )
            raise SettingError(msg)
        return cls(**values)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Settings:
        return cls(**{key: data[key] for key in cls.__dataclass_fields__ if key in data})

    @property
    def artifacts_root(self) -> Path:
        return Path(self.artifacts)

    @property
    def state_path(self) -> Path | None:
        return Path(self.state_dir) if self.state_dir else None


def _resolve_one(
    option: Option, cli: Mapping[str, Any], env: Mapping[str, str], ini: Mapping[str, Any]
) -> Any:
    sources: list[tuple[str, Any]] = [
        (f"option {option.cli}", cli.get(option.field)),
        (f"environment variable {option.env}", env.get(option.env)),
        (f"ini key {option.ini}", ini.get(option.field)),
    ]
    for where, raw in sources:
        if (
            raw is None
            or raw == ""
            or (option.is_flag and raw is False and where.startswith("option"))
        ):
            continue
        if not isinstance(raw, str):
            return raw
        try:
            return option.parse(raw)
        except ValueError as error:
            msg = f"{where}: {error}"
            raise SettingError(msg) from None
    return option.default


def reference_markdown() -> str:
    """The configuration reference table (README embeds it; a test keeps them equal)."""
    lines = [
        "| option | environment | ini key | default | meaning |",
        "| --- | --- | --- | --- | --- |",
    ]
    for option in OPTIONS:
        default = (
            "off"
            if option.is_flag
            else f"`{option.default}`"
            if option.default != ""
            else "(unset)"
        )
        lines.append(
            f"| `{option.cli}` | `{option.env}` | `{option.ini}` | {default} | {option.help} |"
        )
    return "\n".join(lines) + "\n"
