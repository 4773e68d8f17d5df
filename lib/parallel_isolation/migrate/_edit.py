"""Tree edits shared by the commands: replace nodes by identity, append
parameters and arguments in the surrounding style, remove statements while
keeping their comments."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import libcst as cst

__all__ = [
    "Replacer",
    "append_arguments",
    "append_parameters",
    "keyword_argument",
    "remove_statements",
]

Edit = Callable[[cst.CSTNode], cst.CSTNode | cst.FlattenSentinel[cst.CSTNode]]
_TRAILING = ("whitespace_after_param", "whitespace_after_arg")


class Replacer(cst.CSTTransformer):
    """Rebuilds the nodes whose *original* identity is in ``edits``.

    With ``paths`` (the ids of the edited nodes and their ancestors), only
    those are visited and rebuilt; every other subtree is kept as it is.
    """

    def __init__(self, edits: dict[int, Edit], paths: set[int] | None = None) -> None:
        super().__init__()
        self.edits = edits
        self.paths = paths

    def on_visit(self, node: cst.CSTNode) -> bool:
        return self.paths is None or id(node) in self.paths

    def on_leave(  # type: ignore[override]
        self, original_node: cst.CSTNode, updated_node: cst.CSTNode
    ) -> cst.CSTNode | cst.FlattenSentinel[cst.CSTNode]:
        edit = self.edits.get(id(original_node))
        return updated_node if edit is None else edit(updated_node)


def _multiline(whitespace: object) -> bool:
    return isinstance(whitespace, cst.ParenthesizedWhitespace)


def _trailing(item: cst.CSTNode) -> tuple[str, cst.BaseParenthesizableWhitespace] | None:
    for attribute in _TRAILING:
        value = getattr(item, attribute, None)
        if isinstance(value, cst.BaseParenthesizableWhitespace):
            return attribute, value
    return None


def _line_break(template: cst.BaseParenthesizableWhitespace) -> cst.ParenthesizedWhitespace:
    """A bare newline followed by the indentation ``template`` leads into a line with."""
    if isinstance(template, cst.ParenthesizedWhitespace):
        return cst.ParenthesizedWhitespace(
            first_line=cst.TrailingWhitespace(),
            empty_lines=[],
            indent=template.indent,
            last_line=template.last_line,
        )
    return cst.ParenthesizedWhitespace(last_line=cst.SimpleWhitespace("    "))


def _continue(
    after: cst.ParenthesizedWhitespace, template: cst.BaseParenthesizableWhitespace
) -> cst.ParenthesizedWhitespace:
    """``after``'s end-of-line comment, then a new line indented like ``template``."""
    line = _line_break(template)
    return after.with_changes(empty_lines=[], indent=line.indent, last_line=line.last_line)


def _recomma(
    items: Sequence[cst.CSTNode],
    originals: Sequence[cst.CSTNode],
    opening: cst.BaseParenthesizableWhitespace,
) -> list[cst.CSTNode]:
    """Commas for ``items`` (``originals`` plus insertions) in the originals' style.

    Single-line sequences get default commas (``a, b``).  One-per-line
    sequences put each new item on its own line, indented like the others:
    the former last item keeps the comment at the end of its line, and what
    closed the sequence (a trailing comma, comment lines, the newline before
    the parenthesis) closes it again after the new items.
    """
    original_ids = {id(item) for item in originals}
    last_before = originals[-1] if originals else None
    commas = [getattr(item, "comma", cst.MaybeSentinel.DEFAULT) for item in originals]
    multiline = _multiline(opening) or any(
        isinstance(c, cst.Comma) and _multiline(c.whitespace_after) for c in commas
    )
    if last_before is None or not multiline:
        return _recomma_single_line(items, last_before)
    inner = next(
        (
            comma.whitespace_after
            for comma in commas[:-1]
            if isinstance(comma, cst.Comma) and _multiline(comma.whitespace_after)
        ),
        None,
    )
    template = inner or opening
    separator = cst.Comma(whitespace_after=_line_break(template))
    closing = getattr(last_before, "comma", cst.MaybeSentinel.DEFAULT)
    trailing = _trailing(last_before)
    # What stays with the former last item, and what closes the sequence.
    former_last: dict[str, object] = {}
    end: dict[str, object] = {}
    if isinstance(closing, cst.Comma) and isinstance(
        closing.whitespace_after, cst.ParenthesizedWhitespace
    ):
        after = closing.whitespace_after
        former_last["comma"] = closing.with_changes(whitespace_after=_continue(after, template))
        end["comma"] = cst.Comma(
            whitespace_after=after.with_changes(first_line=cst.TrailingWhitespace())
        )
    elif trailing is not None and isinstance(trailing[1], cst.ParenthesizedWhitespace):
        after = trailing[1]
        former_last["comma"] = cst.Comma(whitespace_after=_continue(after, template))
        former_last[trailing[0]] = cst.SimpleWhitespace("")
        end["comma"] = cst.MaybeSentinel.DEFAULT
        end[trailing[0]] = after.with_changes(first_line=cst.TrailingWhitespace())
    else:
        former_last["comma"] = separator
        end["comma"] = closing
    result: list[cst.CSTNode] = []
    for position, item in enumerate(items):
        is_last = position == len(items) - 1
        if item is last_before and not is_last:
            item = item.with_changes(**{k: v for k, v in former_last.items() if hasattr(item, k)})
        elif is_last and id(item) not in original_ids:
            item = item.with_changes(**{k: v for k, v in end.items() if hasattr(item, k)})
        elif id(item) not in original_ids:
            item = item.with_changes(comma=separator)
        result.append(item)
    return result


def _recomma_single_line(
    items: Sequence[cst.CSTNode], last_before: cst.CSTNode | None
) -> list[cst.CSTNode]:
    """Default commas between items; a trailing comma, if any, stays at the end."""
    closing = getattr(last_before, "comma", cst.MaybeSentinel.DEFAULT)
    result: list[cst.CSTNode] = []
    for position, item in enumerate(items):
        if position == len(items) - 1:
            if item is not last_before:
                item = item.with_changes(comma=closing)
        elif item is last_before or not isinstance(getattr(item, "comma", None), cst.Comma):
            comma: cst.Comma | cst.MaybeSentinel = cst.MaybeSentinel.DEFAULT
            if isinstance(item, cst.ParamStar | cst.ParamSlash) or isinstance(closing, cst.Comma):
                comma = cst.Comma(whitespace_after=cst.SimpleWhitespace(" "))
            item = item.with_changes(comma=comma)
        result.append(item)
    return result


def append_parameters(
    function: cst.FunctionDef,
    positional: Sequence[cst.Param],
    keyword_only: Sequence[cst.Param],
) -> cst.FunctionDef:
    """Add ``positional`` after the regular parameters, ``keyword_only`` after ``*``."""
    if not positional and not keyword_only:
        return function
    params = function.params
    star = params.star_arg
    has_star = isinstance(star, cst.Param | cst.ParamStar)
    originals: list[cst.CSTNode] = [*params.posonly_params]
    if isinstance(params.posonly_ind, cst.ParamSlash):
        originals.append(params.posonly_ind)
    originals += params.params
    items: list[cst.CSTNode] = [*originals, *positional]
    if has_star:
        assert isinstance(star, cst.Param | cst.ParamStar)
        originals.append(star)
        items.append(star)
    elif keyword_only:
        items.append(cst.ParamStar())
    originals += params.kwonly_params
    items += [*params.kwonly_params, *keyword_only]
    if params.star_kwarg is not None:
        originals.append(params.star_kwarg)
        items.append(params.star_kwarg)
    items = _recomma(items, originals, function.whitespace_before_params)
    return function.with_changes(params=_parameters(items))


def _parameters(items: list[cst.CSTNode]) -> cst.Parameters:
    posonly: list[cst.Param] = []
    slash: cst.ParamSlash | cst.MaybeSentinel = cst.MaybeSentinel.DEFAULT
    regular: list[cst.Param] = []
    star: cst.Param | cst.ParamStar | cst.MaybeSentinel = cst.MaybeSentinel.DEFAULT
    kwonly: list[cst.Param] = []
    kwstar: cst.Param | None = None
    after_star = False
    for item in items:
        if isinstance(item, cst.ParamSlash):
            posonly, regular = regular, []
            slash = item
        elif isinstance(item, cst.ParamStar):
            star = item
            after_star = True
        elif isinstance(item, cst.Param):
            if item.star == "**":
                kwstar = item
            elif item.star == "*":
                star = item
                after_star = True
            elif after_star:
                kwonly.append(item)
            else:
                regular.append(item)
    return cst.Parameters(
        params=regular,
        star_arg=star,
        kwonly_params=kwonly,
        star_kwarg=kwstar,
        posonly_params=posonly,
        posonly_ind=slash,
    )


def append_arguments(call: cst.Call, arguments: Sequence[cst.Arg]) -> cst.Call:
    """Add (keyword) arguments at the end of a call, in its comma style."""
    if not arguments:
        return call
    items = _recomma([*call.args, *arguments], list(call.args), call.whitespace_before_args)
    args = [item for item in items if isinstance(item, cst.Arg)]
    return call.with_changes(args=args)


def keyword_argument(name: str) -> cst.Arg:
    """``name=name``."""
    return cst.Arg(
        keyword=cst.Name(name),
        value=cst.Name(name),
        equal=cst.AssignEqual(
            whitespace_before=cst.SimpleWhitespace(""), whitespace_after=cst.SimpleWhitespace("")
        ),
    )


def remove_statements(module: cst.Module, remove: set[int]) -> cst.Module:
    """Drop module-level statements (by identity), keeping their comment lines.

    Comment lines above a removed statement, and the comment at its end, move
    to the next kept statement; blank lines are not multiplied.
    """
    body: list[cst.BaseStatement] = []
    carried: list[cst.EmptyLine] = []
    for statement in module.body:
        lines = list(getattr(statement, "leading_lines", ()))
        if id(statement) in remove:
            carried += lines
            trailing = getattr(statement, "trailing_whitespace", None)
            if isinstance(trailing, cst.TrailingWhitespace) and trailing.comment is not None:
                carried.append(cst.EmptyLine(comment=trailing.comment))
            continue
        if carried:
            statement = statement.with_changes(leading_lines=_merge_lines(carried, lines))
            carried = []
        body.append(statement)
    footer = list(module.footer)
    if carried:
        footer = [line for line in carried if line.comment is not None] + footer
    return module.with_changes(body=body, footer=footer)


def _merge_lines(carried: list[cst.EmptyLine], own: list[cst.EmptyLine]) -> list[cst.EmptyLine]:
    def leading_blanks(lines: list[cst.EmptyLine]) -> int:
        count = 0
        for line in lines:
            if line.comment is not None:
                break
            count += 1
        return count

    blanks_carried = leading_blanks(carried)
    blanks_own = leading_blanks(own)
    blank = carried[0] if blanks_carried else (own[0] if blanks_own else cst.EmptyLine())
    rest = carried[blanks_carried:] + own[blanks_own:]
    return [blank] * max(blanks_carried, blanks_own) + rest


def _is_import_line(statement: cst.BaseStatement) -> bool:
    return isinstance(statement, cst.SimpleStatementLine) and all(
        isinstance(small, cst.Import | cst.ImportFrom) for small in statement.body
    )


def _bound_by_imports(module: cst.Module) -> set[str]:
    bound: set[str] = set()
    for statement in module.body:
        if not isinstance(statement, cst.SimpleStatementLine):
            continue
        for small in statement.body:
            if isinstance(small, cst.Import | cst.ImportFrom) and not isinstance(
                small.names, cst.ImportStar
            ):
                for alias in small.names:
                    bound.add(alias.evaluated_alias or alias.evaluated_name.split(".")[0])
    return bound


def add_imports(module: cst.Module, package: str, names: Sequence[str]) -> cst.Module:
    """``from package import names`` (only the names not imported yet).

    Extends an existing top-level ``from package import ...`` if there is
    one, else adds the statement after the module's leading imports (the
    place LibCST's ``AddImportsVisitor`` picks), without re-formatting
    anything else.
    """
    missing = sorted(set(names) - _bound_by_imports(module))
    if not missing:
        return module
    body = list(module.body)
    for index, statement in enumerate(body):
        if not (isinstance(statement, cst.SimpleStatementLine) and len(statement.body) == 1):
            continue
        small = statement.body[0]
        if (
            isinstance(small, cst.ImportFrom)
            and not small.relative
            and small.module is not None
            and cst.Module([]).code_for_node(small.module) == package
            and not isinstance(small.names, cst.ImportStar)
        ):
            added = [cst.ImportAlias(name=cst.Name(name)) for name in missing]
            aliases = _recomma([*small.names, *added], list(small.names), cst.SimpleWhitespace(""))
            merged = [a for a in aliases if isinstance(a, cst.ImportAlias)]
            if small.lpar is None and isinstance(merged[-1].comma, cst.Comma):
                merged[-1] = merged[-1].with_changes(comma=cst.MaybeSentinel.DEFAULT)
            body[index] = statement.with_changes(body=[small.with_changes(names=merged)])
            return module.with_changes(body=body)
    position = 0
    for index, statement in enumerate(body):
        if _is_import_line(statement):
            position = index + 1
        elif index == 0 and isinstance(statement, cst.SimpleStatementLine):
            first = statement.body[0]
            if isinstance(first, cst.Expr) and isinstance(
                first.value, cst.SimpleString | cst.ConcatenatedString
            ):
                position = 1
                continue
            break
        else:
            break
    new = cst.parse_statement(f"from {package} import {', '.join(missing)}\n")
    body.insert(position, new)
    return module.with_changes(body=body)
