"""Simulated single-user hardware: a GPIO bank, an accelerator (Coral-style TPU).

Real devices of this kind can be opened by one process at a time; opening a
busy one fails.  :class:`SimulatedDevice` reproduces that with a non-blocking
exclusive file lock on a device file, so tests that share a device without
coordination fail the way they would on the real board.
"""

from __future__ import annotations

import errno
import fcntl
import os
import time
from pathlib import Path
from types import TracebackType

__all__ = ["REAL_DEVICES", "DeviceBusyError", "SimulatedDevice", "real_device_present"]

# Where real hardware shows up on a Raspberry Pi style board.
REAL_DEVICES = {"gpio": Path("/dev/gpiomem"), "coral": Path("/dev/apex_0")}


class DeviceBusyError(RuntimeError):
    """Another process has the device open."""


def real_device_present(kind: str) -> bool:
    path = REAL_DEVICES.get(kind)
    return path is not None and path.exists()


class SimulatedDevice:
    """A device file that only one holder may have open.

    ``operate()`` stands for one hardware operation; it takes
    ``operation_time`` seconds, as the real device would (a simulated
    hardware delay, not a synchronisation guess).
    """

    def __init__(self, path: Path, name: str, *, operation_time: float = 0.05) -> None:
        self.path = path
        self.name = name
        self.operation_time = operation_time
        self.operations = 0
        self._fd: int | None = None

    def open(self) -> SimulatedDevice:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o666)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as error:
            os.close(fd)
            if error.errno in (errno.EAGAIN, errno.EWOULDBLOCK):
                msg = f"{self.name} device {self.path} is busy: another process has it open"
                raise DeviceBusyError(msg) from None
            raise
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self._fd = fd
        return self

    def operate(self, count: int = 1) -> None:
        if self._fd is None:
            msg = f"{self.name} device is not open"
            raise RuntimeError(msg)
        for _ in range(count):
            time.sleep(self.operation_time)  # simulated hardware latency
            self.operations += 1

    def close(self) -> None:
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> SimulatedDevice:
        return self.open()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
