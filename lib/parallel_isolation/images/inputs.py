"""The inputs hash of an image: what a build would see, hashed without building.

An image is current when its ``io.parallel-isolation.inputs-hash`` label
equals the hash of its current inputs: the Dockerfile, every file of the build
context as ``docker build`` receives it (``.dockerignore`` applied, caches
never sent), the id of its base image and its build arguments.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import cast

from parallel_isolation.images.errors import ImagesError
from parallel_isolation.images.recipe import ImageSpec

__all__ = [
    "CONTEXT_EXCLUDES",
    "ContextFile",
    "compute_inputs_hash",
    "context_files",
    "context_patterns",
    "spec_hash",
]

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


def context_patterns(context: Path) -> list[str]:
    """Exclusion patterns of a build context: the fixed caches plus its ``.dockerignore``."""
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
    included = exclude_paths(str(root), context_patterns(root), spec.dockerfile_in_context)
    result: list[ContextFile] = []
    for rel in sorted(cast("set[str]", included)):
        path = root / rel
        if path.is_symlink():
            result.append(ContextFile(rel, b"", link_target=os.readlink(path)))
        elif path.is_file():
            mode = path.stat().st_mode
            result.append(ContextFile(rel, path.read_bytes(), executable=bool(mode & 0o111)))
    return result


def spec_hash(spec: ImageSpec, base_ref: str, base_id: str) -> str:
    """The inputs hash of ``spec`` built ``FROM base_ref`` (whose image id is ``base_id``)."""
    return compute_inputs_hash(
        dockerfile=spec.dockerfile.read_bytes(),
        files=context_files(spec),
        base_image_id=base_id,
        build_args={"BASE_IMAGE": base_ref},
    )
