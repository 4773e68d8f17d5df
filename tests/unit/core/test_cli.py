"""The ``parallel-isolation`` command: every subcommand, from any directory, same options as the tasks."""

from __future__ import annotations

import inspect
import re
import subprocess
import sys
from pathlib import Path

import pytest

from parallel_isolation.cli import COMMANDS, main, run_command

ROOT = Path(__file__).resolve().parents[3]
SCRIPT = Path(sys.executable).with_name("parallel-isolation")
LONG_OPTION = re.compile(r"(?<![\w-])--([a-z][a-z0-9-]+)")
# Subcommand -> the invoke task that wraps it (tasks.py at the repository root).
TASKS = {
    "validate": "validate",
    "cleanup-orphans": "cleanup_orphans",
    "migrate": "migrate",
    "images": "images",
    "merge": "merge",
    "runs": "runs",
}


def _help(name: str, capsys: pytest.CaptureFixture[str]) -> str:
    assert run_command(name, ["--help"]) == 0
    return capsys.readouterr().out


def test_top_level_help_names_every_command(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    for command in COMMANDS:
        assert command.name in out
        assert command.summary.split()[0] in out


@pytest.mark.parametrize("name", [command.name for command in COMMANDS])
def test_each_command_has_help(name: str, capsys: pytest.CaptureFixture[str]) -> None:
    out = _help(name, capsys)
    assert out.startswith("usage: "), out[:200]
    assert "--help" in out


def test_no_command_and_unknown_command_are_usage_errors(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main([]) == 2
    assert "a command is required" in capsys.readouterr().err
    assert main(["valdate"]) == 2
    err = capsys.readouterr().err
    assert "unknown command 'valdate'" in err
    assert "validate" in err


@pytest.mark.parametrize(("command", "task"), sorted(TASKS.items()))
def test_invoke_task_takes_every_option_of_its_command(
    command: str, task: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """Nothing the command accepts is refused by its task (text after -- passes through)."""
    pytest.importorskip("invoke")
    sys.path.insert(0, str(ROOT))
    try:
        import tasks
    finally:
        sys.path.remove(str(ROOT))
    listed = _help(command, capsys).split("\noptions:\n", 1)[1]
    options = {
        match
        for line in listed.splitlines()
        if line.startswith("  -")  # an option's own line, not a description
        for match in LONG_OPTION.findall(line.split("  ")[1] if "  " in line[2:] else line)
    } - {"help"}
    assert options, f"no options found in the help of {command}"
    body = getattr(tasks, task).body
    parameters = {name.replace("_", "-") for name in inspect.signature(body).parameters} - {"c"}
    missing = sorted(options - parameters)
    assert not missing, f"invoke {task} lacks {missing} of `parallel-isolation {command}`"


def _stranger_project(tmp_path: Path) -> Path:
    """A project with its own artifacts setting; the tools run from a subdirectory."""
    (tmp_path / "pytest.ini").write_text("[pytest]\nisolation_artifacts = build/test-runs\n")
    deep = tmp_path / "src" / "pkg"
    deep.mkdir(parents=True)
    return deep


def test_validate_from_a_subdirectory_says_where_it_looked(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("ISOLATION_ARTIFACTS_DIR", raising=False)
    deep = _stranger_project(tmp_path)
    done = subprocess.run(
        [str(SCRIPT), "validate", "--format", "json"],
        cwd=deep,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 2, done.stderr
    text = " ".join((done.stdout + done.stderr).split())
    assert f"looked in {tmp_path / 'build' / 'test-runs'}" in text
    assert f"isolation_artifacts in {tmp_path / 'pytest.ini'}" in text
    assert "--artifacts DIR" in text
    assert "ISOLATION_ARTIFACTS_DIR" in text


def test_cleanup_orphans_dry_run_works_from_any_directory(tmp_path: Path) -> None:
    deep = _stranger_project(tmp_path)
    done = subprocess.run(
        [str(SCRIPT), "cleanup-orphans", "--dry-run", "--format", "json", "--run", "00000000"],
        cwd=deep,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert '"dry_run": true' in done.stdout


def test_console_script_is_installed() -> None:
    done = subprocess.run(
        [str(SCRIPT), "--version"], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("parallel-isolation ")
