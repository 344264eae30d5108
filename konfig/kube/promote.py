"""Release promotion against the control-plane cluster: observe the ControlPlane, the Domain and
the Workloads of two environments, let the core decide (:func:`konfig.promotion.plan_promotion`),
apply the decision to the target Workload, and record it (annotations and an Event).

Uses the real ``kubernetes`` client: ``CustomObjectsApi`` for the ``konfig.dev`` objects and
``EventsV1Api`` (events.k8s.io/v1) for Events. Also home to the small cluster helpers the
break-glass adapter shares (reading definitions, posting Events, building a client).

The writes need, on the target domain-environment namespace: ``get``/``create``/``patch`` on
``workloads.konfig.dev`` and ``create`` on ``events.k8s.io`` events; in ``konfig-system``,
``list`` on controlplanes and ``get`` on domains; ``list`` on workloads cluster-wide only when
the domain is inferred.
"""

from __future__ import annotations

import copy
import os
import socket
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import kubernetes.client
import kubernetes.config
from kubernetes.client import ApiException
from tenacity import retry, retry_if_exception, stop_after_attempt

from konfig.compile import naming
from konfig.compile.state import SYSTEM_NAMESPACE
from konfig.errors import DefinitionError
from konfig.kube import crds
from konfig.load import parse_definition
from konfig.model import ControlPlane, Definition, Domain
from konfig.promotion import (
    EVENT_ACTION,
    EVENT_REASON,
    FIELD_MANAGER,
    Promotion,
    PromotionRefused,
    domain_environments,
    Release,
    infer_domain,
    plan_promotion,
    plan_release_promotion,
)

GROUP = crds.GROUP
VERSION = crds.VERSION
PLURALS = {kind: names.plural for kind, names in crds.NAMES.items()}

#: ``reportingController`` of the Events the CLI posts (events.k8s.io/v1 wants a qualified name).
CLI_CONTROLLER = "konfig.dev/cli"


class ClusterStateError(Exception):
    """The cluster lacks what the command needs (no ControlPlane, an unknown Domain, a
    definition that does not validate, an API that is not served)."""


# --------------------------------------------------------------------------- shared helpers


def api_client_from(kubeconfig: str | None = None, context: str | None = None) -> kubernetes.client.ApiClient:
    """A client for the cluster of ``kubeconfig`` (default ``$KUBECONFIG``, which may list
    several files, then ``~/.kube/config``) and ``context`` (default: its current context);
    inside a Pod without any kubeconfig, the Pod's service account. Raises
    ``kubernetes.config.ConfigException``."""
    # $KUBECONFIG is read here, not by the library (which reads it once, at import time).
    config_file = kubeconfig or os.environ.get("KUBECONFIG") or None
    try:
        return kubernetes.config.new_client_from_config(config_file=config_file, context=context)
    except kubernetes.config.ConfigException:
        if config_file or context:
            raise
        configuration = kubernetes.client.Configuration()
        try:
            kubernetes.config.load_incluster_config(client_configuration=configuration)
        except kubernetes.config.ConfigException:
            raise kubernetes.config.ConfigException(
                "no kubeconfig (--kubeconfig, $KUBECONFIG, ~/.kube/config) and not running in a Pod"
            ) from None
        return kubernetes.client.ApiClient(configuration)


def get_or_none(call, *args: Any) -> dict[str, Any] | None:
    """``call(*args)``, or None when the API answers 404."""
    try:
        return call(*args)
    except ApiException as exc:
        if exc.status == 404:
            return None
        raise


def as_definition(obj: dict[str, Any]) -> Definition:
    """The validated model of a Konfig object read from the cluster (server-set metadata and
    status dropped). Raises :class:`ClusterStateError` if it does not validate."""
    meta = obj.get("metadata") or {}
    document = {
        "apiVersion": obj.get("apiVersion"),
        "kind": obj.get("kind"),
        "metadata": {k: meta[k] for k in ("name", "labels", "annotations") if meta.get(k)},
        "spec": copy.deepcopy(obj.get("spec") or {}),
    }
    where = f"cluster:{meta.get('namespace', '')}/{obj.get('kind')}/{meta.get('name')}"
    try:
        return parse_definition(document, file=where)
    except DefinitionError as exc:
        raise ClusterStateError(f"{where} is not a valid definition:\n{exc}") from None


def read_control_plane(custom: kubernetes.client.CustomObjectsApi, namespace: str) -> tuple[ControlPlane, dict]:
    """The one ControlPlane of ``namespace`` (model and object). Raises
    :class:`ClusterStateError` when there is none or more than one."""
    try:
        found = custom.list_namespaced_custom_object(GROUP, VERSION, namespace, PLURALS["ControlPlane"])
    except ApiException as exc:
        if exc.status == 404:
            raise ClusterStateError(
                f"{GROUP} ControlPlanes are not served by this cluster: is Konfig installed?"
            ) from None
        raise
    items = found.get("items") or []
    if len(items) != 1:
        names = ", ".join(i["metadata"]["name"] for i in items) or "none"
        raise ClusterStateError(f"expected one ControlPlane in namespace {namespace}, found {names}")
    model = as_definition({**items[0], "kind": "ControlPlane", "apiVersion": f"{GROUP}/{VERSION}"})
    assert isinstance(model, ControlPlane)
    return model, items[0]


def read_domain(custom: kubernetes.client.CustomObjectsApi, namespace: str, name: str) -> tuple[Domain, dict]:
    """The Domain ``name`` of ``namespace`` (model and object). Raises
    :class:`ClusterStateError` when it does not exist or does not validate."""
    obj = get_or_none(custom.get_namespaced_custom_object, GROUP, VERSION, namespace, PLURALS["Domain"], name)
    if obj is None:
        raise ClusterStateError(f"there is no Domain {name!r} in namespace {namespace}")
    model = as_definition(obj)
    assert isinstance(model, Domain)
    return model, obj


def post_event(
    api_client: kubernetes.client.ApiClient,
    regarding: dict[str, Any],
    *,
    reason: str,
    action: str,
    note: str,
    now: datetime,
    controller: str = CLI_CONTROLLER,
    event_type: str = "Normal",
) -> tuple[str | None, str | None]:
    """Post an events.k8s.io/v1 Event about ``regarding`` (an object as read from the API) in
    its namespace. Returns ``(event name, None)``, or ``(None, warning)`` when the caller may
    not create Events (403): the change it reports is already made and also recorded in
    annotations, so a missing permission must not turn it into a failure.
    Shape: https://kubernetes.io/docs/reference/kubernetes-api/cluster-resources/event-v1/"""
    meta = regarding["metadata"]
    event = kubernetes.client.EventsV1Event(
        metadata=kubernetes.client.V1ObjectMeta(generate_name=f"{meta['name']}-"),  # a trailing '.' is invalid
        event_time=now,
        reporting_controller=controller,
        reporting_instance=f"{controller.rsplit('/', 1)[-1]}@{socket.gethostname()}"[:128],
        action=action,
        reason=reason,
        type=event_type,
        note=note[:1024],
        regarding=kubernetes.client.V1ObjectReference(
            api_version=regarding.get("apiVersion"),
            kind=regarding.get("kind"),
            name=meta["name"],
            namespace=meta.get("namespace"),
            uid=meta.get("uid"),
            resource_version=meta.get("resourceVersion"),
        ),
    )
    try:
        created = kubernetes.client.EventsV1Api(api_client).create_namespaced_event(meta["namespace"], event)
    except ApiException as exc:
        if exc.status == 403:
            return None, f"could not post the {reason} Event (forbidden): {exc.reason}"
        raise
    return created.metadata.name, None


def _is_conflict(exc: BaseException) -> bool:
    return isinstance(exc, ApiException) and exc.status == 409


#: Retries a read-decide-write cycle when someone else wrote in between (HTTP 409).
retry_on_conflict = retry(
    retry=retry_if_exception(_is_conflict), stop=stop_after_attempt(5), reraise=True
)


# --------------------------------------------------------------------------- promotion


@dataclass(frozen=True)
class PromotionInputs:
    """What :func:`plan_promotion` needs, as observed in the cluster."""

    control_plane: ControlPlane
    domain: Domain
    source: dict[str, Any] | None
    target: dict[str, Any] | None


@dataclass
class PromotionReport:
    """What a promotion did: the decision, whether it was written (``applied``; False for a
    dry run or when nothing changed), the resulting Workload, the Event's name, and warnings."""

    promotion: Promotion
    applied: bool = False
    workload: dict[str, Any] | None = None
    event: str | None = None
    warnings: list[str] = field(default_factory=list)


def observe(
    api_client: kubernetes.client.ApiClient,
    *,
    workload: str,
    to_environment: str,
    from_environment: str | None = None,
    domain: str | None = None,
    system_namespace: str = SYSTEM_NAMESPACE,
) -> PromotionInputs:
    """Read the ControlPlane and Domain (from ``system_namespace``) and the Workload
    ``workload`` in the source and target environments' namespaces. Without ``domain``, it is
    inferred from the Workloads of that name cluster-wide.

    Raises :class:`ClusterStateError` and, when the domain cannot be inferred,
    :class:`PromotionRefused`. Environment names are checked by the core, not here: an
    unknown one simply yields a missing Workload.
    """
    custom = kubernetes.client.CustomObjectsApi(api_client)
    control_plane, _ = read_control_plane(custom, system_namespace)
    if domain is None:
        domain = infer_domain(workload, _workloads_named(custom, workload))
    domain_model, _ = read_domain(custom, system_namespace, domain)
    envs = control_plane.environment_names
    if from_environment is None and to_environment in envs:
        ours = domain_environments(control_plane, domain_model)
        position = ours.index(to_environment) if to_environment in ours else 0
        from_environment = ours[position - 1] if position > 0 else None

    def workload_in(env: str | None) -> dict[str, Any] | None:
        if env is None or env not in envs:
            return None
        namespace = naming.namespace_name(domain, env)
        return get_or_none(custom.get_namespaced_custom_object, GROUP, VERSION, namespace,
                           PLURALS["Workload"], workload)

    return PromotionInputs(control_plane, domain_model, workload_in(from_environment),
                           workload_in(to_environment))


def _workloads_named(custom: kubernetes.client.CustomObjectsApi, name: str) -> list[dict[str, Any]]:
    found = custom.list_cluster_custom_object(
        GROUP, VERSION, PLURALS["Workload"], field_selector=f"metadata.name={name}"
    )
    return [w for w in found.get("items") or [] if w["metadata"]["name"] == name]


def apply_promotion(api_client: kubernetes.client.ApiClient, promotion: Promotion, *,
                    controller: str = CLI_CONTROLLER) -> PromotionReport:
    """Write ``promotion``: create the target Workload or merge-patch its ``spec.image`` and
    annotations (field manager ``konfig-promote``), then post a ``Promoted`` Event on it.
    Nothing is written when the target already asks for the image.

    Raises ``ApiException`` (409 when the target changed since it was read: observe again)."""
    report = PromotionReport(promotion)
    if not promotion.changed:
        return report
    custom = kubernetes.client.CustomObjectsApi(api_client)
    args = (GROUP, VERSION, promotion.target_namespace, PLURALS["Workload"])
    if promotion.create:
        written = custom.create_namespaced_custom_object(*args, promotion.new_object(),
                                                         field_manager=FIELD_MANAGER)
    else:
        written = custom.patch_namespaced_custom_object(*args, promotion.workload, promotion.merge_patch(),
                                                        field_manager=FIELD_MANAGER)
    report.applied, report.workload = True, written
    report.event, warning = post_event(
        api_client, written, reason=EVENT_REASON, action=EVENT_ACTION, note=promotion.event_note(),
        now=promotion.at, controller=controller,
    )
    report.warnings += [warning] if warning else []
    return report


def promote(
    api_client: kubernetes.client.ApiClient,
    *,
    workload: str,
    to_environment: str,
    actor: str,
    now: datetime,
    from_environment: str | None = None,
    domain: str | None = None,
    system_namespace: str = SYSTEM_NAMESPACE,
    dry_run: bool = False,
) -> PromotionReport:
    """Observe, decide and apply one promotion (see the module docstring). With ``dry_run``,
    decide only. A concurrent change of the target (409) is retried from observation.

    Raises :class:`PromotionRefused`, :class:`ClusterStateError` or ``ApiException``."""

    @retry_on_conflict
    def attempt() -> PromotionReport:
        inputs = observe(api_client, workload=workload, to_environment=to_environment,
                         from_environment=from_environment, domain=domain,
                         system_namespace=system_namespace)
        promotion = plan_promotion(
            control_plane=inputs.control_plane, domain=inputs.domain, workload=workload,
            to_environment=to_environment, from_environment=from_environment,
            source=inputs.source, target=inputs.target, actor=actor, now=now,
        )
        return PromotionReport(promotion) if dry_run else apply_promotion(api_client, promotion)

    return attempt()


def apply_release_promotion(api_client: kubernetes.client.ApiClient, promotion: Promotion, *,
                            controller: str = CLI_CONTROLLER) -> PromotionReport:
    """Write a release promotion: server-side apply (field manager ``konfig-promote``, forced:
    the release owns the spec) of the commit's Workload into the target namespace, then a
    ``Promoted`` Event. Nothing is written when the target already holds that spec and image.
    Raises ``ApiException``."""
    report = PromotionReport(promotion)
    if not promotion.changed:
        return report
    custom = kubernetes.client.CustomObjectsApi(api_client)
    written = custom.patch_namespaced_custom_object(
        GROUP, VERSION, promotion.target_namespace, PLURALS["Workload"], promotion.workload,
        promotion.new_object(), field_manager=FIELD_MANAGER, force=True,
        _content_type="application/apply-patch+yaml")
    if written is None:  # the client does not decode apply-patch answers: read it back
        written = custom.get_namespaced_custom_object(
            GROUP, VERSION, promotion.target_namespace, PLURALS["Workload"], promotion.workload)
    report.applied, report.workload = True, written
    note = promotion.event_note() + (f" (release {promotion.release}, commit "
                                     f"{(promotion.commit or '')[:12]})")
    report.event, warning = post_event(
        api_client, written, reason=EVENT_REASON, action=EVENT_ACTION, note=note[:1024],
        now=promotion.at, controller=controller)
    report.warnings += [warning] if warning else []
    return report


def promote_release(
    api_client: kubernetes.client.ApiClient,
    *,
    workload: str,
    to_environment: str,
    release: Release,
    actor: str,
    now: datetime,
    domain: str | None = None,
    system_namespace: str = SYSTEM_NAMESPACE,
    dry_run: bool = False,
) -> PromotionReport:
    """Observe, decide (:func:`konfig.promotion.plan_release_promotion`) and apply one release
    promotion. Raises :class:`PromotionRefused`, :class:`ClusterStateError` or
    ``ApiException``."""
    inputs = observe(api_client, workload=workload, to_environment=to_environment,
                     domain=domain or (release.workload.get("spec") or {}).get("domain"),
                     system_namespace=system_namespace)
    promotion = plan_release_promotion(
        control_plane=inputs.control_plane, domain=inputs.domain, workload=workload,
        to_environment=to_environment, release=release, source=inputs.source,
        target=inputs.target, actor=actor, now=now)
    return PromotionReport(promotion) if dry_run else apply_release_promotion(api_client,
                                                                            promotion)


__all__ = [
    "apply_release_promotion",
    "promote_release",
    "ClusterStateError",
    "PromotionInputs",
    "PromotionRefused",
    "PromotionReport",
    "api_client_from",
    "apply_promotion",
    "observe",
    "post_event",
    "promote",
]
