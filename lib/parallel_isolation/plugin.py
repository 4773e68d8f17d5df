"""pytest plugin: options, fixtures and xdist hooks.  The work lives elsewhere.

Registered through the ``pytest11`` entry point, so any project that installs
the package gets the fixtures ``parallel_test_context``, ``mqtt_broker``,
``topic_namespace``, ``mqtt_client`` and ``wait_for_message``.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Iterable, Iterator
from contextlib import AbstractContextManager
from typing import Any

import pytest

from parallel_isolation.identity import Identity
from parallel_isolation.mqtt.brokers import TestMQTTBroker
from parallel_isolation.mqtt.client import NamespacedClient, ReceivedMessage, guard_loop_stop
from parallel_isolation.mqtt.topics import TopicNamespace
from parallel_isolation.recording import recorder as recording
from parallel_isolation.services.spec import ServiceSpec
from parallel_isolation.session import runstate
from parallel_isolation.session.context import ParallelTestContext, WorkerContext
from parallel_isolation.settings import OPTIONS, Option, SettingError

# Whether this session put the race-safe loop_stop on paho's client (to undo it).
_LOOP_STOP_GUARDED = pytest.StashKey[bool]()
DOCKER_MARKER_HELP = (
    "docker: the test needs a Docker engine; it skips without one, and fails instead with "
    "--require-docker"
)


def _argparse_type(option: Option) -> Callable[[str], Any]:
    def parse(raw: str) -> Any:
        try:
            return option.parse(raw)
        except ValueError as error:
            raise argparse.ArgumentTypeError(str(error)) from None

    parse.__name__ = option.field
    return parse


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("parallel-isolation", "parallel-safe MQTT/Docker test isolation")
    for option in OPTIONS:
        help_text = (
            f"{option.help} [env {option.env}; ini {option.ini}; default {option.default!r}]"
        )
        if option.is_flag:
            group.addoption(
                option.cli, action="store_true", default=None, dest=option.field, help=help_text
            )
        else:
            group.addoption(
                option.cli,
                dest=option.field,
                type=_argparse_type(option),
                default=None,
                help=help_text,
            )
        parser.addini(option.ini, help=option.help, default=None)


def pytest_configure(config: pytest.Config) -> None:
    try:
        state = runstate.configure(config)
    except SettingError as error:
        raise pytest.UsageError(str(error)) from None
    config.stash[runstate.STATE_KEY] = state
    config.stash[_LOOP_STOP_GUARDED] = guard_loop_stop()
    runstate.tie_worker_to_controller(state)
    runstate.spawn_zygote(state)
    runstate.start_hang_watch(state, config)
    config.addinivalue_line("markers", recording.EXPECT_MARKER_HELP)
    config.addinivalue_line("markers", DOCKER_MARKER_HELP)
    if state.role != "controller":
        recorder = recording.SessionRecorder.for_run(
            state.identity,
            state.settings.artifacts_root,
            flush_crosstalk=lambda timeout: runstate.flush_crosstalk(state, timeout),
        )
        config.pluginmanager.register(recorder, "parallel-isolation-recorder")
    if state.role != "worker":
        config.pluginmanager.register(VerdictHooks(state), "parallel-isolation-verdict")
    if hasattr(config.pluginmanager.hook, "pytest_configure_node"):
        # xdist's hook specs are registered (however xdist itself was loaded).
        config.pluginmanager.register(XdistHooks(), "parallel-isolation-xdist")


class VerdictHooks:
    """Controller (or a run without xdist): the run's isolation verdict in pytest's summary."""

    def __init__(self, state: runstate.RunState) -> None:
        self.state = state

    @pytest.hookimpl(wrapper=True, trylast=True)
    def pytest_sessionfinish(self, session: pytest.Session, exitstatus: int) -> Iterator[None]:
        # Inner wrapper: every plain sessionfinish (workers torn down, run.json
        # written) is done; the terminal reporter's summary is still to come.
        result = yield
        verdict = runstate.judge(self.state)
        if verdict is not None and verdict.fails_session and session.exitstatus == 0:
            session.exitstatus = pytest.ExitCode.TESTS_FAILED
        return result

    def pytest_terminal_summary(self, terminalreporter: pytest.TerminalReporter) -> None:
        if self.state.verdict is None:
            return
        from parallel_isolation.validate.verdict import summary_lines

        terminalreporter.write_sep("=", "parallel-isolation", bold=True)
        for text, markup in summary_lines(self.state.verdict, elapsed_s=self.state.verdict_seconds):
            terminalreporter.write_line(text, **markup)


class XdistHooks:
    """Registered only when xdist is present: the controller decides, workers read."""

    @pytest.hookimpl
    def pytest_configure_node(self, node: Any) -> None:
        state = node.config.stash[runstate.STATE_KEY]
        node.workerinput[runstate.WORKERINPUT_KEY] = state.settings.as_dict()
        if state.settings.durations_file:
            from parallel_isolation.session import schedule

            wanted = schedule.wants_longest_first(state.settings, node.config)
            node.workerinput[runstate.LONGEST_FIRST_KEY] = (
                state.settings.durations_file if wanted else None
            )

    @pytest.hookimpl
    def pytest_testnodeready(self, node: Any) -> None:
        state = node.config.stash[runstate.STATE_KEY]
        runstate.node_up(state, str(node.gateway.id))
        if state.hang_watch is not None:
            state.hang_watch.node_up(node.gateway.id, getattr(node, "workerinfo", {}).get("pid"))

    @pytest.hookimpl
    def pytest_testnodedown(self, node: Any, error: object) -> None:
        state = node.config.stash[runstate.STATE_KEY]
        if state.hang_watch is not None:
            state.hang_watch.node_down(node.gateway.id)
        output = getattr(node, "workeroutput", None) or {}
        recorded = output.get(recording.RECORDED_KEY)
        runstate.node_down(
            state,
            str(node.gateway.id),
            crashed=error is not None,
            recorded=recorded if isinstance(recorded, bool) else None,
        )

    @pytest.hookimpl
    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        node = getattr(report, "node", None)  # set in the controller only
        if node is None:
            return
        watch = node.config.stash[runstate.STATE_KEY].hang_watch
        if watch is not None:
            watch.report(node.gateway.id, report.nodeid, report.when)

    @pytest.hookimpl(tryfirst=True)
    def pytest_xdist_make_scheduler(self, config: pytest.Config, log: Any) -> Any:
        from parallel_isolation.session import schedule

        if not schedule.wants_longest_first(config.stash[runstate.STATE_KEY].settings, config):
            return None
        return schedule.LongestFirstScheduling(config, log)

    @pytest.hookimpl
    def pytest_xdist_setupnodes(self, config: pytest.Config, specs: list[Any]) -> None:
        state = config.stash[runstate.STATE_KEY]
        if state.settings.fork_workers:
            problem = runstate.fork_workers_from_zygote(state, specs)
            reporter = config.pluginmanager.get_plugin("terminalreporter")
            if problem is not None and reporter is not None:
                reporter.write_line(problem, yellow=True)


@pytest.hookimpl(wrapper=True)
def pytest_collection_modifyitems(
    config: pytest.Config, items: list[pytest.Item]
) -> Iterator[None]:
    # A wrapper, so the order is set after every selection (-k, -m, pytest-split's shards).
    yield
    workerinput: dict[str, Any] = getattr(config, "workerinput", {})
    if workerinput.get(runstate.LONGEST_FIRST_KEY):
        from parallel_isolation.session import schedule

        schedule.order_worker_items(workerinput[runstate.LONGEST_FIRST_KEY], items)


def pytest_runtest_setup(item: pytest.Item) -> None:
    if item.get_closest_marker("docker") is not None:
        runstate.require_docker_or_skip(item.config.stash[runstate.STATE_KEY])


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    problem = runstate.finish(session.config.stash[runstate.STATE_KEY], int(exitstatus))
    if problem is not None:
        reporter = session.config.pluginmanager.get_plugin("terminalreporter")
        if reporter is not None:
            reporter.write_line(problem, red=True)
        else:
            sys.stderr.write(problem + "\n")


def pytest_unconfigure(config: pytest.Config) -> None:
    if runstate.STATE_KEY in config.stash:
        runstate.stop_zygote(config.stash[runstate.STATE_KEY])
    if config.stash.get(_LOOP_STOP_GUARDED, False):
        guard_loop_stop(enable=False)


@pytest.fixture(scope="session")
def isolation_worker(request: pytest.FixtureRequest) -> Iterator[WorkerContext]:
    """This worker's session-wide resources (identity, allocator, broker, events)."""
    state = request.config.stash[runstate.STATE_KEY]
    worker = runstate.worker_context(state)
    yield worker
    errors = runstate.close_worker(state)
    if errors:
        # A teardown error of the last test: the run is not green with a
        # leftover or with evidence it could not write.
        pytest.fail(
            "closing this worker's isolation resources failed:\n" + "\n".join(errors),
            pytrace=False,
        )


@pytest.fixture(scope="session")
def isolation_identity(isolation_worker: WorkerContext) -> Identity:
    """Run id, worker id and owner of this worker."""
    return isolation_worker.identity


@pytest.fixture(scope="session")
def mqtt_broker(isolation_worker: WorkerContext) -> TestMQTTBroker:
    """The worker's MQTT broker (one per worker, started on first use)."""
    return isolation_worker.broker


@pytest.fixture(scope="session")
def isolation_services() -> list[ServiceSpec]:
    """Services this project registers in Python: override it in a conftest.py.

    Return :class:`~parallel_isolation.services.spec.ServiceSpec` objects; they
    join those of ``[tool.parallel-isolation.services]`` in pyproject.toml.
    """
    return []


@pytest.fixture
def parallel_test_context(
    request: pytest.FixtureRequest,
    isolation_worker: WorkerContext,
    isolation_services: Iterable[ServiceSpec],
) -> Iterator[ParallelTestContext]:
    """Per-test isolation: namespace, names, ports, clients, services, processes."""
    context = ParallelTestContext(
        isolation_worker, request.node.nodeid, services=isolation_services
    )
    _ = context.service_catalog  # a registration error fails the setup, before the test runs
    yield context
    errors = context.close()
    crash = isolation_worker.recover_broker()
    problems = [*errors, *([crash] if crash else [])]
    if problems:
        pytest.fail("teardown of the test's isolation context failed:\n" + "\n".join(problems))


@pytest.fixture
def topic_namespace(parallel_test_context: ParallelTestContext) -> TopicNamespace:
    """This test's topic namespace."""
    return parallel_test_context.namespace


@pytest.fixture
def mqtt_client(parallel_test_context: ParallelTestContext) -> NamespacedClient:
    """A connected client in this test's namespace; waits with ``.wait_for``."""
    return parallel_test_context.mqtt_client("test-client")


@pytest.fixture
def exclusive_resource(
    parallel_test_context: ParallelTestContext,
) -> Callable[..., AbstractContextManager[float]]:
    """``with exclusive_resource("gpio"):`` holds one hardware resource across workers."""
    return parallel_test_context.exclusive


WaitForMessage = Callable[..., ReceivedMessage]


@pytest.fixture
def wait_for_message() -> WaitForMessage:
    """``wait_for_message(client, topic_filter, predicate=None, timeout=10.0)``."""

    def wait(
        client: NamespacedClient,
        topic_filter: str = "#",
        predicate: Callable[[ReceivedMessage], bool] | None = None,
        timeout: float = 10.0,
    ) -> ReceivedMessage:
        return client.wait_for(topic_filter, predicate, timeout=timeout)

    return wait
