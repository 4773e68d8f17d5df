"""The README's reference sections are checked against the code, so they cannot drift."""

from __future__ import annotations

import re
from pathlib import Path

from parallel_isolation.settings import reference_markdown

ROOT = Path(__file__).resolve().parents[3]
README = (ROOT / "README.md").read_text()
ENV_NAME = re.compile(r"\"((?:ISOLATION|DOCKER)_[A-Z_]+)\"")
NOT_ENV = {"DOCKER_EVENTS"}  # a constant of the validator, not a variable


def test_configuration_reference_is_generated_from_the_options() -> None:
    section = README.split("<!-- config-reference:start -->\n")[1].split(
        "<!-- config-reference:end -->"
    )[0]
    assert section == reference_markdown()


def test_every_environment_variable_the_code_reads_is_documented() -> None:
    names: set[str] = set()
    for path in (ROOT / "lib" / "parallel_isolation").rglob("*.py"):
        names |= set(ENV_NAME.findall(path.read_text()))
    names -= NOT_ENV
    assert names, "the scan found nothing: the pattern is broken"
    missing = sorted(name for name in names if f"`{name}`" not in README)
    assert not missing, f"README does not document {missing}"


def test_every_nox_session_and_invoke_task_is_documented() -> None:
    noxfile = (ROOT / "noxfile.py").read_text()
    sessions = set(re.findall(r"@nox\.session\(name=\"([a-z-]+)\"", noxfile))
    sessions |= set(re.findall(r"@nox\.session(?:\([^)]*\))?\ndef ([a-z_]+)\(", noxfile)) - {
        s.replace("-", "_") for s in sessions
    }
    tasks = {
        name.replace("_", "-")
        for name in re.findall(
            r"@task[^\n]*\n(?:[^\n]*\n)*?def ([a-z_]+)\(", (ROOT / "tasks.py").read_text()
        )
    }
    assert len(sessions) >= 10, sessions
    assert {"migrate", "images"} <= tasks, tasks
    layout = README.split("## Layout")[1]
    for session in sessions:
        assert session in layout, f"nox session {session} missing from the README layout"
    for name in tasks:
        assert name in layout, f"invoke task {name} missing from the README layout"
