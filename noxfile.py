"""nox sessions: the entry points for humans and CI.

The CI steps are these sessions (ci/steps/*.sh call them one by one); the
``tests`` session runs the same step functions in one venv, in order, with
the orphan cleanup always last.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import threading
import time
import tomllib
import uuid
from pathlib import Path

import nox

nox.options.reuse_venv = "yes"
nox.options.default_venv_backend = "venv"
nox.options.sessions = ["lint", "tests"]

DEFAULT_WORKERS = "12"
REPORTS = Path("artifacts/ci")
_DEV = tomllib.loads(Path("pyproject.toml").read_text())["tool"]["parallel-isolation-dev"]
# The integration suite runs with only the plugins it needs (see pyproject);
# tests of one module-scoped stack (xdist_group) stay on one worker.
SUITE_ARGS: list[str] = _DEV["integration-args"]
SUITE_ENV: dict[str, str] = _DEV["integration-env"]
# Elsewhere: the hypothesis plugin costs each process half a second of CPU.
LEAN = ["-p", "no:hypothesispytest"]
UNIT_PATHS = ["tests/unit", "tests/wildfire"]
# The fault proofs start whole runs of their own (killed workers, two runs at
# once, foreign occupants): they run one at a time, not beside each other.
FAULTS = ["tests/faults", *LEAN, "-p", "no:xdist"]
FAULTS_ENV = {
    "ISOLATION_FAULTS_UNSAFE_SUITES": "tests/legacy",
    "ISOLATION_FAULTS_SAFE_SUITES": "tests/integration",
}
# A background integration run of tests-under-load that has not ended by then is stopped.
UNDER_LOAD_RUN_TIMEOUT_S = 3600


def _install(session: nox.Session) -> None:
    """Install the library and this repository's system under test (both editable), once.

    The library's wheel holds ``parallel_isolation`` only; ``wildfire`` (the
    services the suite tests) is its own small distribution under services/.
    The venvs are reused; an editable install sees code changes by itself, so
    pip runs again only when a pyproject.toml (the dependencies) changed.
    """
    digest = hashlib.sha256(
        Path("pyproject.toml").read_bytes() + Path("services/pyproject.toml").read_bytes()
    ).hexdigest()[:16]
    location = getattr(session.virtualenv, "location", None)
    stamp = Path(location) / f".installed-{digest}" if location else None
    if stamp is not None and stamp.exists():
        session.log("project already installed for this pyproject.toml")
        return
    session.install("-e", ".[dev]", "-e", "./services")
    if stamp is not None:
        for old in stamp.parent.glob(".installed-*"):
            old.unlink()
        stamp.touch()


def _has_worker_count(args: list[str]) -> bool:
    return any(
        a in {"-n", "--numprocesses"} or a.startswith(("-n", "--numprocesses=")) for a in args
    )


def _with_workers(args: list[str], default: str) -> list[str]:
    return args if _has_worker_count(args) else ["-n", default, *args]


def _engine_answers() -> bool:
    docker = shutil.which("docker")
    if docker is None:
        return False
    answer = subprocess.run([docker, "info"], capture_output=True, timeout=60, check=False)
    return answer.returncode == 0


def _docker_required() -> bool:
    return os.environ.get("ISOLATION_REQUIRE_DOCKER", "").lower() in {"1", "true", "yes", "on"}


def _images_if_engine(session: nox.Session) -> None:
    """Build the Docker backend's images when an engine answers (a no-op when current)."""
    if not _engine_answers():
        session.log(
            "no Docker engine answers: Docker-backed tests skip (fail with --require-docker)"
        )
        return
    session.run("parallel-isolation", "images", "build")


# -- steps (shared by the sessions below) ------------------------------------------


def _unit(session: nox.Session, args: list[str]) -> None:
    REPORTS.mkdir(parents=True, exist_ok=True)
    session.run(
        "pytest", *UNIT_PATHS, f"--junitxml={REPORTS / 'unit.xml'}", *_with_workers(args, "4")
    )


def _faults(session: nox.Session, args: list[str]) -> None:
    REPORTS.mkdir(parents=True, exist_ok=True)
    session.run("pytest", *FAULTS, f"--junitxml={REPORTS / 'faults.xml'}", *args, env=FAULTS_ENV)


def _integration(session: nox.Session, args: list[str], *, label: str = "integration") -> str:
    """Run tests/integration under a run id we choose; return it (8 hex) for validation.

    Failed tests (exit 1) do not stop the session here: the run is validated
    first, and :func:`_verdict` fails the session with both verdicts.
    """
    REPORTS.mkdir(parents=True, exist_ok=True)
    run_id = uuid.uuid4().hex[:8]
    session.run(
        "pytest",
        "tests/integration",
        *SUITE_ARGS,
        f"--testrunuid={run_id}",
        f"--junitxml={REPORTS / f'{label}-{run_id}.xml'}",
        *_with_workers(args, DEFAULT_WORKERS),
        env=SUITE_ENV,
        success_codes=[0, 1],
    )
    return run_id


def _validate(session: nox.Session, run: str, *, label: str = "validate") -> None:
    """Validate a finished run once: the table on stdout, JSON and HTML into artifacts/ci.

    The session's last line is the run's two verdicts (tests, isolation); it
    fails when a test failed or validation found something (or could not).
    """
    REPORTS.mkdir(parents=True, exist_ok=True)
    runs = Path(".isolation/runs")
    latest = runs / "latest"
    # A pytest-split shard derives its own run id from the one we gave: the newest run.
    if (run == "latest" or not (runs / run).is_dir()) and latest.exists():
        run = latest.read_text().strip()
    json_path = REPORTS / f"validate-{run}.json"
    html_path = REPORTS / f"validate-{run}.html"
    json_path.unlink(missing_ok=True)
    session.run(
        *("parallel-isolation", "validate", "--run", run),
        *("--json", str(json_path), "--html", str(html_path)),
        success_codes=[0, 1, 2],
    )
    _verdict(session, label, run, json_path, html_path)


def _verdict(session: nox.Session, label: str, run: str, json_path: Path, html_path: Path) -> None:
    if not json_path.exists():
        session.error(f"{label}: run {run}: could not validate (see the error above)")
    report = json.loads(json_path.read_text())
    tests, isolation = report["tests"], report["isolation"]
    counts = ", ".join(f"{n} {outcome}" for outcome, n in sorted(tests["counts"].items()))
    line = (
        f"{label}: run {run} · tests {tests['verdict'].upper()} ({counts or 'none'}) · "
        f"isolation {isolation['verdict'].upper()} (exit {isolation['exit_code']}) · "
        f"reports {json_path}, {html_path}"
    )
    if tests["verdict"] != "passed" or isolation["exit_code"] != 0:
        session.error(line)
    session.log(line)


def _cleanup(session: nox.Session, args: list[str]) -> None:
    """Reap dead runs' leftovers; without an engine (and Docker not required) only the rest.

    cleanup-orphans exits 2 when it cannot look at Docker; on a machine that
    has no engine at all, skipping Docker is the honest request.
    """
    if "--no-docker" not in args and not _docker_required() and not _engine_answers():
        session.log("no Docker engine answers: cleaning up processes, reservations, temp dirs")
        args = [*args, "--no-docker"]
    session.run("parallel-isolation", "cleanup-orphans", *args)


EXAMPLE = Path("examples/quickstart")
EXAMPLE_VENV = Path(".nox/example-venv")


def _example(session: nox.Session) -> None:
    """The stranger project in examples/: the built wheel in a venv of its own.

    The wheel (not an editable install; nothing of lib/ or services/ on the
    path) goes into a venv of the example's own; its tests run -n 8 on the
    process backend and, when an engine answers, on the docker backend; then
    `parallel-isolation validate` (each run) and `cleanup-orphans --dry-run`
    run from the example's directory, as its README says.
    """
    dist = Path(".nox/example-dist")
    shutil.rmtree(dist, ignore_errors=True)
    session.run("python", "-m", "pip", "wheel", ".", "-w", str(dist), "--no-deps", "-q")
    wheel = next(dist.glob("parallel_isolation-*.whl")).resolve()
    venv = EXAMPLE_VENV.resolve()
    if not (venv / "bin" / "python").exists():
        session.run("python", "-m", "venv", str(venv))
    pip = [str(venv / "bin" / "python"), "-m", "pip", "install", "-q"]
    session.run(*pip, "--force-reinstall", "--no-deps", str(wheel), external=True)
    session.run(*pip, str(wheel), external=True)  # its dependencies, once
    env = {"PYTHONPATH": "", "PYTEST_ADDOPTS": "", "VIRTUAL_ENV": str(venv)}
    tool = str(venv / "bin" / "parallel-isolation")
    pytest = [str(venv / "bin" / "pytest"), "-n", "8", "-p", "no:cacheprovider"]
    session.chdir(EXAMPLE)
    where = session.run(
        str(venv / "bin" / "python"),
        "-c",
        "import parallel_isolation; print(parallel_isolation.__file__)",
        external=True,
        silent=True,
        env=env,
    )
    if not str(where).strip().startswith(str(venv)):
        session.error(f"the example imported parallel_isolation from {where!r}, not its venv")
    backends = ["process"]
    if _engine_answers() or _docker_required():
        session.run(tool, "images", external=True, env=env)
        backends.append("docker")
    else:
        session.log("no Docker engine: the example runs on the process backend only")
    for backend in backends:
        run_id = uuid.uuid4().hex[:8]
        session.run(
            *pytest,
            "--isolation-backend",
            backend,
            f"--testrunuid={run_id}",
            external=True,
            env=env,
        )
        session.run(tool, "validate", "--run", run_id, external=True, env=env)
    # Without an engine cleanup-orphans would exit 2 (it could not look at Docker).
    no_docker = [] if "docker" in backends else ["--no-docker"]
    session.run(tool, "cleanup-orphans", "--dry-run", *no_docker, external=True, env=env)
    session.run(tool, "runs", "--no-validate", external=True, env=env)


# -- sessions ------------------------------------------------------------------------


@nox.session
def tests(session: nox.Session) -> None:
    """Everything CI runs: unit tests, the integration suite on every backend, validation."""
    _install(session)
    _images_if_engine(session)
    _tests(session)


def _tests(session: nox.Session) -> None:
    try:
        _unit(session, list(session.posargs))
        _faults(session, [])
        _validate(
            session,
            _integration(session, [], label="integration-default"),
            label="integration-default",
        )
        if _engine_answers() or _docker_required():
            docker_run = _integration(
                session, ["--isolation-backend", "docker"], label="integration-docker"
            )
            _validate(session, docker_run, label="integration-docker")
        else:
            session.log(
                "no Docker engine: the docker-backend run of the integration suite is skipped"
            )
        _example(session)
    finally:
        _cleanup(session, [])


class _Load:
    """Busy loops on every core and ``-n 6`` integration runs one after another, until stopped.

    Everything it starts it stops by pid; each background run is validated.
    """

    def __init__(self, session: nox.Session) -> None:
        self.python = str(Path(session.bin) / "python")
        # Absolute: a step of the tests session changes the working directory.
        self.root = Path(__file__).resolve().parent
        self.out = self.root / REPORTS / "under-load"
        self.busy: list[subprocess.Popen[bytes]] = []
        self.runs: list[dict[str, object]] = []
        self.loads: list[float] = []
        self._stop = threading.Event()
        self._threads = [
            threading.Thread(target=self._background_runs, name="under-load-runs", daemon=True),
            threading.Thread(target=self._sample_load, name="under-load-sampler", daemon=True),
        ]

    def start(self) -> None:
        self.out.mkdir(parents=True, exist_ok=True)
        for _ in range(os.cpu_count() or 2):
            self.busy.append(subprocess.Popen([sys.executable, "-c", "while True: pass"]))
        for thread in self._threads:
            thread.start()

    def stop(self) -> None:
        """Start no more runs, let the one running end (bounded), stop the busy loops by pid."""
        self._stop.set()
        for thread in self._threads:
            thread.join(UNDER_LOAD_RUN_TIMEOUT_S)
        for proc in self.busy:
            proc.kill()  # our own child, by its pid
            proc.wait(30)

    def _sample_load(self) -> None:
        while not self._stop.wait(15):
            self.loads.append(os.getloadavg()[0])

    def _background_runs(self) -> None:
        env = {**os.environ, **SUITE_ENV}
        while not self._stop.is_set():
            run_id = uuid.uuid4().hex[:8]
            started = time.monotonic()
            with (self.out / f"background-{run_id}.log").open("wb") as log:
                proc = subprocess.Popen(
                    [
                        self.python,
                        "-m",
                        "pytest",
                        "tests/integration",
                        *SUITE_ARGS,
                        "-q",
                        "-n",
                        "6",
                        f"--testrunuid={run_id}",
                        f"--junitxml={self.out / f'background-{run_id}.xml'}",
                    ],
                    env=env,
                    cwd=self.root,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                )
                try:
                    code = proc.wait(UNDER_LOAD_RUN_TIMEOUT_S)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    code = proc.wait(60)
            checked = subprocess.run(
                [
                    self.python,
                    "-m",
                    "parallel_isolation.validate",
                    "--run",
                    run_id,
                    "--format",
                    "json",
                    "-o",
                    str(self.out / f"validate-{run_id}.json"),
                ],
                capture_output=True,
                timeout=900,
                check=False,
                cwd=self.root,
                env=env,
            )
            self.runs.append(
                {
                    "run": run_id,
                    "pytest_exit": code,
                    "validate_exit": checked.returncode,
                    "seconds": round(time.monotonic() - started, 1),
                    "load": round(os.getloadavg()[0], 2),
                }
            )

    def report(self, session: nox.Session, main_ok: bool) -> bool:
        """Log and record what happened; True when the main steps and every background run passed."""
        background_ok = bool(self.runs) and all(
            r["pytest_exit"] == 0 and r["validate_exit"] == 0 for r in self.runs
        )
        loads = self.loads or [os.getloadavg()[0]]
        summary = {
            "cpus": os.cpu_count(),
            "busy_loops": len(self.busy),
            "tests_passed": main_ok,
            "background_runs": self.runs,
            "load_min": round(min(loads), 2),
            "load_mean": round(sum(loads) / len(loads), 2),
            "load_max": round(max(loads), 2),
        }
        (self.out / f"under-load-{time.strftime('%Y%m%d-%H%M%S')}.json").write_text(
            json.dumps(summary, indent=2) + "\n"
        )
        session.log(
            f"under load: nox -s tests {'passed' if main_ok else 'FAILED'}; load average "
            f"min {summary['load_min']} mean {summary['load_mean']} max {summary['load_max']} "
            f"on {summary['cpus']} CPUs with {len(self.busy)} busy loops"
        )
        for run in self.runs:
            session.log(
                f"  background -n 6 run {run['run']}: pytest exit {run['pytest_exit']}, "
                f"validate exit {run['validate_exit']}, {run['seconds']} s, load {run['load']}"
            )
        if not self.runs:
            session.log("  no background run finished")
        return main_ok and background_ok


@nox.session(name="tests-under-load", default=False)
def tests_under_load(session: nox.Session) -> None:
    """nox -s tests while busy loops load every core and -n 6 integration runs go on beside it."""
    _install(session)
    _images_if_engine(session)
    load = _Load(session)
    load.start()
    main_ok = False
    try:
        _tests(session)
        main_ok = True
    finally:
        load.stop()
        passed = load.report(session, main_ok)
    if not passed:
        session.error("under load: the tests or a background integration run failed (see above)")


@nox.session(default=False)
def soak(session: nox.Session) -> None:
    """The integration suite -n 12 again and again per backend, each validated (-- --runs N)."""
    _install(session)
    _images_if_engine(session)
    session.run("python", "ci/soak.py", *session.posargs)


@nox.session
def lint(session: nox.Session) -> None:
    """ruff, mypy (strict) and the import-layer check over the library and the services."""
    _install(session)
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", "lib", "services")
    session.run("mypy")
    # The layers of docs/architecture.md, and no import cycle.
    session.run("pytest", "tests/unit/core/test_layers.py", "-q", "-p", "no:xdist", *LEAN)


@nox.session
def unit(session: nox.Session) -> None:
    """Unit and migration-tool tests (-n 4 unless -n is given)."""
    _install(session)
    _images_if_engine(session)
    _unit(session, list(session.posargs))


@nox.session
def faults(session: nox.Session) -> None:
    """Fault proofs, one at a time: killed worker, two runs at once, foreign occupants, unsafe suites."""
    _install(session)
    _images_if_engine(session)
    _faults(session, list(session.posargs))


@nox.session(name="integration-parallel")
def integration_parallel(session: nox.Session) -> None:
    """The integration files under xdist (-n 12 unless -n is given after --), then their verdict."""
    _install(session)
    args = list(session.posargs)
    if "docker" in args or os.environ.get("ISOLATION_BACKEND") == "docker":
        _images_if_engine(session)
    _validate(session, _integration(session, args), label="integration-parallel")


@nox.session(default=False)
def integration(session: nox.Session) -> None:
    """The same integration files serially: the baseline."""
    _install(session)
    session.run(
        "pytest", "tests/integration", *SUITE_ARGS, "-n", "0", *session.posargs, env=SUITE_ENV
    )


@nox.session(name="integration-legacy", default=False)
def integration_legacy(session: nox.Session) -> None:
    """The legacy (parallel-unsafe) files, serially, on their fixed ports and names."""
    _install(session)
    _images_if_engine(session)
    session.run("pytest", "tests/legacy", *LEAN, "-p", "no:xdist", *session.posargs)


@nox.session(default=False)
def example(session: nox.Session) -> None:
    """The stranger project (examples/quickstart): built wheel, own venv, -n 8, validate."""
    _example(session)


@nox.session(default=False)
def images(session: nox.Session) -> None:
    """Build the Docker backend's images (offline from the host's Debian mirror if need be)."""
    _install(session)
    session.run("parallel-isolation", "images", *(session.posargs or ["build"]))


@nox.session(default=False)
def validate(session: nox.Session) -> None:
    """Validate the latest run (JSON/HTML reports into artifacts/ci, both verdicts), or as `-- OPTIONS` say."""
    _install(session)
    args = list(session.posargs)
    if not args or (args[:1] == ["--run"] and len(args) == 2):
        _validate(session, args[1] if args else "latest")
    else:
        session.run("parallel-isolation", "validate", *args)


@nox.session(name="cleanup-orphans", default=False)
def cleanup_orphans(session: nox.Session) -> None:
    """Remove what dead runs left behind (only ours, only the dead's)."""
    _install(session)
    _cleanup(session, list(session.posargs))


@nox.session(name="bench-core", default=False)
def bench_core(session: nox.Session) -> None:
    """Core figures: broker start-to-ready, fixture overhead, 12 brokers at once."""
    _install(session)
    session.run("python", "benchmarks/bench_core.py", *session.posargs)


@nox.session(name="bench-recorder", default=False)
def bench_recorder(session: nox.Session) -> None:
    """The recorder's per-test cost, quiet and under process churn (target: median <= 5 ms)."""
    _install(session)
    session.run("python", "benchmarks/bench_recorder.py", *session.posargs)


def _bench_with_images(session: nox.Session, script: str) -> None:
    """A benchmark script under benchmarks/ that needs the images (built if an engine answers)."""
    _install(session)
    _images_if_engine(session)
    session.run("python", f"benchmarks/{script}", *session.posargs)


@nox.session(name="bench-tools", default=False)
def bench_tools(session: nox.Session) -> None:
    """Tool figures with their targets: validate on 12 workers, reaping 50, the images check."""
    _bench_with_images(session, "bench_tools.py")


@nox.session(name="bench-docker", default=False)
def bench_docker(session: nox.Session) -> None:
    """Docker backend figures: broker and stack start, 12 stacks at once, where a run's CPU goes."""
    _bench_with_images(session, "bench_docker.py")


@nox.session(name="bench-peers", default=False)
def bench_peers(session: nox.Session) -> None:
    """This toolkit vs testcontainers-python on the same image: broker and stack start, interleaved."""
    _bench_with_images(session, "bench_peers.py")


@nox.session(name="bench-ab", default=False)
def bench_ab(session: nox.Session) -> None:
    """Two versions of the library on the docker backend, interleaved: -- --a main [--b REV]."""
    _bench_with_images(session, "bench_ab.py")


@nox.session(default=False)
def bench(session: nox.Session) -> None:
    """Serial vs -n 4/12/24 of the integration suite per backend: table, JSON, PNG chart."""
    _install(session)
    _images_if_engine(session)
    session.run("python", "benchmarks/bench_suite.py", *session.posargs)


@nox.session(name="validate-merge", default=False)
def validate_merge(session: nox.Session) -> None:
    """One verdict from several shards' validation reports (JSON files after --)."""
    _install(session)
    session.run("parallel-isolation", "merge", *session.posargs)


@nox.session(default=False)
def durations(session: nox.Session) -> None:
    """Refresh .test_durations (sharding input and longest-first order) from a serial run."""
    _install(session)
    session.run(
        "pytest",
        "tests/integration",
        *SUITE_ARGS,
        "-n",
        "0",
        "--store-durations",
        *session.posargs,
        env=SUITE_ENV,
    )
