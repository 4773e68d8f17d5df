"""Soak: the integration suite again and again, per backend, each run validated and checked for leftovers.

Run: ``python ci/soak.py --runs 20`` (or ``nox -s soak -- --runs 20``).

Each run is ``pytest tests/integration -n 12`` with the repository's suite
arguments (pyproject ``[tool.parallel-isolation-dev]``) on one backend, under
a run id of its own, then

* ``python -m parallel_isolation.validate --run <id> --format json``: its
  verdict and every finding of severity warning or worse;
* ``python -m parallel_isolation.reap --dry-run --run <id> --format json``:
  whatever of that run still exists after it ended (processes, containers,
  networks, reservations, temp dirs) is a leftover.

A run passes when pytest exits 0, validate says clean with no warning, and
nothing is left over.  One line per run on standard output as it ends, then a
summary per backend: passes, failed tests (by test id, with counts), finding
codes, leftovers.  Everything also goes to a JSON file.  Exit 0 when every
run passed, 1 when some did not, 2 when the soak could not run.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
import tomllib
import uuid
import xml.etree.ElementTree as ET
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
_DEV = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["parallel-isolation-dev"]
SUITE_ARGS: list[str] = _DEV["integration-args"]
SUITE_ENV: dict[str, str] = _DEV["integration-env"]
RUN_TIMEOUT_S = 3600


@dataclass
class RunResult:
    """One soak run of one backend."""

    index: int
    backend: str
    run_id: str
    pytest_exit: int
    tests: int = 0
    failed: list[str] = field(default_factory=list)
    validate_exit: int | None = None
    verdict: str = ""
    findings: list[dict[str, Any]] = field(default_factory=list)
    leftovers: list[str] = field(default_factory=list)
    seconds: float = 0.0
    load: float = 0.0
    problem: str = ""

    @property
    def passed(self) -> bool:
        return (
            self.pytest_exit == 0
            and self.validate_exit == 0
            and not self.findings
            and not self.leftovers
            and not self.problem
        )

    def line(self, runs: int) -> str:
        status = "PASS" if self.passed else "FAIL"
        warnings = Counter(f["severity"] for f in self.findings)
        parts = [
            f"{status} run {self.index}/{runs} {self.backend} {self.run_id}:",
            f"pytest exit {self.pytest_exit} ({self.tests} tests, {len(self.failed)} failed),",
            f"validate {self.verdict or '?'} (exit {self.validate_exit},"
            f" {warnings.get('error', 0)} errors, {warnings.get('warning', 0)} warnings),",
            f"leftovers {len(self.leftovers)}, {self.seconds:.0f} s, load {self.load:.1f}",
        ]
        if self.problem:
            parts.append(f"[{self.problem}]")
        return " ".join(parts)


def _env() -> dict[str, str]:
    """Our environment for the suite: without an outer run's variables, with the suite's."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("PYTEST_", "ISOLATION_"))
        or k in {"ISOLATION_STATE_DIR", "ISOLATION_REQUIRE_DOCKER"}
    }
    return {**env, **SUITE_ENV}


def _json_of(argv: list[str]) -> tuple[int, dict[str, Any], str]:
    done = subprocess.run(
        argv, cwd=ROOT, capture_output=True, text=True, timeout=900, check=False, env=_env()
    )
    try:
        data = json.loads(done.stdout)
    except json.JSONDecodeError:
        data = {}
    return done.returncode, data if isinstance(data, dict) else {}, done.stderr[-2000:]


def _junit_failures(path: Path) -> tuple[int, list[str]]:
    """(tests, failed test ids) from a JUnit XML file."""
    root = ET.parse(path).getroot()
    cases = list(root.iter("testcase"))
    failed = []
    for case in cases:
        if case.find("failure") is not None or case.find("error") is not None:
            module = case.get("classname", "").replace(".", "/")
            failed.append(f"{module}.py::{case.get('name', '?')}")
    return len(cases), failed


def soak_run(index: int, backend: str, workers: str, extra: list[str], out: Path) -> RunResult:
    run_id = uuid.uuid4().hex[:8]
    junit = out / f"soak-{backend}-{index:03d}-{run_id}.xml"
    started = time.monotonic()
    argv = [
        sys.executable,
        "-m",
        "pytest",
        "tests/integration",
        *SUITE_ARGS,
        "-q",
        "-n",
        workers,
        f"--isolation-backend={backend}",
        f"--testrunuid={run_id}",
        f"--junitxml={junit}",
        *extra,
    ]
    try:
        done = subprocess.run(
            argv,
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=RUN_TIMEOUT_S,
            env=_env(),
            check=False,
        )
        code = done.returncode
        problem = "" if junit.exists() else f"no JUnit report; pytest said: {done.stdout[-500:]}"
    except subprocess.TimeoutExpired:
        code, problem = -1, f"pytest did not end within {RUN_TIMEOUT_S} s"
    result = RunResult(index, backend, run_id, code, problem=problem)
    result.seconds = time.monotonic() - started
    result.load = os.getloadavg()[0]
    if junit.exists():
        result.tests, result.failed = _junit_failures(junit)
    base = [sys.executable, "-m", "parallel_isolation.validate", "--run", run_id]
    result.validate_exit, report, _ = _json_of([*base, "--format", "json"])
    result.verdict = str(report.get("verdict", ""))
    result.findings = [
        {k: f.get(k) for k in ("severity", "code", "test", "message")}
        for f in report.get("findings", [])
        if f.get("severity") in {"warning", "error"}
    ]
    reap = [sys.executable, "-m", "parallel_isolation.reap", "--dry-run", "--run", run_id]
    _, left, _ = _json_of([*reap, "--format", "json"])
    result.leftovers = [
        f"{d.get('kind')} {d.get('name')} ({d.get('reason')})" for d in left.get("decisions", [])
    ]
    return result


def summary(results: list[RunResult], runs: int) -> list[str]:
    lines = []
    for backend in dict.fromkeys(r.backend for r in results):
        mine = [r for r in results if r.backend == backend]
        passed = sum(r.passed for r in mine)
        failed = Counter(test for r in mine for test in r.failed)
        codes = Counter(f"{f['severity']} {f['code']}" for r in mine for f in r.findings)
        left = sum(len(r.leftovers) for r in mine)
        lines.append(f"{backend}: {passed}/{len(mine)} runs passed (of {runs} asked)")
        lines += [f"  failed {count}x {test}" for test, count in failed.most_common()]
        lines += [f"  finding {count}x {code}" for code, count in codes.most_common()]
        lines.append(f"  leftovers: {left}")
        for r in mine:
            lines += [f"  run {r.index} {r.run_id} left {item}" for item in r.leftovers]
    return lines


def _engine_answers() -> bool:
    docker = shutil.which("docker")
    if docker is None:
        return False
    return (
        subprocess.run([docker, "info"], capture_output=True, timeout=60, check=False).returncode
        == 0
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=20, help="runs per backend [20]")
    parser.add_argument(
        "--backends", default="process,docker", help="comma-separated [process,docker]"
    )
    parser.add_argument("-n", dest="workers", default="12", help="xdist workers [12]")
    parser.add_argument("--out", type=Path, default=Path("artifacts/ci/soak"))
    parser.add_argument("extra", nargs="*", help="more pytest arguments (after --)")
    args = parser.parse_args(argv)
    if args.runs < 1:
        parser.error(f"--runs must be at least 1, got {args.runs}")
    backends = [b.strip() for b in args.backends.split(",") if b.strip()]
    unknown = sorted(set(backends) - {"process", "embedded", "docker", "auto"})
    if unknown:
        parser.error(f"--backends: unknown {', '.join(unknown)} (process, embedded, docker, auto)")
    if "docker" in backends and not _engine_answers():
        print("soak: no Docker engine answers: cannot soak the docker backend", file=sys.stderr)
        return 2
    out = (ROOT / args.out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    results: list[RunResult] = []
    record = out / f"soak-{time.strftime('%Y%m%d-%H%M%S')}.json"
    for index in range(1, args.runs + 1):
        for backend in backends:
            result = soak_run(index, backend, args.workers, args.extra, out)
            results.append(result)
            print(result.line(args.runs), flush=True)
            for test in result.failed:
                print(f"    failed: {test}", flush=True)
            for finding in result.findings:
                print(
                    f"    {finding['severity']} {finding['code']} {finding['test'] or ''}: "
                    f"{finding['message']}",
                    flush=True,
                )
            for item in result.leftovers:
                print(f"    left over: {item}", flush=True)
            record.write_text(
                json.dumps([{**asdict(r), "passed": r.passed} for r in results], indent=2) + "\n"
            )
    print("\n".join(["", "soak summary", *summary(results, args.runs)]))
    print(f"written {record}", file=sys.stderr)
    return 0 if all(r.passed for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
