"""The host's apt sources, read to find the Debian mirror the offline base is made from.

No host is hard-coded: the main Debian archive is picked from the host's own
``sources.list`` and ``sources.list.d`` (one-line and deb822 formats), or set
with ``ISOLATION_DEBIAN_MIRROR``.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from parallel_isolation.images.errors import MirrorNotFoundError

__all__ = [
    "MIRROR_ENV",
    "AptSource",
    "DebianMirror",
    "host_mirror",
    "parse_deb822_sources",
    "parse_one_line_sources",
    "read_apt_sources",
    "select_debian_mirror",
]

MIRROR_ENV = "ISOLATION_DEBIAN_MIRROR"

# Debian's own suite names; a third-party repository uses its own suite
# ("nodistro", "cloud-sdk-bookworm", "bookworm/mongodb-org/7.0") or component.
_DEBIAN_SUITES = frozenset(
    {
        "buster",
        "bullseye",
        "bookworm",
        "trixie",
        "forky",
        "duke",
        "sid",
        "oldoldstable",
        "oldstable",
        "stable",
        "testing",
        "unstable",
    }
)


@dataclass(frozen=True)
class AptSource:
    """One apt source entry, from either file format."""

    types: tuple[str, ...]
    uris: tuple[str, ...]
    suites: tuple[str, ...]
    components: tuple[str, ...]
    signed_by: str | None = None
    enabled: bool = True
    origin: str = ""


@dataclass(frozen=True)
class DebianMirror:
    """The Debian archive to debootstrap from."""

    uri: str
    keyring: str | None
    origin: str


_OPTIONS_RE = re.compile(r"^\[(?P<options>[^\]]*)\]\s*")


def parse_one_line_sources(text: str, origin: str = "sources.list") -> list[AptSource]:
    """Parse the one-line format: ``deb [opt=val ...] URI SUITE [COMPONENT...]``.

    Comments, blank lines and malformed lines are skipped; ``origin`` names the
    file in each entry as ``origin:line``.
    """
    entries: list[AptSource] = []
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        kind, _, rest = line.partition(" ")
        if kind not in ("deb", "deb-src"):
            continue
        rest = rest.strip()
        options: dict[str, str] = {}
        match = _OPTIONS_RE.match(rest)
        if match:
            for item in match.group("options").split():
                key, _, value = item.partition("=")
                options[key.strip().lower()] = value.strip()
            rest = rest[match.end() :]
        words = rest.split()
        if len(words) < 2:
            continue
        entries.append(
            AptSource(
                types=(kind,),
                uris=(words[0],),
                suites=(words[1],),
                components=tuple(words[2:]),
                signed_by=options.get("signed-by") or None,
                enabled=True,
                origin=f"{origin}:{number}",
            )
        )
    return entries


def parse_deb822_sources(text: str, origin: str = "debian.sources") -> list[AptSource]:
    """Parse deb822 ``.sources`` stanzas (``Types:``, ``URIs:``, ``Suites:`` ...).

    Field names are case-insensitive; continuation lines (leading blank) extend
    the previous field; ``#`` lines are comments; ``Enabled: no`` is honoured.
    A ``Signed-By`` holding an inline key block is kept as text.
    """
    entries: list[AptSource] = []
    fields: dict[str, str] = {}
    start_line = 0
    current: str | None = None

    def flush() -> None:
        if not fields:
            return
        types = tuple(fields.get("types", "").split())
        uris = tuple(fields.get("uris", "").split())
        suites = tuple(fields.get("suites", "").split())
        if types and uris and suites:
            signed_by = fields.get("signed-by", "").strip() or None
            enabled = fields.get("enabled", "yes").strip().lower() not in ("no", "false", "0")
            entries.append(
                AptSource(
                    types=types,
                    uris=uris,
                    suites=suites,
                    components=tuple(fields.get("components", "").split()),
                    signed_by=signed_by,
                    enabled=enabled,
                    origin=f"{origin}:{start_line}",
                )
            )
        fields.clear()

    for number, raw in enumerate(text.splitlines(), start=1):
        if raw.startswith("#"):
            continue
        if not raw.strip():
            flush()
            current = None
            continue
        if raw[0] in " \t":
            if current is not None:
                fields[current] += "\n" + raw.strip()
            continue
        key, sep, value = raw.partition(":")
        if not sep:
            continue
        if not fields:
            start_line = number
        current = key.strip().lower()
        fields[current] = value.strip()
    flush()
    return entries


def read_apt_sources(apt_dir: Path = Path("/etc/apt")) -> list[AptSource]:
    """All entries of ``sources.list`` and ``sources.list.d/*.list|*.sources``."""
    entries: list[AptSource] = []
    main_list = apt_dir / "sources.list"
    if main_list.is_file():
        entries += parse_one_line_sources(main_list.read_text(errors="replace"), str(main_list))
    parts = apt_dir / "sources.list.d"
    if parts.is_dir():
        for path in sorted(parts.iterdir()):
            if path.suffix == ".list" and path.is_file():
                entries += parse_one_line_sources(path.read_text(errors="replace"), str(path))
            elif path.suffix == ".sources" and path.is_file():
                entries += parse_deb822_sources(path.read_text(errors="replace"), str(path))
    return entries


def _is_debian_archive_uri(uri: str) -> bool:
    if not uri.startswith(("http://", "https://", "file:/")):
        return False
    path = uri.split("://", 1)[-1].rstrip("/")
    last = path.rsplit("/", 1)[-1]
    return "security" not in last and "ports" not in last


def select_debian_mirror(sources: Iterable[AptSource], suite: str = "bookworm") -> DebianMirror:
    """Pick the main Debian archive (not security, not updates, not third-party).

    Candidates are enabled ``deb`` entries with component ``main`` whose suite
    is a plain Debian suite name (``bookworm``, ``stable``, ``sid``...) and
    whose URI is not a security or ports archive.  An entry for ``suite``
    itself wins, then one whose URI ends in ``/debian``, then file order.
    """
    ranked: list[tuple[int, int, DebianMirror]] = []
    seen: list[str] = []
    for order, entry in enumerate(sources):
        seen.append(f"{entry.origin} {' '.join(entry.uris)} {' '.join(entry.suites)}")
        if not entry.enabled or "deb" not in entry.types or "main" not in entry.components:
            continue
        if not any(s in _DEBIAN_SUITES for s in entry.suites):
            continue
        keyring = entry.signed_by if entry.signed_by and entry.signed_by.startswith("/") else None
        for uri in entry.uris:
            if not _is_debian_archive_uri(uri):
                continue
            score = 0
            if suite in entry.suites:
                score -= 2
            if uri.rstrip("/").endswith("/debian"):
                score -= 1
            ranked.append((score, order, DebianMirror(uri.rstrip("/"), keyring, entry.origin)))
    if not ranked:
        listing = "\n  ".join(seen) if seen else "(no entries)"
        msg = (
            f"no Debian archive entry (deb, component main, a Debian suite, not security) in the "
            f"host's apt sources; set {MIRROR_ENV}=http://your-mirror/debian. Entries seen:\n  "
            f"{listing}"
        )
        raise MirrorNotFoundError(msg)
    ranked.sort(key=lambda item: (item[0], item[1]))
    return ranked[0][2]


def host_mirror(suite: str) -> DebianMirror:
    """``$ISOLATION_DEBIAN_MIRROR``, else the mirror :func:`select_debian_mirror` picks."""
    override = os.environ.get(MIRROR_ENV, "").strip()
    if override:
        return DebianMirror(override.rstrip("/"), None, f"environment variable {MIRROR_ENV}")
    return select_debian_mirror(read_apt_sources(), suite)
