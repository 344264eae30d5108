"""Cost limits on CEL expressions, so no template or parameter can hang or exhaust Konfig.

cel-rust has no cost budget of its own and holds the GIL while it evaluates (measured: about
13 µs per comprehension step on the reference machine, so ``xs.map(a, xs.map(b, xs.map(c,
...)))`` over 300 items would run for minutes), so Konfig bounds expressions the way
Kubernetes bounds CEL validation rules (estimated cost against a budget, refused before
running; https://kubernetes.io/docs/reference/using-api/cel/#resource-constraints):

- **at load time** (static): an expression has at most :data:`MAX_EXPRESSION_LENGTH`
  characters, at most :data:`MAX_NESTING` levels of brackets and at most
  :data:`MAX_COMPREHENSION_DEPTH` nested comprehension macros (``map``, ``filter``, ``all``,
  ``exists``, ``exists_one``);
- **before each evaluation** (estimated): ``n ** depth`` steps, times one per 100 characters
  of the longest string it reads, where ``n`` is the largest collection the expression can
  iterate (the largest list or map in the values it reads, the expression's own literals,
  :data:`MAX_LIST_ITEMS` if it calls ``lists.range``, the longest string if it calls
  ``split``) and ``depth`` its comprehension nesting, must stay within
  :data:`MAX_EXPRESSION_COST`; a whole render (one resource of one workload in one
  environment) within :data:`MAX_RENDER_COST`; every comprehension of a whole compile within
  :data:`MAX_COMPILE_COST` (held by the :class:`TemplateEngine` of the compile);
- **while evaluating**: the extension functions (Python) refuse results longer than
  :data:`MAX_STRING_LENGTH` characters or :data:`MAX_LIST_ITEMS` items, and ``lists.range``
  larger than :data:`MAX_LIST_ITEMS`.
"""

from __future__ import annotations

import functools
from typing import Any, Callable, Iterable, Mapping

from cel import stdlib as cel_stdlib

from konfig.compile.templates.expressions import Program, nesting_depths

#: Longest expression source, in characters (the longest bundled one has about 200).
MAX_EXPRESSION_LENGTH = 4096
#: Deepest nesting of ``(``, ``[`` and ``{`` in an expression.
MAX_NESTING = 32
#: Deepest nesting of comprehension macros.
MAX_COMPREHENSION_DEPTH = 3
#: Estimated steps of one evaluation (measured: 20,000 steps of a nested map take about 0.5 s
#: of cel-rust on the reference machine).
MAX_EXPRESSION_COST = 20_000
#: Estimated steps of one render (every expression of one resource in one environment).
MAX_RENDER_COST = 100_000
#: Estimated comprehension steps of a whole compile (every render of every workload): bounds
#: the time a tree full of just-affordable expressions can take (about 30 s at the worst).
MAX_COMPILE_COST = 1_000_000
#: Longest string an extension function may return.
MAX_STRING_LENGTH = 256 * 1024
#: Most items a list an extension function returns may hold.
MAX_LIST_ITEMS = 10_000

class ExpressionTooExpensive(ValueError):
    """An expression whose estimated or actual cost exceeds a limit."""


def static_problems(source: str) -> list[str]:
    """Load-time limit violations of the expression ``source`` (``[]`` if none)."""
    if len(source) > MAX_EXPRESSION_LENGTH:
        return [
            f"expression is {len(source)} characters long; at most {MAX_EXPRESSION_LENGTH} are "
            "allowed (split it, or move data into parameters)"
        ]
    nesting, depth = nesting_depths(source)
    if nesting > MAX_NESTING:
        return [f"${{{_short(source)}}} nests brackets {nesting} deep; at most {MAX_NESTING}"]
    if depth > MAX_COMPREHENSION_DEPTH:
        return [
            f"${{{_short(source)}}} nests {depth} comprehensions (map, filter, all, exists); at "
            f"most {MAX_COMPREHENSION_DEPTH}, so its cost stays bounded"
        ]
    return []


def _short(source: str) -> str:
    return source if len(source) <= 80 else source[:77] + "..."


# --------------------------------------------------------------------------- estimated cost


def _largest(value: Any, budget: list[int]) -> tuple[int, int]:
    """``(largest collection, longest string)`` inside ``value``; stops walking after
    ``budget[0]`` nodes (the sizes so far are then a lower bound, and huge anyway)."""
    if budget[0] <= 0:
        return 0, 0
    budget[0] -= 1
    if isinstance(value, str):
        return 0, len(value)
    if isinstance(value, (dict, list)):
        items = value.values() if isinstance(value, dict) else value
        collection, string = len(value), 0
        for item in items:
            inner, text = _largest(item, budget)
            collection, string = max(collection, inner), max(string, text)
        return collection, string
    return 0, 0


class CostMeter:
    """Estimates and accumulates the cost of the evaluations of one render, charging the
    engine-wide ``budget`` (``[steps left]``, shared by every render of one compile) too.

    ``variables`` are the render's roots; their sizes are measured once per root."""

    __slots__ = ("variables", "_sizes", "spent", "budget")

    def __init__(self, variables: Mapping[str, Any], budget: list[int] | None = None) -> None:
        self.variables = variables
        self._sizes: dict[str, tuple[int, int]] = {}
        self.spent = 0
        self.budget = budget if budget is not None else [MAX_COMPILE_COST]

    def _size(self, root: str) -> tuple[int, int]:
        size = self._sizes.get(root)
        if size is None:
            size = _largest(self.variables.get(root), [200_000])
            self._sizes[root] = size
        return size

    def charge(self, program: Program) -> None:
        """Account for one evaluation of ``program``; raises :class:`ExpressionTooExpensive`
        when it, the render so far, or the compile so far exceeds its budget."""
        cost = estimated_cost(program, self._size)
        if cost > MAX_EXPRESSION_COST:
            raise ExpressionTooExpensive(
                f"${{{_short(program.source)}}} may take about {cost:,} evaluation steps with "
                f"these values; at most {MAX_EXPRESSION_COST:,} are allowed (fewer nested "
                "map/filter calls, shorter strings, or smaller lists in params)"
            )
        self.spent += cost
        if self.spent > MAX_RENDER_COST:
            raise ExpressionTooExpensive(
                f"rendering this resource takes more than {MAX_RENDER_COST:,} evaluation steps; "
                "simplify the template's expressions"
            )
        if cost > 1:  # only comprehensions and range count against the whole compile
            self.budget[0] -= cost
            if self.budget[0] < 0:
                raise ExpressionTooExpensive(
                    f"the template expressions of this compile take more than "
                    f"{MAX_COMPILE_COST:,} evaluation steps in all; simplify the comprehensions"
                )


def estimated_cost(program: Program, size: Callable[[str], tuple[int, int]]) -> int:
    """Upper bound of the evaluation steps of ``program``: ``1`` without comprehension or
    ``lists.range``, else ``n ** depth`` weighted by string length, where ``n`` is the largest
    collection it can iterate (``size(root)`` gives ``(largest collection, longest string)`` of
    a root; literals hold at most one item more than the source has commas) and strings cost
    one step per 100 characters copied."""
    depth = program.comprehension_depth
    functions = program.functions
    if depth == 0 and "range" not in functions:
        return 1
    n = program.source.count(",") + 1
    longest = len(program.source)
    for root in program.variables:
        collection, string = size(root)
        n = max(n, collection, string if "split" in functions else 0)
        longest = max(longest, string)
    if "range" in functions:
        n = max(n, MAX_LIST_ITEMS)
    return n ** max(depth, 1) * (1 + longest // 100)


# --------------------------------------------------------------------------- guarded functions


def _check_result(name: str, value: Any) -> Any:
    if isinstance(value, str) and len(value) > MAX_STRING_LENGTH:
        raise ExpressionTooExpensive(
            f"{name} would give a string of {len(value):,} characters; at most "
            f"{MAX_STRING_LENGTH:,}"
        )
    if isinstance(value, (list, tuple)) and len(value) > MAX_LIST_ITEMS:
        raise ExpressionTooExpensive(
            f"{name} would give a list of {len(value):,} items; at most {MAX_LIST_ITEMS:,}"
        )
    return value


def _range(n: int) -> list[int]:
    if int(n) > MAX_LIST_ITEMS:
        raise ExpressionTooExpensive(f"lists.range({n}): at most {MAX_LIST_ITEMS:,} items")
    return list(range(int(n)))


def _replace(s: str, old: str, new: str, limit: int = -1) -> str:
    count = s.count(old) if old else len(s) + 1
    if limit >= 0:
        count = min(count, limit)
    if len(s) + count * max(len(new) - len(old), 0) > MAX_STRING_LENGTH:
        raise ExpressionTooExpensive(
            f"replace would give more than {MAX_STRING_LENGTH:,} characters; at most "
            f"{MAX_STRING_LENGTH:,} are allowed"
        )
    return cel_stdlib.replace(s, old, new, limit)


def _join(items: Iterable[Any], sep: str = "") -> str:
    items = list(items)
    total = sum(len(str(item)) for item in items) + len(sep) * max(len(items) - 1, 0)
    if total > MAX_STRING_LENGTH:
        raise ExpressionTooExpensive(
            f"join would give a string of {total:,} characters; at most {MAX_STRING_LENGTH:,}"
        )
    return cel_stdlib.join(items, sep)


def _guard(name: str, function: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(function)
    def guarded(*args: Any) -> Any:
        return _check_result(name, function(*args))

    return guarded


_SPECIAL = {"lists.range": _range, "replace": _replace, "join": _join}
#: The ``cel.stdlib`` extension functions with the result limits above, by CEL name.
GUARDED_FUNCTIONS: Mapping[str, Callable[..., Any]] = {
    name: _guard(name, _SPECIAL.get(name, function))
    for name, function in cel_stdlib.STDLIB_FUNCTIONS.items()
}
