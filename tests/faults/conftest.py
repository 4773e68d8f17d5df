"""Fault proofs: real pytest runs in subprocesses, real kills, real listeners, a real engine.

Helpers here run a suite from ``tests/faults/suites`` (or any directory) in a
fresh project directory, then ``python -m parallel_isolation.validate`` and
``python -m parallel_isolation.reap`` on its artifacts, exactly as the
invoke tasks do.  Everything a fault test starts it stops itself, by pid;
cleanup-orphans is always scoped to the test's own run (``--run``).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

SUITES = Path(__file__).parent / "suites"
REPOSITORY = Path(__file__).resolve().parents[2]
collect_ignore_glob = ["suites/*", "isolation_record_always.py"]
RUN_TIMEOUT_S = 600


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "engine_restart: restarts the Docker engine; runs after every other fault test"
    )


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """A test that restarts the engine goes last: the others must not meet the restart."""
    items.sort(key=lambda item: item.get_closest_marker("engine_restart") is not None)


def _clean_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """Our environment minus the outer pytest/xdist worker's variables."""
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("PYTEST_", "ISOLATION_")) or key == "ISOLATION_STATE_DIR"
    }
    env.update(extra or {})
    return env


@dataclass
class Project:
    """A directory holding a copy of one suite, with its own artifacts root."""

    path: Path

    @property
    def artifacts(self) -> Path:
        return self.path / ".isolation" / "runs"

    def run_id(self) -> str:
        return (self.artifacts / "latest").read_text().strip()

    def pytest_argv(self, *args: str) -> list[str]:
        return [
            sys.executable,
            "-m",
            "pytest",
            "-p",
            "no:cacheprovider",
            "-q",
            "-rA",
            f"--basetemp={self.path / '.basetemp'}",
            *args,
        ]

    def start(self, *args: str, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
        return subprocess.Popen(
            self.pytest_argv(*args),
            cwd=self.path,
            env=_clean_env(env),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )

    def run(
        self, *args: str, env: dict[str, str] | None = None
    ) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            self.pytest_argv(*args),
            cwd=self.path,
            env=_clean_env(env),
            capture_output=True,
            text=True,
            timeout=RUN_TIMEOUT_S,
            check=False,
        )

    def events(self, run_id: str) -> list[dict[str, Any]]:
        found = []
        for path in sorted((self.artifacts / run_id).glob("*/events.jsonl")):
            for line in path.read_text().splitlines():
                try:
                    found.append(json.loads(line))
                except json.JSONDecodeError:
                    continue
        return found


RECORD_ALWAYS = Path(__file__).parent / "isolation_record_always.py"


def make_project(base: Path, suite: Path) -> Project:
    project = Project(base)
    if suite.is_dir():
        shutil.copytree(
            suite, base, dirs_exist_ok=True, ignore=shutil.ignore_patterns("__pycache__")
        )
    else:
        base.mkdir(parents=True, exist_ok=True)
        shutil.copy(suite, base / suite.name)
    # Foreign suites may not use our fixtures: ``-p isolation_record_always`` records them anyway.
    shutil.copy(RECORD_ALWAYS, base / RECORD_ALWAYS.name)
    if suite.resolve().is_relative_to(REPOSITORY) and not (base / "pyproject.toml").exists():
        # A suite of this repository (tests/integration, tests/legacy) starts the
        # services this repository registers: the copy keeps those registrations.
        (base / "pyproject.toml").write_text(_isolation_tables(REPOSITORY / "pyproject.toml"))
    return project


def _isolation_tables(pyproject: Path) -> str:
    """The ``[tool.parallel-isolation.*]`` tables of a pyproject.toml, as text.

    An image's build context is made absolute, since the copy lives elsewhere.
    """
    kept: list[str] = []
    keep = False
    for line in pyproject.read_text().splitlines():
        if line.startswith("["):
            keep = line.startswith("[tool.parallel-isolation.")
        if keep and line.startswith('context = "'):
            relative = line.split('"')[1]
            line = f'context = "{pyproject.parent / relative}"'
        if keep:
            kept.append(line)
    return "\n".join(kept) + "\n"


@pytest.fixture
def project_factory(tmp_path: Path) -> Any:
    def make(suite: Path, name: str = "project") -> Project:
        return make_project(tmp_path / name, suite)

    return make


@dataclass
class ToolResult:
    code: int
    data: dict[str, Any]
    output: str


def validate(project: Project, run_id: str, *extra: str) -> ToolResult:
    """``python -m parallel_isolation.validate --format json`` on the project's run."""
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "parallel_isolation.validate",
            "--artifacts",
            str(project.artifacts),
            "--run",
            run_id,
            "--format",
            "json",
            *extra,
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env=_clean_env(),
    )
    data = json.loads(done.stdout) if done.stdout.strip().startswith("{") else {}
    return ToolResult(done.returncode, data, done.stdout + done.stderr)


def html_report(project: Project, run_id: str) -> Path:
    """Write the HTML report next to the run (kept for humans looking at CI artifacts)."""
    subprocess.run(
        [
            sys.executable,
            "-m",
            "parallel_isolation.validate",
            "--artifacts",
            str(project.artifacts),
            "--run",
            run_id,
            "--format",
            "html",
        ],
        capture_output=True,
        timeout=120,
        check=False,
        env=_clean_env(),
    )
    return project.artifacts / run_id / "report.html"


def cleanup(project: Project, *args: str) -> ToolResult:
    """``python -m parallel_isolation.reap --format json`` (always pass --run)."""
    assert "--run" in args, "fault tests reap only their own run"
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "parallel_isolation.reap.orphans",
            "--artifacts",
            str(project.artifacts),
            "--format",
            "json",
            *args,
        ],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        env=_clean_env(),
    )
    data = json.loads(done.stdout) if done.stdout.strip().startswith("{") else {}
    return ToolResult(done.returncode, data, done.stdout + done.stderr)


def codes(result: ToolResult, severity: str | None = None) -> list[str]:
    return [
        f["code"]
        for f in result.data.get("findings", [])
        if severity is None or f["severity"] == severity
    ]


def findings(result: ToolResult, code: str) -> list[dict[str, Any]]:
    return [f for f in result.data.get("findings", []) if f["code"] == code]


def extra_suites(variable: str) -> list[Any]:
    """Suite paths from an environment variable (``os.pathsep`` separated), as parameters.

    Without the variable there is one skipped parameter saying how to set it.
    """
    raw = os.environ.get(variable, "")
    paths = [Path(part) for part in raw.split(os.pathsep) if part.strip()]
    if paths:
        return [pytest.param(path, id=path.name) for path in paths]
    reason = f"set {variable}=path[{os.pathsep}path...] to run more suites (e.g. tests/legacy)"
    return [pytest.param(None, id="none", marks=pytest.mark.skip(reason=reason))]
