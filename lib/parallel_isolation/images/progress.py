"""Rich rendering shared by the invoke tasks (progress lines, tables)."""

from __future__ import annotations

from collections.abc import Callable, Iterable

from rich.console import Console
from rich.table import Table

from parallel_isolation.images.core import ImageStatus, ProgressEvent

__all__ = ["image_progress", "image_status_table"]


def image_progress(console: Console, verbose: bool = False) -> Callable[[ProgressEvent], None]:
    """A progress callback for :func:`parallel_isolation.images.core.build_images`."""

    def show(event: ProgressEvent) -> None:
        where = f" [cyan]{event.image}[/cyan]" if event.image else ""
        if event.kind == "start":
            console.print(f"[bold]>[/bold] {event.step}{where} {event.message}")
        elif event.kind == "done":
            took = f" ({event.seconds:.1f} s)" if event.seconds is not None else ""
            console.print(f"[green]done[/green] {event.step}{where}{took}")
        elif event.kind in {"skip", "info"}:
            console.print(f"[dim]{event.step}{where}: {event.message}[/dim]")
        elif verbose:
            console.print(f"[dim]  {event.message}[/dim]", highlight=False)

    return show


def image_status_table(rows: Iterable[ImageStatus]) -> Table:
    table = Table(title="Docker backend images")
    for column in ("image", "present", "current", "reason"):
        table.add_column(column)
    for row in rows:
        table.add_row(
            row.ref,
            "yes" if row.present else "[red]no[/red]",
            "yes" if row.up_to_date else "[yellow]no[/yellow]",
            row.reason,
        )
    return table
