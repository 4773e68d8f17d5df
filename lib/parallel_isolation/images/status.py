"""Are the images current?  One rule, used by every front end.

``parallel-isolation images status``, ``images build`` (which builds only
when something is stale), ``invoke images --status`` and the container
manager's check before a test all call :func:`images_status` and read
:attr:`ImagesReport.stale`: the images to build (the broker image and the
project's) that are missing or do not match their inputs.

The offline base image is reported too, but never stale on its own: an image
built from an outdated or missing base is itself stale ("offline base ... is
recipe changed"), and images built from public bases do not need it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from parallel_isolation.images.inputs import spec_hash
from parallel_isolation.images.local import connect, inspect
from parallel_isolation.images.recipe import (
    BASE_REF_LABEL,
    INPUTS_HASH_LABEL,
    SOURCE_LABEL,
    BaseRecipe,
    ImageSpec,
    base_recipe,
    image_specs,
)
from parallel_isolation.images.registry import SourceSetting, source_setting
from parallel_isolation.project import Project

__all__ = ["ImageStatus", "ImagesReport", "base_status", "image_status", "images_status"]


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
class ImagesReport:
    """The offline base's status and each buildable image's, in build order."""

    base: ImageStatus
    images: tuple[ImageStatus, ...]

    @property
    def stale(self) -> list[ImageStatus]:
        """The images to build: missing, or not matching their inputs."""
        return [status for status in self.images if not status.up_to_date]

    @property
    def up_to_date(self) -> bool:
        return not self.stale

    @property
    def uses_base(self) -> bool:
        """Whether some image was built from the offline base."""
        return any(status.source == "offline" for status in self.images)

    def rows(self) -> list[ImageStatus]:
        """The base first, then the images (for tables and JSON)."""
        return [self.base, *self.images]


def base_status(client: Any, recipe: BaseRecipe) -> ImageStatus:
    """The offline base image against its recipe."""
    local = inspect(client, recipe.ref)
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


def image_status(
    client: Any, spec: ImageSpec, setting: SourceSetting, base: ImageStatus
) -> ImageStatus:
    """One Dockerfile image against its inputs (and, when built offline, the base)."""
    local = inspect(client, spec.ref)
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
    base_local = inspect(client, base_ref)
    if base_local is None:
        return stale(f"its base {base_ref} is gone")
    expected = spec_hash(spec, base_ref, base_local.image_id)
    if expected != current:
        return stale("inputs changed", expected)
    return ImageStatus(
        spec.ref, True, True, "up to date", local.image_id, local.size, source, current, expected
    )


def images_status(
    *,
    source: str | None = None,
    project: Project | None = None,
    client: Any | None = None,
) -> ImagesReport:
    """Status of the offline base and of every image to build; no network, no builds.

    ``project`` adds the images its ``pyproject.toml`` declares (None: the
    library's broker image only).  ``source`` (or ``$ISOLATION_IMAGE_SOURCE``)
    of ``registry``/``offline`` marks images built from the other source as
    stale; ``auto`` accepts both.
    """
    setting = source_setting(source)
    specs = image_specs(project)
    engine = connect(client)
    base = base_status(engine, base_recipe())
    return ImagesReport(base, tuple(image_status(engine, spec, setting, base) for spec in specs))
