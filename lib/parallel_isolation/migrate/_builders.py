"""Replacement nodes: each takes the providing fixture's name and the node to replace."""

from __future__ import annotations

from collections.abc import Callable

import libcst as cst

from parallel_isolation.migrate._sinks import env_dict

__all__ = [
    "Builder",
    "Result",
    "add_prefix",
    "broker_attribute",
    "call_on",
    "env_container",
    "env_string",
    "provider_expression",
    "strip_topic",
    "wrap_in",
]

#: What an edit may return: a node, or several statements/arguments in its place.
Result = cst.CSTNode | cst.FlattenSentinel[cst.CSTNode]
Builder = Callable[[str, cst.CSTNode], Result]


def provider_expression(provider: str) -> cst.BaseExpression:
    """``mqtt_broker`` or ``self.mqtt_broker`` as an expression."""
    if "." not in provider:
        return cst.Name(provider)
    return cst.parse_expression(provider)


def call_on(provider: str, method: str, value: cst.BaseExpression) -> cst.Call:
    return cst.Call(
        func=cst.Attribute(value=provider_expression(provider), attr=cst.Name(method)),
        args=[cst.Arg(value=value)],
    )


def wrap_in(method: str) -> Builder:
    def build(provider: str, node: cst.CSTNode) -> cst.CSTNode:
        assert isinstance(node, cst.BaseExpression)
        return call_on(provider, method, node)

    return build


def broker_attribute(attr: str, as_string: bool = False) -> Builder:
    def build(provider: str, node: cst.CSTNode) -> cst.CSTNode:
        value: cst.BaseExpression = cst.Attribute(
            value=provider_expression(provider), attr=cst.Name(attr)
        )
        if as_string:
            value = cst.Call(func=cst.Name("str"), args=[cst.Arg(value=value)])
        return value

    return build


def strip_topic(provider: str, node: cst.CSTNode) -> cst.CSTNode:
    assert isinstance(node, cst.BaseExpression)
    return call_on(provider, "strip", node)


def env_string(key: str, attr: str) -> Builder:
    def build(provider: str, node: cst.CSTNode) -> cst.CSTNode:
        quote = node.quote if isinstance(node, cst.SimpleString) else '"'
        if len(quote) != 1:
            quote = '"'
        return cst.parse_expression(f"f{quote}{key}={{{provider}.{attr}}}{quote}")

    return build


def env_container(key: str, value: str) -> Builder:
    def build(provider: str, node: cst.CSTNode) -> cst.CSTNode:
        quote = node.quote if isinstance(node, cst.SimpleString) else '"'
        quote = quote if len(quote) == 1 else '"'
        inner = "'" if quote == '"' else '"'
        text = f"f{quote}{key}={{{provider}.container_name({inner}{value}{inner})}}{quote}"
        return cst.parse_expression(text)

    return build


def add_prefix(key: str = "TOPIC_PREFIX") -> Builder:
    """A builder adding ``key: <provider>.prefix`` after a mapping's last MQTT entry."""

    def build(provider: str, node: cst.CSTNode) -> cst.CSTNode:
        return _add_prefix(key, provider, node)

    return build


def _add_prefix(prefix_key: str, provider: str, node: cst.CSTNode) -> cst.CSTNode:
    assert isinstance(node, cst.Dict)
    info = env_dict(node)
    assert info is not None
    elements = list(node.elements)
    index = info.last_mqtt_index
    before = elements[index]
    key_quote = '"'
    if isinstance(before, cst.DictElement) and isinstance(before.key, cst.SimpleString):
        key_quote = before.key.quote if len(before.key.quote) == 1 else '"'
    new = cst.DictElement(
        key=cst.SimpleString(f"{key_quote}{prefix_key}{key_quote}"),
        value=cst.Attribute(value=provider_expression(provider), attr=cst.Name("prefix")),
    )
    if isinstance(before.comma, cst.Comma):
        new = new.with_changes(comma=before.comma)
    else:
        before = before.with_changes(comma=cst.Comma(whitespace_after=cst.SimpleWhitespace(" ")))
        elements[index] = before
    elements.insert(index + 1, new)
    return node.with_changes(elements=elements)
