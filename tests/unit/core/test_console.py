"""The output rules every command shares: literal, plain in pipes, natural order."""

from __future__ import annotations

import io

import pytest

from parallel_isolation.console import (
    EXIT_CLEAN,
    EXIT_COULD_NOT,
    EXIT_FINDINGS,
    Out,
    columns,
    error_text,
    natural_key,
    natural_sorted,
)


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.mark.parametrize(
    ("items", "expected"),
    [
        (["gw10", "gw2", "gw1", "master", "gw0"], ["gw0", "gw1", "gw2", "gw10", "master"]),
        (["r10.json", "r9.json", "r1.json"], ["r1.json", "r9.json", "r10.json"]),
        (["b", "a2", "a10", "a"], ["a", "a2", "a10", "b"]),
        ([], []),
        (["0", ""], ["", "0"]),
    ],
)
def test_natural_order(items: list[str], expected: list[str]) -> None:
    assert natural_sorted(items) == expected


def test_natural_key_by_attribute() -> None:
    rows = [("gw11", 1), ("gw3", 2)]
    assert natural_sorted(rows, key=lambda row: row[0]) == [("gw3", 2), ("gw11", 1)]
    assert natural_key("gw3") < natural_key("gw11")


def test_exit_codes_are_the_documented_ones() -> None:
    assert (EXIT_CLEAN, EXIT_FINDINGS, EXIT_COULD_NOT) == (0, 1, 2)


def test_error_text_has_one_shape() -> None:
    assert error_text("port base 80 is below 1024") == "port base 80 is below 1024"
    assert error_text("no mosquitto", "install it") == "no mosquitto\n  fix: install it"


def test_columns_align_and_never_pad_the_last_column() -> None:
    lines = columns(
        ["worker", "tests", "where"], [["gw2", 3, "a:1"], ["gw10", 12, "b/c.log:20"]], right=[1]
    )
    assert lines == [
        "worker  tests  where",
        "gw2         3  a:1",
        "gw10       12  b/c.log:20",
    ]
    assert columns([], []) == []


@pytest.mark.parametrize(
    "text",
    [
        "tests/legacy/test_e2e_hardware_integration.py:100:24 PI110 fixed port",
        "[red]not markup[/red] [bold]x",
        "payload :thumbs_up: :100: :smile:",
        "topic test/ab12/gw3/# and C:\\path",
    ],
)
def test_user_text_is_printed_as_it_is(text: str) -> None:
    plain = io.StringIO()
    Out(plain).line(text, "bold red")
    assert plain.getvalue() == text + "\n", "no colours, no markup in a pipe"
    terminal = _Terminal()
    Out(terminal).line(text, "bold red")
    styled = terminal.getvalue()
    assert "\x1b[" in styled, "a terminal gets colours"
    assert text in styled, "but the text itself is untouched"


def test_long_lines_are_not_wrapped_in_pipes_or_on_terminals() -> None:
    long = "gw3  tests/integration/test_x.py::" + "y" * 200 + "  gw3/logs/camera.log:5"
    for stream in (io.StringIO(), _Terminal()):
        Out(stream, width=80).line(long)
        assert stream.getvalue().count("\n") == 1
        assert "camera.log:5" in stream.getvalue()


def test_no_color_turns_styles_off_on_a_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NO_COLOR", "1")
    terminal = _Terminal()
    out = Out(terminal)
    assert out.is_terminal
    out.segments([("red", "red"), (" plain", None)])
    assert terminal.getvalue() == "red plain\n"


def test_table_header_is_bold_only_on_a_terminal() -> None:
    plain = io.StringIO()
    Out(plain).table(["a", "b"], [["1", "2"]])
    assert plain.getvalue() == "a  b\n1  2\n"
    terminal = _Terminal()
    Out(terminal).table(["a", "b"], [["1", "2"]])
    assert "\x1b[1m" in terminal.getvalue()
