"""Konfig custom resources read from the cluster -> :class:`~konfig.definitions.Definitions`.
Pure: takes the resources as dicts, does no I/O.

The cluster holds one Workload per domain environment (CI applies it into that environment's
namespace with the image built for it), so definitions are built with
``workload_instances[(domain, name, environment)]`` and ``instances_only``: a workload is
rendered only in the environments where it has an instance.

Resources that cannot take part are set aside as *orphans* with a reason rather than failing
the whole control plane: a ControlPlane, Platform, Domain or ResourceTemplate outside the
system namespace, and a Workload in a namespace that is no environment of any domain (left
behind by a removed domain, say). Everything else must validate together: one invalid
definition stalls the control plane and nothing is applied, because a partial desired state
would prune what the invalid definitions stand for.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any, Iterable

from konfig.compile import naming
from konfig.definitions import Definitions
from konfig.errors import DefinitionError, Location, Problem, Problems
from konfig.kube.owners import Ref
from konfig.load import parse_definition
from konfig.model import ControlPlane, Definition, Domain, Workload
from konfig.validate import validate_definitions

#: Konfig's kinds in hierarchy order.
KINDS = ("ControlPlane", "Platform", "Domain", "ResourceTemplate", "Workload")


def bundled_templates() -> tuple[Definition, ...]:
    """The bundled ResourceTemplate library (read once; it ships with the operator)."""
    from konfig.load import bundled_templates as library

    return library()


def ref_of(resource: dict[str, Any]) -> Ref:
    meta = resource["metadata"]
    return Ref(resource["kind"], meta.get("namespace", ""), meta["name"])


def document_of(resource: dict[str, Any]) -> dict[str, Any]:
    """The definition inside a custom resource: apiVersion, kind, spec, and only the metadata a
    definition has (name, labels, annotations); status and server-set metadata dropped."""
    meta = resource.get("metadata") or {}
    return {
        "apiVersion": resource.get("apiVersion"),
        "kind": resource.get("kind"),
        "metadata": {k: meta[k] for k in ("name", "labels", "annotations") if meta.get(k)},
        "spec": resource.get("spec") or {},
    }


def describe_problem(problem: Problem) -> str:
    """``Workload shop-dev/cart: spec.image: message`` (no line: resources have none)."""
    loc = problem.location
    where = f"{loc.file}:{loc.line}" if loc.line else loc.file
    return f"{where}: {loc.field}: {problem.message}" if loc.field else f"{where}: {problem.message}"


@dataclass
class ClusterView:
    """What the operator makes of the live custom resources.

    ``definitions`` is ``None`` when there is nothing to render (no ControlPlane) or the
    definitions are invalid (``problems``). ``deleting`` lists resources being deleted (they
    take no part); ``orphans`` maps resources set aside to the reason. ``control_plane`` is the
    ControlPlane resource's name even while it is being deleted (then
    ``control_plane_deleting``), so its objects can still be found and pruned.
    """

    resources: dict[Ref, dict[str, Any]]
    definitions: Definitions | None = None
    problems: list[Problem] = field(default_factory=list)
    orphans: dict[Ref, str] = field(default_factory=dict)
    deleting: list[Ref] = field(default_factory=list)
    control_plane: str | None = None
    control_plane_deleting: bool = False
    #: Workload instances by resource, for status (the image running in each environment).
    instances: dict[Ref, tuple[str, str, str]] = field(default_factory=dict)

    @property
    def valid(self) -> bool:
        return self.definitions is not None and not self.problems

    def problem_texts(self) -> list[str]:
        return [describe_problem(p) for p in sorted(set(self.problems))]


def build_view(resources: Iterable[dict[str, Any]], *, system_namespace: str,
               library: Iterable[Definition] = (),
               cache: dict[tuple, Definition] | None = None) -> ClusterView:
    """Build the :class:`ClusterView` of ``resources`` (every Konfig custom resource in the
    cluster). ``library`` holds the bundled ResourceTemplates that resources may override.
    ``cache`` (kept by the caller between calls) reuses the models of resources whose
    definition did not change."""
    view = ClusterView(resources={ref_of(r): r for r in resources})
    problems = Problems()
    models: dict[Ref, Definition] = {}
    planes = sorted((ref, r) for ref, r in view.resources.items()
                    if ref.kind == "ControlPlane" and ref.namespace == system_namespace)
    live_planes = [(ref, r) for ref, r in planes if not r["metadata"].get("deletionTimestamp")]
    if live_planes:
        view.control_plane = live_planes[0][0].name
    elif planes:
        view.control_plane, view.control_plane_deleting = planes[0][0].name, True
    for ref, resource in sorted(view.resources.items()):
        if resource["metadata"].get("deletionTimestamp"):
            view.deleting.append(ref)
            continue
        if ref.kind != "Workload" and ref.namespace != system_namespace:
            view.orphans[ref] = (f"{ref.kind} resources are read only from namespace "
                                 f"{system_namespace!r}; this one is ignored")
            continue
        document = document_of(resource)
        key = (ref, resource["metadata"].get("uid"), resource["metadata"].get("generation"),
               repr(document["metadata"]))
        if cache is not None and key in cache:
            models[ref] = cache[key]
            continue
        try:
            models[ref] = parse_definition(document, file=str(ref))
            if cache is not None:
                cache[key] = models[ref]
        except DefinitionError as err:
            problems.extend(err.problems)
            problems.invalid_kinds.add(ref.kind)
    if view.control_plane_deleting or (not view.resources):
        return view
    objects = [m for ref, m in models.items() if ref.kind != "Workload"]
    workloads = {ref: m for ref, m in models.items() if isinstance(m, Workload)}
    control_plane = next((m for m in objects if isinstance(m, ControlPlane)), None)
    instances: dict[tuple[str, str, str], Workload] = {}
    if control_plane is not None:
        environments = _environments_by_namespace(control_plane, objects)
        by_key: dict[tuple[str, str], dict[str, tuple[Ref, Workload]]] = defaultdict(dict)
        for ref, workload in sorted(workloads.items()):
            place = environments.get(ref.namespace)
            if place is None:
                view.orphans[ref] = (f"namespace {ref.namespace!r} is no environment of a "
                                     "defined domain; the workload is not rendered")
                continue
            domain, env = place
            if workload.spec.domain != domain:
                problems.add(Location(str(ref), 0, "spec.domain"),
                             f"the workload is in namespace {ref.namespace!r} of domain "
                             f"{domain!r}, not of {workload.spec.domain!r}")
                continue
            by_key[(domain, workload.name)][env] = (ref, workload)
            instances[(domain, workload.name, env)] = workload
            view.instances[ref] = (domain, workload.name, env)
        order = control_plane.environment_names
        variants = [_variants(envs, order, problems) for envs in by_key.values()]
    else:
        variants = []
    # One validation per variant of a workload's spec across environments (usually one: CI
    # applies the same workload.yaml everywhere, only images differ), so every instance is
    # checked; the first run's definitions are kept.
    definitions = None
    for k in range(max((len(v) for v in variants), default=1)):
        picked = [v[k] if k < len(v) else v[0] for v in variants]
        run = validate_definitions([*objects, *picked], problems, library=library)
        definitions = run if k == 0 else definitions
    view.problems = sorted(set(problems))
    if definitions is not None and not view.problems:
        definitions.workload_instances = instances
        definitions.instances_only = True
        view.definitions = definitions
    return view


def _environments_by_namespace(control_plane: ControlPlane, objects: list[Definition]
                               ) -> dict[str, tuple[str, str]]:
    """``namespace -> (domain, environment)`` for every domain environment."""
    order = control_plane.environment_names
    out = {}
    for domain in objects:
        if isinstance(domain, Domain):
            wanted = domain.spec.environments
            for env in order:
                if wanted is None or env in wanted:
                    out[naming.namespace_name(domain.name, env)] = (domain.name, env)
    return out


def _variants(envs: dict[str, tuple[Ref, Workload]], order: list[str],
               problems: Problems) -> list[Workload]:
    """The instances of one workload grouped by spec (images aside), latest environment's
    group first, each as one :func:`_representative`."""
    groups: dict[str, dict[str, tuple[Ref, Workload]]] = {}
    for env in reversed([e for e in order if e in envs]):
        spec = envs[env][1].spec.model_dump(mode="json", exclude={"image", "environments"})
        overrides = {k: v.model_dump(mode="json", exclude={"image"})
                     for k, v in envs[env][1].spec.environments.items()}
        groups.setdefault(repr((spec, overrides)), {})[env] = envs[env]
    return [_representative(group, order, problems) for group in groups.values()]


def _representative(envs: dict[str, tuple[Ref, Workload]], order: list[str],
                    problems: Problems) -> Workload:
    """One Workload standing for instances with the same spec in cross-reference validation:
    the instance of the latest environment, with each other instance's image as that
    environment's override, so the digest rule is checked against what each environment
    really runs."""
    present = [e for e in order if e in envs]
    ref, latest = envs[present[-1]]
    if len(present) == 1:
        return latest
    doc = latest.to_document()
    overrides = doc["spec"].setdefault("environments", {})
    for env in present[:-1]:
        instance = envs[env][1]
        override = instance.spec.environments.get(env)
        image = (override.image if override else None) or instance.spec.image
        if image:
            overrides.setdefault(env, {})["image"] = image
    try:
        return parse_definition(doc, file=str(ref))  # type: ignore[return-value]
    except DefinitionError as err:  # cannot happen for valid instances; report, don't crash
        problems.extend(err.problems)
        return latest

