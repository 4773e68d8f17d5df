#!/usr/bin/env bash
# Step: the integration suite under xdist on one backend, then validate that run.
#   60-integration.sh [auto|process|embedded|docker] [extra pytest args...]
source "$(dirname "$0")/_lib.sh"
backend="${1:-auto}"
shift || true
nox -s integration-parallel -- --isolation-backend "${backend}" "$@"
nox -s validate
