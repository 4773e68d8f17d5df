#!/usr/bin/env bash
# Build the container images of the Docker backend (no-op when they are current).
#
# Runs `python -m parallel_isolation.images build` with $PYTHON (default python3),
# which must have the project's dependencies (docker, filelock, paho-mqtt...).
# The package is taken from this checkout's lib/ even when it is not
# installed; the images are the library's and those pyproject.toml declares.  Needs a running engine (ci/start-docker.sh) and, for the
# offline base image, root and debootstrap (ci/install-system-deps.sh).
#
# Arguments are passed through: e.g. `ci/build-images.sh --force`, `-v`,
# `--source offline`.  Environment: ISOLATION_IMAGE_SOURCE, ISOLATION_DEBIAN_MIRROR,
# ISOLATION_IMAGES_CACHE (see docs/images.md).
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
python="${PYTHON:-python3}"

command -v "${python}" >/dev/null 2>&1 || {
    printf 'build-images: error: %s not found; set PYTHON to a python with the project installed\n' "${python}" >&2
    exit 1
}

export PYTHONPATH="${repo}/lib${PYTHONPATH:+:${PYTHONPATH}}"
cd "${repo}"
exec "${python}" -m parallel_isolation.images build "$@"
