"""Where the public google provider differs from what the service mappings describe.

Config Connector runs a fork of the google provider with a few KCC-only resources that stand
for several public ones ("multiplexed": ``google_iam_custom_role``, ``google_logging_log_sink``,
``google_org_policy``) and KCC-only fields (``google_folder.parent_folder_id``). Its import IDs
for those are KCC-internal (``my-project##role``). The tables here turn them into the public
resources, with the import IDs documented on each resource's page of
https://registry.terraform.io/providers/hashicorp/google/latest/docs (section "Import").

Every function works on a Terraform-shaped dict (snake_case keys) whose values are literals,
:class:`~konfig.export.hcl.Expr` or :class:`~konfig.export.hcl.Template`, so the same fix-up
serves the configuration and the plan-time ("known") values used for import IDs.
"""

from __future__ import annotations

import json
from typing import Any, Callable

from konfig.export.hcl import HclMap, Template, concat
from konfig.export.templates import StrValue

TfDict = dict[str, Any]

#: Fields a Config Connector spec may hold that the provider computes or that conflict with
#: another field; upstream ``removeConflictingFields`` (pkg/cli/krmtohcl/krmtohcl.go) drops
#: ``bucket_policy_only`` (deprecated twin of ``uniform_bucket_level_access``) and
#: ``logging_service``/``monitoring_service`` (GKE < 1.15 only); the ``master_auth`` and
#: ``private_cluster_config`` ones are output-only in the provider schema.
DROPPED_FIELDS: dict[str, tuple[str, ...]] = {
    "google_storage_bucket": ("bucket_policy_only",),
    "google_container_cluster": (
        "logging_service",
        "monitoring_service",
        "master_auth.cluster_ca_certificate",
        "master_auth.client_certificate",
        "master_auth.client_key",
        "private_cluster_config.private_endpoint",
        "private_cluster_config.public_endpoint",
    ),
    # The provider manages one pool per resource and has no location argument (always global).
    "google_iam_workload_identity_pool": ("location",),
    "google_iam_workload_identity_pool_provider": ("location",),
}

#: List fields that are sets in the provider schema: order does not matter to Terraform, and
#: the upstream converter writes them sorted (``setListFromPrefix`` in pkg/tf/serialization).
SET_FIELDS: dict[str, tuple[str, ...]] = {
    "google_container_cluster": ("node_config.oauth_scopes",),
    "google_project_iam_custom_role": ("permissions",),
    "google_organization_iam_custom_role": ("permissions",),
}

#: Attributes the provider computes, as templates over other attributes, so that import IDs
#: and IAM members can be written before anything exists. Sources: the "Attributes Reference"
#: of google_service_account, google_sql_database_instance, google_storage_bucket,
#: google_pubsub_topic, google_secret_manager_secret (whose ``name`` holds the project
#: number; the API accepts the project ID in its place), google_compute_network.
COMPUTED_ATTRIBUTES: dict[tuple[str, str], str] = {
    ("google_service_account", "email"): "{{account_id}}@{{project}}.iam.gserviceaccount.com",
    ("google_service_account", "name"): "projects/{{project}}/serviceAccounts/{{email}}",
    ("google_service_account", "member"): "serviceAccount:{{email}}",
    ("google_sql_database_instance", "connection_name"): "{{project}}:{{region}}:{{name}}",
    ("google_storage_bucket", "url"): "gs://{{name}}",
    ("google_storage_bucket", "self_link"): "https://www.googleapis.com/storage/v1/b/{{name}}",
    ("google_pubsub_topic", "id"): "projects/{{project}}/topics/{{name}}",
    ("google_secret_manager_secret", "name"): "projects/{{project}}/secrets/{{secret_id}}",
    ("google_kms_key_ring", "self_link"): "projects/{{project}}/locations/{{location}}/keyRings/{{name}}",
    ("google_kms_key_ring", "id"): "projects/{{project}}/locations/{{location}}/keyRings/{{name}}",
    ("google_compute_network", "self_link"): (
        "https://www.googleapis.com/compute/v1/projects/{{project}}/global/networks/{{name}}"
    ),
}

#: Parent prefixes stripped from external references to hierarchy kinds: Terraform's
#: ``project``/``folder_id``/``org_id`` arguments take bare IDs, Config Connector accepts both.
HIERARCHY_PREFIXES = {"Project": "projects/", "Folder": "folders/", "Organization": "organizations/",
                      "BillingAccount": "billingAccounts/"}


def strip_prefix(value: StrValue | None, prefix: str) -> StrValue | None:
    if isinstance(value, str) and value.startswith(prefix):
        return value[len(prefix) :]
    return value


def with_prefix(value: Any, prefix: str) -> Any:
    """``value`` with ``prefix`` in front unless it already has it; expressions (which always
    yield bare IDs here) are wrapped in a template."""
    if value is None:
        return None
    if isinstance(value, str):
        return value if value.startswith(prefix) else prefix + value
    if isinstance(value, Template) and value.parts and isinstance(value.parts[0], str):
        if value.parts[0].startswith(prefix):
            return value
    return concat(prefix, value)


def _join(*parts: Any) -> StrValue | None:
    """Concatenate, or ``None`` when any part is unknown."""
    if any(p is None for p in parts):
        return None
    return concat(*parts)


def _parent_field(body: TfDict, fields: tuple[str, ...]) -> str | None:
    return next((f for f in fields if body.get(f) not in (None, "")), None)


# --- multiplexed KCC resources ---------------------------------------------------------

_PARENTS = ("project", "folder", "org_id")

#: Resources whose parent is one of several references, none of them defaulted from an
#: annotation: without one there is nothing to attach them to.
REQUIRED_PARENTS: dict[str, tuple[str, ...]] = {
    "google_org_policy": _PARENTS,
    "google_logging_log_sink": _PARENTS,
    "google_org_policy_policy": _PARENTS,
    "google_iam_custom_role": ("project", "org_id"),
    "google_org_policy_custom_constraint": ("org_id",),
}
#: How the user gives that parent, for messages.
PARENT_HINTS: dict[str, str] = {
    "google_org_policy": "spec.projectRef, spec.folderRef or spec.organizationRef",
    "google_logging_log_sink": "spec.projectRef, spec.folderRef or spec.organizationRef",
    "google_org_policy_policy": "spec.projectRef, spec.folderRef or spec.organizationRef",
    "google_iam_custom_role": "annotation cnrm.cloud.google.com/project-id or organization-id",
    "google_org_policy_custom_constraint": "spec.organizationRef",
}


def _only(body: TfDict, keep: str, fields: tuple[str, ...]) -> TfDict:
    return {k: v for k, v in body.items() if k == keep or k not in fields}


def _custom_role(body: TfDict) -> tuple[str, TfDict]:
    parent = _parent_field(body, ("project", "org_id"))
    if parent == "org_id":
        return "google_organization_iam_custom_role", _only(body, "org_id", ("project", "org_id"))
    return "google_project_iam_custom_role", _only(body, "project", ("project", "org_id"))


def _log_sink(body: TfDict) -> tuple[str, TfDict]:
    parent = _parent_field(body, _PARENTS) or "project"
    tf_type = {
        "project": "google_logging_project_sink",
        "folder": "google_logging_folder_sink",
        "org_id": "google_logging_organization_sink",
    }[parent]
    return tf_type, _only(body, parent, _PARENTS)


def _org_policy(body: TfDict) -> tuple[str, TfDict]:
    parent = _parent_field(body, _PARENTS) or "project"
    out = _only(body, parent, _PARENTS)
    if parent == "folder":
        out["folder"] = with_prefix(out["folder"], "folders/")
    tf_type = {
        "project": "google_project_organization_policy",
        "folder": "google_folder_organization_policy",
        "org_id": "google_organization_policy",
    }[parent]
    return tf_type, out


def _folder(body: TfDict) -> tuple[str, TfDict]:
    out = {k: v for k, v in body.items() if k not in ("parent_folder_id", "parent_org_id")}
    if body.get("parent_folder_id") not in (None, ""):
        out["parent"] = with_prefix(body["parent_folder_id"], "folders/")
    elif body.get("parent_org_id") not in (None, ""):
        out["parent"] = with_prefix(body["parent_org_id"], "organizations/")
    return "google_folder", out


def _org_policy_policy(body: TfDict) -> tuple[str, TfDict]:
    parent_field = _parent_field(body, _PARENTS) or "project"
    prefix = {"project": "projects/", "folder": "folders/", "org_id": "organizations/"}[parent_field]
    out = {k: v for k, v in body.items() if k not in _PARENTS}
    parent = with_prefix(body.get(parent_field), prefix)
    out["parent"] = parent
    out["name"] = _join(parent, "/policies/", body.get("name"))
    for spec_field in ("spec", "dry_run_spec"):
        if isinstance(out.get(spec_field), dict):
            out[spec_field] = _policy_spec(out[spec_field])
    return "google_org_policy_policy", out


def _policy_spec(spec: TfDict) -> TfDict:
    """The provider types ``allow_all``/``deny_all``/``enforce`` as the strings ``"TRUE"`` /
    ``"FALSE"`` and ``parameters`` as a JSON string (org_policy_policy docs, "rules")."""
    out = dict(spec)
    rules = []
    for rule in spec.get("rules") or []:
        rule = dict(rule)
        for flag in ("allow_all", "deny_all", "enforce"):
            if isinstance(rule.get(flag), bool):
                rule[flag] = "TRUE" if rule[flag] else "FALSE"
        parameters = rule.get("parameters")
        if isinstance(parameters, HclMap):
            parameters = dict(parameters.items)
        if isinstance(parameters, dict):
            rule["parameters"] = json.dumps(parameters, sort_keys=True)
        rules.append(rule)
    if rules:
        out["rules"] = rules
    return out


def _custom_constraint(body: TfDict) -> tuple[str, TfDict]:
    out = {k: v for k, v in body.items() if k != "org_id"}
    out["parent"] = with_prefix(body.get("org_id"), "organizations/")
    return "google_org_policy_custom_constraint", out


def _firestore_database(body: TfDict) -> tuple[str, TfDict]:
    # Config Connector's FirestoreDatabase always makes a Native-mode database; the provider
    # requires ``type``.
    return "google_firestore_database", {"type": "FIRESTORE_NATIVE", **body}


def _pool_provider(body: TfDict) -> tuple[str, TfDict]:
    out = dict(body)
    pool = out.get("workload_identity_pool_id")
    if isinstance(pool, str) and "/" in pool:  # external given as the pool's full name
        out["workload_identity_pool_id"] = pool.rsplit("/", 1)[-1]
    return "google_iam_workload_identity_pool_provider", out


def _secret(body: TfDict) -> tuple[str, TfDict]:
    """KRM keeps the legacy ``replication.automatic: true``; provider 5 replaced it with an
    empty ``replication { auto {} }`` block (google provider 5.0 upgrade guide)."""
    out = dict(body)
    replication = out.get("replication")
    if isinstance(replication, dict) and "automatic" in replication:
        replication = {k: v for k, v in replication.items() if k != "automatic"}
        if body["replication"]["automatic"] is True and "auto" not in replication:
            replication["auto"] = {}
        out["replication"] = replication
    return "google_secret_manager_secret", out


def _uptime_check(body: TfDict) -> tuple[str, TfDict]:
    """KRM names the monitored resource's labels ``filterLabels``; the provider, ``labels``
    (google_monitoring_uptime_check_config, ``monitored_resource``)."""
    out = dict(body)
    resource = out.get("monitored_resource")
    if isinstance(resource, dict) and "filter_labels" in resource:
        resource = {("labels" if k == "filter_labels" else k): v for k, v in resource.items()}
        out["monitored_resource"] = resource
    return "google_monitoring_uptime_check_config", out


def _billing_budget(body: TfDict) -> tuple[str, TfDict]:
    """KRM's ``budgetFilter.labels`` maps a key to ``{values: [v]}`` (the API's ListValue);
    the provider's ``budget_filter.labels`` is a plain map of one value per key."""
    from konfig.export.hcl import HclMap

    out = dict(body)
    scope = out.get("budget_filter")
    labels = scope.get("labels") if isinstance(scope, dict) else None
    if labels is not None:
        items = labels.items if isinstance(labels, HclMap) else tuple(sorted(labels.items()))
        flat = {k: (v.get("values") or [""])[0] if isinstance(v, dict) else v for k, v in items}
        out["budget_filter"] = {**scope, "labels": HclMap.of(flat)}
    return "google_billing_budget", out


#: Fix-ups by mapped Terraform type: return the public Terraform type and the adjusted body.
ADJUSTMENTS: dict[str, Callable[[TfDict], tuple[str, TfDict]]] = {
    "google_iam_custom_role": _custom_role,
    "google_logging_log_sink": _log_sink,
    "google_org_policy": _org_policy,
    "google_folder": _folder,
    "google_org_policy_policy": _org_policy_policy,
    "google_org_policy_custom_constraint": _custom_constraint,
    "google_firestore_database": _firestore_database,
    "google_iam_workload_identity_pool_provider": _pool_provider,
    "google_secret_manager_secret": _secret,
    "google_monitoring_uptime_check_config": _uptime_check,
    "google_billing_budget": _billing_budget,
}


def adjust(mapped_type: str, body: TfDict) -> tuple[str, TfDict]:
    """The public Terraform type for a mapped one and the body that goes with it."""
    fix = ADJUSTMENTS.get(mapped_type)
    return fix(body) if fix else (mapped_type, body)


# --- import IDs --------------------------------------------------------------------------

Get = Callable[[str], StrValue | None]


def _constraint(get: Get) -> StrValue | None:
    return with_prefix(get("constraint"), "constraints/")


def _sql_user(get: Get) -> StrValue | None:
    host = get("host")
    if host:
        return _join(get("project"), "/", get("instance"), "/", host, "/", get("name"))
    return _join(get("project"), "/", get("instance"), "/", get("name"))


#: Resources the provider cannot import but whose creation is idempotent (creating one that
#: exists returns it), so a missing import block loses nothing: no warning.
#: ``google_project_service_identity`` calls services.generateServiceIdentity, which "returns the
#: service identity if it already exists"
#: (https://cloud.google.com/service-usage/docs/reference/rest/v1beta1/services/generateServiceIdentity).
IDEMPOTENT_CREATES = frozenset({"google_project_service_identity"})

#: Import IDs of the public resources whose format differs from the mapping's ``idTemplate``.
IMPORT_IDS: dict[str, Callable[[Get], StrValue | None]] = {
    "google_folder": lambda g: _join("folders/", g("folder_id")),
    "google_project_iam_custom_role": lambda g: _join("projects/", g("project"), "/roles/", g("role_id")),
    "google_organization_iam_custom_role": lambda g: _join(
        "organizations/", g("org_id"), "/roles/", g("role_id")
    ),
    "google_logging_project_sink": lambda g: _join("projects/", g("project"), "/sinks/", g("name")),
    "google_logging_folder_sink": lambda g: _join(
        with_prefix(g("folder"), "folders/"), "/sinks/", g("name")
    ),
    "google_logging_organization_sink": lambda g: _join(
        "organizations/", g("org_id"), "/sinks/", g("name")
    ),
    "google_project_organization_policy": lambda g: _join(g("project"), ":", _constraint(g)),
    "google_folder_organization_policy": lambda g: _join(g("folder"), "/", _constraint(g)),
    "google_organization_policy": lambda g: _join(g("org_id"), "/", _constraint(g)),
    "google_org_policy_policy": lambda g: g("name"),
    "google_org_policy_custom_constraint": lambda g: _join(
        g("parent"), "/customConstraints/", g("name")
    ),
    "google_sql_user": _sql_user,
}
