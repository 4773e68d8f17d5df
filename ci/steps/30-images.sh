#!/usr/bin/env bash
# Step: the Docker backend's images (offline build when no registry answers).
source "$(dirname "$0")/_lib.sh"
nox -s images
