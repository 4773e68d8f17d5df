"""``python -m parallel_isolation.images``."""

from __future__ import annotations

import sys

from parallel_isolation.images.core import main

sys.exit(main())
