"""Commands of a build: run with a deadline and an output tail; trees deleted safely."""

from __future__ import annotations

import contextlib
import os
import re
import shlex
import shutil
import signal
import subprocess
import threading
from collections import deque
from collections.abc import Mapping, Sequence
from pathlib import Path

from parallel_isolation.images.errors import ImagesError, StepError
from parallel_isolation.images.progress import Step

__all__ = ["TAIL_LINES", "mount_points_under", "remove_tree", "run_command", "unmount_all"]

TAIL_LINES = 30


def run_command(
    step: Step,
    argv: Sequence[str],
    *,
    timeout: float,
    env: Mapping[str, str] | None = None,
    hint: str | None = None,
) -> list[str]:
    """Run ``argv`` in its own process group, streaming lines; raise StepError on failure."""
    command = shlex.join(argv)
    tail: deque[str] = deque(maxlen=TAIL_LINES)
    try:
        proc = subprocess.Popen(
            list(argv),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            errors="replace",
            env=dict(env) if env is not None else None,
            start_new_session=True,
        )
    except OSError as exc:
        raise StepError(step.step, command, f"cannot start: {exc}", hint=hint) from exc

    timed_out = threading.Event()

    def kill_group() -> None:
        timed_out.set()
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)

    timer = threading.Timer(timeout, kill_group)
    timer.daemon = True
    timer.start()
    lines: list[str] = []
    try:
        assert proc.stdout is not None
        for raw in proc.stdout:
            line = raw.rstrip("\n")
            tail.append(line)
            lines.append(line)
            step.log(line)
        returncode = proc.wait()
    except BaseException:
        kill_group()
        proc.wait()
        raise
    finally:
        timer.cancel()
    if timed_out.is_set():
        raise StepError(
            step.step,
            command,
            f"timed out after {timeout:.0f}s (process group killed)",
            output_tail=list(tail),
            hint=hint,
        )
    if returncode != 0:
        raise StepError(
            step.step,
            command,
            f"exit status {returncode}",
            output_tail=list(tail),
            returncode=returncode,
            hint=hint,
        )
    return lines


def mount_points_under(root: Path) -> list[Path]:
    """Mount points at or below ``root``, deepest first (from /proc/self/mountinfo)."""
    try:
        text = Path("/proc/self/mountinfo").read_text()
    except OSError:
        return []
    resolved = root.resolve()
    found: list[Path] = []
    for line in text.splitlines():
        parts = line.split()
        if len(parts) < 5:
            continue
        # Mount points escape blanks and backslashes as octal (\040).
        point = Path(re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), parts[4]))
        if point == resolved or resolved in point.parents:
            found.append(point)
    return sorted(found, key=lambda p: len(p.parts), reverse=True)


def unmount_all(root: Path) -> None:
    for point in mount_points_under(root):
        if subprocess.run(["umount", str(point)], capture_output=True, check=False).returncode:
            subprocess.run(["umount", "-l", str(point)], capture_output=True, check=False)


def remove_tree(root: Path) -> None:
    """Delete a build tree, never through a mount (debootstrap mounts /proc, /sys)."""
    if not root.exists():
        return
    unmount_all(root)
    left = mount_points_under(root)
    if left:
        msg = (
            f"refusing to delete {root}: still mounted at {', '.join(map(str, left))}; "
            f"unmount them and delete it by hand"
        )
        raise ImagesError(msg)
    shutil.rmtree(root)
