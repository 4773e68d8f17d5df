#!/usr/bin/env bash
# Step: the integration suite under xdist on one backend; the session validates that run
# and ends with its two verdicts (tests, isolation).
#   60-integration.sh [auto|process|embedded|docker] [extra pytest args...]
source "$(dirname "$0")/_lib.sh"
backend="${1:-auto}"
shift || true
nox -s integration-parallel -- --isolation-backend "${backend}" "$@"
