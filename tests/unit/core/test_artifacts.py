"""The artifact writers: whole lines, never a line glued to a fragment, never an exception.

A full filesystem is imitated with ``RLIMIT_FSIZE`` in a child process (the
write that crosses the limit is cut short, the following ones are refused),
so the writers meet exactly what a full disk does to them.
"""

from __future__ import annotations

import json
import stat
import subprocess
import sys
import textwrap
from pathlib import Path

from parallel_isolation.artifacts import (
    EventLog,
    JsonlWriter,
    RunArtifacts,
    encode_line,
    make_private_dir,
    read_jsonl_lines,
)
from parallel_isolation.identity import Identity

FULL_DISK = textwrap.dedent(
    """
    import resource, signal, sys
    from pathlib import Path
    from parallel_isolation.artifacts import JsonlWriter

    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a refused write, not a killed process
    path = Path(sys.argv[1])
    writer = JsonlWriter(path)
    for n in range(3):
        assert writer.append({"n": n, "phase": "before"})
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    resource.setrlimit(resource.RLIMIT_FSIZE, (path.stat().st_size + 20, hard))
    results = [writer.append({"n": n, "phase": "full", "pad": "x" * 40}) for n in range(3)]
    resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))  # space again
    results += [writer.append({"n": n, "phase": "after"}) for n in range(2)]
    print(results, writer.lost, writer.problems())
    """
)


def test_a_write_cut_short_leaves_one_bad_line_and_the_next_records_whole(
    tmp_path: Path,
) -> None:
    path = tmp_path / "events.jsonl"
    done = subprocess.run(
        [sys.executable, "-c", FULL_DISK, str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("[False, False, False, True, True] 3 ["), done.stdout
    assert f"cannot write {path}" in done.stderr  # said once, naming the file
    assert done.stderr.count("cannot write") == 1
    bad: list[tuple[int, str, bool]] = []
    good = [record for _n, record in read_jsonl_lines(path, lambda *b: bad.append(b))]
    assert [(r["n"], r["phase"]) for r in good] == [
        (0, "before"),
        (1, "before"),
        (2, "before"),
        (0, "after"),
        (1, "after"),
    ]
    assert len(bad) == 1, bad  # the fragment of the cut write, on a line of its own
    assert bad[0][1] == '{"n": 0, "phase": "f'  # 20 bytes fitted


def test_a_record_json_cannot_hold_is_kept_as_text() -> None:
    looped: dict[str, object] = {"kind": "odd"}
    looped["self"] = looped
    record = json.loads(encode_line({"kind": "odd", "loop": looped, 3: "not a str key"}))
    assert record["kind"] == "odd"
    assert "unencodable" in record
    assert record["3"] == "not a str key"


def test_an_event_the_disk_refuses_is_counted_not_raised(tmp_path: Path) -> None:
    log = EventLog(tmp_path / "w" / "events.jsonl", "gw0")
    log.emit("first")
    log.path.unlink()
    log.path.mkdir()  # the file cannot be written any more
    log.emit("lost", detail="x")
    log.emit("lost too")
    [problem] = log.problems()
    assert problem.startswith(f"2 record(s) could not be written to {log.path}")


def test_artifacts_are_private(tmp_path: Path) -> None:
    identity = Identity.resolve(run_id="abcd1234", worker_id="gw0")
    artifacts = RunArtifacts(tmp_path / "root" / "runs", identity)
    artifacts.event_log().emit("hello")
    artifacts.write_run_record({"run_id": "abcd1234"})
    for directory in (artifacts.root, artifacts.run_dir, artifacts.worker_dir):
        assert stat.S_IMODE(directory.stat().st_mode) == 0o700, directory
    for path in (artifacts.events_path, artifacts.run_dir / "run.json", artifacts.root / "latest"):
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
    assert stat.S_IMODE(make_private_dir(tmp_path / "a" / "b").parent.stat().st_mode) == 0o700
    writer = JsonlWriter(tmp_path / "a" / "b" / "x.jsonl")
    assert writer.append({"ok": True})
    assert stat.S_IMODE(writer.path.stat().st_mode) == 0o600
