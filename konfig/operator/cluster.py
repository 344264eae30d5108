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

Invalid definitions are handled by who owns them:

* ControlPlane, Platform, Domain and ResourceTemplate resources (the platform team's,
  reviewed in the control-plane repository) must validate together: one invalid definition
  stalls the whole control plane and nothing is applied, because a partial desired state
  would prune what the invalid definitions stand for. So does any problem that cannot be
  blamed on one Workload resource.
* A Workload instance (applied by one domain's CI into its domain-environment namespace)
  whose own definition is invalid is *isolated* (:class:`Isolation`): problems are blamed on
  the resource their location file names (``parse_definition(..., file=str(ref))``; for a
  representative of several environments, an image field on the instance that runs that
  image, anything else on every instance it stands for). An isolated instance is *held*
  at its last valid model when the caller knows one (the desired state is then unchanged
  for it), else *excluded* from the compile; :func:`isolated_objects` then tells the prune
  to keep its live objects and the run-invoker grants other services give it, unchanged.
  Excluding one instance can make another fail (a dependency no longer defined): validation
  repeats until nothing is left to blame, a bounded number of times. Either way nothing
  the instance stands for is ever pruned or changed while it is invalid, and the rest of the
  control plane reconciles.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Mapping

from konfig.compile import naming
from konfig.compile.state import LABEL_DOMAIN, LABEL_ENVIRONMENT, LABEL_WORKLOAD
from konfig.definitions import Definitions
from konfig.errors import DefinitionError, Location, Problem, Problems
from konfig.kube.owners import Ref
from konfig.load import parse_definition
from konfig.model import ControlPlane, Definition, Domain, Workload
from konfig.validate import project_id_for, validate_definitions

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


@dataclass(frozen=True)
class Isolation:
    """A Workload instance whose own definition is invalid, set aside so the rest of the
    control plane reconciles. ``place`` is ``(domain, workload, environment)``;
    ``problems`` are those of its current definition. ``held``: its last valid model (from
    an earlier pass of this operator) still stands in the desired state, so nothing of it
    changes; otherwise it is *excluded* from the compile and the operator keeps its live
    objects as they are (see :func:`isolated_objects`)."""

    place: tuple[str, str, str]
    problems: tuple[Problem, ...]
    held: bool = False


@dataclass
class ClusterView:
    """What the operator makes of the live custom resources.

    ``definitions`` is ``None`` when there is nothing to render (no ControlPlane) or the
    definitions are invalid (``problems``: the whole control plane stalls). ``isolated`` maps
    the Workload instances set aside for their own problems to their :class:`Isolation` (the
    rest is valid and reconciles). ``deleting`` lists resources being deleted (they take no
    part); ``orphans`` maps resources set aside to the reason. ``control_plane`` is the
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
    #: Workload instances by resource, for status (the image running in each environment);
    #: held instances included, excluded ones not.
    instances: dict[Ref, tuple[str, str, str]] = field(default_factory=dict)
    isolated: dict[Ref, Isolation] = field(default_factory=dict)
    #: Workload instances rendered from their current definition (worth remembering as the
    #: last valid model once they compiled).
    current: dict[Ref, Workload] = field(default_factory=dict)

    @property
    def valid(self) -> bool:
        return self.definitions is not None and not self.problems

    def problem_texts(self) -> list[str]:
        return [describe_problem(p) for p in sorted(set(self.problems))]

    def excluded(self) -> dict[Ref, tuple[str, str, str]]:
        """Isolated instances left out of the compile (no last valid model to hold)."""
        return {ref: iso.place for ref, iso in self.isolated.items() if not iso.held}


#: A Workload instance as validated: its place ``(domain, name, environment)`` and model.
_Chosen = dict[Ref, tuple[tuple[str, str, str], Workload]]


def build_view(resources: Iterable[dict[str, Any]], *, system_namespace: str,
               library: Iterable[Definition] = (),
               cache: dict[tuple, Definition] | None = None,
               last_valid: Mapping[str, Workload] | None = None,
               rejected: Mapping[Ref, Iterable[Problem]] | None = None) -> ClusterView:
    """Build the :class:`ClusterView` of ``resources`` (every Konfig custom resource in the
    cluster). ``library`` holds the bundled ResourceTemplates that resources may override.
    ``cache`` (kept by the caller between calls) reuses the models of resources whose
    definition did not change. ``last_valid`` maps Workload uids to the last model of that
    resource that compiled (kept by the caller); ``rejected`` adds problems found later (by
    the compiler) to Workload instances, which are then excluded.

    ControlPlane, Platform, Domain and ResourceTemplate resources are validated first, on
    their own: any problem there (or one no Workload instance can be blamed for) stalls the
    whole control plane, with every problem reported. Otherwise each problem is attributed
    to the Workload resource(s) its location names (see :func:`_variants`) and those
    instances are isolated, falling back to their last valid model, else excluded; the
    validation runs again until no problem is left (an instance that depended on an
    excluded one may now fail in turn). Each round demotes at least one instance, and an
    instance at most twice, so this ends."""
    view = ClusterView(resources={ref_of(r): r for r in resources})
    problems = Problems()
    models: dict[Ref, Definition] = {}
    failures: dict[Ref, list[Problem]] = defaultdict(list)
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
            if ref.kind == "Workload":
                failures[ref] += err.problems
            else:
                problems.extend(err.problems)
                problems.invalid_kinds.add(ref.kind)
    if view.control_plane_deleting or (not view.resources):
        return view
    objects = [m for ref, m in models.items() if ref.kind != "Workload"]
    control_plane = next((m for m in objects if isinstance(m, ControlPlane)), None)
    order = control_plane.environment_names if control_plane is not None else []
    candidates: dict[Ref, tuple[tuple[str, str, str], Workload | None]] = {}
    if control_plane is not None:
        environments = _environments_by_namespace(control_plane, objects)
        for ref in sorted(r for r in view.resources if r.kind == "Workload"):
            if ref in view.deleting or (ref not in models and ref not in failures):
                continue
            place = environments.get(ref.namespace)
            if place is None:
                view.orphans[ref] = (f"namespace {ref.namespace!r} is no environment of a "
                                     "defined domain; the workload is not rendered")
                failures.pop(ref, None)
                continue
            domain, env = place
            workload = models.get(ref)
            if isinstance(workload, Workload) and workload.spec.domain != domain:
                failures[ref].append(Problem(
                    Location(str(ref), 0, "spec.domain"),
                    f"the workload is in namespace {ref.namespace!r} of domain {domain!r}, "
                    f"not of {workload.spec.domain!r}"))
            candidates[ref] = ((domain, ref.name, env),
                               workload if isinstance(workload, Workload) else None)
    for ref, found in (rejected or {}).items():
        if ref in candidates:
            failures[ref] += list(found)

    platform = Problems()
    platform.invalid_kinds = set(problems.invalid_kinds)
    platform.extend(problems)
    validate_definitions(objects, platform, library=library)
    if len(platform) or control_plane is None:
        # The platform itself is invalid: stall everything, reporting every problem.
        everything = [*platform, *(p for ps in failures.values() for p in ps)]
        chosen = {ref: (place, w) for ref, (place, w) in candidates.items()
                  if w is not None and ref not in failures}
        _, found, _ = _validate(objects, chosen, order, library)
        view.problems = sorted(set(everything) | set(found))
        return view

    held_models = last_valid or {}

    def uid(ref: Ref) -> str | None:
        return view.resources[ref]["metadata"].get("uid")

    # How each instance takes part: "current" model, "held" (last valid model), "excluded".
    states = {ref: "current" for ref in candidates}

    def demote(ref: Ref) -> None:
        if states[ref] == "current" and held_models.get(uid(ref) or "") is not None:
            states[ref] = "held"
        else:
            states[ref] = "excluded"

    for ref in failures:
        if ref in states:
            demote(ref)
    for ref in rejected or {}:
        if ref in states:  # the compiler failed on it: not even its last valid model
            states[ref] = "excluded"
    definitions = None
    for _ in range(2 * len(candidates) + 2):
        chosen = {}
        for ref, (place, workload) in candidates.items():
            if states[ref] == "held":
                chosen[ref] = (place, held_models[uid(ref) or ""])
            elif states[ref] == "current" and workload is not None:
                chosen[ref] = (place, workload)
        definitions, found, owners = _validate(objects, chosen, order, library)
        blamed: dict[Ref, list[Problem]] = defaultdict(list)
        unattributed = []
        for problem in found:
            refs = owners(problem)
            for ref in refs:
                blamed[ref].append(problem)
            if not refs:
                unattributed.append(problem)
        if unattributed or definitions is None:
            view.problems = sorted(set(found) | {p for ps in failures.values() for p in ps})
            return view
        if not blamed:
            break
        for ref, found_here in blamed.items():
            if states[ref] == "current":
                failures[ref] += found_here
            demote(ref)
    else:  # cannot happen (see the docstring); never apply a partial state if it does
        view.problems = sorted({p for ps in failures.values() for p in ps})
        return view
    assert definitions is not None
    definitions.workload_instances = {place: w for place, w in chosen.values()}
    definitions.instances_only = True
    view.definitions = definitions
    for ref, (place, workload) in candidates.items():
        if states[ref] != "excluded":
            view.instances[ref] = place
        if states[ref] == "current":
            assert workload is not None
            view.current[ref] = workload
        else:
            view.isolated[ref] = Isolation(place, tuple(sorted(set(failures[ref]))),
                                           held=states[ref] == "held")
    return view


def isolated_objects(view: ClusterView) -> "Callable[[dict[str, Any]], str | None] | None":
    """A predicate naming why a live object must be kept as it is because it stands for an
    *excluded* Workload instance (isolated without a last valid model to hold), or ``None``
    when there is none. Such an object is left alone by the prune (and, not being desired,
    it is not written either), so the last good state keeps running:

    * the instance's own objects: labels ``konfig-domain``, ``konfig-environment`` and
      ``konfig-workload`` equal to its place (every object the compiler renders for a
      workload environment carries them);
    * run-invoker grants other workloads' services give it: ``IAMPolicyMember`` objects
      (children of the callee) whose ``spec.member`` is the instance's service account.
    """
    excluded = view.excluded()
    if not excluded or view.definitions is None:
        return None
    defs = view.definitions
    places = {place: ref for ref, place in excluded.items()}
    members: dict[str, Ref] = {}
    for (domain, name, env), ref in places.items():
        if domain in defs.domains:
            project = project_id_for(defs, defs.domains[domain], env)
            email = naming.service_account_email(naming.workload_service_account_id(name), project)
            members[f"serviceAccount:{email}"] = ref

    def keep(obj: dict[str, Any]) -> str | None:
        labels = (obj.get("metadata") or {}).get("labels") or {}
        ref = places.get((labels.get(LABEL_DOMAIN), labels.get(LABEL_WORKLOAD),
                          labels.get(LABEL_ENVIRONMENT)))  # type: ignore[arg-type]
        if ref is None and obj.get("kind") == "IAMPolicyMember":
            ref = members.get((obj.get("spec") or {}).get("member", ""))
        if ref is None:
            return None
        return f"{ref} is isolated (invalid definition): kept as it is"

    return keep


def _validate(objects: list[Definition], chosen: _Chosen, order: list[str],
              library: Iterable[Definition]):
    """Validate ``objects`` with the ``chosen`` Workload instances: one validation per variant
    of a workload's spec across environments (usually one: CI applies the same workload.yaml
    everywhere, only images differ), so every instance is checked; the first run's
    definitions are kept. Returns the definitions, the problems and a function naming the
    Workload resources a problem is to be blamed on (none: not a workload's)."""
    problems = Problems()
    by_key: dict[tuple[str, str], dict[str, tuple[Ref, Workload]]] = defaultdict(dict)
    for ref, ((domain, name, env), workload) in sorted(chosen.items()):
        by_key[(domain, name)][env] = (ref, workload)
    owners: dict[str, _Owners] = {}
    variants = [_variants(envs, order, problems, owners) for envs in by_key.values()]
    definitions = None
    for k in range(max((len(v) for v in variants), default=1)):
        picked = [v[k] if k < len(v) else v[0] for v in variants]
        run = validate_definitions([*objects, *picked], problems, library=library)
        definitions = run if k == 0 else definitions

    def owners_of(problem: Problem) -> list[Ref]:
        entry = owners.get(problem.location.file)
        return entry.blame(problem.location.field) if entry else []

    return definitions, sorted(set(problems)), owners_of


@dataclass(frozen=True)
class _Owners:
    """The Workload resources a validated model (one instance, or a representative of
    several) stands for: an image field is the instance's that runs it
    (``images``: environment -> resource), anything else all of theirs (same spec)."""

    group: tuple[Ref, ...]
    latest: Ref
    images: dict[str, Ref]

    def blame(self, field_path: str) -> list[Ref]:
        if field_path == "spec.image":
            return [self.latest]
        for env, ref in self.images.items():
            if field_path.startswith(f"spec.environments.{env}.image"):
                return [ref]
        return list(self.group)


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
              problems: Problems, owners: dict[str, "_Owners"]) -> list[Workload]:
    """The instances of one workload grouped by spec (images aside), latest environment's
    group first, each as one :func:`_representative`. ``owners`` learns, by the location
    file of each representative, which resources its problems are to be blamed on."""
    groups: dict[str, dict[str, tuple[Ref, Workload]]] = {}
    for env in reversed([e for e in order if e in envs]):
        spec = envs[env][1].spec.model_dump(mode="json", exclude={"image", "environments"})
        overrides = {k: v.model_dump(mode="json", exclude={"image"})
                     for k, v in envs[env][1].spec.environments.items()}
        groups.setdefault(repr((spec, overrides)), {})[env] = envs[env]
    out = []
    for group in groups.values():
        present = [e for e in order if e in group]
        latest = group[present[-1]][0]
        owners[str(latest)] = _Owners(tuple(group[e][0] for e in present), latest,
                                      {e: group[e][0] for e in present})
        out.append(_representative(group, order, problems))
    return out


def _representative(envs: dict[str, tuple[Ref, Workload]], order: list[str],
                    problems: Problems) -> Workload:
    """One Workload standing for instances with the same spec in cross-reference validation:
    the instance of the latest environment, with each other instance's image as that
    environment's override, so the digest rule is checked against what each environment
    really runs. Its location file is the latest instance's resource."""
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
