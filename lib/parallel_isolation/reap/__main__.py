"""``python -m parallel_isolation.reap``."""

from __future__ import annotations

import sys

from parallel_isolation.reap.orphans import main

sys.exit(main())
