"""What every scanner receives and returns."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from parallel_isolation.settings import default_state_dir
from parallel_isolation.validate.model import Finding
from parallel_isolation.validate.rundata import RunData

__all__ = ["ScanEnv", "ScanResult", "Scanner"]


@dataclass
class ScanResult:
    """A scanner's findings, notes (said in the report), problems (exit 2) and data."""

    findings: list[Finding] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    section: dict[str, Any] = field(default_factory=dict)


@dataclass
class ScanEnv:
    """The host-side inputs of a validation (injectable for tests)."""

    state_dir: Path | None = None
    docker_timeout: float = 5.0
    scan_processes: bool = True
    now: float = field(default_factory=time.time)
    docker_client: Any = None
    docker_problem: str | None = None
    _docker_tried: bool = False

    def state_path(self, run: RunData) -> Path:
        if self.state_dir is not None:
            return self.state_dir
        configured = run.settings.get("state_dir")
        if isinstance(configured, str) and configured:
            return Path(configured)
        return default_state_dir()

    def docker(self) -> tuple[Any, str | None]:
        """A Docker client and None, or None and why there is none (asked once)."""
        if not self._docker_tried:
            self._docker_tried = True
            if self.docker_client is None and self.docker_problem is None:
                from parallel_isolation.validate.discover import connect

                self.docker_client, self.docker_problem = connect(self.docker_timeout)
        return self.docker_client, self.docker_problem


Scanner = Callable[[RunData, ScanEnv], ScanResult]
