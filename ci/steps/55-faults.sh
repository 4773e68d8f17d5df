#!/usr/bin/env bash
# Step: the fault proofs, one at a time (killed worker, concurrent runs, foreign occupants, unsafe suites).
source "$(dirname "$0")/_lib.sh"
nox -s faults
