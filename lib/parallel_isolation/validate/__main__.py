"""``python -m parallel_isolation.validate``."""

from __future__ import annotations

import sys

from parallel_isolation.validate.cli import main

if __name__ == "__main__":
    sys.exit(main())
