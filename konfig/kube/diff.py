"""Desired vs observed Kubernetes objects -> a :class:`KubePlan`. Pure: no I/O.

Rules (spec/definitions.md, "Invariants"):

* An object is Konfig's only if it carries ``konfig-control-plane=<this control plane>``.
  A desired object whose name is taken by an object that is not Konfig's is a *conflict*:
  it is reported and left alone. Namespaces are the one exception: an existing namespace
  (``konfig-system`` made by ``helm install --create-namespace``, say) is adopted, since
  Konfig must annotate it with its project.
* *No needless writes*: every applied object carries the hash of its desired form in
  :data:`HASH_ANNOTATION`. A live object that has that hash and still holds every desired field
  is *unchanged* and is not written; anything else is *created* or *updated* by server-side
  apply (which also drops fields Konfig owned and no longer wants).
* *Prune*: Konfig's objects that are no longer desired are deleted, except break-glass grants
  (:data:`BREAK_GLASS_LABEL`), objects already being deleted, and the system namespace. A
  Namespace is deleted only once every object seen in it is Konfig's and being deleted (the
  executor looks once more, across every kind it knows, right before deleting it). Objects annotated
  ``cnrm.cloud.google.com/deletion-policy: abandon`` keep their cloud resource.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Literal, Mapping

from konfig.compile.state import (
    DELETION_POLICY,
    LABEL_CONTROL_PLANE,
    SYSTEM_NAMESPACE,
    KubeObject,
    object_key,
)

#: Annotation holding the hash of the desired object last applied (see module doc).
HASH_ANNOTATION = "konfig.dev/desired-hash"
#: Label of temporary break-glass grants (written by ``konfig break-glass``); never pruned here.
BREAK_GLASS_LABEL = "konfig-break-glass"

Key = tuple[str, str, str, str]
#: Objects Kubernetes itself puts in every namespace (kube-controller-manager's serviceaccount
#: and root-ca-cert-publisher controllers): they never keep a namespace from being pruned.
KUBERNETES_DEFAULTS = frozenset({("ServiceAccount", "default"), ("ConfigMap", "kube-root-ca.crt")})
Op = Literal["create", "update", "unchanged", "delete", "conflict", "wait", "keep"]


@dataclass(frozen=True)
class Action:
    """One step of a plan. ``op``:

    * ``create`` / ``update``: server-side apply ``obj`` (the desired object, hash added);
    * ``unchanged``: nothing to write;
    * ``delete``: delete ``obj`` (the live object) with Background propagation;
    * ``conflict``: a desired object's name is held by an object that is not Konfig's;
    * ``wait``: the live object is being deleted; apply it again once it is gone;
    * ``keep``: not desired but not pruned (``reason`` says why).
    """

    op: Op
    key: Key
    obj: KubeObject
    reason: str = ""
    live: KubeObject | None = None

    @property
    def abandons(self) -> bool:
        """Deleting this object abandons its cloud resource (Config Connector deletion
        policy ``abandon``)."""
        annotations = self.obj.get("metadata", {}).get("annotations") or {}
        return annotations.get(DELETION_POLICY) == "abandon"

    def describe(self) -> str:
        group, kind, namespace, name = self.key
        where = f"{namespace}/{name}" if namespace else name
        text = f"{kind} {where}"
        return f"{text} ({self.reason})" if self.reason else text


@dataclass
class KubePlan:
    """What one pass will do, in execution order: applies in the desired (apply) order, then
    deletes in reverse apply order, Namespaces last."""

    actions: list[Action] = field(default_factory=list)

    def of(self, *ops: Op) -> list[Action]:
        return [a for a in self.actions if a.op in ops]

    @property
    def applies(self) -> list[Action]:
        return self.of("create", "update")

    @property
    def deletes(self) -> list[Action]:
        return self.of("delete")

    def counts(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for action in self.actions:
            counts[action.op] = counts.get(action.op, 0) + 1
        return counts


def desired_hash(obj: KubeObject) -> str:
    """A stable hash of a desired object (canonical JSON, without :data:`HASH_ANNOTATION`)."""
    meta = dict(obj.get("metadata") or {})
    annotations = {k: v for k, v in (meta.get("annotations") or {}).items() if k != HASH_ANNOTATION}
    if annotations:
        meta["annotations"] = annotations
    else:
        meta.pop("annotations", None)
    canonical = json.dumps({**obj, "metadata": meta}, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()[:32]


def with_hash(obj: KubeObject) -> KubeObject:
    """A copy of ``obj`` with :data:`HASH_ANNOTATION` set."""
    meta = dict(obj["metadata"])
    meta["annotations"] = {**(meta.get("annotations") or {}), HASH_ANNOTATION: desired_hash(obj)}
    return {**obj, "metadata": meta}


def contains(live: Any, desired: Any) -> bool:
    """True when every field of ``desired`` is in ``live`` with the same value: maps may have
    extra keys on the live side (defaults, other managers' fields); lists must have the same
    length and match element by element, except lists of maps with distinct ``name`` keys,
    which match by name in any order (see :func:`_contains_by_name`). ``True``/``1`` are told
    apart."""
    # Exact type checks: objects are plain JSON data, and this runs for every field of every
    # object on every pass (ABC isinstance checks cost several times more).
    kind = type(desired)
    if kind is dict:
        if type(live) is not dict:
            return False
        for k, v in desired.items():
            if k not in live or not contains(live[k], v):
                return False
        return True
    if kind is list:
        if type(live) is not list or len(live) != len(desired):
            return False
        for lv, dv in zip(live, desired):
            if not contains(lv, dv):
                return _contains_by_name(live, desired)
        return True
    if kind is bool or type(live) is bool:
        return kind is type(live) and desired == live
    return desired == live


def _named_items(items: list) -> dict[str, Any] | None:
    """``items`` by their ``name``, when every item is a map with a distinct string name."""
    out: dict[str, Any] = {}
    for item in items:
        if type(item) is not dict or type(item.get("name")) is not str or item["name"] in out:
            return None
        out[item["name"]] = item
    return out


def _contains_by_name(live: list, desired: list) -> bool:
    """Lists of named maps (``env``, ``containers``, ``ports``) are associative lists keyed by
    ``name`` in server-side apply: a server may keep its own order of the items
    (https://kubernetes.io/docs/reference/using-api/server-side-apply/#merge-strategy), so
    they match item by item by name, whatever the order."""
    have, want = _named_items(live), _named_items(desired)
    if have is None or want is None or have.keys() != want.keys():
        return False
    return all(contains(have[name], item) for name, item in want.items())


def first_difference(live: Any, desired: Any, path: str = "") -> str | None:
    """The path of the first desired field ``live`` lacks or holds differently (``None`` when
    :func:`contains` holds), for messages such as ``updated: spec.scaling.max drifted``."""
    if isinstance(desired, Mapping):
        if not isinstance(live, Mapping):
            return path or "."
        for k, v in desired.items():
            sub = f"{path}.{k}" if path else str(k)
            if k not in live:
                return sub
            found = first_difference(live[k], v, sub)
            if found:
                return found
        return None
    if isinstance(desired, list):
        if not isinstance(live, list) or len(live) != len(desired):
            return path
        if contains(live, desired):
            return None
        for i, (lv, dv) in enumerate(zip(live, desired)):
            found = first_difference(lv, dv, f"{path}[{i}]")
            if found:
                return found
        return None
    return None if contains(live, desired) else path


def is_konfigs(obj: KubeObject, control_plane: str) -> bool:
    """Whether ``obj`` carries this control plane's label."""
    labels = obj.get("metadata", {}).get("labels") or {}
    return labels.get(LABEL_CONTROL_PLANE) == control_plane


def plan(desired: Iterable[KubeObject], observed: Mapping[Key, KubeObject], control_plane: str,
         *, prune: bool = True, system_namespace: str = SYSTEM_NAMESPACE,
         read: Callable[[KubeObject], bool] | None = None) -> KubePlan:
    """Compare ``desired`` (in apply order, each with its ownerReferences already set) with
    ``observed`` (live objects by :func:`~konfig.compile.state.object_key`: every object of
    the desired kinds, plus Konfig's objects of other managed kinds) and return the plan.

    With ``prune=False`` no deletes are planned (``konfig apply --no-prune`` style passes).
    ``read`` tells whether the custom resource responsible for a live object was read by this
    pass; objects of resources it did not read are kept (see :func:`_prune`).
    """
    result = KubePlan()
    wanted: set[Key] = set()
    for obj in desired:
        key = object_key(obj)
        wanted.add(key)
        target = with_hash(obj)
        live = observed.get(key)
        if live is None:
            result.actions.append(Action("create", key, target))
        elif live["metadata"].get("deletionTimestamp"):
            result.actions.append(Action("wait", key, target, "being deleted; recreated once gone",
                                         live))
        elif not is_konfigs(live, control_plane) and obj["kind"] != "Namespace":
            owner = (live["metadata"].get("labels") or {}).get(LABEL_CONTROL_PLANE)
            why = (f"belongs to control plane {owner!r}" if owner
                   else "exists without Konfig's labels; left alone")
            result.actions.append(Action("conflict", key, target, why, live))
        elif contains(live, target):
            result.actions.append(Action("unchanged", key, target, live=live))
        else:
            result.actions.append(Action("update", key, target,
                                         f"{first_difference(live, target)} differs", live))
    if prune:
        result.actions += _prune(observed, wanted, control_plane, system_namespace, read)
    return result


def _prune(observed: Mapping[Key, KubeObject], wanted: set[Key], control_plane: str,
           system_namespace: str, read: Callable[[KubeObject], bool] | None = None
           ) -> list[Action]:
    """Deletes for Konfig's objects no longer desired. An object whose responsible custom
    resource the pass did not read (``read`` is false: a Domain not applied yet while
    ``konfig apply`` is half-way, say) is kept: removal goes through that resource's deletion
    and finalizer, never through its absence from one pass's view."""
    from konfig.compile import apply_order

    def unread(live: KubeObject) -> bool:
        return read is not None and not read(live)

    candidates = [(key, live) for key, live in observed.items()
                  if key not in wanted and is_konfigs(live, control_plane)]
    actions: list[Action] = []
    deleting_in: dict[str, bool] = {}  # namespace -> every Konfig object in it goes
    for key, live in observed.items():
        ns = key[2]
        if ns and (key[1], key[3]) not in KUBERNETES_DEFAULTS:
            # an object that is not Konfig's keeps its namespace alive too
            goes = (is_konfigs(live, control_plane) and key not in wanted
                    and not _protected(live) and not unread(live)) or bool(
                        live["metadata"].get("deletionTimestamp"))
            deleting_in[ns] = deleting_in.get(ns, True) and goes
    for key, live in sorted(candidates, key=lambda kv: apply_order(kv[1]), reverse=True):
        meta = live["metadata"]
        if meta.get("deletionTimestamp"):
            continue  # already going; nothing to do
        if _protected(live):
            actions.append(Action("keep", key, live, "break-glass grant", live))
        elif unread(live):
            actions.append(Action("keep", key, live, "its definition was not read in this pass",
                                  live))
        elif key[1] == "Namespace" and key[0] == "":
            name = key[3]
            if name == system_namespace:
                actions.append(Action("keep", key, live, "the system namespace is never deleted",
                                      live))
            elif not deleting_in.get(name, True):
                actions.append(Action("keep", key, live, "still holds objects Konfig keeps", live))
            else:
                actions.append(Action("delete", key, live, live=live))
        else:
            actions.append(Action("delete", key, live, live=live))
    # Namespaces after everything that lives in them.
    actions.sort(key=lambda a: a.op == "delete" and a.key[1] == "Namespace" and a.key[0] == "")
    return actions


def _protected(live: KubeObject) -> bool:
    labels = live["metadata"].get("labels") or {}
    return labels.get(BREAK_GLASS_LABEL) == "true"
