"""Where base images come from: a public registry when one answers, else built offline."""

from __future__ import annotations

import os
import threading
import urllib.error
import urllib.request
from typing import Literal, cast

from parallel_isolation.images.errors import ImagesError
from parallel_isolation.images.progress import Progress, Step, no_progress

__all__ = [
    "PROBE_URL_ENV",
    "SOURCE_ENV",
    "SOURCE_SETTINGS",
    "ImageSource",
    "SourceSetting",
    "probe_registry",
    "resolve_source",
    "source_setting",
]

SOURCE_ENV = "ISOLATION_IMAGE_SOURCE"
PROBE_URL_ENV = "ISOLATION_REGISTRY_PROBE_URL"
DEFAULT_PROBE_URL = "https://registry-1.docker.io/v2/"
PROBE_TIMEOUT_S = 3.0

ImageSource = Literal["registry", "offline"]
SourceSetting = Literal["auto", "registry", "offline"]
SOURCE_SETTINGS: tuple[str, ...] = ("auto", "registry", "offline")


def source_setting(source: str | None) -> SourceSetting:
    """``source``, else ``$ISOLATION_IMAGE_SOURCE``, else ``auto``; checked."""
    origin = "argument source"
    if source is None:
        source = os.environ.get(SOURCE_ENV, "auto").strip() or "auto"
        origin = f"environment variable {SOURCE_ENV}"
    if source not in SOURCE_SETTINGS:
        msg = f"{origin} must be one of {', '.join(SOURCE_SETTINGS)}, got {source!r}"
        raise ImagesError(msg)
    return cast("SourceSetting", source)


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
    setting = source_setting(source)
    if setting != "auto":
        return setting
    with Step(progress or no_progress, "probe registry") as step:
        reachable = probe_registry()
        step.result = "reachable: build from public bases" if reachable else "unreachable: offline"
    return "registry" if reachable else "offline"
