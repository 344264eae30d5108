"""Template parameters: JSON-Schema defaults, variant overlays, the workload's ``params``,
and schema violations located at the request or at the template variant that caused them."""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass
from typing import Any, Iterable, Mapping

import jsonschema
import re2
from jsonschema.exceptions import SchemaError, ValidationError

from konfig.errors import Location, Problem
from konfig.model.template import ResourceTemplate
from konfig.model.workload import ResourceRequest

#: Largest ``params`` of one resource request, as compact JSON (bytes). Parameters are knobs,
#: not data; the cap also bounds what expressions can iterate.
MAX_PARAMS_BYTES = 64 * 1024


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
                out[name] = merge_params(nested, current)
    return out


def merge_params(base: dict[str, Any], overlay: Mapping[str, Any]) -> dict[str, Any]:
    """``overlay`` deep-merged over ``base`` (maps key by key, anything else replaces)."""
    out = dict(base)
    for key, value in overlay.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), dict):
            out[key] = merge_params(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def _re2(pattern: str) -> Any:
    options = re2.Options()
    options.log_errors = False
    return re2.compile(pattern, options=options)


def _pattern(validator: Any, pattern: Any, instance: Any, schema: Any) -> Any:
    """``pattern`` with RE2 (linear time, the syntax Kubernetes CRDs use), so no parameter
    value can make a backtracking regular expression run for hours."""
    if not validator.is_type(instance, "string") or not isinstance(pattern, str):
        return
    try:
        compiled = _re2(pattern)
    except re2.error:
        yield ValidationError(f"pattern {pattern!r} is not RE2 syntax (no lookaround or "
                              "backreferences)")
        return
    if not compiled.search(instance):
        yield ValidationError(f"{instance!r} does not match {pattern!r}")


def _pattern_properties(validator: Any, patterns: Any, instance: Any, schema: Any) -> Any:
    if not validator.is_type(instance, "object") or not isinstance(patterns, Mapping):
        return
    for pattern, subschema in patterns.items():
        try:
            compiled = _re2(pattern)
        except re2.error:
            yield ValidationError(f"pattern {pattern!r} is not RE2 syntax")
            continue
        for key, value in instance.items():
            if compiled.search(key):
                yield from validator.descend(value, subschema, path=key, schema_path=pattern)


def validator_class(schema: Mapping[str, Any]) -> Any:
    """The jsonschema validator class of ``schema`` (draft 2020-12 unless ``$schema`` says
    other), with ``pattern`` and ``patternProperties`` evaluated by RE2."""
    cls = jsonschema.validators.validator_for(schema, default=jsonschema.Draft202012Validator)
    return jsonschema.validators.extend(
        cls, {"pattern": _pattern, "patternProperties": _pattern_properties})


def validator_for(schema: Mapping[str, Any]) -> Any:
    """A validator of ``schema`` (see :func:`validator_class`)."""
    return validator_class(schema)(schema)


def schema_errors(validator: Any, instance: Any) -> list[Any]:
    """``validator.iter_errors(instance)``, with a schema that cannot be applied (a ``$ref``
    Konfig cannot resolve: it reads no remote schemas) reported as one error."""
    try:
        return list(validator.iter_errors(instance))
    except Exception as error:  # referencing.exceptions.Unresolvable and friends
        return [ValidationError(f"the schema cannot be applied: {type(error).__name__}: "
                                f"{str(error)[:200] or 'a $ref Konfig cannot resolve (no remote schemas)'}")]


@dataclass(frozen=True)
class ParamError:
    path: tuple[Any, ...]
    message: str


def param_errors(
    schema: Mapping[str, Any], params: dict[str, Any], memo: dict[str, list[ParamError]]
) -> list[ParamError]:
    """Schema violations of ``params``, memoised in ``memo`` by value (most workloads use the
    same few parameter sets)."""
    key = repr(params)
    found = memo.get(key)
    if found is None:
        validator = validator_for(schema)
        found = [
            ParamError(tuple(error.absolute_path), error.message)
            for error in sorted(schema_errors(validator, params), key=lambda e: [str(p) for p in e.path])
        ]
        memo[key] = found
    return found


def field_path(path: Iterable[Any]) -> str:
    """``["spec", "x", 0, "y"]`` → ``spec.x[0].y``."""
    text = ""
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text


def params_for(
    template: ResourceTemplate,
    layers: tuple[tuple[str, dict[str, Any]], ...],
    memo: dict[str, list[ParamError]],
    request: ResourceRequest,
    where: Location | None,
    who: str,
) -> tuple[dict[str, Any], list[Problem]]:
    """The params a render sees (schema defaults, then the variant ``layers`` in order, then
    the request's own ``params``) and every problem with them."""
    base = where or Location()
    size = len(json.dumps(request.params, separators=(",", ":"), default=str))
    if size > MAX_PARAMS_BYTES:
        field = ".".join(f for f in (base.field, "params") if f)
        return {}, [Problem(base.at(field), f"params of resource {request.name!r} are {size:,} "
                            f"bytes of JSON; at most {MAX_PARAMS_BYTES:,} are allowed ({who})")]
    params = schema_defaults(template.spec.parameters)
    for _, layer in layers:
        params = merge_params(params, layer)
    params = merge_params(params, request.params)
    problems = []
    for error in param_errors(template.spec.parameters, params, memo):
        top = error.path[0] if error.path else None
        sub = field_path(error.path)
        if top is None or top in request.params:
            field = ".".join(f for f in (base.field, "params", sub) if f)
            location = base.at(field)
            blame = f"params of resource {request.name!r}"
        else:
            layer = next((k for k, p in reversed(layers) if top in p), None)
            origin = f"spec.environments.{layer}.params.{sub}" if layer else "spec.parameters"
            location = template.locate(origin)
            blame = f"template {template.name!r}"
        problems.append(Problem(location, f"{blame}: {error.message} ({who})"))
    return params, problems


def sample_params(template: ResourceTemplate) -> dict[str, Any]:
    """Values for the template's required parameters that have no default, taken from their
    JSON-Schema ``examples`` (the first one): what ``check_template`` renders with."""
    schema = template.spec.parameters
    properties = schema.get("properties") or {}
    defaults = schema_defaults(schema)
    out = {}
    for name in schema.get("required") or ():
        examples = (properties.get(name) or {}).get("examples")
        if name not in defaults and isinstance(examples, list) and examples:
            out[name] = examples[0]
    return out


def parameter_problems(template: ResourceTemplate) -> tuple[bool, list[Problem]]:
    """Load-time problems of ``spec.parameters``: ``(schema usable, problems)``. The schema
    must be valid, and its defaults (alone, and with each variant's ``params``) valid
    against it."""
    problems: list[Problem] = []
    schema = template.spec.parameters
    cls = validator_class(schema)
    try:
        cls.check_schema(schema)
    except SchemaError as error:
        field = field_path(["spec", "parameters", *error.absolute_path])
        problems.append(
            Problem(template.locate(field), f"not a valid JSON Schema: {error.message}")
        )
        return False, problems
    validator = cls(schema)
    defaults = schema_defaults(schema)
    # A required parameter without a default is the workload's to give: not a template error.
    for error in _non_required_errors(validator, defaults):
        field = field_path(["spec", "parameters", "properties", *error.absolute_path])
        problems.append(
            Problem(template.locate(field), f"parameter defaults are invalid: {error.message}")
        )
    for key, variant in template.spec.environments.items():
        if not variant.params:
            continue
        merged = merge_params(defaults, variant.params)
        for error in _non_required_errors(validator, merged):
            if error.absolute_path and error.absolute_path[0] not in variant.params:
                continue  # a default's problem, reported above
            field = field_path(["spec", "environments", key, "params", *error.absolute_path])
            problems.append(
                Problem(
                    template.locate(field),
                    f"variant {key!r} sets invalid params: {error.message}",
                )
            )
    return True, problems


def _non_required_errors(validator: Any, instance: Any) -> list[Any]:
    return [
        error
        for error in schema_errors(validator, instance)
        if not (error.validator == "required" and not error.absolute_path)
    ]
