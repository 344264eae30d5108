"""Break-glass against the control-plane cluster: create, list, revoke and expire the
IAMPolicyMember objects of time-bound grants (:mod:`konfig.breakglass` decides and builds
them), and record each grant, revocation and expiry on the object of its level (the Domain, the
Platform or the ControlPlane): an Event
(``BreakGlassGranted`` / ``BreakGlassRevoked`` / ``BreakGlassExpired``), the annotation
``konfig.dev/break-glass-last``, and a line appended to ``status.breakGlass`` through the status
subresource.

Config Connector turns each IAMPolicyMember into one conditional binding on the project's
allow policy, and removes the binding when the object is deleted.
https://cloud.google.com/config-connector/docs/reference/resource-docs/iam/iampolicymember
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import kubernetes.client
from kubernetes.client import ApiException

from konfig import breakglass as core
from konfig.breakglass import BreakGlassRefused, Grant, Level, State
from konfig.compile.state import LABEL_DOMAIN, SYSTEM_NAMESPACE
from konfig.kube.promote import (
    GROUP,
    PLURALS,
    VERSION,
    ClusterStateError,
    as_definition,
    get_or_none,
    post_event,
    read_control_plane,
    read_domain,
    retry_on_conflict,
)
from konfig.model import Platform

IAM_GROUP = "iam.cnrm.cloud.google.com"
IAM_VERSION = "v1beta1"
IAM_PLURAL = "iampolicymembers"
#: Field manager of the objects the CLI creates.
FIELD_MANAGER = "konfig-break-glass"
#: Who removes expired grants, in records, and the Events' reporting controller.
OPERATOR_ACTOR = "konfig-operator"
OPERATOR_CONTROLLER = "konfig.dev/operator"
CLI_CONTROLLER = "konfig.dev/cli"

_EVENTS = {
    "granted": (core.EVENT_GRANTED, "Grant"),
    "revoked": (core.EVENT_REVOKED, "Revoke"),
    "expired": (core.EVENT_EXPIRED, "Expire"),
}


@dataclass
class GrantReport:
    """What a request, revocation or expiry did: the grant, the IAMPolicyMember objects
    created or deleted (names), the Event's name, and warnings (e.g. a record that could not be
    written because the Domain is gone)."""

    grant: Grant
    state: State
    objects: list[str] = field(default_factory=list)
    event: str | None = None
    warnings: list[str] = field(default_factory=list)


def _custom(api_client: kubernetes.client.ApiClient) -> kubernetes.client.CustomObjectsApi:
    return kubernetes.client.CustomObjectsApi(api_client)


def request_grant(
    api_client: kubernetes.client.ApiClient,
    *,
    domain: str | None = None,
    environment: str | None = None,
    platform: str | None = None,
    level: Level = "domain",
    duration: str,
    reason: str,
    actor: str,
    now: datetime,
    groups: Sequence[str] | None = None,
    system_namespace: str = SYSTEM_NAMESPACE,
    dry_run: bool = False,
) -> GrantReport:
    """Grant the break-glass roles at ``level`` to its owner groups (or ``groups``, a subset)
    for ``duration``, starting ``now``, and record it. ``level`` ``domain``: on ``environment``
    of ``domain``; ``platform``: on the folder of ``platform``; ``controlplane``: on the
    control-plane project.

    Reads the ControlPlane, the Domain and its Platform from ``system_namespace``; creates one
    IAMPolicyMember per (group, role) there. If a create fails, the ones already created are
    deleted again so no partial grant stays. With ``dry_run`` nothing is written.

    Raises :class:`BreakGlassRefused` (see :data:`konfig.breakglass.RefusalCode`),
    :class:`ClusterStateError` (no ControlPlane or Domain, IAMPolicyMember not served) or
    ``ApiException``.
    """
    custom = _custom(api_client)
    control_plane, _ = read_control_plane(custom, system_namespace)
    domain_model = platform_model = None
    if level == "domain":
        if not domain:
            raise BreakGlassRefused("unknown-level", "a domain grant needs the domain's name")
        domain_model, _ = read_domain(custom, system_namespace, domain)
        platform_model = _platform(custom, system_namespace, domain_model.spec.platform)
    elif level == "platform":
        platform_model = _platform(custom, system_namespace, platform or "")
        if platform_model is None:
            raise BreakGlassRefused("unknown-level", f"there is no Platform {platform!r} in "
                                                     f"namespace {system_namespace}")
    grant = core.plan_grant(
        control_plane=control_plane, platform=platform_model, domain=domain_model,
        environment=environment, duration=duration, reason=reason, actor=actor, now=now,
        groups=groups, level=level,
    )
    objects = core.build_grant_objects(grant, namespace=system_namespace)
    report = GrantReport(grant, "granted", [o["metadata"]["name"] for o in objects])
    if dry_run:
        return report
    _create_all(custom, system_namespace, objects)
    _record(api_client, report, actor=actor, now=now, system_namespace=system_namespace,
            controller=CLI_CONTROLLER)
    return report


def _platform(custom: kubernetes.client.CustomObjectsApi, namespace: str, name: str) -> Platform | None:
    if not name:
        return None
    obj = get_or_none(custom.get_namespaced_custom_object, GROUP, VERSION, namespace,
                      PLURALS["Platform"], name)
    if obj is None:
        return None  # its owners are then unknown; the Domain's and ControlPlane's still count
    model = as_definition(obj)
    assert isinstance(model, Platform)
    return model


def _create_all(custom: kubernetes.client.CustomObjectsApi, namespace: str, objects: list[dict]) -> None:
    created: list[str] = []
    try:
        for obj in objects:
            try:
                custom.create_namespaced_custom_object(IAM_GROUP, IAM_VERSION, namespace, IAM_PLURAL,
                                                       obj, field_manager=FIELD_MANAGER)
            except ApiException as exc:
                if exc.status == 404:
                    raise ClusterStateError(
                        f"{IAM_GROUP}/{IAM_VERSION} IAMPolicyMember is not served in namespace "
                        f"{namespace}: is Config Connector installed?"
                    ) from None
                if exc.status != 409:  # 409: the same request was already made (same id)
                    raise
            created.append(obj["metadata"]["name"])
    except BaseException:
        _delete_all(custom, namespace, created)
        raise


def _delete_all(custom: kubernetes.client.CustomObjectsApi, namespace: str, names: Sequence[str]) -> None:
    for name in names:
        try:
            custom.delete_namespaced_custom_object(IAM_GROUP, IAM_VERSION, namespace, IAM_PLURAL, name)
        except ApiException as exc:
            if exc.status != 404:
                raise


def _member_objects(custom: kubernetes.client.CustomObjectsApi, namespace: str,
                    extra_selector: str = "") -> list[dict[str, Any]]:
    selector = f"{core.LABEL_BREAK_GLASS}=true" + (f",{extra_selector}" if extra_selector else "")
    try:
        found = custom.list_namespaced_custom_object(IAM_GROUP, IAM_VERSION, namespace, IAM_PLURAL,
                                                     label_selector=selector)
    except ApiException as exc:
        if exc.status == 404:
            raise ClusterStateError(
                f"{IAM_GROUP}/{IAM_VERSION} IAMPolicyMember is not served: is Config Connector installed?"
            ) from None
        raise
    return found.get("items") or []


def list_grants(
    api_client: kubernetes.client.ApiClient,
    *,
    domain: str | None = None,
    system_namespace: str = SYSTEM_NAMESPACE,
) -> list[Grant]:
    """Every break-glass grant in ``system_namespace`` (of ``domain`` only, if given), active
    and expired, sorted by expiry. Raises :class:`ClusterStateError` or ``ApiException``."""
    selector = f"{LABEL_DOMAIN}={domain}" if domain else ""
    return core.grants_from_objects(_member_objects(_custom(api_client), system_namespace, selector))


def revoke_grant(
    api_client: kubernetes.client.ApiClient,
    grant_id: str,
    *,
    actor: str,
    now: datetime,
    system_namespace: str = SYSTEM_NAMESPACE,
) -> GrantReport:
    """Delete every IAMPolicyMember of grant ``grant_id`` and record the revocation.

    Raises :class:`BreakGlassRefused` (``unknown-grant``) when no object has that id,
    :class:`ClusterStateError` or ``ApiException``."""
    custom = _custom(api_client)
    objects = _member_objects(custom, system_namespace, f"{core.LABEL_GRANT_ID}={grant_id}")
    grants = core.grants_from_objects(objects)
    if not grants:
        raise BreakGlassRefused("unknown-grant", f"there is no break-glass grant {grant_id!r}")
    return _remove(api_client, grants[0], "revoked", actor=actor, now=now,
                   system_namespace=system_namespace, controller=CLI_CONTROLLER)


def remove_expired_grants(
    api_client: kubernetes.client.ApiClient,
    *,
    system_namespace: str = SYSTEM_NAMESPACE,
    now: datetime,
    actor: str = OPERATOR_ACTOR,
    controller: str = OPERATOR_CONTROLLER,
) -> list[GrantReport]:
    """Delete the IAMPolicyMembers of every grant expired at ``now`` and record each expiry;
    for the operator's resync (and ``konfig break-glass revoke --expired``). Returns one
    report per removed grant (empty when none expired). ``actor`` and ``controller`` name who
    removes them in the records and Events.

    IAM already ignores these bindings after their expiry (their condition is false); removing
    them keeps allow policies small. Raises :class:`ClusterStateError` or ``ApiException``."""
    custom = _custom(api_client)
    grants = core.grants_from_objects(_member_objects(custom, system_namespace))
    return [
        _remove(api_client, grant, "expired", actor=actor, now=now,
                system_namespace=system_namespace, controller=controller)
        for grant in core.expired(grants, now)
    ]


def _remove(api_client: kubernetes.client.ApiClient, grant: Grant, state: State, *, actor: str,
            now: datetime, system_namespace: str, controller: str) -> GrantReport:
    _delete_all(_custom(api_client), system_namespace, grant.objects)
    report = GrantReport(grant, state, list(grant.objects))
    _record(api_client, report, actor=actor, now=now, system_namespace=system_namespace,
            controller=controller)
    return report


# --------------------------------------------------------------------------- records


def _record(api_client: kubernetes.client.ApiClient, report: GrantReport, *, actor: str,
            now: datetime, system_namespace: str, controller: str) -> None:
    """Event, annotation and status line on the object of the grant's level (Domain, Platform
    or ControlPlane). One that no longer exists (removed while a grant was active) gets no
    record: a warning says so."""
    custom = _custom(api_client)
    grant, state = report.grant, report.state
    try:
        domain = _annotate(custom, system_namespace, grant, state, actor)
        _append_status(custom, system_namespace, grant, state, actor, now)
    except ClusterStateError as exc:
        report.warnings.append(f"not recorded on the Domain: {exc}")
        return
    reason, action = _EVENTS[state]
    report.event, warning = post_event(
        api_client, domain, reason=reason, action=action, note=grant.describe(state, by=actor),
        now=now, controller=controller,
    )
    report.warnings += [warning] if warning else []


#: The Konfig kind each level's grants are recorded on.
_RECORD_KIND = {"domain": "Domain", "platform": "Platform", "controlplane": "ControlPlane"}


def _record_target(grant: Grant) -> tuple[str, str]:
    """``(kind, name)`` of the object a grant is recorded on."""
    kind = _RECORD_KIND[grant.level]
    name = {"domain": grant.domain, "platform": grant.platform,
            "controlplane": grant.control_plane}[grant.level]
    return kind, name


def _domain_args(system_namespace: str, grant: Grant) -> tuple[str, str, str, str, str]:
    kind, name = _record_target(grant)
    return GROUP, VERSION, system_namespace, PLURALS[kind], name


def _annotate(custom: kubernetes.client.CustomObjectsApi, system_namespace: str, grant: Grant,
              state: State, actor: str) -> dict[str, Any]:
    patch = {"metadata": {"annotations": {core.LAST_ANNOTATION: grant.describe(state, by=actor)}}}
    try:
        return custom.patch_namespaced_custom_object(*_domain_args(system_namespace, grant), patch,
                                                     field_manager=FIELD_MANAGER)
    except ApiException as exc:
        if exc.status == 404:
            kind, name = _record_target(grant)
            raise ClusterStateError(f"{kind} {name!r} no longer exists") from None
        raise


@retry_on_conflict
def _append_status(custom: kubernetes.client.CustomObjectsApi, system_namespace: str, grant: Grant,
                   state: State, actor: str, now: datetime) -> None:
    """Read-modify-write of ``status.breakGlass`` guarded by resourceVersion, so a line is
    never lost to a concurrent writer (409 retries the whole cycle)."""
    args = _domain_args(system_namespace, grant)
    domain = get_or_none(custom.get_namespaced_custom_object, *args)
    if domain is None:
        kind, name = _record_target(grant)
        raise ClusterStateError(f"{kind} {name!r} no longer exists")
    lines = core.append_status_line((domain.get("status") or {}).get("breakGlass"),
                                    grant.status_line(state, at=now, by=actor))
    patch = {"metadata": {"resourceVersion": domain["metadata"]["resourceVersion"]},
             "status": {"breakGlass": lines}}
    custom.patch_namespaced_custom_object_status(*args, patch, field_manager=FIELD_MANAGER)


__all__ = [
    "BreakGlassRefused",
    "ClusterStateError",
    "GrantReport",
    "list_grants",
    "remove_expired_grants",
    "request_grant",
    "revoke_grant",
]
