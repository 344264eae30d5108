"""CEL expressions in template strings: ``${...}`` parsing, compiled programs, the function
library, static checks and the conversion of CEL results to JSON.

Expressions are evaluated by the ``common-expression-language`` package (``import cel``,
cel-rust bindings); see https://github.com/google/cel-spec for the language.
"""

from __future__ import annotations

import datetime
import hashlib
import logging
import re
from dataclasses import dataclass
from typing import Any, Callable

import cel
from cel import stdlib as cel_stdlib

#: The roots an expression may refer to (spec/definitions.md, "ResourceTemplate").
ROOTS: tuple[str, ...] = (
    "workload",
    "resource",
    "environment",
    "domain",
    "platform",
    "controlPlane",
    "network",
    "params",
)

# Identifiers CEL reports as variables that are not data: type names and the namespaces of
# extension functions (math.greatest, ...).
_TYPE_AND_NAMESPACE_IDENTS = frozenset(
    "int uint double bool string bytes list map null_type type dyn "
    "math strings sets base64 lists optional".split()
)
# Functions of the CEL core that cel-rust implements natively (operators, which CEL names
# ``_+_``, ``@in`` ..., are recognised by their first character).
_NATIVE_FUNCTIONS = frozenset(
    "size has int uint double string bytes bool timestamp duration dyn type contains "
    "startsWith endsWith matches max min exists all exists_one map filter "
    "getFullYear getMonth getDayOfYear getDayOfMonth getDate getDayOfWeek getHours "
    "getMinutes getSeconds getMilliseconds of none ofNonZeroValue orValue hasValue value or".split()
)
_MACRO_VARIABLE = re.compile(
    r"\.\s*(?:all|exists|exists_one|map|filter)\s*\(\s*([A-Za-z_][A-Za-z0-9_]*)\s*,"
)



def _drop_function_failures(record: logging.LogRecord) -> bool:
    """cel-rust also logs every failing Python function call (logger ``cel``); Konfig reports
    those failures as problems at the template's field, so the log line would be noise."""
    return not str(record.getMessage()).startswith("Python function ")


logging.getLogger("cel").addFilter(_drop_function_failures)

# --------------------------------------------------------------------------- helper functions


def short_hash(text: str) -> str:
    """First 4 hex digits of the SHA-256 of ``text`` (CEL: ``shortHash(text)``)."""
    return hashlib.sha256(str(text).encode()).hexdigest()[:4]


def fit_name(name: str, max_length: int) -> str:
    """``name`` if it has at most ``max_length`` characters; otherwise its longest prefix that
    leaves room for ``-`` and :func:`short_hash` of the whole name, without a trailing hyphen
    (CEL: ``fitName(name, max)``). Stable across runs; distinct names stay distinct with high
    probability. Raises ``ValueError`` if ``max_length`` < 6."""
    name, max_length = str(name), int(max_length)
    if max_length < 6:
        raise ValueError(f"fitName: max must be at least 6, got {max_length}")
    if len(name) <= max_length:
        return name
    return f"{name[: max_length - 5].rstrip('-')}-{short_hash(name)}"


CUSTOM_FUNCTIONS: dict[str, Callable[..., Any]] = {"fitName": fit_name, "shortHash": short_hash}
# cel-rust reports a namespaced call such as math.greatest(...) as function "greatest".
_KNOWN_FUNCTIONS = (
    _NATIVE_FUNCTIONS
    | frozenset(name.rpartition(".")[2] for name in cel_stdlib.STDLIB_FUNCTIONS)
    | frozenset(CUSTOM_FUNCTIONS)
)


# --------------------------------------------------------------------------- parsing ${...}


class ExpressionSyntaxError(ValueError):
    """A ``${`` without its closing brace, or an empty ``${}``."""


def split_expressions(text: str) -> list[str | tuple[str]]:
    """Split a template string into literal text (``str``) and expressions (``(source,)``).

    ``$${`` is an escaped, literal ``${``. Braces and quotes inside an expression are matched,
    so ``${ {"a": "}"}.a }`` is one expression. Raises :class:`ExpressionSyntaxError`.

    >>> split_expressions("db-${resource.name}")
    ['db-', ('resource.name',)]
    """
    parts: list[str | tuple[str]] = []
    literal: list[str] = []
    i, n = 0, len(text)
    while i < n:
        if text.startswith("$${", i):
            literal.append("${")
            i += 3
        elif text.startswith("${", i):
            end = _expression_end(text, i + 2)
            if end is None:
                raise ExpressionSyntaxError(f"'${{' at offset {i} has no closing '}}'")
            source = text[i + 2 : end].strip()
            if not source:
                raise ExpressionSyntaxError(f"empty expression '${{}}' at offset {i}")
            if literal:
                parts.append("".join(literal))
                literal = []
            parts.append((source,))
            i = end + 1
        else:
            literal.append(text[i])
            i += 1
    if literal:
        parts.append("".join(literal))
    return parts


def _expression_end(text: str, i: int) -> int | None:
    """Index of the ``}`` closing an expression that starts at ``i``, skipping CEL string
    literals and nested braces; ``None`` if there is none."""
    depth, n = 0, len(text)
    while i < n:
        char = text[i]
        if char in "'\"":
            quote = text[i : i + 3] if text[i : i + 3] in ("'''", '"""') else char
            raw = i > 0 and text[i - 1] in "rR"
            i += len(quote)
            while i < n and not text.startswith(quote, i):
                i += 2 if (text[i] == "\\" and not raw) else 1
            if i >= n:
                return None
            i += len(quote)
            continue
        if char == "{":
            depth += 1
        elif char == "}":
            if depth == 0:
                return i
            depth -= 1
        i += 1
    return None


def has_expression(text: str) -> bool:
    """Whether ``text`` holds a ``${...}`` (escaped ``$${`` does not count)."""
    return "${" in text.replace("$${", "")


def condition_source(condition: str) -> str:
    """An ``includeWhen`` entry may be written ``${expr}`` (as in kro) or as bare CEL."""
    text = condition.strip()
    if text.startswith("${") and text.endswith("}"):
        try:
            parts = split_expressions(text)
        except ExpressionSyntaxError:
            return text  # CEL will report the syntax error
        if len(parts) == 1 and isinstance(parts[0], tuple):
            return parts[0][0]
    return text


# --------------------------------------------------------------------------- compiled programs


@dataclass(frozen=True)
class Program:
    """One compiled CEL expression and what it refers to."""

    source: str
    program: Any  # cel.Program
    variables: tuple[str, ...]
    functions: tuple[str, ...]
    comprehension_depth: int


def compile_program(source: str) -> Program:
    """Compile one CEL expression. Raises ``ValueError`` (syntax error)."""
    program = cel.compile(source)
    return Program(source, program, tuple(program.variables()), tuple(program.functions()),
                   nesting_depths(source)[1])


_MACROS = ("map", "filter", "all", "exists", "exists_one")


def nesting_depths(source: str) -> tuple[int, int]:
    """``(bracket nesting, comprehension nesting)`` of a CEL source, skipping string literals.

    A comprehension is a ``(`` right after ``.map``, ``.filter``, ``.all``, ``.exists`` or
    ``.exists_one``."""
    stack: list[bool] = []  # True for a macro's parenthesis
    deepest = macros = deepest_macros = 0
    i, n = 0, len(source)
    while i < n:
        char = source[i]
        if char in "'\"":
            quote = source[i : i + 3] if source[i : i + 3] in ("'''", '"""') else char
            i += len(quote)
            while i < n and not source.startswith(quote, i):
                i += 2 if source[i] == "\\" else 1
            i += len(quote)
            continue
        if char in "([{":
            is_macro = char == "(" and _macro_before(source, i)
            stack.append(is_macro)
            macros += is_macro
            deepest = max(deepest, len(stack))
            deepest_macros = max(deepest_macros, macros)
        elif char in ")]}" and stack:
            macros -= stack.pop()
        i += 1
    return deepest, deepest_macros


def _macro_before(source: str, i: int) -> bool:
    j = i - 1
    while j >= 0 and source[j].isspace():
        j -= 1
    end = j + 1
    while j >= 0 and (source[j].isalnum() or source[j] == "_"):
        j -= 1
    name = source[j + 1 : end]
    k = j
    while k >= 0 and source[k].isspace():
        k -= 1
    return name in _MACROS and k >= 0 and source[k] == "."


def reference_problems(program: Program) -> list[str]:
    """Why a compiled expression is not acceptable in a template: roots other than
    :data:`ROOTS`, unknown functions; ``[]`` if it is."""
    problems = []
    source = program.source
    bound = set(_MACRO_VARIABLE.findall(source))
    unknown_roots = sorted(
        v
        for v in program.variables
        if v not in ROOTS and v not in bound and v not in _TYPE_AND_NAMESPACE_IDENTS
    )
    if unknown_roots:
        problems.append(
            f"${{{source}}} refers to {', '.join(map(repr, unknown_roots))}; expressions may use "
            f"only {', '.join(ROOTS)}"
        )
    unknown_functions = sorted(
        f for f in program.functions if f[:1] not in "_@" and f not in _KNOWN_FUNCTIONS
    )
    if unknown_functions:
        problems.append(
            f"${{{source}}} calls unknown function(s) {', '.join(map(repr, unknown_functions))}"
        )
    return problems


_CEL_ERROR = re.compile(r"ERROR: <input>:(\d+):(\d+): ([^\n]*)")


def syntax_detail(text: str) -> str:
    """The most telling line of a cel-rust parse error (``column 11: Syntax error: ...``)."""
    errors = _CEL_ERROR.findall(text)
    if not errors:
        return first_line(text)
    line, column, message = next((e for e in errors if "Syntax error" in e[2]), errors[0])
    return f"column {column}: {message.strip()}"


def first_line(text: str) -> str:
    return next((line.strip() for line in text.splitlines() if line.strip()), text)


def new_cel_context(functions: dict[str, Callable[..., Any]] | None = None) -> cel.Context:
    """A CEL context holding the standard extensions and Konfig's functions (``functions``
    replace entries of the library by name)."""
    ctx = cel.Context()
    cel_stdlib.add_stdlib_to_context(ctx)
    for name, function in {**CUSTOM_FUNCTIONS, **(functions or {})}.items():
        ctx.add_function(name, function)
    return ctx


# --------------------------------------------------------------------------- results


def evaluation_error(source: str, error: Exception) -> str:
    """A plain-words message for an expression that failed at run time."""
    if isinstance(error, KeyError):
        detail = f"no such key {error.args[0]!r}" if error.args else "no such key"
    else:
        text = first_line(str(error)) or type(error).__name__
        # cel-rust wraps a Python function's exception: "Function 'f' error: Python function
        # call failed: ValueError: message. Check function arguments and their types."
        match = _WRAPPED.search(text)
        detail = f"{match['function']}: {match['message']}" if match else text
    return f"${{{source}}} failed: {detail}"


_WRAPPED = re.compile(
    r"Function '(?P<function>[^']+)' error: Python function call failed: \w+: "
    r"(?P<message>.*?)(?:\. Check function arguments and their types\.)?$"
)


def cel_type(value: Any) -> str:
    """``null``, ``a map``, ``a list``, ``a str``...: a value's type, for messages."""
    if value is None:
        return "null"
    if isinstance(value, dict):
        return "a map"
    if isinstance(value, list):
        return "a list"
    return f"a {type(value).__name__}"


def to_json(value: Any) -> Any:
    """A CEL result as a JSON-compatible value. Durations become ``"<seconds>s"`` (the form
    Google APIs and Config Connector use), timestamps RFC 3339. Raises ``TypeError``."""
    if value is None or isinstance(value, (str, bool, int, float)):
        return value
    if isinstance(value, dict):
        # cel-rust maps are hash maps with a per-process seed: sort keys for stable output.
        for key in value:
            if not isinstance(key, str):
                raise TypeError(f"gives a map with a non-string key {key!r}")
        # A null value removes its field, as it does for a template's own fields.
        return {key: to_json(value[key]) for key in sorted(value) if value[key] is not None}
    if isinstance(value, (list, tuple)):
        return [to_json(item) for item in value]
    if isinstance(value, datetime.timedelta):
        seconds = value.total_seconds()
        return f"{int(seconds)}s" if seconds == int(seconds) else f"{seconds}s"
    if isinstance(value, datetime.datetime):
        return value.isoformat().replace("+00:00", "Z")
    raise TypeError(f"gives {cel_type(value)}, which is not a JSON value")


def copy_json(value: Any) -> Any:
    """A copy of JSON-like data (faster than ``copy.deepcopy``, which tracks cycles)."""
    if isinstance(value, dict):
        return {key: copy_json(item) for key, item in value.items()}
    if isinstance(value, list):
        return [copy_json(item) for item in value]
    return value
