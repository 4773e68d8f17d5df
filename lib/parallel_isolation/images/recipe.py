"""What the images are: the library's broker image, the offline base, the project's own.

The library ships the recipes it needs as package data (``assets/``): the
broker image ``parallel-isolation/mosquitto:latest`` and the recipe of the
offline base ``parallel-isolation/base:<suite>``.  A project adds images of
its own in its ``pyproject.toml``::

    [tool.parallel-isolation.images.my-services]
    ref = "my-services:latest"          # the tag to build
    context = "services"                # build context, relative to the rootdir
    dockerfile = "services/Dockerfile"  # default: <context>/Dockerfile
    public-base = "python:3.11-slim"    # BASE_IMAGE when a registry answers

Every Dockerfile takes ``BASE_IMAGE`` as a build argument: the offline base
(Debian with python3, mosquitto and paho-mqtt) or the image's public base.
"""

from __future__ import annotations

import hashlib
import json
import re
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from parallel_isolation.images.errors import ImagesError
from parallel_isolation.ownership import IMAGE_LABEL, LABEL_PREFIX
from parallel_isolation.project import TOOL_TABLE, Project, ProjectError
from parallel_isolation.settings import DEFAULT_BROKER_IMAGE

__all__ = [
    "ASSETS_DIR",
    "BASE_REF_LABEL",
    "BASE_REPOSITORY",
    "IMAGE_LABEL",
    "INPUTS_HASH_LABEL",
    "MOSQUITTO_IMAGE",
    "SOURCE_LABEL",
    "BaseRecipe",
    "ImageSpec",
    "base_recipe",
    "broker_image_spec",
    "image_specs",
    "project_image_specs",
]

INPUTS_HASH_LABEL = LABEL_PREFIX + "inputs-hash"
SOURCE_LABEL = LABEL_PREFIX + "image-source"
BASE_REF_LABEL = LABEL_PREFIX + "base-image"

BASE_REPOSITORY = "parallel-isolation/base"
MOSQUITTO_IMAGE = DEFAULT_BROKER_IMAGE

ASSETS_DIR = Path(__file__).resolve().with_name("assets")

# Bump when the way the base tree is made (strip rules, import changes) changes
# in a way that should rebuild existing base images.
_BASE_BUILD_VERSION = 2  # bumped when the labels change (image marker, not the tool label)
_REF_RE = re.compile(r"[a-z0-9][a-z0-9._/-]*(:[A-Za-z0-9_][A-Za-z0-9._-]{0,127})?")
_IMAGE_KEYS = frozenset({"ref", "context", "dockerfile", "public-base"})


@dataclass(frozen=True)
class BaseRecipe:
    """What goes into the debootstrap base image (``assets/base/recipe.toml``)."""

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
    """An image built from a Dockerfile with a ``BASE_IMAGE`` build argument."""

    key: str
    ref: str
    context: Path
    dockerfile: Path
    public_base: str
    origin: str = "parallel-isolation"

    @property
    def dockerfile_in_context(self) -> str:
        return self.dockerfile.relative_to(self.context).as_posix()


def base_recipe() -> BaseRecipe:
    """The recipe of the offline base image, shipped with the package."""
    return BaseRecipe.load(ASSETS_DIR / "base" / "recipe.toml")


def broker_image_spec() -> ImageSpec:
    """The broker image of the Docker backend, built from the package's own recipe."""
    context = ASSETS_DIR / "mosquitto"
    return ImageSpec(
        "mosquitto", MOSQUITTO_IMAGE, context, context / "Dockerfile", "debian:bookworm-slim"
    )


def project_image_specs(project: Project) -> list[ImageSpec]:
    """The images ``[tool.parallel-isolation.images]`` of ``project`` declares, in file order."""
    try:
        table = project.tool_section("images")
    except ProjectError as error:
        raise ImagesError(str(error)) from None
    return [_project_spec(project, key, entry) for key, entry in table.items()]


def _project_spec(project: Project, key: str, entry: Any) -> ImageSpec:
    where = f"{project.pyproject}: [tool.{TOOL_TABLE}.images.{key}]"
    if not isinstance(entry, Mapping):
        msg = f"{where} must be a table with ref and context"
        raise ImagesError(msg)
    unknown = sorted(set(entry) - _IMAGE_KEYS)
    if unknown:
        msg = (
            f"{where}: unknown key(s) {', '.join(unknown)}; known: {', '.join(sorted(_IMAGE_KEYS))}"
        )
        raise ImagesError(msg)
    values: dict[str, str] = {}
    for name in _IMAGE_KEYS:
        value = entry.get(name)
        if value is not None and (not isinstance(value, str) or not value.strip()):
            msg = f"{where}: {name} must be a non-empty string, got {value!r}"
            raise ImagesError(msg)
        if value is not None:
            values[name] = value.strip()
    for required in ("ref", "context"):
        if required not in values:
            msg = f"{where}: {required} is missing"
            raise ImagesError(msg)
    if not _REF_RE.fullmatch(values["ref"]):
        msg = f"{where}: ref {values['ref']!r} is not an image reference like name:tag"
        raise ImagesError(msg)
    if values["ref"] == MOSQUITTO_IMAGE or values["ref"].startswith(BASE_REPOSITORY + ":"):
        msg = f"{where}: ref {values['ref']!r} is the library's own image; choose another name"
        raise ImagesError(msg)
    context = (project.rootdir / values["context"]).resolve()
    dockerfile = (
        project.rootdir / values.get("dockerfile", values["context"] + "/Dockerfile")
    ).resolve()
    if not context.is_dir():
        msg = f"{where}: context {values['context']!r} is not a directory under {project.rootdir}"
        raise ImagesError(msg)
    if context not in dockerfile.parents:
        msg = f"{where}: dockerfile {dockerfile} must be inside the context {context}"
        raise ImagesError(msg)
    ref = values["ref"] if ":" in values["ref"].rsplit("/", 1)[-1] else values["ref"] + ":latest"
    public = values.get("public-base", "python:3.11-slim")
    return ImageSpec(key, ref, context, dockerfile, public, origin=str(project.pyproject))


def image_specs(project: Project | None = None) -> list[ImageSpec]:
    """Every image to build, in build order: the broker image, then the project's."""
    return [broker_image_spec(), *(project_image_specs(project) if project is not None else [])]
