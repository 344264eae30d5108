"""The words every adapter's plans and reports use, as enumerations (``StrEnum``: each member
equals its lower-case string, so reports serialise to plain JSON and old string comparisons
keep working).

* :class:`Planned`: what a plan will do to one object (Kubernetes objects, GitLab groups and
  projects alike);
* :class:`Done`: what happened to it when the plan ran (or, in a dry run, what would).
"""

from __future__ import annotations

from enum import StrEnum


class Planned(StrEnum):
    CREATE = "create"
    UPDATE = "update"
    UNCHANGED = "unchanged"
    DELETE = "delete"
    CONFLICT = "conflict"  #: the name is held by an object that is not Konfig's
    WAIT = "wait"  #: the live object is being deleted; created again once gone
    KEEP = "keep"  #: not desired, but kept (a reason says why)
    ARCHIVE = "archive"  #: GitLab projects are archived, never deleted
    RESTORE = "restore"
    UNARCHIVE = "unarchive"
    MOVE = "move"


class Done(StrEnum):
    CREATED = "created"
    UPDATED = "updated"
    UNCHANGED = "unchanged"
    DELETED = "deleted"
    FAILED = "failed"
    CONFLICT = "conflict"
    WAITING = "waiting"
    KEPT = "kept"
    PLANNED = "planned"  #: a dry run: nothing written
    SKIPPED = "skipped"  #: a change it depends on failed
    UNSUPPORTED = "unsupported"  #: the instance lacks the feature


#: The outcome of carrying out each planned operation successfully.
OUTCOME_OF = {
    Planned.CREATE: Done.CREATED, Planned.UPDATE: Done.UPDATED,
    Planned.UNCHANGED: Done.UNCHANGED, Planned.DELETE: Done.DELETED,
    Planned.CONFLICT: Done.CONFLICT, Planned.WAIT: Done.WAITING, Planned.KEEP: Done.KEPT,
}

__all__ = ["Done", "OUTCOME_OF", "Planned"]
