"""``python -m parallel_isolation.validate [runs] ...``."""

from __future__ import annotations

import sys

from parallel_isolation.validate.cli import PROG, main, runs_main

if __name__ == "__main__":
    args = sys.argv[1:]
    if args[:1] == ["runs"]:
        sys.exit(runs_main(args[1:], prog=f"{PROG} runs"))
    sys.exit(main(args))
