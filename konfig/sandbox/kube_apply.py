"""Field ownership (``metadata.managedFields``) and server-side apply, simplified.

Model (https://kubernetes.io/docs/reference/using-api/server-side-apply/):
- Every write records which manager owns which fields. A field is a path of ``fieldsV1``
  elements: ``f:<key>`` for a map key, ``k:{"name":"x"}`` for an item of an associative list.
  Lists of maps whose items all carry ``name`` (or ``type`` for ``conditions``) are associative;
  every other list, and every scalar, is a leaf owned as a whole. The real server takes list
  types from the Go types or the CRD's ``x-kubernetes-list-type``; the emulator uses this
  heuristic for both.
- managedFields entries: ``{manager, operation: Apply|Update, apiVersion, time,
  fieldsType: FieldsV1, fieldsV1, subresource?}``; one entry per (manager, operation,
  subresource). ``fieldsV1`` nests path elements, ``"."`` marking a list item owned in itself.
- Create/update/patch (operation ``Update``): the manager takes every field whose value it
  changed (or set); other managers lose those fields; removed fields are dropped everywhere.
- Apply: the applied configuration's fields become the manager's ``Apply`` set. A field it
  sets to a different value than the live one while another manager owns it is a conflict
  (409, unless ``force``, which moves ownership). Fields the manager applied before and omits
  now are removed from the object unless another manager still owns them. Equal values are
  co-owned without conflict. Ownership of list items themselves never conflicts (only leaves).
"""

from __future__ import annotations

import copy
import json
from typing import Any

from konfig.sandbox.kube_patch import list_merge_key

Path = tuple[str, ...]

# metadata fields set by the server, never owned by a manager.
_SERVER_METADATA = ("name", "namespace", "uid", "resourceVersion", "generation", "creationTimestamp",
                    "deletionTimestamp", "deletionGracePeriodSeconds", "managedFields", "selfLink")


class ApplyConflict(Exception):
    """An apply would change fields owned by other managers. ``conflicts`` lists
    (manager, field path like ``.spec.replicas``)."""

    def __init__(self, conflicts: list[tuple[str, str]]):
        self.conflicts = conflicts
        text = "; ".join(f'conflict with "{m}": {f}' for m, f in conflicts)
        super().__init__(f"Apply failed with {len(conflicts)} conflict{'s' if len(conflicts) > 1 else ''}: {text}")


def tracked_view(obj: dict[str, Any] | None, has_status: bool, subresource: str | None) -> dict[str, Any]:
    """The part of an object whose fields are tracked for this (sub)resource: no apiVersion,
    kind or server-set metadata; only ``status`` for the status subresource; no ``status`` for
    the main resource of a kind with a status subresource."""
    if not obj:
        return {}
    if subresource == "status":
        return {"status": copy.deepcopy(obj["status"])} if "status" in obj else {}
    view = {k: copy.deepcopy(v) for k, v in obj.items() if k not in ("apiVersion", "kind")}
    if has_status:
        view.pop("status", None)
    metadata = {k: v for k, v in (view.get("metadata") or {}).items() if k not in _SERVER_METADATA}
    if metadata:
        view["metadata"] = metadata
    else:
        view.pop("metadata", None)
    return view


def _merge_key(field: str, items: list[Any]) -> str | None:
    return list_merge_key(field, items)


def _item_element(key: str, item: dict[str, Any]) -> str:
    return "k:" + json.dumps({key: item[key]}, separators=(",", ":"), sort_keys=True)


def field_paths(value: Any, prefix: Path = ()) -> set[Path]:
    """The leaf paths (and associative-list item paths) of a map, in fieldsV1 elements."""
    paths: set[Path] = set()
    if not isinstance(value, dict):
        return paths
    for key, child in value.items():
        path = prefix + (f"f:{key}",)
        if isinstance(child, dict) and child:
            paths |= field_paths(child, path)
        elif isinstance(child, list) and (mkey := _merge_key(key, child)):
            for item in child:
                item_path = path + (_item_element(mkey, item),)
                paths.add(item_path)
                paths |= field_paths(item, item_path)
        else:
            paths.add(path)
    return paths


_MISSING = object()


def value_at(obj: Any, path: Path) -> Any:
    """The value at a fieldsV1 path, or a sentinel (never equal to a real value) if absent."""
    node = obj
    for element in path:
        if element.startswith("f:") and isinstance(node, dict):
            node = node.get(element[2:], _MISSING)
        elif element.startswith("k:") and isinstance(node, list):
            wanted = json.loads(element[2:])
            node = next((item for item in node if isinstance(item, dict)
                         and all(item.get(k) == v for k, v in wanted.items())), _MISSING)
        else:
            return _MISSING
        if node is _MISSING:
            return _MISSING
    return node


def _delete_at(obj: dict[str, Any], path: Path) -> None:
    """Remove the value at a path, then any container left empty by the removal."""
    parents: list[tuple[Any, str]] = []
    node: Any = obj
    for element in path:
        parents.append((node, element))
        node = value_at(node, (element,))
        if node is _MISSING:
            return
    for parent, element in reversed(parents):
        if element.startswith("f:"):
            parent.pop(element[2:], None)
        else:
            wanted = json.loads(element[2:])
            parent[:] = [i for i in parent if not all(i.get(k) == v for k, v in wanted.items())]
        if parent or parent is obj:
            break


def path_to_string(path: Path) -> str:
    """A human form of a path: ``.spec.containers[name="app"].image``."""
    text = ""
    for element in path:
        if element.startswith("f:"):
            text += "." + element[2:]
        elif element.startswith("k:"):
            text += "[" + ",".join(f"{k}={json.dumps(v)}" for k, v in json.loads(element[2:]).items()) + "]"
    return text


def to_fields_v1(paths: set[Path]) -> dict[str, Any]:
    """Encode a path set as a nested fieldsV1 map."""
    root: dict[str, Any] = {}
    for path in sorted(paths):
        node = root
        for element in path:
            node = node.setdefault(element, {})
        node["."] = {}

    def clean(node: dict[str, Any]) -> dict[str, Any]:
        children = {k: clean(v) for k, v in node.items() if k != "."}
        if "." in node and children:
            return {".": {}, **children}
        return children

    return clean(root)


def from_fields_v1(tree: dict[str, Any], prefix: Path = ()) -> set[Path]:
    """Decode a fieldsV1 map into a path set."""
    paths: set[Path] = set()
    for element, child in (tree or {}).items():
        if element == ".":
            paths.add(prefix)
            continue
        path = prefix + (element,)
        if not child:
            paths.add(path)
        else:
            paths |= from_fields_v1(child, path)
    return {p for p in paths if p}


def _entry(manager: str, operation: str, api_version: str, paths: set[Path], subresource: str | None,
           now: str) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "manager": manager,
        "operation": operation,
        "apiVersion": api_version,
        "time": now,
        "fieldsType": "FieldsV1",
        "fieldsV1": to_fields_v1(paths),
    }
    if subresource:
        entry["subresource"] = subresource
    return entry


def _same_slot(entry: dict[str, Any], manager: str, operation: str, subresource: str | None) -> bool:
    return (entry.get("manager") == manager and entry.get("operation") == operation
            and entry.get("subresource") == subresource)


def _rebuild(entries: list[tuple[dict[str, Any], set[Path]]], now: str) -> list[dict[str, Any]]:
    """Re-encode entries whose path sets changed; drop entries left without fields."""
    result = []
    for entry, paths in entries:
        if not paths:
            continue
        if from_fields_v1(entry.get("fieldsV1") or {}) != paths:
            entry = {**entry, "fieldsV1": to_fields_v1(paths), "time": now}
        result.append(entry)
    return result


def record_update(managed: list[dict[str, Any]], manager: str, api_version: str, old_view: dict[str, Any],
                  new_view: dict[str, Any], subresource: str | None, now: str) -> list[dict[str, Any]]:
    """managedFields after a create/update/patch by ``manager`` (operation ``Update``)."""
    new_paths = field_paths(new_view)
    changed = {p for p in new_paths if value_at(old_view, p) != value_at(new_view, p)}
    removed = field_paths(old_view) - new_paths
    entries = []
    mine: set[Path] = set()
    for entry in managed:
        paths = from_fields_v1(entry.get("fieldsV1") or {}) - removed
        if _same_slot(entry, manager, "Update", subresource):
            mine = paths
            continue
        entries.append((entry, paths - changed))
    result = _rebuild(entries, now)
    mine |= changed
    if mine:
        result.append(_entry(manager, "Update", api_version, mine, subresource, now))
    return result


def _merge_applied(live: Any, applied: Any, field: str | None = None) -> Any:
    """Merge an applied configuration into the live value: maps recursively, associative lists
    item by item, everything else replaced."""
    if isinstance(applied, dict) and isinstance(live, dict):
        result = copy.deepcopy(live)
        for key, value in applied.items():
            result[key] = _merge_applied(live.get(key), value, key)
        return result
    if isinstance(applied, list) and isinstance(live, list) and field:
        key = _merge_key(field, applied)
        if key and _merge_key(field, live) in (key, None):
            result = [copy.deepcopy(i) for i in live]
            for item in applied:
                index = next((n for n, old in enumerate(result) if old.get(key) == item[key]), None)
                if index is None:
                    result.append(copy.deepcopy(item))
                else:
                    result[index] = _merge_applied(result[index], item)
            return result
    return copy.deepcopy(applied)


def server_side_apply(live: dict[str, Any] | None, applied_view: dict[str, Any], managed: list[dict[str, Any]],
                      *, manager: str, api_version: str, force: bool, subresource: str | None,
                      live_view: dict[str, Any], now: str) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Apply ``applied_view`` (a tracked view of the applied configuration) for ``manager``.

    ``live`` is the full live object (None when creating), ``live_view`` its tracked view.
    Returns (new full object without managedFields changes, new managedFields).
    Raises ApplyConflict when fields owned by others would change and ``force`` is false."""
    applied_paths = field_paths(applied_view)
    previous: set[Path] = set()
    others: list[tuple[dict[str, Any], set[Path]]] = []
    for entry in managed:
        paths = from_fields_v1(entry.get("fieldsV1") or {})
        if _same_slot(entry, manager, "Apply", subresource):
            previous = paths
        else:
            others.append((entry, paths))

    conflicts: list[tuple[str, str]] = []
    for entry, paths in others:
        for path in sorted(paths & applied_paths):
            if path[-1].startswith("k:"):
                continue  # owning a list item itself never conflicts; its fields may
            if value_at(live_view, path) != value_at(applied_view, path):
                conflicts.append((entry.get("manager", ""), path_to_string(path)))
                if force:
                    paths.discard(path)
    if conflicts and not force:
        raise ApplyConflict(conflicts)

    owned_by_others = set().union(*(paths for _, paths in others)) if others else set()
    result = copy.deepcopy(live) if live else {}
    removed: list[Path] = []
    # Shortest first: a dropped list item goes as a whole (deleting its key field first would
    # leave an unmatchable remainder), and nothing below an already removed path is visited.
    for path in sorted(previous - applied_paths, key=len):
        if any(path[:len(done)] == done for done in removed):
            continue
        if not any(other[:len(path)] == path for other in owned_by_others):
            _delete_at(result, path)
            removed.append(path)
    result = _merge_applied(result, applied_view)
    new_managed = _rebuild(others, now)
    new_managed.insert(0, _entry(manager, "Apply", api_version, applied_paths, subresource, now))
    return result, new_managed
