"""CustomResourceDefinitions of the definitions API (``konfig.dev/v1alpha1``), generated from
the pydantic models so that the models stay the single source of the schema.

Pure: every function here builds plain dicts (or, for :func:`render_yaml`, a string) and does no
I/O. ``konfig crds`` prints or writes them; the Helm chart ships them in
``charts/konfig/crds/`` and a test keeps those files equal to :func:`all_crds`.

Pydantic emits JSON Schema (draft 2020-12) with ``$defs``/``$ref``, ``anyOf`` with ``null`` for
optional fields, ``const``, ``patternProperties`` and ``title``. A CRD needs an OpenAPI v3
*structural* schema instead, so :func:`structural_schema` rewrites the model's schema:

- ``$ref`` is inlined (the models have no recursive types; a cycle raises ``ValueError``);
- ``anyOf: [X, {type: null}]`` becomes ``X`` with ``nullable: true``; any other union, which a
  structural schema cannot type, becomes a node with ``x-kubernetes-preserve-unknown-fields``
  (the operator validates every object with the model anyway and reports problems in status);
- ``const`` becomes a one-value ``enum``; ``title`` and ``default: null`` are dropped;
- ``additionalProperties: false`` is dropped (the API server prunes, and rejects with strict
  field validation, unknown fields), ``additionalProperties: true`` (free-form ``dict[str, Any]``:
  template manifests, params, parameters) becomes ``x-kubernetes-preserve-unknown-fields: true``;
- ``patternProperties`` (not supported by Kubernetes) becomes ``additionalProperties`` with the
  key rule moved into the description;
- numeric ``exclusiveMinimum``/``exclusiveMaximum`` (draft 2020-12) become the OpenAPI v3.0
  boolean form.

Rules of a structural schema, and the keywords Kubernetes forbids (``$ref``, ``patternProperties``,
``definitions``, ``type: null``, ``uniqueItems: true``, ...):
https://kubernetes.io/docs/tasks/extend-kubernetes/custom-resources/custom-resource-definitions/#specifying-a-structural-schema
and k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/validation/validation.go.
"""

from __future__ import annotations

import copy
import io
from dataclasses import dataclass
from typing import Any

import jsonschema
from ruamel.yaml import YAML

from konfig.model import KINDS, Definition

GROUP = "konfig.dev"
VERSION = "v1alpha1"
#: ``kubectl get konfig`` lists every Konfig object.
CATEGORY = "konfig"

JsonSchema = dict[str, Any]
CRD = dict[str, Any]


@dataclass(frozen=True)
class KindNames:
    """The names Kubernetes serves one kind under, and its extra printer columns
    (``(name, JSONPath, type)``, shown after Ready and Reason)."""

    kind: str
    plural: str
    short_names: tuple[str, ...]
    columns: tuple[tuple[str, str, str], ...] = ()

    @property
    def singular(self) -> str:
        return self.kind.lower()

    @property
    def crd_name(self) -> str:
        """``<plural>.<group>``, the name the API server requires for a CRD."""
        return f"{self.plural}.{GROUP}"


#: Names of each kind of :data:`konfig.model.KINDS`. Short names carry a ``kf`` prefix so they do
#: not collide with other operators' (Cluster API already uses ``kcp``, Knative ``rt``).
NAMES: dict[str, KindNames] = {
    "ControlPlane": KindNames("ControlPlane", "controlplanes", ("kfcp",)),
    "Platform": KindNames("Platform", "platforms", ("kfpl",)),
    "Domain": KindNames(
        "Domain", "domains", ("kfdom",), (("Platform", ".spec.platform", "string"),)
    ),
    "Workload": KindNames(
        "Workload",
        "workloads",
        ("kfwl",),
        (("Domain", ".spec.domain", "string"), ("Runtime", ".spec.runtime", "string")),
    ),
    "ResourceTemplate": KindNames("ResourceTemplate", "resourcetemplates", ("kfrt",)),
}

#: JSONPath of the Ready condition, used by the printer columns.
READY_CONDITION = '.status.conditions[?(@.type=="Ready")]'

#: Formats Kubernetes validates; any other ``format`` from pydantic is dropped rather than
#: silently ignored by the API server. Source: the ``format`` field of JSONSchemaProps,
#: https://kubernetes.io/docs/reference/kubernetes-api/extend-resources/custom-resource-definition-v1/#JSONSchemaProps
KUBERNETES_FORMATS = frozenset(
    {
        "bsonobjectid",
        "uri",
        "email",
        "hostname",
        "ipv4",
        "ipv6",
        "cidr",
        "mac",
        "uuid",
        "uuid3",
        "uuid4",
        "uuid5",
        "isbn",
        "isbn10",
        "isbn13",
        "creditcard",
        "ssn",
        "hexcolor",
        "rgbcolor",
        "byte",
        "password",
        "date",
        "duration",
        "datetime",
        "date-time",
        "int32",
        "int64",
        "float",
        "double",
    }
)

#: JSON Schema keywords copied as they are (they mean the same in OpenAPI v3.0).
_PLAIN_KEYWORDS = (
    "description",
    "enum",
    "pattern",
    "minLength",
    "maxLength",
    "minimum",
    "maximum",
    "multipleOf",
    "minItems",
    "maxItems",
    "minProperties",
    "maxProperties",
)
#: Keywords that only annotate; dropped.
_DROPPED_KEYWORDS = frozenset({"title", "examples", "$schema", "$comment", "propertyNames"})
_HANDLED_KEYWORDS = frozenset(
    {
        "$ref",
        "$defs",
        "anyOf",
        "allOf",
        "oneOf",
        "const",
        "type",
        "properties",
        "required",
        "additionalProperties",
        "patternProperties",
        "items",
        "default",
        "format",
        "exclusiveMinimum",
        "exclusiveMaximum",
        "uniqueItems",
    }
)
_SCALAR_TYPES = frozenset({"string", "integer", "number", "boolean"})


# --------------------------------------------------------------------------- schema conversion


def structural_schema(json_schema: JsonSchema) -> JsonSchema:
    """Convert a pydantic JSON Schema (with its ``$defs``) into a Kubernetes structural schema.

    ``json_schema`` is what ``Model.model_json_schema(by_alias=True)`` returns; the result has no
    ``$ref``/``$defs``/``anyOf``-with-null/``const``/``title``/``patternProperties``.

    Raises ``ValueError`` on a keyword this converter does not know (so a new kind of model field
    is handled on purpose, not dropped by accident) or on a recursive ``$ref``.
    """
    return _convert(json_schema, json_schema.get("$defs", {}), path="", seen=())


Defs = dict[str, JsonSchema]


def _convert(node: JsonSchema, defs: Defs, path: str, seen: tuple[str, ...]) -> JsonSchema:
    unknown = set(node) - _HANDLED_KEYWORDS - _DROPPED_KEYWORDS - set(_PLAIN_KEYWORDS)
    if unknown:
        raise ValueError(
            f"{path or '<root>'}: unsupported JSON Schema keyword(s) {sorted(unknown)}"
        )

    if "$ref" in node:
        return _convert_ref(node, defs, path, seen)
    if "allOf" in node and len(node["allOf"]) == 1:  # pydantic's wrapper to describe a $ref
        inner = {k: v for k, v in node.items() if k != "allOf"}
        return _convert({**node["allOf"][0], **inner}, defs, path, seen)
    if "anyOf" in node or "oneOf" in node or "allOf" in node:
        return _convert_union(node, defs, path, seen)

    out: JsonSchema = {}
    if "const" in node:
        out["type"] = node.get("type") or _json_type(node["const"])
        out["enum"] = [node["const"]]
    elif "type" in node:
        if isinstance(node["type"], list):
            raise ValueError(f"{path}: a list of types cannot be expressed structurally")
        out["type"] = node["type"]
    elif "enum" in node:
        out["type"] = _json_type(node["enum"][0])

    for keyword in _PLAIN_KEYWORDS:
        if keyword in node and keyword not in out:
            out[keyword] = copy.deepcopy(node[keyword])
    _convert_exclusive_bounds(node, out)
    if node.get("format") in KUBERNETES_FORMATS:
        out["format"] = node["format"]
    if out.get("type") == "object" or "properties" in node or "additionalProperties" in node:
        out["type"] = "object"
        _convert_object(node, out, defs, path, seen)
    elif out.get("type") == "array":
        if "items" in node:
            out["items"] = _convert(node["items"], defs, f"{path}[]", seen)
        else:
            out["items"] = {"x-kubernetes-preserve-unknown-fields": True}
        if node.get("uniqueItems") and out["items"].get("type") in _SCALAR_TYPES:
            # Kubernetes forbids uniqueItems (quadratic); a set-typed list says the same.
            out["x-kubernetes-list-type"] = "set"
    elif "type" not in out:
        # No type at all (``Any``): only preserve-unknown-fields makes this structural.
        out["x-kubernetes-preserve-unknown-fields"] = True
    if node.get("default") is not None and _is_valid(node["default"], out):
        # The API server rejects a CRD whose defaults do not validate; pydantic does not check
        # defaults, so an invalid one (e.g. "" against a pattern) stays a model-only default.
        out["default"] = copy.deepcopy(node["default"])
    return _ordered(out)


def _is_valid(value: Any, schema: JsonSchema) -> bool:
    """Whether ``value`` validates against ``schema`` (OpenAPI v3.0 ≈ JSON Schema draft 4)."""
    return jsonschema.Draft4Validator(schema).is_valid(value)


def _ordered(node: JsonSchema) -> JsonSchema:
    """``type`` and ``description`` first, for readers of the YAML and of ``kubectl explain``."""
    head = {k: node[k] for k in ("type", "description") if k in node}
    return {**head, **{k: v for k, v in node.items() if k not in head}}


def _convert_ref(node: JsonSchema, defs: Defs, path: str, seen: tuple[str, ...]) -> JsonSchema:
    name = node["$ref"].rsplit("/", 1)[-1]
    if name in seen:
        raise ValueError(f"{path}: recursive reference to {name} cannot be inlined")
    if name not in defs:
        raise ValueError(f"{path}: reference {node['$ref']!r} not found in $defs")
    # Keywords beside a $ref (description, default) refine the referenced schema.
    siblings = {k: v for k, v in node.items() if k != "$ref"}
    return _convert({**defs[name], **siblings}, defs, path, (*seen, name))


def _convert_union(node: JsonSchema, defs: Defs, path: str, seen: tuple[str, ...]) -> JsonSchema:
    variants = node.get("anyOf") or node.get("oneOf") or node.get("allOf")
    non_null = [v for v in variants if v.get("type") != "null"]
    outer = {k: v for k, v in node.items() if k not in ("anyOf", "oneOf", "allOf")}
    if len(non_null) == 1 and "allOf" not in node:
        out = _convert({**non_null[0], **outer}, defs, path, seen)
        if len(non_null) < len(variants):
            out["nullable"] = True
        return out
    # A real union (e.g. a list of roles or an AccessMode object): no single structural type.
    kinds = ", ".join(sorted({_describe(v, defs) for v in non_null}))
    out = {"x-kubernetes-preserve-unknown-fields": True}
    description = node.get("description", "")
    out["description"] = f"{description} One of: {kinds}.".strip()
    if len(non_null) < len(variants):
        out["nullable"] = True
    return _ordered(out)


def _convert_object(
    node: JsonSchema, out: JsonSchema, defs: Defs, path: str, seen: tuple[str, ...]
) -> None:
    if node.get("properties"):
        out["properties"] = {
            name: _convert(sub, defs, f"{path}.{name}", seen)
            for name, sub in node["properties"].items()
        }
        if node.get("required"):
            out["required"] = list(node["required"])
    patterns = node.get("patternProperties") or {}
    additional = node.get("additionalProperties")
    if len(patterns) == 1 and not node.get("properties"):
        ((key_pattern, value_schema),) = patterns.items()
        out["additionalProperties"] = _convert(value_schema, defs, f"{path}.*", seen)
        max_key = (node.get("propertyNames") or {}).get("maxLength")
        rule = f"Keys match {key_pattern}" + (f", at most {max_key} characters" if max_key else "")
        out["description"] = f"{out.get('description', '')} {rule}.".strip()
    elif patterns or additional is True or (additional is None and not node.get("properties")):
        # Free-form map (dict[str, Any]) or patterns we cannot express: keep what is sent.
        out["x-kubernetes-preserve-unknown-fields"] = True
    elif isinstance(additional, dict):
        out["additionalProperties"] = _convert(additional, defs, f"{path}.*", seen)
    # additionalProperties: false is dropped: the API server prunes unknown fields.


def _convert_exclusive_bounds(node: JsonSchema, out: JsonSchema) -> None:
    """Draft 2020-12 ``exclusiveMinimum: 0`` → OpenAPI v3.0 ``minimum: 0`` with
    ``exclusiveMinimum: true`` (and the same for maxima)."""
    for exclusive, bound in (("exclusiveMinimum", "minimum"), ("exclusiveMaximum", "maximum")):
        value = node.get(exclusive)
        if isinstance(value, bool):
            if value:
                out[exclusive] = True
        elif value is not None:
            out[bound] = value
            out[exclusive] = True


def _json_type(value: Any) -> str:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"


def _describe(variant: JsonSchema, defs: Defs) -> str:
    if "$ref" in variant:
        ref = defs.get(variant["$ref"].rsplit("/", 1)[-1], {})
        return "an object (" + ", ".join(ref.get("properties", {})) + ")"
    kind = variant.get("type", "any value")
    if kind == "array" and isinstance(variant.get("items"), dict):
        return f"a list of {variant['items'].get('type', 'values')}s"
    return f"a {kind}" if kind != "object" else "an object"


# --------------------------------------------------------------------------- CRD documents


def status_schema() -> JsonSchema:
    """Schema of ``.status``, the same for every kind.

    ``conditions`` follows ``metav1.Condition`` (Ready / Reconciling / Stalled, each with its own
    ``observedGeneration``), merged by ``type``; ``observedGeneration`` is the generation last
    reconciled; ``children`` counts the objects the operator derived, by kind. Any other field is
    kept as written (``x-kubernetes-preserve-unknown-fields``), so the operator can record, e.g.,
    the image and digest running in each environment of a Workload or the break-glass grants of
    a Domain without a CRD change.

    Sources: the conditions convention,
    https://github.com/kubernetes/community/blob/master/contributors/devel/sig-architecture/api-conventions.md#typical-status-properties
    and the field limits of ``metav1.Condition`` (type 316, reason 1024, message 32768
    characters), https://pkg.go.dev/k8s.io/apimachinery/pkg/apis/meta/v1#Condition
    """
    condition = {
        "type": "object",
        "required": ["type", "status"],
        "properties": {
            "type": {
                "type": "string",
                "maxLength": 316,
                "description": "Ready, Reconciling or Stalled.",
            },
            "status": {"type": "string", "enum": ["True", "False", "Unknown"]},
            "reason": {
                "type": "string",
                "maxLength": 1024,
                "description": "CamelCase reason of the last transition, for machines.",
            },
            "message": {"type": "string", "maxLength": 32768, "description": "For humans."},
            "lastTransitionTime": {"type": "string", "format": "date-time"},
            "observedGeneration": {"type": "integer", "format": "int64", "minimum": 0},
        },
    }
    return {
        "type": "object",
        "description": (
            "Observed state, written by the Konfig operator through the status subresource."
        ),
        "x-kubernetes-preserve-unknown-fields": True,
        "properties": {
            "observedGeneration": {
                "type": "integer",
                "format": "int64",
                "minimum": 0,
                "description": "metadata.generation of the spec last reconciled.",
            },
            "conditions": {
                "type": "array",
                "items": condition,
                "x-kubernetes-list-type": "map",
                "x-kubernetes-list-map-keys": ["type"],
            },
            "children": {
                "type": "object",
                "description": "Objects derived from this one, counted by kind (namespaces: 3).",
                "additionalProperties": {"type": "integer", "format": "int64", "minimum": 0},
            },
        },
    }


def resource_schema(model: type[Definition]) -> JsonSchema:
    """The ``openAPIV3Schema`` of one kind: ``spec`` from the model, ``status`` from
    :func:`status_schema`, and ``metadata`` restricted only in ``name`` (Kubernetes allows no
    other constraint on metadata; it validates labels and annotations itself)."""
    converted = structural_schema(model.model_json_schema(by_alias=True, mode="validation"))
    props = converted["properties"]
    name_rules = props["metadata"]["properties"]["name"]
    metadata = {
        "type": "object",
        "properties": {
            "name": {k: name_rules[k] for k in ("type", "pattern", "maxLength") if k in name_rules}
        },
    }
    schema: JsonSchema = {
        "type": "object",
        "description": (model.__doc__ or "").strip().splitlines()[0],
        "properties": {
            "apiVersion": {"type": "string", "description": f"{GROUP}/{VERSION}"},
            "kind": {"type": "string", "description": model.KIND},
            "metadata": metadata,
            "spec": props["spec"],
            "status": status_schema(),
        },
    }
    required = [r for r in converted.get("required", []) if r == "spec"]
    if required:
        schema["required"] = required
    return schema


def printer_columns(names: KindNames) -> list[dict[str, Any]]:
    """``additionalPrinterColumns``: Ready and Reason from the Ready condition, the kind's own
    columns, Age, and the condition's message in ``-o wide``."""
    return [
        {"name": "Ready", "type": "string", "jsonPath": f"{READY_CONDITION}.status"},
        {"name": "Reason", "type": "string", "jsonPath": f"{READY_CONDITION}.reason"},
        *({"name": n, "type": t, "jsonPath": p} for n, p, t in names.columns),
        {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
        {
            "name": "Message",
            "type": "string",
            "jsonPath": f"{READY_CONDITION}.message",
            "priority": 1,
        },
    ]


def crd(kind: str) -> CRD:
    """The ``apiextensions.k8s.io/v1`` CustomResourceDefinition of ``kind`` (a key of
    :data:`konfig.model.KINDS`). Namespaced, one served and stored version, status subresource.

    Raises ``KeyError`` for an unknown kind.
    """
    names = NAMES[kind]
    model = KINDS[kind]
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {
            "name": names.crd_name,
            "labels": {"app.kubernetes.io/name": "konfig", "app.kubernetes.io/component": "crd"},
        },
        "spec": {
            "group": GROUP,
            "scope": "Namespaced",
            "names": {
                "kind": names.kind,
                "listKind": f"{names.kind}List",
                "plural": names.plural,
                "singular": names.singular,
                "shortNames": list(names.short_names),
                "categories": [CATEGORY],
            },
            "versions": [
                {
                    "name": VERSION,
                    "served": True,
                    "storage": True,
                    "subresources": {"status": {}},
                    "additionalPrinterColumns": printer_columns(names),
                    "schema": {"openAPIV3Schema": resource_schema(model)},
                }
            ],
        },
    }


def all_crds() -> list[CRD]:
    """The CRDs of every kind, in :data:`konfig.model.KINDS` order (hierarchy order)."""
    return [crd(kind) for kind in KINDS]


def crd_filename(definition: CRD) -> str:
    """File name of a CRD in ``charts/konfig/crds/``: ``<group>_<plural>.yaml`` (as
    controller-gen names them)."""
    spec = definition["spec"]
    return f"{spec['group']}_{spec['names']['plural']}.yaml"


GENERATED_HEADER = "# Generated from konfig/model by `konfig crds`; do not edit.\n"


def render_yaml(definitions: list[CRD]) -> str:
    """The CRDs as one YAML stream (``---`` between documents), keys in insertion order, each
    document starting with :data:`GENERATED_HEADER`."""
    yaml = YAML()
    yaml.width = 4096  # keep long descriptions and patterns on one line
    yaml.indent(mapping=2, sequence=4, offset=2)
    docs = []
    for definition in definitions:
        stream = io.StringIO()
        yaml.dump(definition, stream)
        docs.append(GENERATED_HEADER + stream.getvalue())
    return "---\n".join(docs)
