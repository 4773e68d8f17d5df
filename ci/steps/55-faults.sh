#!/usr/bin/env bash
# Step: the fault proofs, one at a time (killed worker and controller, a stopped worker,
# concurrent runs, foreign occupants, a stolen port, a full disk, unsafe suites) and, last,
# a restart of the Docker engine (opt-in: it stops every container on the engine).
source "$(dirname "$0")/_lib.sh"
ISOLATION_FAULTS_RESTART_ENGINE=1 nox -s faults
