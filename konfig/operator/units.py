"""Reconcile units: which part of a control plane a change touches. Pure: no I/O.

The operator reconciles a control plane as independent *units* (docs/operator.md):

* the **control-plane unit** (:data:`CONTROL_PLANE`): the objects that carry no
  ``konfig-domain`` label (the control plane's folder and project, platform folders,
  ``konfig-system`` identities, networking), and the status of the ControlPlane, Platforms and
  ResourceTemplates;
* one **domain unit** per Domain (:func:`domain_unit`): every object labelled
  ``konfig-domain=<domain>`` (its folder, environment projects, namespaces, Config Connector
  contexts, RBAC, and its workloads' objects), and the status of the Domain and its Workloads.

:func:`affected` maps a change of one custom resource to the units to reconcile;
:func:`scope` picks the custom resources a unit's compile needs (the frame of ControlPlane,
Platforms, Domains and ResourceTemplates, the unit's workloads, and the workloads they call or
are called by), so a change costs the same whatever the number of domains.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping

from konfig.compile.state import LABEL_DOMAIN, KubeObject
from konfig.kube.owners import Ref

#: The control plane's own unit.
CONTROL_PLANE = "control-plane"
_DOMAIN_PREFIX = "domain/"
#: Kinds of the frame every unit's compile reads in full.
FRAME_KINDS = ("ControlPlane", "Platform", "Domain", "ResourceTemplate")


def domain_unit(domain: str) -> str:
    """The unit of ``domain`` (``domain/<name>``)."""
    return _DOMAIN_PREFIX + domain


def domain_of_unit(unit: str) -> str | None:
    """The domain a unit stands for; ``None`` for the control-plane unit."""
    return unit[len(_DOMAIN_PREFIX):] if unit.startswith(_DOMAIN_PREFIX) else None


def unit_of_object(obj: KubeObject) -> str:
    """The unit an object belongs to: its ``konfig-domain`` label's, else the control plane's."""
    domain = ((obj.get("metadata") or {}).get("labels") or {}).get(LABEL_DOMAIN)
    return domain_unit(domain) if domain else CONTROL_PLANE


def _spec(resource: Mapping[str, Any] | None) -> dict[str, Any]:
    return dict((resource or {}).get("spec") or {})


def unit_of_resource(ref: Ref, resource: Mapping[str, Any] | None) -> str:
    """The unit whose pass writes this custom resource's status: a Domain's and a Workload's
    (by ``spec.domain``) is their domain's, everything else the control plane's."""
    if ref.kind == "Domain":
        return domain_unit(ref.name)
    if ref.kind == "Workload":
        domain = _spec(resource).get("domain")
        return domain_unit(domain) if domain else CONTROL_PLANE
    return CONTROL_PLANE


def _dependencies(spec: Mapping[str, Any]) -> set[tuple[str, str]]:
    own = spec.get("domain")
    return {((d or {}).get("domain") or own, (d or {}).get("workload"))
            for d in spec.get("dependencies") or [] if isinstance(d, dict)}


def _templates(spec: Mapping[str, Any]) -> set[str]:
    return {r.get("template") for r in spec.get("resources") or [] if isinstance(r, dict)}


@dataclass
class UnitIndex:
    """What :func:`affected` needs to know about the whole control plane, built from the raw
    custom resources (so it works for invalid ones too)."""

    domains: set[str] = field(default_factory=set)
    #: platform -> domains on it
    platform_domains: dict[str, set[str]] = field(default_factory=dict)
    #: template -> domains with a workload using it
    template_users: dict[str, set[str]] = field(default_factory=dict)
    #: (domain, workload) -> domains with a workload calling it
    callers: dict[tuple[str, str], set[str]] = field(default_factory=dict)

    @classmethod
    def of(cls, resources: Iterable[Mapping[str, Any]]) -> "UnitIndex":
        index = cls()
        for resource in resources:
            kind, spec = resource.get("kind"), _spec(resource)
            name = (resource.get("metadata") or {}).get("name")
            if kind == "Domain":
                index.domains.add(name)
                index.platform_domains.setdefault(spec.get("platform"), set()).add(name)
            elif kind == "Workload" and spec.get("domain"):
                for template in _templates(spec):
                    index.template_users.setdefault(template, set()).add(spec["domain"])
                for target in _dependencies(spec):
                    index.callers.setdefault(target, set()).add(spec["domain"])
        return index

    def units(self) -> list[str]:
        """Every unit, the control plane's first."""
        return [CONTROL_PLANE, *(domain_unit(d) for d in sorted(self.domains))]


def affected(index: UnitIndex, kind: str, name: str, before: Mapping[str, Any] | None,
             after: Mapping[str, Any] | None) -> set[str]:
    """The units a change of one custom resource (``before`` → ``after``, either ``None`` for
    a creation or deletion) must reconcile:

    * ControlPlane: every unit (everything is compiled from it);
    * Platform: the control plane's and its domains' (services and folders are inherited);
    * Domain: its own and the control plane's (control-plane objects such as the GitLab tree
      and CI identities list the domains);
    * ResourceTemplate: the domains whose workloads use it (before or after the change) and
      the control plane's (which reports on templates);
    * Workload: its domain's, the domains of the workloads it calls and of those calling it
      (invoker grants and connection details cross domains), and the control plane's when it
      is or was reachable beyond its domain (``ingress.visibility`` other than ``domain``:
      the load balancers and routes serving it are the control plane's, docs/networking.md).
    """
    old, new = _spec(before), _spec(after)
    if kind == "ControlPlane":
        return set(index.units())
    if kind == "Platform":
        domains = index.platform_domains.get(name, set())
        return {CONTROL_PLANE, *(domain_unit(d) for d in domains)}
    if kind == "Domain":
        return {CONTROL_PLANE, domain_unit(name)}
    if kind == "ResourceTemplate":
        return {CONTROL_PLANE, *(domain_unit(d) for d in index.template_users.get(name, set()))}
    if kind == "Workload":
        out: set[str] = set()
        for spec in (old, new):
            domain = spec.get("domain")
            if not domain:
                continue
            out.add(domain_unit(domain))
            out |= {domain_unit(d) for d, _ in _dependencies(spec) if d}
            out |= {domain_unit(d) for d in index.callers.get((domain, name), set())}
            if (spec.get("ingress") or {}).get("visibility", "domain") != "domain":
                out.add(CONTROL_PLANE)
        return out
    return {CONTROL_PLANE}


def scope(resources: Iterable[Mapping[str, Any]], units: Iterable[str]) -> list[Mapping[str, Any]]:
    """The custom resources compiling ``units`` needs: the whole frame (ControlPlane,
    Platforms, Domains, ResourceTemplates), every Workload of the units' domains, the
    workloads calling those (their grants live in the callee's domain), and, transitively, the
    workloads any of these call (so each validates as it would with everything present). The
    control-plane unit needs everything."""
    resources = list(resources)
    units = set(units)
    if CONTROL_PLANE in units:
        return resources
    domains = {domain_of_unit(u) for u in units} - {None}
    frame = [r for r in resources if r.get("kind") in FRAME_KINDS]
    workloads = [r for r in resources if r.get("kind") == "Workload"]
    key = lambda r: (_spec(r).get("domain"), (r.get("metadata") or {}).get("name"))  # noqa: E731
    picked = {id(r) for r in workloads if _spec(r).get("domain") in domains}
    mine = {key(r) for r in workloads if id(r) in picked}
    for r in workloads:  # callers of the units' workloads
        if _dependencies(_spec(r)) & mine:
            picked.add(id(r))
    frontier = {t for r in workloads if id(r) in picked for t in _dependencies(_spec(r))}
    seen: set[tuple[str, str]] = set()
    while frontier - seen:  # callees, transitively
        seen |= frontier
        frontier = set()
        for r in workloads:
            if key(r) in seen and id(r) not in picked:
                picked.add(id(r))
                frontier |= _dependencies(_spec(r))
    return [*frame, *(r for r in workloads if id(r) in picked)]


__all__ = ["CONTROL_PLANE", "UnitIndex", "affected", "domain_of_unit", "domain_unit",
           "scope", "unit_of_object", "unit_of_resource"]
