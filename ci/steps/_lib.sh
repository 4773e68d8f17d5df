# Shared by the CI step scripts: run from the repository root, find python and nox.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
PYTHON="${PYTHON:-python3}"
nox() { "${PYTHON}" -m nox "$@"; }
