"""The command line (``invoke migrate`` wraps :func:`run`): output and exit codes."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
from rich.console import Console

from parallel_isolation.migrate_cli import main, run, split_paths

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


def _console() -> tuple[Console, io.StringIO]:
    stream = io.StringIO()
    return Console(file=stream, width=240, color_system=None), stream


@pytest.fixture
def suite(tmp_path: Path) -> Path:
    (tmp_path / "test_hazards.py").write_text(HAZARDOUS)
    (tmp_path / "test_clean.py").write_text(CLEAN)
    return tmp_path


def test_check_lists_findings_and_exits_1(suite: Path) -> None:
    console, out = _console()
    assert run([str(suite)], check=True, console=console) == 1
    text = out.getvalue()
    hazards = suite / "test_hazards.py"
    assert f"{hazards}:5:36 PI110 fixed MQTT client id 'fixed'" in text
    assert f"{hazards}:6:20 PI101" in text
    assert f"{hazards}:7:20 PI107" in text
    assert "4 hazards in 1 files (4 auto-fixable" in text


def test_check_clean_exits_0(suite: Path) -> None:
    console, out = _console()
    assert run([str(suite / "test_clean.py")], check=True, console=console) == 0
    assert "no parallel-safety hazards found" in out.getvalue()


def test_check_json(suite: Path) -> None:
    console, out = _console()
    assert run([str(suite)], check=True, output_format="json", console=console) == 1
    data = json.loads(out.getvalue())
    assert data["summary"] == {
        "total": 4,
        "files": 1,
        "auto_fixable": 4,
        "by_code": {"PI101": 1, "PI102": 1, "PI107": 1, "PI110": 1},
    }
    first = data["findings"][0]
    assert set(first) == {"path", "line", "col", "code", "name", "severity", "message", "autofix"}


def test_diff_shows_and_writes_nothing(suite: Path) -> None:
    console, out = _console()
    assert run([str(suite)], diff=True, console=console) == 1
    text = out.getvalue()
    assert '+    client.publish(topic_namespace.topic("fire/trigger"), b"1")' in text
    assert "would change" in text
    assert (suite / "test_hazards.py").read_text() == HAZARDOUS


def test_rewrite_then_nothing_left(suite: Path) -> None:
    console, out = _console()
    assert run([str(suite)], console=console) == 0
    assert "rewritten" in out.getvalue()
    assert (suite / "test_hazards.py").read_text() != HAZARDOUS
    console, out = _console()
    assert run([str(suite)], diff=True, console=console) == 0
    assert run([str(suite)], check=True, console=console) == 0


def test_rewrite_json(suite: Path) -> None:
    console, out = _console()
    assert run([str(suite)], diff=True, output_format="json", console=console) == 1
    data = json.loads(out.getvalue())
    assert data["summary"] == {"files": 2, "changed": 1, "failed": 0, "remaining": 0}
    changed = [f for f in data["files"] if f["changed"]]
    assert changed[0]["diff"].startswith("--- a/")


def test_broken_file_is_reported_and_never_rewritten(suite: Path) -> None:
    broken = suite / "test_broken.py"
    broken.write_text(BROKEN)
    console, out = _console()
    assert run([str(suite)], console=console) == 1
    text = out.getvalue()
    assert f"{broken}:1:" in text
    assert "PI001 does not parse, skipped: invalid syntax" in text
    assert broken.read_text() == BROKEN
    assert (suite / "test_hazards.py").read_text() != HAZARDOUS


def test_undecodable_file_is_reported(suite: Path) -> None:
    (suite / "test_latin1.py").write_bytes(b"# caf\xe9\nx = 1\n")
    console, out = _console()
    assert run([str(suite / "test_latin1.py")], check=True, console=console) == 1
    assert "PI001 cannot be read as UTF-8" in out.getvalue()


@pytest.mark.parametrize(
    ("args", "code"),
    [
        ({"paths": []}, 2),
        ({"paths": ["does/not/exist"]}, 2),
        ({"paths": ["."], "output_format": "yaml"}, 2),
    ],
    ids=["no-paths", "missing-path", "bad-format"],
)
def test_usage_errors(args: dict[str, object], code: int) -> None:
    console, out = _console()
    assert run(check=True, console=console, **args) == code  # type: ignore[arg-type]
    assert out.getvalue().strip()


def test_main_and_codes_markdown(suite: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--codes-markdown"]) == 0
    assert "### PI107 bare-topic" in capsys.readouterr().out
    assert main(["--check", "--format", "json", str(suite / "test_clean.py")]) == 0


@pytest.mark.parametrize(
    ("argument", "paths"),
    [
        ("tests/legacy", ["tests/legacy"]),
        ("a.py,tests/b", ["a.py", "tests/b"]),
        (" a.py , b.py ,", ["a.py", "b.py"]),
        ("", []),
    ],
)
def test_split_paths(argument: str, paths: list[str]) -> None:
    assert split_paths(argument) == paths
