"""The render tree: a template's values compiled once into nodes (constants, typed
expressions, interpolations, maps, lists), then rendered many times against a scope.

Variants' patches are merged into the tree as JSON merge patches (RFC 7386)."""

from __future__ import annotations

from typing import Any, Callable

from konfig.compile.templates.expressions import (
    ExpressionSyntaxError,
    Program,
    cel_type,
    copy_json,
    evaluation_error,
    has_expression,
    split_expressions,
    to_json,
)
from konfig.compile.templates.limits import CostMeter, ExpressionTooExpensive
from konfig.errors import Problem
from konfig.model.template import ResourceTemplate

FAILED = object()  # a value whose expression failed; its problem is recorded


class Scope:
    """What one render needs: the CEL context, the cost meter, where problems go, and who
    asked (``workload checkout, resource orders, environment prod``)."""

    __slots__ = ("ctx", "template", "problems", "who", "meter")

    def __init__(self, ctx: Any, template: ResourceTemplate, who: str, meter: CostMeter) -> None:
        self.ctx = ctx
        self.template = template
        self.problems: list[Problem] = []
        self.who = who
        self.meter = meter

    def fail(self, origin: str, message: str) -> object:
        """Record a problem at the template's field ``origin``; returns :data:`FAILED`."""
        self.problems.append(Problem(self.template.locate(origin), f"{message} ({self.who})"))
        return FAILED

    def evaluate(self, program: Program, origin: str) -> Any:
        """``program``'s value, or :data:`FAILED` (problem recorded) if it fails or is too
        expensive."""
        try:
            self.meter.charge(program)
            return program.program.execute(self.ctx)
        except ExpressionTooExpensive as error:
            return self.fail(origin, str(error))
        except Exception as error:  # cel raises RuntimeError, KeyError, TypeError, ...
            if isinstance(error.__cause__, ExpressionTooExpensive):
                return self.fail(origin, str(error.__cause__))
            return self.fail(origin, evaluation_error(program.source, error))


class Node:
    __slots__ = ()

    def render(self, scope: Scope) -> Any:  # pragma: no cover - interface
        raise NotImplementedError


class Const(Node):
    """A value without expressions. Scalars are shared, containers copied per render."""

    __slots__ = ("value", "mutable")

    def __init__(self, value: Any) -> None:
        self.value = value
        self.mutable = isinstance(value, (dict, list))

    def render(self, scope: Scope) -> Any:
        return copy_json(self.value) if self.mutable else self.value


class Expr(Node):
    """A string that is exactly one ``${expr}``: the expression's value, typed."""

    __slots__ = ("program", "origin")

    def __init__(self, program: Program, origin: str) -> None:
        self.program, self.origin = program, origin

    def render(self, scope: Scope) -> Any:
        value = scope.evaluate(self.program, self.origin)
        if value is FAILED or value is None or isinstance(value, (str, bool, int, float)):
            return value
        try:
            return to_json(value)
        except TypeError as error:
            return scope.fail(self.origin, f"${{{self.program.source}}} {error}")


class Interpolation(Node):
    """Text with ``${expr}`` parts: each evaluated and written as text."""

    __slots__ = ("parts", "origin")

    def __init__(self, parts: list[str | Program], origin: str) -> None:
        self.parts, self.origin = parts, origin

    def render(self, scope: Scope) -> Any:
        out = []
        for part in self.parts:
            if isinstance(part, str):
                out.append(part)
                continue
            value = scope.evaluate(part, self.origin)
            if value is FAILED:
                return FAILED
            if isinstance(value, str):
                out.append(value)
            elif isinstance(value, bool):
                out.append("true" if value else "false")
            elif isinstance(value, (int, float)):
                out.append(str(value))
            else:
                return scope.fail(
                    self.origin,
                    f"${{{part.source}}} gives {cel_type(value)}, which cannot be interpolated "
                    "into text (use a string, number or boolean, or make the whole value one "
                    "expression)",
                )
        return "".join(out)


class MapNode(Node):
    __slots__ = ("items",)

    def __init__(self, items: dict[str, Node]) -> None:
        self.items = items

    def render(self, scope: Scope) -> Any:
        out = {}
        failed = False
        for key, node in self.items.items():
            value = node.render(scope)
            if value is FAILED:
                failed = True
            elif value is not None:
                out[key] = value
        return FAILED if failed else out


class ListNode(Node):
    __slots__ = ("items",)

    def __init__(self, items: list[Node]) -> None:
        self.items = items

    def render(self, scope: Scope) -> Any:
        out = [node.render(scope) for node in self.items]
        return FAILED if any(v is FAILED for v in out) else out


def compile_value(
    value: Any,
    origin: str,
    problems: list[tuple[str, str]],
    program_for: Callable[[str], Program],
    problems_of: Callable[[str], list[str]],
) -> Node:
    """Build the render tree of one value; syntax and reference problems are collected as
    ``(origin, message)`` (the caller locates them in the template)."""
    if isinstance(value, str):
        if "${" not in value:
            return Const(value)
        try:
            parts = split_expressions(value)
        except ExpressionSyntaxError as error:
            problems.append((origin, f"{error} in {value[:200]!r}"))
            return Const(value)
        compiled: list[str | Program] = []
        for part in parts:
            if isinstance(part, str):
                compiled.append(part)
                continue
            issues = problems_of(part[0])
            if issues:
                problems.extend((origin, issue) for issue in issues)
                return Const(value)
            compiled.append(program_for(part[0]))
        if len(compiled) == 1 and isinstance(compiled[0], Program):
            return Expr(compiled[0], origin)
        if all(isinstance(part, str) for part in compiled):
            return Const("".join(compiled))  # only escapes
        return Interpolation(compiled, origin)
    if isinstance(value, dict):
        items = {}
        for key, item in value.items():
            if isinstance(key, str) and has_expression(key):
                problems.append(
                    (f"{origin}.{key}", "map keys cannot hold expressions; only values can")
                )
            items[key] = compile_value(item, f"{origin}.{key}", problems, program_for, problems_of)
        if all(isinstance(node, Const) for node in items.values()):
            return Const({k: n.value for k, n in items.items()})  # type: ignore[attr-defined]
        return MapNode(items)
    if isinstance(value, list):
        nodes = [
            compile_value(item, f"{origin}[{i}]", problems, program_for, problems_of)
            for i, item in enumerate(value)
        ]
        if all(isinstance(node, Const) for node in nodes):
            return Const([n.value for n in nodes])  # type: ignore[attr-defined]
        return ListNode(nodes)
    return Const(value)


def merge_nodes(base: Node, patch: Node) -> Node:
    """Deep-merge a variant's compiled patch over a compiled value (JSON merge patch, RFC 7386:
    maps merge key by key, ``null`` deletes, anything else replaces)."""
    base_items = _map_items(base)
    patch_items = _map_items(patch)
    if base_items is None or patch_items is None:
        return patch
    merged = dict(base_items)
    for key, node in patch_items.items():
        if isinstance(node, Const) and node.value is None:
            merged.pop(key, None)
        elif key in merged:
            merged[key] = merge_nodes(merged[key], node)
        else:
            merged[key] = node
    if all(isinstance(node, Const) for node in merged.values()):
        return Const({k: n.value for k, n in merged.items()})  # type: ignore[attr-defined]
    return MapNode(merged)


def without_nulls(node: Node) -> Node:
    """The tree with ``null`` fields removed (after merging, where ``null`` meant "delete"):
    in a rendered manifest a ``null`` value means "leave the field out"."""
    if isinstance(node, MapNode):
        items = {
            key: without_nulls(child)
            for key, child in node.items.items()
            if not (isinstance(child, Const) and child.value is None)
        }
        return MapNode(items)
    if isinstance(node, ListNode):
        return ListNode([without_nulls(child) for child in node.items])
    if isinstance(node, Const) and node.mutable:
        return Const(_strip_nulls(node.value))
    return node


def _strip_nulls(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _strip_nulls(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_strip_nulls(v) for v in value]
    return value


def _map_items(node: Node) -> dict[str, Node] | None:
    if isinstance(node, MapNode):
        return node.items
    if isinstance(node, Const) and isinstance(node.value, dict):
        return {key: Const(value) for key, value in node.value.items()}
    return None


def located(template: ResourceTemplate, problems: list[tuple[str, str]]) -> list[Problem]:
    """``(origin, message)`` pairs as problems at the template's file, line and field."""
    return [Problem(template.locate(origin), message) for origin, message in dict.fromkeys(problems)]

