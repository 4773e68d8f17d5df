"""``parallel-isolation images [build|status]``: build or inspect the Docker backend's images.

Results go to stdout (one line per image), progress and diagnostics to
stderr.  Exit status: 0 done / all current, 1 (``status``) something is
missing or stale, 2 could not (no engine, a failed build, a bad project file).
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path

from parallel_isolation.containers.engine import EngineUnavailableError
from parallel_isolation.images.build import build_images
from parallel_isolation.images.errors import ImagesError
from parallel_isolation.images.progress import text_progress
from parallel_isolation.images.recipe import image_specs
from parallel_isolation.images.registry import SOURCE_ENV, SOURCE_SETTINGS
from parallel_isolation.images.status import images_status
from parallel_isolation.project import Project, ProjectError, find_project

__all__ = ["build_parser", "main"]

DESCRIPTION = (
    "Build (default) or inspect the container images of the Docker backend: the broker "
    "image, and the images the project declares under [tool.parallel-isolation.images] in "
    "its pyproject.toml. A no-op when every image is current."
)


def build_parser(prog: str = "parallel-isolation images") -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=prog, description=DESCRIPTION)
    parser.add_argument(
        "command",
        nargs="?",
        choices=("build", "status"),
        default="build",
        help="build missing or stale images (default), or only show their status "
        "(exit 1 if any is missing or stale)",
    )
    parser.add_argument(
        "--project",
        type=Path,
        default=None,
        metavar="DIR",
        help="find the project (pytest rootdir, its pyproject.toml) from DIR [the current directory]",
    )
    parser.add_argument(
        "--source",
        choices=SOURCE_SETTINGS,
        default=None,
        help=f"where base images come from [${SOURCE_ENV} or auto]",
    )
    parser.add_argument("--force", action="store_true", help="build: rebuild everything, no caches")
    parser.add_argument("--json", action="store_true", help="status: print JSON instead of lines")
    parser.add_argument(
        "-v", "--verbose", action="store_true", help="build: print every line of command output"
    )
    return parser


def _project(start: Path | None) -> Project:
    project = find_project(start)
    keys = [spec.key for spec in image_specs(project)]
    print(f"project: {project.describe()}; images: {', '.join(keys)}", file=sys.stderr)
    return project


def _build(args: argparse.Namespace, project: Project) -> int:
    started = time.monotonic()
    results = build_images(
        force=args.force,
        source=args.source,
        project=project,
        progress=text_progress(args.verbose),
    )
    for result in results:
        print(
            f"{result.ref:48} {result.action:10} {result.image_id[7:19]} "
            f"{result.size_bytes / 1e6:7.1f} MB  {result.source}"
        )
    print(f"total {time.monotonic() - started:.1f}s", file=sys.stderr)
    return 0


def _status(args: argparse.Namespace, project: Project) -> int:
    report = images_status(source=args.source, project=project)
    if args.json:
        document = {
            "up_to_date": report.up_to_date,
            "base": asdict(report.base),
            "images": [asdict(status) for status in report.images],
        }
        print(json.dumps(document, indent=2))
    else:
        for item in report.rows():
            size = f"{item.size_bytes / 1e6:7.1f} MB" if item.size_bytes else "      -   "
            reason = item.reason
            if item is report.base:
                reason += " (needed only to build offline)"
            print(f"{item.ref:48} {size}  {item.source or '-':8}  {reason}")
    if report.stale:
        names = ", ".join(status.ref for status in report.stale)
        print(f"missing or stale: {names}; run `parallel-isolation images build`", file=sys.stderr)
        return 1
    return 0


def main(argv: Sequence[str] | None = None, *, prog: str = "parallel-isolation images") -> int:
    """Parse ``argv``, build or report; returns the exit status."""
    args = build_parser(prog).parse_args(argv)
    if args.command == "status" and (args.force or args.verbose):
        print("error: --force and --verbose are options of build, not status", file=sys.stderr)
        return 2

    # A CI job cancelled with SIGTERM must still unmount and delete the
    # debootstrap tree: turn the signal into an exception so cleanups run.
    def terminate(signum: int, _frame: object) -> None:
        raise SystemExit(128 + signum)

    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, terminate)
    try:
        project = _project(args.project)
        return _build(args, project) if args.command == "build" else _status(args, project)
    except (ImagesError, ProjectError, EngineUnavailableError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
