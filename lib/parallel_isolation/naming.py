"""Names of everything the toolkit creates (labels and markers: :mod:`parallel_isolation.ownership`).

Names follow ``{service}-{worker_id}-{run8}`` and are sanitized to Docker's
``[a-zA-Z0-9][a-zA-Z0-9_.-]*``.
"""

from __future__ import annotations

import re

from parallel_isolation.identity import Identity

__all__ = ["MAX_CLIENT_ID", "client_id", "resource_name", "sanitize_name"]


_INVALID = re.compile(r"[^a-zA-Z0-9_.-]+")
_MAX_NAME = 128


def sanitize_name(raw: str) -> str:
    """Make ``raw`` a valid Docker object name, keeping it readable.

    Runs of invalid characters become one ``-``; a leading character that is
    not alphanumeric is dropped.  An input with nothing usable is an error.
    """
    cleaned = _INVALID.sub("-", raw).lstrip("_.-")
    cleaned = cleaned[:_MAX_NAME].rstrip("-")
    if not cleaned:
        msg = f"cannot build a Docker name from {raw!r}: no usable characters"
        raise ValueError(msg)
    return cleaned


def resource_name(base: str, identity: Identity) -> str:
    """``{base}-{worker_id}-{run8}``, sanitized."""
    return sanitize_name(f"{base}-{identity.worker_id}-{identity.run_id}")


MAX_CLIENT_ID = 64
# In a client id base: MQTT wildcards and the level separator (brokers use
# client ids in topics and ACL patterns), NUL, other control characters, blanks.
_FORBIDDEN_IN_CLIENT_ID = re.compile(r"[+#/\x00-\x20\x7f]")


def client_id(base: str, identity: Identity, serial: int) -> str:
    """An MQTT client id unique per run, worker and use: ``{base}-{worker}-{run8}-{serial}``.

    At most :data:`MAX_CLIENT_ID` characters: a long ``base`` is shortened,
    never the suffix that makes the id unique.  A ``base`` with a wildcard,
    a ``/``, a NUL or another control character or a blank is refused.
    """
    if not isinstance(base, str) or not base:
        msg = f"MQTT client id base must be a non-empty string, got {base!r}"
        raise ValueError(msg)
    bad = _FORBIDDEN_IN_CLIENT_ID.search(base)
    if bad is not None:
        msg = (
            f"MQTT client id base {base!r} contains {bad.group()!r} at {bad.start()}: "
            "wildcards (+ #), '/', NUL, control characters and blanks are not allowed"
        )
        raise ValueError(msg)
    suffix = f"-{identity.worker_id}-{identity.run_id}-{serial}"
    room = MAX_CLIENT_ID - len(suffix)
    return sanitize_name(base)[:room].rstrip("_.-") + suffix
