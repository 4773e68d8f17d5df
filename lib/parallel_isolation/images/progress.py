"""Progress of an image build: events, the step that emits them, a plain-text printer."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal, TextIO

from parallel_isolation.console import Out

__all__ = ["Progress", "ProgressEvent", "Step", "no_progress", "text_progress"]

ProgressKind = Literal["start", "done", "skip", "log", "info"]


@dataclass(frozen=True)
class ProgressEvent:
    """One step of a build: ``start`` then ``done`` (or ``skip``); ``log`` lines between.

    ``image`` is the image reference the step works on ("" for global steps);
    ``seconds`` is set on ``done``.
    """

    step: str
    kind: ProgressKind
    message: str = ""
    image: str = ""
    seconds: float | None = None


Progress = Callable[[ProgressEvent], None]


def no_progress(_event: ProgressEvent) -> None:
    """The progress callback that reports nothing."""
    return None


class Step:
    """Context manager emitting ``start``/``done`` events around one step.

    Set :attr:`result` inside the block: it becomes the ``done`` event's
    message.  A step that raises emits no ``done``.
    """

    def __init__(self, progress: Progress, step: str, image: str = "", message: str = "") -> None:
        self.progress = progress
        self.step = step
        self.image = image
        self.message = message
        self.started = 0.0
        self.result = ""

    def __enter__(self) -> Step:
        self.started = time.monotonic()
        self.progress(ProgressEvent(self.step, "start", self.message, self.image))
        return self

    def log(self, line: str) -> None:
        self.progress(ProgressEvent(self.step, "log", line, self.image))

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        if exc_type is None:
            elapsed = time.monotonic() - self.started
            self.progress(ProgressEvent(self.step, "done", self.result, self.image, elapsed))


def text_progress(verbose: bool = False, stream: TextIO | None = None) -> Progress:
    """A callback printing one line per event (``log`` lines only when ``verbose``).

    Through :class:`parallel_isolation.console.Out`: image references, steps and
    command output are printed as they are; plain text unless the stream is a
    terminal, where the step markers are styled.
    """
    out = Out(stream or sys.stderr)

    def show(event: ProgressEvent) -> None:
        where = f" [{event.image}]" if event.image else ""
        if event.kind == "start":
            out.segments(
                [("==> ", "bold"), (f"{event.step}{where} {event.message}".rstrip(), None)]
            )
        elif event.kind == "done":
            took = f"done in {event.seconds or 0:.1f}s {event.message}".rstrip()
            out.segments([("    ", None), (took, "green")])
        elif event.kind in ("skip", "info"):
            out.line(f"--- {event.step}{where}: {event.message}", "dim")
        elif verbose:
            out.line(f"    | {event.message}", "dim")

    return show
