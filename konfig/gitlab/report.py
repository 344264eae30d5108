"""What one reconcile pass did: per-change results, notes, request counts, timing."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from konfig.gitlab.plan import Change, Plan

PLANNED = "planned"


@dataclass(frozen=True)
class ChangeResult:
    """The fate of one :class:`~konfig.gitlab.plan.Change`: ``done``, ``failed``,
    ``skipped`` (a change it depends on failed), ``unsupported`` (the instance lacks the
    feature) or ``planned`` (dry run). ``message`` says why, or adds a remark."""

    change: Change
    status: str
    message: str = ""

    def describe(self) -> str:
        text = self.change.describe()
        return f"{text} [{self.message}]" if self.message else text


@dataclass
class SyncReport:
    """Outcome of :func:`konfig.gitlab.reconcile`.

    ``error`` is set when the pass could not even observe (for example the adopted parent group
    is missing); ``results`` then is empty. ``reads``/``writes`` count HTTP requests including
    retries (``None`` when the client was not made by :func:`konfig.gitlab.connect`).
    ``deep_read`` is how many managed objects had their links, variables or protections read.
    """

    url: str
    depth: str
    dry_run: bool
    plan: Plan = field(default_factory=Plan)
    results: list[ChangeResult] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    error: str | None = None
    reads: int | None = None
    writes: int | None = None
    retries: int | None = None
    throttled: int | None = None
    duration: float = 0.0
    groups_observed: int = 0
    projects_observed: int = 0
    deep_read: int = 0

    @property
    def ok(self) -> bool:
        """True when nothing failed (unsupported features are reported, not failures)."""
        return self.error is None and not self.failed

    @property
    def failed(self) -> list[ChangeResult]:
        return [r for r in self.results if r.status in ("failed", "skipped")]

    def by_status(self) -> Counter[str]:
        return Counter(r.status for r in self.results)

    def done(self, action: str | None = None) -> list[ChangeResult]:
        return [r for r in self.results
                if r.status == "done" and (action is None or r.change.action == action)]

    @property
    def created(self) -> list[ChangeResult]:
        return self.done("create")

    @property
    def updated(self) -> list[ChangeResult]:
        return [r for r in self.results if r.status == "done"
                and r.change.action in ("update", "delete", "restore", "unarchive", "move")]

    @property
    def archived(self) -> list[ChangeResult]:
        return self.done("archive")

    def summary(self) -> dict[str, Any]:
        """Counts for status conditions, metrics and the CLI's closing line."""
        return {
            "created": len(self.created), "updated": len(self.updated),
            "archived": len(self.archived), "failed": len(self.failed),
            "unsupported": self.by_status().get("unsupported", 0),
            "planned": self.by_status().get(PLANNED, 0),
            "reads": self.reads, "writes": self.writes, "retries": self.retries,
            "duration": round(self.duration, 3), "depth": self.depth, "dry_run": self.dry_run,
            "groups_observed": self.groups_observed,
            "projects_observed": self.projects_observed, "deep_read": self.deep_read,
            "error": self.error,
        }


#: How each GitLab plan action reads in ``konfig diff``: (op, deletion policy).
_DIFF_OPS = {"create": ("create", ""), "archive": ("delete", "archive"),
             "delete": ("delete", "delete"), "conflict": ("conflict", "")}


def as_changes(report: SyncReport):  # -> konfig.changes.ChangeSet
    """The GitLab adapter's dry-run plan (:func:`konfig.gitlab.reconcile` with
    ``dry_run=True``) in ``konfig diff``'s vocabulary: one change per planned write; archived
    projects are prunes with policy ``archive`` (GitLab projects are never deleted); variable
    values are never shown. Raises ``RuntimeError`` when the pass could not observe GitLab
    (``report.error``): an unreachable GitLab is an error, never an empty plan."""
    from konfig.changes import ChangeSet, ObjectChange

    if report.error:
        raise RuntimeError(report.error)
    out = ChangeSet(compared=["gitlab"], notes=list(report.notes))
    for change in report.plan.changes:
        op, policy = _DIFF_OPS.get(change.action, ("update", ""))
        detail = change.detail
        if change.kind == "variable":
            detail = ""  # values may be secrets; the key and scope are in the name
        reason = change.action if op == "update" and change.action != "update" else ""
        reason = "; ".join(t for t in (reason, detail) if t)
        out.changes.append(ObjectChange("gitlab", "gitlab", op, change.kind.replace("_", " "),
                                        "", change.target, reason=reason,
                                        policy=policy))  # type: ignore[arg-type]
    return out
