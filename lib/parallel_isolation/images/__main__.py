"""``python -m parallel_isolation.images`` (the same as ``parallel-isolation images``)."""

from __future__ import annotations

import sys

from parallel_isolation.images.cli import main

sys.exit(main(prog="python -m parallel_isolation.images"))
