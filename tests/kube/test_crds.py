"""The konfig.dev CRDs: structural per Kubernetes' rules, faithful to the pydantic models, and
accepting exactly the documents the models accept (as far as OpenAPI can say).

The structural rules checked here are Kubernetes' own:
https://kubernetes.io/docs/tasks/extend-kubernetes/custom-resources/custom-resource-definitions/#specifying-a-structural-schema
and k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/validation/validation.go (forbidden
keywords, additionalProperties vs properties, defaults that must validate). The set of keywords a
JSONSchemaProps may carry comes from the Kubernetes client's generated model.
"""

from __future__ import annotations

import copy
import io
import re
from pathlib import Path
from typing import Any, Literal

import jsonschema
import referencing.exceptions
import pydantic
import pytest
import typer
from kubernetes.client import V1JSONSchemaProps
from pydantic import BaseModel, Field
from ruamel.yaml import YAML
from typer.testing import CliRunner

from konfig.commands import kube as kube_commands
from konfig.kube import crds
from konfig.model import KINDS

YAML_SAFE = YAML(typ="safe")

#: Every field name a JSONSchemaProps has (the Kubernetes OpenAPI, via the generated client).
JSON_SCHEMA_PROPS_FIELDS = frozenset(V1JSONSchemaProps.attribute_map.values())
#: Fields the API server refuses in a v1 CRD schema (validation.go, specStandardValidatorV3),
#: plus ones a structural schema must not need: junctors, which would need every field and
#: type repeated outside them, and ``title``, which this project keeps out on purpose.
FORBIDDEN = frozenset(
    {
        "$ref",
        "$schema",
        "id",
        "definitions",
        "dependencies",
        "patternProperties",
        "additionalItems",
        "anyOf",
        "allOf",
        "oneOf",
        "not",
        "title",
    }
)
#: Root fields allowed when the status subresource is on (validation.go, allowedAtRootSchema).
ALLOWED_AT_ROOT = frozenset(
    {"type", "description", "properties", "required", "x-kubernetes-validations"}
)
PRINTER_COLUMN_TYPES = frozenset({"integer", "number", "string", "boolean", "date"})
DNS1035 = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")


# --------------------------------------------------------------------------- the checker


def structural_problems(schema: dict[str, Any]) -> list[str]:
    """Every way ``schema`` (an ``openAPIV3Schema`` with the status subresource on) breaks
    Kubernetes' rules, as ``path: problem`` strings; empty when the API server would accept it."""
    problems: list[str] = []
    extra_root = set(schema) - ALLOWED_AT_ROOT
    if extra_root:
        problems.append(
            f"<root>: not allowed at the root with a status subresource: {sorted(extra_root)}"
        )
    if schema.get("type") != "object":
        problems.append("<root>: type must be object")
    _check_node(schema, "", problems)
    metadata = schema.get("properties", {}).get("metadata")
    if metadata is not None:
        allowed = {"name", "generateName"}
        if set(metadata.get("properties", {})) - allowed or set(metadata) - {"type", "properties"}:
            problems.append(
                "metadata: only metadata.name and metadata.generateName may be restricted"
            )
    return problems


def _check_node(node: dict[str, Any], path: str, problems: list[str]) -> None:
    where = path or "<root>"
    unknown = set(node) - JSON_SCHEMA_PROPS_FIELDS
    if unknown:
        problems.append(f"{where}: not a JSONSchemaProps field: {sorted(unknown)}")
    forbidden = set(node) & FORBIDDEN
    if forbidden:
        problems.append(f"{where}: forbidden keyword(s) {sorted(forbidden)}")
    preserve = node.get("x-kubernetes-preserve-unknown-fields")
    if preserve is not None and preserve is not True:
        problems.append(f"{where}: x-kubernetes-preserve-unknown-fields must be true or absent")
    if not node.get("type") and not preserve and not node.get("x-kubernetes-int-or-string"):
        problems.append(f"{where}: no type")
    if node.get("type") not in (None, "object", "array", "string", "integer", "number", "boolean"):
        problems.append(f"{where}: type {node.get('type')!r} (use nullable for null)")
    if node.get("uniqueItems"):
        problems.append(f"{where}: uniqueItems")
    additional = node.get("additionalProperties")
    if additional is False:
        problems.append(f"{where}: additionalProperties: false (the API server prunes instead)")
    if additional is not None and node.get("properties"):
        problems.append(f"{where}: additionalProperties and properties are mutually exclusive")
    for field in node.get("required", []):
        if field not in node.get("properties", {}):
            problems.append(f"{where}: required field {field!r} is not a property")
    if "enum" in node:
        for value in node["enum"]:
            if not jsonschema.Draft4Validator({"type": node.get("type")}).is_valid(value):
                problems.append(f"{where}: enum value {value!r} is not a {node.get('type')}")
    if "default" in node:
        if path.startswith(".metadata"):
            problems.append(f"{where}: defaults under metadata")
        bare = {k: v for k, v in node.items() if k != "default"}
        try:
            if not jsonschema.Draft4Validator(_as_json_schema(bare)).is_valid(node["default"]):
                problems.append(f"{where}: default {node['default']!r} does not validate")
        except referencing.exceptions.Unresolvable:  # a $ref, itself reported above
            problems.append(f"{where}: default {node['default']!r} cannot be checked through a $ref")
    if node.get("x-kubernetes-list-type") == "map":
        items = node.get("items", {})
        for key in node.get("x-kubernetes-list-map-keys", []):
            if key not in items.get("required", []):
                problems.append(f"{where}: list-map key {key!r} must be required")
            if items.get("properties", {}).get(key, {}).get("type") not in (
                "string",
                "integer",
                "boolean",
            ):
                problems.append(f"{where}: list-map key {key!r} must be a scalar")
    if node.get("x-kubernetes-list-type") == "set" and node.get("items", {}).get("type") in (
        "object",
        "array",
    ):
        problems.append(f"{where}: a set holds scalars only")
    if "items" in node:
        if not isinstance(node["items"], dict):
            problems.append(f"{where}: items must be one schema")
        else:
            _check_node(node["items"], f"{path}[]", problems)
    if isinstance(additional, dict):
        _check_node(additional, f"{path}.*", problems)
    for name, sub in node.get("properties", {}).items():
        _check_node(sub, f"{path}.{name}", problems)


def _as_json_schema(node: dict[str, Any], path: tuple[str, ...] = ()) -> dict[str, Any]:
    """An OpenAPI v3.0 structural schema as draft-4 JSON Schema, with the API server's
    semantics: ``nullable`` admits null, and unknown fields are errors (strict field validation,
    ``kubectl``'s default since Kubernetes 1.25) except where unknown fields are preserved and in
    ``metadata``, which Kubernetes validates itself."""
    out = dict(node)
    if node.get("nullable") and "type" in node:
        out["type"] = [node["type"], "null"]
        if "enum" in node:
            out["enum"] = [*node["enum"], None]
    if "properties" in node:
        out["properties"] = {
            k: _as_json_schema(v, (*path, k)) for k, v in node["properties"].items()
        }
    if isinstance(node.get("additionalProperties"), dict):
        out["additionalProperties"] = _as_json_schema(node["additionalProperties"], (*path, "*"))
    if isinstance(node.get("items"), dict):
        out["items"] = _as_json_schema(node["items"], (*path, "[]"))
    pruned = node.get("type") == "object" and not node.get("x-kubernetes-preserve-unknown-fields")
    if pruned and "additionalProperties" not in node and path != ("metadata",):
        out["additionalProperties"] = False
    return out


def _validator(kind: str) -> jsonschema.Draft4Validator:
    schema = crds.crd(kind)["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    return jsonschema.Draft4Validator(_as_json_schema(schema))


def _errors(kind: str, document: dict[str, Any]) -> list[str]:
    return [
        f"{'.'.join(map(str, e.absolute_path))}: {e.message}"
        for e in _validator(kind).iter_errors(document)
    ]


# --------------------------------------------------------------------------- samples

#: One document per kind using every field of its model (see test_samples_use_every_field).
FULL_SAMPLES = YAML_SAFE.load_all(
    """
apiVersion: konfig.dev/v1alpha1
kind: ControlPlane
metadata: {name: acme, labels: {team: platform}, annotations: {owner: platform-team}}
spec:
  displayName: Acme
  gcp:
    parent: organizations/123456789012
    billingAccount: 012345-6789AB-CDEF01
    defaultRegion: us-central1
    projectIdPrefix: acme-
    projectId: acme-control
    projectNumber: "123456789012"
  gitlab: {url: "https://gitlab.example.com", parentGroup: acme/platform, cliImage: "registry.example.com/konfig:1"}
  environments: [{name: dev}, {name: stage}, {name: prod, production: true}]
  services: [run.googleapis.com, sqladmin.googleapis.com]
  groups:
    - {group: platform-admins@acme.com, role: owner, samlGroupName: platform-admins}
  breakGlass: {maxDuration: 2h, roles: [roles/run.admin], privilegedAccessManager: true}
  network: {environments: {dev: {cidr: 10.10.0.0/16, projectId: acme-net-dev}}}
  ingress: {host: api.acme.com, environments: {stage: {host: staging.acme.com}}}
  rawKcc:
    - {apiGroup: monitoring.cnrm.cloud.google.com, service: monitoring.googleapis.com, roles: [roles/monitoring.editor]}
  policy: {extraRoles: [roles/iam.serviceAccountTokenCreator], extraKinds: [serviceusage/ServiceIdentity],
           extraProjects: [acme-payments-prod]}
---
apiVersion: konfig.dev/v1alpha1
kind: Platform
metadata: {name: retail, labels: {cost-center: retail}, annotations: {owner: retail-leads}}
spec:
  displayName: Retail
  services: [run.googleapis.com]
  groups: [{group: retail-leads@acme.com, role: maintainer, samlGroupName: retail-leads}]
  budget: {monthly: 10000, currency: EUR}
---
apiVersion: konfig.dev/v1alpha1
kind: Domain
metadata: {name: ecommerce, labels: {cost-center: shop}, annotations: {owner: shop-team}}
spec:
  platform: retail
  displayName: E-commerce
  environments: [dev, prod]
  services: [run.googleapis.com]
  groups: [{group: ecommerce-devs@acme.com, role: developer, samlGroupName: ecommerce-devs}]
  workloads: [checkout, cart]
  projectIds: {prod: acme-shop-prod}
  budget: {monthly: 2000.5, currency: USD}
  rawKcc:
    - environments: [prod]
      manifest:
        apiVersion: monitoring.cnrm.cloud.google.com/v1beta1
        kind: MonitoringNotificationChannel
        metadata: {name: oncall}
        spec: {type: email, labels: {email_address: oncall@acme.com}}
---
apiVersion: konfig.dev/v1alpha1
kind: Workload
metadata: {name: checkout, labels: {tier: frontend}, annotations: {owner: shop-team}}
spec:
  platform: retail
  domain: ecommerce
  runtime: gke
  image: us-docker.pkg.dev/acme-cp/ecommerce/checkout@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef
  container: {port: 9000, cpu: 500m, memory: 1Gi, command: [/app/server], args: [--verbose], healthPath: /healthz}
  scaling: {min: 1, max: 5, cpuTarget: 60}
  ingress: {visibility: external, path: /checkout}
  env: {LOG_LEVEL: info}
  resources:
    - {name: orders, template: cloudsql-postgres, access: readwrite, params: {tier: db-custom-2-7680, ha: true}}
  dependencies: [{workload: payments-api, domain: payments}]
  dataflow: {mode: streaming, parameters: {input: $(LOG_LEVEL)}, machineType: n2-standard-2, maxWorkers: 3}
  environments:
    prod:
      image: us-docker.pkg.dev/acme-cp/ecommerce/checkout:v1
      container: {port: 9001, cpu: "2", memory: 2Gi, command: [/app/server], args: [--prod], healthPath: /ready}
      scaling: {min: 2, max: 20, cpuTarget: 80}
      env: {LOG_LEVEL: warn}
      dataflow: {parameters: {input: x}, machineType: n2-standard-4, maxWorkers: 9}
---
apiVersion: konfig.dev/v1alpha1
kind: ResourceTemplate
metadata: {name: cloudsql-postgres, labels: {kind: database}, annotations: {owner: platform-team}}
spec:
  description: A Cloud SQL for PostgreSQL instance and database.
  parameters: {type: object, properties: {tier: {type: string, default: db-custom-1-3840}}}
  access:
    read: [roles/cloudsql.client]
    readwrite: {roles: [roles/cloudsql.client, roles/cloudsql.instanceUser], bindTo: project, source: "https://cloud.google.com/sql/docs/postgres/iam-roles"}
  bindTo: instance
  env: {DB_INSTANCE: "${instance.status.connectionName}"}
  resources:
    - id: instance
      includeWhen: ["${environment.production}"]
      template:
        apiVersion: sql.cnrm.cloud.google.com/v1beta1
        kind: SQLInstance
        metadata: {name: "${workload.name}-${resource.name}"}
        spec: {databaseVersion: POSTGRES_15, settings: {tier: "${params.tier}"}}
  environments:
    production:
      params: {tier: db-custom-4-15360}
      resources:
        - id: instance
          template: {spec: {settings: {availabilityType: REGIONAL}}}
  services: [sqladmin.googleapis.com]
"""
)
FULL_SAMPLES = {doc["kind"]: doc for doc in FULL_SAMPLES}

#: The examples of spec/definitions.md, as users write them.
CONTRACT_EXAMPLES = list(
    YAML_SAFE.load_all(
        """
apiVersion: konfig.dev/v1alpha1
kind: ControlPlane
metadata: {name: acme}
spec:
  gcp: {parent: organizations/123456789012, billingAccount: 012345-6789AB-CDEF01, defaultRegion: us-central1, projectIdPrefix: acme-}
  gitlab: {url: "https://gitlab.example.com", parentGroup: acme}
  environments: [{name: dev}, {name: stage}, {name: prod, production: true}]
  services: [run.googleapis.com, sqladmin.googleapis.com, storage.googleapis.com, pubsub.googleapis.com]
  groups:
    - {group: platform-admins@acme.com, role: owner}
    - {group: engineering@acme.com, role: viewer}
  breakGlass: {maxDuration: 4h}
---
apiVersion: konfig.dev/v1alpha1
kind: Platform
metadata: {name: retail}
spec:
  displayName: Retail
  groups: [{group: retail-leads@acme.com, role: maintainer}]
---
apiVersion: konfig.dev/v1alpha1
kind: Domain
metadata: {name: ecommerce}
spec:
  platform: retail
  environments: [dev, stage, prod]
  groups:
    - {group: ecommerce-devs@acme.com, role: developer}
    - {group: ecommerce-oncall@acme.com, role: owner}
  workloads: [checkout, cart]
  projectIds: {prod: acme-shop-prod}
  budget: {monthly: 2000.5, currency: USD}
---
apiVersion: konfig.dev/v1alpha1
kind: Workload
metadata: {name: checkout}
spec:
  platform: retail
  domain: ecommerce
  runtime: cloudrun
  container: {port: 8080, cpu: "1", memory: 512Mi}
  scaling: {min: 0, max: 10}
  ingress: {visibility: domain, path: /checkout}
  env: {LOG_LEVEL: info}
  resources:
    - {name: orders, template: cloudsql-postgres, access: readwrite}
    - {name: receipts, template: storage-bucket, access: write}
    - {name: order-events, template: pubsub-topic, access: publish}
  dependencies:
    - {workload: payments-api, domain: payments}
  environments:
    prod: {scaling: {min: 2}}
"""
    )
)

STATUS_SAMPLE = {
    "observedGeneration": 3,
    "conditions": [
        {
            "type": "Ready",
            "status": "True",
            "reason": "Reconciled",
            "message": "3 namespaces, 12 objects applied",
            "lastTransitionTime": "2026-11-22T04:00:00Z",
            "observedGeneration": 3,
        },
        {"type": "Stalled", "status": "False"},
    ],
    "children": {"namespaces": 3, "configConnectorObjects": 12},
    # Free-form fields the operator adds without a CRD change.
    "environments": {"prod": {"image": "us-docker.pkg.dev/a/b/c", "digest": "sha256:0123"}},
    "breakGlass": [{"group": "oncall@acme.com", "expires": "2026-11-22T08:00:00Z"}],
}


def _model_paths(
    schema: dict[str, Any], node: dict[str, Any], path: tuple[str, ...]
) -> set[tuple[str, ...]]:
    """Every field path the model's JSON Schema defines; ``*`` is any map key, ``[]`` any item."""
    if "$ref" in node:
        return _model_paths(schema, schema["$defs"][node["$ref"].rsplit("/", 1)[-1]], path)
    paths: set[tuple[str, ...]] = {path} if path else set()
    for variant in node.get("anyOf", []):
        paths |= _model_paths(schema, variant, path)
    for name, sub in node.get("properties", {}).items():
        paths |= _model_paths(schema, sub, (*path, name))
    for sub in node.get("patternProperties", {}).values():
        paths |= _model_paths(schema, sub, (*path, "*"))
    if isinstance(node.get("additionalProperties"), dict):
        paths |= _model_paths(schema, node["additionalProperties"], (*path, "*"))
    if isinstance(node.get("items"), dict):
        paths |= _model_paths(schema, node["items"], (*path, "[]"))
    return paths


def _present(value: Any, path: tuple[str, ...]) -> bool:
    if not path:
        return True
    head, rest = path[0], path[1:]
    if head == "[]":
        return isinstance(value, list) and any(_present(v, rest) for v in value)
    if head == "*":
        return isinstance(value, dict) and any(_present(v, rest) for v in value.values())
    return isinstance(value, dict) and head in value and _present(value[head], rest)


# --------------------------------------------------------------------------- tests: structure


@pytest.mark.parametrize("kind", list(KINDS))
def test_schema_is_structural(kind):
    schema = crds.crd(kind)["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    assert structural_problems(schema) == []


def test_checker_catches_what_pydantic_emits():
    """The checker is not vacuous: the model's raw JSON Schema breaks several rules."""
    raw = KINDS["Workload"].model_json_schema(by_alias=True)
    problems = "\n".join(structural_problems(raw))
    assert "$defs" in problems and "$ref" in problems
    spec = {"type": "object", "properties": {"spec": raw["$defs"]["WorkloadSpec"]}}
    problems = "\n".join(structural_problems(spec))
    for expected in ("$ref", "anyOf", "patternProperties", "title", "additionalProperties: false"):
        assert expected in problems


@pytest.mark.parametrize("kind", list(KINDS))
def test_crd_names_scope_versions_and_columns(kind):
    definition = crds.crd(kind)
    spec = definition["spec"]
    names = spec["names"]
    assert definition["metadata"]["name"] == f"{names['plural']}.{spec['group']}"
    assert spec["group"] == "konfig.dev" and spec["scope"] == "Namespaced"
    assert names["kind"] == kind and names["listKind"] == f"{kind}List"
    for name in (names["plural"], names["singular"], *names["shortNames"], *names["categories"]):
        assert DNS1035.match(name), name
    (version,) = spec["versions"]
    assert version["name"] == "v1alpha1" and version["served"] and version["storage"]
    assert version["subresources"] == {"status": {}}
    columns = {c["name"]: c for c in version["additionalPrinterColumns"]}
    assert columns["Ready"]["jsonPath"] == '.status.conditions[?(@.type=="Ready")].status'
    assert columns["Reason"]["jsonPath"] == '.status.conditions[?(@.type=="Ready")].reason'
    assert columns["Age"] == {
        "name": "Age",
        "type": "date",
        "jsonPath": ".metadata.creationTimestamp",
    }
    for column in columns.values():
        assert column["type"] in PRINTER_COLUMN_TYPES and column["jsonPath"].startswith(".")


def test_names_are_unique_across_kinds():
    all_names = [
        n
        for d in crds.all_crds()
        for n in (d["spec"]["names"]["plural"], *d["spec"]["names"]["shortNames"])
    ]
    assert len(all_names) == len(set(all_names))
    assert [d["spec"]["names"]["kind"] for d in crds.all_crds()] == list(KINDS)


@pytest.mark.parametrize("kind", list(KINDS))
def test_metadata_only_restricts_name_as_the_model_does(kind):
    schema = crds.crd(kind)["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    name = schema["properties"]["metadata"]["properties"]["name"]
    model_name = (
        KINDS[kind].model_fields["metadata"].annotation.model_json_schema()["properties"]["name"]
    )
    assert name == {
        "type": "string",
        "pattern": model_name["pattern"],
        "maxLength": model_name["maxLength"],
    }


def test_free_form_fields_preserve_unknown_fields():
    def node(kind: str, *path: str) -> dict[str, Any]:
        current = crds.crd(kind)["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
        for step in path:
            current = (
                current["items"]
                if step == "[]"
                else current["additionalProperties"]
                if step == "*"
                else current["properties"][step]
            )
        return current

    for kind, path in [
        ("ResourceTemplate", ("spec", "parameters")),
        ("ResourceTemplate", ("spec", "resources", "[]", "template")),
        ("ResourceTemplate", ("spec", "environments", "*", "params")),
        ("ResourceTemplate", ("spec", "environments", "*", "resources", "[]", "template")),
        ("Workload", ("spec", "resources", "[]", "params")),
        ("Workload", ("status",)),
    ]:
        assert node(kind, *path).get("x-kubernetes-preserve-unknown-fields") is True, (kind, path)
    # Typed maps keep their value schema instead.
    assert node("Workload", "spec", "env", "*") == {"type": "string"}


def test_status_conditions_are_a_map_keyed_by_type():
    conditions = crds.status_schema()["properties"]["conditions"]
    assert conditions["x-kubernetes-list-type"] == "map"
    assert conditions["x-kubernetes-list-map-keys"] == ["type"]
    fields = set(conditions["items"]["properties"])
    assert fields == {
        "type",
        "status",
        "reason",
        "message",
        "lastTransitionTime",
        "observedGeneration",
    }


def test_patterns_are_re2():
    """The API server compiles ``pattern`` with Go's regexp (RE2 syntax)."""
    re2 = pytest.importorskip("re2")

    def patterns(node: Any):
        if isinstance(node, dict):
            if isinstance(node.get("pattern"), str):
                yield node["pattern"]
            for value in node.values():
                yield from patterns(value)
        elif isinstance(node, list):
            for value in node:
                yield from patterns(value)

    found = list(patterns(crds.all_crds()))
    assert found
    for pattern in found:
        re2.compile(pattern)


# --------------------------------------------------------------------------- tests: documents


def test_samples_use_every_field():
    """Keeps FULL_SAMPLES complete, so the strict validation below covers every model field."""
    for kind, model in KINDS.items():
        schema = model.model_json_schema(by_alias=True)
        missing = [
            ".".join(p)
            for p in sorted(_model_paths(schema, schema, ()))
            if not _present(FULL_SAMPLES[kind], p)
        ]
        assert missing == [], f"{kind}: add these fields to FULL_SAMPLES: {missing}"


@pytest.mark.parametrize("kind", list(KINDS))
def test_full_samples_are_valid_models_and_valid_resources(kind):
    document = FULL_SAMPLES[kind]
    model = KINDS[kind].model_validate(document)
    assert _errors(kind, document) == []
    # What Konfig itself writes: defaults omitted, and everything including nulls.
    assert _errors(kind, model.to_document()) == []
    assert _errors(kind, {"kind": kind, **model.model_dump(by_alias=True, mode="json")}) == []
    assert _errors(kind, {**document, "status": STATUS_SAMPLE}) == []


@pytest.mark.parametrize("document", CONTRACT_EXAMPLES, ids=lambda d: d["kind"])
def test_contract_examples_are_valid_resources(document):
    model = KINDS[document["kind"]].model_validate(document)
    assert _errors(document["kind"], document) == []
    # Unset optional fields dump as null: the CRD must admit them (nullable).
    dumped = model.model_dump(by_alias=True, mode="json")
    assert None in _leaves(dumped)
    assert _errors(document["kind"], dumped) == []


def _leaves(value: Any) -> list[Any]:
    if isinstance(value, dict):
        return [leaf for v in value.values() for leaf in _leaves(v)]
    if isinstance(value, list):
        return [leaf for v in value for leaf in _leaves(v)]
    return [value]


def _set(document: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    out = copy.deepcopy(document)
    *parents, last = path.split(".")
    node = out
    for step in parents:
        node = node[int(step)] if isinstance(node, list) else node[step]
    if value is _DELETE:
        del node[last]
    elif isinstance(node, list):
        node[int(last)] = value
    else:
        node[last] = value
    return out


_DELETE = object()

#: Documents the models reject and Kubernetes must reject too: (kind, path, value, error text).
INVALID = [
    ("ControlPlane", "metadata.name", "a" * 21, "too long"),
    ("ControlPlane", "metadata.name", "Acme", "does not match"),
    ("ControlPlane", "spec.gcp.parent", "projects/1", "does not match"),
    ("ControlPlane", "spec.environments", [], "should be non-empty"),
    ("ControlPlane", "spec.gitlab", _DELETE, "'gitlab' is a required property"),
    ("Platform", "spec.groups.0.role", "admin", "is not one of"),
    ("Domain", "spec.platform", _DELETE, "'platform' is a required property"),
    ("Domain", "spec.projectIds.prod", 7, "is not of type"),
    ("Workload", "metadata.name", "w" * 25, "too long"),
    ("Workload", "spec.runtime", "lambda", "is not one of"),
    ("Workload", "spec.container.port", 70000, "maximum"),
    ("Workload", "spec.scaling.min", -1, "minimum"),
    ("Workload", "spec.env.LOG_LEVEL", 1, "is not of type"),
    ("Workload", "spec.replicas", 3, "Additional properties"),
    ("Workload", "spec.resources.0.access", _DELETE, "'access' is a required property"),
    ("ResourceTemplate", "spec.resources", [], "should be non-empty"),
    ("ResourceTemplate", "spec.access", {}, "should be non-empty"),
    ("ResourceTemplate", "spec.resources.0.template", "kind: SQLInstance", "is not of type"),
]


@pytest.mark.parametrize(
    ("kind", "path", "value", "message"), INVALID, ids=[f"{k}:{p}" for k, p, _, _ in INVALID]
)
def test_invalid_documents_are_rejected_by_model_and_crd(kind, path, value, message):
    document = _set(FULL_SAMPLES[kind], path, value)
    with pytest.raises(pydantic.ValidationError):
        KINDS[kind].model_validate(document)
    errors = _errors(kind, document)
    assert any(message in e for e in errors), errors


@pytest.mark.parametrize(
    ("status", "message"),
    [
        ({"conditions": [{"type": "Ready", "status": "yes"}]}, "is not one of"),
        ({"conditions": [{"status": "True"}]}, "'type' is a required property"),
        ({"observedGeneration": -1}, "minimum"),
        ({"children": {"namespaces": "three"}}, "is not of type"),
    ],
)
def test_invalid_status_is_rejected(status, message):
    errors = _errors("Domain", {**FULL_SAMPLES["Domain"], "status": status})
    assert any(message in e for e in errors), errors


# --------------------------------------------------------------------------- tests: converter


class _Leaf(BaseModel):
    value: int = Field(gt=0, lt=10)


class _Union(BaseModel):
    either: list[str] | _Leaf
    tags: set[str] = set()
    anything: Any = None
    fixed: Literal["x"] = "x"
    optional_leaf: _Leaf | None = None


class _Tree(BaseModel):
    children: list[_Tree] = []


def test_converter_handles_unions_sets_bounds_and_literals():
    schema = crds.structural_schema(_Union.model_json_schema())
    props = schema["properties"]
    assert props["either"] == {
        "description": "One of: a list of strings, an object (value).",
        "x-kubernetes-preserve-unknown-fields": True,
    }
    assert props["tags"]["x-kubernetes-list-type"] == "set" and "uniqueItems" not in props["tags"]
    assert props["anything"] == {"x-kubernetes-preserve-unknown-fields": True}
    assert props["fixed"] == {"type": "string", "enum": ["x"], "default": "x"}
    leaf = props["optional_leaf"]
    assert leaf["nullable"] is True and leaf["type"] == "object"
    assert leaf["properties"]["value"] == {
        "type": "integer",
        "minimum": 0,
        "exclusiveMinimum": True,
        "maximum": 10,
        "exclusiveMaximum": True,
    }
    assert structural_problems({"type": "object", "properties": {"spec": schema}}) == []


def test_converter_refuses_recursion_and_unknown_keywords():
    with pytest.raises(ValueError, match="recursive"):
        crds.structural_schema(_Tree.model_json_schema())
    with pytest.raises(ValueError, match="unsupported JSON Schema keyword"):
        crds.structural_schema({"type": "object", "discriminator": {"propertyName": "kind"}})


def test_converter_drops_defaults_kubernetes_would_refuse():
    """A default its own pattern rejects stays a model-only default (the API server would
    refuse the CRD); a valid one is kept."""
    schema = crds.structural_schema({"type": "string", "pattern": "^[a-z]+$", "default": ""})
    assert "default" not in schema
    gcp = crds.crd("ControlPlane")["spec"]["versions"][0]["schema"]["openAPIV3Schema"][
        "properties"
    ]["spec"]["properties"]["gcp"]
    assert gcp["properties"]["projectIdPrefix"]["default"] == ""
    assert (
        crds.crd("Workload")["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"][
            "spec"
        ]["properties"]["runtime"]["default"]
        == "cloudrun"
    )


def test_generation_is_pure_and_deterministic():
    first = crds.all_crds()
    first[0]["spec"]["names"]["kind"] = "Mutated"
    assert crds.render_yaml(crds.all_crds()) == crds.render_yaml(crds.all_crds())
    assert crds.all_crds()[0]["spec"]["names"]["kind"] == "ControlPlane"


# --------------------------------------------------------------------------- tests: command


def _cli() -> typer.Typer:
    app = typer.Typer()
    kube_commands.register(app)
    app.command("version")(lambda: None)  # two commands, so typer keeps subcommand names
    return app


def test_crds_command_prints_every_crd():
    result = CliRunner().invoke(_cli(), ["crds"])
    assert result.exit_code == 0, result.output
    assert list(YAML_SAFE.load_all(io.StringIO(result.stdout))) == crds.all_crds()


def test_crds_command_writes_files_and_removes_stale_ones(tmp_path: Path):
    (tmp_path / "konfig.dev_oldkinds.yaml").write_text("stale")
    (tmp_path / "unrelated.yaml").write_text("kept")
    result = CliRunner().invoke(_cli(), ["crds", "--output-dir", str(tmp_path)])
    assert result.exit_code == 0, result.output
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == sorted([*(crds.crd_filename(d) for d in crds.all_crds()), "unrelated.yaml"])
    for definition in crds.all_crds():
        assert YAML_SAFE.load((tmp_path / crds.crd_filename(definition)).read_text()) == definition
