"""This user's host-wide state directory (port reservations, locks, API slots), checked.

Everything the toolkit keeps across processes lives there, so it must be this
user's own: created 0700 when missing, and refused when it is a symbolic
link, another user's directory or writable by others (someone could plant
reservations or take the locks).
"""

from __future__ import annotations

from pathlib import Path

from parallel_isolation.artifacts import ensure_private_dir
from parallel_isolation.settings import STATE_DIR_ENV, default_state_dir

__all__ = ["STATE_DIR_FIX", "checked_state_dir"]

STATE_DIR_FIX = (
    f"remove it, or point {STATE_DIR_ENV} (--isolation-state-dir) at a directory of your own"
)


def checked_state_dir(configured: Path | None = None) -> Path:
    """``configured`` (or the default), made if missing; :class:`UnsafeDirectoryError` if unsafe."""
    return ensure_private_dir(
        configured or default_state_dir(), "state directory", fix=STATE_DIR_FIX
    )
