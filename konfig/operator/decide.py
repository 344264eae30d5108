"""The decision step of a reconcile pass: view + what the cluster reported -> statuses, Events
and the unit's outcome. Pure: no I/O (the executor, :mod:`konfig.operator.reconciler`,
reads, applies and writes what is decided here).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterable, Mapping

from konfig.definitions import Definitions
from konfig.errors import Problem
from konfig.kube.owners import Ref, responsible
from konfig.kube.sync import CONFLICT, CREATED, DELETED, FAILED, KEPT, UPDATED, WAITING, KubeReport
from konfig.operator.cluster import ClusterView, describe_problem
from konfig.operator.outcome import Outcome, Ready, Retry, Stalled, Waiting, combine
from konfig.operator.status import (
    Children,
    Verdict,
    child_readiness,
    verdict_for,
    verdict_progressing,
    verdict_ready,
    verdict_stalled,
)


@dataclass(frozen=True)
class Event:
    """A Kubernetes Event to post about one custom resource."""

    ref: Ref
    type: str  #: ``Normal`` or ``Warning``
    reason: str
    message: str


def held_verdict(view: ClusterView, ref: Ref) -> Verdict:
    """``Stalled`` for a held resource, with its own problems (a held ControlPlane, Platform,
    Domain or template is named in the problems of what waits for it)."""
    own = view.held.get(ref) or []
    text = "; ".join(_on_itself(p, ref) for p in own) or (
        "not reconciled until the definitions are valid: "
        + "; ".join(view.problem_texts()[:5]))
    return verdict_stalled("InvalidDefinitions", text)


def _on_itself(problem: Problem, ref: Ref) -> str:
    """A problem as the resource's own status says it: ``field: message`` when it is about
    the resource itself (its name is the status's subject already)."""
    loc = problem.location
    if loc.file != str(ref):
        return describe_problem(problem)
    return f"{loc.field}: {problem.message}" if loc.field else problem.message


def stalled_verdicts(view: ClusterView, refs: Iterable[Ref], system_namespace: str
                     ) -> dict[Ref, Verdict]:
    """Verdicts when nothing renders (no valid ControlPlane): every resource Stalled."""
    problems = view.problem_texts() or [
        f"no ControlPlane resource in namespace {system_namespace!r}"]
    out = {}
    for ref in refs:
        if ref in view.orphans:
            out[ref] = verdict_stalled("Orphaned", view.orphans[ref])
        elif ref in view.deleting:
            out[ref] = verdict_stalled("InvalidDefinitions",
                                       "deletion waits until the definitions are valid: "
                                       + "; ".join(problems))
        elif view.held.get(ref):
            out[ref] = held_verdict(view, ref)
        else:
            out[ref] = verdict_stalled("InvalidDefinitions", "; ".join(problems))
    return out


def children_of(report: KubeReport, system_namespace: str) -> tuple[dict[Ref, Children], int]:
    """Each resource's children after a pass (live where known), and how many are not ready."""
    children: dict[Ref, Children] = {}
    not_ready = 0
    for r in report.results:
        ref = responsible(r.obj, system_namespace)
        if ref is None:
            continue
        bucket = children.setdefault(ref, Children())
        if r.action == FAILED:
            bucket.failures.append(r.describe())
        elif r.action == CONFLICT:
            bucket.conflicts.append(r.describe())
        if r.action not in (DELETED, KEPT) and r.live is not None:
            bucket.objects.append(r.live)
            if not child_readiness(r.live)[0]:
                not_ready += 1
        elif r.action in (FAILED, CONFLICT, WAITING):
            bucket.objects.append(r.obj)
            not_ready += 1
    return children, not_ready


def verdict(view: ClusterView, ref: Ref, kids: Children, *, gitlab_on: bool,
            gitlab_seen: bool, gitlab_errors: Mapping[Ref, str], usage: Mapping[str, int],
            system_namespace: str) -> Verdict:
    """The verdict of one resource of a unit that was reconciled."""
    if ref in view.orphans:
        return verdict_stalled("Orphaned", view.orphans[ref])
    if ref in view.deleting:
        return verdict_progressing("Deleting", "pruning children (stateful ones are "
                                   "abandoned, GitLab projects archived)")
    if ref in view.held:
        return held_verdict(view, ref)
    extra: dict[str, Any] = {}
    gitlab_error = None
    if ref.kind in ("ControlPlane", "Platform", "Domain") and gitlab_on:
        gitlab_error = gitlab_errors.get(ref) or gitlab_errors.get(
            Ref("ControlPlane", system_namespace, "*"))
        if gitlab_seen or gitlab_error:
            extra["gitlab"] = {"synced": gitlab_error is None,
                               **({"message": gitlab_error[:1000]} if gitlab_error else {})}
    if ref.kind == "Workload":
        image = _image(view, ref)
        if image:
            extra["image"] = image
    if ref.kind == "ResourceTemplate":
        return verdict_ready(f"accepted; used by {usage.get(ref.name, 0)} workload resource(s)")
    return verdict_for(kids, gitlab_error=gitlab_error, extra=extra)


def _image(view: ClusterView, ref: Ref) -> str | None:
    place = view.instances.get(ref)
    if not place or view.definitions is None:
        return None
    workload = view.definitions.workload_in(*place)
    if workload is None:
        return None
    try:
        return workload.spec_for(place[2]).image
    except Exception:  # noqa: BLE001 - reported by the compiler already
        return workload.spec.image


def change_events(ref: Ref, results: list) -> list[Event]:
    """Events for what a pass changed among one resource's children."""
    applied = [r for r in results if r.action in (CREATED, UPDATED)]
    deleted = [r for r in results if r.action == DELETED]
    failed = [r for r in results if r.action in (FAILED, CONFLICT)]
    events = []
    if applied or deleted:
        counts = [f"{action} {n}" for action in (CREATED, UPDATED, DELETED)
                  if (n := sum(1 for r in results if r.action == action))]
        abandoned = [r for r in deleted if r.abandoned]
        message = ", ".join(counts)
        if abandoned:
            message += (f" ({len(abandoned)} deleted with deletion-policy abandon: their "
                        "cloud resources are kept)")
        message += ": " + "; ".join(r.describe() for r in (applied + deleted)[:8])
        events.append(Event(ref, "Normal", "Applied", message[:1000]))
    if failed:
        events.append(Event(ref, "Warning", "ApplyFailed",
                            "; ".join(r.describe() for r in failed[:5])[:1000]))
    return events


def unit_outcome(view: ClusterView, refs: Iterable[Ref], report: KubeReport | None,
                 not_ready: int, gitlab_failed: bool, error: str | None = None) -> Outcome:
    """The outcome of one unit's pass: :class:`Retry` on an error or failed writes,
    :class:`Waiting` while children are not ready or something is being deleted,
    :class:`Stalled` when some of its resources are held, else :class:`Ready`."""
    refs = list(refs)
    parts: list[Outcome] = []
    if error:
        parts.append(Retry(error))
    if report is not None and not report.ok:
        parts.append(Retry("; ".join(r.describe() for r in report.failed[:3])))
    if gitlab_failed:
        parts.append(Retry("GitLab sync failed"))
    if not_ready or (report is not None and report.waiting):
        parts.append(Waiting(f"{not_ready} children not ready"))
    if any(ref in view.deleting for ref in refs):
        parts.append(Waiting("deletion in progress"))
    held: list[Problem] = [p for ref in refs for p in view.held.get(ref, [])]
    if held or any(ref in view.held for ref in refs):
        parts.append(Stalled(tuple(held)))
    return combine(*parts) if parts else Ready()


def template_usage(defs: Definitions | None) -> dict[str, int]:
    """How many workload resources use each template."""
    usage: dict[str, int] = {}
    for workload in (defs.workloads.values() if defs else []):
        for request in workload.spec.resources:
            usage[request.template] = usage.get(request.template, 0) + 1
    return usage


__all__ = ["Event", "change_events", "children_of", "held_verdict", "stalled_verdicts",
           "template_usage", "unit_outcome", "verdict"]
