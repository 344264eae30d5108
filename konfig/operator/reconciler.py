"""The executor of a reconcile pass over some reconcile units (:mod:`.units`), synchronous and
independent of kopf. What to write is decided by the pure :mod:`.decide`; this module reads,
applies and writes.

A pass reads the Konfig custom resources, builds the definitions of the units' scope
(:func:`.units.scope`, :mod:`.cluster`), and then:

1. no valid ControlPlane: every resource of the units gets ``Stalled=True`` with the problems
   and *nothing is applied*;
2. otherwise: resources that are invalid, or below an invalid one, are *held*: Stalled, and
   their objects kept as they are (never pruned); the rest is compiled (cached per unit while
   its scope is unchanged), and each unit's objects are observed (only that unit's, by label),
   applied with ownerReferences and pruned (:mod:`konfig.kube.sync`), units in parallel, a
   failing unit never holding back the others; GitLab is synced (failures are reported and
   retried, they never hold the cluster side back); expired break-glass grants are removed on
   full passes;
3. each resource of the units gets its status (only when it changed) and Events;
4. the finalizer of each resource being deleted is released once its children are pruned and,
   for groups, GitLab archived its projects.

A ControlPlane being deleted tears everything down. :class:`PassResult` holds each unit's
outcome (:mod:`.outcome`), from which the loop schedules the unit's next pass.
"""

from __future__ import annotations

import logging
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from typing import Any, Callable, Iterable, Protocol

from konfig.compile import compile_definitions
from konfig.pipeline import desired_state
from konfig.compile.context import CompileFacts
from konfig.compile.state import LABEL_DOMAIN, DesiredState, GitLabTree, KubeObject, object_key
from konfig.definitions import Definitions
from konfig.errors import DefinitionError, Problem
from konfig.kube.client import KubeClient, KubeError
from konfig.kube.diff import is_konfigs, plan
from konfig.kube.facts import observe_facts
from konfig.kube.kinds import KindInfo
from konfig.kube.owners import Ref, responsible, with_owner
from konfig.kube.sync import (
    CREATED,
    DELETED,
    KEPT,
    UPDATED,
    KubeReport,
    execute,
    observe_scoped,
    prune_kinds,
    reconcile_objects,
    settle_namespaces,
)
from konfig.model import API_VERSION
from konfig.operator.cluster import MAX_ROUNDS, KINDS, ClusterView, build_view
from konfig.operator.cache import ResourceCache
from konfig.operator.config import OperatorConfig
from konfig.operator.decide import (
    change_events,
    children_of,
    stalled_verdicts,
    template_usage,
    unit_outcome,
    verdict,
)
from konfig.operator.metrics import Metrics
from konfig.operator.outcome import Outcome, Retry, Stalled
from konfig.operator.status import (
    Children,
    Verdict,
    now_rfc3339,
    ready_transition,
    status_patch,
    verdict_progressing,
)
from konfig.operator.units import (
    CONTROL_PLANE,
    UnitIndex,
    domain_of_unit,
    scope,
    unit_of_object,
    unit_of_resource,
)

log = logging.getLogger("konfig.operator")
#: A unit's report when its Lease was lost before its writes (another replica has it now).
LOST = "lost its lease"

#: Finalizer on every Konfig resource: deletion waits until its children are pruned.
FINALIZER = "konfig.dev/finalizer"
#: Field manager of the operator's own metadata and status writes (``konfig apply`` uses
#: ``konfig``; a different name keeps its applies from removing the finalizer).
OPERATOR_MANAGER = "konfig-operator"


class EventSink(Protocol):
    """Where Kubernetes Events go (kopf's poster in the operator, a list in tests)."""

    def emit(self, resource: dict[str, Any], type_: str, reason: str, message: str) -> None: ...


class LogEvents:
    """An :class:`EventSink` that only logs (when no kopf poster is around)."""

    def emit(self, resource: dict[str, Any], type_: str, reason: str, message: str) -> None:
        meta = resource["metadata"]
        log.info("%s %s %s/%s: %s: %s", type_, resource["kind"], meta.get("namespace"),
                 meta["name"], reason, message)


@dataclass
class UnitResult:
    """One unit's part of a pass: its :mod:`outcome <.outcome>`, duration (seconds) and the
    Kubernetes adapter's report."""

    unit: str
    outcome: Outcome
    duration: float = 0.0
    kube: KubeReport | None = None


@dataclass
class PassResult:
    """Outcome of :meth:`Reconciler.reconcile`. ``units`` holds each reconciled unit's
    :class:`UnitResult`; ``failed`` when a temporary failure should be retried with backoff,
    ``stalled`` when definitions are invalid (only a change helps), ``not_ready``/``waiting``
    when the pass should be followed soon."""

    trigger: str
    duration: float = 0.0
    failed: bool = False
    stalled: bool = False
    not_ready: int = 0
    waiting: bool = False
    error: str | None = None
    kube: KubeReport | None = None
    gitlab: Any = None
    gitlab_ran: bool = False
    status_writes: int = 0
    resources: int = 0
    units: dict[str, UnitResult] = field(default_factory=dict)

    @property
    def settled(self) -> bool:
        """Nothing left to do until the next change or resync."""
        return not (self.failed or self.not_ready or self.waiting)


@dataclass
class _GitLabState:
    tree_key: int | None = None  # hash of the tree last synced without failure
    tree: GitLabTree | None = None  # the last whole tree compiled
    failed: bool = False
    last_report: Any = None
    errors: dict[Ref, str] = field(default_factory=dict)


class Reconciler:
    """Reconciles one control-plane cluster. ``reconcile(trigger, units)`` runs one pass over
    the given units (all when ``None``); calls must not overlap (the loop runs them one at a
    time)."""

    def __init__(self, client: KubeClient, config: OperatorConfig, *,
                 events: EventSink | None = None, metrics: Metrics | None = None,
                 gitlab_reconcile: Callable[..., Any] | None = None,
                 expire_grants: Callable[..., Any] | None = None,
                 cache: ResourceCache | None = None) -> None:
        self.client = client
        #: The watch's copy of the custom resources (the operator feeds it); without one,
        #: every pass lists them.
        self.cache = cache
        self.config = config
        self.events = events or LogEvents()
        self.metrics = metrics or Metrics()
        self._gitlab_reconcile = gitlab_reconcile
        self._gitlab_client = None
        self._expire_grants = expire_grants
        self._compiled: dict[frozenset, tuple[tuple, DesiredState, tuple[Problem, ...]]] = {}
        self._control_plane = ""
        self._models: dict[tuple, Any] = {}  # parsed definitions, by resource and generation
        #: Each resource's last definition that was valid and applied: a held resource renders
        #: as it (docs/operator.md, Isolation). In memory: after a restart a held resource's
        #: own objects are still kept, its part of shared objects is not.
        self._last_good: dict[Ref, Any] = {}
        self._gitlab = _GitLabState()
        self._inventory: dict[str, set[KindInfo]] = {}  # unit -> kinds it had objects of
        self._lock = threading.Lock()
        self.index = UnitIndex()
        self.resyncs = 0
        self.passes = 0
        self.last: PassResult | None = None
        #: Called with the resources a pass read, before it writes (the loop's echo filter).
        self.on_read: Callable[[list[dict[str, Any]]], None] | None = None
        #: Called with the uid of each resource whose finalizer a pass released.
        self.on_release: Callable[[str], None] | None = None
        #: Whether this replica still holds a unit's Lease (several replicas): checked before
        #: a unit's writes and status, so a unit handed over mid-pass is not written twice.
        self.owns: Callable[[str], bool] | None = None

    # -- the pass ----------------------------------------------------------------------------

    def reconcile(self, trigger: str = "change", units: Iterable[str] | None = None
                  ) -> PassResult:
        """One pass (see module doc) over ``units`` (every unit when ``None``). ``trigger``:
        ``startup``, ``change``, ``resync``, ``requeue`` or ``retry``; startup and resync passes
        read every kind for pruning, GitLab is synced on all but ``requeue``. Never raises for
        cluster or GitLab failures: they are in the result (``failed``, and each unit's
        outcome)."""
        started = time.monotonic()
        result = PassResult(trigger)
        self.passes += 1
        if trigger == "resync":
            self.resyncs += 1
        wanted = None if units is None else set(units)
        try:
            self._pass(result, wanted)
        except KubeError as err:
            result.failed, result.error = True, f"cluster: {err}"
            self.metrics.errors.labels("kube").inc()
            log.warning("reconcile failed: %s", err)
        except Exception as err:  # noqa: BLE001 - a bug must not stop the operator: retry
            result.failed, result.error = True, f"{type(err).__name__}: {err}"
            self.metrics.errors.labels("internal").inc()
            log.exception("reconcile crashed; retrying with backoff")
        if result.error:
            for unit in (wanted if wanted is not None else self.index.units()):
                if unit not in result.units:
                    result.units[unit] = UnitResult(unit, Retry(result.error))
        result.duration = time.monotonic() - started
        outcome = "stalled" if result.stalled else "failed" if result.failed else "ok"
        self.metrics.reconciles.labels(trigger, outcome).inc()
        self.metrics.duration.observe(result.duration)
        for unit in result.units.values():
            self.metrics.observe_unit(unit.unit, unit.outcome, unit.duration)
        if outcome == "ok":
            self.metrics.last_success.set(time.time())
        self.last = result
        return result

    def _pass(self, result: PassResult, wanted: set[str] | None) -> None:
        if self.cache is not None and self.cache.primed and result.trigger not in (
                "startup", "resync"):
            resources = self.cache.items()
        else:
            if self.cache is not None:
                self.cache.begin()
            resources = self._read_resources()
            if self.cache is not None:
                self.cache.replace(resources)
                resources = self.cache.items()
        result.resources = len(resources)
        if self.on_read is not None:
            self.on_read(resources)
        self.index = UnitIndex.of(resources)
        if not resources:
            return  # nothing defined yet: nothing to do, nothing to prune
        every = self.index.units()
        units = every if wanted is None else [u for u in every if u in wanted]
        scoped = scope(resources, units)
        view = build_view(scoped, system_namespace=self.config.system_namespace,
                          library=self._library(), cache=self._models,
                          last_good=self._last_good)
        if wanted is None:
            self._models = {k: v for k, v in self._models.items()
                            if k[0] in view.resources}  # forget what is gone
        system = self.config.system_namespace
        mine = [ref for ref, r in view.resources.items() if unit_of_resource(ref, r) in units]
        self._ensure_finalizers(view, mine)
        if view.control_plane_deleting:
            self._teardown(view, result)
            return
        if view.control_plane is None or not view.renderable:
            self._stall(view, mine, result)
            for unit in units:
                result.units[unit] = UnitResult(unit, Stalled(tuple(view.problems)))
            return
        view, state = self._compile(view, scoped, units)
        if state is None:
            self._stall(view, mine, result)
            for unit in units:
                result.units[unit] = UnitResult(unit, Stalled(tuple(view.problems)))
            return
        assert view.definitions is not None
        self._control_plane = state.control_plane
        uids = {ref: r["metadata"]["uid"] for ref, r in view.resources.items()
                if ref not in view.deleting}
        read = {ref for ref in view.resources if ref not in view.held or ref in view.kept}
        by_unit: dict[str, list[KubeObject]] = {u: [] for u in units}
        for obj in state.kubernetes:
            unit = unit_of_object(obj)
            if unit in by_unit:
                by_unit[unit].append(with_owner(obj, uids, system))
        full = result.trigger in ("startup", "resync")
        reports = self._sync_units(by_unit, read, full)
        kube = KubeReport(results=[r for rep in reports.values() if isinstance(rep, KubeReport)
                                   for r in rep.results],
                          notes=[n for rep in reports.values() if isinstance(rep, KubeReport)
                                 for n in rep.notes])
        result.kube = kube
        self._count(kube)
        if CONTROL_PLANE in units:
            self._gitlab.tree = state.gitlab
        tree = self._gitlab_tree(state.gitlab, units)
        if tree is not None and (result.trigger != "requeue" or self._gitlab.failed) and (
                full or self._gitlab.failed or self._gitlab.tree_key != hash(tree)):
            only = None if CONTROL_PLANE in units or full else {
                d for u in units if (d := domain_of_unit(u))}
            self._sync_gitlab(tree, result, domains=only)
        if full:
            self._remove_expired_grants()
        children, not_ready = children_of(kube, system)
        result.not_ready = not_ready
        self.metrics.not_ready.set(not_ready)
        if wanted is None:
            self.metrics.managed.set(len(state.kubernetes))
        lost = {u for u, rep in reports.items() if rep is LOST}
        mine = [ref for ref in mine if unit_of_resource(ref, view.resources[ref]) not in lost
                and (self.owns is None or self.owns(unit_of_resource(ref, view.resources[ref])))]
        self._write_statuses(view, mine, children, kube, result)
        self._release_finalizers(view, kube, scope_refs=set(mine))
        for ref in mine:  # what applied now is the last good of each valid resource
            if ref in view.deleting:
                self._last_good.pop(ref, None)
            elif ref not in view.held and ref in view.models:
                self._last_good[ref] = view.models[ref]
        for unit in units:
            if unit in lost:
                continue  # handed over mid-pass: the new owner reconciles it
            refs = [ref for ref in mine if unit_of_resource(ref, view.resources[ref]) == unit]
            report = reports.get(unit)
            error = report if isinstance(report, str) else None
            unit_kube = report if isinstance(report, KubeReport) else None
            kids = _count_not_ready(unit_kube, system) if unit_kube else 0
            gitlab_failed = self._gitlab.failed and any(
                ref in self._gitlab.errors or Ref("ControlPlane", system, "*") in
                self._gitlab.errors for ref in refs)
            outcome = unit_outcome(view, refs, unit_kube, kids, gitlab_failed, error)
            result.units[unit] = UnitResult(unit, outcome, unit_kube.duration if unit_kube
                                            else 0.0, unit_kube)
        result.failed = any(isinstance(u.outcome, Retry) for u in result.units.values())
        result.stalled = bool(view.held) and any(ref in view.held for ref in mine)
        result.waiting = kube.waiting or any(ref in view.deleting for ref in mine)

    def _sync_units(self, by_unit: dict[str, list[KubeObject]], read: set[Ref],
                    full: bool) -> dict[str, KubeReport | str]:
        """Observe the units' objects in one go (by label), then plan and carry out each unit
        on its own (in parallel): a unit whose writes fail, or whose pass raises, gets an
        error string instead of a report and never holds back the others."""
        system = self.config.system_namespace
        cp = self._cp_name
        units = list(by_unit)
        desired = [o for objs in by_unit.values() for o in objs]
        kinds: set[KindInfo] = set()
        for unit in units:
            kinds |= self._inventory.get(unit, set())
        if full or any(u not in self._inventory for u in units):
            kinds |= set(prune_kinds(self.client))
        domains = sorted(d for u in units if (d := domain_of_unit(u)))
        if CONTROL_PLANE in units or len(domains) > 50:
            selector = ""  # all of the control plane's objects, split by unit below
        else:
            selector = f"{LABEL_DOMAIN} in ({','.join(domains)})"
        observed, notes = observe_scoped(self.client, desired, kinds, cp, selector=selector,
                                         workers=self.config.workers)

        def one(unit: str) -> KubeReport | str:
            if self.owns is not None and not self.owns(unit):
                return LOST
            wanted = {object_key(o) for o in by_unit[unit]}
            mine = {k: o for k, o in observed.items()
                    if k in wanted or (is_konfigs(o, cp) and unit_of_object(o) == unit)}
            try:
                kube_plan = settle_namespaces(self.client, plan(
                    by_unit[unit], mine, cp, system_namespace=system,
                    read=lambda live: responsible(live, system) in read), cp)
                report = execute(self.client, kube_plan, workers=max(2, self.config.workers
                                                                    // max(1, len(units))))
            except KubeError as err:
                log.warning("unit %s failed: %s", unit, err)
                return f"cluster: {err}"
            report.notes = [*notes, *report.notes]
            seen = {self.client.kinds.of(o) for o in mine.values() if is_konfigs(o, cp)}
            self._inventory[unit] = seen | {self.client.kinds.of(o) for o in by_unit[unit]}
            return report

        with ThreadPoolExecutor(max_workers=max(1, min(len(units), self.config.workers))) as pool:
            return dict(zip(units, pool.map(one, units)))

    def _gitlab_tree(self, tree: GitLabTree, units: list[str]) -> GitLabTree | None:
        """The whole GitLab tree: the compiled one when the control-plane unit was compiled
        (its scope is everything), else the last whole tree with the compiled units' domain
        subtrees put in (``None`` before any whole tree is known)."""
        if CONTROL_PLANE in units:
            return tree
        whole = self._gitlab.tree
        if whole is None:
            return None
        domains = {domain_of_unit(u) for u in units}
        roots = [g.full_path for g in tree.groups if g.kind == "Domain" and g.path in domains]
        roots += [g.full_path for g in whole.groups if g.kind == "Domain" and g.path in domains]

        def inside(path: str) -> bool:
            return any(path == r or path.startswith(r + "/") for r in roots)

        groups = [g for g in whole.groups if not inside(g.full_path)]
        groups += [g for g in tree.groups if inside(g.full_path)]
        projects = [p for p in whole.projects if not inside(p.path_with_namespace)]
        projects += [p for p in tree.projects if inside(p.path_with_namespace)]
        groups.sort(key=lambda g: (g.full_path.count("/"), g.full_path))
        projects.sort(key=lambda p: p.path_with_namespace)
        merged = replace(whole, groups=tuple(groups), projects=tuple(projects))
        self._gitlab.tree = merged
        return merged

    def refresh_index(self) -> UnitIndex:
        """Read the custom resources and rebuild the unit index (no pass)."""
        self.index = UnitIndex.of(self._read_resources())
        return self.index

    # -- reading -------------------------------------------------------------------------------

    def _read_resources(self) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        for kind in KINDS:
            out += self.client.list(self.client.kinds.get(API_VERSION, kind))
        return out

    @staticmethod
    def _library():
        from konfig.operator.cluster import bundled_templates

        return bundled_templates()

    def _compile(self, view: ClusterView, scoped: list[dict[str, Any]], units: list[str]
                 ) -> tuple[ClusterView, DesiredState | None]:
        """Compile the view, reusing the last result for the same units while no resource of
        their scope and no observed fact (the Cloud Run URLs dependencies get) changed. Problems the compiler finds (a template expression failing for
        one workload's parameters, say) hold their resources like validation problems do, and
        the rest is compiled again; ``None`` when nothing can be compiled."""
        facts = self._facts(view, units)
        key = (tuple(sorted((str(ref), r["metadata"].get("uid"), r["metadata"].get("generation"))
                            for ref, r in view.resources.items()
                            if ref not in view.deleting and ref not in view.orphans)),
               tuple(sorted(facts.service_urls.items())))
        cache_key = frozenset(units)
        cached = self._compiled.get(cache_key)
        if cached is not None and cached[0] == key:
            if cached[2]:
                view = build_view(scoped, system_namespace=self.config.system_namespace,
                                  library=self._library(), cache=self._models, hold=cached[2],
                                  last_good=self._last_good)
            return view, cached[1]
        found: list[Problem] = []
        for _ in range(MAX_ROUNDS):
            if view.definitions is None:
                return view, None
            try:
                # The pipeline validate and plan run: compile, then the CRD check.
                state = desired_state(_compiled_part(view.definitions, units), facts)
            except DefinitionError as err:
                found += err.problems
                view = build_view(scoped, system_namespace=self.config.system_namespace,
                                  library=self._library(), cache=self._models, hold=found,
                                  last_good=self._last_good)
                continue
            if len(self._compiled) > 64:
                self._compiled.clear()
            self._compiled[cache_key] = (key, state, tuple(found))
            return view, state
        return view, None

    def _facts(self, view: ClusterView, units: list[str]) -> CompileFacts:
        """What the compiler uses from the live cluster, read for the units' scope only: the
        URLs of the Cloud Run services of the domains in scope (all of them for the control
        plane's unit)."""
        assert view.definitions is not None
        cp = view.definitions.control_plane.name
        if CONTROL_PLANE in units:
            return observe_facts(self.client, cp)
        domains = {d for u in units if (d := domain_of_unit(u))} | {
            d for d, _ in view.definitions.workloads}
        return observe_facts(self.client, cp, domains=sorted(domains))

    @property
    def _cp_name(self) -> str:
        return self._control_plane

    # -- finalizers ----------------------------------------------------------------------------

    def _ensure_finalizers(self, view: ClusterView, refs: Iterable[Ref] | None = None) -> None:
        for ref in (view.resources if refs is None else refs):
            resource = view.resources[ref]
            meta = resource["metadata"]
            if ref in view.deleting or FINALIZER in (meta.get("finalizers") or []):
                continue
            self._set_finalizers(ref, resource, [*(meta.get("finalizers") or []), FINALIZER])

    def _set_finalizers(self, ref: Ref, resource: dict[str, Any], finalizers: list[str]) -> None:
        meta = resource["metadata"]
        body = {"metadata": {"finalizers": finalizers,
                             "resourceVersion": meta["resourceVersion"]}}
        try:
            updated = self.client.patch(self.client.kinds.get(API_VERSION, ref.kind),
                                        ref.namespace, ref.name, body,
                                        field_manager=OPERATOR_MANAGER)
        except KubeError as err:
            if err.conflict or err.not_found:
                return  # changed or gone meanwhile: the watch brings it back to us
            raise
        resource["metadata"] = updated["metadata"]

    def _release_finalizers(self, view: ClusterView, kube: KubeReport | None,
                            gitlab_required: bool = True,
                            scope_refs: set[Ref] | None = None) -> None:
        """Drop the finalizer of every deleting resource (of ``scope_refs``, the units
        reconciled, when given) none of whose children is left."""
        if kube is None or not kube.ok:
            return
        # Objects still desired, or that failed or wait, hold their owner back; objects kept by
        # policy (the system namespace, break-glass grants, a namespace holding objects that
        # are not Konfig's) do not.
        left = {responsible(r.obj, self.config.system_namespace)
                for r in kube.results if r.action not in (DELETED, KEPT)}
        for ref in view.deleting:
            if scope_refs is not None and ref not in scope_refs:
                continue
            resource = view.resources[ref]
            finalizers = resource["metadata"].get("finalizers") or []
            if FINALIZER not in finalizers:
                continue
            if ref in left:
                continue
            if gitlab_required and ref.kind in ("ControlPlane", "Platform", "Domain") \
                    and self._gitlab.failed:
                continue
            if self.on_release is not None:
                self.on_release(resource["metadata"]["uid"])
            self._set_finalizers(ref, resource, [f for f in finalizers if f != FINALIZER])
            self.events.emit(resource, "Normal", "Deleted",
                             "children pruned (stateful ones abandoned); finalizer released")

    # -- stalled and teardown ------------------------------------------------------------------

    def _stall(self, view: ClusterView, refs: list[Ref], result: PassResult) -> None:
        """Nothing renders (no valid ControlPlane): every resource of the units is Stalled."""
        result.stalled = True
        if view.control_plane is None:
            # No control plane, so nothing of theirs can be left to prune.
            self._release_finalizers(view, KubeReport(), gitlab_required=False,
                                     scope_refs=set(refs))
        log.warning("definitions are invalid; nothing applied: %s",
                    "; ".join(view.problem_texts()[:5]))
        self.metrics.errors.labels("definitions").inc()
        verdicts = stalled_verdicts(view, refs, self.config.system_namespace)
        for ref in refs:
            self._write_status(ref, view.resources[ref], verdicts[ref], result,
                               event_type="Warning")

    def _teardown(self, view: ClusterView, result: PassResult) -> None:
        """The ControlPlane is being deleted: prune everything it made."""
        cp = view.control_plane
        assert cp is not None
        kube = reconcile_objects(self.client, [], cp, workers=self.config.workers,
                                 system_namespace=self.config.system_namespace)
        result.kube = kube
        self._count(kube)
        tree = self._teardown_tree(view)
        if tree is not None:
            self._sync_gitlab(tree, result)
        for ref, resource in view.resources.items():
            if ref not in view.deleting:
                self._write_status(ref, resource, verdict_progressing(
                    "Deleting", "the control plane is being deleted"), result)
        self._release_finalizers(view, kube)
        result.failed = not kube.ok or self._gitlab.failed
        result.waiting = True

    def _teardown_tree(self, view: ClusterView) -> GitLabTree | None:
        """The GitLab tree with only the control-plane group left: every project is archived
        (groups are kept: GitLab has no archive for groups)."""
        if self._gitlab.tree is not None:
            tree = self._gitlab.tree
        else:
            ref = next(r for r in view.resources if r.kind == "ControlPlane")
            from konfig.operator.cluster import document_of
            from konfig.load import parse_definition

            try:
                cp = parse_definition(document_of(view.resources[ref]), file=str(ref))
                tree = compile_definitions(Definitions(control_plane=cp)).gitlab  # type: ignore[arg-type]
            except DefinitionError:
                return None
        return replace(tree, groups=tuple(g for g in tree.groups if g.kind == "ControlPlane"),
                       projects=())

    # -- GitLab and break-glass ----------------------------------------------------------------

    def _sync_gitlab(self, tree: GitLabTree, result: PassResult,
                     domains: set[str] | None = None) -> None:
        """Sync the whole ``tree``. ``domains``: a pass over those domains' units only, whose
        subtrees alone changed: the shape of the whole tree is read (list pages: about 40
        requests for 4,000 groups and projects), the details (links, variables,
        protections) of those domains' groups and projects only."""
        if not self.config.gitlab_url:
            return
        # Full depth (every group's links and variables, every project's protections) on the
        # first pass, whenever the desired tree changed (a shape pass would not see, say, a
        # changed SAML link of an existing group) and every gitlab_full_every-th resync; a
        # shape pass with a rotating slice of details otherwise.
        full = (self.passes == 1 or self._gitlab.tree_key != hash(tree)
                or (self.resyncs and self.resyncs % max(1, self.config.gitlab_full_every) == 0
                    and result.trigger == "resync"))
        depth = "full" if full else "shape"
        deep = None
        if domains is not None and self._gitlab.tree_key is not None and not self._gitlab.failed:
            roots = [g.full_path for g in tree.groups if g.kind == "Domain" and g.path in domains]
            depth = "shape"
            deep = lambda path: any(path == r or path.startswith(r + "/")  # noqa: E731
                                    for r in roots)
        try:
            report = self._call_gitlab(tree, depth, deep)
        except Exception as err:  # the adapter reports GitLab errors; anything else is a bug
            log.exception("GitLab sync crashed")
            self._gitlab.failed = True
            self._gitlab.errors = {Ref("ControlPlane", self.config.system_namespace, "*"): str(err)}
            self.metrics.errors.labels("gitlab").inc()
            return
        result.gitlab, result.gitlab_ran = report, True
        self._gitlab.last_report = report
        for change in report.results:
            self.metrics.gitlab_changes.labels(change.change.action, change.status).inc()
        self._gitlab.errors = gitlab_errors(report, tree, self.config.system_namespace)
        self._gitlab.failed = not report.ok
        if report.ok:
            self._gitlab.tree_key = hash(tree)
        else:
            self.metrics.errors.labels("gitlab").inc()

    def _call_gitlab(self, tree: GitLabTree, depth: str, deep: Callable[[str], bool] | None = None):
        from konfig import gitlab as adapter

        if self._gitlab_reconcile is not None:
            extra = {"deep": deep} if deep is not None else {}
            return self._gitlab_reconcile(tree, depth=depth, deep_round=self.resyncs, **extra)
        if self._gitlab_client is None:
            settings = adapter.GitLabSettings(
                url=self.config.gitlab_url or "", token=self.config.gitlab_token,
                retry=adapter.RetryPolicy(attempts=self.config.gitlab_retry_attempts),
                requests_per_minute=self.config.gitlab_requests_per_minute)
            self._gitlab_client = (settings, adapter.connect(settings))
        settings, client = self._gitlab_client
        return adapter.reconcile(client, tree, depth=depth, deep_round=self.resyncs,
                                 settings=settings, deep=deep)

    def _remove_expired_grants(self) -> None:
        """Hook for temporary break-glass grants (konfig.kube.breakglass): delete expired ones."""
        remove = self._expire_grants
        if remove is None:
            try:
                from konfig.kube.breakglass import remove_expired_grants as remove
            except ImportError:  # the break-glass module is optional
                return
        try:
            reports = remove(self.client.api, system_namespace=self.config.system_namespace,
                             now=datetime.now(timezone.utc))
        except Exception as err:  # noqa: BLE001 - never let housekeeping fail a pass
            log.warning("removing expired break-glass grants failed: %s", err)
            self.metrics.errors.labels("break-glass").inc()
            return
        if reports:
            log.info("removed %d expired break-glass grant(s)", len(reports))

    # -- status and events ---------------------------------------------------------------------

    def _write_statuses(self, view: ClusterView, refs: list[Ref],
                        children: dict[Ref, Children], kube: KubeReport,
                        result: PassResult) -> None:
        """Status and Events of the units' resources, as :mod:`.decide` decides them."""
        system = self.config.system_namespace
        changes: dict[Ref, list] = {}
        for r in kube.changed + kube.failed:
            ref = responsible(r.obj, system)
            if ref is not None:
                changes.setdefault(ref, []).append(r)
        usage = template_usage(view.definitions)
        jobs = []
        stalled = 0
        for ref in refs:
            resource = view.resources[ref]
            for event in change_events(ref, changes.get(ref, [])):
                self.events.emit(resource, event.type, event.reason, event.message)
            chosen = verdict(view, ref, children.get(ref, Children()),
                             gitlab_on=bool(self.config.gitlab_url),
                             gitlab_seen=self._gitlab.last_report is not None,
                             gitlab_errors=self._gitlab.errors, usage=usage,
                             system_namespace=system)
            stalled += chosen.stalled[0]
            jobs.append((ref, resource, chosen))
        with ThreadPoolExecutor(max_workers=max(1, self.config.workers)) as pool:
            list(pool.map(lambda job: self._write_status(*job, result), jobs))
        self.metrics.stalled.set(stalled)
        if result.gitlab_ran:
            self._gitlab_events(view, result.gitlab)

    def _write_status(self, ref: Ref, resource: dict[str, Any], verdict: Verdict,
                      result: PassResult, event_type: str | None = None) -> None:
        patch = status_patch(resource, verdict, now_rfc3339())
        if ready_transition(resource, verdict):
            ready, reason, message = verdict.ready
            kind = event_type or ("Normal" if ready or not verdict.stalled[0] else "Warning")
            if reason in ("ApplyFailed", "GitLabSyncFailed", "Conflict", "InvalidDefinitions",
                          "Orphaned"):
                kind = "Warning"
            self.events.emit(resource, kind, reason, message or reason)
        if patch is None:
            return
        try:
            updated = self.client.patch(self.client.kinds.get(API_VERSION, ref.kind),
                                        ref.namespace, ref.name, patch, subresource="status",
                                        field_manager=OPERATOR_MANAGER)
            resource["status"] = updated.get("status")
            with self._lock:
                result.status_writes += 1
        except KubeError as err:
            if not err.not_found:
                log.warning("status of %s not written: %s", ref, err)
                self.metrics.errors.labels("status").inc()

    def _gitlab_events(self, view: ClusterView, report: Any) -> None:
        cp = next((r for ref, r in view.resources.items() if ref.kind == "ControlPlane"
                   and ref not in view.deleting), None)
        if cp is None or report is None:
            return
        if report.error:
            self.events.emit(cp, "Warning", "GitLabSyncFailed", report.error[:1000])
            return
        done = [r for r in report.results if r.status == "done"]
        if done:
            self.events.emit(cp, "Normal", "GitLabSynced", (f"{len(done)} change(s): " + "; ".join(
                r.describe() for r in done[:8]))[:1000])
        if report.failed:
            self.events.emit(cp, "Warning", "GitLabSyncFailed", "; ".join(
                r.describe() for r in report.failed[:5])[:1000])

    def _count(self, kube: KubeReport) -> None:
        for r in kube.results:
            if r.action in (CREATED, UPDATED):
                self.metrics.applied.labels(r.action).inc()
            elif r.action == DELETED:
                self.metrics.pruned.labels("abandon" if r.abandoned else "delete").inc()


def gitlab_errors(report: Any, tree: GitLabTree, system_namespace: str) -> dict[Ref, str]:
    """GitLab failures by the resource whose group they concern (a failure to observe at all
    concerns every group)."""
    owners: dict[str, Ref] = {}
    for group in tree.groups:
        name = group.path
        owners[group.full_path.lower()] = Ref(group.kind, system_namespace, name)
    errors: dict[Ref, str] = {}
    if report.error:
        return {ref: report.error for ref in owners.values()}
    for failure in report.failed:
        path = failure.change.path.lower()
        ref = owners.get(path)
        while ref is None and "/" in path:
            path = path.rsplit("/", 1)[0]
            ref = owners.get(path)
        if ref is not None:
            errors.setdefault(ref, failure.describe())
    return errors


def _compiled_part(defs: Definitions, units: list[str]) -> Definitions:
    """The definitions a pass over ``units`` compiles: validated with the whole frame (names
    and project IDs are unique across domains), but compiled with only the domains of the
    units and of the workloads in their scope (callers, callees), so a domain's pass compiles
    a few domains whatever their number. Every unit but the control plane's."""
    if CONTROL_PLANE in units:
        return defs
    needed = {d for u in units if (d := domain_of_unit(u))} | {d for d, _ in defs.workloads}
    return replace(defs, domains={n: d for n, d in defs.domains.items() if n in needed})


def _count_not_ready(report: KubeReport, system_namespace: str) -> int:
    return children_of(report, system_namespace)[1]


__all__ = ["FINALIZER", "EventSink", "PassResult", "Reconciler", "UnitResult"]
