"""Konfig custom resources read from the cluster -> :class:`~konfig.definitions.Definitions`.
Pure: takes the resources as dicts, does no I/O.

The cluster holds one Workload per domain environment (CI applies it into that environment's
namespace with the image built for it), so definitions are built with
``workload_instances[(domain, name, environment)]`` and ``instances_only``: a workload is
rendered only in the environments where it has an instance.

Resources that cannot take part are set aside as *orphans* with a reason rather than failing
the whole control plane: a ControlPlane, Platform, Domain or ResourceTemplate outside the
system namespace, and a Workload in a namespace that is no environment of any domain (left
behind by a removed domain, say).

Invalid definitions are *held* (isolation, docs/operator.md): a resource with a problem, and
everything below it (a Platform's domains, a Domain's workloads, the workloads using a
ResourceTemplate; everything for the ControlPlane), takes no part in the definitions, and the
rest is validated again without it. The reconciler keeps the held resources' objects as they
are (a partial desired state must not prune what an invalid definition stands for).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping

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
    #: Resources set aside because they, or one they depend on, are invalid, with the
    #: problems that say why. They take no part in the definitions and their objects are
    #: kept as they are (never pruned) until they are fixed.
    held: dict[Ref, list[Problem]] = field(default_factory=dict)
    #: Held resources rendered as their last good definition (their objects are desired as
    #: last applied, shared ones included).
    kept: set[Ref] = field(default_factory=set)
    #: The parsed definition of every resource that takes part (held ones only when kept).
    models: dict[Ref, Definition] = field(default_factory=dict)
    #: ``(representative file, environment) -> instance`` for images validated through a
    #: representative (see ``_representative``), to put problems back where they belong.
    synthesized: dict[tuple[str, str], Ref] = field(default_factory=dict)

    @property
    def valid(self) -> bool:
        """Every definition is valid (nothing held)."""
        return self.definitions is not None and not self.problems

    @property
    def renderable(self) -> bool:
        """Something renders: the ControlPlane is valid (other resources may be held)."""
        return self.definitions is not None

    def problem_texts(self) -> list[str]:
        return [describe_problem(p) for p in sorted(set(self.problems))]


def build_view(resources: Iterable[dict[str, Any]], *, system_namespace: str,
               library: Iterable[Definition] = (),
               cache: dict[tuple, Definition] | None = None,
               hold: Iterable[Problem] = (),
               last_good: Mapping[Ref, Definition] | None = None) -> ClusterView:
    """Build the :class:`ClusterView` of ``resources`` (every Konfig custom resource in the
    cluster). ``library`` holds the bundled ResourceTemplates that resources may override.
    ``cache`` (kept by the caller between calls) reuses the models of resources whose
    definition did not change. ``hold``: problems found later (by the compiler), whose
    resources are held too. ``last_good``: each resource's last definition that was valid
    and applied (kept by the caller); a held resource renders as that (see
    :func:`_keep_last_good`)."""
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
    parse_failed = {ref: [p for p in problems if p.location.file == str(ref)]
                    for ref in view.resources if ref not in models and ref not in view.deleting
                    and ref not in view.orphans}
    compile_failed: set[Ref] = set()
    for problem in hold:
        ref = _ref_named(problem.location.file, view)
        for target in ([ref] if ref is not None else
                       [r for r in view.resources if r not in view.deleting]):
            parse_failed.setdefault(target, []).append(problem)
            compile_failed.add(target)
    _isolate(view, models, parse_failed, system_namespace, library)
    view.models = {r: m for r, m in models.items() if r not in view.held}
    if last_good and view.definitions is not None:
        _keep_last_good(view, models, {r: m for r, m in last_good.items()
                                       if r not in compile_failed}, library)
    return view


def _keep_last_good(view: ClusterView, models: dict[Ref, Definition],
                    last_good: Mapping[Ref, Definition], library: Iterable[Definition]) -> None:
    """Render each held resource as its last good definition, when it has one and the whole
    still validates with it: so a held workload keeps not only its own objects but also its
    part of shared ones (a route in the control plane's URL map, an invoker grant in a
    callee's namespace), exactly as last applied. A substitute that no longer fits (its
    template is gone, say) is dropped and that resource's objects are only kept as they are.
    The ControlPlane is never substituted: with it invalid nothing renders."""
    plain = {r: m for r, m in models.items() if r not in view.held}
    subs = {ref: last_good[ref] for ref in view.held
            if ref in last_good and ref not in view.deleting and ref.kind != "ControlPlane"}
    tried = False
    for _ in range(MAX_ROUNDS):
        if not subs:
            break
        tried = True
        problems = Problems()
        definitions = _validate(view, {**plain, **subs}, problems, library)
        found = [_place(p, view) for p in sorted(set(problems))]
        if not found and definitions is not None:
            view.definitions = definitions
            view.kept = set(subs)
            view.models = {**plain, **subs}
            return
        bad = {_ref_named(p.location.file, view) for p in found}
        subs = {} if None in bad or not bad & set(subs) else {
            r: m for r, m in subs.items() if r not in bad}
    if tried:  # the failed rounds changed the placements: redo the plain one
        view.definitions = _validate(view, plain, Problems(), library)


#: Upper bound of validation rounds: each round sets aside what the previous one found
#: invalid (and what depends on it); a few rounds settle any real organisation.
MAX_ROUNDS = 8


def _isolate(view: ClusterView, models: dict[Ref, Definition],
             held: dict[Ref, list[Problem]], system_namespace: str,
             library: Iterable[Definition]) -> None:
    """Validate the definitions, setting aside (``view.held``) each resource with a problem
    and everything below it, until what is left validates; ``view.definitions`` is what is
    left (``None`` when the ControlPlane itself is held).

    A problem belongs to the resource its location names (``Kind namespace/name``); one that
    names no resource (a missing ControlPlane, say) holds everything."""
    all_problems: list[Problem] = [p for ps in held.values() for p in ps]
    for _ in range(MAX_ROUNDS):
        _hold_dependants(view, models, held, system_namespace)
        if any(ref.kind == "ControlPlane" for ref in held) or not any(
                isinstance(m, ControlPlane) for ref, m in models.items() if ref not in held):
            break
        problems = Problems()
        definitions = _validate(view, {r: m for r, m in models.items() if r not in held},
                                problems, library)
        found = [_place(p, view) for p in sorted(set(problems))]
        if not found:
            if definitions is not None:
                view.definitions = definitions
            break
        all_problems += found
        stray = [p for p in found if _ref_named(p.location.file, view) is None]
        if stray or definitions is None:
            for ref in view.resources:
                if ref not in view.deleting and ref not in view.orphans:
                    held.setdefault(ref, []).extend(
                        p for p in stray if p not in held.get(ref, []))
            break
        for problem in found:
            ref = _ref_named(problem.location.file, view)
            assert ref is not None
            held.setdefault(ref, []).append(problem)
    view.problems = sorted(set(all_problems))
    view.held = {ref: sorted(set(ps)) for ref, ps in held.items()}
    if any(ref.kind == "ControlPlane" for ref in held):
        view.definitions = None
    if view.definitions is None:
        for ref in view.resources:  # nothing renders: everything waits for the fix
            if ref not in view.deleting and ref not in view.orphans:
                view.held.setdefault(ref, [])


def _validate(view: ClusterView, models: dict[Ref, Definition], problems: Problems,
              library: Iterable[Definition]) -> Definitions | None:
    """One validation round of ``models`` (placing Workload instances in their domain
    environments); returns the definitions, with ``workload_instances`` set."""
    objects = [m for ref, m in models.items() if ref.kind != "Workload"]
    workloads = {ref: m for ref, m in models.items() if isinstance(m, Workload)}
    control_plane = next((m for m in objects if isinstance(m, ControlPlane)), None)
    instances: dict[tuple[str, str, str], Workload] = {}
    view.instances = {}
    view.synthesized = {}
    for ref in [r for r in view.orphans if r.kind == "Workload" and r.namespace != ""]:
        if ref in workloads:
            del view.orphans[ref]  # placed again below, with this round's domains
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
        variants = [_variants(envs, order, problems, view.synthesized)
                    for envs in by_key.values()]
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
    if definitions is not None:
        definitions.workload_instances = instances
        definitions.instances_only = True
    return definitions


def _place(problem: Problem, view: ClusterView) -> Problem:
    """The problem at the resource and field the user wrote: an image checked through a
    representative (see :func:`_representative`) belongs to the instance it came from."""
    loc = problem.location
    for (file, env), ref in view.synthesized.items():
        prefix = f"spec.environments.{env}.image"
        if loc.file == file and loc.field.startswith(prefix):
            return Problem(Location(str(ref), 0, "spec.image" + loc.field[len(prefix):]),
                           problem.message)
    return problem


def _ref_named(file: str, view: ClusterView) -> Ref | None:
    kind, _, rest = file.partition(" ")
    namespace, _, name = rest.partition("/")
    ref = Ref(kind, namespace, name)
    return ref if ref in view.resources else None


def _hold_dependants(view: ClusterView, models: dict[Ref, Definition],
                     held: dict[Ref, list[Problem]], system_namespace: str) -> None:
    """Add to ``held`` what sits below a held resource: a ControlPlane holds everything, a
    Platform its domains, a Domain its workloads, a ResourceTemplate the workloads using it;
    each with a problem saying which resource it waits for."""
    def spec_of(ref: Ref) -> dict[str, Any]:
        return view.resources[ref].get("spec") or {}

    plane = next((m for m in models.values() if isinstance(m, ControlPlane)), None)
    environments = plane.environment_names if plane is not None else []

    def hold(ref: Ref, cause: Ref, why: str) -> bool:
        if ref in held or ref in view.deleting or (ref in view.orphans and ref.kind != "Workload"):
            return False
        view.orphans.pop(ref, None)  # a workload placed by the last round is held instead
        held[ref] = [Problem(Location(str(ref), 0, ""),
                             f"not reconciled: {cause} {why}; its objects are kept as they are "
                             "until that is fixed")]
        return True

    changed = True
    while changed:
        changed = False
        for cause in sorted(held):
            if cause.kind == "ControlPlane":
                for ref in view.resources:
                    changed |= hold(ref, cause, "is invalid")
            elif cause.kind == "Platform":
                for ref in view.resources:
                    if ref.kind == "Domain" and spec_of(ref).get("platform") == cause.name:
                        changed |= hold(ref, cause, "(its platform) is not reconciled")
            elif cause.kind == "Domain":
                for ref in view.resources:
                    if ref.kind == "Workload" and (spec_of(ref).get("domain") == cause.name):
                        changed |= hold(ref, cause, "(its domain) is not reconciled")
            elif cause.kind == "Workload":
                domain = spec_of(cause).get("domain")
                env = next((e for e in environments
                            if naming.namespace_name(str(domain), e) == cause.namespace), None)
                for ref in view.resources:
                    spec = spec_of(ref)
                    if ref.kind != "Workload" or env is None or ref.namespace != \
                            naming.namespace_name(str(spec.get("domain")), env):
                        continue
                    if any((d or {}).get("workload") == cause.name
                           and ((d or {}).get("domain") or spec.get("domain")) == domain
                           for d in spec.get("dependencies") or []):
                        changed |= hold(ref, cause, "(a workload it calls) is not reconciled")
            elif cause.kind == "ResourceTemplate":
                for ref in view.resources:
                    if ref.kind == "Workload" and any(
                            (r or {}).get("template") == cause.name
                            for r in spec_of(ref).get("resources") or []):
                        changed |= hold(ref, cause, "(a template it uses) is invalid")


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
              problems: Problems, synthesized: dict[tuple[str, str], Ref]) -> list[Workload]:
    """The instances of one workload grouped by spec (images aside), latest environment's
    group first, each as one :func:`_representative`."""
    groups: dict[str, dict[str, tuple[Ref, Workload]]] = {}
    for env in reversed([e for e in order if e in envs]):
        spec = envs[env][1].spec.model_dump(mode="json", exclude={"image", "environments"})
        overrides = {k: v.model_dump(mode="json", exclude={"image"})
                     for k, v in envs[env][1].spec.environments.items()}
        groups.setdefault(repr((spec, overrides)), {})[env] = envs[env]
    return [_representative(group, order, problems, synthesized)
            for group in groups.values()]


def _representative(envs: dict[str, tuple[Ref, Workload]], order: list[str],
                    problems: Problems, synthesized: dict[tuple[str, str], Ref]) -> Workload:
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
            synthesized[(str(ref), env)] = envs[env][0]  # problems there are that instance's
    try:
        return parse_definition(doc, file=str(ref))  # type: ignore[return-value]
    except DefinitionError as err:  # cannot happen for valid instances; report, don't crash
        problems.extend(err.problems)
        return latest

