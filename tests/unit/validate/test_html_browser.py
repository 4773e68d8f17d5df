"""The HTML report in a real browser: headless Chromium renders it without console errors.

Skips only when no Chromium is installed (``ci/install-system-deps.sh`` installs
Debian's ``chromium``, or uses the Chrome a CI runner already has).
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from parallel_isolation.identity import Owner
from parallel_isolation.validate import ScanEnv, render_html, validate_dir

from .conftest import RunBuilder

# The names ci/install-system-deps.sh installs or accepts (Debian's package first).
BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
BROWSER = next((found for name in BROWSERS if (found := shutil.which(name))), None)
pytestmark = pytest.mark.skipif(
    BROWSER is None,
    reason=f"no headless browser on PATH ({', '.join(BROWSERS)}): apt-get install chromium",
)

# Generous: Chromium starts in about 5 s here, much slower on a loaded CI host.
DEADLINE_S = 180
WIDTH, HEIGHT = 1300, 2200
CONSOLE = re.compile(r":CONSOLE[:(]\d+\)?\]|Failed to load resource|Refused to ", re.IGNORECASE)


def _render(page: Path, shot: Path, profile: Path) -> str:
    """Screenshot ``page`` headless; return Chromium's log (console messages included)."""
    assert BROWSER is not None
    command = [
        BROWSER,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--hide-scrollbars",
        f"--user-data-dir={profile}",
        "--enable-logging=stderr",
        "--v=0",
        f"--window-size={WIDTH},{HEIGHT}",
        f"--screenshot={shot}",
        page.as_uri(),
    ]
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=DEADLINE_S)
    except subprocess.TimeoutExpired as error:
        pytest.fail(f"chromium did not render {page} within {DEADLINE_S} s: {error.stderr!r}")
    assert shot.exists(), f"chromium wrote no screenshot (exit {done.returncode}):\n{done.stderr}"
    return done.stdout + done.stderr


def _console_lines(log: str) -> list[str]:
    return [line for line in log.splitlines() if CONSOLE.search(line)]


def _pixels(shot: Path) -> tuple[tuple[int, int], int, float]:
    """(size, distinct colours, share of pixels that are not the page background)."""
    from PIL import Image

    with Image.open(shot) as image:
        rgb = image.convert("RGB")
        colours = rgb.getcolors(maxcolors=1 << 20) or []
        background = max(colours)[1] if colours else (0, 0, 0)
        total = rgb.width * rgb.height
        other = sum(count for count, colour in colours if colour != background)
        return rgb.size, len(colours), other / total


def test_the_console_check_catches_an_error(tmp_path: Path) -> None:
    """The check below can fail: a page that logs an error is caught."""
    page = tmp_path / "bad.html"
    page.write_text(
        "<!DOCTYPE html><html><body><script>console.error('planted')</script></body></html>"
    )
    log = _render(page, tmp_path / "bad.png", tmp_path / "profile")
    assert any("planted" in line for line in _console_lines(log)), log


def test_report_renders_with_content_and_no_console_errors(
    run_builder: RunBuilder, dead_owner: Owner, scan_env: ScanEnv, tmp_path: Path
) -> None:
    for index in range(14):  # more workers than the base palette has colours
        worker = run_builder.worker(f"gw{index}", dead_owner)
        worker.event("container_created", name=f"broker-gw{index}")
        worker.event("network_created", name=f"net-gw{index}")
        for number in range(3):
            start, _ = worker.test(f"tests/test_x.py::test_{index}_{number}", seconds=0.4 + number)
            worker.snapshot("after", worker.clock, threads=2 + number, fds=14 + number)
        if index == 3:
            start, _ = worker.test(
                "tests/test_x.py::test_breaks", outcome="failed", failure="E   AssertionError: no"
            )
            worker.crosstalk("fire/trigger", start + 0.1)
        worker.event("container_removed", name=f"broker-gw{index}")
        worker.event("network_removed", name=f"net-gw{index}")
        worker.finish()
    run_builder.record(exitstatus=1)
    page = run_builder.path / "report.html"
    page.write_text(render_html(validate_dir(run_builder.path, env=scan_env)))
    shot = tmp_path / "report.png"
    log = _render(page, shot, tmp_path / "profile")
    assert _console_lines(log) == [], log
    size, colours, painted = _pixels(shot)
    assert size == (WIDTH, HEIGHT)
    assert colours > 50, "text, bars, lines and pills in many colours"
    assert painted > 0.05, f"only {painted:.1%} of the screenshot differs from the background"
