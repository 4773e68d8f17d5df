#!/usr/bin/env bash
# Step: nox, which installs everything else into its session venvs.
source "$(dirname "$0")/_lib.sh"
"${PYTHON}" -m pip install -q nox
