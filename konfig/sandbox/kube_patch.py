"""The three PATCH formats of the Kubernetes API, applied to plain dicts.

- JSON merge patch, RFC 7386 (``application/merge-patch+json``): maps merge recursively,
  ``null`` deletes a key, every other value (lists included) replaces.
- JSON patch, RFC 6902 (``application/json-patch+json``): add, remove, replace, move, copy,
  test. A failing ``test`` or a path that does not resolve is 422 Invalid, as in the real server
  (kopf relies on this for its optimistic ``test /metadata/resourceVersion`` operation).
- Strategic merge patch (``application/strategic-merge-patch+json``), simplified: it is a merge
  patch, except that a list whose items are all maps carrying a merge key (``name``; ``type``
  for ``conditions``) is merged item by item on that key instead of replaced; an item
  ``{"$patch": "delete", name: ...}`` removes the matching item, and ``{"$patch": "replace"}``
  in a map replaces the map. Other directives (``$retainKeys``, ``$setElementOrder``,
  ``$deleteFromPrimitiveList``) are dropped. The real server derives merge keys from the Go types
  (https://kubernetes.io/docs/tasks/manage-kubernetes-objects/update-api-object-kubectl-patch/).
"""

from __future__ import annotations

import copy
from typing import Any


class PatchError(Exception):
    """A patch that cannot be applied; the store turns it into a 422 Invalid."""


# -- merge patch (RFC 7386) ----------------------------------------------------------------------

def merge_patch(target: Any, patch: Any) -> Any:
    """Return ``target`` merged with ``patch`` per RFC 7386 (inputs are not modified)."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = copy.deepcopy(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


# -- JSON patch (RFC 6902) -----------------------------------------------------------------------

def _pointer(path: str) -> list[str]:
    """Split an RFC 6901 JSON pointer into unescaped tokens."""
    if path == "":
        return []
    if not path.startswith("/"):
        raise PatchError(f"invalid JSON pointer {path!r}")
    return [token.replace("~1", "/").replace("~0", "~") for token in path[1:].split("/")]


def _resolve_parent(doc: Any, tokens: list[str], path: str) -> tuple[Any, str]:
    node = doc
    for token in tokens[:-1]:
        if isinstance(node, dict) and token in node:
            node = node[token]
        elif isinstance(node, list) and token.isdigit() and int(token) < len(node):
            node = node[int(token)]
        else:
            raise PatchError(f"path {path!r} does not exist")
    return node, tokens[-1]


def _get(doc: Any, path: str) -> Any:
    node = doc
    for token in _pointer(path):
        if isinstance(node, dict) and token in node:
            node = node[token]
        elif isinstance(node, list) and token.isdigit() and int(token) < len(node):
            node = node[int(token)]
        else:
            raise PatchError(f"path {path!r} does not exist")
    return node


def _add(doc: Any, path: str, value: Any) -> Any:
    tokens = _pointer(path)
    if not tokens:
        return value
    parent, last = _resolve_parent(doc, tokens, path)
    if isinstance(parent, dict):
        parent[last] = value
    elif isinstance(parent, list):
        if last == "-":
            parent.append(value)
        elif last.isdigit() and int(last) <= len(parent):
            parent.insert(int(last), value)
        else:
            raise PatchError(f"index out of range in {path!r}")
    else:
        raise PatchError(f"cannot add to a scalar at {path!r}")
    return doc


def _remove(doc: Any, path: str) -> tuple[Any, Any]:
    tokens = _pointer(path)
    if not tokens:
        raise PatchError("cannot remove the whole document")
    parent, last = _resolve_parent(doc, tokens, path)
    if isinstance(parent, dict) and last in parent:
        return doc, parent.pop(last)
    if isinstance(parent, list) and last.isdigit() and int(last) < len(parent):
        return doc, parent.pop(int(last))
    raise PatchError(f"path {path!r} does not exist")


def json_patch(target: Any, operations: Any) -> Any:
    """Return ``target`` with RFC 6902 ``operations`` applied (the input is not modified).

    Raises PatchError for a malformed operation, a missing path or a failed ``test``."""
    if not isinstance(operations, list):
        raise PatchError("a JSON patch must be a list of operations")
    doc = copy.deepcopy(target)
    for op in operations:
        if not isinstance(op, dict) or "op" not in op or "path" not in op:
            raise PatchError(f"malformed JSON patch operation {op!r}")
        kind, path = op["op"], op["path"]
        if kind == "add":
            doc = _add(doc, path, copy.deepcopy(op.get("value")))
        elif kind == "remove":
            doc, _ = _remove(doc, path)
        elif kind == "replace":
            doc, _ = _remove(doc, path)
            doc = _add(doc, path, copy.deepcopy(op.get("value")))
        elif kind == "move":
            doc, value = _remove(doc, op["from"])
            doc = _add(doc, path, value)
        elif kind == "copy":
            doc = _add(doc, path, copy.deepcopy(_get(doc, op["from"])))
        elif kind == "test":
            if _get(doc, path) != op.get("value"):
                raise PatchError(f"test operation failed at {path!r}")
        else:
            raise PatchError(f"unknown JSON patch operation {kind!r}")
    return doc


# -- strategic merge patch (simplified) -----------------------------------------------------------

#: Lists of maps with a ``name`` that the real schema declares atomic: RBAC bindings'
#: ``subjects`` (``+listType=atomic`` in k8s.io/api/rbac/v1; found by the conformance test).
ATOMIC_LISTS = frozenset({"subjects"})


def list_merge_key(field: str | None, items: list[Any]) -> str | None:
    """The merge key of a list of maps (``name``, or ``type`` for ``conditions``), or None when
    the list is atomic. Shared with server-side apply, which keys the same lists the same way."""
    if field in ATOMIC_LISTS:
        return None
    if not items or not all(isinstance(item, dict) for item in items):
        return None
    candidates = ("type", "name") if field == "conditions" else ("name",)
    for key in candidates:
        if all(key in item for item in items if item.get("$patch") != "replace"):
            return key
    return None


def strategic_merge_patch(target: Any, patch: Any, field: str | None = None) -> Any:
    """Return ``target`` merged with ``patch`` using the simplified strategic rules described in
    the module docstring (inputs are not modified)."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    if patch.get("$patch") == "replace":
        return {k: copy.deepcopy(v) for k, v in patch.items() if not k.startswith("$")}
    if patch.get("$patch") == "delete":
        return None
    result = copy.deepcopy(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if key.startswith("$"):
            continue
        if value is None:
            result.pop(key, None)
        elif isinstance(value, list) and isinstance(result.get(key), list):
            result[key] = _merge_list(key, result[key], value)
        else:
            merged = strategic_merge_patch(result.get(key), value, key)
            if merged is None:
                result.pop(key, None)
            else:
                result[key] = merged
    return result


def _merge_list(field: str, current: list[Any], patch: list[Any]) -> list[Any]:
    key = list_merge_key(field, patch) if patch else None
    if key is None or list_merge_key(field, current) != key and current:
        return [copy.deepcopy(item) for item in patch]
    merged = [copy.deepcopy(item) for item in current]
    for item in patch:
        index = next((i for i, old in enumerate(merged) if old.get(key) == item.get(key)), None)
        if item.get("$patch") == "delete":
            if index is not None:
                merged.pop(index)
        elif index is None:
            merged.append(strategic_merge_patch(None, item, None))
        else:
            merged[index] = strategic_merge_patch(merged[index], item, None)
    return merged
