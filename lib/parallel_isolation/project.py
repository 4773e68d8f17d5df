"""Find the project a command runs in, the way pytest finds its rootdir.

The command-line tools (``parallel-isolation validate``, ``cleanup-orphans``,
``images`` ...) run from any directory of a project.  They find the project's
rootdir and ini file with pytest's rules, then read the same settings the
plugin reads (``isolation_artifacts``, ``isolation_state_dir`` ... from the
ini file, overridden by their environment variables), so a tool looks where
the test run wrote.

pytest's rules (as of pytest 9.1), from the start directory upwards:

1. the first directory with ``pytest.toml``, ``.pytest.toml``, ``pytest.ini``,
   ``.pytest.ini``, a ``pyproject.toml`` holding ``[tool.pytest]`` or
   ``[tool.pytest.ini_options]``, a ``tox.ini`` holding ``[pytest]`` or a
   ``setup.cfg`` holding ``[tool:pytest]``: that file is the ini file, its
   directory the rootdir;
2. else the first ``pyproject.toml`` found on the way (it is the ini file,
   with no options);
3. else the first directory with ``setup.py``;
4. else the start directory itself.

The project's own registrations (services, images) live in the rootdir's
``pyproject.toml`` under ``[tool.parallel-isolation]``.
"""

from __future__ import annotations

import configparser
import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from parallel_isolation.settings import OPTIONS, SettingError, Settings

__all__ = [
    "TOOL_TABLE",
    "Project",
    "ProjectError",
    "artifacts_root",
    "explain_artifacts_root",
    "find_project",
    "project_settings",
]

TOOL_TABLE = "parallel-isolation"
_INI_NAMES = (
    "pytest.toml",
    ".pytest.toml",
    "pytest.ini",
    ".pytest.ini",
    "pyproject.toml",
    "tox.ini",
    "setup.cfg",
)


class ProjectError(ValueError):
    """A project file cannot be read, or holds a bad value; the message names the file."""


@dataclass(frozen=True)
class Project:
    """A project's rootdir, its pytest ini options and its ``[tool.parallel-isolation]`` table."""

    rootdir: Path
    inipath: Path | None = None
    ini: Mapping[str, Any] = field(default_factory=dict)
    tool: Mapping[str, Any] = field(default_factory=dict)
    start: Path | None = None
    reason: str = ""

    @property
    def pyproject(self) -> Path:
        return self.rootdir / "pyproject.toml"

    def settings(
        self, cli: Mapping[str, Any] | None = None, env: Mapping[str, str] | None = None
    ) -> Settings:
        """The run-wide settings as the plugin resolves them (CLI > env > ini > default)."""
        ini = {option.field: self.ini.get(option.ini) for option in OPTIONS}
        return Settings.resolve(cli=dict(cli or {}), env=env, ini=ini, rootdir=self.rootdir)

    def describe(self) -> str:
        """Where the rootdir came from, for messages."""
        found = f"rootdir {self.rootdir}"
        if self.inipath is not None:
            found += f" (ini file {self.inipath})"
        if self.start is not None and self.start != self.rootdir:
            found += f", found upwards from {self.start}"
        return f"{found}; {self.reason}" if self.reason else found

    def tool_section(self, key: str) -> Mapping[str, Any]:
        """``[tool.parallel-isolation.<key>]`` (empty when absent); a non-table is an error."""
        value = self.tool.get(key, {})
        if not isinstance(value, Mapping):
            msg = f"{self.pyproject}: [tool.{TOOL_TABLE}] {key} must be a table, got {value!r}"
            raise ProjectError(msg)
        return value

    @classmethod
    def from_pytest(cls, rootdir: Path, inipath: Path | None, ini: Mapping[str, Any]) -> Project:
        """The project of a pytest run (its rootdir, ini file and ini values)."""
        return cls(rootdir, inipath, dict(ini), _read_tool(rootdir / "pyproject.toml"), rootdir)


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        return tomllib.loads(path.read_text())
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as error:
        msg = f"cannot read {path}: {error}"
        raise ProjectError(msg) from None


def _read_tool(pyproject: Path) -> dict[str, Any]:
    if not pyproject.is_file():
        return {}
    table = _read_toml(pyproject).get("tool", {}).get(TOOL_TABLE, {})
    if not isinstance(table, dict):
        msg = f"{pyproject}: [tool.{TOOL_TABLE}] must be a table"
        raise ProjectError(msg)
    return table


def _ini_options(path: Path) -> dict[str, Any] | None:
    """The pytest options of ``path``, or None when it is not a pytest ini file."""
    if path.name in {"pytest.toml", ".pytest.toml"}:
        table = _read_toml(path).get("pytest", {})
        return dict(table) if isinstance(table, dict) else {}
    if path.name == "pyproject.toml":
        tool_pytest = _read_toml(path).get("tool", {}).get("pytest", {})
        if not isinstance(tool_pytest, dict):
            return None
        native = {key: value for key, value in tool_pytest.items() if key != "ini_options"}
        options = tool_pytest.get("ini_options")
        if native:
            return native
        return dict(options) if isinstance(options, dict) else None
    parser = configparser.ConfigParser(interpolation=None)
    try:
        parser.read(path, encoding="utf-8")
    except (configparser.Error, UnicodeDecodeError) as error:
        msg = f"cannot read {path}: {error}"
        raise ProjectError(msg) from None
    section = {"setup.cfg": "tool:pytest"}.get(path.name, "pytest")
    if parser.has_section(section):
        return dict(parser.items(section))
    return {} if path.name in {"pytest.ini", ".pytest.ini"} else None


def find_project(start: Path | None = None) -> Project:
    """The project ``start`` (default: the current directory) belongs to, by pytest's rules."""
    begin = (start or Path.cwd()).resolve()
    chain = [begin, *begin.parents]
    first_pyproject: Path | None = None
    for directory in chain:
        for name in _INI_NAMES:
            path = directory / name
            if path.is_file():
                if name == "pyproject.toml" and first_pyproject is None:
                    first_pyproject = path
                options = _ini_options(path)
                if options is not None:
                    tool = _read_tool(directory / "pyproject.toml")
                    return Project(directory, path, options, tool, begin)
    if first_pyproject is not None:
        root = first_pyproject.parent
        reason = "no pytest options; the nearest pyproject.toml marks the rootdir"
        return Project(root, first_pyproject, {}, _read_tool(first_pyproject), begin, reason)
    for directory in chain:
        if (directory / "setup.py").is_file():
            reason = "no pytest ini file; setup.py marks the rootdir"
            return Project(directory, None, {}, {}, begin, reason)
    return Project(begin, None, {}, {}, begin, "no pytest ini file, setup.py or pyproject.toml")


def project_settings(project: Project, cli: Mapping[str, Any] | None = None) -> Settings:
    """:meth:`Project.settings` with bad values reported as :class:`ProjectError`."""
    try:
        return project.settings(cli, os.environ)
    except SettingError as error:
        msg = f"{error} ({project.describe()})"
        raise ProjectError(msg) from None


def artifacts_root(start: Path | None = None) -> Path:
    """Where the plugin writes the runs of the project ``start`` is in.

    ``isolation_artifacts`` of the rootdir's ini file, overridden by
    ``ISOLATION_ARTIFACTS_DIR``; relative to the rootdir; default
    ``<rootdir>/.isolation/runs``.  A project file that cannot be read gives
    ``.isolation/runs`` under ``start`` (:func:`explain_artifacts_root` says why).
    """
    try:
        return project_settings(find_project(start)).artifacts_root
    except ProjectError:
        return (start or Path.cwd()) / ".isolation" / "runs"


def explain_artifacts_root(root: Path, start: Path | None = None) -> str:
    """How ``root`` was chosen and how to point elsewhere, for "no artifacts" messages."""
    how = (
        "point elsewhere with --artifacts DIR, the ISOLATION_ARTIFACTS_DIR environment "
        "variable or the isolation_artifacts ini key"
    )
    try:
        project = find_project(start)
        found = project_settings(project).artifacts_root
    except ProjectError as error:
        return f"the project could not be read ({error}); {how}"
    if found.resolve() != root.resolve():
        return f"it is the directory given on the command line; {how}"
    if os.environ.get("ISOLATION_ARTIFACTS_DIR"):
        source = "from ISOLATION_ARTIFACTS_DIR"
    elif project.ini.get("isolation_artifacts"):
        source = f"from isolation_artifacts in {project.inipath}"
    else:
        source = "the default .isolation/runs"
    return f"looked in {found} ({source}; {project.describe()}); {how}"
