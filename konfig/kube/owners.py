"""Which Konfig custom resource an object belongs to, and its ownerReference. Pure.

Every object the compiler emits carries the ``konfig-*`` labels of the definitions it comes from;
the most specific of them names the responsible custom resource:

======================  ===============================================
labels                  responsible custom resource
======================  ===============================================
``konfig-workload=W``   Workload ``W`` in the object's own namespace
                        (not in the system namespace, where no Workload
                        lives: there the domain is responsible)
``konfig-domain=D``     Domain ``D`` in the system namespace
``konfig-platform=P``   Platform ``P`` in the system namespace
``konfig-control-plane`` the ControlPlane in the system namespace
======================  ===============================================

An ownerReference is set only when it is valid: owner and dependent in the same namespace
(Kubernetes forbids cross-namespace owners, and a namespaced owner of a cluster-scoped object:
https://kubernetes.io/docs/concepts/overview/working-with-objects/owners-dependents/). So a
Workload owns its objects in its namespace, and the ControlPlane, Platform and Domain
resources own their objects in the system namespace; namespaces and the per-environment
objects of a domain (ConfigConnectorContext, RoleBindings) have no owner and are pruned by
label instead.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

from konfig.compile.state import (
    LABEL_CONTROL_PLANE,
    LABEL_DOMAIN,
    LABEL_PLATFORM,
    LABEL_WORKLOAD,
    SYSTEM_NAMESPACE,
    KubeObject,
)
from konfig.model import API_VERSION


@dataclass(frozen=True, order=True)
class Ref:
    """A Konfig custom resource by kind, namespace and name."""

    kind: str
    namespace: str
    name: str

    def __str__(self) -> str:
        return f"{self.kind} {self.namespace}/{self.name}"


def responsible(obj: KubeObject, system_namespace: str = SYSTEM_NAMESPACE) -> Ref | None:
    """The custom resource responsible for ``obj`` (see the table above); ``None`` for an
    object without Konfig's labels."""
    meta = obj.get("metadata") or {}
    labels = meta.get("labels") or {}
    if LABEL_CONTROL_PLANE not in labels:
        return None
    namespace = meta.get("namespace")
    if LABEL_WORKLOAD in labels and namespace and namespace != system_namespace:
        return Ref("Workload", namespace, labels[LABEL_WORKLOAD])
    if LABEL_DOMAIN in labels:
        return Ref("Domain", system_namespace, labels[LABEL_DOMAIN])
    if LABEL_PLATFORM in labels:
        return Ref("Platform", system_namespace, labels[LABEL_PLATFORM])
    return Ref("ControlPlane", system_namespace, labels[LABEL_CONTROL_PLANE])


def owner_reference(obj: KubeObject, uids: Mapping[Ref, str],
                    system_namespace: str = SYSTEM_NAMESPACE) -> dict[str, Any] | None:
    """The ownerReference ``obj`` should carry, or ``None`` when no valid one exists (no
    responsible resource, a different namespace, or the resource's uid is unknown).
    ``uids`` maps live custom resources to their ``metadata.uid``."""
    ref = responsible(obj, system_namespace)
    namespace = (obj.get("metadata") or {}).get("namespace")
    if ref is None or not namespace or ref.namespace != namespace:
        return None
    uid = uids.get(ref)
    if not uid:
        return None
    return {"apiVersion": API_VERSION, "kind": ref.kind, "name": ref.name, "uid": uid,
            "controller": True}


def with_owner(obj: KubeObject, uids: Mapping[Ref, str],
               system_namespace: str = SYSTEM_NAMESPACE) -> KubeObject:
    """``obj`` with its ownerReference set (unchanged when it has none)."""
    reference = owner_reference(obj, uids, system_namespace)
    if reference is None:
        return obj
    return {**obj, "metadata": {**obj["metadata"], "ownerReferences": [reference]}}
