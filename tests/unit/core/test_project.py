"""Project discovery finds the rootdir and ini file pytest finds, and the plugin's settings."""

from __future__ import annotations

from pathlib import Path

import pytest

from parallel_isolation.project import (
    ProjectError,
    artifacts_root,
    explain_artifacts_root,
    find_project,
)

LAYOUTS: dict[str, dict[str, str]] = {
    "nothing": {},
    "pytest-toml": {"pytest.toml": '[pytest]\nisolation_artifacts = "out/runs"\n'},
    "pyproject-native-table": {"pyproject.toml": '[tool.pytest]\naddopts = ["-q"]\n'},
    "pytest-ini": {"pytest.ini": "[pytest]\nisolation_artifacts = out/runs\n"},
    "dot-pytest-ini": {".pytest.ini": "[pytest]\n"},
    "pyproject-table": {
        "pyproject.toml": '[tool.pytest.ini_options]\nisolation_artifacts = "out/runs"\n'
    },
    "tox-ini": {"tox.ini": "[tox]\n[pytest]\nisolation_artifacts = out/runs\n"},
    "setup-cfg": {"setup.cfg": "[metadata]\nname = x\n[tool:pytest]\naddopts = -q\n"},
    "setup-cfg-without-section": {"setup.cfg": "[metadata]\nname = x\n", "setup.py": ""},
    "pyproject-without-table": {"pyproject.toml": '[project]\nname = "x"\n'},
    "ini-wins-over-outer-pyproject": {
        "pyproject.toml": "[tool.pytest.ini_options]\n",
        "pkg/tox.ini": "[pytest]\n",
    },
}


def _write(root: Path, files: dict[str, str]) -> None:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)


@pytest.mark.parametrize("layout", sorted(LAYOUTS))
def test_rootdir_and_inifile_agree_with_pytest(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, layout: str
) -> None:
    """Run from a subdirectory without arguments, as a user runs a tool."""
    _write(pytester.path, LAYOUTS[layout])
    start = pytester.path / "pkg" / "tests"
    start.mkdir(parents=True)
    monkeypatch.chdir(start)
    config = pytester.parseconfig()
    project = find_project()
    assert project.rootdir == config.rootpath
    assert project.inipath == config.inipath


def test_settings_come_from_the_ini_file_and_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("ISOLATION_ARTIFACTS_DIR", raising=False)
    _write(tmp_path, LAYOUTS["pytest-ini"])
    deep = tmp_path / "a" / "b"
    deep.mkdir(parents=True)
    assert artifacts_root(deep) == tmp_path / "out" / "runs"
    explanation = explain_artifacts_root(tmp_path / "out" / "runs", deep)
    assert f"isolation_artifacts in {tmp_path / 'pytest.ini'}" in explanation
    assert "--artifacts DIR" in explanation
    monkeypatch.setenv("ISOLATION_ARTIFACTS_DIR", "elsewhere")
    assert artifacts_root(deep) == tmp_path / "elsewhere"
    assert "from ISOLATION_ARTIFACTS_DIR" in explain_artifacts_root(tmp_path / "elsewhere", deep)


def test_tool_table_is_read_from_the_rootdir_pyproject(tmp_path: Path) -> None:
    _write(
        tmp_path,
        {
            "pyproject.toml": "[tool.pytest.ini_options]\n"
            '[tool.parallel-isolation.services.echo]\ncommand = ["echo"]\n'
        },
    )
    project = find_project(tmp_path)
    assert project.tool_section("services") == {"echo": {"command": ["echo"]}}
    assert project.tool_section("images") == {}


def test_unreadable_pyproject_is_an_error_naming_the_file(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text("[tool.pytest.ini_options\n")
    with pytest.raises(ProjectError, match=r"cannot read .*pyproject\.toml"):
        find_project(tmp_path)
