"""Break-glass, the pure core: decide a time-bound grant of the break-glass roles to the owner
groups of one level (a domain environment's project, a platform's folder, or the control-plane
project), build its Config Connector objects, read them back, and tell which have expired.

No I/O: :mod:`konfig.kube.breakglass` reads the ControlPlane, Platform and Domain objects,
calls :func:`plan_grant`, creates the objects of :func:`build_grant_objects`, and records every
grant, revocation and expiry on the object of that level (Domain, Platform or ControlPlane).

A grant is one ``IAMPolicyMember`` per (owner group, role), in ``konfig-system``, on the
level's ``Project`` or ``Folder`` object, with an IAM condition ``request.time < timestamp(...)``: Google
Cloud itself stops honouring the binding at the expiry, whether or not anything removes it
(https://cloud.google.com/iam/docs/conditions-attribute-reference#date-time). Removing expired
grants (``konfig break-glass revoke``, or the operator on resync) is housekeeping: it keeps the
project's allow policy small and the list of grants readable.

Owner groups: a role applies at the level where it is declared and everything below it
(spec/definitions.md, "Roles"), so the owners of a domain are the ``owner`` groups of the
Domain, of its Platform and of the ControlPlane; those of a platform, the Platform's and the
ControlPlane's; those of the control plane, its own. All of them get the break-glass roles
unless the request names a subset (``groups``).

Where the control plane sets ``spec.breakGlass.privilegedAccessManager``, the same levels carry
standing PAM entitlements instead (:mod:`konfig.compile.breakglass`) and a request is made to PAM
itself: :func:`plan_grant` then refuses with the ``gcloud pam grants create`` command to run.
"""

from __future__ import annotations

import hashlib
import re
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from konfig.compile.hierarchy import platform_folder_name, project_object_name
from konfig.compile.objects import konfig_labels, object_name, policy_member, role_slug
from konfig.compile.state import (
    LABEL_CONTROL_PLANE,
    LABEL_DOMAIN,
    LABEL_ENVIRONMENT,
    LABEL_PLATFORM,
    SYSTEM_NAMESPACE,
    KubeObject,
)
from konfig.definitions import Definitions
from konfig.model import ControlPlane, Domain, Platform
from konfig.model.controlplane import parse_duration
from konfig.validate import project_id_for

#: Labels of every break-glass object, besides the ``konfig-*`` ones. The operator must not
#: prune objects carrying :data:`LABEL_BREAK_GLASS`: they are not in the compiled desired state.
LABEL_BREAK_GLASS = "konfig-break-glass"
LABEL_GRANT_ID = "konfig-break-glass-id"
#: ``domain``, ``platform`` or ``controlplane``: the level a grant is made at.
LABEL_LEVEL = "konfig-break-glass-level"

#: Annotations of every break-glass object.
REQUESTED_BY = "konfig.dev/requested-by"
REASON = "konfig.dev/reason"
EXPIRES_AT = "konfig.dev/expires-at"
REQUESTED_AT = "konfig.dev/requested-at"
#: Annotation on the Domain: the last grant, revocation or expiry, in one line.
LAST_ANNOTATION = "konfig.dev/break-glass-last"

#: Event reasons, on the Domain object.
EVENT_GRANTED = "BreakGlassGranted"
EVENT_REVOKED = "BreakGlassRevoked"
EVENT_EXPIRED = "BreakGlassExpired"

#: ``status.breakGlass`` keeps this many lines, the newest last; older ones are dropped (the
#: Events and the cloud audit logs keep the longer history).
STATUS_HISTORY = 50
#: The IAM condition's description holds the reason, cut to this length.
CONDITION_DESCRIPTION_MAX = 256

#: Basic roles cannot be granted with an IAM condition: "You cannot use conditions when you
#: grant legacy basic roles, including Owner (roles/owner), Editor (roles/editor), and Viewer
#: (roles/viewer)". Source: https://cloud.google.com/iam/docs/conditions-overview
BASIC_ROLES = frozenset({"roles/owner", "roles/editor", "roles/viewer"})

PROJECT_API_VERSION = "resourcemanager.cnrm.cloud.google.com/v1beta1"
#: Entitlement ID of the PAM entitlements Konfig renders at every level (4-63 characters).
PAM_ENTITLEMENT_ID = "konfig-break-glass"
IAM_API_VERSION = "iam.cnrm.cloud.google.com/v1beta1"

_EXPIRY_IN_EXPRESSION = re.compile(r'request\.time < timestamp\("([^"]+)"\)')

RefusalCode = Literal[
    "no-reason",  # a grant needs a reason, for the audit trail
    "bad-duration",  # not a duration, or not positive
    "too-long",  # above the control plane's breakGlass.maxDuration
    "unknown-environment",  # not an environment of the control plane
    "not-in-domain",  # an environment the domain does not have
    "no-owner-groups",  # nobody to grant to
    "not-an-owner",  # a requested group is not an owner of the domain
    "basic-role",  # IAM refuses conditions on basic roles
    "unknown-grant",  # revoke: no objects with that id
    "unknown-level",  # no such platform, or a level the request cannot name
    "use-pam",  # the control plane uses Privileged Access Manager: request there
]

State = Literal["granted", "revoked", "expired"]
Level = Literal["domain", "platform", "controlplane"]


class BreakGlassRefused(Exception):
    """A break-glass request Konfig will not carry out. ``code`` names the rule
    (:data:`RefusalCode`); ``reason`` is a sentence for humans."""

    def __init__(self, code: RefusalCode, reason: str) -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason


@dataclass(frozen=True)
class Grant:
    """One break-glass grant: ``roles`` for ``groups`` at ``level`` from ``requested_at`` until
    ``expires_at`` (both UTC, whole seconds). ``level`` ``domain``: on ``project_id``, the
    project of ``environment`` of ``domain``; ``platform``: on the folder of ``platform``
    (``project_id`` is empty); ``controlplane``: on ``project_id``, the control-plane project.
    ``objects`` names its IAMPolicyMember objects and ``ready`` counts those Config Connector
    reports Ready, when read from the cluster."""

    id: str
    control_plane: str
    platform: str
    domain: str
    environment: str
    project_id: str
    groups: tuple[str, ...]
    roles: tuple[str, ...]
    reason: str
    requested_by: str
    requested_at: datetime
    expires_at: datetime
    level: Level = "domain"
    objects: tuple[str, ...] = field(default=(), compare=False)
    ready: int = field(default=0, compare=False)

    @property
    def resource_ref(self) -> dict[str, str]:
        """The Config Connector object (in ``konfig-system``) the bindings are made on."""
        if self.level == "platform":
            return {"apiVersion": PROJECT_API_VERSION, "kind": "Folder",
                    "name": platform_folder_name(self.platform)}
        return {"apiVersion": PROJECT_API_VERSION, "kind": "Project",
                "name": project_object_name(self.project_id)}

    @property
    def where(self) -> str:
        """Where the grant applies, for humans: ``prod (project acme-shop-prod)``."""
        if self.level == "platform":
            return f"platform {self.platform} (its folder)"
        if self.level == "controlplane":
            return f"control plane {self.control_plane} (project {self.project_id})"
        return f"{self.environment} (project {self.project_id})"

    def is_expired(self, now: datetime) -> bool:
        """Whether IAM no longer honours it at ``now`` (timezone-aware)."""
        return self.expires_at <= now

    def state(self, now: datetime) -> Literal["active", "expired"]:
        return "expired" if self.is_expired(now) else "active"

    @property
    def labels(self) -> dict[str, str]:
        """The ``konfig-*`` labels plus ``konfig-break-glass: "true"`` and the grant id."""
        labels = konfig_labels(self.control_plane, self.platform, self.domain, self.environment)
        return {**labels, LABEL_BREAK_GLASS: "true", LABEL_GRANT_ID: self.id, LABEL_LEVEL: self.level}

    @property
    def annotations(self) -> dict[str, str]:
        return {
            REQUESTED_BY: self.requested_by,
            REASON: self.reason,
            EXPIRES_AT: rfc3339(self.expires_at),
            REQUESTED_AT: rfc3339(self.requested_at),
        }

    def condition(self) -> dict[str, str]:
        """The IAM condition: valid while ``request.time`` is before the expiry.
        Source: https://cloud.google.com/iam/docs/conditions-attribute-reference#date-time"""
        return {
            "title": f"break-glass {self.id}",
            "description": self.reason[:CONDITION_DESCRIPTION_MAX],
            "expression": f'request.time < timestamp("{rfc3339(self.expires_at)}")',
        }

    def status_line(self, state: State, *, at: datetime, by: str) -> dict[str, Any]:
        """One line of the Domain's ``status.breakGlass``: the grant and what happened to it
        (``state``), when (``at``) and by whom (``by``)."""
        line = {
            "id": self.id,
            "env": self.environment,
            "groups": list(self.groups),
            "roles": list(self.roles),
            "expiresAt": rfc3339(self.expires_at),
            "requestedBy": self.requested_by,
            "reason": self.reason,
            "state": state,
            "at": rfc3339(at),
            "by": by,
        }
        if self.level != "domain":  # domain lines keep their original shape
            line = {"id": self.id, "level": self.level, **{k: v for k, v in line.items()
                                                          if k not in ("id", "env")}}
        return line

    def describe(self, state: State, *, by: str) -> str:
        """One sentence for the Domain's annotation and the Event's note."""
        what = {
            "granted": f"granted {', '.join(self.roles)} to {', '.join(self.groups)}",
            "revoked": f"revoked (granted to {', '.join(self.groups)})",
            "expired": f"expired (granted to {', '.join(self.groups)})",
        }[state]
        return (
            f"break-glass {self.id} on {self.where} {what} "
            f"until {rfc3339(self.expires_at)}, by {by}: {self.reason}"
        )[:1024]


def rfc3339(moment: datetime) -> str:
    """``2025-03-01T12:00:00Z``: UTC, whole seconds. Raises ``ValueError`` for a naive time."""
    if moment.tzinfo is None:
        raise ValueError("a timezone-aware datetime is required")
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_rfc3339(text: str) -> datetime:
    """Inverse of :func:`rfc3339` (accepts any ISO 8601 time with a zone). Raises
    ``ValueError``."""
    moment = datetime.fromisoformat(text)
    if moment.tzinfo is None:
        raise ValueError(f"{text!r} has no time zone")
    return moment.astimezone(UTC)


def owner_groups(control_plane: ControlPlane, platform: Platform | None, domain: Domain | None) -> list[str]:
    """Groups holding ``owner`` at a level: declared there or above (roles cascade
    downwards): the Domain, its Platform and the ControlPlane for a domain; the Platform and
    the ControlPlane for a platform (``domain`` None); the ControlPlane alone when both are
    None. Sorted, without duplicates."""
    levels = [control_plane.spec.groups, platform.spec.groups if platform else [],
              domain.spec.groups if domain else []]
    return sorted({g.group for groups in levels for g in groups if g.role == "owner"})


def grant_id(domain: str, environment: str, actor: str, requested_at: datetime, reason: str,
             level: str = "domain") -> str:
    """A short, stable id: ``bg-`` and 10 hex digits of a hash of the request (valid as a
    label value and in object names). ``domain`` is the platform's or control plane's name
    for grants at those levels."""
    head = "" if level == "domain" else f"{level}\n"
    text = f"{head}{domain}\n{environment}\n{actor}\n{requested_at.isoformat()}\n{reason}"
    return "bg-" + hashlib.sha256(text.encode()).hexdigest()[:10]


def plan_grant(
    *,
    control_plane: ControlPlane,
    platform: Platform | None,
    domain: Domain | None,
    environment: str | None,
    duration: str,
    reason: str,
    actor: str,
    now: datetime,
    groups: Sequence[str] | None = None,
    level: Level = "domain",
) -> Grant:
    """Decide a break-glass grant for ``duration`` (``"90m"``, ``"1h"``; see
    :func:`~konfig.model.controlplane.parse_duration`), starting at ``now`` (timezone-aware), at
    ``level``: ``domain`` (``environment`` of ``domain``, whose ``platform`` may be None when
    unknown), ``platform`` (``platform``'s folder) or ``controlplane`` (the control-plane
    project). ``groups`` narrows the grant to some of the level's owner groups.

    Returns the :class:`Grant`. Raises :class:`BreakGlassRefused` when the control plane uses
    Privileged Access Manager (``use-pam``, with the command to run), the reason is empty, the
    duration is not positive or longer than ``spec.breakGlass.maxDuration``, the environment is
    not the control plane's or not the domain's, the level has no owner group (or a requested
    group is not one), or a break-glass role is a basic role (IAM refuses conditions on those).
    """
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    if level == "domain" and (domain is None or environment is None):
        raise BreakGlassRefused("unknown-level", "a domain grant needs a domain and --env")
    if level == "platform" and platform is None:
        raise BreakGlassRefused("unknown-level", "a platform grant needs the platform")
    reason = reason.strip()
    if not reason:
        raise BreakGlassRefused("no-reason", "a reason is required (--reason): it is the audit trail")
    seconds = _duration_seconds(duration, control_plane)
    if level == "domain":
        assert domain is not None and environment is not None
        _check_environment(control_plane, domain, environment)
    else:
        domain, environment = None, None
        if level == "controlplane":
            platform = None
    if control_plane.spec.break_glass.privileged_access_manager:
        raise BreakGlassRefused("use-pam", _pam_instructions(control_plane, platform, domain,
                                                             environment, level, seconds, reason))
    chosen = _groups(control_plane, platform, domain, groups, level)
    roles = tuple(sorted(set(control_plane.spec.break_glass.roles)))
    basic = sorted(set(roles) & BASIC_ROLES)
    if basic:
        raise BreakGlassRefused(
            "basic-role",
            f"spec.breakGlass.roles of control plane {control_plane.name!r} has {', '.join(basic)}: "
            f"IAM cannot grant basic roles with a time condition "
            f"(https://cloud.google.com/iam/docs/conditions-overview); list predefined or custom "
            f"roles there instead",
        )
    requested_at = now.astimezone(UTC).replace(microsecond=0)
    name = {"domain": domain.name if domain else "", "platform": platform.name if platform else "",
            "controlplane": control_plane.name}[level]
    return Grant(
        id=grant_id(name, environment or "", actor, requested_at, reason, level),
        control_plane=control_plane.name,
        platform=(domain.spec.platform if domain else platform.name if platform else ""),
        domain=domain.name if domain else "",
        environment=environment or "",
        project_id=_project_of(control_plane, domain, environment, level),
        groups=tuple(chosen),
        roles=roles,
        reason=reason,
        requested_by=actor,
        requested_at=requested_at,
        expires_at=requested_at + timedelta(seconds=seconds),
        level=level,
    )


def control_plane_project_id(control_plane: ControlPlane) -> str:
    """The control-plane project's ID (``spec.gcp.projectId``, else ``<prefix><name>-cp``)."""
    from konfig.compile.naming import control_plane_project_id as default_id

    gcp = control_plane.spec.gcp
    return gcp.project_id or default_id(gcp.project_id_prefix, control_plane.name)


def _project_of(control_plane: ControlPlane, domain: Domain | None, environment: str | None,
                level: Level) -> str:
    if level == "controlplane":
        return control_plane_project_id(control_plane)
    if level == "platform" or domain is None or environment is None:
        return ""
    return project_id_for(Definitions(control_plane=control_plane), domain, environment)


def pam_entitlement(control_plane: ControlPlane, platform: str | None, domain: Domain | None,
                    environment: str | None, level: Level) -> tuple[str, str]:
    """``(gcloud scope flag, entitlement ID)`` of a level's PAM entitlement: ``--project=P`` or
    ``--folder=<the platform folder's number>`` (shown as a placeholder: only GCP knows it)."""
    if level == "platform":
        return f"--folder=<folder number of platform {platform}>", PAM_ENTITLEMENT_ID
    return f"--project={_project_of(control_plane, domain, environment, level)}", PAM_ENTITLEMENT_ID


def _pam_instructions(control_plane: ControlPlane, platform: Platform | None, domain: Domain | None,
                      environment: str | None, level: Level, seconds: int, reason: str) -> str:
    scope, entitlement = pam_entitlement(control_plane, platform.name if platform else None,
                                         domain, environment, level)
    justification = reason.replace('"', "'")
    return (
        f"control plane {control_plane.name!r} uses Privileged Access Manager "
        f"(spec.breakGlass.privilegedAccessManager): request the grant from PAM, which records and "
        f"expires it: gcloud pam grants create --entitlement={entitlement} --location=global "
        f"{scope} --requested-duration={seconds}s --justification=\"{justification}\""
    )


def _duration_seconds(duration: str, control_plane: ControlPlane) -> int:
    try:
        seconds = parse_duration(duration.strip())
    except ValueError as exc:
        raise BreakGlassRefused("bad-duration", f"--duration: {exc}") from None
    if seconds <= 0:
        raise BreakGlassRefused("bad-duration", f"--duration {duration!r} must be longer than zero")
    limit = control_plane.spec.break_glass
    if seconds > limit.max_seconds:
        raise BreakGlassRefused(
            "too-long",
            f"--duration {duration} is longer than control plane {control_plane.name!r} allows "
            f"(spec.breakGlass.maxDuration: {limit.max_duration})",
        )
    return seconds


def _check_environment(control_plane: ControlPlane, domain: Domain, environment: str) -> None:
    known = control_plane.environment_names
    if environment not in known:
        raise BreakGlassRefused(
            "unknown-environment",
            f"--env {environment!r} is not an environment of control plane {control_plane.name!r} "
            f"({', '.join(known)})",
        )
    ours = Definitions(control_plane=control_plane).domain_environments(domain)
    if environment not in ours:
        raise BreakGlassRefused(
            "not-in-domain",
            f"--env {environment!r}: domain {domain.name!r} has no such environment "
            f"(it has {', '.join(ours)})",
        )


def _level_name(control_plane: ControlPlane, platform: Platform | None, domain: Domain | None,
                level: Level) -> str:
    if level == "domain" and domain is not None:
        return f"domain {domain.name!r}"
    if level == "platform" and platform is not None:
        return f"platform {platform.name!r}"
    return f"control plane {control_plane.name!r}"


def _own_definition(control_plane: ControlPlane, platform: Platform | None, domain: Domain | None,
                    level: Level) -> str:
    """The definition (kind, name, and file:line when known) where the level's owners go."""
    owner = {"domain": domain, "platform": platform}.get(level) or control_plane
    where = owner.locate("spec.groups")
    place = f" ({where.file}:{where.line})" if where.line and not where.file.startswith(("cluster:", "<")) else ""
    return f"{owner.KIND} {owner.name!r}{place}"


_WHERE_DECLARED = {
    "domain": "on the Domain, its Platform or the ControlPlane",
    "platform": "on the Platform or the ControlPlane",
    "controlplane": "on the ControlPlane",
}


def _groups(control_plane: ControlPlane, platform: Platform | None, domain: Domain | None,
            wanted: Sequence[str] | None, level: Level = "domain") -> list[str]:
    owners = owner_groups(control_plane, platform, domain)
    what = _level_name(control_plane, platform, domain, level)
    if not owners:
        raise BreakGlassRefused(
            "no-owner-groups",
            f"{what} has no owner group ({_WHERE_DECLARED[level]}): add "
            f"`{{group: <email>, role: owner}}` to spec.groups of {_own_definition(control_plane, platform, domain, level)}",
        )
    if not wanted:
        return owners
    strangers = sorted(set(wanted) - set(owners))
    if strangers:
        raise BreakGlassRefused(
            "not-an-owner",
            f"{', '.join(strangers)} {'is' if len(strangers) == 1 else 'are'} not an owner of "
            f"{what} (owners: {', '.join(owners)})",
        )
    return sorted(set(wanted))


def member_name(grant: Grant, group: str, role: str) -> str:
    """Object name of the IAMPolicyMember of one (group, role) of ``grant``."""
    return object_name("break-glass", grant.id, role_slug(role), group.replace("@", "-at-"))


def build_grant(grant: Grant, group: str, role: str, *, namespace: str = SYSTEM_NAMESPACE) -> KubeObject:
    """The ``IAMPolicyMember`` granting ``role`` to ``group:<group>`` on the grant's Project
    or Folder object (:attr:`Grant.resource_ref`, in ``namespace``), under the grant's time
    condition.
    Schema: https://cloud.google.com/config-connector/docs/reference/resource-docs/iam/iampolicymember
    """
    return policy_member(
        member_name(grant, group, role),
        namespace=namespace,
        labels=grant.labels,
        annotations=grant.annotations,
        resource_ref=grant.resource_ref,
        role=role,
        member=f"group:{group}",
        condition=grant.condition(),
    )


def build_grant_objects(grant: Grant, *, namespace: str = SYSTEM_NAMESPACE) -> list[KubeObject]:
    """Every IAMPolicyMember of ``grant``: one per (group, role), sorted by name."""
    objects = [build_grant(grant, g, r, namespace=namespace) for g in grant.groups for r in grant.roles]
    return sorted(objects, key=lambda o: o["metadata"]["name"])


def is_break_glass(obj: KubeObject) -> bool:
    """Whether ``obj`` is part of a break-glass grant (the operator must not prune it)."""
    return ((obj.get("metadata") or {}).get("labels") or {}).get(LABEL_BREAK_GLASS) == "true"


def grants_from_objects(objects: Iterable[KubeObject]) -> list[Grant]:
    """The grants that ``objects`` (IAMPolicyMembers read from the cluster) make up, grouped by
    their grant-id label, sorted by expiry then id. Objects without the break-glass labels are
    ignored. An expiry that cannot be read (annotation nor condition) counts as already past,
    so such a grant is removed rather than kept forever."""
    by_id: dict[str, list[KubeObject]] = defaultdict(list)
    for obj in objects:
        labels = (obj.get("metadata") or {}).get("labels") or {}
        if is_break_glass(obj) and labels.get(LABEL_GRANT_ID):
            by_id[labels[LABEL_GRANT_ID]].append(obj)
    grants = [_grant_of(gid, members) for gid, members in by_id.items()]
    return sorted(grants, key=lambda g: (g.expires_at, g.id))


def _grant_of(gid: str, members: list[KubeObject]) -> Grant:
    members = sorted(members, key=lambda o: o["metadata"]["name"])
    first = members[0]
    labels = first["metadata"].get("labels") or {}
    notes = first["metadata"].get("annotations") or {}
    specs = [m.get("spec") or {} for m in members]
    epoch = datetime(1970, 1, 1, tzinfo=UTC)
    ref = specs[0].get("resourceRef") or {}
    level = labels.get(LABEL_LEVEL, "domain")
    if level not in ("domain", "platform", "controlplane"):
        level = "domain"
    return Grant(
        id=gid,
        control_plane=labels.get(LABEL_CONTROL_PLANE, ""),
        platform=labels.get(LABEL_PLATFORM, ""),
        domain=labels.get(LABEL_DOMAIN, ""),
        environment=labels.get(LABEL_ENVIRONMENT, ""),
        project_id=ref.get("name", "") if ref.get("kind", "Project") == "Project" else "",
        groups=tuple(sorted({s.get("member", "").removeprefix("group:") for s in specs} - {""})),
        roles=tuple(sorted({s.get("role", "") for s in specs} - {""})),
        reason=notes.get(REASON, ""),
        requested_by=notes.get(REQUESTED_BY, ""),
        requested_at=_time(notes.get(REQUESTED_AT)) or epoch,
        expires_at=_time(notes.get(EXPIRES_AT)) or _expiry_of_condition(specs) or epoch,
        level=level,
        objects=tuple(m["metadata"]["name"] for m in members),
        ready=sum(1 for m in members if _is_ready(m)),
    )


def _time(text: str | None) -> datetime | None:
    try:
        return parse_rfc3339(text) if text else None
    except ValueError:
        return None


def _expiry_of_condition(specs: list[dict[str, Any]]) -> datetime | None:
    times = []
    for spec in specs:
        match = _EXPIRY_IN_EXPRESSION.search((spec.get("condition") or {}).get("expression", ""))
        parsed = _time(match.group(1)) if match else None
        if parsed is not None:
            times.append(parsed)
    return min(times) if times else None


def _is_ready(obj: KubeObject) -> bool:
    conditions = (obj.get("status") or {}).get("conditions") or []
    return any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions)


def expired(grants: Iterable[Grant], now: datetime) -> list[Grant]:
    """The grants whose expiry is at or before ``now`` (timezone-aware), in input order."""
    return [g for g in grants if g.is_expired(now)]


def append_status_line(lines: Sequence[dict[str, Any]] | None, line: dict[str, Any]) -> list[dict[str, Any]]:
    """``status.breakGlass`` with ``line`` appended, keeping the newest :data:`STATUS_HISTORY`."""
    return [*(lines or []), line][-STATUS_HISTORY:]

