"""The security invariants every compiled desired state must hold, whatever the definitions
(spec/definitions.md, "Invariants"; README, "Guardrails")."""

from __future__ import annotations

from typing import Any

from konfig.compile.objects import ABANDONED_KINDS
from konfig.compile.policy import BASIC_ROLES, PUBLIC_MEMBERS
from konfig.compile.state import DELETION_POLICY, LABEL_CONTROL_PLANE, LABEL_DOMAIN, LABEL_WORKLOAD


def violations(defs, state) -> list[str]:
    """Every invariant broken by ``state`` (compiled from ``defs``), as readable lines."""
    out: list[str] = []
    for obj in state.kubernetes:
        out += _object_violations(defs, state, obj)
    return out


def _object_violations(defs, state, obj: dict[str, Any]) -> list[str]:
    meta = obj.get("metadata") or {}
    what = f"{obj.get('kind')} {meta.get('namespace', '')}/{meta.get('name')}"
    out = []
    labels = meta.get("labels") or {}
    if labels.get(LABEL_CONTROL_PLANE) != state.control_plane:
        out.append(f"{what}: no {LABEL_CONTROL_PLANE} label")
    kind = obj.get("kind")
    api_version = obj.get("apiVersion", "")
    if kind == "IAMServiceAccountKey" or "ServiceAccountKey" in str(kind):
        out.append(f"{what}: a service-account key")
    cnrm = api_version.split("/")[0].endswith(".cnrm.cloud.google.com")
    if cnrm and kind in ABANDONED_KINDS and (meta.get("annotations") or {}).get(DELETION_POLICY) != "abandon":
        out.append(f"{what}: stateful and not abandoned")
    if kind in ("IAMPolicy", "IAMPartialPolicy", "IAMAuditConfig"):
        out.append(f"{what}: an authoritative IAM object")
    if kind == "IAMPolicyMember":
        out += _member_violations(defs, obj, what, labels)
    return out


def _member_violations(defs, obj, what: str, labels: dict[str, str]) -> list[str]:
    spec = obj.get("spec") or {}
    role, member = spec.get("role"), spec.get("member", "")
    ref = spec.get("resourceRef") or {}
    out = []
    if role in ("roles/owner", "roles/editor"):
        out.append(f"{what}: basic role {role}")
    elif role in BASIC_ROLES and not (member.startswith("group:") and ref.get("kind") == "Folder"):
        out.append(f"{what}: {role} outside the role table's folder viewers")
    if member.startswith("user:"):
        out.append(f"{what}: a user member {member}")
    if member in PUBLIC_MEMBERS:
        workload = defs.workloads.get((labels.get(LABEL_DOMAIN), labels.get(LABEL_WORKLOAD)))
        konfig_invoker = (role == "roles/run.invoker" and ref.get("kind") == "RunService"
                          and workload is not None and member == "allUsers")
        if not konfig_invoker:
            out.append(f"{what}: public member {member}")
    if LABEL_WORKLOAD in labels and ref.get("kind") in ("Folder", "Organization"):
        out.append(f"{what}: a workload grant above its project")
    return out
