"""Definitions -> Konfig custom resources in the control-plane cluster (``konfig apply``).

The control plane's CI runs ``konfig apply DIR``: every definition becomes a custom resource of
group ``konfig.dev`` that the operator reconciles. ControlPlane, Platform, Domain and the tree's
own ResourceTemplates live in the system namespace; a Workload is applied into each
environment namespace of its domain (as its own CI would, one instance per environment).
Every resource carries the ``konfig-*`` labels, which is also how removed definitions are
found and pruned.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from konfig.compile import naming
from konfig.compile.objects import konfig_labels
from konfig.compile.state import SYSTEM_NAMESPACE, DesiredState, KubeObject, object_key
from konfig.definitions import Definitions
from konfig.kube.client import KubeClient
from konfig.kube.diff import plan
from konfig.kube.sync import KubeReport, execute, observe
from konfig.model import API_VERSION, Definition, ResourceTemplate

#: Hierarchy order, the order resources are applied in.
KIND_ORDER = ("ControlPlane", "Platform", "Domain", "ResourceTemplate", "Workload")


@lru_cache(maxsize=1)
def bundled_library() -> dict[str, dict[str, Any]]:
    """The bundled ResourceTemplates as documents, by name (they ship with the operator, so
    they are never applied as custom resources)."""
    from konfig.load import bundled_templates

    return {t.name: t.to_document() for t in bundled_templates()}


def tree_templates(defs: Definitions) -> list[ResourceTemplate]:
    """Templates that come from the definitions tree: new names, or overrides that differ from
    the bundled template of the same name."""
    library = bundled_library()
    return [t for name, t in sorted(defs.templates.items())
            if library.get(name) != t.to_document()]


def _resource(definition: Definition, namespace: str, labels: dict[str, str]) -> KubeObject:
    doc = definition.to_document()
    meta = dict(doc.get("metadata") or {})
    meta["namespace"] = namespace
    meta["labels"] = {**(meta.get("labels") or {}), **labels}
    return {"apiVersion": doc["apiVersion"], "kind": doc["kind"], "metadata": meta,
            "spec": doc.get("spec", {})}


def custom_resources(defs: Definitions, *,
                     system_namespace: str = SYSTEM_NAMESPACE) -> list[KubeObject]:
    """Every custom resource ``defs`` stands for, in hierarchy order (see module doc)."""
    cp = defs.control_plane.name
    out = [_resource(defs.control_plane, system_namespace, konfig_labels(cp))]
    for name, platform in sorted(defs.platforms.items()):
        out.append(_resource(platform, system_namespace, konfig_labels(cp, name)))
    for name, domain in sorted(defs.domains.items()):
        out.append(_resource(domain, system_namespace,
                             konfig_labels(cp, domain.spec.platform, name)))
    for template in tree_templates(defs):
        out.append(_resource(template, system_namespace, konfig_labels(cp)))
    for (domain_name, name), workload in sorted(defs.workloads.items()):
        domain = defs.domains[domain_name]
        for env in defs.domain_environments(domain):
            labels = konfig_labels(cp, domain.spec.platform, domain_name, env, name)
            out.append(_resource(workload, naming.namespace_name(domain_name, env), labels))
    return out


@dataclass
class ApplyResult:
    """Outcome of :func:`apply_definitions`: the namespaces pass and the resources pass."""

    namespaces: KubeReport
    resources: KubeReport = field(default_factory=KubeReport)

    @property
    def ok(self) -> bool:
        return self.namespaces.ok and self.resources.ok

    @property
    def results(self):
        return [*self.namespaces.results, *self.resources.results]


def apply_definitions(client: KubeClient, defs: Definitions, state: DesiredState, *,
                      dry_run: bool = False, prune: bool = True,
                      system_namespace: str = SYSTEM_NAMESPACE, workers: int = 8,
                      include_workloads: bool = True) -> ApplyResult:
    """Server-side apply (field manager ``konfig``) the compiled Namespaces, then every custom
    resource of ``defs``; prune this control plane's custom resources that are no longer
    defined. ``include_workloads=False`` applies Konfig's own kinds only, into the system
    namespace, and neither writes nor prunes Workloads or Namespaces (the control-plane
    pipeline: workloads come from their repositories, namespaces from the operator). Raises :class:`~konfig.kube.client.KubeError` when the cluster cannot be read
    (for example the Konfig CRDs are not installed); write failures are in the result."""
    cp = defs.control_plane.name
    result = ApplyResult(KubeReport(dry_run=dry_run))
    if include_workloads:
        namespaces = [o for o in state.kubernetes
                      if o["kind"] == "Namespace" and o["apiVersion"] == "v1"]
        ns_kind = client.kinds.get("v1", "Namespace")
        observed, _ = observe(client, [ns_kind], [], cp, workers=workers)
        result.namespaces = execute(client, plan(namespaces, observed, cp, prune=False),
                                    dry_run=dry_run, workers=workers)
    order = [k for k in KIND_ORDER if include_workloads or k != "Workload"]
    resources = [r for r in custom_resources(defs, system_namespace=system_namespace)
                 if r["kind"] in order]
    kinds = [client.kinds.get(API_VERSION, k) for k in order]
    if include_workloads:
        observed, _ = observe(client, kinds, [], cp, workers=workers)
    else:  # these kinds live in the system namespace only, and so does this identity's RBAC
        observed = {object_key(o): o for info in kinds
                    for o in client.list(info, namespace=system_namespace)}
    # Parents before children, so the operator, reading at any moment, sees a consistent set.
    result.resources = execute(client, plan(resources, observed, cp, prune=prune,
                                            system_namespace=system_namespace),
                               dry_run=dry_run, workers=workers,
                               stage=lambda obj: KIND_ORDER.index(obj["kind"]))
    return result
