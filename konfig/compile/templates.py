"""Resource templates → Config Connector objects, with CEL expressions. Pure: no I/O.

A :class:`~konfig.model.template.ResourceTemplate` holds Config Connector manifests whose string
values may contain ``${...}`` expressions in CEL (https://github.com/google/cel-spec), evaluated
by the ``common-expression-language`` package (``import cel``), as kro does
(https://kro.run/docs/concepts/simple-schema/ , "CEL expressions"):

- a string that is exactly one ``${expr}`` takes the expression's value *and type*
  (``replicas: "${params.replicas}"`` renders an integer, ``"${[...]}"`` a list);
- otherwise every ``${expr}`` is interpolated as text (``"${resource.objectName}-db"``); the
  expression must give a string, number or boolean there;
- ``$${`` writes a literal ``${``;
- a value that renders to ``null`` removes its field (so optional fields can be left out).

Expressions see these roots (nothing else, no I/O, no side effects, always terminating):
``workload``, ``resource``, ``environment``, ``domain``, ``platform``, ``controlPlane`` (given by
the compiler, see :func:`render_resource`) and ``params`` (the template's parameters: JSON-Schema
defaults, overlaid with the matching ``spec.environments`` variants' ``params`` — first
``production`` / ``nonproduction``, then the environment's own name — then with the workload's
``params``). Besides the CEL standard library, the cel-go style string, list, math, sets and
base64 extensions of ``cel.stdlib`` are available, and two naming helpers:

- ``fitName(name, max)``: ``name`` if it has at most ``max`` characters, else a prefix of it, a
  hyphen and a 4-character hash of the whole name (stable, unique: for globally unique names
  such as bucket names);
- ``shortHash(text)``: the first 4 hex digits of the SHA-256 of ``text``.

Variants' resource patches are deep-merged into the resources with the same ``id`` (maps merge
key by key, lists and scalars replace, ``null`` deletes), in the same order as their params.

Templates are compiled once per (template, environment kind): every expression is parsed and
checked up front, and rendering walks a prebuilt tree of closures, so rendering thousands of
workload environments costs one CEL evaluation per expression site and nothing more.
"""

from __future__ import annotations

import copy
import datetime
import hashlib
import re
import threading
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Mapping

import cel
import jsonschema
from cel import stdlib as cel_stdlib
from jsonschema.exceptions import SchemaError

from konfig.errors import DefinitionError, Location, Problem
from konfig.model.controlplane import Environment
from konfig.model.template import ResourceTemplate
from konfig.model.workload import ResourceRequest

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
#: Variant keys that apply to every environment flagged ``production: true`` / not flagged.
PRODUCTION, NONPRODUCTION = "production", "nonproduction"

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


_CUSTOM_FUNCTIONS: dict[str, Callable[..., Any]] = {"fitName": fit_name, "shortHash": short_hash}
# cel-rust reports a namespaced call such as math.greatest(...) as function "greatest".
_KNOWN_FUNCTIONS = (
    _NATIVE_FUNCTIONS
    | frozenset(name.rpartition(".")[2] for name in cel_stdlib.STDLIB_FUNCTIONS)
    | frozenset(_CUSTOM_FUNCTIONS)
)

_local = threading.local()


def _context_with(variables: Mapping[str, Any]) -> cel.Context:
    """The per-thread CEL context (``cel.Context`` is not thread-safe), holding the function
    library and ``variables``.

    Converting variables to CEL values dominates the cost of a render, and consecutive renders
    share most roots (same control plane, domain, environment, often the same params), so only
    the roots that differ from the previous render's (compared by value, against a private
    copy) are converted again.
    """
    ctx = getattr(_local, "ctx", None)
    if ctx is None:
        ctx = cel.Context()
        cel_stdlib.add_stdlib_to_context(ctx)
        for name, function in _CUSTOM_FUNCTIONS.items():
            ctx.add_function(name, function)
        _local.ctx, _local.last = ctx, {}
    last: dict[str, Any] = _local.last
    changed = {key: value for key, value in variables.items() if last.get(key, _FAILED) != value}
    if changed:
        ctx.update(changed)
        for key, value in changed.items():
            last[key] = _copy_json(value)
    return ctx


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


# --------------------------------------------------------------------------- compiled programs


@dataclass(frozen=True)
class _Program:
    source: str
    program: Any  # cel.Program
    variables: tuple[str, ...]
    functions: tuple[str, ...]


_program_cache: dict[str, _Program] = {}
_program_lock = threading.Lock()


def compile_expression(source: str) -> _Program:
    """Compile one CEL expression, cached by its text. Raises ``ValueError`` (syntax error)."""
    found = _program_cache.get(source)
    if found is None:
        program = cel.compile(source)
        found = _Program(
            source, program, tuple(program.variables()), tuple(program.functions())
        )
        with _program_lock:
            if len(_program_cache) > 20_000:  # templates are few; this only bounds misuse
                _program_cache.clear()
            _program_cache[source] = found
    return found


def expression_problems(source: str) -> list[str]:
    """Why the CEL expression ``source`` is not acceptable in a template (syntax, roots other
    than :data:`ROOTS`, unknown functions); ``[]`` if it is."""
    try:
        program = compile_expression(source)
    except Exception as error:  # cel raises ValueError; be safe with anything else
        return [f"CEL syntax error in ${{{source}}}: {_syntax_detail(str(error))}"]
    problems = []
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


def _syntax_detail(text: str) -> str:
    """The most telling line of a cel-rust parse error (``column 11: Syntax error: ...``)."""
    errors = _CEL_ERROR.findall(text)
    if not errors:
        return _first_line(text)
    line, column, message = next((e for e in errors if "Syntax error" in e[2]), errors[0])
    return f"column {column}: {message.strip()}"


def _first_line(text: str) -> str:
    return next((line.strip() for line in text.splitlines() if line.strip()), text)


# --------------------------------------------------------------------------- render tree

_FAILED = object()  # a value whose expression failed; its problem is recorded


class _Scope:
    """What one render needs: the CEL context, where problems go, and who asked."""

    __slots__ = ("ctx", "template", "problems", "who")

    def __init__(self, ctx: Any, template: ResourceTemplate, who: str) -> None:
        self.ctx = ctx
        self.template = template
        self.problems: list[Problem] = []
        self.who = who

    def fail(self, origin: str, message: str) -> object:
        self.problems.append(Problem(self.template.locate(origin), f"{message} ({self.who})"))
        return _FAILED


class _Node:
    __slots__ = ()

    def render(self, scope: _Scope) -> Any:  # pragma: no cover - interface
        raise NotImplementedError


class _Const(_Node):
    """A value without expressions. Scalars are shared, containers copied per render."""

    __slots__ = ("value", "mutable")

    def __init__(self, value: Any) -> None:
        self.value = value
        self.mutable = isinstance(value, (dict, list))

    def render(self, scope: _Scope) -> Any:
        return _copy_json(self.value) if self.mutable else self.value


def _copy_json(value: Any) -> Any:
    """A copy of JSON-like data (faster than ``copy.deepcopy``, which tracks cycles)."""
    if isinstance(value, dict):
        return {key: _copy_json(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_copy_json(item) for item in value]
    return value


class _Expr(_Node):
    """A string that is exactly one ``${expr}``: the expression's value, typed."""

    __slots__ = ("program", "origin")

    def __init__(self, program: _Program, origin: str) -> None:
        self.program, self.origin = program, origin

    def render(self, scope: _Scope) -> Any:
        try:
            value = self.program.program.execute(scope.ctx)
        except Exception as error:  # cel raises RuntimeError, KeyError, TypeError, ...
            return scope.fail(self.origin, _evaluation_error(self.program.source, error))
        if value is None or isinstance(value, (str, bool, int, float)):
            return value
        try:
            return _to_json(value)
        except TypeError as error:
            return scope.fail(self.origin, f"${{{self.program.source}}} {error}")


class _Interpolation(_Node):
    """Text with ``${expr}`` parts: each evaluated and written as text."""

    __slots__ = ("parts", "origin")

    def __init__(self, parts: list[str | _Program], origin: str) -> None:
        self.parts, self.origin = parts, origin

    def render(self, scope: _Scope) -> Any:
        out = []
        for part in self.parts:
            if isinstance(part, str):
                out.append(part)
                continue
            try:
                value = part.program.execute(scope.ctx)
            except Exception as error:
                return scope.fail(self.origin, _evaluation_error(part.source, error))
            if isinstance(value, str):
                out.append(value)
            elif isinstance(value, bool):
                out.append("true" if value else "false")
            elif isinstance(value, (int, float)):
                out.append(str(value))
            else:
                return scope.fail(
                    self.origin,
                    f"${{{part.source}}} gives {_cel_type(value)}, which cannot be interpolated "
                    "into text (use a string, number or boolean, or make the whole value one "
                    "expression)",
                )
        return "".join(out)


class _Map(_Node):
    __slots__ = ("items",)

    def __init__(self, items: dict[str, _Node]) -> None:
        self.items = items

    def render(self, scope: _Scope) -> Any:
        out = {}
        failed = False
        for key, node in self.items.items():
            value = node.render(scope)
            if value is _FAILED:
                failed = True
            elif value is not None:
                out[key] = value
        return _FAILED if failed else out


class _List(_Node):
    __slots__ = ("items",)

    def __init__(self, items: list[_Node]) -> None:
        self.items = items

    def render(self, scope: _Scope) -> Any:
        out = [node.render(scope) for node in self.items]
        return _FAILED if any(v is _FAILED for v in out) else out


def _evaluation_error(source: str, error: Exception) -> str:
    if isinstance(error, KeyError):
        detail = f"no such key {error.args[0]!r}" if error.args else "no such key"
    else:
        detail = _first_line(str(error)) or type(error).__name__
    return f"${{{source}}} failed: {detail}"


def _cel_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, dict):
        return "a map"
    if isinstance(value, list):
        return "a list"
    return f"a {type(value).__name__}"


def _to_json(value: Any) -> Any:
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
        return {key: _to_json(value[key]) for key in sorted(value) if value[key] is not None}
    if isinstance(value, (list, tuple)):
        return [_to_json(item) for item in value]
    if isinstance(value, datetime.timedelta):
        seconds = value.total_seconds()
        return f"{int(seconds)}s" if seconds == int(seconds) else f"{seconds}s"
    if isinstance(value, datetime.datetime):
        return value.isoformat().replace("+00:00", "Z")
    raise TypeError(f"gives {_cel_type(value)}, which is not a JSON value")


class TemplateCompileError(Exception):
    """Problems found while compiling a template (syntax errors, unknown roots...)."""

    def __init__(self, problems: list[tuple[str, str]]) -> None:
        super().__init__("; ".join(f"{o}: {m}" for o, m in problems))
        self.problems = problems  # (origin field path, message)


def _compile_value(value: Any, origin: str, problems: list[tuple[str, str]]) -> _Node:
    """Build the render tree of one value; syntax and reference problems are collected."""
    if isinstance(value, str):
        if "${" not in value:
            return _Const(value)
        try:
            parts = split_expressions(value)
        except ExpressionSyntaxError as error:
            problems.append((origin, f"{error} in {value!r}"))
            return _Const(value)
        compiled: list[str | _Program] = []
        for part in parts:
            if isinstance(part, str):
                compiled.append(part)
                continue
            issues = expression_problems(part[0])
            if issues:
                problems.extend((origin, issue) for issue in issues)
                return _Const(value)
            compiled.append(compile_expression(part[0]))
        if len(compiled) == 1 and isinstance(compiled[0], _Program):
            return _Expr(compiled[0], origin)
        if all(isinstance(part, str) for part in compiled):
            return _Const("".join(compiled))  # only escapes
        return _Interpolation(compiled, origin)
    if isinstance(value, dict):
        items = {}
        for key, item in value.items():
            if isinstance(key, str) and has_expression(key):
                problems.append(
                    (f"{origin}.{key}", "map keys cannot hold expressions; only values can")
                )
            items[key] = _compile_value(item, f"{origin}.{key}", problems)
        if all(isinstance(node, _Const) for node in items.values()):
            return _Const({k: n.value for k, n in items.items()})  # type: ignore[attr-defined]
        return _Map(items)
    if isinstance(value, list):
        nodes = [_compile_value(item, f"{origin}[{i}]", problems) for i, item in enumerate(value)]
        if all(isinstance(node, _Const) for node in nodes):
            return _Const([n.value for n in nodes])  # type: ignore[attr-defined]
        return _List(nodes)
    return _Const(value)


def _merge_nodes(base: _Node, patch: _Node) -> _Node:
    """Deep-merge a variant's compiled patch over a compiled value (JSON merge patch, RFC 7386:
    maps merge key by key, ``null`` deletes, anything else replaces)."""
    base_items = _map_items(base)
    patch_items = _map_items(patch)
    if base_items is None or patch_items is None:
        return patch
    merged = dict(base_items)
    for key, node in patch_items.items():
        if isinstance(node, _Const) and node.value is None:
            merged.pop(key, None)
        elif key in merged:
            merged[key] = _merge_nodes(merged[key], node)
        else:
            merged[key] = node
    if all(isinstance(node, _Const) for node in merged.values()):
        return _Const({k: n.value for k, n in merged.items()})  # type: ignore[attr-defined]
    return _Map(merged)


def _without_nulls(node: _Node) -> _Node:
    """The tree with ``null`` fields removed (after merging, where ``null`` meant "delete"):
    in a rendered manifest a ``null`` value means "leave the field out"."""
    if isinstance(node, _Map):
        items = {
            key: _without_nulls(child)
            for key, child in node.items.items()
            if not (isinstance(child, _Const) and child.value is None)
        }
        return _Map(items)
    if isinstance(node, _List):
        return _List([_without_nulls(child) for child in node.items])
    if isinstance(node, _Const) and node.mutable:
        return _Const(_strip_nulls(node.value))
    return node


def _strip_nulls(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _strip_nulls(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_strip_nulls(v) for v in value]
    return value


def _map_items(node: _Node) -> dict[str, _Node] | None:
    if isinstance(node, _Map):
        return node.items
    if isinstance(node, _Const) and isinstance(node.value, dict):
        return {key: _Const(value) for key, value in node.value.items()}
    return None


# --------------------------------------------------------------------------- compiled template


@dataclass(frozen=True)
class _Resource:
    id: str
    index: int
    include_when: tuple[tuple[_Program, str], ...]
    tree: _Node


@dataclass
class _Plan:
    """A template compiled for one environment kind (its variant keys applied)."""

    template: ResourceTemplate
    variant_keys: tuple[str, ...]
    resources: tuple[_Resource, ...]
    env: tuple[tuple[str, _Node], ...]
    param_layers: tuple[tuple[str, dict[str, Any]], ...]  # (variant key, params)
    param_checks: dict[str, list[Any]]


_plans: dict[tuple[int, tuple[str, ...]], _Plan] = {}
_plans_lock = threading.Lock()


def variant_keys(template: ResourceTemplate, environment: Environment) -> tuple[str, ...]:
    """The ``spec.environments`` keys that apply to ``environment``, in merge order:
    ``production`` or ``nonproduction`` first, then the environment's own name."""
    variants = template.spec.environments
    wanted = (PRODUCTION if environment.production else NONPRODUCTION, environment.name)
    return tuple(key for key in wanted if key in variants)


def _plan(template: ResourceTemplate, keys: tuple[str, ...]) -> _Plan:
    cache_key = (id(template), keys)
    plan = _plans.get(cache_key)
    if plan is not None and plan.template is template:
        return plan
    problems: list[tuple[str, str]] = []
    spec = template.spec
    trees: dict[str, _Node] = {}
    for index, resource in enumerate(spec.resources):
        trees[resource.id] = _compile_value(
            resource.template, f"spec.resources[{index}].template", problems
        )
    for key in keys:
        for j, patch in enumerate(spec.environments[key].resources):
            origin = f"spec.environments.{key}.resources[{j}]"
            if patch.id not in trees:
                problems.append((f"{origin}.id", _unknown_id_message(template, patch.id)))
                continue
            patch_tree = _compile_value(patch.template, f"{origin}.template", problems)
            trees[patch.id] = _merge_nodes(trees[patch.id], patch_tree)
    resources = []
    for index, resource in enumerate(spec.resources):
        conditions = []
        for k, condition in enumerate(resource.include_when):
            origin = f"spec.resources[{index}].includeWhen[{k}]"
            source = _condition_source(condition)
            issues = expression_problems(source)
            if issues:
                problems.extend((origin, issue) for issue in issues)
                continue
            conditions.append((compile_expression(source), origin))
        tree = _without_nulls(trees[resource.id])
        resources.append(_Resource(resource.id, index, tuple(conditions), tree))
    env = tuple(
        (name, _compile_value(value, f"spec.env.{name}", problems))
        for name, value in spec.env.items()
    )
    if problems:
        raise TemplateCompileError(problems)
    plan = _Plan(
        template=template,
        variant_keys=keys,
        resources=tuple(resources),
        env=env,
        param_layers=tuple((key, spec.environments[key].params) for key in keys),
        param_checks={},
    )
    with _plans_lock:
        if len(_plans) > 4096:
            _plans.clear()
        _plans[cache_key] = plan
    return plan


def _condition_source(condition: str) -> str:
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


def _unknown_id_message(template: ResourceTemplate, resource_id: str) -> str:
    ids = ", ".join(r.id for r in template.spec.resources)
    return f"variant patches resource {resource_id!r}, which is not a resource id (ids: {ids})"


# --------------------------------------------------------------------------- parameters


def schema_defaults(schema: Mapping[str, Any]) -> dict[str, Any]:
    """The object a JSON Schema's ``default`` keywords describe: ``properties.*.default``,
    recursively through nested object schemas (a nested object is filled in only if it has
    a default itself or defaults below it)."""
    out: dict[str, Any] = {}
    if isinstance(schema.get("default"), dict):
        out.update(copy.deepcopy(schema["default"]))
    for name, sub in (schema.get("properties") or {}).items():
        if not isinstance(sub, Mapping):
            continue
        if "default" in sub and name not in out:
            out[name] = copy.deepcopy(sub["default"])
        nested = schema_defaults(sub) if "properties" in sub else {}
        if nested:
            current = out.get(name)
            if current is None:
                out[name] = nested
            elif isinstance(current, dict):
                out[name] = _merge_params(nested, current)
    return out


def _merge_params(base: dict[str, Any], overlay: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in overlay.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), dict):
            out[key] = _merge_params(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def _validator_for(schema: Mapping[str, Any]) -> Any:
    cls = jsonschema.validators.validator_for(schema, default=jsonschema.Draft202012Validator)
    return cls(schema)


@dataclass(frozen=True)
class _ParamError:
    path: tuple[Any, ...]
    message: str


def _param_errors(plan: _Plan, params: dict[str, Any]) -> list[_ParamError]:
    """Schema violations of ``params``, memoised per plan by value (most workloads use the
    same few parameter sets)."""
    key = repr(params)
    found = plan.param_checks.get(key)
    if found is None:
        validator = _validator_for(plan.template.spec.parameters)
        found = [
            _ParamError(tuple(error.absolute_path), error.message)
            for error in sorted(validator.iter_errors(params), key=lambda e: list(e.path))
        ]
        if len(plan.param_checks) > 1024:
            plan.param_checks.clear()
        plan.param_checks[key] = found
    return found


def _field(path: Iterable[Any]) -> str:
    text = ""
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text


def _params_for(
    plan: _Plan,
    request: ResourceRequest,
    where: Location | None,
    who: str,
) -> tuple[dict[str, Any], list[Problem]]:
    template = plan.template
    params = schema_defaults(template.spec.parameters)
    for _, layer in plan.param_layers:
        params = _merge_params(params, layer)
    params = _merge_params(params, request.params)
    problems = []
    for error in _param_errors(plan, params):
        top = error.path[0] if error.path else None
        sub = _field(error.path)
        if top is None or top in request.params:
            base = where or Location()
            field = ".".join(f for f in (base.field, "params", sub) if f)
            location = base.at(field)
            blame = f"params of resource {request.name!r}"
        else:
            layer = next((k for k, p in reversed(plan.param_layers) if top in p), None)
            origin = f"spec.environments.{layer}.params.{sub}" if layer else "spec.parameters"
            location = template.locate(origin)
            blame = f"template {template.name!r}"
        problems.append(Problem(location, f"{blame}: {error.message} ({who})"))
    return params, problems


# --------------------------------------------------------------------------- rendering


@dataclass(frozen=True)
class RenderedResource:
    """A workload's resource in one environment, rendered from its template.

    - ``objects``: Config Connector manifests with every expression evaluated, in template
      order; without namespace and Konfig labels (the compiler adds those and the deletion
      policy).
    - ``env``: the template's ``env`` evaluated, keys unprefixed (``DB_NAME``).
    - ``roles``: the roles of the requested access mode.
    - ``bind_to``: ``"project"`` or the template resource id that carries the IAM binding.
    - ``bind_target``: the rendered object for ``bind_to`` (``None`` for ``"project"``).
    - ``services``: the APIs the objects need (``sqladmin.googleapis.com``).
    """

    objects: tuple[dict, ...]
    env: dict[str, str]
    roles: tuple[str, ...]
    bind_to: str
    bind_target: dict | None
    services: tuple[str, ...]


def _who(context: Mapping[str, Any], environment: Environment) -> str:
    workload = (context.get("workload") or {}).get("name", "?")
    resource = (context.get("resource") or {}).get("name", "?")
    return f"workload {workload}, resource {resource}, environment {environment.name}"


def render_resource(
    template: ResourceTemplate,
    *,
    request: ResourceRequest,
    environment: Environment,
    context: Mapping[str, Any],
    where: Location | None = None,
) -> RenderedResource:
    """Render ``request`` (a workload's resource) from ``template`` in ``environment``.

    ``context`` holds the expression roots the compiler knows::

        workload:     {name, platform, domain, namespace, runtime,
                       serviceAccount: {name, email}}
        resource:     {name, access, objectName}       # objectName = "<workload>-<resource>"
        environment:  {name, production, index, kmsKey, kmsKeyId}  # CMEK key, "" outside production
        domain:       {name, projectId, namespace}
        platform:     {name}
        controlPlane: {name, region, projectId}
        network:      {name, hostProject, selfLink, region, subnetwork, servicesRange}

    and the engine adds ``params`` (see the module docstring). ``where`` is the location of the
    request in the workload (``spec.resources[2]``), used for problems with its params or
    access mode.

    Raises :class:`~konfig.errors.DefinitionError` with every problem found: an access mode
    the template does not offer, params that break the template's schema (pointing at the
    request, or at the template variant that set them), expressions that fail (pointing at the
    template's file, line and field, and naming the workload, resource and environment), and an
    IAM target (``bindTo``) left out by ``includeWhen``.
    """
    who = _who(context, environment)
    spec = template.spec
    if request.access not in spec.access:
        base = where or Location()
        field = ".".join(f for f in (base.field, "access") if f)
        offered = ", ".join(sorted(spec.access))
        raise DefinitionError(
            [
                Problem(
                    base.at(field),
                    f"template {template.name!r} has no access mode {request.access!r} "
                    f"(offered: {offered}) ({who})",
                )
            ]
        )
    try:
        plan = _plan(template, variant_keys(template, environment))
    except TemplateCompileError as error:
        raise DefinitionError(
            [Problem(template.locate(o), f"{m} ({who})") for o, m in error.problems]
        ) from None
    params, problems = _params_for(plan, request, where, who)
    if problems:
        raise DefinitionError(problems)
    return _render(plan, {**context, "params": params}, request.access, who)


def _render(
    plan: _Plan, variables: Mapping[str, Any], access: str, who: str
) -> RenderedResource:
    template = plan.template
    missing = [root for root in ROOTS if root not in variables]
    if missing:  # a compiler bug, not a user error: never render with a stale root
        raise ValueError(f"render context lacks {', '.join(missing)}")
    ctx = _context_with(variables)
    scope = _Scope(ctx, template, who)
    rendered: dict[str, dict] = {}
    objects = []
    for resource in plan.resources:
        if not _included(resource, scope):
            continue
        value = resource.tree.render(scope)
        if value is _FAILED:
            continue
        rendered[resource.id] = value
        objects.append(value)
    env: dict[str, str] = {}
    for name, node in plan.env:
        value = node.render(scope)
        if value is _FAILED:
            continue
        if value is None or isinstance(value, (dict, list)):
            scope.fail(f"spec.env.{name}", f"env value gives {_cel_type(value)}, not text")
            continue
        env[name] = ("true" if value else "false") if isinstance(value, bool) else str(value)
    mode = template.spec.access_mode(access)
    bind_to = mode.bind_to or "project"
    target = None
    if bind_to != "project":
        target = rendered.get(bind_to)
        if target is None and not scope.problems:
            scope.fail(
                f"spec.access.{access}",
                f"access mode {access!r} binds to resource {bind_to!r}, which is not rendered "
                "here (its includeWhen is false)",
            )
    if scope.problems:
        raise DefinitionError(scope.problems)
    return RenderedResource(
        objects=tuple(objects),
        env=env,
        roles=tuple(mode.roles),
        bind_to=bind_to,
        bind_target=target,
        services=tuple(dict.fromkeys(template.spec.services)),
    )


def _included(resource: _Resource, scope: _Scope) -> bool:
    for condition, origin in resource.include_when:
        try:
            value = condition.program.execute(scope.ctx)
        except Exception as error:
            scope.fail(origin, _evaluation_error(condition.source, error))
            return False
        if not isinstance(value, bool):
            scope.fail(
                origin, f"includeWhen ${{{condition.source}}} gives {_cel_type(value)}, not a bool"
            )
            return False
        if not value:
            return False
    return True


# --------------------------------------------------------------------------- load-time checks


def sample_context(
    template: ResourceTemplate | None = None,
    environment: Environment | None = None,
    *,
    access: str | None = None,
) -> dict[str, Any]:
    """A made-up but well-formed ``context`` for :func:`render_resource` (workload ``sample``,
    resource ``data``, domain project ``acme-shop-<env>``): what :func:`check_template` renders
    with, and a handy fixture. The shape is the one the compiler passes."""
    environment = environment or Environment(name="dev")
    access = access or (sorted(template.spec.access)[0] if template else "read")
    project = f"acme-shop-{environment.name}"
    namespace = f"shop-{environment.name}"
    return {
        "workload": {
            "name": "sample",
            "platform": "retail",
            "domain": "shop",
            "namespace": namespace,
            "runtime": "cloudrun",
            "serviceAccount": {
                "name": "wl-sample",
                "email": f"wl-sample@{project}.iam.gserviceaccount.com",
            },
        },
        "resource": {"name": "data", "access": access, "objectName": "sample-data"},
        "environment": {
            "name": environment.name,
            "production": environment.production,
            "index": 0,
            # The CMEK key of production environments (konfig.compile.kms), "" elsewhere.
            "kmsKey": "konfig-cmek" if environment.production else "",
            "kmsKeyId": (f"projects/{project}/locations/us-central1/keyRings/konfig/cryptoKeys/cmek"
                         if environment.production else ""),
        },
        "domain": {"name": "shop", "projectId": project, "namespace": namespace},
        "platform": {"name": "retail"},
        "controlPlane": {"name": "acme", "region": "us-central1", "projectId": "acme-cp"},
        "network": {
            "name": f"konfig-{environment.name}",
            "hostProject": f"acme-net-{environment.name}",
            "selfLink": f"projects/acme-net-{environment.name}/global/networks/konfig-{environment.name}",
            "region": "us-central1",
            "subnetwork": f"projects/acme-net-{environment.name}/regions/us-central1/subnetworks/"
                          f"konfig-{environment.name}-us-central1",
            "servicesRange": f"konfig-{environment.name}-services",
        },
    }


def check_template(template: ResourceTemplate) -> list[Problem]:
    """Load-time problems of a template, each at its file, line and field (``[]`` if none):

    - ``spec.parameters`` is not a valid JSON Schema, or its defaults (alone, or with a
      variant's ``params``) do not validate against it;
    - a ``${...}`` does not parse, refers to anything but :data:`ROOTS`, or calls an unknown
      function; a map key holds an expression; ``apiVersion``/``kind`` are not constant;
      ``metadata.name`` is missing;
    - a variant patches a resource id the template does not have;
    - rendering with :func:`sample_context` in a non-production and a production environment
      (and each environment a variant names) fails: an expression that errors, a bad type,
      or an access mode whose ``bindTo`` resource is left out.
    """
    problems: list[Problem] = []
    spec = template.spec
    schema_ok = _check_parameters(template, problems)
    for index, resource in enumerate(spec.resources):
        origin = f"spec.resources[{index}].template"
        for field in ("apiVersion", "kind"):
            value = resource.template.get(field)
            if not isinstance(value, str) or has_expression(value):
                problems.append(
                    Problem(
                        template.locate(f"{origin}.{field}"),
                        f"{field} must be a constant string (it selects the schema objects are "
                        "validated against)",
                    )
                )
        metadata = resource.template.get("metadata")
        if not isinstance(metadata, dict) or not metadata.get("name"):
            problems.append(
                Problem(template.locate(f"{origin}.metadata"), "metadata.name is required")
            )
    compile_problems: list[tuple[str, str]] = []
    for keys in _all_variant_key_sets(template):
        try:
            _plan(template, keys)
        except TemplateCompileError as error:
            compile_problems.extend(error.problems)
    for origin, message in dict.fromkeys(compile_problems):
        problems.append(Problem(template.locate(origin), message))
    if not problems and schema_ok:
        problems.extend(_dry_render(template))
    return sorted(set(problems))


def _all_variant_key_sets(template: ResourceTemplate) -> list[tuple[str, ...]]:
    """Variant key combinations worth compiling: each named variant alone and on top of each
    production kind, so every patch is compiled at least once."""
    named = [k for k in template.spec.environments if k not in (PRODUCTION, NONPRODUCTION)]
    sets = []
    for kind in (NONPRODUCTION, PRODUCTION):
        base = (kind,) if kind in template.spec.environments else ()
        sets.append(base)
        sets.extend(base + (name,) for name in named)
    return list(dict.fromkeys(sets))


def _check_parameters(template: ResourceTemplate, problems: list[Problem]) -> bool:
    schema = template.spec.parameters
    cls = jsonschema.validators.validator_for(schema, default=jsonschema.Draft202012Validator)
    try:
        cls.check_schema(schema)
    except SchemaError as error:
        field = _field(["spec", "parameters", *error.absolute_path])
        problems.append(
            Problem(template.locate(field), f"not a valid JSON Schema: {error.message}")
        )
        return False
    validator = cls(schema)
    defaults = schema_defaults(schema)
    # A required parameter without a default is the workload's to give: not a template error.
    for error in _non_required_errors(validator, defaults):
        field = _field(["spec", "parameters", "properties", *error.absolute_path])
        problems.append(
            Problem(template.locate(field), f"parameter defaults are invalid: {error.message}")
        )
    for key, variant in template.spec.environments.items():
        if not variant.params:
            continue
        merged = _merge_params(defaults, variant.params)
        for error in _non_required_errors(validator, merged):
            if error.absolute_path and error.absolute_path[0] not in variant.params:
                continue  # a default's problem, reported above
            field = _field(["spec", "environments", key, "params", *error.absolute_path])
            problems.append(
                Problem(
                    template.locate(field),
                    f"variant {key!r} sets invalid params: {error.message}",
                )
            )
    return True


def _non_required_errors(validator: Any, instance: Any) -> list[Any]:
    return [
        error
        for error in validator.iter_errors(instance)
        if not (error.validator == "required" and not error.absolute_path)
    ]


def sample_params(template: ResourceTemplate) -> dict[str, Any]:
    """Values for the template's required parameters that have no default, taken from their
    JSON-Schema ``examples`` (the first one): what :func:`check_template` renders with."""
    schema = template.spec.parameters
    properties = schema.get("properties") or {}
    defaults = schema_defaults(schema)
    out = {}
    for name in schema.get("required") or ():
        examples = (properties.get(name) or {}).get("examples")
        if name not in defaults and isinstance(examples, list) and examples:
            out[name] = examples[0]
    return out


def _dry_render(template: ResourceTemplate) -> list[Problem]:
    """Render every access mode with :func:`sample_context` in the environments the variants
    distinguish, with :func:`sample_params`; a template that needs params from the workload
    and gives no ``examples`` for them is not dry-rendered."""
    environments = [Environment(name="dev"), Environment(name="prod", production=True)]
    for key in template.spec.environments:
        if key not in (PRODUCTION, NONPRODUCTION):
            environments.append(Environment(name=key))
            environments.append(Environment(name=key, production=True))
    problems: list[Problem] = []
    for environment in environments:
        for access in sorted(template.spec.access):
            context = sample_context(template, environment, access=access)
            request = ResourceRequest(
                name="data", template=template.name, access=access, params=sample_params(template)
            )
            kind = "production" if environment.production else "non-production"
            who = f"sample {kind} environment {environment.name!r}, access {access!r}"
            plan = _plan(template, variant_keys(template, environment))
            params, param_problems = _params_for(plan, request, None, who)
            if param_problems:
                break  # the template needs params from the workload; nothing to dry-render
            try:
                _render(plan, {**context, "params": params}, access, who)
            except DefinitionError as error:
                problems.extend(error.problems)
    return problems
