"""Build whatever image is stale; a no-op when all are current.

Offline, the base image is made first (:mod:`~parallel_isolation.images.rootfs`)
and imported; then every Dockerfile image is built through the Engine API
(the legacy builder: no BuildKit needed) with ``BASE_IMAGE`` set.  Builds
serialize on a lock file in the cache directory; a rebuilt image's predecessor
is removed by id when it carries the image marker and nothing uses it.
"""

from __future__ import annotations

import contextlib
import json
import os
import shlex
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, cast

import filelock

from parallel_isolation.images.commands import TAIL_LINES
from parallel_isolation.images.errors import ImagesError, StepError
from parallel_isolation.images.inputs import context_patterns, spec_hash
from parallel_isolation.images.local import LocalImage, connect, inspect
from parallel_isolation.images.progress import Progress, ProgressEvent, Step, no_progress
from parallel_isolation.images.recipe import (
    BASE_REF_LABEL,
    IMAGE_LABEL,
    INPUTS_HASH_LABEL,
    SOURCE_LABEL,
    BaseRecipe,
    ImageSpec,
    base_recipe,
    image_specs,
)
from parallel_isolation.images.registry import (
    SOURCE_ENV,
    ImageSource,
    resolve_source,
    source_setting,
)
from parallel_isolation.images.rootfs import BuildContext, make_base_tarball
from parallel_isolation.images.status import ImageStatus, base_status, images_status
from parallel_isolation.ownership import TOOL_LABEL, TOOL_VALUE
from parallel_isolation.project import Project

__all__ = [
    "CACHE_ENV",
    "ImageResult",
    "build_images",
    "default_cache_dir",
    "project_image_check",
]

CACHE_ENV = "ISOLATION_IMAGES_CACHE"
BUILD_TIMEOUT_S = 1200.0
LOCK_TIMEOUT_S = 1800.0


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


def _remember_superseded(ctx: BuildContext, previous: LocalImage | None, ref: str) -> None:
    if previous is None:
        return
    now = inspect(ctx.client, ref)
    replaced = now is not None and now.image_id != previous.image_id
    ours = TOOL_VALUE in (previous.labels.get(IMAGE_LABEL), previous.labels.get(TOOL_LABEL))
    if replaced and ours:
        ctx.superseded.append(previous.image_id)


def _build_base(ctx: BuildContext, recipe: BaseRecipe) -> ImageResult:
    started = time.monotonic()
    previous = inspect(ctx.client, recipe.ref)
    tarball = ctx.cache_dir / f"base-{recipe.suite}-{recipe.inputs_hash[:16]}.tar"
    for stale in ctx.cache_dir.glob(f"base-{recipe.suite}-*.tar*"):
        if stale != tarball:
            stale.unlink()
    if tarball.is_file() and not ctx.force:
        ctx.progress(ProgressEvent("debootstrap", "skip", f"using cached {tarball}", recipe.ref))
    else:
        make_base_tarball(ctx, recipe, tarball)
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

    with Step(ctx.progress, "import base image", recipe.ref) as step:
        try:
            ctx.client.api.import_image_from_file(
                str(tarball), repository=repository, tag=tag, changes=changes
            )
        except DockerException as exc:
            raise StepError("import base image", command, str(exc)) from exc
        local = inspect(ctx.client, recipe.ref)
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


def _ensure_public_base(ctx: BuildContext, ref: str) -> LocalImage:
    local = inspect(ctx.client, ref)
    if local is not None:
        return local
    from docker.errors import DockerException

    repository, _, tag = ref.rpartition(":")
    with Step(ctx.progress, "pull base", ref) as step:
        try:
            for event in ctx.client.api.pull(repository, tag=tag, stream=True, decode=True):
                if "error" in event:
                    raise StepError("pull base", f"docker pull {ref}", str(event["error"]))
                if "status" in event and "id" not in event:
                    step.log(str(event["status"]))
        except DockerException as exc:
            hint = f"set {SOURCE_ENV}=offline to build from the debootstrap base instead"
            raise StepError("pull base", f"docker pull {ref}", str(exc), hint=hint) from exc
    pulled = inspect(ctx.client, ref)
    if pulled is None:
        raise StepError("pull base", f"docker pull {ref}", "image missing after the pull")
    return pulled


def _build_spec(
    ctx: BuildContext, spec: ImageSpec, source: ImageSource, base_ref: str, base_id: str
) -> ImageResult:
    started = time.monotonic()
    inputs_hash = spec_hash(spec, base_ref, base_id)
    previous = inspect(ctx.client, spec.ref)
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
    with Step(ctx.progress, f"build {spec.key}", spec.ref, f"FROM {base_ref}") as step:
        context_tar = tar(
            str(spec.context),
            exclude=context_patterns(spec.context),
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
        local = inspect(ctx.client, spec.ref)
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


def _remove_superseded(ctx: BuildContext) -> None:
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


def default_cache_dir() -> Path:
    """``$ISOLATION_IMAGES_CACHE``, else ``$XDG_CACHE_HOME/parallel-isolation/images``.

    One cache per user (``~/.cache`` without ``XDG_CACHE_HOME``), so that two
    projects building the library's images share the lock and the tarballs.
    """
    configured = os.environ.get(CACHE_ENV, "").strip()
    if configured:
        return Path(configured)
    xdg = os.environ.get("XDG_CACHE_HOME", "").strip()
    return (Path(xdg) if xdg else Path.home() / ".cache") / "parallel-isolation" / "images"


def build_images(
    *,
    force: bool = False,
    source: str | None = None,
    progress: Progress | None = None,
    project: Project | None = None,
    cache_dir: Path | None = None,
    client: Any | None = None,
) -> list[ImageResult]:
    """Build whatever image is missing or stale; a no-op (< 2 s) when all are current.

    The images are the library's broker image and those ``project`` declares
    (see :mod:`~parallel_isolation.images.recipe`).  ``force`` rebuilds
    everything, ignoring the base tarball cache and Docker's layer cache.
    ``source`` is ``auto`` (default, or ``$ISOLATION_IMAGE_SOURCE``),
    ``registry`` or ``offline``.  Returns one result per image in build order
    (the base image only when built or used offline).
    """
    report = progress or no_progress
    setting = source_setting(source)
    cache = cache_dir or default_cache_dir()
    cache.mkdir(parents=True, exist_ok=True)
    recipe = base_recipe()
    engine = connect(client)
    specs = image_specs(project)

    def current() -> list[ImageResult] | None:
        state = images_status(source=setting, project=project, client=engine)
        if force or not state.up_to_date:
            return None
        base = [state.base] if state.uses_base else []
        return [_result_from_status(s) for s in [*base, *state.images]]

    with Step(report, "check images") as step:
        done = current()
        step.result = "all up to date" if done else "something to build"
    if done is not None:
        return done

    with _build_lock(cache, report):
        done = current()  # a concurrent build may have finished meanwhile
        if done is not None:
            return done
        ctx = BuildContext(cache, engine, report, force)
        chosen = resolve_source(setting, report)
        results: list[ImageResult] = []
        base_id = ""
        if chosen == "offline":
            base = base_status(engine, recipe)
            if force or not base.up_to_date:
                results.append(_build_base(ctx, recipe))
            else:
                report(ProgressEvent("debootstrap", "skip", "base image up to date", recipe.ref))
                results.append(_result_from_status(base))
            base_id = results[-1].image_id
        for spec in specs:
            if chosen == "offline":
                base_ref = recipe.ref
            else:
                base_ref = spec.public_base
                base_id = _ensure_public_base(ctx, base_ref).image_id
            results.append(_build_spec(ctx, spec, chosen, base_ref, base_id))
        _remove_superseded(ctx)
        return results


def project_image_check(
    events: Any | None = None, project: Project | None = None, record: Path | None = None
) -> Callable[[Any], None]:
    """The container manager's ``image_check``: the images current before their first use.

    Asks :func:`~parallel_isolation.images.status.images_status` once (the same
    rule as ``parallel-isolation images status``) and runs :func:`build_images`
    when an image is missing or stale; a failed check or build is an
    :class:`~parallel_isolation.containers.manager.ImageMissingError` naming
    the stale images.

    ``record`` (the run's ``images-checked.json``): once one worker of a run
    found the images current it writes the file, and the run's other workers
    take its word instead of hashing the build inputs again.  The workers of a
    run start together, so the check holds a lock next to the record: the
    first checks, the others wait for its verdict.
    """

    def check(client: Any) -> None:
        if record is None:
            check_now(client)
            return
        record.parent.mkdir(parents=True, exist_ok=True)
        lock = filelock.FileLock(str(record.with_name(f"{record.name}.lock")))
        try:
            lock.acquire(timeout=RECORD_LOCK_WAIT_S)
        except filelock.Timeout:
            check_now(client)  # the first worker is stuck: check for ourselves
            return
        try:
            check_now(client)
        finally:
            lock.release()

    def check_now(client: Any) -> None:
        from parallel_isolation.containers.manager import IMAGE_HINT, ImageMissingError

        started = time.monotonic()
        if record is not None and record.exists():
            if events is not None:
                events.emit(
                    "images_checked",
                    stale=[],
                    built=[],
                    seconds=round(time.monotonic() - started, 3),
                    reused=record.name,
                )
            return
        try:
            report = images_status(client=client, project=project)
        except ImagesError as error:
            msg = f"cannot check the container images: {error}"
            raise ImageMissingError(msg) from None
        stale = [f"{s.ref}: {s.reason}" for s in report.stale]
        built: list[str] = []
        if stale:
            try:
                results = build_images(client=client, project=project)
            except ImagesError as error:
                msg = (
                    f"the container images are not current ({'; '.join(stale)}) and building "
                    f"them failed: {error}\n{IMAGE_HINT[0].upper()}{IMAGE_HINT[1:]}"
                )
                raise ImageMissingError(msg) from error
            built = [r.ref for r in results if r.action != "up-to-date"]
        if record is not None:
            _write_record(record, [s.ref for s in report.images], built)
        if events is not None:
            events.emit(
                "images_checked",
                stale=stale,
                built=built,
                seconds=round(time.monotonic() - started, 3),
            )

    return check


RECORD_LOCK_WAIT_S = 120.0


def _write_record(record: Path, current: list[str], built: list[str]) -> None:
    """Atomically; only a saving, so a failure to write leaves each worker checking itself."""
    with contextlib.suppress(OSError):
        record.parent.mkdir(parents=True, exist_ok=True)
        partial = record.with_name(f"{record.name}.{os.getpid()}.tmp")
        partial.write_text(json.dumps({"images": current, "built": built}, indent=1) + "\n")
        partial.replace(record)
