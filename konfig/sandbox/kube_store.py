"""In-memory object store of the Kubernetes API emulator: CRUD with server-set metadata,
optimistic concurrency, patches, server-side apply, finalizers, namespace and CRD cleanup,
garbage collection by ownerReferences, and watch subscriptions with a bounded history.

Thread-safe: every public method takes one re-entrant lock, so the HTTP server thread and
in-process callers (tests) can use the store concurrently. Stored objects are never mutated
after being stored (each write stores a fresh copy), so snapshots in the watch history stay
valid. Semantics follow the API concepts page
(https://kubernetes.io/docs/reference/using-api/api-concepts/) with the simplifications listed
in ``konfig.sandbox.kube_api``.
"""

from __future__ import annotations

import base64
import binascii
import copy
import datetime
import json
import random
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from konfig.sandbox import kube_apply, kube_patch, kube_schema
from konfig.sandbox.kube_selectors import Selector
from konfig.sandbox.kube_types import (
    CRD_CLEANUP_FINALIZER,
    CRD_GROUP,
    FOREGROUND_FINALIZER,
    NAMESPACE_FINALIZER,
    ResourceType,
    StatusError,
    TypeRegistry,
    label_value_problem,
    name_problem,
    qualified_name_problem,
    types_from_crd,
)

MERGE_PATCH = "application/merge-patch+json"
JSON_PATCH = "application/json-patch+json"
STRATEGIC_MERGE_PATCH = "application/strategic-merge-patch+json"
APPLY_PATCH = "application/apply-patch+yaml"
PATCH_TYPES = (MERGE_PATCH, JSON_PATCH, STRATEGIC_MERGE_PATCH, APPLY_PATCH)

DEFAULT_NAMESPACES = ("default", "kube-system", "kube-public", "kube-node-lease")
PROTECTED_NAMESPACES = ("default", "kube-system", "kube-public")  # the real server refuses to delete them
_NAME_SUFFIX_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"  # what the real apiserver uses

Key = tuple[str, str]  # (namespace or "", name)
Listener = Callable[[str, ResourceType, dict | None, dict | None], None]


def now_rfc3339() -> str:
    """The current UTC time in the API's RFC 3339 form (seconds precision)."""
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass
class _Change:
    rv: int
    storage: tuple[str, str]
    type: str  # ADDED, MODIFIED, DELETED
    old: dict[str, Any] | None
    new: dict[str, Any]


@dataclass(eq=False)
class Subscription:
    """A watch on one resource, optionally in one namespace, filtered by a selector.

    ``deliver`` is called (under the store lock, so it must not block) with
    ``(event_type, object)`` for matching changes, ``("RV", rv)`` for every other change (so a
    watcher can report progress in bookmarks) and ``(None, None)`` when the watch must end."""

    rtype: ResourceType
    namespace: str | None
    selector: Selector
    deliver: Callable[[str | None, Any], None]
    closed: bool = False

    def _matches(self, obj: dict[str, Any] | None) -> bool:
        if obj is None:
            return False
        if self.namespace is not None and (obj.get("metadata") or {}).get("namespace") != self.namespace:
            return False
        return self.selector.matches(obj)

    def translate(self, change: _Change) -> tuple[str, dict[str, Any]] | None:
        """The event this watcher sees for a change: an object leaving the selection is
        DELETED, one entering it ADDED (as the real watch cache does)."""
        before, after = self._matches(change.old), self._matches(change.new)
        if change.type == "DELETED":
            return ("DELETED", change.new) if after else None
        if change.type == "ADDED":
            return ("ADDED", change.new) if after else None
        if before and after:
            return ("MODIFIED", change.new)
        if after:
            return ("ADDED", change.new)
        if before:
            return ("DELETED", change.new)
        return None


def _meta(obj: dict[str, Any]) -> dict[str, Any]:
    return obj.setdefault("metadata", {})


class Store:
    """The emulator's cluster state. All ``rtype`` arguments are the served type the request
    addressed (its version decides the ``apiVersion`` of returned objects)."""

    def __init__(self, history_size: int = 10000) -> None:
        self._lock = threading.RLock()
        self._changed = threading.Condition(self._lock)
        self.types = TypeRegistry()
        self._rv = 0
        self._objects: dict[tuple[str, str], dict[Key, dict[str, Any]]] = {}
        self._uids: dict[str, tuple[tuple[str, str], Key]] = {}
        self._history: deque[_Change] = deque(maxlen=history_size)
        self._history_floor = 0
        self._subscriptions: dict[tuple[str, str], list[Subscription]] = {}
        self._listeners: list[Listener] = []
        for name in DEFAULT_NAMESPACES:
            ns_type = self.types.lookup("", "v1", "namespaces")
            assert ns_type is not None
            self.create(ns_type, None, {"metadata": {"name": name}}, manager="kube-apiserver")

    # -- small helpers ---------------------------------------------------------------------

    @property
    def lock(self) -> threading.RLock:
        """The store's re-entrant lock: hold it for several reads that must be consistent."""
        return self._lock

    @property
    def resource_version(self) -> int:
        """The latest cluster-wide resourceVersion."""
        with self._lock:
            return self._rv

    def add_listener(self, listener: Listener) -> None:
        """Call ``listener(event_type, rtype, old, new)`` after every change (under the lock:
        it must not block; schedule work elsewhere)."""
        with self._lock:
            self._listeners.append(listener)

    def _bucket(self, rtype: ResourceType) -> dict[Key, dict[str, Any]]:
        return self._objects.setdefault(rtype.storage_key, {})

    @staticmethod
    def _key(rtype: ResourceType, namespace: str | None, name: str) -> Key:
        return (namespace or "" if rtype.namespaced else "", name)

    @staticmethod
    def present(obj: dict[str, Any], rtype: ResourceType) -> dict[str, Any]:
        """A copy of a stored object as served in ``rtype``'s version."""
        result = copy.deepcopy(obj)
        result["apiVersion"] = rtype.api_version
        result["kind"] = rtype.kind
        return {"apiVersion": result.pop("apiVersion"), "kind": result.pop("kind"), **result}

    def _stored(self, rtype: ResourceType, namespace: str | None, name: str) -> dict[str, Any]:
        obj = self._bucket(rtype).get(self._key(rtype, namespace, name))
        if obj is None:
            raise StatusError.not_found(rtype, name)
        return obj

    def _any_version(self, storage: tuple[str, str]) -> ResourceType | None:
        versions = self.types.versions_of(*storage)
        return versions[0] if versions else None

    def _commit(self, rtype: ResourceType, event: str, old: dict[str, Any] | None,
                new: dict[str, Any]) -> dict[str, Any]:
        """Store ``new`` (or drop it for DELETED) under a fresh resourceVersion and notify."""
        self._rv += 1
        new = copy.deepcopy(new)
        _meta(new)["resourceVersion"] = str(self._rv)
        meta = new["metadata"]
        key = self._key(rtype, meta.get("namespace"), meta["name"])
        bucket = self._bucket(rtype)
        if event == "DELETED":
            bucket.pop(key, None)
            self._uids.pop(meta.get("uid", ""), None)
        else:
            bucket[key] = new
            self._uids[meta["uid"]] = (rtype.storage_key, key)
        change = _Change(self._rv, rtype.storage_key, event, old, new)
        if len(self._history) == self._history.maxlen:
            self._history_floor = self._history[0].rv
        self._history.append(change)
        for sub in list(self._subscriptions.get(rtype.storage_key, ())):
            translated = sub.translate(change)
            if translated:
                sub.deliver(translated[0], self.present(translated[1], sub.rtype))
            else:
                sub.deliver("RV", self._rv)
        for listener in list(self._listeners):
            listener(event, rtype, old, new)
        self._changed.notify_all()
        return new

    # -- reads -------------------------------------------------------------------------------

    def get(self, rtype: ResourceType, namespace: str | None, name: str) -> dict[str, Any]:
        """The object, as served in ``rtype``'s version. Raises StatusError 404."""
        with self._lock:
            return self.present(self._stored(rtype, namespace, name), rtype)

    def _select(self, rtype: ResourceType, namespace: str | None, selector: Selector) -> list[dict[str, Any]]:
        items = []
        for (ns, _), obj in sorted(self._bucket(rtype).items()):
            if rtype.namespaced and namespace is not None and ns != namespace:
                continue
            if selector.matches(obj):
                items.append(obj)
        return items

    def list(self, rtype: ResourceType, namespace: str | None = None, selector: Selector = Selector(),
             limit: int | None = None, continue_token: str | None = None) -> dict[str, Any]:
        """A ``{Kind}List`` of matching objects sorted by namespace and name, paginated by
        ``limit``/``continue`` (the token carries the first page's resourceVersion)."""
        with self._lock:
            items = self._select(rtype, namespace, selector)
            list_rv = self._rv
            if continue_token:
                try:
                    token = json.loads(base64.urlsafe_b64decode(continue_token.encode()))
                    list_rv, start = int(token["rv"]), tuple(token["start"])
                except (ValueError, KeyError, TypeError, binascii.Error) as exc:
                    raise StatusError.bad_request(f"invalid continue token: {exc}") from exc
                items = [o for o in items if (o["metadata"].get("namespace", ""), o["metadata"]["name"]) > start]
            metadata: dict[str, Any] = {"resourceVersion": str(list_rv)}
            if limit and len(items) > limit:
                last = items[limit - 1]["metadata"]
                token = {"rv": list_rv, "start": [last.get("namespace", ""), last["name"]]}
                metadata["continue"] = base64.urlsafe_b64encode(json.dumps(token).encode()).decode()
                metadata["remainingItemCount"] = len(items) - limit
                items = items[:limit]
            return {
                "kind": f"{rtype.kind}List",
                "apiVersion": rtype.api_version,
                "metadata": metadata,
                "items": [self.present(obj, rtype) for obj in items],
            }

    def find(self, api_version: str, kind: str) -> ResourceType | None:
        """The served type for an apiVersion and kind, or None."""
        with self._lock:
            return self.types.by_kind(api_version, kind)

    def notify(self) -> None:
        """Wake ``wait`` callers so they re-check their predicate (e.g. after a request)."""
        with self._changed:
            self._changed.notify_all()

    def wait(self, predicate: Callable[[], Any], timeout: float) -> Any:
        """Block until ``predicate()`` (evaluated under the lock after each change) is truthy;
        return its value. Raises TimeoutError after ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while True:
                value = predicate()
                if value:
                    return value
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise TimeoutError(f"condition not met within {timeout}s")
                self._changed.wait(remaining)

    # -- watch -------------------------------------------------------------------------------

    def watch(self, rtype: ResourceType, namespace: str | None, selector: Selector,
              resource_version: str | None, send_initial_events: bool,
              deliver: Callable[[str | None, Any], None]) -> tuple[Subscription, list[tuple[str, dict]], int]:
        """Subscribe to changes; returns (subscription, events to send first, their rv).

        Unset or ``"0"`` resourceVersion (or sendInitialEvents) starts with synthetic ADDED
        events for the current objects; otherwise changes after that version are replayed from
        the history. Raises StatusError 410 Expired if the history no longer reaches back."""
        with self._lock:
            sub = Subscription(rtype, namespace, selector, deliver)
            initial: list[tuple[str, dict]] = []
            if send_initial_events or resource_version in (None, "", "0"):
                initial = [("ADDED", self.present(o, rtype)) for o in self._select(rtype, namespace, selector)]
            else:
                try:
                    since = int(resource_version)
                except ValueError as exc:
                    raise StatusError.bad_request(f"invalid resourceVersion {resource_version!r}") from exc
                if since < self._history_floor:
                    raise StatusError.gone(resource_version)
                for change in self._history:
                    if change.rv > since and change.storage == rtype.storage_key:
                        translated = sub.translate(change)
                        if translated:
                            initial.append((translated[0], self.present(translated[1], rtype)))
            self._subscriptions.setdefault(rtype.storage_key, []).append(sub)
            return sub, initial, self._rv

    def unsubscribe(self, sub: Subscription) -> None:
        """Stop delivering to a subscription."""
        with self._lock:
            subs = self._subscriptions.get(sub.rtype.storage_key, [])
            if sub in subs:
                subs.remove(sub)
            sub.closed = True

    def close_all_watches(self) -> None:
        """End every watch (used when the server stops)."""
        with self._lock:
            for subs in self._subscriptions.values():
                for sub in subs:
                    sub.deliver(None, None)
                    sub.closed = True
            self._subscriptions.clear()

    # -- body checks and admission ------------------------------------------------------------

    @staticmethod
    def _check_body(rtype: ResourceType, body: Any, namespace: str | None, name: str | None,
                    require_type_meta: bool = False) -> dict[str, Any]:
        """Copy a request body, checking apiVersion/kind and the URL's namespace and name
        (mismatches are 400 BadRequest, as in the real server)."""
        if not isinstance(body, dict):
            raise StatusError.bad_request("the request body must be a JSON object")
        obj = copy.deepcopy(body)
        for fld, expected in (("apiVersion", rtype.api_version), ("kind", rtype.kind)):
            if obj.get(fld) in (None, ""):
                if require_type_meta:
                    raise StatusError.bad_request(f"invalid object type: {fld} must be set for apply")
                obj[fld] = expected
            elif obj[fld] != expected:
                raise StatusError.bad_request(
                    f"the {fld} of the provided object ({obj[fld]}) does not match the expected {expected}")
        meta = obj.get("metadata")
        if meta is None:
            meta = obj["metadata"] = {}
        if not isinstance(meta, dict):
            raise StatusError.bad_request("metadata must be an object")
        if rtype.namespaced:
            if meta.get("namespace") not in (None, "", namespace):
                raise StatusError.bad_request(
                    "the namespace of the provided object does not match the namespace sent on the request")
            meta["namespace"] = namespace
        else:
            meta.pop("namespace", None)
        if name is not None:
            if meta.get("name") not in (None, "", name):
                raise StatusError.bad_request(
                    f"the name of the object ({meta['name']}) does not match the name on the URL ({name})")
            meta["name"] = name
        return obj

    def _admit(self, rtype: ResourceType, obj: dict[str, Any], old: dict[str, Any] | None) -> dict[str, Any]:
        """Defaulting and validation of a write (kind-specific rules, CRD schemas). Raises
        StatusError 422 Invalid listing every problem."""
        meta = obj["metadata"]
        name = meta["name"]
        problems: list[tuple[str, str, str]] = []
        if old is None and (why := name_problem(rtype, name)):
            problems.append(("metadata.name", "FieldValueInvalid", f'Invalid value: "{name}": {why}'))
        for key, value in (meta.get("labels") or {}).items():
            if why := qualified_name_problem(key):
                problems.append(("metadata.labels", "FieldValueInvalid", f'Invalid value: "{key}": {why}'))
            if why := label_value_problem(value):
                problems.append(("metadata.labels", "FieldValueInvalid", f'Invalid value: "{value}": {why}'))
        for key, value in (meta.get("annotations") or {}).items():
            if why := qualified_name_problem(key):
                problems.append(("metadata.annotations", "FieldValueInvalid", f'Invalid value: "{key}": {why}'))
            if not isinstance(value, str):
                problems.append(("metadata.annotations", "FieldValueTypeInvalid",
                                 f"Invalid value: {value!r}: annotation values must be strings"))
        if rtype.custom:
            schema = rtype.schema
            obj = kube_schema.apply_defaults(kube_schema.prune(obj, schema, root=True), schema)
            problems += kube_schema.validation_errors(obj, schema)
        else:
            obj = self._admit_builtin(rtype, obj, old, problems)
        if problems:
            raise StatusError.invalid(rtype, name, problems)
        return obj

    def _admit_builtin(self, rtype: ResourceType, obj: dict[str, Any], old: dict[str, Any] | None,
                       problems: list[tuple[str, str, str]]) -> dict[str, Any]:
        kind, meta = rtype.kind, obj["metadata"]
        spec = obj.get("spec") or {}
        if kind == "Namespace":
            meta.setdefault("labels", {})["kubernetes.io/metadata.name"] = meta["name"]
            if old is None:
                obj["spec"] = {"finalizers": [NAMESPACE_FINALIZER], **spec}
                obj["status"] = {"phase": "Active"}
        elif kind == "Secret" and not rtype.group:
            obj.setdefault("type", "Opaque")
            string_data = obj.pop("stringData", None) or {}
            data = obj.setdefault("data", {}) or {}
            for key, value in string_data.items():
                data[key] = base64.b64encode(str(value).encode()).decode()
            for key, value in data.items():
                try:
                    base64.b64decode(value, validate=True)
                except (binascii.Error, TypeError, ValueError):
                    problems.append((f"data[{key}]", "FieldValueInvalid", "Invalid value: not valid base64"))
            obj["data"] = data
            if not data:
                obj.pop("data")
        elif kind == "Deployment":
            for fld in ("selector", "template"):
                if not spec.get(fld):
                    problems.append((f"spec.{fld}", "FieldValueRequired", "Required value"))
        elif kind in ("RoleBinding", "ClusterRoleBinding"):
            if not obj.get("roleRef"):
                problems.append(("roleRef", "FieldValueRequired", "Required value"))
        elif kind == "CustomResourceDefinition":
            self._admit_crd(obj, old, problems)
        return obj

    @staticmethod
    def _admit_crd(obj: dict[str, Any], old: dict[str, Any] | None, problems: list[tuple[str, str, str]]) -> None:
        spec = obj.get("spec") or {}
        names = spec.get("names") or {}
        for fld, value in (("spec.group", spec.get("group")), ("spec.names.plural", names.get("plural")),
                           ("spec.names.kind", names.get("kind")), ("spec.versions", spec.get("versions"))):
            if not value:
                problems.append((fld, "FieldValueRequired", "Required value"))
        if spec.get("scope") not in ("Namespaced", "Cluster"):
            problems.append(("spec.scope", "FieldValueNotSupported",
                             f'Unsupported value: "{spec.get("scope")}": supported values: "Cluster", "Namespaced"'))
        versions = spec.get("versions") or []
        if versions and sum(1 for v in versions if v.get("storage")) != 1:
            problems.append(("spec.versions", "FieldValueInvalid",
                             "Invalid value: must have exactly one version marked as storage version"))
        if spec.get("group") and names.get("plural"):
            expected = f"{names['plural']}.{spec['group']}"
            if obj["metadata"]["name"] != expected:
                problems.append(("metadata.name", "FieldValueInvalid",
                                 f'Invalid value: "{obj["metadata"]["name"]}": must be spec.names.plural+"."+spec.group'))
        if problems:
            return
        if old is None:
            fins = obj["metadata"].setdefault("finalizers", [])
            if CRD_CLEANUP_FINALIZER not in fins:
                fins.append(CRD_CLEANUP_FINALIZER)
        storage = next(v["name"] for v in versions if v.get("storage"))
        stored = list((old or {}).get("status", {}).get("storedVersions") or [])
        now = now_rfc3339()
        obj["status"] = {
            "conditions": [
                {"type": "NamesAccepted", "status": "True", "reason": "NoConflicts",
                 "message": "no conflicts found", "lastTransitionTime": now},
                {"type": "Established", "status": "True", "reason": "InitialNamesAccepted",
                 "message": "the initial names have been accepted", "lastTransitionTime": now},
            ],
            "acceptedNames": {k: v for k, v in names.items()},
            "storedVersions": stored + ([storage] if storage not in stored else []),
        }
        if old and old.get("status", {}).get("conditions"):
            obj["status"]["conditions"] = old["status"]["conditions"]

    def _require_namespace(self, rtype: ResourceType, namespace: str | None, name: str) -> None:
        ns_bucket = self._objects.get(("", "namespaces"), {})
        ns_obj = ns_bucket.get(("", namespace or ""))
        if ns_obj is None:
            raise StatusError.namespace_not_found(namespace or "")
        if ns_obj["metadata"].get("deletionTimestamp"):
            raise StatusError.forbidden(rtype, name, f"unable to create new content in namespace {namespace}"
                                                     " because it is being terminated")

    def _unique_name(self, rtype: ResourceType, namespace: str | None, prefix: str) -> str:
        while True:
            name = prefix + "".join(random.choice(_NAME_SUFFIX_ALPHABET) for _ in range(5))
            if self._key(rtype, namespace, name) not in self._bucket(rtype):
                return name

    # -- create --------------------------------------------------------------------------------

    def create(self, rtype: ResourceType, namespace: str | None, body: Any, *, manager: str,
               dry_run: bool = False) -> dict[str, Any]:
        """Create an object (POST). Sets uid, creationTimestamp, generation 1 and
        resourceVersion; honours generateName. Raises StatusError 400/403/404/409/422."""
        with self._lock:
            obj = self._check_body(rtype, body, namespace, None)
            meta = obj["metadata"]
            if not meta.get("name"):
                if not meta.get("generateName"):
                    raise StatusError.invalid(rtype, "", [("metadata.name", "FieldValueRequired",
                                                           "Required value: name or generateName is required")])
                # The prefix must itself be a valid name once a trailing '-' is set aside
                # (apimachinery's ValidateObjectMeta with prefix=true, maskTrailingDash).
                prefix = meta["generateName"]
                if why := name_problem(rtype, prefix[:-1] + "a" if prefix.endswith("-") else prefix):
                    raise StatusError.invalid(rtype, prefix, [(
                        "metadata.generateName", "FieldValueInvalid", f'Invalid value: "{prefix}": {why}')])
                meta["name"] = self._unique_name(rtype, namespace, prefix)
            view = kube_apply.tracked_view(obj, rtype.has_status, None)
            managed = kube_apply.record_update([], manager, rtype.api_version, {}, view, None, now_rfc3339())
            return self._create_prepared(rtype, namespace, obj, managed, dry_run)

    def _create_prepared(self, rtype: ResourceType, namespace: str | None, obj: dict[str, Any],
                         managed: list[dict[str, Any]], dry_run: bool) -> dict[str, Any]:
        meta = obj["metadata"]
        name = meta["name"]
        if rtype.namespaced:
            self._require_namespace(rtype, namespace, name)
        if rtype.custom:
            crd = self._objects.get((CRD_GROUP, "customresourcedefinitions"), {}).get(
                ("", f"{rtype.plural}.{rtype.group}"))
            if crd and crd["metadata"].get("deletionTimestamp"):
                raise StatusError(405, "MethodNotAllowed",
                                  "create not allowed while custom resource definition is terminating")
        if self._key(rtype, namespace, name) in self._bucket(rtype):
            raise StatusError.already_exists(rtype, name)
        for fld in ("uid", "resourceVersion", "creationTimestamp", "deletionTimestamp",
                    "deletionGracePeriodSeconds", "managedFields", "selfLink"):
            meta.pop(fld, None)
        meta["uid"] = str(uuid.uuid4())
        meta["creationTimestamp"] = now_rfc3339()
        meta["generation"] = 1
        if rtype.has_status:
            obj.pop("status", None)  # status is written only through /status
        obj = self._admit(rtype, obj, None)
        if managed:
            obj["metadata"]["managedFields"] = managed
        if dry_run:
            obj["metadata"]["resourceVersion"] = ""
            return self.present(obj, rtype)
        stored = self._commit(rtype, "ADDED", None, obj)
        if rtype.kind == "CustomResourceDefinition" and rtype.group == CRD_GROUP:
            self._serve_crd(stored)
        return self.present(stored, rtype)

    # -- update / patch / apply -----------------------------------------------------------------

    def replace(self, rtype: ResourceType, namespace: str | None, name: str, body: Any, *,
                manager: str, subresource: str | None = None, dry_run: bool = False) -> dict[str, Any]:
        """Replace an object (PUT), or only its status with ``subresource="status"``. A stale
        ``metadata.resourceVersion`` is 409 Conflict; an empty one updates unconditionally."""
        with self._lock:
            old = self._stored(rtype, namespace, name)
            new = self._check_body(rtype, body, namespace, name)
            wanted = new["metadata"].get("resourceVersion")
            if wanted and wanted != old["metadata"]["resourceVersion"]:
                raise StatusError.conflict(rtype, name, "the object has been modified; please apply your"
                                                        " changes to the latest version and try again")
            return self._update(rtype, old, new, manager=manager, subresource=subresource, dry_run=dry_run)

    def patch(self, rtype: ResourceType, namespace: str | None, name: str, patch_type: str, body: Any, *,
              manager: str | None, subresource: str | None = None, force: bool = False,
              dry_run: bool = False) -> tuple[dict[str, Any], bool]:
        """PATCH with one of PATCH_TYPES; returns (object, created). Server-side apply creates a
        missing object (``created`` is then True). Raises StatusError 404/409/415/422."""
        with self._lock:
            if patch_type == APPLY_PATCH:
                return self._apply(rtype, namespace, name, body, manager=manager, subresource=subresource,
                                   force=force, dry_run=dry_run)
            if patch_type == STRATEGIC_MERGE_PATCH and rtype.custom:
                raise StatusError.unsupported_media_type(patch_type)
            old = self._stored(rtype, namespace, name)
            current = self.present(old, rtype)
            try:
                if patch_type == MERGE_PATCH:
                    patched = kube_patch.merge_patch(current, body)
                elif patch_type == JSON_PATCH:
                    patched = kube_patch.json_patch(current, body)
                elif patch_type == STRATEGIC_MERGE_PATCH:
                    patched = kube_patch.strategic_merge_patch(current, body)
                else:
                    raise StatusError.unsupported_media_type(patch_type)
            except kube_patch.PatchError as exc:
                raise StatusError(422, "Invalid", f"the server rejected our request due to an error in our"
                                                  f" request: {exc}", {"name": name, "kind": rtype.kind}) from exc
            if not isinstance(patched, dict):
                raise StatusError.bad_request("a patch must produce an object")
            wanted = (patched.get("metadata") or {}).get("resourceVersion")
            if wanted and wanted != old["metadata"]["resourceVersion"]:
                raise StatusError.conflict(rtype, name, "the object has been modified; please apply your"
                                                        " changes to the latest version and try again")
            new = self._check_body(rtype, patched, namespace, name)
            return self._update(rtype, old, new, manager=manager or "unknown", subresource=subresource,
                                dry_run=dry_run), False

    def _apply(self, rtype: ResourceType, namespace: str | None, name: str, body: Any, *, manager: str | None,
               subresource: str | None, force: bool, dry_run: bool) -> tuple[dict[str, Any], bool]:
        if not manager:
            raise StatusError(422, "Invalid", 'PatchOptions.meta.k8s.io "" is invalid: fieldManager: Required'
                                              " value: is required for apply patch",
                              {"causes": [{"reason": "FieldValueRequired", "field": "fieldManager",
                                           "message": "Required value: is required for apply patch"}]})
        applied = self._check_body(rtype, body, namespace, name, require_type_meta=True)
        old = self._bucket(rtype).get(self._key(rtype, namespace, name))
        wanted = applied["metadata"].get("resourceVersion")
        if old is not None and wanted and wanted != old["metadata"]["resourceVersion"]:
            raise StatusError.conflict(rtype, name, "the object has been modified; please apply your"
                                                    " changes to the latest version and try again")
        if old is None and subresource:
            raise StatusError.not_found(rtype, name)
        live = self.present(old, rtype) if old is not None else None
        applied_view = kube_apply.tracked_view(applied, rtype.has_status, subresource)
        live_view = kube_apply.tracked_view(live, rtype.has_status, subresource)
        managed = (live or {}).get("metadata", {}).get("managedFields") or []
        try:
            result, new_managed = kube_apply.server_side_apply(
                live, applied_view, managed, manager=manager, api_version=rtype.api_version, force=force,
                subresource=subresource, live_view=live_view, now=now_rfc3339())
        except kube_apply.ApplyConflict as exc:
            raise StatusError(409, "Conflict", str(exc), {
                "name": name, "kind": rtype.plural, **({"group": rtype.group} if rtype.group else {}),
                "causes": [{"type": "FieldManagerConflict", "reason": "FieldManagerConflict",
                            "message": f'conflict with "{m}"', "field": f} for m, f in exc.conflicts],
            }) from exc
        result["apiVersion"], result["kind"] = rtype.api_version, rtype.kind
        meta = _meta(result)
        meta["name"] = name
        if rtype.namespaced:
            meta["namespace"] = namespace
        if old is None:
            meta.pop("managedFields", None)
            return self._create_prepared(rtype, namespace, result, new_managed, dry_run), True
        return self._update(rtype, old, result, manager=manager, subresource=subresource, dry_run=dry_run,
                            managed=new_managed), False

    @staticmethod
    def _spec_view(obj: dict[str, Any], rtype: ResourceType) -> dict[str, Any]:
        """What bumps metadata.generation when it changes: everything but metadata (and status
        for kinds with a status subresource)."""
        return {k: v for k, v in obj.items()
                if k not in ("metadata", "apiVersion", "kind") and not (k == "status" and rtype.has_status)}

    @staticmethod
    def _comparable(obj: dict[str, Any]) -> dict[str, Any]:
        """An object without resourceVersion and managedFields timestamps (to detect no-ops)."""
        result = copy.deepcopy(obj)
        meta = result.get("metadata") or {}
        meta.pop("resourceVersion", None)
        for entry in meta.get("managedFields") or []:
            entry.pop("time", None)
        return result

    def _update(self, rtype: ResourceType, old: dict[str, Any], new: dict[str, Any], *, manager: str,
                subresource: str | None, dry_run: bool, managed: list[dict[str, Any]] | None = None,
                ) -> dict[str, Any]:
        """The common write path of PUT, PATCH and apply on an existing object."""
        name = old["metadata"]["name"]
        current = self.present(old, rtype)
        if subresource == "status":
            result = copy.deepcopy(current)
            if "status" in new:
                result["status"] = new["status"]
            else:
                result.pop("status", None)
        else:
            result = new
            if rtype.has_status:
                if "status" in current:
                    result["status"] = copy.deepcopy(current["status"])
                else:
                    result.pop("status", None)
        meta, old_meta = _meta(result), current["metadata"]
        for fld in ("uid", "creationTimestamp", "deletionTimestamp", "deletionGracePeriodSeconds",
                    "generation", "generateName", "resourceVersion"):
            if fld in old_meta:
                meta[fld] = old_meta[fld]
            else:
                meta.pop(fld, None)
        if old_meta.get("deletionTimestamp"):
            added = set(meta.get("finalizers") or []) - set(old_meta.get("finalizers") or [])
            if added:
                raise StatusError.invalid(rtype, name, [(
                    "metadata.finalizers", "FieldValueForbidden",
                    f"Forbidden: no new finalizers can be added if the object is being deleted, found new"
                    f" finalizers {sorted(added)}")])
        result = self._admit(rtype, result, old)
        meta = result["metadata"]
        if self._spec_view(result, rtype) != self._spec_view(current, rtype):
            meta["generation"] = int(old_meta.get("generation") or 0) + 1
        if managed is None:
            managed = kube_apply.record_update(
                old_meta.get("managedFields") or [], manager, rtype.api_version,
                kube_apply.tracked_view(current, rtype.has_status, subresource),
                kube_apply.tracked_view(result, rtype.has_status, subresource), subresource, now_rfc3339())
        if managed:
            meta["managedFields"] = managed
        else:
            meta.pop("managedFields", None)
        if self._comparable(result) == self._comparable(current):
            return current  # a no-op write changes nothing, not even the resourceVersion
        if dry_run:
            return self.present(result, rtype)
        if self._removable(rtype, result):
            self._remove(rtype, result, old)
            return self.present(result, rtype)
        stored = self._commit(rtype, "MODIFIED", old, result)
        if rtype.kind == "CustomResourceDefinition" and rtype.group == CRD_GROUP:
            self._serve_crd(stored)
        return self.present(stored, rtype)

    # -- delete ----------------------------------------------------------------------------------

    def delete(self, rtype: ResourceType, namespace: str | None, name: str, *,
               propagation: str | None = None, preconditions: dict[str, Any] | None = None,
               dry_run: bool = False) -> tuple[dict[str, Any], bool]:
        """DELETE one object; returns (response body, removed now).

        With finalizers the object only gets deletionTimestamp (and the response is the object);
        once removed, built-in kinds answer a ``Status`` Success and custom resources the
        object, as the real server does. propagationPolicy: Background (default), Foreground,
        Orphan."""
        with self._lock:
            old = self._stored(rtype, namespace, name)
            if rtype.kind == "Namespace" and not rtype.group and name in PROTECTED_NAMESPACES:
                raise StatusError.forbidden(rtype, name, "this namespace may not be deleted")
            for fld in ("uid", "resourceVersion"):
                wanted = (preconditions or {}).get(fld)
                if wanted and wanted != old["metadata"].get(fld):
                    raise StatusError.conflict(rtype, name, f"Precondition failed: {fld} in precondition: {wanted},"
                                                            f" {fld} in object meta: {old['metadata'].get(fld)}")
            if propagation not in (None, "Background", "Foreground", "Orphan"):
                raise StatusError.bad_request(f"unsupported propagationPolicy {propagation!r}")
            if dry_run:
                return self.present(old, rtype), False
            removed = self._delete_object(rtype, old, propagation or "Background")
            if not removed:
                key = self._key(rtype, namespace, name)
                current = self._bucket(rtype).get(key)
                if current is not None:
                    return self.present(current, rtype), False
            if rtype.custom:
                final = self.present(old, rtype)
                return final, True
            details = {"name": name, "kind": rtype.plural, "uid": old["metadata"]["uid"]}
            if rtype.group:
                details["group"] = rtype.group
            return {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success",
                    "details": details}, True

    def delete_collection(self, rtype: ResourceType, namespace: str | None, selector: Selector, *,
                          propagation: str | None = None) -> dict[str, Any]:
        """DELETE on a collection: delete every matching object; returns the list of them."""
        with self._lock:
            listed = self.list(rtype, namespace, selector)
            for item in listed["items"]:
                item_meta = item["metadata"]
                stored = self._bucket(rtype).get(self._key(rtype, item_meta.get("namespace"), item_meta["name"]))
                if stored is not None:
                    self._delete_object(rtype, stored, propagation or "Background")
            return listed

    def _removable(self, rtype: ResourceType, obj: dict[str, Any]) -> bool:
        meta = obj["metadata"]
        if not meta.get("deletionTimestamp") or meta.get("finalizers"):
            return False
        if rtype.kind == "Namespace" and not rtype.group:
            return not (obj.get("spec") or {}).get("finalizers")
        return True

    def _delete_object(self, rtype: ResourceType, obj: dict[str, Any], propagation: str) -> bool:
        """Start deleting a stored object; returns whether it is gone now."""
        meta = obj["metadata"]
        if meta.get("deletionTimestamp"):
            return False
        uid = meta["uid"]
        if propagation == "Orphan":
            for dep_type, dep in self._dependents(uid, meta.get("namespace")):
                new = copy.deepcopy(dep)
                new["metadata"]["ownerReferences"] = [
                    ref for ref in new["metadata"]["ownerReferences"] if ref.get("uid") != uid]
                if not new["metadata"]["ownerReferences"]:
                    del new["metadata"]["ownerReferences"]
                self._commit(dep_type, "MODIFIED", dep, new)
        is_namespace = rtype.kind == "Namespace" and not rtype.group
        is_crd = rtype.kind == "CustomResourceDefinition" and rtype.group == CRD_GROUP
        new = copy.deepcopy(obj)
        finalizers = list(new["metadata"].get("finalizers") or [])
        if propagation == "Foreground" and self._dependents(uid, meta.get("namespace")):
            finalizers.append(FOREGROUND_FINALIZER)
        if not finalizers and not is_namespace:
            self._remove(rtype, new, obj)
            return True
        new_meta = new["metadata"]
        new_meta["deletionTimestamp"] = now_rfc3339()
        new_meta["deletionGracePeriodSeconds"] = 0
        if finalizers:
            new_meta["finalizers"] = finalizers
        new_meta["generation"] = int(new_meta.get("generation") or 0) + 1
        if is_namespace:
            new.setdefault("status", {})["phase"] = "Terminating"
        stored = self._commit(rtype, "MODIFIED", obj, new)
        if is_namespace:
            self._delete_namespace_contents(meta["name"])
            self._maybe_finalize_namespace(meta["name"])
        elif is_crd:
            self._delete_crd_instances(stored)
            self._maybe_finalize_crd(stored["metadata"]["name"])
        elif FOREGROUND_FINALIZER in finalizers:
            for dep_type, dep in self._dependents(uid, meta.get("namespace")):
                self._delete_object(dep_type, dep, "Background")
            self._maybe_finish_foreground(uid)
        return self._bucket(rtype).get(self._key(rtype, meta.get("namespace"), meta["name"])) is None

    def _remove(self, rtype: ResourceType, final: dict[str, Any], old: dict[str, Any]) -> None:
        """Drop an object for good (DELETED event), then run the controllers it may unblock."""
        removed = self._commit(rtype, "DELETED", old, final)
        meta = removed["metadata"]
        if rtype.kind == "CustomResourceDefinition" and rtype.group == CRD_GROUP:
            self._unserve_crd(removed)
        self._collect_garbage(meta["uid"], meta.get("namespace"))
        for ref in meta.get("ownerReferences") or []:
            self._maybe_finish_foreground(ref.get("uid", ""))
        if rtype.namespaced and meta.get("namespace"):
            self._maybe_finalize_namespace(meta["namespace"])
        if rtype.custom:
            self._maybe_finalize_crd(f"{rtype.plural}.{rtype.group}")

    # -- controllers: namespaces, CRDs, garbage collection --------------------------------------

    def _iter_all(self) -> Iterator[tuple[ResourceType, dict[str, Any]]]:
        for storage, bucket in list(self._objects.items()):
            rtype = self._any_version(storage)
            if rtype is None:
                continue
            for obj in list(bucket.values()):
                yield rtype, obj

    def _dependents(self, uid: str, namespace: str | None) -> list[tuple[ResourceType, dict[str, Any]]]:
        """Objects listing ``uid`` in their ownerReferences (same namespace for a namespaced
        owner, anywhere for a cluster-scoped one)."""
        found = []
        for rtype, obj in self._iter_all():
            meta = obj["metadata"]
            if namespace and meta.get("namespace") != namespace:
                continue
            if any(ref.get("uid") == uid for ref in meta.get("ownerReferences") or []):
                found.append((rtype, obj))
        return found

    def _collect_garbage(self, uid: str, namespace: str | None) -> None:
        """Background garbage collection after an owner is gone: dependents without any live
        owner are deleted; others lose the dangling reference (as the real GC does)."""
        for dep_type, dep in self._dependents(uid, namespace):
            current = self._bucket(dep_type).get(self._key(dep_type, dep["metadata"].get("namespace"),
                                                           dep["metadata"]["name"]))
            if current is None:
                continue
            refs = current["metadata"].get("ownerReferences") or []
            alive = [ref for ref in refs if ref.get("uid") in self._uids]
            if not alive:
                self._delete_object(dep_type, current, "Background")
            elif len(alive) != len(refs):
                new = copy.deepcopy(current)
                new["metadata"]["ownerReferences"] = alive
                self._commit(dep_type, "MODIFIED", current, new)

    def _lookup_uid(self, uid: str) -> tuple[ResourceType, dict[str, Any]] | None:
        where = self._uids.get(uid)
        if where is None:
            return None
        rtype = self._any_version(where[0])
        obj = self._objects.get(where[0], {}).get(where[1])
        return (rtype, obj) if rtype and obj else None

    def _drop_finalizer(self, rtype: ResourceType, obj: dict[str, Any], finalizer: str) -> None:
        new = copy.deepcopy(obj)
        fins = [f for f in new["metadata"].get("finalizers") or [] if f != finalizer]
        if fins:
            new["metadata"]["finalizers"] = fins
        else:
            new["metadata"].pop("finalizers", None)
        if self._removable(rtype, new):
            self._remove(rtype, new, obj)
        else:
            self._commit(rtype, "MODIFIED", obj, new)

    def _maybe_finish_foreground(self, owner_uid: str) -> None:
        found = self._lookup_uid(owner_uid)
        if not found:
            return
        rtype, owner = found
        if FOREGROUND_FINALIZER not in (owner["metadata"].get("finalizers") or []):
            return
        if not self._dependents(owner_uid, owner["metadata"].get("namespace")):
            self._drop_finalizer(rtype, owner, FOREGROUND_FINALIZER)

    def _delete_namespace_contents(self, namespace: str) -> None:
        for rtype, obj in self._iter_all():
            if rtype.namespaced and obj["metadata"].get("namespace") == namespace:
                current = self._bucket(rtype).get((namespace, obj["metadata"]["name"]))
                if current is not None:
                    self._delete_object(rtype, current, "Background")

    def _maybe_finalize_namespace(self, namespace: str) -> None:
        ns_type = self.types.lookup("", "v1", "namespaces")
        assert ns_type is not None
        ns_obj = self._bucket(ns_type).get(("", namespace))
        if ns_obj is None or not ns_obj["metadata"].get("deletionTimestamp"):
            return
        for rtype, obj in self._iter_all():
            if rtype.namespaced and obj["metadata"].get("namespace") == namespace:
                return
        new = copy.deepcopy(ns_obj)
        new.setdefault("spec", {})["finalizers"] = []
        if self._removable(ns_type, new):
            self._remove(ns_type, new, ns_obj)
        elif (ns_obj.get("spec") or {}).get("finalizers"):
            self._commit(ns_type, "MODIFIED", ns_obj, new)

    def _crd_type(self) -> ResourceType:
        rtype = self.types.lookup(CRD_GROUP, "v1", "customresourcedefinitions")
        assert rtype is not None
        return rtype

    def _delete_crd_instances(self, crd: dict[str, Any]) -> None:
        spec = crd["spec"]
        storage = (spec["group"], spec["names"]["plural"])
        rtype = self._any_version(storage)
        if rtype is None:
            return
        for obj in list(self._objects.get(storage, {}).values()):
            self._delete_object(rtype, obj, "Background")

    def _maybe_finalize_crd(self, crd_name: str) -> None:
        crd_type = self._crd_type()
        crd = self._bucket(crd_type).get(("", crd_name))
        if crd is None or not crd["metadata"].get("deletionTimestamp"):
            return
        spec = crd["spec"]
        if self._objects.get((spec["group"], spec["names"]["plural"])):
            return
        if CRD_CLEANUP_FINALIZER in (crd["metadata"].get("finalizers") or []):
            self._drop_finalizer(crd_type, crd, CRD_CLEANUP_FINALIZER)

    def _serve_crd(self, crd: dict[str, Any]) -> None:
        """(Re)serve the resource a CRD defines, at once (the emulator skips the establishing
        delay of the real server)."""
        new_types = types_from_crd(crd)
        if not new_types:
            return
        self.types.remove_resource(new_types[0].group, new_types[0].plural)
        for rtype in new_types:
            self.types.add(rtype)

    def _unserve_crd(self, crd: dict[str, Any]) -> None:
        spec = crd["spec"]
        storage = (spec["group"], spec["names"]["plural"])
        rtype = self._any_version(storage)
        if rtype is not None:
            for obj in list(self._objects.get(storage, {}).values()):
                self._commit(rtype, "DELETED", obj, obj)
        self._objects.pop(storage, None)
        for sub in self._subscriptions.pop(storage, []):
            sub.deliver(None, None)
            sub.closed = True
        self.types.remove_resource(*storage)
