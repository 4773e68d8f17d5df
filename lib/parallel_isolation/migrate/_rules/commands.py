"""MQTT command lines in strings: ``mosquitto_pub -h localhost -p 1883 -t a/b``.

The broker address (``-h``/``-p``), the topic (``-t``) and the client id
(``-i``) of ``mosquitto_pub``/``mosquitto_sub`` are hazards like the same
values passed to a client.  A literal word is rewritten in place (the string
becomes an f-string: ``-p {mqtt_broker.port}``); a word that is already an
f-string expression (``-t {topic}``) is a sink, so the callers passing a
bare topic are rewritten instead.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

import libcst as cst

from parallel_isolation.migrate._facts import Record, Scope
from parallel_isolation.migrate._sinks import Kind, Sink
from parallel_isolation.migrate._site import Site

if TYPE_CHECKING:
    from parallel_isolation.migrate._view import AnalysisView

__all__ = ["expression_sinks", "on_string", "words"]

_CLIENTS = {"mosquitto_pub": "topic", "mosquitto_sub": "filter", "mosquitto_rr": "topic"}
_FLAGS: dict[str, Kind] = {
    "-h": "host",
    "--host": "host",
    "-p": "port",
    "--port": "port",
    "-t": "topic",
    "--topic": "topic",
    "-i": "client_id",
    "--id": "client_id",
}


@dataclass(frozen=True)
class Piece:
    """Part of a word: text (``part``'s characters ``start:end``) or an expression."""

    part: int
    start: int = 0
    end: int = 0
    expression: cst.BaseExpression | None = None


def _parts(node: cst.CSTNode) -> list[tuple[str | None, cst.BaseExpression | None]] | None:
    """The string's parts: (raw text, None) or (None, expression); None if unsupported."""
    if isinstance(node, cst.SimpleString):
        if "b" in node.prefix.lower() or "\\" in node.value:
            return None
        quote = node.quote
        return [(node.value[len(node.prefix) + len(quote) : -len(quote)], None)]
    if isinstance(node, cst.FormattedString):
        if "b" in node.prefix.lower():
            return None
        parts: list[tuple[str | None, cst.BaseExpression | None]] = []
        for part in node.parts:
            if isinstance(part, cst.FormattedStringText):
                if "\\" in part.value:
                    return None
                parts.append((part.value, None))
            elif isinstance(part, cst.FormattedStringExpression):
                if part.format_spec or part.conversion:
                    parts.append((None, None))
                else:
                    parts.append((None, part.expression))
        return parts
    return None


def words(node: cst.CSTNode) -> list[list[Piece]] | None:
    """Whitespace-separated words of a string or f-string, as pieces."""
    parts = _parts(node)
    if parts is None:
        return None
    found: list[list[Piece]] = []
    current: list[Piece] = []
    for index, (text, expression) in enumerate(parts):
        if text is None:
            current.append(Piece(index, expression=expression))
            continue
        start = None
        for position, char in enumerate(text):
            if char.isspace():
                if start is not None:
                    current.append(Piece(index, start, position))
                    start = None
                if current:
                    found.append(current)
                    current = []
            elif start is None:
                start = position
        if start is not None:
            current.append(Piece(index, start, len(text)))
    if current:
        found.append(current)
    return found


def _word_text(
    parts: list[tuple[str | None, cst.BaseExpression | None]], word: list[Piece]
) -> str | None:
    """The text of a word made only of text pieces (None if it holds an expression)."""
    out = []
    for piece in word:
        text = parts[piece.part][0]
        if text is None:
            return None
        out.append(text[piece.start : piece.end])
    return "".join(out)


@dataclass(frozen=True)
class Flag:
    kind: Kind
    flag: str
    word: list[Piece]
    value: str | None
    expression: cst.BaseExpression | None


def flags(node: cst.CSTNode) -> tuple[str, list[Flag]] | None:
    """The command (mosquitto_pub...) of a string and its MQTT flags."""
    parts = _parts(node)
    found = words(node)
    if parts is None or not found:
        return None
    head = _word_text(parts, found[0])
    program = head.rsplit("/", 1)[-1] if head else None
    if program not in _CLIENTS and program != "mosquitto":
        return None
    result: list[Flag] = []
    for index, word in enumerate(found[:-1]):
        flag = _word_text(parts, word)
        if flag not in _FLAGS:
            continue
        following = found[index + 1]
        kind = _FLAGS[flag]
        if kind == "topic":
            kind = _CLIENTS.get(program or "", "topic")  # type: ignore[assignment]
        expression = None
        if len(following) == 1 and following[0].expression is not None:
            expression = following[0].expression
        result.append(Flag(kind, flag, following, _word_text(parts, following), expression))
    return program or "", result


def expression_sinks(a: AnalysisView) -> Iterator[tuple[cst.CSTNode, Kind]]:
    """``-t {topic}``: the expression is a sink (for the summaries of helpers)."""
    for record in a.facts.strings:
        if not isinstance(record.node, cst.FormattedString):
            continue
        found = flags(record.node)
        if found is None or found[0] == "mosquitto":
            continue
        for flag in found[1]:
            if flag.expression is not None:
                yield flag.expression, flag.kind


def on_string(a: AnalysisView, record: Record) -> bool:
    node = record.node
    found = flags(node)
    if found is None:
        return False
    program, found_flags = found
    if program == "mosquitto":
        return False  # the broker itself: see brokers.definition_scopes
    scope = record.scope
    for flag in found_flags:
        label = f"{program} {flag.flag}"
        if flag.expression is not None:
            a.sink_site(Sink(flag.expression, flag.kind, label), scope)
            continue
        if flag.value is None:
            continue
        _literal_word(a, node, scope, flag, program, label)
    a.handled.add(id(node))
    return True


def _unquoted(value: str) -> tuple[str, int]:
    """The word without shell quotes around it, and the width of one quote."""
    if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
        return value[1:-1], 1
    return value, 0


def _literal_word(
    a: AnalysisView, node: cst.CSTNode, scope: Scope, flag: Flag, program: str, label: str
) -> None:
    assert flag.value is not None
    value, _ = _unquoted(flag.value)
    if flag.kind == "host":
        code, need, what, _fix = "PI101", "broker", f"broker host {value!r}", "{mqtt_broker.host}"
    elif flag.kind == "port":
        if not value.isdigit():
            return
        code, need, what, _fix = "PI102", "broker", f"broker port {value}", "{mqtt_broker.port}"
    elif flag.kind in ("topic", "filter"):
        if value.startswith("$"):
            return
        code, need, what = "PI107", "topics", f"bare topic {value!r}"
    elif flag.kind == "client_id":
        code, need, what = "PI110", "names", f"fixed client id {value!r}"
    else:
        return
    site = Site(
        code,
        node,
        scope,
        f"{what} in a {label} command line; use {_shown_fix(flag.kind)}",
        need=need,  # type: ignore[arg-type]
        build=_replace_word(flag.flag, flag.kind),
    )
    _add_shared(a, site)


def _shown_fix(kind: str) -> str:
    return {
        "host": "mqtt_broker.host",
        "port": "mqtt_broker.port",
        "topic": "topic_namespace.topic(...)",
        "filter": "topic_namespace.filter(...)",
        "client_id": "parallel_test_context.client_id(...)",
    }[kind]


def _add_shared(a: AnalysisView, site: Site) -> None:
    """Several words of one string are several sites on one node."""
    a.add_shared(site)


def _replace_word(flag: str, kind: str) -> Callable[[str, cst.CSTNode], cst.CSTNode]:
    """A builder: the word after ``flag`` becomes ``{provider...}`` in an f-string."""

    def build(provider: str, node: cst.CSTNode) -> cst.CSTNode:
        parts = _parts(node)
        found = words(node)
        assert parts is not None
        assert found is not None
        quote = node.quote if isinstance(node, cst.SimpleString | cst.FormattedString) else '"'
        inner = "'" if '"' in quote else '"'
        for index, word in enumerate(found[:-1]):
            if _word_text(parts, word) != flag:
                continue
            following = found[index + 1]
            text = _word_text(parts, following)
            if text is None:
                continue
            value, width = _unquoted(text)
            if kind == "host":
                expression = f"{provider}.host"
            elif kind == "port":
                expression = f"{provider}.port"
            elif kind in ("topic", "filter"):
                expression = f"{provider}.{kind}({inner}{value}{inner})"
            else:
                expression = f"{provider}.client_id({inner}{value}{inner})"
            return _rebuild(node, parts, following, width, expression)
        return node

    return build


def _rebuild(
    node: cst.CSTNode,
    parts: list[tuple[str | None, cst.BaseExpression | None]],
    word: list[Piece],
    quote_width: int,
    expression: str,
) -> cst.CSTNode:
    """The string as an f-string, ``word`` (text only) replaced by ``{expression}``
    (inside its shell quotes, if it had any)."""
    first, last = word[0], word[-1]
    code: list[str] = []
    for index, (text, _expr) in enumerate(parts):
        if text is None:
            assert isinstance(node, cst.FormattedString)
            original = node.parts[index]
            code.append(cst.Module([]).code_for_node(original))
            continue
        escape = not isinstance(node, cst.FormattedString)

        def keep(fragment: str, escape: bool = escape) -> str:
            return fragment.replace("{", "{{").replace("}", "}}") if escape else fragment

        if index < first.part or index > last.part:
            code.append(keep(text))
            continue
        begin = first.start + quote_width if index == first.part else 0
        end = last.end - quote_width if index == last.part else len(text)
        before = keep(text[:begin]) if index == first.part else ""
        after = keep(text[end:]) if index == last.part else ""
        middle = "{" + expression + "}" if index == first.part else ""
        code.append(before + middle + after)
    prefix = node.prefix if isinstance(node, cst.SimpleString | cst.FormattedString) else ""
    if "f" not in prefix.lower():
        prefix = "f" + prefix
    quote = node.quote if isinstance(node, cst.SimpleString | cst.FormattedString) else '"'
    return cst.parse_expression(f"{prefix}{quote}{''.join(code)}{quote}")
