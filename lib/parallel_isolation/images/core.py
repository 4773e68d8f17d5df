"""Container images for the Docker backend, built offline when no registry answers.

Three images, each labelled with the image marker and an inputs hash:

``parallel-isolation/base:<suite>``
    Offline only: a Debian tree made with ``debootstrap --variant=minbase`` from
    the mirror the host's own apt sources name, with python3, mosquitto,
    ca-certificates, tini and paho-mqtt, imported with ``docker import``.  Its
    recipe lives in ``docker/base/recipe.toml``; it is rebuilt only when the
    recipe changes.
``parallel-isolation/mosquitto:latest``
    ``docker/mosquitto/Dockerfile`` (context ``docker/mosquitto``).
``parallel-isolation/wildfire-services:latest``
    ``services/Dockerfile`` (context ``services``).

The two Dockerfile images take ``BASE_IMAGE`` as a build argument: the offline
base, or their public default (``debian:bookworm-slim``, ``python:3.11-slim``)
when a registry is reachable.  ``ISOLATION_IMAGE_SOURCE=auto|registry|offline``
chooses; ``auto`` probes the registry with one bounded HTTPS request, and only
when something has to be built.

An image is up to date when it exists and its ``io.parallel-isolation.inputs-hash``
label equals the hash of its current inputs (Dockerfile, the files of its
build context, the id of its base image, its build arguments).  Checking this
costs a few small file reads and one ``docker image inspect`` per image.

Progress is reported through a callback of :class:`ProgressEvent`; failures
raise :class:`ImagesError` subclasses naming the step, the command and the
tail of its output.  Nothing here calls ``sys.exit`` except :func:`main`'s
``__main__`` guard.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import tomllib
import urllib.error
import urllib.request
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, cast

from parallel_isolation.containers.engine import EngineUnavailableError, connect_engine
from parallel_isolation.ownership import LABEL_PREFIX, TOOL_LABEL, TOOL_VALUE
from parallel_isolation.settings import DEFAULT_BROKER_IMAGE

__all__ = [
    "BASE_REPOSITORY",
    "INPUTS_HASH_LABEL",
    "MOSQUITTO_IMAGE",
    "SERVICES_IMAGE",
    "SOURCE_ENV",
    "AptSource",
    "BaseRecipe",
    "DebianMirror",
    "EngineUnavailableError",
    "ImageResult",
    "ImageSpec",
    "ImageStatus",
    "ImagesError",
    "MirrorNotFoundError",
    "ProgressEvent",
    "StepError",
    "build_images",
    "compute_inputs_hash",
    "context_files",
    "find_project_root",
    "image_specs",
    "images_status",
    "main",
    "parse_deb822_sources",
    "parse_one_line_sources",
    "probe_registry",
    "project_image_check",
    "read_apt_sources",
    "resolve_source",
    "select_debian_mirror",
]

# --- names, labels, knobs -----------------------------------------------------

INPUTS_HASH_LABEL = LABEL_PREFIX + "inputs-hash"
# Not the tool label: containers inherit their image's labels, and a container
# someone runs by hand from our image must not look like one the toolkit made.
IMAGE_LABEL = LABEL_PREFIX + "image"
SOURCE_LABEL = LABEL_PREFIX + "image-source"
BASE_REF_LABEL = LABEL_PREFIX + "base-image"

BASE_REPOSITORY = "parallel-isolation/base"
MOSQUITTO_IMAGE = DEFAULT_BROKER_IMAGE
SERVICES_IMAGE = "parallel-isolation/wildfire-services:latest"

SOURCE_ENV = "ISOLATION_IMAGE_SOURCE"
MIRROR_ENV = "ISOLATION_DEBIAN_MIRROR"
CACHE_ENV = "ISOLATION_IMAGES_CACHE"
TMPDIR_ENV = "ISOLATION_IMAGES_TMPDIR"
ROOT_ENV = "ISOLATION_PROJECT_ROOT"
PROBE_URL_ENV = "ISOLATION_REGISTRY_PROBE_URL"

DEFAULT_PROBE_URL = "https://registry-1.docker.io/v2/"
PROBE_TIMEOUT_S = 3.0
DEBOOTSTRAP_TIMEOUT_S = 1200.0
PIP_TIMEOUT_S = 300.0
BUILD_TIMEOUT_S = 1200.0
LOCK_TIMEOUT_S = 1800.0
TAIL_LINES = 30

# Bump when the way the base tree is made (strip rules, import changes) changes
# in a way that should rebuild existing base images.
_BASE_BUILD_VERSION = 2  # bumped when the labels change (image marker, not the tool label)
_INPUTS_HASH_VERSION = b"parallel-isolation image inputs v1\n"

# Never part of a build context (and so never part of an inputs hash): bytecode
# and tool caches appear whenever tests import the sources.
CONTEXT_EXCLUDES: tuple[str, ...] = (
    "**/__pycache__",
    "**/*.pyc",
    "**/*.pyo",
    "**/.pytest_cache",
    "**/.mypy_cache",
    "**/.ruff_cache",
    "**/.hypothesis",
)

ImageSource = Literal["registry", "offline"]
SourceSetting = Literal["auto", "registry", "offline"]
_SOURCE_SETTINGS: tuple[str, ...] = ("auto", "registry", "offline")

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


# --- errors -------------------------------------------------------------------


class ImagesError(Exception):
    """Base class of every error raised by this module."""


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


# --- progress -----------------------------------------------------------------

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


def _no_progress(_event: ProgressEvent) -> None:
    return None


class _Step:
    """Context manager emitting start/done events around one step."""

    def __init__(self, progress: Progress, step: str, image: str = "", message: str = "") -> None:
        self.progress = progress
        self.step = step
        self.image = image
        self.message = message
        self.started = 0.0
        self.result = ""

    def __enter__(self) -> _Step:
        self.started = time.monotonic()
        self.progress(ProgressEvent(self.step, "start", self.message, self.image))
        return self

    def log(self, line: str) -> None:
        self.progress(ProgressEvent(self.step, "log", line, self.image))

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        if exc_type is None:
            elapsed = time.monotonic() - self.started
            self.progress(ProgressEvent(self.step, "done", self.result, self.image, elapsed))


# --- apt sources ----------------------------------------------------------------


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


def _host_mirror(suite: str) -> DebianMirror:
    override = os.environ.get(MIRROR_ENV, "").strip()
    if override:
        return DebianMirror(override.rstrip("/"), None, f"environment variable {MIRROR_ENV}")
    return select_debian_mirror(read_apt_sources(), suite)


# --- recipe and specs -------------------------------------------------------------


@dataclass(frozen=True)
class BaseRecipe:
    """What goes into the debootstrap base image (``docker/base/recipe.toml``)."""

    suite: str
    variant: str = "minbase"
    components: tuple[str, ...] = ("main",)
    packages: tuple[str, ...] = ()
    pip: tuple[str, ...] = ()

    @classmethod
    def load(cls, path: Path) -> BaseRecipe:
        try:
            data = tomllib.loads(path.read_text())
        except (OSError, tomllib.TOMLDecodeError) as exc:
            msg = f"cannot read the base image recipe {path}: {exc}"
            raise ImagesError(msg) from exc

        def strings(key: str, default: Sequence[str] = ()) -> tuple[str, ...]:
            value = data.get(key, list(default))
            if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                msg = f"{path}: {key!r} must be a list of strings, got {value!r}"
                raise ImagesError(msg)
            return tuple(value)

        suite = data.get("suite")
        variant = data.get("variant", "minbase")
        if not isinstance(suite, str) or not re.fullmatch(r"[a-z][a-z0-9-]*", suite):
            msg = f"{path}: 'suite' must be a Debian suite name, got {suite!r}"
            raise ImagesError(msg)
        if not isinstance(variant, str):
            msg = f"{path}: 'variant' must be a string, got {variant!r}"
            raise ImagesError(msg)
        return cls(
            suite=suite,
            variant=variant,
            components=strings("components", ("main",)),
            packages=strings("packages"),
            pip=strings("pip"),
        )

    @property
    def ref(self) -> str:
        return f"{BASE_REPOSITORY}:{self.suite}"

    @property
    def inputs_hash(self) -> str:
        """Hash of the recipe alone: the mirror URL is deliberately not in it."""
        canonical = json.dumps(
            {
                "version": _BASE_BUILD_VERSION,
                "suite": self.suite,
                "variant": self.variant,
                "components": sorted(self.components),
                "packages": sorted(self.packages),
                "pip": sorted(self.pip),
            },
            sort_keys=True,
        )
        return hashlib.sha256(canonical.encode()).hexdigest()


@dataclass(frozen=True)
class ImageSpec:
    """A project image built from a Dockerfile with a ``BASE_IMAGE`` build argument."""

    key: str
    ref: str
    context: Path
    dockerfile: Path
    public_base: str

    @property
    def dockerfile_in_context(self) -> str:
        return self.dockerfile.relative_to(self.context).as_posix()


def find_project_root(start: Path | None = None) -> Path:
    """The checkout holding ``docker/mosquitto/Dockerfile``.

    Order: ``start``, ``$ISOLATION_PROJECT_ROOT``, the checkout this module
    lives in, then the current directory and its parents.
    """

    def ok(path: Path) -> bool:
        return (path / "docker" / "mosquitto" / "Dockerfile").is_file()

    candidates: list[Path] = []
    if start is not None:
        candidates.append(start)
    env = os.environ.get(ROOT_ENV)
    if env:
        candidates.append(Path(env))
    candidates.append(Path(__file__).resolve().parents[3])
    cwd = Path.cwd()
    candidates += [cwd, *cwd.parents]
    for candidate in candidates:
        if ok(candidate):
            return candidate.resolve()
    msg = (
        f"cannot find the project checkout (a directory with docker/mosquitto/Dockerfile) "
        f"from {start or cwd}; set {ROOT_ENV}"
    )
    raise ImagesError(msg)


def image_specs(root: Path) -> list[ImageSpec]:
    """The project's Dockerfile images, in build order."""
    return [
        ImageSpec(
            key="mosquitto",
            ref=MOSQUITTO_IMAGE,
            context=root / "docker" / "mosquitto",
            dockerfile=root / "docker" / "mosquitto" / "Dockerfile",
            public_base="debian:bookworm-slim",
        ),
        ImageSpec(
            key="services",
            ref=SERVICES_IMAGE,
            context=root / "services",
            dockerfile=root / "services" / "Dockerfile",
            public_base="python:3.11-slim",
        ),
    ]


# --- inputs hash ----------------------------------------------------------------


@dataclass(frozen=True)
class ContextFile:
    """One file of a build context as it enters the inputs hash."""

    path: str
    content: bytes
    executable: bool = False
    link_target: str | None = None


def compute_inputs_hash(
    *,
    dockerfile: bytes,
    files: Iterable[ContextFile],
    base_image_id: str,
    build_args: Mapping[str, str],
) -> str:
    """sha256 over the Dockerfile, context files, base image id and build args.

    Order-independent in ``files`` and ``build_args``; sensitive to every byte
    of content, file names, the executable bit, symlink targets, the base id
    and every build argument.
    """
    digest = hashlib.sha256(_INPUTS_HASH_VERSION)
    digest.update(b"dockerfile\0" + hashlib.sha256(dockerfile).digest())
    for item in sorted(files, key=lambda f: f.path):
        digest.update(b"file\0" + item.path.encode() + b"\0")
        if item.link_target is not None:
            digest.update(b"link\0" + item.link_target.encode() + b"\0")
        else:
            digest.update(b"x" if item.executable else b"-")
            digest.update(hashlib.sha256(item.content).digest())
    digest.update(b"base\0" + base_image_id.encode() + b"\0")
    for key in sorted(build_args):
        digest.update(b"arg\0" + key.encode() + b"=" + build_args[key].encode() + b"\0")
    return digest.hexdigest()


def _context_patterns(context: Path) -> list[str]:
    patterns = list(CONTEXT_EXCLUDES)
    ignore = context / ".dockerignore"
    if ignore.is_file():
        for line in ignore.read_text().splitlines():
            stripped = line.strip()
            if stripped and not stripped.startswith("#"):
                patterns.append(stripped)
    return patterns


def context_files(spec: ImageSpec) -> list[ContextFile]:
    """The files ``docker build`` receives for ``spec`` (``.dockerignore`` and caches excluded)."""
    from docker.utils.build import exclude_paths

    if not spec.dockerfile.is_file():
        msg = f"{spec.ref}: Dockerfile {spec.dockerfile} does not exist"
        raise ImagesError(msg)
    root = spec.context
    included = exclude_paths(str(root), _context_patterns(root), spec.dockerfile_in_context)
    result: list[ContextFile] = []
    for rel in sorted(cast("set[str]", included)):
        path = root / rel
        if path.is_symlink():
            result.append(ContextFile(rel, b"", link_target=os.readlink(path)))
        elif path.is_file():
            mode = path.stat().st_mode
            result.append(ContextFile(rel, path.read_bytes(), executable=bool(mode & 0o111)))
    return result


def _spec_hash(spec: ImageSpec, base_ref: str, base_id: str) -> str:
    return compute_inputs_hash(
        dockerfile=spec.dockerfile.read_bytes(),
        files=context_files(spec),
        base_image_id=base_id,
        build_args={"BASE_IMAGE": base_ref},
    )


# --- engine -----------------------------------------------------------------------


def _connect(client: Any | None, timeout: float = 30.0) -> Any:
    return client if client is not None else connect_engine(timeout)


@dataclass(frozen=True)
class _Local:
    image_id: str
    size: int
    labels: Mapping[str, str]


def _inspect(client: Any, ref: str) -> _Local | None:
    from docker.errors import ImageNotFound

    try:
        attrs = client.api.inspect_image(ref)
    except ImageNotFound:
        return None
    config = attrs.get("Config") or {}
    labels = config.get("Labels") or {}
    return _Local(str(attrs["Id"]), int(attrs.get("Size") or 0), dict(labels))


# --- status -----------------------------------------------------------------------


@dataclass(frozen=True)
class ImageStatus:
    """Whether one image exists and matches its current inputs."""

    ref: str
    present: bool
    up_to_date: bool
    reason: str
    image_id: str | None = None
    size_bytes: int | None = None
    source: str | None = None
    inputs_hash: str | None = None
    expected_hash: str | None = None


@dataclass(frozen=True)
class ImageResult:
    """What :func:`build_images` did for one image."""

    ref: str
    action: Literal["built", "imported", "up-to-date"]
    image_id: str
    source: ImageSource
    inputs_hash: str
    size_bytes: int
    seconds: float


def _source_setting(source: str | None) -> SourceSetting:
    origin = "argument source"
    if source is None:
        source = os.environ.get(SOURCE_ENV, "auto").strip() or "auto"
        origin = f"environment variable {SOURCE_ENV}"
    if source not in _SOURCE_SETTINGS:
        msg = f"{origin} must be one of {', '.join(_SOURCE_SETTINGS)}, got {source!r}"
        raise ImagesError(msg)
    return cast("SourceSetting", source)


def _base_status(client: Any, recipe: BaseRecipe) -> ImageStatus:
    local = _inspect(client, recipe.ref)
    expected = recipe.inputs_hash
    if local is None:
        return ImageStatus(recipe.ref, False, False, "missing", expected_hash=expected)
    current = local.labels.get(INPUTS_HASH_LABEL)
    fresh = current == expected
    return ImageStatus(
        recipe.ref,
        True,
        fresh,
        "up to date" if fresh else "recipe changed",
        local.image_id,
        local.size,
        "offline",
        current,
        expected,
    )


def _spec_status(
    client: Any, spec: ImageSpec, setting: SourceSetting, base: ImageStatus
) -> ImageStatus:
    local = _inspect(client, spec.ref)
    if local is None:
        return ImageStatus(spec.ref, False, False, "missing")
    source = local.labels.get(SOURCE_LABEL)
    base_ref = local.labels.get(BASE_REF_LABEL)
    current = local.labels.get(INPUTS_HASH_LABEL)

    def stale(reason: str, expected: str | None = None) -> ImageStatus:
        return ImageStatus(
            spec.ref, True, False, reason, local.image_id, local.size, source, current, expected
        )

    if source not in ("offline", "registry") or not base_ref or not current:
        return stale("not built by parallel-isolation (labels missing)")
    if setting != "auto" and source != setting:
        return stale(f"built from the {source} base, {setting} requested")
    if source == "offline" and (base_ref != base.ref or not base.up_to_date):
        return stale(f"offline base {base.ref} is {base.reason}")
    base_local = _inspect(client, base_ref)
    if base_local is None:
        return stale(f"its base {base_ref} is gone")
    expected = _spec_hash(spec, base_ref, base_local.image_id)
    if expected != current:
        return stale("inputs changed", expected)
    return ImageStatus(
        spec.ref, True, True, "up to date", local.image_id, local.size, source, current, expected
    )


def images_status(
    *,
    source: str | None = None,
    project_root: Path | None = None,
    client: Any | None = None,
) -> list[ImageStatus]:
    """Status of the base image and every project image; no network, no builds.

    ``source`` (or ``$ISOLATION_IMAGE_SOURCE``) of ``registry``/``offline``
    marks images built from the other source as stale; ``auto`` accepts both.
    The base image's own status is reported first; it only matters for
    project images built offline.
    """
    setting = _source_setting(source)
    root = find_project_root(project_root)
    recipe = BaseRecipe.load(root / "docker" / "base" / "recipe.toml")
    engine = _connect(client)
    base = _base_status(engine, recipe)
    return [base, *(_spec_status(engine, spec, setting, base) for spec in image_specs(root))]


# --- registry probe ---------------------------------------------------------------


def probe_registry(url: str | None = None, timeout: float = PROBE_TIMEOUT_S) -> bool:
    """True when an HTTPS request to the registry API gets any HTTP answer in time.

    A 401 (the usual answer of ``/v2/``) counts as reachable.  Name resolution
    is bounded too: the request runs in a daemon thread that is abandoned at
    the deadline.
    """
    target = url or os.environ.get(PROBE_URL_ENV) or DEFAULT_PROBE_URL
    answered = threading.Event()

    def attempt() -> None:
        request = urllib.request.Request(target, method="HEAD")
        try:
            with urllib.request.urlopen(request, timeout=timeout):
                answered.set()
        except urllib.error.HTTPError:
            answered.set()
        except (urllib.error.URLError, OSError, ValueError):
            return

    worker = threading.Thread(target=attempt, name="registry-probe", daemon=True)
    worker.start()
    worker.join(timeout)
    return answered.is_set()


def resolve_source(source: str | None = None, progress: Progress | None = None) -> ImageSource:
    """``registry`` or ``offline`` from the argument, ``$ISOLATION_IMAGE_SOURCE`` or a probe."""
    setting = _source_setting(source)
    if setting != "auto":
        return setting
    report = progress or _no_progress
    with _Step(report, "probe registry") as step:
        reachable = probe_registry()
        step.result = "reachable: build from public bases" if reachable else "unreachable: offline"
    return "registry" if reachable else "offline"


# --- subprocess steps ---------------------------------------------------------------


def _run(
    step: _Step,
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


def _mount_points_under(root: Path) -> list[Path]:
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


def _unmount_all(root: Path) -> None:
    for point in _mount_points_under(root):
        if subprocess.run(["umount", str(point)], capture_output=True, check=False).returncode:
            subprocess.run(["umount", "-l", str(point)], capture_output=True, check=False)


def _remove_tree(root: Path) -> None:
    """Delete a build tree, never through a mount (debootstrap mounts /proc, /sys)."""
    if not root.exists():
        return
    _unmount_all(root)
    left = _mount_points_under(root)
    if left:
        msg = (
            f"refusing to delete {root}: still mounted at {', '.join(map(str, left))}; "
            f"unmount them and delete it by hand"
        )
        raise ImagesError(msg)
    shutil.rmtree(root)


# Removed from the debootstrap tree before packing (relative globs); docs keep
# their copyright files.
_STRIP_GLOBS: tuple[str, ...] = (
    "var/lib/apt/lists/*",
    "var/cache/apt/*.bin",
    "var/cache/apt/archives/*.deb",
    "var/cache/debconf/*-old",
    "var/lib/dpkg/*-old",
    "var/log/*",
    "usr/share/man/*",
    "usr/share/info/*",
    "usr/share/lintian/*",
    "usr/share/locale/*",
    "tmp/*",
    "root/.cache",
    "etc/resolv.conf",
    "etc/hostname",
)

_DPKG_NODOC = """\
# parallel-isolation: keep images small; packages installed later skip docs too.
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/man/*
path-exclude /usr/share/info/*
path-exclude /usr/share/locale/*
path-exclude /usr/share/lintian/*
"""


def _tree_size(path: Path) -> int:
    if path.is_symlink() or not path.is_dir():
        return path.lstat().st_size
    total = 0
    for dirpath, _dirs, names in os.walk(path):
        for name in names:
            with contextlib.suppress(OSError):
                total += (Path(dirpath) / name).lstat().st_size
    return total


def _delete(path: Path) -> int:
    size = _tree_size(path)
    if path.is_symlink() or not path.is_dir():
        path.unlink()
    else:
        shutil.rmtree(path)
    return size


def _strip_rootfs(rootfs: Path) -> int:
    """Remove docs, caches and lists from the tree; return the bytes freed."""
    freed = 0
    for pattern in _STRIP_GLOBS:
        for path in rootfs.glob(pattern):
            freed += _delete(path)
    doc = rootfs / "usr" / "share" / "doc"
    if doc.is_dir():
        for package in doc.iterdir():
            if package.is_dir() and not package.is_symlink():
                for item in package.iterdir():
                    if item.name != "copyright":
                        freed += _delete(item)
    dpkg_cfg = rootfs / "etc" / "dpkg" / "dpkg.cfg.d"
    dpkg_cfg.mkdir(parents=True, exist_ok=True)
    (dpkg_cfg / "90-parallel-isolation-nodoc").write_text(_DPKG_NODOC)
    return freed


# --- builders -----------------------------------------------------------------------


@dataclass
class _Context:
    root: Path
    cache_dir: Path
    client: Any
    progress: Progress
    force: bool
    superseded: list[str] = field(default_factory=list)


def _chroot_env() -> dict[str, str]:
    return {
        "PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        "LANG": "C.UTF-8",
        "HOME": "/root",
        "DEBIAN_FRONTEND": "noninteractive",
    }


def _install_pip_requirements(ctx: _Context, recipe: BaseRecipe, rootfs: Path) -> None:
    if not recipe.pip:
        return
    wheels = ctx.cache_dir / "wheels"
    wheels.mkdir(parents=True, exist_ok=True)
    target = rootfs / "usr" / "lib" / "python3" / "dist-packages"
    target.mkdir(parents=True, exist_ok=True)
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "--no-input"]
    install = [
        *pip,
        "install",
        "--no-deps",
        "--no-compile",
        "--only-binary=:all:",
        "--no-index",
        "--find-links",
        str(wheels),
        "--target",
        str(target),
        *recipe.pip,
    ]
    hint = f"the wheels are cached in {wheels}; PyPI (or PIP_INDEX_URL) must answer once"
    with _Step(ctx.progress, "install python packages", recipe.ref, " ".join(recipe.pip)) as step:
        try:
            _run(step, install, timeout=PIP_TIMEOUT_S, hint=hint)
            step.result = "from the wheel cache"
        except StepError:
            download = [
                *pip,
                "download",
                "--no-deps",
                "--only-binary=:all:",
                "--dest",
                str(wheels),
                *recipe.pip,
            ]
            _run(step, download, timeout=PIP_TIMEOUT_S, hint=hint)
            _run(step, install, timeout=PIP_TIMEOUT_S, hint=hint)
            step.result = "downloaded"
        check = "import paho.mqtt, sys; print(paho.mqtt.__version__, sys.version.split()[0])"
        compile_and_check = [
            "chroot",
            str(rootfs),
            "/bin/sh",
            "-c",
            "python3 -m compileall -q /usr/lib/python3/dist-packages >/dev/null"
            f' && python3 -c "{check}"',
        ]
        lines = _run(step, compile_and_check, timeout=PIP_TIMEOUT_S, env=_chroot_env())
        step.result += f"; in the image: paho-mqtt {lines[-1] if lines else '?'}"


def _debootstrap(ctx: _Context, recipe: BaseRecipe, rootfs: Path) -> None:
    with _Step(ctx.progress, "resolve mirror", recipe.ref) as step:
        mirror = _host_mirror(recipe.suite)
        step.result = f"{mirror.uri} (from {mirror.origin})"
    debs = ctx.cache_dir / "debs"
    debs.mkdir(parents=True, exist_ok=True)
    argv = [
        "debootstrap",
        f"--variant={recipe.variant}",
        f"--components={','.join(recipe.components)}",
        f"--cache-dir={debs.resolve()}",
    ]
    if recipe.packages:
        argv.append(f"--include={','.join(recipe.packages)}")
    if mirror.keyring and Path(mirror.keyring).is_file():
        argv.append(f"--keyring={mirror.keyring}")
    argv += [recipe.suite, str(rootfs), mirror.uri]
    hint = (
        f"the mirror comes from {mirror.origin}; override it with {MIRROR_ENV}. "
        f"debootstrap needs root and the debootstrap package (ci/install-system-deps.sh)"
    )
    message = f"{recipe.suite} from {mirror.uri}"
    with _Step(ctx.progress, "debootstrap", recipe.ref, message) as step:
        _run(step, argv, timeout=DEBOOTSTRAP_TIMEOUT_S, hint=hint)


def _make_base_tarball(ctx: _Context, recipe: BaseRecipe, tarball: Path) -> None:
    if os.geteuid() != 0:
        msg = (
            "building the offline base image needs root (debootstrap, chroot); run as root, "
            f"or set {SOURCE_ENV}=registry where a registry is reachable"
        )
        raise ImagesError(msg)
    if shutil.which("debootstrap") is None:
        msg = "debootstrap is not installed; run ci/install-system-deps.sh"
        raise ImagesError(msg)
    tmp_parent = Path(os.environ.get(TMPDIR_ENV) or "/var/tmp")
    tmp_parent.mkdir(parents=True, exist_ok=True)
    workdir = Path(tempfile.mkdtemp(prefix="parallel-isolation-base-", dir=tmp_parent))
    rootfs = workdir / "rootfs"
    try:
        _debootstrap(ctx, recipe, rootfs)
        _install_pip_requirements(ctx, recipe, rootfs)
        _unmount_all(rootfs)
        with _Step(ctx.progress, "strip rootfs", recipe.ref) as step:
            freed = _strip_rootfs(rootfs)
            step.result = f"freed {freed / 1e6:.1f} MB"
        partial = tarball.with_name(tarball.name + ".partial")
        argv = [
            "tar",
            "--numeric-owner",
            "--one-file-system",
            "--exclude=./dev/*",
            "--exclude=./proc/*",
            "--exclude=./sys/*",
            "--exclude=./run/*",
            "-C",
            str(rootfs),
            "-cf",
            str(partial),
            ".",
        ]
        with _Step(ctx.progress, "pack rootfs", recipe.ref) as step:
            _run(step, argv, timeout=BUILD_TIMEOUT_S)
            partial.replace(tarball)
            step.result = f"{tarball} ({tarball.stat().st_size / 1e6:.1f} MB)"
    finally:
        _remove_tree(workdir)


def _remember_superseded(ctx: _Context, previous: _Local | None, ref: str) -> None:
    if previous is None:
        return
    now = _inspect(ctx.client, ref)
    replaced = now is not None and now.image_id != previous.image_id
    ours = TOOL_VALUE in (previous.labels.get(IMAGE_LABEL), previous.labels.get(TOOL_LABEL))
    if replaced and ours:
        ctx.superseded.append(previous.image_id)


def _build_base(ctx: _Context, recipe: BaseRecipe) -> ImageResult:
    started = time.monotonic()
    previous = _inspect(ctx.client, recipe.ref)
    tarball = ctx.cache_dir / f"base-{recipe.suite}-{recipe.inputs_hash[:16]}.tar"
    for stale in ctx.cache_dir.glob(f"base-{recipe.suite}-*.tar*"):
        if stale != tarball:
            stale.unlink()
    if tarball.is_file() and not ctx.force:
        ctx.progress(ProgressEvent("debootstrap", "skip", f"using cached {tarball}", recipe.ref))
    else:
        _make_base_tarball(ctx, recipe, tarball)
    changes = [
        "ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        "ENV LANG=C.UTF-8",
        'CMD ["/bin/bash"]',
        f"LABEL {IMAGE_LABEL}={TOOL_VALUE}",
        f"LABEL {INPUTS_HASH_LABEL}={recipe.inputs_hash}",
        f"LABEL {SOURCE_LABEL}=offline",
    ]
    repository, _, tag = recipe.ref.rpartition(":")
    command = f"docker import {' '.join('--change ' + shlex.quote(c) for c in changes)} " + (
        f"{tarball} {recipe.ref}"
    )
    from docker.errors import DockerException

    with _Step(ctx.progress, "import base image", recipe.ref) as step:
        try:
            ctx.client.api.import_image_from_file(
                str(tarball), repository=repository, tag=tag, changes=changes
            )
        except DockerException as exc:
            raise StepError("import base image", command, str(exc)) from exc
        local = _inspect(ctx.client, recipe.ref)
        if local is None or local.labels.get(INPUTS_HASH_LABEL) != recipe.inputs_hash:
            msg = f"{recipe.ref} is missing or unlabelled after the import"
            raise StepError("import base image", command, msg)
        step.result = f"{local.image_id[:19]} ({local.size / 1e6:.0f} MB)"
    _remember_superseded(ctx, previous, recipe.ref)
    return ImageResult(
        recipe.ref,
        "imported",
        local.image_id,
        "offline",
        recipe.inputs_hash,
        local.size,
        time.monotonic() - started,
    )


def _ensure_public_base(ctx: _Context, ref: str) -> _Local:
    local = _inspect(ctx.client, ref)
    if local is not None:
        return local
    from docker.errors import DockerException

    repository, _, tag = ref.rpartition(":")
    with _Step(ctx.progress, "pull base", ref) as step:
        try:
            for event in ctx.client.api.pull(repository, tag=tag, stream=True, decode=True):
                if "error" in event:
                    raise StepError("pull base", f"docker pull {ref}", str(event["error"]))
                if "status" in event and "id" not in event:
                    step.log(str(event["status"]))
        except DockerException as exc:
            hint = f"set {SOURCE_ENV}=offline to build from the debootstrap base instead"
            raise StepError("pull base", f"docker pull {ref}", str(exc), hint=hint) from exc
    pulled = _inspect(ctx.client, ref)
    if pulled is None:
        raise StepError("pull base", f"docker pull {ref}", "image missing after the pull")
    return pulled


def _build_spec(
    ctx: _Context, spec: ImageSpec, source: ImageSource, base_ref: str, base_id: str
) -> ImageResult:
    started = time.monotonic()
    inputs_hash = _spec_hash(spec, base_ref, base_id)
    previous = _inspect(ctx.client, spec.ref)
    if (
        not ctx.force
        and previous is not None
        and previous.labels.get(INPUTS_HASH_LABEL) == inputs_hash
        and previous.labels.get(SOURCE_LABEL) == source
    ):
        ctx.progress(ProgressEvent(f"build {spec.key}", "skip", "up to date", spec.ref))
        return ImageResult(
            spec.ref,
            "up-to-date",
            previous.image_id,
            source,
            inputs_hash,
            previous.size,
            time.monotonic() - started,
        )
    labels = {
        IMAGE_LABEL: TOOL_VALUE,
        INPUTS_HASH_LABEL: inputs_hash,
        SOURCE_LABEL: source,
        BASE_REF_LABEL: base_ref,
    }
    build_args = {"BASE_IMAGE": base_ref}
    command = shlex.join(
        [
            "docker",
            "build",
            "-f",
            str(spec.dockerfile),
            "--build-arg",
            f"BASE_IMAGE={base_ref}",
            *(f"--label={k}={v}" for k, v in labels.items()),
            "-t",
            spec.ref,
            str(spec.context),
        ]
    )
    from docker.errors import DockerException
    from docker.utils.build import tar

    tail: deque[str] = deque(maxlen=TAIL_LINES)
    with _Step(ctx.progress, f"build {spec.key}", spec.ref, f"FROM {base_ref}") as step:
        context_tar = tar(
            str(spec.context),
            exclude=_context_patterns(spec.context),
            dockerfile=(spec.dockerfile_in_context, None),
        )
        try:
            stream = ctx.client.api.build(
                fileobj=context_tar,
                custom_context=True,
                dockerfile=spec.dockerfile_in_context,
                tag=spec.ref,
                buildargs=build_args,
                labels=labels,
                rm=True,
                forcerm=True,
                pull=False,
                nocache=ctx.force,
                decode=True,
                timeout=int(BUILD_TIMEOUT_S),
            )
            for chunk in stream:
                if "error" in chunk:
                    detail = str(chunk.get("error", "")).strip()
                    raise StepError(step.step, command, detail, output_tail=list(tail))
                text = str(chunk.get("stream", "")).rstrip("\n")
                for line in text.splitlines():
                    tail.append(line)
                    step.log(line)
        except DockerException as exc:
            raise StepError(step.step, command, str(exc), output_tail=list(tail)) from exc
        finally:
            context_tar.close()
        local = _inspect(ctx.client, spec.ref)
        if local is None or local.labels.get(INPUTS_HASH_LABEL) != inputs_hash:
            detail = f"{spec.ref} is missing or has another inputs hash after the build"
            raise StepError(step.step, command, detail, output_tail=list(tail))
        step.result = f"{local.image_id[:19]} ({local.size / 1e6:.0f} MB)"
    _remember_superseded(ctx, previous, spec.ref)
    return ImageResult(
        spec.ref,
        "built",
        local.image_id,
        source,
        inputs_hash,
        local.size,
        time.monotonic() - started,
    )


def _remove_superseded(ctx: _Context) -> None:
    """Delete the images this tool built before and has just replaced (by id)."""
    from docker.errors import APIError, ImageNotFound

    for image_id in reversed(ctx.superseded):
        try:
            ctx.client.api.remove_image(image_id, noprune=False)
            ctx.progress(ProgressEvent("remove superseded", "info", image_id[:19]))
        except ImageNotFound:
            continue
        except APIError as exc:
            # In use by a container or by a child image someone else built: keep it.
            ctx.progress(ProgressEvent("remove superseded", "info", f"kept {image_id[:19]}: {exc}"))


@contextlib.contextmanager
def _build_lock(cache_dir: Path, progress: Progress) -> Iterator[None]:
    from filelock import FileLock, Timeout

    lock = FileLock(str(cache_dir / "build.lock"))
    try:
        lock.acquire(timeout=0)
    except Timeout:
        progress(ProgressEvent("wait for lock", "info", f"another build holds {lock.lock_file}"))
        try:
            lock.acquire(timeout=LOCK_TIMEOUT_S)
        except Timeout as exc:
            msg = f"another image build held {lock.lock_file} for {LOCK_TIMEOUT_S:.0f}s"
            raise ImagesError(msg) from exc
    try:
        yield
    finally:
        lock.release()


def _result_from_status(status: ImageStatus) -> ImageResult:
    return ImageResult(
        status.ref,
        "up-to-date",
        status.image_id or "",
        cast("ImageSource", status.source or "offline"),
        status.inputs_hash or "",
        status.size_bytes or 0,
        0.0,
    )


def build_images(
    *,
    force: bool = False,
    source: str | None = None,
    progress: Progress | None = None,
    project_root: Path | None = None,
    cache_dir: Path | None = None,
    client: Any | None = None,
) -> list[ImageResult]:
    """Build whatever image is missing or stale; a no-op (< 2 s) when all are current.

    ``force`` rebuilds everything, ignoring the base tarball cache and Docker's
    layer cache.  ``source`` is ``auto`` (default, or ``$ISOLATION_IMAGE_SOURCE``),
    ``registry`` or ``offline``.  Returns one result per image in build order
    (the base image only when built or used offline).
    """
    report = progress or _no_progress
    setting = _source_setting(source)
    root = find_project_root(project_root)
    cache = cache_dir or Path(os.environ.get(CACHE_ENV) or root / ".images")
    cache.mkdir(parents=True, exist_ok=True)
    recipe = BaseRecipe.load(root / "docker" / "base" / "recipe.toml")
    engine = _connect(client)
    specs = image_specs(root)

    def current() -> list[ImageResult] | None:
        base = _base_status(engine, recipe)
        statuses = [_spec_status(engine, spec, setting, base) for spec in specs]
        if force or not all(s.up_to_date for s in statuses):
            return None
        uses_base = any(s.source == "offline" for s in statuses)
        return [_result_from_status(s) for s in ([base] if uses_base else []) + statuses]

    with _Step(report, "check images") as step:
        done = current()
        step.result = "all up to date" if done else "something to build"
    if done is not None:
        return done

    with _build_lock(cache, report):
        done = current()  # a concurrent build may have finished meanwhile
        if done is not None:
            return done
        ctx = _Context(root, cache, engine, report, force)
        chosen = resolve_source(setting, report)
        results: list[ImageResult] = []
        base_ids: dict[str, str] = {}
        if chosen == "offline":
            base = _base_status(engine, recipe)
            if force or not base.up_to_date:
                results.append(_build_base(ctx, recipe))
            else:
                report(ProgressEvent("debootstrap", "skip", "base image up to date", recipe.ref))
                results.append(_result_from_status(base))
            base_ids = dict.fromkeys((spec.ref for spec in specs), results[-1].image_id)
        for spec in specs:
            if chosen == "offline":
                base_ref, base_id = recipe.ref, base_ids[spec.ref]
            else:
                base_ref = spec.public_base
                base_id = _ensure_public_base(ctx, base_ref).image_id
            results.append(_build_spec(ctx, spec, chosen, base_ref, base_id))
        _remove_superseded(ctx)
        return results


# --- command line -----------------------------------------------------------------------


def _print_event(event: ProgressEvent, verbose: bool) -> None:
    where = f" [{event.image}]" if event.image else ""
    if event.kind == "start":
        print(f"==> {event.step}{where} {event.message}".rstrip(), file=sys.stderr)
    elif event.kind == "done":
        print(f"    done in {event.seconds or 0:.1f}s {event.message}".rstrip(), file=sys.stderr)
    elif event.kind in ("skip", "info"):
        print(f"--- {event.step}{where}: {event.message}", file=sys.stderr)
    elif verbose:
        print(f"    | {event.message}", file=sys.stderr)


def project_image_check(events: Any | None = None) -> Callable[[Any], None]:
    """The container manager's ``image_check``: the project's images current before first use.

    Runs :func:`images_status` once (a fast no-op when current) and
    :func:`build_images` when an image is missing or stale; a build failure is
    an :class:`~parallel_isolation.containers.manager.ImageMissingError`
    naming the stale images.  Without the project's Dockerfiles (an installed
    package outside a checkout) present images are taken as they are.
    """

    def check(client: Any) -> None:
        from parallel_isolation.containers.manager import IMAGE_HINT, ImageMissingError

        started = time.monotonic()
        try:
            statuses = images_status(client=client)
        except ImagesError as error:
            if events is not None:
                events.emit("images_check_skipped", reason=str(error))
            return
        stale = [f"{s.ref}: {s.reason}" for s in statuses if not s.up_to_date]
        built: list[str] = []
        if stale:
            try:
                results = build_images(client=client)
            except ImagesError as error:
                msg = (
                    f"the container images are not current ({'; '.join(stale)}) and building "
                    f"them failed: {error}\n{IMAGE_HINT[0].upper()}{IMAGE_HINT[1:]} and see "
                    "docs/images.md"
                )
                raise ImageMissingError(msg) from error
            built = [r.ref for r in results if r.action != "up-to-date"]
        if events is not None:
            events.emit(
                "images_checked",
                stale=stale,
                built=built,
                seconds=round(time.monotonic() - started, 3),
            )

    return check


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m parallel_isolation.images {build,status}``; returns the exit status."""
    parser = argparse.ArgumentParser(
        prog="python -m parallel_isolation.images",
        description="Build or inspect the container images of the Docker backend.",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    build = sub.add_parser("build", help="build missing or stale images (no-op when current)")
    build.add_argument("--force", action="store_true", help="rebuild everything, no caches")
    status = sub.add_parser("status", help="show images; exit 1 if any is missing or stale")
    status.add_argument("--json", action="store_true", help="print JSON instead of a table")
    for command in (build, status):
        command.add_argument(
            "--source",
            choices=_SOURCE_SETTINGS,
            default=None,
            help=f"where bases come from (default: ${SOURCE_ENV} or auto)",
        )
    build.add_argument("-v", "--verbose", action="store_true", help="print command output")
    args = parser.parse_args(argv)

    # A CI job cancelled with SIGTERM must still unmount and delete the
    # debootstrap tree: turn the signal into an exception so cleanups run.
    def terminate(signum: int, _frame: object) -> None:
        raise SystemExit(128 + signum)

    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, terminate)

    try:
        if args.command == "build":
            started = time.monotonic()
            results = build_images(
                force=args.force,
                source=args.source,
                progress=lambda event: _print_event(event, args.verbose),
            )
            for result in results:
                print(
                    f"{result.ref:48} {result.action:10} {result.image_id[7:19]} "
                    f"{result.size_bytes / 1e6:7.1f} MB  {result.source}"
                )
            print(f"total {time.monotonic() - started:.1f}s", file=sys.stderr)
            return 0
        statuses = images_status(source=args.source)
        if args.json:
            print(json.dumps([s.__dict__ for s in statuses], indent=2))
        else:
            for item in statuses:
                size = f"{item.size_bytes / 1e6:7.1f} MB" if item.size_bytes else "      -   "
                print(f"{item.ref:48} {size}  {item.source or '-':8}  {item.reason}")
        return 0 if all(s.up_to_date for s in statuses[1:]) else 1
    except (ImagesError, EngineUnavailableError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    raise SystemExit(main())
