"""The Docker backend's images: recipe, inputs hashing, status, build, command line.

The library builds, locally and offline if need be, the broker image from the
recipe it ships and the images a project declares in its ``pyproject.toml``;
nothing is pulled at test time and nothing is ever pushed.

* :mod:`~parallel_isolation.images.recipe` what the images are;
* :mod:`~parallel_isolation.images.inputs` the inputs hash of an image;
* :mod:`~parallel_isolation.images.status` whether each image is current (the one rule);
* :mod:`~parallel_isolation.images.build` building what is stale;
* :mod:`~parallel_isolation.images.rootfs` the offline base (debootstrap);
* :mod:`~parallel_isolation.images.apt` the host's Debian mirror;
* :mod:`~parallel_isolation.images.registry` registry probe and image source;
* :mod:`~parallel_isolation.images.cli` ``parallel-isolation images``.
"""

from __future__ import annotations

from parallel_isolation.containers.engine import EngineUnavailableError
from parallel_isolation.images.build import (
    CACHE_ENV,
    ImageResult,
    build_images,
    default_cache_dir,
    project_image_check,
)
from parallel_isolation.images.errors import ImagesError, MirrorNotFoundError, StepError
from parallel_isolation.images.inputs import ContextFile, compute_inputs_hash, context_files
from parallel_isolation.images.progress import ProgressEvent, text_progress
from parallel_isolation.images.recipe import (
    BASE_REPOSITORY,
    IMAGE_LABEL,
    INPUTS_HASH_LABEL,
    MOSQUITTO_IMAGE,
    BaseRecipe,
    ImageSpec,
    image_specs,
)
from parallel_isolation.images.registry import SOURCE_ENV, probe_registry, resolve_source
from parallel_isolation.images.status import ImagesReport, ImageStatus, images_status

__all__ = [
    "BASE_REPOSITORY",
    "CACHE_ENV",
    "IMAGE_LABEL",
    "INPUTS_HASH_LABEL",
    "MOSQUITTO_IMAGE",
    "SOURCE_ENV",
    "BaseRecipe",
    "ContextFile",
    "EngineUnavailableError",
    "ImageResult",
    "ImageSpec",
    "ImageStatus",
    "ImagesError",
    "ImagesReport",
    "MirrorNotFoundError",
    "ProgressEvent",
    "StepError",
    "build_images",
    "compute_inputs_hash",
    "context_files",
    "default_cache_dir",
    "image_specs",
    "images_status",
    "probe_registry",
    "project_image_check",
    "resolve_source",
    "text_progress",
]
