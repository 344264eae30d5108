"""Structural-schema handling of custom resources: pruning, defaulting and validation against a
CRD version's ``openAPIV3Schema``, in that order, as the real API server does
(https://kubernetes.io/docs/tasks/extend-kubernetes/custom-resources/custom-resource-definitions/
#field-pruning, #defaulting, #validation).

- Pruning drops fields not declared in ``properties`` unless
  ``x-kubernetes-preserve-unknown-fields: true``; ``additionalProperties`` keeps every key;
  ``apiVersion``, ``kind`` and ``metadata`` at the root (and in
  ``x-kubernetes-embedded-resource`` objects) are always kept.
- Defaulting fills missing properties that declare ``default``.
- Validation uses jsonschema (Draft 7) after translating ``nullable`` and
  ``x-kubernetes-int-or-string``; ``metadata`` is not validated by the schema (as in the real
  server). CEL rules (``x-kubernetes-validations``) and ``format`` are not checked.
"""

from __future__ import annotations

import copy
from typing import Any

import jsonschema

_ALWAYS_KEPT = ("apiVersion", "kind", "metadata")


def prune(value: Any, schema: dict[str, Any] | None, *, root: bool = False) -> Any:
    """Return ``value`` without the fields its structural schema does not declare."""
    if schema is None:
        return value
    if isinstance(value, dict):
        keep_meta = root or schema.get("x-kubernetes-embedded-resource")
        if schema.get("x-kubernetes-preserve-unknown-fields") and "properties" not in schema:
            return value
        props = schema.get("properties")
        extra = schema.get("additionalProperties")
        result = {}
        for key, child in value.items():
            if keep_meta and key in _ALWAYS_KEPT:
                result[key] = child
            elif props is not None and key in props:
                result[key] = prune(child, props[key])
            elif isinstance(extra, dict):
                result[key] = prune(child, extra)
            elif extra is True or schema.get("x-kubernetes-preserve-unknown-fields"):
                result[key] = child
        return result
    if isinstance(value, list) and isinstance(schema.get("items"), dict):
        return [prune(item, schema["items"]) for item in value]
    return value


def undeclared(value: Any, schema: dict[str, Any] | None, path: str = "", *, root: bool = False
               ) -> list[str]:
    """Paths (``.spec.foo``) of the fields :func:`prune` would drop, in document order."""
    if schema is None:
        return []
    if isinstance(value, dict):
        if schema.get("x-kubernetes-preserve-unknown-fields") and "properties" not in schema:
            return []
        keep_meta = root or schema.get("x-kubernetes-embedded-resource")
        props, extra = schema.get("properties"), schema.get("additionalProperties")
        out: list[str] = []
        for key, child in value.items():
            if keep_meta and key in _ALWAYS_KEPT:
                continue
            if props is not None and key in props:
                out += undeclared(child, props[key], f"{path}.{key}")
            elif isinstance(extra, dict):
                out += undeclared(child, extra, f"{path}.{key}")
            elif not (extra is True or schema.get("x-kubernetes-preserve-unknown-fields")):
                out.append(f"{path}.{key}")
        return out
    if isinstance(value, list) and isinstance(schema.get("items"), dict):
        return [p for i, item in enumerate(value) for p in undeclared(item, schema["items"], f"{path}[{i}]")]
    return []


def apply_defaults(value: Any, schema: dict[str, Any] | None) -> Any:
    """Return ``value`` with missing properties set to their schema ``default``."""
    if schema is None:
        return value
    if isinstance(value, dict):
        result = dict(value)
        for key, child_schema in (schema.get("properties") or {}).items():
            if key not in result and "default" in child_schema:
                result[key] = copy.deepcopy(child_schema["default"])
            if key in result:
                result[key] = apply_defaults(result[key], child_schema)
        extra = schema.get("additionalProperties")
        if isinstance(extra, dict):
            for key in result:
                if key not in (schema.get("properties") or {}):
                    result[key] = apply_defaults(result[key], extra)
        return result
    if isinstance(value, list) and isinstance(schema.get("items"), dict):
        return [apply_defaults(item, schema["items"]) for item in value]
    return value


def _to_json_schema(schema: Any) -> Any:
    """Translate Kubernetes OpenAPI v3 extensions into plain JSON Schema."""
    if isinstance(schema, list):
        return [_to_json_schema(s) for s in schema]
    if not isinstance(schema, dict):
        return schema
    result = {k: _to_json_schema(v) for k, v in schema.items()
              if not k.startswith("x-kubernetes-") and k not in ("nullable", "format", "default")}
    if schema.get("x-kubernetes-int-or-string"):
        result.pop("type", None)
        result["anyOf"] = [{"type": "integer"}, {"type": "string"}] + result.get("anyOf", [])
    if schema.get("nullable") and "type" in result:
        result["type"] = [result["type"], "null"]
    return result


def validation_errors(obj: dict[str, Any], schema: dict[str, Any] | None) -> list[tuple[str, str, str]]:
    """Schema violations of a custom resource as (field, cause reason, message) tuples, e.g.
    ``("spec.size", "FieldValueRequired", "Required value")``."""
    if not schema:
        return []
    json_schema = _to_json_schema(schema)
    json_schema.get("properties", {}).pop("metadata", None)
    if "required" in json_schema:
        json_schema["required"] = [r for r in json_schema["required"] if r != "metadata"]
    body = {k: v for k, v in obj.items() if k != "metadata"}
    problems = []
    validator = jsonschema.Draft7Validator(json_schema)
    for error in sorted(validator.iter_errors(body), key=lambda e: list(e.absolute_path)):
        path = ".".join(str(p) for p in error.absolute_path)
        if error.validator == "required":
            missing = error.message.split("'")[1] if "'" in error.message else ""
            field = f"{path}.{missing}" if path else missing
            problems.append((field, "FieldValueRequired", "Required value"))
        elif error.validator == "type":
            problems.append((path, "FieldValueTypeInvalid", f"Invalid value: {error.instance!r}: {error.message}"))
        elif error.validator == "enum":
            problems.append((path, "FieldValueNotSupported", f"Unsupported value: {error.instance!r}: {error.message}"))
        else:
            problems.append((path, "FieldValueInvalid", f"Invalid value: {error.instance!r}: {error.message}"))
    return problems
