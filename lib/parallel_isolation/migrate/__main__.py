"""``python -m parallel_isolation.migrate``: the migration tool's command line."""

from __future__ import annotations

from parallel_isolation.migrate.cli import main

raise SystemExit(main())
