"""What applying a definitions tree would change in the control-plane cluster (``konfig diff``).

Two layers, both read by Konfig's ``konfig-control-plane`` label:

* ``definitions``: the ``konfig.dev`` custom resources ``konfig apply`` writes
  (:func:`konfig.kube.custom_resources.custom_resources`);
* ``objects``: what the operator writes from them (the compiled desired state: namespaces,
  Config Connector objects, RBAC), with the ownerReferences it would set.

For each layer the live objects are listed (:func:`konfig.kube.sync.observe`), planned with the
operator's own rules (:func:`konfig.kube.diff.plan`: conflicts, prune, break-glass grants kept),
and every update is sent as a **server-side dry-run apply** without ``force``
(https://kubernetes.io/docs/reference/using-api/api-concepts/#dry-run): the answer is the object
as the server would store it (defaults and admission included), which is compared field by
field with the live object; a 409 names the other field managers that own fields Konfig would
change. Where dry-run is forbidden (a read-only planning identity: the API server authorises a
dry-run like the write itself), the comparison is made locally and a note says so.

Raises :class:`~konfig.kube.client.KubeError` when the cluster cannot be read: a plan is never
made from a partial view.
"""

from __future__ import annotations

import re
from concurrent.futures import ThreadPoolExecutor
from typing import Callable

from konfig.changes import (
    ChangeSet,
    FieldChange,
    ObjectChange,
    comparable,
    field_changes,
    masked,
)
from konfig.compile.state import DELETION_POLICY, SYSTEM_NAMESPACE, DesiredState, KubeObject
from konfig.definitions import Definitions
from konfig.kube.client import KubeClient, KubeError
from konfig.kube.diff import HASH_ANNOTATION, Action, plan
from konfig.kube.owners import Ref, responsible, with_owner
from konfig.kube.sync import observe, prune_kinds
from konfig.model import API_VERSION

#: A field manager named in a server-side apply conflict message, e.g.
#: ``conflict with "kubectl-edit" using v1: .spec.replicas``.
_MANAGER = re.compile(r'conflicts? with "([^"]+)"')


def preview_cluster(client: KubeClient, defs: Definitions, state: DesiredState, *,
                    system_namespace: str = SYSTEM_NAMESPACE, workers: int = 8,
                    include_workloads: bool = True) -> ChangeSet:
    """The cluster's part of ``konfig diff`` (see module doc). ``include_workloads=False``
    leaves Workload resources out of the ``definitions`` layer (the control-plane pipeline
    applies Konfig's own kinds only; workloads come from their repositories)."""
    from konfig.kube.custom_resources import KIND_ORDER, custom_resources

    cp = defs.control_plane.name
    result = ChangeSet(compared=["cluster"])
    kinds = [k for k in KIND_ORDER if include_workloads or k != "Workload"]
    resources = [r for r in custom_resources(defs, system_namespace=system_namespace)
                 if r["kind"] in kinds]
    infos = [client.kinds.get(API_VERSION, k) for k in kinds]
    observed, notes = observe(client, infos, [], cp, workers=workers)
    result.notes += notes
    layer = plan(resources, observed, cp, system_namespace=system_namespace)
    dry = _DryRun(client, result.notes)
    result.changes += _changes(layer.actions, "definitions", dry, workers)

    owners = list(observed.values())
    if not include_workloads:  # the cluster's Workloads stay, and own their objects
        owners += client.list(client.kinds.get(API_VERSION, "Workload"))
    uids = {Ref(o["kind"], o["metadata"].get("namespace", ""), o["metadata"]["name"]):
            o["metadata"]["uid"] for o in owners if o["metadata"].get("uid")}
    desired = [with_owner(o, uids, system_namespace) for o in state.kubernetes]
    desired_kinds = {client.kinds.of(o) for o in desired}
    live, notes = observe(client, desired_kinds, prune_kinds(client), cp, workers=workers)
    result.notes += notes
    # As the operator reads them after the apply: the tree's resources and those being deleted
    # (pruned resources keep their finalizer until their objects are gone). Objects whose
    # resource is neither are kept, as the operator keeps them (kube/diff.plan, ``read``).
    after_apply = set(uids) | {Ref(r["kind"], r["metadata"].get("namespace", ""),
                                   r["metadata"]["name"]) for r in resources}
    children = plan(desired, live, cp, system_namespace=system_namespace,
                    read=lambda obj: responsible(obj, system_namespace) in after_apply)
    result.changes += _changes(children.actions, "objects", dry, workers)
    return result


class _DryRun:
    """Server-side dry-run applies; remembers when the server forbids them (403)."""

    def __init__(self, client: KubeClient, notes: list[str]) -> None:
        self.client = client
        self.notes = notes
        self.forbidden = False

    def __call__(self, obj: KubeObject) -> tuple[KubeObject | None, tuple[str, ...], str]:
        """(object as the server would store it or ``None``, conflicting managers, reason)."""
        if self.forbidden:
            return None, (), ""
        try:
            return self.client.apply(obj, force=False, dry_run=True), (), ""
        except KubeError as err:
            if err.conflict:
                managers = tuple(sorted(set(_MANAGER.findall(err.message))))
                return None, managers, f"fields owned by {', '.join(managers) or 'another manager'}"
            if err.status == 403:
                self.forbidden = True
                self.notes.append("server-side dry-run is not allowed for this identity (a "
                                  "dry-run is authorised like the write itself); fields were "
                                  "compared locally, without the server's defaults")
                return None, (), ""
            if err.status in (400, 422):
                return None, (), f"the server would reject it: {err.message}"
            raise


def _changes(actions: list[Action], layer: str, dry: _DryRun, workers: int) -> list[ObjectChange]:
    updates = [a for a in actions if a.op == "update"]
    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        answers = dict(zip((a.key for a in updates), pool.map(dry, (a.obj for a in updates))))
    out: list[ObjectChange] = []
    for action in actions:
        group, kind, namespace, name = action.key
        make: Callable[..., ObjectChange] = lambda op, **kw: ObjectChange(  # noqa: E731
            "cluster", layer, op, kind, namespace, name, **kw)
        if action.op == "create":
            out.append(make("create", fields=_created_fields(action.obj)))
        elif action.op == "delete":
            policy = "abandon" if action.abandons else "delete"
            if kind == "Namespace" and not group:
                policy = "delete"
            out.append(make("delete", policy=policy, reason=_deletion_note(action.obj)))
        elif action.op == "conflict":
            out.append(make("conflict", reason=action.reason))
        elif action.op == "update":
            stored, managers, reason = answers[action.key]
            fields = _updated_fields(action.live or {}, stored or action.obj, local=stored is None)
            if managers:
                out.append(make("conflict", fields=fields, reason=reason, managers=managers))
            elif fields or reason:
                out.append(make("update", fields=fields, reason=reason))
            # else: only Konfig's hash annotation differs (the object was written by another
            # Konfig version); applying changes nothing a person would see.
    return out


def _created_fields(obj: KubeObject) -> tuple[FieldChange, ...]:
    shown = comparable(obj, drop_annotations=(HASH_ANNOTATION,))
    body = {k: v for k, v in shown.items() if k not in ("apiVersion", "kind", "metadata")}
    return masked(field_changes({}, body), kind=obj.get("kind", ""))


def _updated_fields(live: KubeObject, after: KubeObject, *, local: bool) -> tuple[FieldChange, ...]:
    """Changed fields from ``live`` to ``after``. ``after`` is the server's dry-run answer
    (a whole object), or the desired object when ``local``: then only fields Konfig sets are
    compared, so server defaults on the live side are not reported as removals."""
    before = comparable(live, drop_annotations=(HASH_ANNOTATION,))
    wanted = comparable(after, drop_annotations=(HASH_ANNOTATION,))
    if local:
        before = _restricted(before, wanted)
    return masked(field_changes(before, wanted), kind=after.get("kind", ""))


def _restricted(live: object, desired: object) -> object:
    """``live`` cut down to the keys ``desired`` has (maps only; lists are kept whole)."""
    if isinstance(live, dict) and isinstance(desired, dict):
        return {k: _restricted(live[k], desired[k]) for k in desired if k in live}
    return live


def _deletion_note(obj: KubeObject) -> str:
    annotations = (obj.get("metadata") or {}).get("annotations") or {}
    if annotations.get(DELETION_POLICY) == "abandon":
        return "the cloud resource is kept (deletion-policy abandon)"
    if obj.get("apiVersion", "").split("/")[0].endswith(".cnrm.cloud.google.com"):
        return "Config Connector deletes the cloud resource"
    return ""
