from __future__ import annotations

import os
import socket
import subprocess
import sys

import pytest

from parallel_isolation.identity import (
    Identity,
    Owner,
    normalize_run_id,
    owner_is_alive,
    parse_worker_number,
)
from parallel_isolation.naming import client_id, resource_name, sanitize_name
from parallel_isolation.ownership import (
    LABEL_PREFIX,
    TOOL_LABEL,
    check_user_labels,
    labels_for,
    owner_from_labels,
)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("0123456789abcdef0123456789abcdef", "01234567"),
        ("ABCDEF0123", "abcdef01"),
        ("  deadbeef  ", "deadbeef"),
    ],
)
def test_hex_run_ids_keep_their_head(raw: str, expected: str) -> None:
    assert normalize_run_id(raw) == expected


@pytest.mark.parametrize("raw", ["my run!", "abc", "zzzzzzzzzz"])
def test_other_run_ids_are_hashed_to_8_hex(raw: str) -> None:
    value = normalize_run_id(raw)
    assert len(value) == 8
    assert all(c in "0123456789abcdef" for c in value)
    assert normalize_run_id(raw) == value


def test_empty_run_id_is_an_error() -> None:
    with pytest.raises(ValueError, match="empty"):
        normalize_run_id("  ")


@pytest.mark.parametrize(
    ("worker", "number"), [("master", 0), ("gw0", 0), ("gw7", 7), ("gw12", 12), ("gw130", 130)]
)
def test_worker_numbers(worker: str, number: int) -> None:
    assert parse_worker_number(worker) == number


@pytest.mark.parametrize("worker", ["", "gw", "gw-1", "worker1", "GW1", "gw1a"])
def test_bad_worker_ids(worker: str) -> None:
    with pytest.raises(ValueError, match="neither"):
        parse_worker_number(worker)


def test_identity_resolves_current_owner() -> None:
    ident = Identity.resolve(run_id="feedbeef99", worker_id="gw3")
    assert (ident.run_id, ident.worker_id, ident.worker_number) == ("feedbeef", "gw3", 3)
    assert ident.owner == Owner.current()
    assert ident.owner.is_alive()


def test_dead_pid_is_dead() -> None:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    owner = Owner.of_pid(child.pid)
    child.wait()
    assert not owner.is_alive()


def test_unreaped_zombie_is_dead() -> None:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    owner = Owner.of_pid(child.pid)
    os.waitid(os.P_PID, child.pid, os.WEXITED | os.WNOWAIT)  # exited, deliberately not reaped
    assert not owner.is_alive()
    child.wait()


def test_reused_pid_with_other_start_time_is_dead() -> None:
    me = Owner.current()
    assert not owner_is_alive(me.pid, me.start_time - 100.0, me.host)


def test_owner_on_other_host_counts_as_alive() -> None:
    assert owner_is_alive(999_999_999, 0.0, socket.gethostname() + "-elsewhere")


def test_owner_round_trips_through_dict_and_rejects_garbage() -> None:
    me = Owner.current()
    assert Owner.from_dict(me.as_dict()) == me
    with pytest.raises(ValueError, match="malformed"):
        Owner.from_dict({"pid": "x", "start_time": 1.0, "host": "h"})


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("mqtt-broker-gw0-abcd1234", "mqtt-broker-gw0-abcd1234"),
        ("fire consensus/gw1", "fire-consensus-gw1"),
        ("__weird..name", "weird..name"),
        ("a" * 200, "a" * 128),
        ("ü-name", "name"),
    ],
)
def test_sanitize_name(raw: str, expected: str) -> None:
    assert sanitize_name(raw) == expected


@pytest.mark.parametrize("raw", ["", "///", "_-."])
def test_sanitize_rejects_names_without_usable_characters(raw: str) -> None:
    with pytest.raises(ValueError, match="no usable"):
        sanitize_name(raw)


def test_names_carry_worker_and_run() -> None:
    ident = Identity.resolve(run_id="abcd1234", worker_id="gw5")
    assert resource_name("mqtt-broker", ident) == "mqtt-broker-gw5-abcd1234"
    ids = {client_id("svc", ident, n) for n in range(50)}
    assert len(ids) == 50
    assert all(len(i) <= 64 for i in ids)


def test_labels_are_complete_and_reserved_namespace_refused() -> None:
    ident = Identity.resolve(run_id="abcd1234", worker_id="gw2")
    labels = labels_for(ident, "broker", {"team": "fire"})
    assert labels[TOOL_LABEL] == "parallel-isolation"
    assert labels[LABEL_PREFIX + "run"] == "abcd1234"
    assert labels[LABEL_PREFIX + "worker"] == "gw2"
    assert labels[LABEL_PREFIX + "role"] == "broker"
    assert labels["team"] == "fire"
    assert owner_from_labels(labels) == ident.owner
    with pytest.raises(ValueError, match="reserved prefix"):
        check_user_labels({LABEL_PREFIX + "run": "fake"})
    assert owner_from_labels({"team": "fire"}) is None
