"""One reconcile pass of a whole control plane, synchronous and independent of kopf.

A pass reads every Konfig custom resource, builds the definitions
(:mod:`konfig.operator.cluster`), and then:

1. invalid definitions: every resource gets ``Stalled=True`` with the problems, an Event, and
   *nothing is applied* (a partial desired state would prune what the invalid definitions
   stand for);
2. otherwise: compile (cached while the resources are unchanged), apply the children with
   ownerReferences and prune what is no longer desired (:mod:`konfig.kube.sync`), sync GitLab
   (:func:`konfig.gitlab.reconcile`; failures are reported and retried, they never hold the
   cluster side back), remove expired break-glass grants on resyncs;
3. write each resource's status (only when it changed) and Events for every change and failure;
4. release the finalizer of each resource being deleted once its children are pruned (stateless
   ones deleted, abandon-annotated ones abandoned) and, for groups, GitLab archived its projects.

A ControlPlane being deleted tears everything down the same way. :class:`PassResult` tells the
caller when to look again (children not ready yet, a failure to retry).
"""

from __future__ import annotations

import logging
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from typing import Any, Callable, Protocol

from konfig.compile import compile_definitions
from konfig.kube.facts import observe_facts
from konfig.pipeline import desired_state
from konfig.compile.state import DesiredState, GitLabTree
from konfig.definitions import Definitions
from konfig.errors import DefinitionError
from konfig.kube.client import KubeClient, KubeError
from konfig.kube.owners import Ref, responsible, with_owner
from konfig.kube.sync import (
    CONFLICT,
    CREATED,
    DELETED,
    FAILED,
    KEPT,
    UPDATED,
    KubeReport,
    reconcile_objects,
)
from konfig.model import API_VERSION
from konfig.operator.cluster import KINDS, ClusterView, build_view, describe_problem
from konfig.operator.config import OperatorConfig
from konfig.operator.metrics import Metrics
from konfig.operator.status import (
    Children,
    Verdict,
    child_readiness,
    now_rfc3339,
    ready_transition,
    status_patch,
    verdict_for,
    verdict_progressing,
    verdict_ready,
    verdict_stalled,
)

log = logging.getLogger("konfig.operator")

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
class PassResult:
    """Outcome of :meth:`Reconciler.reconcile`. ``requeue_after`` (seconds) when the pass
    should be followed soon (children not ready, something waiting); ``failed`` when a
    temporary failure should be retried with backoff; ``stalled`` when the definitions are
    invalid (only a change helps)."""

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

    @property
    def settled(self) -> bool:
        """Nothing left to do until the next change or resync."""
        return not (self.failed or self.not_ready or self.waiting)


@dataclass
class _GitLabState:
    tree_key: int | None = None  # hash of the tree last synced without failure
    failed: bool = False
    last_report: Any = None
    errors: dict[Ref, str] = field(default_factory=dict)


class Reconciler:
    """Reconciles one control-plane cluster. ``reconcile(trigger)`` runs one pass; calls must
    not overlap (the operator's loop runs them one at a time)."""

    def __init__(self, client: KubeClient, config: OperatorConfig, *,
                 events: EventSink | None = None, metrics: Metrics | None = None,
                 gitlab_reconcile: Callable[..., Any] | None = None,
                 expire_grants: Callable[..., Any] | None = None) -> None:
        self.client = client
        self.config = config
        self.events = events or LogEvents()
        self.metrics = metrics or Metrics()
        self._gitlab_reconcile = gitlab_reconcile
        self._gitlab_client = None
        self._expire_grants = expire_grants
        self._compiled: tuple[tuple, DesiredState] | None = None
        self._models: dict[tuple, Any] = {}  # parsed definitions, by resource and generation
        self._gitlab = _GitLabState()
        self._lock = threading.Lock()
        self.resyncs = 0
        self.passes = 0
        self.last: PassResult | None = None
        #: Called with the resources a pass read, before it writes (the loop's echo filter).
        self.on_read: Callable[[list[dict[str, Any]]], None] | None = None
        #: Called with the uid of each resource whose finalizer a pass released.
        self.on_release: Callable[[str], None] | None = None

    # -- the pass ----------------------------------------------------------------------------

    def reconcile(self, trigger: str = "change") -> PassResult:
        """One pass (see module doc). ``trigger``: ``startup``, ``change``, ``resync``,
        ``requeue`` or ``retry``; GitLab is synced on all but ``requeue``. Never raises for
        cluster or GitLab failures: they are in the result (``failed``)."""
        started = time.monotonic()
        result = PassResult(trigger)
        self.passes += 1
        if trigger == "resync":
            self.resyncs += 1
        try:
            self._pass(result)
        except KubeError as err:
            result.failed, result.error = True, f"cluster: {err}"
            self.metrics.errors.labels("kube").inc()
            log.warning("reconcile failed: %s", err)
        except Exception as err:  # noqa: BLE001 - a bug must not stop the operator: retry
            result.failed, result.error = True, f"{type(err).__name__}: {err}"
            self.metrics.errors.labels("internal").inc()
            log.exception("reconcile crashed; retrying with backoff")
        result.duration = time.monotonic() - started
        outcome = "stalled" if result.stalled else "failed" if result.failed else "ok"
        self.metrics.reconciles.labels(trigger, outcome).inc()
        self.metrics.duration.observe(result.duration)
        if outcome == "ok":
            self.metrics.last_success.set(time.time())
        self.last = result
        return result

    def _pass(self, result: PassResult) -> None:
        resources = self._read_resources()
        result.resources = len(resources)
        if self.on_read is not None:
            self.on_read(resources)
        view = build_view(resources, system_namespace=self.config.system_namespace,
                          library=self._library(), cache=self._models)
        self._models = {k: v for k, v in self._models.items()
                        if k[0] in view.resources}  # forget what is gone
        if not view.resources:
            return  # nothing defined yet: nothing to do, nothing to prune
        self._ensure_finalizers(view)
        if view.control_plane_deleting:
            self._teardown(view, result)
            return
        if view.control_plane is None or not view.valid:
            self._stall(view, result)
            return
        assert view.definitions is not None
        try:
            state = self._compile(view)
        except DefinitionError as err:
            view.problems = list(err.problems)
            self._stall(view, result)
            return
        uids = {ref: r["metadata"]["uid"] for ref, r in view.resources.items()
                if ref not in view.deleting}
        desired = [with_owner(o, uids, self.config.system_namespace) for o in state.kubernetes]
        read = set(view.resources)
        kube = reconcile_objects(self.client, desired, state.control_plane,
                                 workers=self.config.workers,
                                 system_namespace=self.config.system_namespace,
                                 read=lambda live: responsible(live, self.config.system_namespace)
                                 in read)
        result.kube = kube
        self._count(kube)
        if result.trigger != "requeue" or self._gitlab.failed:
            self._sync_gitlab(state.gitlab, result)
        if result.trigger in ("startup", "resync"):
            self._remove_expired_grants()
        self._write_statuses(view, state, kube, result)
        self._release_finalizers(view, kube)
        result.failed = result.failed or not kube.ok or self._gitlab.failed
        result.waiting = kube.waiting or bool(view.deleting)

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

    def _compile(self, view: ClusterView) -> DesiredState:
        """Compile, reusing the last result while no resource's generation and no observed
        fact (the Cloud Run URLs dependencies get) changed."""
        assert view.definitions is not None
        facts = observe_facts(self.client, view.definitions.control_plane.name)
        key = (tuple(sorted((str(ref), r["metadata"].get("uid"), r["metadata"].get("generation"))
                            for ref, r in view.resources.items()
                            if ref not in view.deleting and ref not in view.orphans)),
               tuple(sorted(facts.service_urls.items())))
        if self._compiled is not None and self._compiled[0] == key:
            return self._compiled[1]
        state = desired_state(view.definitions, facts)  # the pipeline validate and plan run
        self._compiled = (key, state)
        return state

    # -- finalizers ----------------------------------------------------------------------------

    def _ensure_finalizers(self, view: ClusterView) -> None:
        for ref, resource in view.resources.items():
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
                            gitlab_required: bool = True) -> None:
        """Drop the finalizer of every deleting resource none of whose children is left."""
        if kube is None or not kube.ok:
            return
        # Objects still desired, or that failed or wait, hold their owner back; objects kept by
        # policy (the system namespace, break-glass grants, a namespace holding objects that
        # are not Konfig's) do not.
        left = {responsible(r.obj, self.config.system_namespace)
                for r in kube.results if r.action not in (DELETED, KEPT)}
        for ref in view.deleting:
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

    def _stall(self, view: ClusterView, result: PassResult) -> None:
        result.stalled = True
        if view.control_plane is None:
            # No control plane, so nothing of theirs can be left to prune.
            self._release_finalizers(view, KubeReport(), gitlab_required=False)
        problems = view.problem_texts() or ["no ControlPlane resource in namespace "
                                            f"{self.config.system_namespace!r}"]
        log.warning("definitions are invalid; nothing applied: %s", "; ".join(problems))
        self.metrics.errors.labels("definitions").inc()
        for ref, resource in view.resources.items():
            own = [describe_problem(p) for p in view.problems if p.location.file == str(ref)]
            if ref in view.orphans:
                verdict = verdict_stalled("Orphaned", view.orphans[ref])
            elif ref in view.deleting:
                verdict = verdict_stalled("InvalidDefinitions",
                                          "deletion waits until the definitions are valid: "
                                          + "; ".join(problems))
            else:
                others = len(problems) - len(own)
                text = "; ".join(own) if own else ""
                if others > 0:
                    text += ("; " if text else "") + (
                        f"{others} problem(s) in other definitions, nothing is applied until "
                        "all are fixed: " + "; ".join(p for p in problems if p not in own))
                verdict = verdict_stalled("InvalidDefinitions", text)
            self._write_status(ref, resource, verdict, result, event_type="Warning")

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
        if self._compiled is not None:
            tree = self._compiled[1].gitlab
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

    def _sync_gitlab(self, tree: GitLabTree, result: PassResult) -> None:
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
        try:
            report = self._call_gitlab(tree, depth)
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

    def _call_gitlab(self, tree: GitLabTree, depth: str):
        from konfig import gitlab as adapter

        if self._gitlab_reconcile is not None:
            return self._gitlab_reconcile(tree, depth=depth, deep_round=self.resyncs)
        if self._gitlab_client is None:
            settings = adapter.GitLabSettings(
                url=self.config.gitlab_url or "", token=self.config.gitlab_token,
                retry=adapter.RetryPolicy(attempts=self.config.gitlab_retry_attempts))
            self._gitlab_client = (settings, adapter.connect(settings))
        settings, client = self._gitlab_client
        return adapter.reconcile(client, tree, depth=depth, deep_round=self.resyncs,
                                 settings=settings)

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

    def _write_statuses(self, view: ClusterView, state: DesiredState, kube: KubeReport,
                        result: PassResult) -> None:
        system = self.config.system_namespace
        children: dict[Ref, Children] = {}
        changes: dict[Ref, list] = {}
        not_ready = 0
        for r in kube.results:
            ref = responsible(r.obj, system)
            if ref is None:
                continue
            bucket = children.setdefault(ref, Children())
            if r.action in (CREATED, UPDATED, DELETED, FAILED, CONFLICT):
                changes.setdefault(ref, []).append(r)
            if r.action == FAILED:
                bucket.failures.append(r.describe())
            elif r.action == CONFLICT:
                bucket.conflicts.append(r.describe())
            if r.action not in (DELETED,) and r.action != "kept" and r.live is not None:
                bucket.objects.append(r.live)
                if not child_readiness(r.live)[0]:
                    not_ready += 1
            elif r.action in (FAILED, CONFLICT, "waiting"):
                bucket.objects.append(r.obj)
                not_ready += 1
        result.not_ready = not_ready
        self.metrics.not_ready.set(not_ready)
        self.metrics.managed.set(len(state.kubernetes))
        usage = _template_usage(view.definitions)
        stalled = 0
        jobs = []
        for ref, resource in view.resources.items():
            self._events_for_changes(resource, changes.get(ref, []))
            verdict = self._verdict(ref, resource, view, children.get(ref, Children()), usage)
            stalled += verdict.stalled[0]
            jobs.append((ref, resource, verdict))
        with ThreadPoolExecutor(max_workers=max(1, self.config.workers)) as pool:
            list(pool.map(lambda job: self._write_status(*job, result), jobs))
        self.metrics.stalled.set(stalled)
        if result.gitlab_ran:
            self._gitlab_events(view, result.gitlab)

    def _verdict(self, ref: Ref, resource: dict[str, Any], view: ClusterView,
                 kids: Children, usage: dict[str, int]) -> Verdict:
        if ref in view.orphans:
            return verdict_stalled("Orphaned", view.orphans[ref])
        if ref in view.deleting:
            return verdict_progressing("Deleting", "pruning children (stateful ones are "
                                       "abandoned, GitLab projects archived)")
        extra: dict[str, Any] = {}
        gitlab_error = None
        if ref.kind in ("ControlPlane", "Platform", "Domain") and self.config.gitlab_url:
            gitlab_error = self._gitlab.errors.get(ref) or self._gitlab.errors.get(
                Ref("ControlPlane", self.config.system_namespace, "*"))
            if self._gitlab.last_report is not None or gitlab_error:
                extra["gitlab"] = {"synced": gitlab_error is None,
                                   **({"message": gitlab_error[:1000]} if gitlab_error else {})}
        if ref.kind == "Workload":
            place = view.instances.get(ref)
            if place and view.definitions is not None:
                workload = view.definitions.workload_in(*place)
                if workload is not None:
                    try:
                        image = workload.spec_for(place[2]).image
                    except Exception:  # noqa: BLE001 - reported by the compiler already
                        image = workload.spec.image
                    if image:
                        extra["image"] = image
        if ref.kind == "ResourceTemplate":
            used = usage.get(ref.name, 0)
            return verdict_ready(f"accepted; used by {used} workload resource(s)")
        return verdict_for(kids, gitlab_error=gitlab_error, extra=extra)

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

    def _events_for_changes(self, resource: dict[str, Any], results: list) -> None:
        if not results:
            return
        applied = [r for r in results if r.action in (CREATED, UPDATED)]
        deleted = [r for r in results if r.action == DELETED]
        failed = [r for r in results if r.action in (FAILED, CONFLICT)]
        if applied or deleted:
            counts = []
            for action in (CREATED, UPDATED, DELETED):
                n = sum(1 for r in results if r.action == action)
                if n:
                    counts.append(f"{action} {n}")
            abandoned = [r for r in deleted if r.abandoned]
            message = ", ".join(counts)
            if abandoned:
                message += (f" ({len(abandoned)} deleted with deletion-policy abandon: their "
                            "cloud resources are kept)")
            message += ": " + "; ".join(r.describe() for r in (applied + deleted)[:8])
            self.events.emit(resource, "Normal", "Applied", message[:1000])
        if failed:
            self.events.emit(resource, "Warning", "ApplyFailed",
                             "; ".join(r.describe() for r in failed[:5])[:1000])

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


def _template_usage(defs: Definitions | None) -> dict[str, int]:
    usage: dict[str, int] = {}
    for workload in (defs.workloads.values() if defs else []):
        for request in workload.spec.resources:
            usage[request.template] = usage.get(request.template, 0) + 1
    return usage


__all__ = ["FINALIZER", "EventSink", "PassResult", "Reconciler"]
