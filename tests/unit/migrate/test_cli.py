"""The command line (``python -m parallel_isolation.migrate``, ``invoke migrate``):
streams, literal output, exit codes 0 clean / 1 findings / 2 could not."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path

import pytest

from parallel_isolation.migrate import (
    Finding,
    MigrationReport,
    main,
    render_findings,
    render_report,
    split_paths,
)

HAZARDOUS = """\
import paho.mqtt.client as mqtt


def test_publish():
    client = mqtt.Client(client_id="fixed")
    client.connect("localhost", 1883)
    client.publish("fire/trigger", b"1")
"""
CLEAN = """\
def test_publish(mqtt_client):
    mqtt_client.publish("fire/trigger", b"1")
"""
BROKEN = "def test_broken(:\n    pass\n"


@pytest.fixture
def suite(tmp_path: Path) -> Path:
    (tmp_path / "test_hazards.py").write_text(HAZARDOUS)
    (tmp_path / "test_clean.py").write_text(CLEAN)
    return tmp_path


def _row(status: str, left: int, path: object) -> str:
    """A row of the table of files: status, hazards left, path (last, never cut)."""
    return f"{status:<12} {left:>4}  {path}"


def _run(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = main(args)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_check_lists_findings_on_stdout_and_exits_1(
    suite: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = _run(["--check", str(suite)], capsys)
    assert code == 1
    hazards = suite / "test_hazards.py"
    assert f"{hazards}:5:36 PI110 " in out
    assert f"{hazards}:6:20 PI101 " in out
    assert f"{hazards}:7:20 PI107 " in out
    assert "4 hazards (4 sites) in 1 files: 4 auto-fixable by migrate, 0 for a person" in out
    assert "\x1b[" not in out  # not a terminal: no colour codes
    assert err == ""


def test_check_clean_exits_0(suite: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = _run(["--check", str(suite / "test_clean.py")], capsys)
    assert code == 0
    assert out == "no parallel-safety hazards found\n"


def test_check_json(suite: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = _run(["--check", "--format", "json", str(suite)], capsys)
    assert code == 1
    data = json.loads(out)
    assert data["summary"] == {
        "total": 4,
        "sites": 4,
        "files": 1,
        "auto_fixable": 4,
        "by_code": {"PI101": 1, "PI102": 1, "PI107": 1, "PI110": 1},
    }
    first = data["findings"][0]
    assert set(first) == {
        "path", "line", "col", "code", "name", "severity", "message", "autofix", "related"
    }


def test_diff_shows_and_writes_nothing(suite: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = _run(["--diff", str(suite)], capsys)
    assert code == 1
    assert '+    client.publish(topic_namespace.topic("fire/trigger"), b"1")' in out
    assert _row("would change", 0, suite / "test_hazards.py") in out
    assert (suite / "test_hazards.py").read_text() == HAZARDOUS


def test_rewrite_then_nothing_left(suite: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = _run([str(suite)], capsys)
    assert code == 0
    assert _row("rewritten", 0, suite / "test_hazards.py") in out
    assert (suite / "test_hazards.py").read_text() != HAZARDOUS
    assert _run(["--diff", str(suite)], capsys)[0] == 0
    assert _run(["--check", str(suite)], capsys)[0] == 0


def test_rewrite_json(suite: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = _run(["--diff", "--format", "json", str(suite)], capsys)
    assert code == 1
    data = json.loads(out)
    assert data["summary"] == {"files": 2, "changed": 1, "failed": 0, "remaining": 0}
    changed = [f for f in data["files"] if f["changed"]]
    assert changed[0]["diff"].startswith("--- a/")
    assert changed[0]["status"] == "would change"


def test_a_file_that_does_not_parse_is_could_not(
    suite: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    broken = suite / "test_broken.py"
    broken.write_text(BROKEN)
    code, out, _ = _run([str(suite)], capsys)
    assert code == 2
    assert f"{broken}:1:" in out
    assert "PI001 does not parse, skipped: invalid syntax" in out
    assert broken.read_text() == BROKEN
    assert (suite / "test_hazards.py").read_text() != HAZARDOUS  # the others are rewritten
    assert _run(["--check", str(broken)], capsys)[0] == 2


def test_undecodable_file_is_could_not(suite: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (suite / "test_latin1.py").write_bytes(b"# caf\xe9\nx = 1\n")
    code, out, _ = _run(["--check", str(suite / "test_latin1.py")], capsys)
    assert code == 2
    assert "PI001 cannot be read as UTF-8" in out


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--check"], "no paths given"),
        (["--check", "does/not/exist"], "no such file or directory: 'does/not/exist'"),
        (["--check", "--format", "yaml", "."], "invalid choice: 'yaml'"),
        (["--check", "--jobs", "many", "."], "--jobs takes a whole number"),
        (["--check", "--diff", "."], "not allowed with argument"),
    ],
    ids=["no-paths", "missing-path", "bad-format", "bad-jobs", "check-and-diff"],
)
def test_usage_errors_exit_2_on_stderr(
    args: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = _run(args, capsys)
    assert code == 2
    assert out == ""
    assert message in err


def test_help_and_codes_markdown(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = _run(["--help"], capsys)
    assert code == 0
    for words in ("--check", "--jobs N", "exit codes: 0 clean"):
        assert words in out
    code, out, _ = _run(["--codes-markdown"], capsys)
    assert code == 0
    assert "### PI107 bare-topic" in out


def test_several_paths_separated_by_spaces(
    suite: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = _run(
        ["--check", str(suite / "test_clean.py"), str(suite / "test_hazards.py")], capsys
    )
    assert code == 1
    assert "in 1 files" in out


def test_module_entry_point(suite: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "parallel_isolation.migrate", "--check", str(suite)],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert done.returncode == 1, done.stderr
    assert f"{suite / 'test_hazards.py'}:7:20 PI107" in done.stdout


def test_locations_stay_literal() -> None:
    """``:100:`` is an emoji code to rich; here it is printed as it is."""
    finding = Finding("tests/legacy/x.py", 100, 24, "PI110", "error", "fixed id [bold]x[/]")
    stream = io.StringIO()
    render_findings([finding], "text", stream)
    assert stream.getvalue().startswith("tests/legacy/x.py:100:24 PI110 fixed id [bold]x[/]\n")


def test_file_table_never_breaks_a_path() -> None:
    from parallel_isolation.migrate import FileResult

    long_path = "tests/a/very/long/directory/name/that/goes/on/test_module_with_a_long_name.py"
    report = MigrationReport((FileResult(long_path, "x = 1\n", "x = 2\n", written=True),))
    stream = io.StringIO()
    render_report(report, "text", stream)
    assert _row("rewritten", 0, long_path) + "\n" in stream.getvalue()


@pytest.mark.parametrize(
    ("arguments", "paths"),
    [
        (("tests/legacy",), ["tests/legacy"]),
        (("a.py,tests/b",), ["a.py", "tests/b"]),
        ((" a.py , b.py ,",), ["a.py", "b.py"]),
        (("a.py b.py", "c.py  d.py"), ["a.py", "b.py", "c.py", "d.py"]),
        (("",), []),
    ],
)
def test_split_paths(arguments: tuple[str, ...], paths: list[str]) -> None:
    assert split_paths(*arguments) == paths
