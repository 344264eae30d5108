"""Builders for the Kubernetes objects the compiler emits, and the labels they carry."""

from __future__ import annotations

import re
from typing import Any

from konfig.compile.state import (
    DELETION_POLICY,
    LABEL_CONTROL_PLANE,
    LABEL_DOMAIN,
    LABEL_ENVIRONMENT,
    LABEL_PLATFORM,
    LABEL_WORKLOAD,
    KubeObject,
)
from konfig.model import names

#: Config Connector kinds whose cloud resource holds data or identity that must survive the
#: removal of a definition: Konfig abandons them (spec/definitions.md, "Invariants").
ABANDONED_KINDS = frozenset(
    {
        "Folder",
        "Project",
        "Service",  # deleting it would disable the API for everything in the project
        "ArtifactRegistryRepository",
        "SQLInstance",
        "SQLDatabase",
        "StorageBucket",
        "PubSubTopic",
        "PubSubSubscription",
        "RedisInstance",
        "SecretManagerSecret",
        "FirestoreDatabase",
        "BigQueryDataset",
        "KMSKeyRing",
        "KMSCryptoKey",
        "IAMWorkloadIdentityPool",
        "IAMWorkloadIdentityPoolProvider",
        # The shared network: deleting any of these would cut every workload of an
        # environment off (or fail while projects still use it), so they outlive definitions.
        "ComputeNetwork",
        "ComputeSubnetwork",
        "ComputeAddress",  # reserved IPs: the external one is what DNS points at
        "ComputeSharedVPCHostProject",
        "ComputeSharedVPCServiceProject",
        "ServiceNetworkingConnection",  # private IPs of Cloud SQL and Memorystore use it
        "DNSManagedZone",
        "CertificateManagerCertificate",
    }
)


def konfig_labels(
    control_plane: str,
    platform: str | None = None,
    domain: str | None = None,
    environment: str | None = None,
    workload: str | None = None,
) -> dict[str, str]:
    """The ``konfig-*`` labels of an object, those that apply (spec "Invariants")."""
    labels = {LABEL_CONTROL_PLANE: control_plane}
    for key, value in (
        (LABEL_PLATFORM, platform),
        (LABEL_DOMAIN, domain),
        (LABEL_ENVIRONMENT, environment),
        (LABEL_WORKLOAD, workload),
    ):
        if value:
            labels[key] = value
    return labels


def kube_object(
    api_version: str,
    kind: str,
    name: str,
    *,
    labels: dict[str, str],
    namespace: str | None = None,
    annotations: dict[str, str] | None = None,
    spec: dict[str, Any] | None = None,
    **fields: Any,
) -> KubeObject:
    """A Kubernetes object dict. Objects of :data:`ABANDONED_KINDS` get the abandon
    deletion policy."""
    metadata: dict[str, Any] = {"name": name}
    if namespace:
        metadata["namespace"] = namespace
    annotations = dict(annotations or {})
    if kind in ABANDONED_KINDS and api_version.endswith(".cnrm.cloud.google.com/v1beta1"):
        annotations.setdefault(DELETION_POLICY, "abandon")
    if annotations:
        metadata["annotations"] = dict(sorted(annotations.items()))
    metadata["labels"] = dict(sorted(labels.items()))
    obj: KubeObject = {"apiVersion": api_version, "kind": kind, "metadata": metadata}
    if spec is not None:
        obj["spec"] = spec
    obj.update(fields)
    return obj


_NON_NAME = re.compile(r"[^a-z0-9-]+")


def object_name(*parts: str, limit: int = 63) -> str:
    """A readable, valid and unique Kubernetes object name built from ``parts``.

    Lowercased, invalid characters replaced by ``-``; when longer than ``limit`` (63 keeps
    names usable as label values too) it is cut and suffixed with a hash of the full text."""
    text = _NON_NAME.sub("-", "-".join(parts).lower()).strip("-")
    text = re.sub(r"-{2,}", "-", text)
    if len(text) <= limit:
        return text
    digest = names.short_hash(text, 8)
    return f"{text[: limit - 9].rstrip('-')}-{digest}"


def role_slug(role: str) -> str:
    """``roles/cloudsql.instanceUser`` → ``cloudsql-instanceuser`` (for object names)."""
    return role.removeprefix("roles/").replace(".", "-").lower()


def policy_member(
    name: str,
    *,
    namespace: str,
    labels: dict[str, str],
    resource_ref: dict[str, str],
    role: str,
    member: str | None = None,
    service_account_ref: dict[str, str] | None = None,
    service_identity_ref: dict[str, str] | None = None,
    condition: dict[str, str] | None = None,
    annotations: dict[str, str] | None = None,
) -> KubeObject:
    """An ``IAMPolicyMember``: one member, one role, on one resource. Exactly one of ``member``
    (``group:...``, ``serviceAccount:...``, ``principalSet://...``), ``service_account_ref``
    (a Config Connector IAMServiceAccount) or ``service_identity_ref`` (a ServiceIdentity: a
    Google service agent, whose email holds the project number) must be given; Config
    Connector resolves the references."""
    spec: dict[str, Any] = {"resourceRef": dict(resource_ref), "role": role}
    if member:
        spec["member"] = member
    elif service_identity_ref:
        spec["memberFrom"] = {"serviceIdentityRef": dict(service_identity_ref)}
    else:
        spec["memberFrom"] = {"serviceAccountRef": dict(service_account_ref or {})}
    if condition:
        spec["condition"] = condition
    return kube_object(
        "iam.cnrm.cloud.google.com/v1beta1",
        "IAMPolicyMember",
        name,
        namespace=namespace,
        labels=labels,
        annotations=annotations,
        spec=spec,
    )
