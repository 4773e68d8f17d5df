#!/usr/bin/env bash
# Step (always, also after a failure): remove what dead runs left behind - only ours.
source "$(dirname "$0")/_lib.sh"
nox -s cleanup-orphans
