#!/usr/bin/env bash
# Step: the stranger project (examples/quickstart): the built wheel in its own
# venv, its tests -n 8 on the process and docker backends, then validate and
# cleanup-orphans --dry-run from its directory.
source "$(dirname "$0")/_lib.sh"
nox -s example
