#!/usr/bin/env bash
# Step: ruff and mypy.
source "$(dirname "$0")/_lib.sh"
nox -s lint
