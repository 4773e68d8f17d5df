"""The errors of image building: every one names the step, the command and what to do."""

from __future__ import annotations

from collections.abc import Sequence

__all__ = ["ImagesError", "MirrorNotFoundError", "StepError"]


class ImagesError(Exception):
    """Base class of every error raised by :mod:`parallel_isolation.images`."""


class MirrorNotFoundError(ImagesError):
    """The host's apt sources name no usable Debian mirror."""


class StepError(ImagesError):
    """A build step failed; carries the step, the command and its output tail."""

    def __init__(
        self,
        step: str,
        command: str,
        detail: str,
        *,
        output_tail: Sequence[str] = (),
        returncode: int | None = None,
        hint: str | None = None,
    ) -> None:
        self.step = step
        self.command = command
        self.detail = detail
        self.output_tail = tuple(output_tail)
        self.returncode = returncode
        self.hint = hint
        lines = [f"image build step {step!r} failed: {detail}", f"  command: {command}"]
        if self.output_tail:
            lines.append(f"  last {len(self.output_tail)} lines of output:")
            lines.extend(f"    | {line}" for line in self.output_tail)
        if hint:
            lines.append(f"  hint: {hint}")
        super().__init__("\n".join(lines))
