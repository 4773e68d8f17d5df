#!/usr/bin/env bash
# Step (always): gather JUnit XML, validation JSON/HTML and the runs' logs for upload.
source "$(dirname "$0")/_lib.sh"
out="${1:-artifacts/upload}"
mkdir -p "${out}"
if [[ -d artifacts/ci ]]; then
    cp -r artifacts/ci "${out}/reports"
fi
if [[ -d .isolation/runs ]]; then
    tar -C .isolation -czf "${out}/runs.tar.gz" runs
fi
ls -la "${out}"
