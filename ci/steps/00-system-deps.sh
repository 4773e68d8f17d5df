#!/usr/bin/env bash
# Step: system packages (docker.io, mosquitto, debootstrap, chromium, ...). Idempotent; root.
source "$(dirname "$0")/_lib.sh"
bash ci/install-system-deps.sh
