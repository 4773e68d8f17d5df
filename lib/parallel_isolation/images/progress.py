"""Progress lines and the status table of the image build, under the console rules.

Image references, steps and build output are printed as they are (never read
as markup), styled only on a terminal; progress goes to the stream given
(stderr in the tools), the status table to the one given for results.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from parallel_isolation.console import Out, natural_sorted
from parallel_isolation.images.core import ImageStatus, ProgressEvent

__all__ = ["image_progress", "print_image_status"]


def image_progress(out: Out, verbose: bool = False) -> Callable[[ProgressEvent], None]:
    """A progress callback for :func:`parallel_isolation.images.core.build_images`."""

    def show(event: ProgressEvent) -> None:
        where = [(" ", None), (event.image, "cyan")] if event.image else []
        if event.kind == "start":
            out.segments([("> ", "bold"), (event.step, None), *where, (f" {event.message}", None)])
        elif event.kind == "done":
            took = f" ({event.seconds:.1f} s)" if event.seconds is not None else ""
            out.segments([("done ", "green"), (event.step, None), *where, (took, None)])
        elif event.kind in {"skip", "info"}:
            text = f"{event.step}{' ' + event.image if event.image else ''}: {event.message}"
            out.line(text, "dim")
        elif verbose:
            out.line(f"  {event.message}", "dim")

    return show


def print_image_status(rows: Iterable[ImageStatus], out: Out) -> None:
    """One line per image: reference, present, current, reason (references in natural order)."""
    ordered = natural_sorted(rows, key=lambda row: row.ref)
    out.table(
        ["image", "present", "current", "reason"],
        [
            [row.ref, "yes" if row.present else "NO", "yes" if row.up_to_date else "no", row.reason]
            for row in ordered
        ],
    )
