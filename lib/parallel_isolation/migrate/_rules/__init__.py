"""The hazard rules, one module per family.

=================  ===========================================================
``brokers``        PI101 broker host, PI102 broker port, PI103 published port,
                   PI106 host network; the suite's own broker
``names``          PI104 container names, PI105 network names, PI116 fixed
                   subnets, PI117 image tags every worker builds
``topics``         PI107 bare topics, PI108 built topics, PI109 incoming topics
``environments``   service environments: broker, client id, PI115 prefix
``clients``        PI110 client ids
``commands``       ``mosquitto_pub``/``mosquitto_sub`` command lines
``cleanup``        PI111 cleanup by name
``sleeps``         PI112 sleeps (and the SUBACK/CONNACK waits that replace them)
``paths``          PI113 shared temp paths
``fixtures``       PI114 fixtures that hide the plugin's
=================  ===========================================================

:func:`run_rules` walks the facts of a module once, in a fixed order: a node
that is a site of one rule is not a site of a later one.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import libcst as cst

from parallel_isolation.migrate._facts import Record, last_name
from parallel_isolation.migrate._rules import (
    brokers,
    cleanup,
    clients,
    commands,
    environments,
    fixtures,
    names,
    paths,
    sleeps,
    topics,
)
from parallel_isolation.migrate._sinks import TOPIC_KINDS

if TYPE_CHECKING:
    from parallel_isolation.migrate._view import AnalysisView

__all__ = [
    "brokers",
    "cleanup",
    "clients",
    "commands",
    "environments",
    "fixtures",
    "names",
    "paths",
    "run_rules",
    "sleeps",
    "topics",
]


def run_rules(a: AnalysisView) -> None:
    facts = a.facts
    fixtures.shadowed(a)
    for record in facts.calls:
        _call(a, record)
    for record in facts.dicts:
        environments.on_dict(a, record)
    for target, value, scope in facts.assigns:
        brokers.on_assign(a, target, value, scope)
    environments.sequences(a)
    environments.applications(a)
    brokers.constant_definitions(a)
    for record in facts.comparisons:
        topics.on_comparison(a, record)
    topics.copies(a)
    for record in facts.loops:
        cleanup.on_loop(a, record)
    for record in facts.names:
        names.on_name(a, record)
    for record in facts.strings:
        if id(record.node) in a.handled:
            continue
        if paths.on_string(a, record) or commands.on_string(a, record):
            continue
        if brokers.on_string(a, record.node, record.scope, record.in_fstring):
            continue
        names.on_string(a, record)
    for record in facts.integers:
        node = record.node
        assert isinstance(node, cst.Integer)
        brokers.on_integer(a, node, record.scope)


def _call(a: AnalysisView, record: Record) -> None:
    """Literals at the sinks of known APIs and of summarised functions, then
    each family's own look at the call."""
    call = record.node
    assert isinstance(call, cst.Call)
    scope = record.scope
    method = last_name(call.func)
    func = call.func
    receiver = func.value if isinstance(func, cst.Attribute) else None
    receiving = a.receiver_kind(receiver, scope) if receiver is not None else None
    namespaced = receiving == "namespaced"
    summary = None
    if method is not None and not namespaced and receiving != "raw":
        summary = a.resolve_call(call, scope)
        if summary is not None and summary.scope is scope.outermost_function():
            summary = None  # a method calling its namesake on another object
    if summary is None or not isinstance(func, cst.Attribute):
        for sink in a.builtin.get(id(call), []):
            if sink.kind in TOPIC_KINDS and (namespaced or not a.raw_messages):
                continue
            a.sink_site(sink, scope)
    topics.on_call(a, call, scope)
    if summary is not None:
        a.summary_flows(record, summary)
    brokers.on_call(a, call, scope)
    names.on_call(a, call, scope)
    cleanup.on_call(a, call, scope)
    sleeps.on_call(a, record)
