"""ApiSlots: the host-wide counting semaphore in front of heavy Docker API calls (no engine)."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from parallel_isolation.containers.engine import ContainerError
from parallel_isolation.containers.slots import API_SLOTS_ENV, ApiSlots


def test_holders_beyond_the_slot_count_wait_for_a_release(tmp_path: Path) -> None:
    slots = ApiSlots(tmp_path, 2)
    inside: list[int] = []
    changed = threading.Condition()
    release = threading.Event()

    def hold(index: int) -> None:
        with slots.hold(f"holder {index}"):
            with changed:
                inside.append(index)
                changed.notify_all()
            release.wait(10)

    def entered(count: int, timeout: float) -> bool:
        with changed:
            return changed.wait_for(lambda: len(inside) >= count, timeout)

    threads = [threading.Thread(target=hold, args=(i,)) for i in range(3)]
    for thread in threads:
        thread.start()
    try:
        assert entered(2, 5)
        assert not entered(3, 0.3), f"a third holder got in with two slots: {inside}"
    finally:
        release.set()
    assert entered(3, 5)
    for thread in threads:
        thread.join(5)


def test_a_slot_held_too_long_is_a_clear_error(tmp_path: Path) -> None:
    first, second = ApiSlots(tmp_path, 1), ApiSlots(tmp_path, 1, timeout=0.2)
    with (
        first.hold("first"),
        pytest.raises(ContainerError, match=r"all 1 Docker API slots"),
        second.hold("second"),
    ):
        pass  # pragma: no cover


def test_zero_slots_disable_the_limit(tmp_path: Path) -> None:
    slots = ApiSlots(tmp_path / "unused", 0)
    with slots.hold("a"), slots.hold("b"):
        pass
    assert not (tmp_path / "unused").exists()


@pytest.mark.parametrize(("raw", "count"), [("", 8), ("0", 0), ("12", 12)])
def test_slot_count_from_the_environment(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, raw: str, count: int
) -> None:
    monkeypatch.setenv(API_SLOTS_ENV, raw)
    assert ApiSlots.from_env(tmp_path).count == count


@pytest.mark.parametrize("raw", ["many", "-1"])
def test_bad_slot_count_names_the_variable(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, raw: str
) -> None:
    monkeypatch.setenv(API_SLOTS_ENV, raw)
    with pytest.raises(ValueError, match=API_SLOTS_ENV if raw == "many" else ">= 0"):
        ApiSlots.from_env(tmp_path)
