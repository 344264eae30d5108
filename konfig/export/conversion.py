"""One Config Connector object to a Terraform-shaped dict: the steps of upstream
``KRMResourceToTFResourceConfigFull`` (``pkg/krmtotf/krmtotf.go`` of
https://github.com/GoogleCloudPlatform/k8s-config-connector), in its order: spec copied,
resource ID and labels mapped, locationality applied, references resolved, camelCase turned
into snake_case, directives and containers added, output-only fields dropped.

References are resolved by the :class:`~konfig.export.terraform.Converter`, which knows
every exported object; the same steps serve its two renderings (configuration and plan-time
values).
"""

from __future__ import annotations

import copy
from typing import TYPE_CHECKING, Any

from konfig.compile.state import KubeObject
from konfig.export import fixups
from konfig.export.hcl import HclMap
from konfig.export.krm import (
    CNRM_ANNOTATION_PREFIX,
    annotations,
    key_of,
    labels,
    spec_without_konfig_labels,
    without_konfig_labels,
)
from konfig.export.names import camel_to_snake, kebab, snake_to_camel, terraform_name
from konfig.export.servicemappings import ReferenceConfig, ResourceConfig

if TYPE_CHECKING:
    from konfig.export.terraform import Converter

#: Label Config Connector adds to every resource it manages (upstream pkg/label).
MANAGED_BY_CNRM = "managed-by-cnrm"

#: KRM paths (camelCase, ``[]`` for list items) whose CRD schema is a free-form map
#: (``additionalProperties``) rather than a nested object: these become ``x = { ... }``
#: attributes, not blocks. Derived from the Config Connector v1.155.0 CRDs of these kinds.
MAP_FIELDS: dict[str, tuple[str, ...]] = {
    "BillingBudgetsBudget": ("budgetFilter.labels",),
    "DataflowFlexTemplateJob": ("parameters", "transformNameMapping"),
    "MonitoringAlertPolicy": ("userLabels",),
    "MonitoringNotificationChannel": ("labels",),
    "MonitoringUptimeCheckConfig": ("monitoredResource.filterLabels", "httpCheck.headers"),
    "ContainerCluster": (
        "nodeConfig.labels",
        "nodeConfig.linuxNodeConfig.sysctls",
        "nodeConfig.metadata",
        "nodeConfig.resourceLabels",
        "nodeConfig.resourceManagerTags",
        "nodePoolAutoConfig.resourceManagerTags",
    ),
    "IAMWorkloadIdentityPoolProvider": ("attributeMapping",),
    # Free-form constraint parameters (camelCase, as the API wants them): kept verbatim.
    "OrgPolicyPolicy": ("spec.rules[].parameters", "dryRunSpec.rules[].parameters"),
    "PubSubSubscription": ("pushConfig.attributes",),
    "RedisInstance": ("redisConfigs",),
    "RunService": (
        "annotations",
        "template.annotations",
        "template.containers[].resources.limits",
        "template.labels",
    ),
    "SecretManagerSecret": ("annotations", "labels", "versionAliases"),
}
#: KRM fields holding secrets as ``{value: ...}`` or ``{valueFrom: {secretKeyRef: ...}}``.
SENSITIVE_FIELDS = ("rootPassword", "password", "secretData", "privateKey", "sharedSecret")


class ObjectConversion:
    """The steps of upstream ``KRMResourceToTFResourceConfigFull`` for one object."""

    def __init__(self, converter: "Converter", obj: KubeObject, rc: ResourceConfig, known: bool) -> None:
        self.c = converter
        self.obj = obj
        self.rc = rc
        self.known = known
        self.key = key_of(obj)
        self.problems: list[str] = []

    def tf_dict(self) -> dict[str, Any]:
        config = copy.deepcopy(self.obj.get("spec") or {})
        if not self.c.options.keep_konfig_labels:
            config = spec_without_konfig_labels(config)
        self._default_hierarchical_reference(config)
        resource_id = config.pop("resourceID", None)
        self._set_resource_id(config, resource_id)
        self._set_labels(config)
        self._apply_locationality(config)
        for ref in self.rc.references:
            self._resolve(config, ref)
        self._sensitive(config, "")
        self._mark_maps(config)
        tf = _to_snake(config)
        self._directives(tf)
        self._containers(tf)
        for path in fixups.DROPPED_FIELDS.get(self.rc.name, ()) + self.rc.ignored_output_only_spec_fields:
            _delete_path(tf, path.split("."))
        if not self.known:
            self._check_leftover_references(tf, "")
        return tf

    # spec.resourceID / metadata.name -> the Terraform ID field
    def _set_resource_id(self, config: dict[str, Any], resource_id: Any) -> None:
        rc, name = self.rc, self.key.name
        if rc.resource_id_target_field and not rc.resource_id_is_server_generated:
            _set_path(config, snake_to_camel(rc.resource_id_target_field), resource_id or name)
        elif rc.metadata_name and name:
            _set_path(config, snake_to_camel(rc.metadata_name), name)

    def _set_labels(self, config: dict[str, Any]) -> None:
        if not self.rc.metadata_labels:
            return
        values = labels(self.obj)
        if not self.c.options.keep_konfig_labels:
            values = without_konfig_labels(values)
        # GCP labels cannot hold KRM-style keys with a prefix (upstream pkg/label).
        values = {k: v for k, v in values.items() if "/" not in k}
        if self.c.options.managed_by_cnrm_label:
            values[MANAGED_BY_CNRM] = "true"
        if values:
            _set_path(config, snake_to_camel(self.rc.metadata_labels), HclMap.of(values))

    def _apply_locationality(self, config: dict[str, Any]) -> None:
        locality = self.rc.locationality
        if not locality or "location" not in config:
            return
        location = config.pop("location")
        if locality == "regional":
            config["region"] = location
        elif locality == "zonal":
            config["zone"] = location

    def _default_hierarchical_reference(self, config: dict[str, Any]) -> None:
        """Config Connector fills a missing parent reference (``projectRef``, ``folderRef``,
        ...) from the container annotations of the object or its namespace."""
        hierarchy = self.rc.hierarchical_references
        if not hierarchy or any(key in config for _, key in hierarchy):
            return
        for container_type, key in hierarchy:
            value, source = self.c.inventory.container_value(self.obj, container_type)
            if value:
                config[key] = {"external": value}
                if source == "namespace name" and not self.known:
                    self.c.warn(f"{self.key}: no project annotation; used the namespace name {value!r}")
                return

    def _containers(self, tf: dict[str, Any]) -> None:
        if self.rc.hierarchical_references:
            return
        for container in self.rc.containers:
            value, source = self.c.inventory.container_value(self.obj, container.type)
            if not value:
                continue
            if container.value_template:
                value = container.value_template.replace("{{value}}", value)
            _set_path(tf, container.tf_field, value)
            if source == "namespace name" and not self.known:
                self.c.warn(f"{self.key}: no project annotation; used the namespace name {value!r}")

    def _directives(self, tf: dict[str, Any]) -> None:
        notes = annotations(self.obj)
        for directive in self.rc.directives:
            value = notes.get(CNRM_ANNOTATION_PREFIX + kebab(directive))
            if value in (None, ""):
                continue
            # Directives are booleans in the provider schema (force_destroy, ...).
            parsed: Any = {"true": True, "false": False}.get(value.lower(), value)
            _set_path(tf, directive, parsed)

    # references -----------------------------------------------------------------------

    def _resolve(self, config: Any, ref: ReferenceConfig) -> None:
        path = snake_to_camel(ref.tf_field).split(".")
        self._resolve_at(config, path, ref, "spec")

    def _resolve_at(self, node: Any, path: list[str], ref: ReferenceConfig, where: str) -> None:
        if isinstance(node, list):
            for i, item in enumerate(node):
                self._resolve_at(item, path, ref, f"{where}[{i}]")
            return
        if not isinstance(node, dict):
            return
        head = path[0]
        if len(path) > 1:
            if head in node:
                self._resolve_at(node[head], path[1:], ref, f"{where}.{head}")
            return
        key = ref.key
        raw = node.get(key)
        if raw is None:
            return
        here = f"{where}.{key}"
        if isinstance(raw, list):
            value: Any = [self._resolve_object(item, ref, f"{here}[{i}]") for i, item in enumerate(raw)]
        else:
            value = self._resolve_object(raw, ref, here)
        if key != head:
            del node[key]
        if value is None or (isinstance(value, list) and None in value):
            node.pop(head, None)
        else:
            node[head] = value

    def _resolve_object(self, raw: Any, ref: ReferenceConfig, where: str) -> Any:
        target = ref.target
        if ref.types:
            if not isinstance(raw, dict):
                self.problems.append(f"{self.key}: {where}: expected an object")
                return None
            for candidate in ref.types:
                if candidate.key in raw:
                    if candidate.json_schema_type:  # a plain value, not a reference
                        return raw[candidate.key]
                    target, raw = candidate, raw[candidate.key]
                    break
            else:
                return None
        before = len(self.c.result.problems)
        value = self.c.resolve_reference(raw, target, self.obj, self.known, where)
        if self.known:
            del self.c.result.problems[before:]  # reported once, by the configuration pass
        return value

    def _check_leftover_references(self, tf: Any, where: str) -> None:
        """A ``*_ref`` left after mapping means a reference the mapping does not know:
        writing it would give invalid Terraform, so it is a problem."""
        if isinstance(tf, list):
            for i, item in enumerate(tf):
                self._check_leftover_references(item, f"{where}[{i}]")
        elif isinstance(tf, dict):
            for k, v in tf.items():
                path = f"{where}.{k}" if where else k
                if k.endswith(("_ref", "_refs")) and _looks_like_reference(v):
                    self.problems.append(
                        f"{self.key}: spec.{snake_to_camel(path)}: reference not described by the "
                        f"mapping of {self.rc.kind}; cannot convert it"
                    )
                else:
                    self._check_leftover_references(v, path)

    # secrets and maps -------------------------------------------------------------------

    def _sensitive(self, node: Any, where: str) -> None:
        if isinstance(node, list):
            for i, item in enumerate(node):
                self._sensitive(item, f"{where}[{i}]")
            return
        if not isinstance(node, dict):
            return
        for k, v in list(node.items()):
            path = f"{where}.{k}" if where else k
            if isinstance(v, dict) and _is_secret_value(k, v):
                node[k] = self._secret(path, v)
            else:
                self._sensitive(v, path)

    def _secret(self, path: str, value: dict[str, Any]) -> Any:
        if "value" in value:
            if not self.known:
                self.c.warn(f"{self.key}: spec.{path} is written in clear text; move it to a variable")
            return value["value"]
        secret = (value.get("valueFrom") or {}).get("secretKeyRef") or {}
        plan = self.c.plans.get(self.key)
        base = plan.tf_name if plan and plan.tf_name else terraform_name(self.key.namespace, self.key.name)
        return self.c.variable(
            f"{base}_{camel_to_snake(path.replace('.', '_').replace('[', '_').replace(']', ''))}",
            f"Value of Kubernetes Secret {self.key.namespace}/{secret.get('name', '?')} key "
            f"{secret.get('key', '?')!r} (spec.{path} of {self.key})",
            sensitive=True,
        )

    def _mark_maps(self, config: dict[str, Any]) -> None:
        for path in MAP_FIELDS.get(self.rc.kind, ()):
            _map_at(config, path.split("."))


def _looks_like_reference(value: Any) -> bool:
    items = value if isinstance(value, list) else [value]
    return bool(items) and all(
        isinstance(v, dict) and ("name" in v or "external" in v)
        and set(v) <= {"name", "namespace", "external", "kind", "apiVersion"}
        for v in items
    )


def _is_secret_value(field_name: str, value: dict[str, Any]) -> bool:
    if not set(value) or not set(value) <= {"value", "valueFrom"}:
        return False
    if isinstance(value.get("valueFrom"), dict) and "secretKeyRef" in value["valueFrom"]:
        return True
    return field_name in SENSITIVE_FIELDS and isinstance(value.get("value"), str)


def _map_at(node: Any, path: list[str]) -> None:
    head, rest = path[0], path[1:]
    items = head.endswith("[]")
    head = head.removesuffix("[]")
    if not isinstance(node, dict) or head not in node:
        return
    if not rest:
        if isinstance(node[head], dict):
            node[head] = HclMap.of(node[head])
        return
    children = node[head] if items and isinstance(node[head], list) else [node[head]]
    for child in children:
        _map_at(child, rest)


# --- plain-data helpers --------------------------------------------------------------------


def nested(node: Any, path: list[str]) -> Any:
    """``node[path[0]][path[1]]...``, or ``None`` where the path does not exist."""
    for part in path:
        if not isinstance(node, dict):
            return None
        node = node.get(part)
    return node


def _set_path(node: dict[str, Any], path: str, value: Any) -> None:
    parts = path.split(".")
    for part in parts[:-1]:
        child = node.get(part)
        if not isinstance(child, dict):
            child = {}
            node[part] = child
        node = child
    node[parts[-1]] = value


def _delete_path(node: Any, path: list[str]) -> None:
    if isinstance(node, list):
        for item in node:
            _delete_path(item, path)
        return
    if not isinstance(node, dict):
        return
    if len(path) == 1:
        node.pop(path[0], None)
    elif path[0] in node:
        _delete_path(node[path[0]], path[1:])


def _to_snake(value: Any) -> Any:
    if isinstance(value, dict):
        return {camel_to_snake(k): _to_snake(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_to_snake(v) for v in value]
    return value
