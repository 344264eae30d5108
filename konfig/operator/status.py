"""Status of Konfig custom resources: conditions, children, roll-ups. Pure.

Conditions follow the Kubernetes API conventions and kstatus
(https://github.com/kubernetes/community/blob/master/contributors/devel/sig-architecture/api-conventions.md#typical-status-properties,
https://github.com/kubernetes-sigs/cli-utils/blob/master/pkg/kstatus/README.md):

* ``Ready``: True when every child is applied and ready and (for groups) GitLab is in sync;
* ``Reconciling``: True while the operator is still working towards Ready (children not ready
  yet, a temporary failure being retried, a deletion in progress);
* ``Stalled``: True when no progress is possible without a human (invalid definitions, a name
  held by an object that is not Konfig's, an orphaned resource).

Each condition carries ``observedGeneration`` and keeps its ``lastTransitionTime`` while its
status does not change. A child's readiness is its own: Config Connector objects report a
``Ready`` condition (for the generation they observed) and ConfigConnectorContexts
``status.healthy``; other kinds are ready once applied.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Iterable

from konfig.kube.owners import Ref

CNRM_SUFFIX = ".cnrm.cloud.google.com"
CONDITION_TYPES = ("Ready", "Reconciling", "Stalled")
#: Longest message kept in a condition (metav1.Condition allows 32768 characters).
MAX_MESSAGE = 4000
#: Status fields the operator owns (others, e.g. ``breakGlass`` written by the CLI, are kept).
OWNED_FIELDS = ("observedGeneration", "conditions", "children", "readyChildren", "image",
                "gitlab")


def now_rfc3339() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def child_readiness(obj: dict[str, Any]) -> tuple[bool, str]:
    """Whether a child is ready, and why not. See the module doc for the rules."""
    group = obj.get("apiVersion", "").rpartition("/")[0]
    if not group.endswith(CNRM_SUFFIX):
        return True, ""
    status = obj.get("status") or {}
    if obj.get("kind") == "ConfigConnectorContext" and "healthy" in status:
        return bool(status["healthy"]), "" if status["healthy"] else "; ".join(status.get("errors") or [])
    ready = next((c for c in status.get("conditions") or [] if c.get("type") == "Ready"), None)
    if ready is None:
        return False, "waiting for Config Connector"
    generation = obj.get("metadata", {}).get("generation")
    observed = status.get("observedGeneration")
    if generation is not None and observed is not None and observed < generation:
        return False, "waiting for Config Connector to observe the latest change"
    if ready.get("status") != "True":
        return False, f"{ready.get('reason') or 'NotReady'}: {ready.get('message') or ''}".strip()
    return True, ""


@dataclass(frozen=True)
class Verdict:
    """The decided state of one resource: ``ready``/``reconciling``/``stalled`` as
    ``(status, reason, message)`` plus the extra status fields."""

    ready: tuple[bool, str, str]
    reconciling: tuple[bool, str, str]
    stalled: tuple[bool, str, str]
    extra: dict[str, Any] = field(default_factory=dict)


def verdict_stalled(reason: str, message: str, extra: dict[str, Any] | None = None) -> Verdict:
    return Verdict((False, reason, message), (False, reason, "no progress without a change"),
                   (True, reason, message), extra or {})


def verdict_progressing(reason: str, message: str, extra: dict[str, Any] | None = None) -> Verdict:
    return Verdict((False, reason, message), (True, reason, message), (False, reason, ""),
                   extra or {})


def verdict_ready(message: str, extra: dict[str, Any] | None = None) -> Verdict:
    return Verdict((True, "UpToDate", message), (False, "UpToDate", ""),
                   (False, "UpToDate", ""), extra or {})


@dataclass
class Children:
    """The live children of one resource after a pass."""

    objects: list[dict[str, Any]] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    conflicts: list[str] = field(default_factory=list)

    def counts(self) -> dict[str, int]:
        return dict(sorted(Counter(o["kind"] for o in self.objects).items()))

    def not_ready(self) -> list[str]:
        out = []
        for obj in self.objects:
            ok, why = child_readiness(obj)
            if not ok:
                meta = obj["metadata"]
                out.append(f"{obj['kind']} {meta.get('namespace', '')}/{meta['name']}: {why}")
        return out


def verdict_for(children: Children, *, gitlab_error: str | None = None,
                extra: dict[str, Any] | None = None) -> Verdict:
    """Roll up one resource's children (and its GitLab scope) into a :class:`Verdict`."""
    extra = {**(extra or {}), "children": children.counts()}
    not_ready = children.not_ready()
    extra["readyChildren"] = len(children.objects) - len(not_ready)
    total = len(children.objects)
    if children.conflicts:
        return verdict_stalled("Conflict", _join(children.conflicts), extra)
    if children.failures:
        return verdict_progressing("ApplyFailed", _join(children.failures), extra)
    if gitlab_error:
        return verdict_progressing("GitLabSyncFailed", gitlab_error, extra)
    if not_ready:
        return verdict_progressing(
            "ChildrenNotReady", f"{len(not_ready)} of {total} children not ready: "
            + _join(not_ready), extra)
    return verdict_ready(f"{total} children ready" if total else "nothing to render", extra)


def _join(lines: list[str], limit: int = 5) -> str:
    shown = "; ".join(lines[:limit])
    if len(lines) > limit:
        shown += f"; and {len(lines) - limit} more"
    return shown[:MAX_MESSAGE]


def conditions(previous: Iterable[dict[str, Any]], verdict: Verdict, generation: int | None,
               now: str) -> list[dict[str, Any]]:
    """The three conditions for ``verdict``, keeping each previous ``lastTransitionTime``
    whose status did not change."""
    before = {c.get("type"): c for c in previous or []}
    out = []
    for kind, (status, reason, message) in zip(
            CONDITION_TYPES, (verdict.ready, verdict.reconciling, verdict.stalled)):
        text = "True" if status else "False"
        old = before.get(kind) or {}
        condition = {
            "type": kind,
            "status": text,
            "reason": reason,
            "message": message[:MAX_MESSAGE],
            "lastTransitionTime": old.get("lastTransitionTime") if old.get("status") == text
            and old.get("lastTransitionTime") else now,
        }
        if generation is not None:
            condition["observedGeneration"] = generation
        out.append(condition)
    return out


def status_patch(resource: dict[str, Any], verdict: Verdict, now: str) -> dict[str, Any] | None:
    """The merge patch of ``resource``'s status for ``verdict``, or ``None`` when the status
    already says exactly that (so a pass that changes nothing writes nothing)."""
    live = resource.get("status") or {}
    generation = resource["metadata"].get("generation")
    wanted: dict[str, Any] = {
        "observedGeneration": generation,
        "conditions": conditions(live.get("conditions") or [], verdict, generation, now),
        **verdict.extra,
    }
    if generation is None:
        wanted.pop("observedGeneration")
    patch: dict[str, Any] = {}
    for key in OWNED_FIELDS:
        if key in wanted:
            if live.get(key) != wanted[key]:
                patch[key] = _merge_value(live.get(key), wanted[key])
        elif key in live:
            patch[key] = None
    return {"status": patch} if patch else None


def _merge_value(live: Any, wanted: Any) -> Any:
    """For maps, a JSON merge patch value that also removes keys no longer wanted."""
    if isinstance(wanted, dict) and isinstance(live, dict):
        return {**{k: None for k in live if k not in wanted}, **wanted}
    return wanted


def ready_transition(resource: dict[str, Any], verdict: Verdict) -> bool:
    """Whether ``verdict`` changes the Ready condition's status or reason (worth an Event)."""
    old = next((c for c in (resource.get("status") or {}).get("conditions") or []
                if c.get("type") == "Ready"), None)
    status, reason, message = verdict.ready
    if old is None:
        return True
    return (old.get("status") == "True") != status or old.get("reason") != reason or (
        not status and old.get("message") != message[:MAX_MESSAGE] and reason != "ChildrenNotReady")


def by_responsible(objects: Iterable[dict[str, Any]], responsible) -> dict[Ref, list[dict[str, Any]]]:
    """Group objects by the resource responsible for them (``responsible(obj) -> Ref``)."""
    out: dict[Ref, list[dict[str, Any]]] = {}
    for obj in objects:
        ref = responsible(obj)
        if ref is not None:
            out.setdefault(ref, []).append(obj)
    return out
