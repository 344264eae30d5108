"""IAM in the Terraform export: ``IAMPolicyMember`` and ``IAMPartialPolicy`` as ``*_iam_member``.

The Terraform type comes from the ``iamConfig.policyMemberName`` of the referenced kind's
service mapping (``google_pubsub_topic_iam_member`` for a PubSubTopic). Which arguments name
the resource, and the import ID (``"<resource> <role> <member>"``, with the condition title
appended for a conditional binding), are per type in :data:`IAM_TARGETS`; sources: the
"Import" sections of the google provider's IAM pages, e.g.
https://registry.terraform.io/providers/hashicorp/google/latest/docs/resources/google_project_iam#import
and https://registry.terraform.io/providers/hashicorp/google/latest/docs/resources/pubsub_topic_iam#import
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from konfig.compile.state import DELETION_POLICY, KubeObject
from konfig.export.hcl import Expr, concat
from konfig.export.krm import ObjectKey, annotations, key_of
from konfig.export.names import terraform_name
from konfig.export.servicemappings import TypeConfig
from konfig.export.templates import StrValue, expand, template_fields

if TYPE_CHECKING:
    from konfig.export.terraform import Converter

#: Kinds handled here rather than by a service mapping.
IAM_KINDS = ("IAMPolicyMember", "IAMPartialPolicy", "IAMPolicy", "IAMAuditConfig")


@dataclass(frozen=True)
class IamTarget:
    """How one ``*_iam_member`` type names its resource. ``arguments`` and ``resource_id``
    are templates over the target's Terraform attributes; ``externals`` are patterns (named
    groups = attributes) for references given as ``external``."""

    arguments: tuple[tuple[str, str], ...]
    resource_id: str
    externals: tuple[str, ...]


def _scoped(collection: str, argument: str, attr: str = "name") -> IamTarget:
    return IamTarget(
        (("project", "{{project}}"), (argument, "{{%s}}" % attr)),
        "projects/{{project}}/%s/{{%s}}" % (collection, attr),
        (rf"^projects/(?P<project>[^/]+)/{collection}/(?P<{attr}>[^/]+)$", rf"^(?P<{attr}>[^/]+)$"),
    )


def _located(collection: str, argument: str, attr: str) -> IamTarget:
    return IamTarget(
        (("project", "{{project}}"), ("location", "{{location}}"), (argument, "{{%s}}" % attr)),
        "projects/{{project}}/locations/{{location}}/%s/{{%s}}" % (collection, attr),
        (rf"^projects/(?P<project>[^/]+)/locations/(?P<location>[^/]+)/{collection}/(?P<{attr}>[^/]+)$",),
    )


IAM_TARGETS: dict[str, IamTarget] = {
    "google_project_iam_member": IamTarget(
        (("project", "{{project_id}}"),), "{{project_id}}", (r"^(?:projects/)?(?P<project_id>[^/]+)$",)
    ),
    "google_folder_iam_member": IamTarget(
        (("folder", "folders/{{folder_id}}"),),
        "folders/{{folder_id}}",
        (r"^(?:folders/)?(?P<folder_id>[^/]+)$",),
    ),
    "google_organization_iam_member": IamTarget(
        (("org_id", "{{org_id}}"),), "{{org_id}}", (r"^(?:organizations/)?(?P<org_id>[^/]+)$",)
    ),
    "google_billing_account_iam_member": IamTarget(
        (("billing_account_id", "{{billing_account_id}}"),),
        "{{billing_account_id}}",
        (r"^(?:billingAccounts/)?(?P<billing_account_id>[^/]+)$",),
    ),
    "google_service_account_iam_member": IamTarget(
        (("service_account_id", "projects/{{project}}/serviceAccounts/{{email}}"),),
        "projects/{{project}}/serviceAccounts/{{email}}",
        (
            r"^projects/(?P<project>[^/]+)/serviceAccounts/(?P<email>[^/]+)$",
            r"^(?P<email>[^/@]+@(?P<project>[^.]+)\.iam\.gserviceaccount\.com)$",
        ),
    ),
    "google_storage_bucket_iam_member": IamTarget(
        (("bucket", "{{name}}"),), "b/{{name}}", (r"^(?:b/)?(?P<name>[^/]+)$",)
    ),
    "google_pubsub_topic_iam_member": _scoped("topics", "topic"),
    "google_pubsub_subscription_iam_member": _scoped("subscriptions", "subscription"),
    "google_secret_manager_secret_iam_member": _scoped("secrets", "secret_id", "secret_id"),
    "google_bigquery_dataset_iam_member": _scoped("datasets", "dataset_id", "dataset_id"),
    "google_cloud_run_v2_service_iam_member": _located("services", "name", "name"),
    "google_artifact_registry_repository_iam_member": _located(
        "repositories", "repository", "repository_id"
    ),
    # Shared VPC grants on one subnet (roles/compute.networkUser). Source:
    # https://registry.terraform.io/providers/hashicorp/google/latest/docs/resources/compute_subnetwork_iam#import
    "google_compute_subnetwork_iam_member": IamTarget(
        (("project", "{{project}}"), ("region", "{{region}}"), ("subnetwork", "{{name}}")),
        "projects/{{project}}/regions/{{region}}/subnetworks/{{name}}",
        (r"^projects/(?P<project>[^/]+)/regions/(?P<region>[^/]+)/subnetworks/(?P<name>[^/]+)$",),
    ),
}

#: IAM-able parents that are not Config Connector resources (no service mapping).
EXTRA_MEMBER_TYPES = {
    "Organization": "google_organization_iam_member",
    "BillingAccount": "google_billing_account_iam_member",
}

#: ``memberFrom`` keys and the kind each names (IAMPolicyMember CRD, v1beta1).
MEMBER_FROM_KINDS = {
    "serviceAccountRef": ("IAMServiceAccount", "iam.cnrm.cloud.google.com"),
    "logSinkRef": ("LoggingLogSink", "logging.cnrm.cloud.google.com"),
    "sqlInstanceRef": ("SQLInstance", "sql.cnrm.cloud.google.com"),
    "serviceIdentityRef": ("ServiceIdentity", "serviceusage.cnrm.cloud.google.com"),
}


@dataclass
class _Binding:
    role: str
    member: dict[str, Any]  # {"member": ...} or {"memberFrom": {...}}
    condition: dict[str, Any] | None
    where: str
    suffix: str = ""


def convert_iam(converter: "Converter", obj: KubeObject) -> None:
    """Add the ``*_iam_member`` resources of one IAM object to ``converter.result`` (or a
    skip / problem entry). Objects of other kinds are ignored."""
    key = key_of(obj)
    spec = obj.get("spec") or {}
    if key.kind not in IAM_KINDS:
        return
    if key.kind in ("IAMPolicy", "IAMAuditConfig"):
        from konfig.export.terraform import Skipped

        converter.result.skipped.append(
            Skipped(
                key,
                f"{key.kind} replaces the whole IAM policy of its resource; the export writes "
                "bindings one member at a time only: express it as IAMPolicyMember or IAMPartialPolicy",
            )
        )
        return
    if key.kind == "IAMPolicyMember":
        bindings = [
            _Binding(
                spec.get("role", ""),
                {k: spec[k] for k in ("member", "memberFrom") if k in spec},
                spec.get("condition"),
                "spec",
            )
        ]
    else:
        bindings = [
            _Binding(binding.get("role", ""), member, binding.get("condition"), f"spec.bindings[{i}].members[{j}]", f"{i}_{j}")
            for i, binding in enumerate(spec.get("bindings") or [])
            for j, member in enumerate(binding.get("members") or [])
        ]
    target = _resolve_target(converter, obj, spec.get("resourceRef") or {})
    if target is None:
        return
    for binding in bindings:
        resource = _member_resource(converter, obj, key, target, binding)
        if resource is not None:
            converter.result.resources.append(resource)


@dataclass
class _Target:
    """The resource an IAM object binds on: its ``*_iam_member`` type, the arguments naming
    it (configuration values) and its IAM resource ID for import IDs (``None`` if unknown)."""

    member_type: str
    config: dict[str, Any]
    resource_id: StrValue | None
    supports_conditions: bool


def _resolve_target(converter: "Converter", obj: KubeObject, ref: dict[str, Any]) -> _Target | None:
    key = key_of(obj)
    kind = ref.get("kind", "")
    api_version = ref.get("apiVersion", "")
    group = api_version.rsplit("/", 1)[0] if "/" in api_version else ""
    reference_field, reference_type = "", ""
    if kind in EXTRA_MEMBER_TYPES:
        member_type, supports_conditions = EXTRA_MEMBER_TYPES[kind], True
    else:
        rc = converter.config_for_kind(kind, group)
        if rc is None or rc.iam is None:
            converter.result.problems.append(
                f"{key}: spec.resourceRef: no Terraform IAM member resource for kind {kind or '?'} "
                "(its service mapping has no iamConfig)"
            )
            return None
        member_type, supports_conditions = rc.iam.policy_member_name, rc.iam.supports_conditions
        reference_field = rc.iam.reference_field
        reference_type = "id" if rc.iam.reference_type == "id" else rc.resource_id_field or "name"
    spec = IAM_TARGETS.get(member_type)
    external = str(ref.get("external") or "")
    address = ""
    if external:
        attributes = _match_external(spec, external) if spec else {}
        if attributes is None:
            converter.result.problems.append(
                f"{key}: spec.resourceRef.external: {external!r} is not a {kind} name the export understands"
            )
            return None
        if spec and "project" in _fields(spec) and "project" not in attributes:
            attributes["project"] = converter.inventory.container_value(obj, "project")[0]
    else:
        namespace = ref.get("namespace") or key.namespace
        target_obj = converter.find(kind, namespace, ref.get("name", ""), group)
        target_key = key_of(target_obj) if target_obj is not None else None
        if target_key is None or target_key not in converter.plans:
            converter.result.problems.append(
                f"{key}: spec.resourceRef: {kind} {namespace}/{ref.get('name', '?')} is not exported; "
                "give the reference as `external`"
            )
            return None
        plan = converter.plans[target_key]
        address = f"{plan.tf_type}.{plan.tf_name}"
        attributes = {f: converter.known_attribute(target_key, f) for f in _fields(spec)} if spec else {}
    if spec is None:
        # A type without an entry in IAM_TARGETS: name the resource as the mapping says (its
        # ID or its name); its import ID format is unknown, so it gets no import block.
        value: Any = external or Expr(f"{address}.{reference_type}")
        return _Target(member_type, {reference_field: value}, None, supports_conditions)

    def config_value(field: str) -> Any:
        return Expr(f"{address}.{field}") if address else attributes.get(field)

    config = {arg: expand(template, config_value) for arg, template in spec.arguments}
    for arg, value in config.items():
        if value is None:
            converter.result.problems.append(f"{key}: spec.resourceRef: cannot tell the {arg} of the resource")
            return None
    resource_id = expand(spec.resource_id, attributes.get)
    return _Target(member_type, config, resource_id, supports_conditions)


def _fields(spec: IamTarget) -> list[str]:
    fields = template_fields(spec.resource_id)
    for _, template in spec.arguments:
        fields += template_fields(template)
    return sorted(set(fields))


def _match_external(spec: IamTarget, external: str) -> dict[str, StrValue | None] | None:
    for pattern in spec.externals:
        match = re.match(pattern, external)
        if match:
            return dict(match.groupdict())
    return None


def _member(converter: "Converter", obj: KubeObject, binding: _Binding) -> tuple[Any, StrValue | None] | None:
    """(configuration value, plan-time value) of the member, or ``None`` with a problem."""
    key = key_of(obj)
    if "member" in binding.member:
        value = str(binding.member["member"])
        return value, value
    member_from = binding.member.get("memberFrom") or {}
    if len(member_from) != 1:
        converter.result.problems.append(f"{key}: {binding.where}: needs exactly one of member or memberFrom")
        return None
    (ref_key, ref), = member_from.items()
    if ref_key not in MEMBER_FROM_KINDS:
        converter.result.problems.append(f"{key}: {binding.where}.memberFrom.{ref_key}: not supported by the export")
        return None
    kind, group = MEMBER_FROM_KINDS[ref_key]
    rc = converter.config_for_kind(kind, group)
    if rc is None or not rc.iam_member_target_field:
        converter.result.problems.append(f"{key}: {binding.where}.memberFrom.{ref_key}: no mapping for {kind}")
        return None
    target = TypeConfig(
        key=ref_key,
        kind=kind,
        group=group,
        target_field=rc.iam_member_target_field,
        value_template=rc.iam_member_value_template,
    )
    where = f"{binding.where}.memberFrom.{ref_key}"
    config = converter.resolve_reference(ref, target, obj, known=False, where=where)
    if config is None:
        return None
    known = converter.resolve_reference(ref, target, obj, known=True, where=where)
    return config, known


def _member_resource(converter: "Converter", obj: KubeObject, key: ObjectKey, target: _Target, binding: _Binding):
    from konfig.export.terraform import TfResource, to_body

    if not binding.role:
        converter.result.problems.append(f"{key}: {binding.where}: role is required")
        return None
    member = _member(converter, obj, binding)
    if member is None:
        return None
    member_config, member_known = member
    body: dict[str, Any] = dict(target.config)
    body["role"] = binding.role
    body["member"] = member_config
    title: str | None = None
    if binding.condition:
        if not target.supports_conditions:
            converter.result.problems.append(
                f"{key}: {binding.where}: {target.member_type} does not support IAM conditions"
            )
            return None
        body["condition"] = {k: binding.condition[k] for k in ("title", "description", "expression") if k in binding.condition}
        title = binding.condition.get("title")
    parts: list[Any] = [target.resource_id, " ", binding.role, " ", member_known]
    if title:
        parts += [" ", title]
    import_id = None if any(p is None for p in parts) else concat(*parts)
    name = converter.unique_name(
        target.member_type, terraform_name(key.namespace, key.name + (f"_{binding.suffix}" if binding.suffix else ""))
    )
    # A service agent's e-mail is known only once Google creates it; adding an existing member
    # is a no-op for *_iam_member, so that case needs no import block and no warning.
    agent = "serviceIdentityRef" in (binding.member.get("memberFrom") or {})
    if import_id is None and not (agent and member_known is None):
        converter.warn(f"{key}: import ID of {target.member_type} not known before it exists; no import block written")
    prevent = annotations(obj).get(DELETION_POLICY) == "abandon"
    return TfResource(key, target.member_type, name, to_body(body), import_id, None, prevent)


__all__ = ["IAM_KINDS", "IAM_TARGETS", "convert_iam"]
