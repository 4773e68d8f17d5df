"""Builders of synthetic run artifacts and owners for the validator's tests."""

from __future__ import annotations

import json
import socket
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from parallel_isolation.identity import Owner
from parallel_isolation.validate import ScanEnv

from ..conftest import make_dead_owner


@dataclass
class WorkerBuilder:
    """Writes one worker's artifacts."""

    run: RunBuilder
    worker_id: str
    owner: Owner
    clock: float

    @property
    def path(self) -> Path:
        return self.run.path / self.worker_id

    def _append(self, name: str, record: dict[str, Any]) -> None:
        self.path.mkdir(parents=True, exist_ok=True)
        with (self.path / name).open("a") as handle:
            handle.write(json.dumps(record) + "\n")

    def event(self, kind: str, at: float | None = None, **fields: Any) -> float:
        ts = self.clock if at is None else at
        self._append("events.jsonl", {"ts": ts, "kind": kind, "worker": self.worker_id, **fields})
        return ts

    def snapshot(self, phase: str, at: float, **fields: Any) -> None:
        record: dict[str, Any] = {
            "worker": self.worker_id,
            "ts": at,
            "phase": phase,
            "test": None,
            "pid": self.owner.pid,
            "rss": 50_000_000,
            "threads": 2,
            "py_threads": 1,
            "fds": 12,
            "sockets": 0,
            "children": [],
            "cost_ms": 0.1,
        }
        if phase.startswith("session"):
            record.update(listening=[], thread_names=["MainThread"], owner=self.owner.as_dict())
        record.update(fields)
        self._append("snapshots.jsonl", record)

    def start(self) -> None:
        self.event(
            "worker_started",
            at=self.clock,
            run=self.run.run_id,
            pid=self.owner.pid,
            owner_start=self.owner.start_time,
            host=self.owner.host,
            backend="process",
            namespace=f"test/{self.run.run_id}/{self.worker_id}",
        )
        self.snapshot("session_start", self.clock)

    def test(
        self,
        nodeid: str,
        seconds: float = 1.0,
        outcome: str = "passed",
        expect: list[str] | None = None,
        **extra: Any,
    ) -> tuple[float, float]:
        start = self.clock + 0.01
        self.event("test_started", at=start, test=nodeid, **({"expect": expect} if expect else {}))
        end = start + seconds
        self.event(
            "test_finished",
            at=end,
            test=nodeid,
            outcome=outcome,
            duration=seconds,
            leaks=0,
            overhead_ms=0.5,
            **extra,
        )
        self.clock = end + 0.01
        return start, end

    def finish(self, **snapshot: Any) -> None:
        self.event("worker_finished", at=self.clock, errors=[])
        self.snapshot("session_end", self.clock + 0.01, **snapshot)
        self.clock += 0.02

    def log(self, name: str, lines: list[str]) -> Path:
        logs = self.path / "logs"
        logs.mkdir(parents=True, exist_ok=True)
        path = logs / name
        with path.open("a") as handle:
            handle.write("\n".join(lines) + "\n")
        return path

    def crosstalk(self, topic: str, at: float, payload: str = "x") -> None:
        self._append(
            "crosstalk.jsonl",
            {
                "ts": at,
                "topic": topic,
                "qos": 0,
                "retain": False,
                "size": len(payload),
                "payload": payload,
            },
        )


@dataclass
class RunBuilder:
    """Writes a run directory under ``root``."""

    root: Path
    run_id: str = field(default_factory=lambda: uuid.uuid4().hex[:8])
    started: float = field(default_factory=lambda: time.time() - 600)

    @property
    def path(self) -> Path:
        return self.root / self.run_id

    def worker(self, worker_id: str, owner: Owner) -> WorkerBuilder:
        builder = WorkerBuilder(self, worker_id, owner, self.started)
        builder.start()
        return builder

    def record(
        self, exitstatus: int = 0, workers: dict[str, Any] | None = None, **settings: Any
    ) -> None:
        self.path.mkdir(parents=True, exist_ok=True)
        data = {
            "run_id": self.run_id,
            "role": "controller",
            "controller": make_dead_owner().as_dict(),
            "started": self.started,
            "finished": self.started + 60,
            "exitstatus": exitstatus,
            "settings": {"backend": "process", "state_dir": "", **settings},
            **({"workers": workers} if workers is not None else {}),
        }
        (self.path / "run.json").write_text(json.dumps(data))
        (self.root / "latest").write_text(self.run_id + "\n")


@pytest.fixture
def run_builder(tmp_path: Path) -> RunBuilder:
    return RunBuilder(tmp_path / "runs")


@pytest.fixture
def scan_env(tmp_path: Path) -> ScanEnv:
    """No Docker, no host process scan, a private state dir."""
    state = tmp_path / "state"
    state.mkdir()
    return ScanEnv(state_dir=state, docker_problem="disabled in this test", scan_processes=False)


LocalTime = Callable[[float], str]


@pytest.fixture
def mosquitto_time() -> LocalTime:
    """Format an epoch like mosquitto's ``log_timestamp_format %Y-%m-%dT%H:%M:%S`` (local)."""
    return lambda ts: time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(ts))


@pytest.fixture
def service_time() -> LocalTime:
    """Format an epoch like the services' structured log (UTC, milliseconds)."""

    def fmt(ts: float) -> str:
        return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ts)) + f".{int(ts % 1 * 1000):03d}Z"

    return fmt


HOST = socket.gethostname()
