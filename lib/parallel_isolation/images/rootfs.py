"""The offline base image's tree: debootstrap from the host's mirror, pip, strip, pack.

Needs root (debootstrap, chroot) and the ``debootstrap`` package.  The tree
is made in a temporary directory under ``/var/tmp`` (``ISOLATION_IMAGES_TMPDIR``)
and removed afterwards, never through a mount debootstrap left behind.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from parallel_isolation.images.apt import MIRROR_ENV, host_mirror
from parallel_isolation.images.commands import remove_tree, run_command, unmount_all
from parallel_isolation.images.errors import ImagesError, StepError
from parallel_isolation.images.progress import Progress, Step
from parallel_isolation.images.recipe import BaseRecipe
from parallel_isolation.images.registry import SOURCE_ENV

__all__ = ["TMPDIR_ENV", "BuildContext", "make_base_tarball", "strip_rootfs"]

TMPDIR_ENV = "ISOLATION_IMAGES_TMPDIR"
DEBOOTSTRAP_TIMEOUT_S = 1200.0
PIP_TIMEOUT_S = 300.0
TAR_TIMEOUT_S = 1200.0

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


def strip_rootfs(rootfs: Path) -> int:
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


@dataclass
class BuildContext:
    """What every step of one build shares."""

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


def _install_pip_requirements(ctx: BuildContext, recipe: BaseRecipe, rootfs: Path) -> None:
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
    with Step(ctx.progress, "install python packages", recipe.ref, " ".join(recipe.pip)) as step:
        try:
            run_command(step, install, timeout=PIP_TIMEOUT_S, hint=hint)
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
            run_command(step, download, timeout=PIP_TIMEOUT_S, hint=hint)
            run_command(step, install, timeout=PIP_TIMEOUT_S, hint=hint)
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
        lines = run_command(step, compile_and_check, timeout=PIP_TIMEOUT_S, env=_chroot_env())
        step.result += f"; in the image: paho-mqtt {lines[-1] if lines else '?'}"


def _debootstrap(ctx: BuildContext, recipe: BaseRecipe, rootfs: Path) -> None:
    with Step(ctx.progress, "resolve mirror", recipe.ref) as step:
        mirror = host_mirror(recipe.suite)
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
    with Step(ctx.progress, "debootstrap", recipe.ref, message) as step:
        run_command(step, argv, timeout=DEBOOTSTRAP_TIMEOUT_S, hint=hint)


def make_base_tarball(ctx: BuildContext, recipe: BaseRecipe, tarball: Path) -> None:
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
        unmount_all(rootfs)
        with Step(ctx.progress, "strip rootfs", recipe.ref) as step:
            freed = strip_rootfs(rootfs)
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
        with Step(ctx.progress, "pack rootfs", recipe.ref) as step:
            run_command(step, argv, timeout=TAR_TIMEOUT_S)
            partial.replace(tarball)
            step.result = f"{tarball} ({tarball.stat().st_size / 1e6:.1f} MB)"
    finally:
        remove_tree(workdir)
