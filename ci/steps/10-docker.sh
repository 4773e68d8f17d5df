#!/usr/bin/env bash
# Step: a Docker engine that answers (started here if none runs). Idempotent; root.
source "$(dirname "$0")/_lib.sh"
bash ci/start-docker.sh
