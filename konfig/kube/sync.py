"""The Kubernetes adapter: observe -> diff -> apply -> report.

:func:`reconcile_objects` makes the cluster hold exactly the desired objects of one control
plane: it lists what is there (:func:`observe`), plans (:func:`konfig.kube.diff.plan`), applies
with server-side apply as field manager ``konfig`` and prunes what is no longer desired
(:func:`execute`), and returns a :class:`KubeReport` with one :class:`ObjectResult` per object.
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from itertools import groupby
from typing import Any, Callable, Iterable

from konfig.compile import apply_order
from konfig.compile.state import LABEL_CONTROL_PLANE, SYSTEM_NAMESPACE, KubeObject, object_key
from konfig.kube.client import KubeClient, KubeError
from konfig.kube.diff import KUBERNETES_DEFAULTS, Action, Key, KubePlan, plan
from konfig.kube.kinds import CORE_KINDS, KindInfo, shipped_kcc_crds, storage_kind_of_crd
from konfig.vocabulary import OUTCOME_OF, Done

#: Outcomes of one object in a pass (the shared vocabulary, konfig.vocabulary).
CREATED, UPDATED, UNCHANGED, DELETED = Done.CREATED, Done.UPDATED, Done.UNCHANGED, Done.DELETED
FAILED, CONFLICT, WAITING, KEPT = Done.FAILED, Done.CONFLICT, Done.WAITING, Done.KEPT
_PLANNED = {str(op): outcome for op, outcome in OUTCOME_OF.items()}
#: Core kinds Konfig renders, always checked for pruning.
_CORE_RENDERED = ("Namespace", "ServiceAccount", "Service", "Deployment", "RoleBinding",
                  "HorizontalPodAutoscaler", "PodDisruptionBudget", "NetworkPolicy")


@dataclass(frozen=True)
class ObjectResult:
    """What happened to one object: ``action`` is one of created, updated, unchanged, deleted,
    failed, conflict, waiting, kept. ``obj`` is the desired object (or the live one for
    deletions), ``live`` the object as the server returned or listed it (``None`` when unknown
    or deleted). ``abandoned``: a deletion that keeps the cloud resource."""

    key: Key
    action: Done
    obj: KubeObject
    message: str = ""
    abandoned: bool = False
    live: KubeObject | None = None

    def describe(self) -> str:
        _, kind, namespace, name = self.key
        text = f"{self.action} {kind} {namespace + '/' if namespace else ''}{name}"
        if self.abandoned:
            text += " (abandoned: the cloud resource is kept)"
        return f"{text}: {self.message}" if self.message else text


@dataclass
class KubeReport:
    """Outcome of one pass. ``dry_run`` passes write nothing; their results are what would
    happen. ``notes`` are remarks that are not failures (kinds that could not be listed for
    pruning, say)."""

    results: list[ObjectResult] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    dry_run: bool = False
    duration: float = 0.0

    def of(self, *actions: str) -> list[ObjectResult]:
        return [r for r in self.results if r.action in actions]

    @property
    def failed(self) -> list[ObjectResult]:
        return self.of(FAILED, CONFLICT)

    @property
    def changed(self) -> list[ObjectResult]:
        return self.of(CREATED, UPDATED, DELETED)

    @property
    def ok(self) -> bool:
        return not self.failed

    @property
    def waiting(self) -> bool:
        return bool(self.of(WAITING))

    def counts(self) -> dict[str, int]:
        counts = {a: 0 for a in (CREATED, UPDATED, UNCHANGED, DELETED, FAILED, CONFLICT)}
        for result in self.results:
            counts[result.action] = counts.get(result.action, 0) + 1
        return counts


def prune_kinds(client: KubeClient) -> list[KindInfo]:
    """Kinds checked for Konfig objects to prune, beyond those desired now: the core kinds
    Konfig renders and every Config Connector kind it ships a CRD for (so removing the last
    object of a kind still prunes it)."""
    kinds = [k for k in CORE_KINDS if k.kind in _CORE_RENDERED]
    kinds += [storage_kind_of_crd(crd) for crd in shipped_kcc_crds()]
    return [k for k in kinds if client.kinds.knows(k.api_version, k.kind)]


def observe(client: KubeClient, desired_kinds: Iterable[KindInfo], other_kinds: Iterable[KindInfo],
            control_plane: str, *, workers: int = 8, selector: str | None = None,
            required: Iterable[KindInfo] = ()) -> tuple[dict[Key, KubeObject], list[str]]:
    """List the live objects: every object of ``desired_kinds`` (so names taken by objects
    that are not Konfig's are seen), and the control plane's objects of ``other_kinds``
    (label selector). Returns objects by key and notes on kinds that could not be listed
    (forbidden or not served), which are skipped for pruning. Raises :class:`KubeError` when
    a desired kind (or one of ``required``) cannot be listed. ``selector`` replaces the
    control-plane label selector of ``other_kinds``."""
    desired = sorted(set(desired_kinds), key=lambda k: (k.group, k.kind))
    seen = {(k.group, k.kind) for k in desired}
    others = []
    for info in sorted(set(other_kinds), key=lambda k: (k.group, k.kind, k.version)):
        if (info.group, info.kind) not in seen:  # one version per kind: same objects
            seen.add((info.group, info.kind))
            others.append(info)
    selector = selector or f"{LABEL_CONTROL_PLANE}={control_plane}"
    must = set(desired) | set(required)

    def read(job: tuple[KindInfo, bool]) -> tuple[KindInfo, list[KubeObject] | KubeError]:
        info, labelled = job
        try:
            return info, client.list(info, label_selector=selector if labelled else None)
        except KubeError as err:
            return info, err

    observed: dict[Key, KubeObject] = {}
    notes: list[str] = []
    jobs = [(k, False) for k in desired] + [(k, True) for k in others]
    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        for info, outcome in pool.map(read, jobs):
            if isinstance(outcome, KubeError):
                if info in must:
                    raise outcome
                notes.append(f"cannot list {info.kind} ({info.api_version}) to prune it: {outcome}")
                continue
            for obj in outcome:
                observed[object_key(obj)] = obj
    return observed, notes


def observe_scoped(client: KubeClient, desired: Iterable[KubeObject], kinds: Iterable[KindInfo],
                   control_plane: str, *, selector: str = "", workers: int = 8,
                   lookup_limit: int = 2, namespace_limit: int = 8
                   ) -> tuple[dict[Key, KubeObject], list[str]]:
    """List only the objects of part of a control plane (one or a few reconcile units): each
    kind of ``kinds`` and of ``desired`` with the label selector
    ``konfig-control-plane=<control_plane>[,<selector>]``. A desired object not found that way
    is looked up by name, so a name held by an object that is not Konfig's is still seen: one
    GET per object when a kind misses at most ``lookup_limit`` objects (a change), else one
    unselected list of that kind per namespace when they are in at most ``namespace_limit``
    namespaces (a new domain), else one unselected list of the kind (a cold start). Returns objects by key (the unselected
    reads add only objects whose key is desired) and notes on kinds that could not be listed.
    Raises :class:`KubeError` when a desired kind cannot be read."""
    desired = list(desired)
    wanted_kinds = {client.kinds.of(obj) for obj in desired}
    label = f"{LABEL_CONTROL_PLANE}={control_plane}" + (f",{selector}" if selector else "")
    observed, notes = observe(client, (), {*kinds, *wanted_kinds}, control_plane,
                              workers=workers, selector=label, required=wanted_kinds)
    missing: dict[KindInfo, list[KubeObject]] = {}
    for obj in desired:
        if object_key(obj) not in observed:
            missing.setdefault(client.kinds.of(obj), []).append(obj)
    wanted = {object_key(o) for o in desired}

    jobs: list[tuple[KindInfo, str | None, list[KubeObject]]] = []
    for info, objs in missing.items():
        namespaces = sorted({o["metadata"].get("namespace") or "" for o in objs})
        if len(objs) <= lookup_limit:
            jobs += [(info, None, [o]) for o in objs]
        elif info.namespaced and len(namespaces) <= namespace_limit:
            jobs += [(info, ns, []) for ns in namespaces]
        else:
            jobs.append((info, None, []))

    def look(job: tuple[KindInfo, str | None, list[KubeObject]]) -> list[KubeObject]:
        info, namespace, objs = job
        if objs:
            meta = objs[0]["metadata"]
            found = client.get(info, meta.get("namespace"), meta["name"])
            return [found] if found is not None else []
        return [o for o in client.list(info, namespace=namespace) if object_key(o) in wanted]

    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        for found in pool.map(look, jobs):
            for obj in found:
                observed[object_key(obj)] = obj
    return observed, notes


def execute(client: KubeClient, kube_plan: KubePlan, *, dry_run: bool = False,
            workers: int = 8, stage: Callable[[KubeObject], Any] | None = None) -> KubeReport:
    """Carry out ``kube_plan``: applies stage by stage (``stage(obj)``, default the apply
    order's rank; objects of one stage in parallel, so namespaces exist before what lives in
    them), then deletions. With ``dry_run`` nothing is written and the results say what would
    happen."""
    stage = stage or (lambda obj: apply_order(obj)[0])
    started = time.monotonic()
    report = KubeReport(dry_run=dry_run)
    passive = [a for a in kube_plan.actions if a.op not in ("create", "update", "delete")]
    for action in passive:
        report.results.append(ObjectResult(
            action.key, _PLANNED[action.op], action.obj, action.reason,
            live=action.live if action.op in ("unchanged", "keep") else None))
    if dry_run:
        report.results += [ObjectResult(a.key, _PLANNED[a.op], a.obj, a.reason, a.abandons)
                           for a in kube_plan.actions if a.op in ("create", "update", "delete")]
        report.duration = time.monotonic() - started
        return report
    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        applies = kube_plan.applies
        for _, batch in groupby(applies, key=lambda a: stage(a.obj)):
            report.results += pool.map(lambda a: _apply(client, a), list(batch))
        deletes = kube_plan.deletes
        namespaces = [a for a in deletes if a.key[1] == "Namespace" and a.key[0] == ""]
        rest = [a for a in deletes if a not in namespaces]
        report.results += pool.map(lambda a: _delete(client, a), rest)
        failed_ns = {r.key[2] for r in report.results if r.action == FAILED and r.key[2]}
        for action in namespaces:
            if action.key[3] in failed_ns:  # known only now: the plan expected it to go
                report.results.append(ObjectResult(action.key, KEPT, action.obj,
                                                   "an object in it could not be deleted"))
            else:
                report.results.append(_delete(client, action))
    report.duration = time.monotonic() - started
    return report


def settle_namespaces(client: KubeClient, kube_plan: KubePlan, control_plane: str) -> KubePlan:
    """Decide, before anything is written, which planned Namespace deletions go ahead: a
    namespace holding an object that is not this control plane's (and not being deleted) is
    kept, since deleting it would delete that object. This reads the namespace across every
    kind Konfig knows (one list per kind, only for namespaces the plan deletes), so a dry run
    and a real run decide alike."""
    actions = []
    for action in kube_plan.actions:
        if action.op == "delete" and action.key[1] == "Namespace" and action.key[0] == "":
            blocker = _foreign_object_in(client, action.key[3], control_plane)
            if blocker:
                action = Action("keep", action.key, action.obj,
                                f"holds {blocker}, which is not Konfig's", action.live)
        actions.append(action)
    return KubePlan(actions)


def _foreign_object_in(client: KubeClient, namespace: str, control_plane: str) -> str | None:
    """An object in ``namespace`` that is not this control plane's and not being deleted
    (deleting the namespace would delete it), among every kind Konfig knows; ``None`` if
    there is none."""
    from konfig.model import API_VERSION

    kinds = [k for k in prune_kinds(client) if k.namespaced]
    kinds.append(client.kinds.get(API_VERSION, "Workload"))
    for info in kinds:
        try:
            items = client.list(info, namespace=namespace)
        except KubeError:
            continue
        for item in items:
            meta = item["metadata"]
            mine = (meta.get("labels") or {}).get(LABEL_CONTROL_PLANE) == control_plane
            if not mine and not meta.get("deletionTimestamp") and (
                    info.kind, meta["name"]) not in KUBERNETES_DEFAULTS:
                return f"{info.kind} {meta['name']}"
    return None


def _apply(client: KubeClient, action: Action) -> ObjectResult:
    try:
        live = client.apply(action.obj)
    except KubeError as err:
        return ObjectResult(action.key, FAILED, action.obj, f"apply failed: {err}")
    return ObjectResult(action.key, _PLANNED[action.op], action.obj, action.reason, live=live)


def _delete(client: KubeClient, action: Action) -> ObjectResult:
    meta = action.obj["metadata"]
    try:
        info = client.kinds.of(action.obj)
        client.delete(info, meta.get("namespace"), meta["name"], uid=meta.get("uid"))
    except KubeError as err:
        if err.status == 403 and action.key[1] == "Namespace":
            return ObjectResult(action.key, KEPT, action.obj,
                                "not allowed to delete namespaces (chart value "
                                "rbac.deleteNamespaces); its Konfig objects were pruned")
        if err.conflict:  # the uid precondition failed: a newer object took the name
            return ObjectResult(action.key, KEPT, action.obj, "replaced meanwhile; left alone")
        return ObjectResult(action.key, FAILED, action.obj, f"delete failed: {err}")
    return ObjectResult(action.key, DELETED, action.obj, abandoned=action.abandons)


def reconcile_objects(client: KubeClient, desired: Iterable[KubeObject], control_plane: str, *,
                      prune: bool = True, dry_run: bool = False, workers: int = 8,
                      system_namespace: str = SYSTEM_NAMESPACE,
                      extra_kinds: Iterable[KindInfo] = (),
                      read: Callable[[KubeObject], bool] | None = None) -> KubeReport:
    """One pass over the cluster: observe, plan and execute. ``desired`` must be in apply order
    with ownerReferences set (see :mod:`konfig.kube.owners`). Raises :class:`KubeError` only
    when observation fails (nothing is planned from a partial view); write failures are in the
    report. ``read`` guards the prune: see :func:`konfig.kube.diff.plan`."""
    desired = list(desired)
    desired_kinds = {client.kinds.of(obj) for obj in desired}
    other = [*prune_kinds(client), *extra_kinds] if prune else []
    observed, notes = observe(client, desired_kinds, other, control_plane, workers=workers)
    kube_plan = settle_namespaces(client, plan(desired, observed, control_plane, prune=prune,
                                               system_namespace=system_namespace, read=read),
                                  control_plane)
    report = execute(client, kube_plan, dry_run=dry_run, workers=workers)
    report.notes = notes + report.notes
    return report


def live_objects(report: KubeReport) -> list[dict[str, Any]]:
    """The live form of every object Konfig keeps after a pass (for readiness roll-ups)."""
    return [r.live for r in report.results if r.live is not None and r.action != DELETED]
