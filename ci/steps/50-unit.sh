#!/usr/bin/env bash
# Step: unit, migration-tool and fault-proof tests (JUnit XML in artifacts/ci).
source "$(dirname "$0")/_lib.sh"
nox -s unit
