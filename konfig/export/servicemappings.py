"""Config Connector service mappings: which google provider resource backs each KCC kind.

The mappings are upstream data (``konfig/data/kcc/servicemappings/*.yaml``, see its SOURCE.md):
one ``ServiceMapping`` per API group, with one ``ResourceConfig`` per Terraform resource. Only
the fields the exporter needs are parsed; their meaning follows the upstream Go type
``ResourceConfig`` in ``pkg/apis/core/v1alpha1/servicemapping_types.go`` of
https://github.com/GoogleCloudPlatform/k8s-config-connector.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML

from konfig.resources import data_path

#: Where the vendored mappings live.
SERVICE_MAPPINGS_DIR = data_path("kcc", "servicemappings")


@dataclass(frozen=True)
class TypeConfig:
    """The target of a reference: its ``kind``/``group``, the field of the target whose value is
    used (``target_field``, snake_case; empty means the target's resource ID) and an optional
    ``value_template`` such as ``projects/{{project}}/topics/{{value}}``. ``key`` names the
    KRM field holding the reference (``topicRef``); ``json_schema_type`` marks a plain value
    that is not a reference at all."""

    key: str = ""
    kind: str = ""
    group: str = ""
    target_field: str = ""
    value_template: str = ""
    parent: bool = False
    json_schema_type: str = ""


@dataclass(frozen=True)
class ReferenceConfig:
    """One ``resourceReferences`` entry: the Terraform field ``tf_field`` (dotted snake_case
    path) is filled from the KRM reference ``key`` found at the same path (camelCase). When
    ``types`` is set, the reference is an object with one sub-key per possible target kind
    (``destination: {bigQueryDatasetRef: ...}``)."""

    tf_field: str
    target: TypeConfig
    types: tuple[TypeConfig, ...] = ()

    @property
    def key(self) -> str:
        """KRM key of the reference; defaults to the camelCase last segment of ``tf_field``."""
        if self.target.key:
            return self.target.key
        from konfig.export.names import snake_to_camel

        return snake_to_camel(self.tf_field.rsplit(".", 1)[-1])


@dataclass(frozen=True)
class Container:
    """A parent given by annotation (``cnrm.cloud.google.com/<type>-id``) into ``tf_field``."""

    type: str
    tf_field: str
    value_template: str = ""


@dataclass(frozen=True)
class IamConfig:
    """How IAM on this resource is expressed in Terraform: ``policy_member_name`` is the
    ``*_iam_member`` type and ``reference_field`` its argument naming the resource, filled with
    the resource's ID (``reference_type == "id"``) or its name (``"name"``)."""

    policy_member_name: str
    reference_field: str
    reference_type: str
    supports_conditions: bool = False


@dataclass(frozen=True)
class ResourceConfig:
    """One upstream ``ResourceConfig``: KCC ``kind`` of API ``group`` backed by the Terraform
    resource ``name``. Field paths are snake_case Terraform paths."""

    name: str
    kind: str
    group: str
    id_template: str = ""
    server_generated_id_field: str = ""
    resource_id_target_field: str = ""
    resource_id_value_template: str = ""
    metadata_name: str = ""
    metadata_labels: str = ""
    locationality: str = ""
    skip_import: bool = False
    references: tuple[ReferenceConfig, ...] = ()
    containers: tuple[Container, ...] = ()
    hierarchical_references: tuple[tuple[str, str], ...] = ()  # (type, key)
    directives: tuple[str, ...] = ()
    ignored_output_only_spec_fields: tuple[str, ...] = ()
    iam: IamConfig | None = None
    iam_member_target_field: str = ""
    iam_member_value_template: str = ""

    @property
    def resource_id_field(self) -> str:
        """Terraform field holding the resource's own ID (``name``, ``project_id``, ...)."""
        return self.resource_id_target_field or self.metadata_name

    @property
    def resource_id_is_server_generated(self) -> bool:
        return bool(self.resource_id_target_field) and (
            self.resource_id_target_field == self.server_generated_id_field
        )


@dataclass
class ServiceMappings:
    """All resource configs, looked up by ``(group, kind)``; several configs for one kind
    differ by ``locationality`` (global, regional, zonal)."""

    by_kind: dict[tuple[str, str], list[ResourceConfig]] = field(default_factory=dict)

    def configs(self, group: str, kind: str) -> list[ResourceConfig]:
        """Every config of ``kind`` in ``group`` (empty when the kind has no mapping)."""
        return self.by_kind.get((group, kind), [])

    def for_kind(self, kind: str) -> list[ResourceConfig]:
        """Every config of ``kind`` whatever its group (KCC kind names are unique)."""
        return [rc for (_, k), rcs in sorted(self.by_kind.items()) if k == kind for rc in rcs]

    def select(self, group: str, kind: str, spec: dict[str, Any]) -> ResourceConfig | None:
        """The config for one object: the only one, or the one whose locationality matches
        ``spec.location`` (``global``, a region such as ``us-central1`` or a zone such as
        ``us-central1-a``), as upstream ``servicemappingloader.GetResourceConfig`` does."""
        candidates = self.configs(group, kind) or self.for_kind(kind)
        if len(candidates) <= 1:
            return candidates[0] if candidates else None
        wanted = _locationality(str(spec.get("location", "")))
        for rc in candidates:
            if rc.locationality == wanted:
                return rc
        return None


def _locationality(location: str) -> str:
    if location == "global":
        return "global"
    # Zones end with a one-letter suffix (us-central1-a); regions do not (us-central1).
    parts = location.split("-")
    if len(parts) == 3 and len(parts[2]) == 1:
        return "zonal"
    return "regional"


def _type_config(raw: dict[str, Any], default_key: str = "") -> TypeConfig:
    gvk = raw.get("gvk") or {}
    return TypeConfig(
        key=raw.get("key", default_key),
        kind=gvk.get("kind", ""),
        group=gvk.get("group", ""),
        target_field=raw.get("targetField", ""),
        value_template=raw.get("valueTemplate", ""),
        parent=bool(raw.get("parent", False)),
        json_schema_type=raw.get("jsonSchemaType", ""),
    )


def _resource_config(raw: dict[str, Any], group: str) -> ResourceConfig:
    references = []
    for ref in raw.get("resourceReferences") or []:
        types = tuple(_type_config(t) for t in ref.get("types") or ())
        references.append(ReferenceConfig(ref["tfField"], _type_config(ref), types))
    iam = raw.get("iamConfig")
    iam_ref = raw.get("iamMemberReferenceConfig") or {}
    metadata = raw.get("metadataMapping") or {}
    resource_id = raw.get("resourceID") or {}
    return ResourceConfig(
        name=raw["name"],
        kind=raw["kind"],
        group=group,
        id_template=raw.get("idTemplate", ""),
        server_generated_id_field=raw.get("serverGeneratedIDField", ""),
        resource_id_target_field=resource_id.get("targetField", ""),
        resource_id_value_template=resource_id.get("valueTemplate", ""),
        metadata_name=metadata.get("name", ""),
        metadata_labels=metadata.get("labels", ""),
        locationality=raw.get("locationality", ""),
        skip_import=bool(raw.get("skipImport", False)),
        references=tuple(references),
        containers=tuple(
            Container(c["type"], c["tfField"], c.get("valueTemplate", ""))
            for c in raw.get("containers") or ()
        ),
        hierarchical_references=tuple(
            (h["type"], h["key"]) for h in raw.get("hierarchicalReferences") or ()
        ),
        directives=tuple(raw.get("directives") or ()),
        ignored_output_only_spec_fields=tuple(raw.get("ignoredOutputOnlySpecFields") or ()),
        iam=IamConfig(
            policy_member_name=iam["policyMemberName"],
            reference_field=iam["referenceField"]["name"],
            reference_type=iam["referenceField"]["type"],
            supports_conditions=bool(iam.get("supportsConditions", False)),
        )
        if iam and iam.get("policyMemberName")
        else None,
        iam_member_target_field=iam_ref.get("targetField", ""),
        iam_member_value_template=iam_ref.get("valueTemplate", ""),
    )


def parse_service_mapping(doc: dict[str, Any]) -> list[ResourceConfig]:
    """Resource configs of one ``ServiceMapping`` document (its ``metadata.name`` is the group)."""
    group = doc["metadata"]["name"]
    return [_resource_config(raw, group) for raw in doc["spec"].get("resources") or ()]


def load_service_mappings(directory: Path | None = None) -> ServiceMappings:
    """Read every ``*.yaml`` ServiceMapping in ``directory`` (default: the vendored copy).

    Raises ``FileNotFoundError`` if the directory is missing and ``KeyError`` on a mapping
    without the required ``name``/``kind``/``tfField`` keys.
    """
    directory = directory or SERVICE_MAPPINGS_DIR
    if not directory.is_dir():
        raise FileNotFoundError(f"service mappings not found in {directory}")
    yaml = YAML(typ="safe", pure=True)
    mappings = ServiceMappings()
    for path in sorted(directory.glob("*.yaml")):
        for doc in yaml.load_all(path.read_text(encoding="utf-8")):
            if not doc or doc.get("kind") != "ServiceMapping":
                continue
            for rc in parse_service_mapping(doc):
                mappings.by_kind.setdefault((rc.group, rc.kind), []).append(rc)
    return mappings


@lru_cache(maxsize=1)
def default_service_mappings() -> ServiceMappings:
    """The vendored mappings, parsed once per process."""
    return load_service_mappings()
