"""``invoke migrate``: a parallel-safety linter and a LibCST codemod for pytest files.

:func:`check_paths` reports the hazards that break a test suite under
pytest-xdist (fixed broker ports, container names, client ids, bare topics,
cleanup by name, sleeps, shared temp paths) as :class:`Finding` values, each
with a code from :data:`CODES`.  :func:`migrate_paths` rewrites what is
mechanical, one LibCST command per transformation (:data:`COMMANDS`), and
reports what it left alone.
"""

from __future__ import annotations

from parallel_isolation.migrate._codes import CODES, Code, Severity, codes_markdown
from parallel_isolation.migrate._commands import (
    COMMANDS,
    BrokerAddressCommand,
    ClientIdCommand,
    ContainerNameCommand,
    FixtureParametersCommand,
    IncomingTopicCommand,
    NetworkNameCommand,
    ServiceEnvPrefixCommand,
    SubscriptionWaitCommand,
    TopicNamespaceCommand,
)
from parallel_isolation.migrate._model import FileResult, Finding, MigrationReport
from parallel_isolation.migrate._render import (
    Format,
    findings_json,
    render_findings,
    render_report,
    report_json,
)
from parallel_isolation.migrate._runner import (
    check_paths,
    check_source,
    discover,
    migrate_paths,
    migrate_source,
)
from parallel_isolation.migrate.cli import build_parser, main, split_paths

__all__ = [
    "CODES",
    "COMMANDS",
    "BrokerAddressCommand",
    "ClientIdCommand",
    "Code",
    "ContainerNameCommand",
    "FileResult",
    "Finding",
    "FixtureParametersCommand",
    "Format",
    "IncomingTopicCommand",
    "MigrationReport",
    "NetworkNameCommand",
    "ServiceEnvPrefixCommand",
    "Severity",
    "SubscriptionWaitCommand",
    "TopicNamespaceCommand",
    "build_parser",
    "check_paths",
    "check_source",
    "codes_markdown",
    "discover",
    "findings_json",
    "main",
    "migrate_paths",
    "migrate_source",
    "render_findings",
    "render_report",
    "report_json",
    "split_paths",
]
