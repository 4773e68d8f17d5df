from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from parallel_isolation.validate.merge import main as merge_main
from parallel_isolation.validate.merge import merge_reports


def _report(
    tmp_path: Path,
    name: str,
    run: str,
    code: int,
    counts: dict[str, int] | None = None,
    tests: dict[str, object] | None = None,
) -> Path:
    path = tmp_path / name
    verdict = {0: "clean", 1: "findings"}.get(code, "error")
    path.write_text(
        json.dumps(
            {
                "run_id": run,
                "exit_code": code,
                "verdict": verdict,
                "counts": counts or {},
                "findings": [],
                **({"tests": tests} if tests is not None else {}),
            }
        )
    )
    return path


def test_tests_verdicts_are_merged_beside_isolation(tmp_path: Path) -> None:
    passed = {"verdict": "passed", "counts": {"passed": 10, "skipped": 1}}
    failed = {"verdict": "failed", "counts": {"passed": 8, "failed": 2}}
    merged = merge_reports(
        [
            _report(tmp_path, "a.json", "aaaa0001", 0, tests=passed),
            _report(tmp_path, "b.json", "bbbb0002", 0, tests=failed),
        ]
    )
    assert merged.exit_code == 0, "the exit code stays the isolation verdict's"
    assert merged.tests_verdict == "failed"
    assert merged.test_counts() == {"passed": 18, "skipped": 1, "failed": 2}
    both = merge_reports([_report(tmp_path, "c.json", "cccc0003", 0, tests=passed)])
    assert both.tests_verdict == "passed"
    old = merge_reports([_report(tmp_path, "d.json", "dddd0004", 0)])
    assert old.tests_verdict == "unknown", "a report without a tests verdict"


@pytest.mark.parametrize(
    ("codes", "merged"),
    [([0, 0], 0), ([0, 1], 1), ([1, 2], 2), ([2, 0], 2), ([0], 0)],
)
def test_worst_exit_code_wins(tmp_path: Path, codes: list[int], merged: int) -> None:
    paths = [_report(tmp_path, f"r{i}.json", f"run{i:05d}", code) for i, code in enumerate(codes)]
    assert merge_reports(paths).exit_code == merged


def test_counts_add_up(tmp_path: Path) -> None:
    paths = [
        _report(tmp_path, "a.json", "aaaa0001", 1, {"error": 1, "info": 2}),
        _report(tmp_path, "b.json", "bbbb0002", 0, {"info": 1}),
    ]
    assert merge_reports(paths).counts() == {"error": 1, "warning": 0, "info": 3}


def test_shared_run_id_is_a_finding(tmp_path: Path) -> None:
    paths = [_report(tmp_path, "a.json", "same0001", 0), _report(tmp_path, "b.json", "same0001", 0)]
    merged = merge_reports(paths)
    assert merged.exit_code == 1
    assert "shared by 2 shards" in merged.problems[0]


@pytest.mark.parametrize("content", ["not json", "[]", '{"verdict": "clean"}'])
def test_unreadable_report_means_could_not_validate(tmp_path: Path, content: str) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text(content)
    merged = merge_reports([_report(tmp_path, "ok.json", "okok0001", 0), bad])
    assert merged.exit_code == 2
    assert merged.problems


def test_no_reports_is_an_error() -> None:
    assert merge_reports([]).exit_code == 2


def test_cli_prints_plain_lines_in_natural_order(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    paths = [
        _report(tmp_path, f"validate-shard{n}.json", f"run{n:05d}", 0, {"info": n}) for n in (10, 2)
    ]
    bad = tmp_path / "validate-shard3.json"
    bad.write_text("[red]not json[/red]")
    assert merge_main([str(p) for p in (*paths, bad)]) == 2
    out, err = capsys.readouterr()
    names = [line.split()[0] for line in out.splitlines()[1:-3]]
    assert names == ["validate-shard2.json", "validate-shard10.json"]
    assert out.splitlines()[-1] == "shards: could not validate (exit 2)"
    assert "\x1b[" not in out
    assert "validate-merge: problem:" in err
    assert str(bad) in err


INNER = """
import pytest

@pytest.mark.parametrize("n", range(6))
def test_round_trip(n, mqtt_client):
    mqtt_client.subscribe("shard/x", qos=1)
    mqtt_client.publish("shard/x", str(n), qos=1)
    assert mqtt_client.wait_for("shard/x", timeout=10).payload == str(n).encode()
"""


def test_shards_split_the_suite_and_get_distinct_run_ids(
    pytester: pytest.Pytester, isolation_worker
) -> None:  # type: ignore[no-untyped-def]
    pytester.makepyfile(test_inner=INNER)
    durations = {f"test_inner.py::test_round_trip[{n}]": 1.0 for n in range(6)}
    (pytester.path / ".test_durations").write_text(json.dumps(durations))
    base = 44000 + isolation_worker.identity.worker_number * 500
    runs = []
    for group in (1, 2):
        result = pytester.runpytest_subprocess(
            "-n",
            "2",
            "--splits",
            "2",
            "--group",
            str(group),
            "--testrunuid",
            "cafebabe1234",
            f"--isolation-port-base={base}",
            "-p",
            "no:randomly",
        )
        result.assert_outcomes(passed=3)
        runs.append((pytester.path / ".isolation" / "runs" / "latest").read_text().strip())
    assert runs[0] != runs[1], "shards sharing --testrunuid must not share a run id"
    reports = []
    for run in runs:
        out = pytester.path / f"validate-{run}.json"
        code = subprocess.run(
            [
                sys.executable,
                "-m",
                "parallel_isolation.validate",
                "--run",
                run,
                "--artifacts",
                str(pytester.path / ".isolation" / "runs"),
                "--format",
                "json",
                "-o",
                str(out),
            ],
            check=False,
        ).returncode
        assert code == 0
        reports.append(out)
    merged = merge_reports(reports)
    assert (merged.exit_code, merged.verdict) == (0, "clean")
