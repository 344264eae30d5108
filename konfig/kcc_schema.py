"""Validation of rendered Config Connector objects against the upstream CRD schemas.

The CRDs ship inside the package (``konfig/data/kcc/crds``, see its ``SOURCE.md``). Each object
is checked against the ``openAPIV3Schema`` of its ``(group, version, kind)`` with jsonschema,
with the differences between Kubernetes structural schemas and JSON Schema bridged:

- an object schema with ``properties`` and neither ``additionalProperties`` nor
  ``x-kubernetes-preserve-unknown-fields`` is *closed*: Kubernetes prunes unknown fields
  silently, so a misspelt field would be lost without a word; here it is an error.
  Source: https://kubernetes.io/docs/tasks/extend-kubernetes/custom-resources/custom-resource-definitions/#field-pruning
- ``x-kubernetes-int-or-string`` accepts an integer or a string, ``nullable`` accepts null.
  Source: https://kubernetes.io/docs/tasks/extend-kubernetes/custom-resources/custom-resource-definitions/#specifying-a-structural-schema
- ``x-kubernetes-validations`` are CEL rules; the shipped CRDs only use transition rules
  (``self == oldSelf``, immutability), which need the stored object, so they are skipped.
- ``status`` is owned by Config Connector and skipped; ``metadata`` (left open by CRDs, since
  the API server validates it) is checked for a valid name, labels and annotations.

Files are indexed by a cheap text scan and parsed only when their kind is first validated.
"""

from __future__ import annotations

import re
import threading
from functools import lru_cache
from pathlib import Path
from typing import Any, Callable, Iterable

import fastjsonschema
from jsonschema import Draft7Validator
from jsonschema.exceptions import ValidationError
from ruamel.yaml import YAML

from konfig.errors import Location, Problem
from konfig.resources import data_path

#: Folder of the vendored CRDs.
CRD_DIR: Path = data_path("kcc", "crds")

# Every vendored CRD is written by controller-gen / KCC's generator with this layout.
_GROUP_RE = re.compile(r"^  group: (\S+)\s*$", re.MULTILINE)
_KIND_RE = re.compile(r"^    kind: (\S+)\s*$", re.MULTILINE)

#: Kubernetes object names of namespaced custom resources: DNS subdomains (RFC 1123).
#: Source: https://kubernetes.io/docs/concepts/overview/working-with-objects/names/#dns-subdomain-names
_DNS_SUBDOMAIN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"
#: Label values: at most 63 characters, alphanumeric at both ends, ``-_.`` inside.
#: Source: https://kubernetes.io/docs/concepts/overview/working-with-objects/labels/#syntax-and-character-set
_LABEL_VALUE = r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$"
#: Label and annotation keys: an optional DNS-subdomain prefix and a name of at most 63.
_QUALIFIED_KEY = r"^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$"

_METADATA_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["name"],
    "properties": {
        "name": {"type": "string", "maxLength": 253, "pattern": _DNS_SUBDOMAIN},
        "namespace": {"type": "string", "maxLength": 63, "pattern": _DNS_SUBDOMAIN},
        "labels": {
            "type": "object",
            "propertyNames": {"pattern": _QUALIFIED_KEY},
            "additionalProperties": {"type": "string", "maxLength": 63, "pattern": _LABEL_VALUE},
        },
        "annotations": {
            "type": "object",
            "propertyNames": {"pattern": _QUALIFIED_KEY},
            "additionalProperties": {"type": "string"},
        },
    },
    # generateName, ownerReferences, finalizers, ... are valid metadata; Konfig renders none of
    # them, but objects read back from a cluster may carry them.
    "additionalProperties": True,
}

_METADATA_RULES = {
    "metadata.name": "Kubernetes object name (lowercase RFC 1123 subdomain)",
    "metadata.namespace": "namespace name (lowercase RFC 1123 label)",
}

_index_lock = threading.Lock()
_index: dict[tuple[str, str], Path] | None = None


def _crd_index() -> dict[tuple[str, str], Path]:
    """``(group, kind) -> CRD file``, built once by scanning the files' text (no YAML parse)."""
    global _index
    with _index_lock:
        if _index is None:
            index: dict[tuple[str, str], Path] = {}
            for path in sorted(CRD_DIR.glob("*.yaml")):
                text = path.read_text(encoding="utf-8")
                group, kind = _GROUP_RE.search(text), _KIND_RE.search(text)
                if group and kind:
                    index[(group.group(1), kind.group(1))] = path
            _index = index
        return _index


def known_kinds() -> list[tuple[str, str]]:
    """Every ``(group, kind)`` with a shipped CRD, sorted."""
    return sorted(_crd_index())


def has_schema(api_version: str, kind: str) -> bool:
    """Whether a CRD for ``kind`` in the group of ``api_version`` ships with Konfig (whatever
    the version)."""
    group = api_version.rpartition("/")[0]
    return (group, kind) in _crd_index()


@lru_cache(maxsize=None)
def _load_crd(path: Path) -> dict[str, Any]:
    return YAML(typ="safe", pure=True).load(path.read_text(encoding="utf-8"))


def _served_versions(crd: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {v["name"]: v for v in crd["spec"]["versions"] if v.get("served", True)}


def _convert(node: Any, *, closable: bool = True) -> Any:
    """A Kubernetes structural schema node → an equivalent JSON Schema (Draft 7) node, closed
    where Kubernetes would prune unknown fields.

    ``closable`` is False inside ``allOf``/``anyOf``/``oneOf``/``not``: there ``properties``
    only restate fields of the enclosing schema, so closing them would reject valid objects.
    """
    if not isinstance(node, dict):
        return node
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key in ("description", "x-kubernetes-validations", "example", "externalDocs"):
            continue
        if key == "properties":
            out[key] = {name: _convert(sub) for name, sub in value.items()}
        elif key in ("items", "additionalProperties", "not") and isinstance(value, dict):
            out[key] = _convert(value, closable=key != "not")
        elif key in ("allOf", "anyOf", "oneOf"):
            out[key] = [_convert(sub, closable=False) for sub in value]
        else:
            out[key] = value
    if out.pop("x-kubernetes-int-or-string", False):
        out.pop("type", None)
        out["anyOf"] = [{"type": "integer"}, {"type": "string"}, *out.get("anyOf", [])]
    if out.pop("nullable", False) and isinstance(out.get("type"), str):
        out["type"] = [out["type"], "null"]
    preserve = out.pop("x-kubernetes-preserve-unknown-fields", False)
    if closable and "properties" in out and "additionalProperties" not in out and not preserve:
        out["additionalProperties"] = False
    return out


@lru_cache(maxsize=None)
def _validator(group: str, version: str, kind: str) -> Draft7Validator | str:
    """The validator of one served version, or a message saying why there is none."""
    path = _crd_index().get((group, kind))
    if path is None:
        return _unknown_kind_message(group, kind)
    versions = _served_versions(_load_crd(path))
    if version not in versions:
        served = ", ".join(sorted(versions)) or "none"
        return f"apiVersion: {kind} has no served version {version!r} in {group} (served: {served})"
    schema = _convert(versions[version]["schema"]["openAPIV3Schema"])
    schema.get("properties", {}).pop("status", None)
    schema["properties"]["metadata"] = _METADATA_SCHEMA
    schema.setdefault("required", [])
    for field in ("apiVersion", "kind", "metadata"):
        if field not in schema["required"]:
            schema["required"].append(field)
    return Draft7Validator(schema)


@lru_cache(maxsize=None)
def _fast_check(group: str, version: str, kind: str) -> Callable[[Any], Any] | None:
    """A code-generated validator (fastjsonschema) of the same converted schema, used only as a
    fast path: an object it accepts is valid; anything it rejects is re-checked by
    :func:`_validator`, so messages (and verdicts) stay those of ``jsonschema``. ``None`` when
    the schema cannot be compiled."""
    validator = _validator(group, version, kind)
    if isinstance(validator, str):
        return None
    try:
        return fastjsonschema.compile(validator.schema)
    except Exception:  # an unsupported construct: use jsonschema alone
        return None


def _unknown_kind_message(group: str, kind: str) -> str:
    elsewhere = sorted(g for g, k in _crd_index() if k == kind)
    if elsewhere:
        return (
            f"kind: {kind} is not in API group {group!r}; its CRD is in {', '.join(elsewhere)}"
        )
    if not group.endswith(".cnrm.cloud.google.com"):
        return (
            f"kind: {kind} ({group or 'core'} API group) is not a Config Connector kind; "
            "only Config Connector objects are validated here"
        )
    return (
        f"kind: unknown Config Connector kind {kind!r} in API group {group!r} "
        f"(no CRD for it ships in konfig/data/kcc/crds)"
    )


def _path(parts: Iterable[Any]) -> str:
    text = ""
    for part in parts:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text


def _join(base: str, key: str) -> str:
    return f"{base}.{key}" if base else key


def _messages(error: ValidationError, kind: str, version: str) -> list[str]:
    where = _path(error.absolute_path)
    if error.validator == "additionalProperties" and error.validator_value is False:
        known = error.schema.get("properties", {})
        patterns = [re.compile(p) for p in error.schema.get("patternProperties", {})]
        extras = [
            key
            for key in error.instance
            if key not in known and not any(p.search(key) for p in patterns)
        ]
        return [
            f"{_join(where, key)}: unknown field: the {kind} {version} schema has no such field "
            "(Kubernetes would prune it)"
            for key in sorted(extras)
        ]
    if error.validator == "required":
        match = re.match(r"^'(.*)' is a required property", error.message)
        missing = match.group(1) if match else error.message
        return [f"{_join(where, missing)}: required field is missing"]
    message = error.message
    if error.validator == "pattern" and where.startswith("metadata."):
        message = f"{error.instance!r} is not a valid {_METADATA_RULES.get(where, 'value')}"
    if len(message) > 240:
        message = message[:237] + "..."
    return [f"{where or '<object>'}: {message}"]


def validate_object(obj: dict[str, Any]) -> list[str]:
    """Problems of one Config Connector object against its shipped CRD, as messages that start
    with the field path (``spec.settings.tier: 1 is not of type 'string'``); ``[]`` if valid.

    Reports unknown ``apiVersion``/``kind`` (no CRD shipped, or a version not served), schema
    violations, and fields the schema does not know (Kubernetes would prune them). ``status``
    is ignored. Never raises for bad input.
    """
    if not isinstance(obj, dict):
        return [f"<object>: expected a mapping, got {type(obj).__name__}"]
    api_version, kind = obj.get("apiVersion"), obj.get("kind")
    problems = []
    if not isinstance(api_version, str) or not api_version:
        problems.append(f"apiVersion: expected 'group/version', got {api_version!r}")
    if not isinstance(kind, str) or not kind:
        problems.append(f"kind: expected a kind name, got {kind!r}")
    if problems:
        return problems
    group, _, version = api_version.rpartition("/")
    validator = _validator(group, version, kind)
    if isinstance(validator, str):
        return [validator]
    instance = obj
    if "status" in obj:
        instance = {key: value for key, value in obj.items() if key != "status"}
    fast = _fast_check(group, version, kind)
    if fast is not None:
        try:
            fast(instance)
            return []
        except fastjsonschema.JsonSchemaException:
            pass  # re-check with jsonschema for precise messages
    messages: list[str] = []
    for error in validator.iter_errors(instance):
        messages.extend(_messages(error, kind, version))
    return sorted(set(messages))


def validate_objects(objects: Iterable[dict[str, Any]]) -> list[Problem]:
    """Every Config Connector object of ``objects`` checked with :func:`validate_object`
    (other kinds are skipped); one :class:`~konfig.errors.Problem` per message, located by the
    object's ``namespace/Kind/name``. ``[]`` when all are valid."""
    problems = []
    for obj in objects:
        if not obj["apiVersion"].split("/")[0].endswith(".cnrm.cloud.google.com"):
            continue
        meta = obj["metadata"]
        where = Location("<rendered>", 0, f"{meta.get('namespace', '')}/{obj['kind']}/{meta['name']}")
        problems += [Problem(where, message) for message in validate_object(obj)]
    return problems
