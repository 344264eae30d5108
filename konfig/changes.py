"""What applying a definitions tree would change, in one vocabulary for every adapter. Pure.

``konfig diff`` (and ``konfig plan --against-cluster``) collects one :class:`ObjectChange` per
object that would be created (``+``), updated (``~``, with the changed field paths, old and
new values) or pruned (``-``, with what its deletion policy does: ``abandon``, ``archive`` or
``delete``), plus ``conflict`` entries (the name is taken by an object that is not Konfig's,
or fields are owned by another field manager). A :class:`ChangeSet` renders as JSON for tools
and as GitLab's Terraform report for the merge request widget.

Secrets never leave through a plan: values under keys that name secrets or tokens, and every
value of a Secret's ``data``/``stringData``, are masked (:func:`mask`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Iterable, Literal, Mapping

Op = Literal["create", "update", "delete", "conflict"]
#: What pruning does to the real resource: Config Connector ``abandon`` keeps the cloud
#: resource, GitLab projects are ``archive``d, everything else is deleted.
Policy = Literal["abandon", "archive", "delete", ""]
SYMBOLS = {"create": "+", "update": "~", "delete": "-", "conflict": "!"}
MASK = "(masked)"

#: Keys whose values are credentials (matched on a key's lower-cased name, path segment by
#: segment). ``tokenRef``-style references are names of secrets, not secrets, but they are
#: masked too: a plan artifact is readable by every Reporter of the project (GitLab docs,
#: "Terraform integration in merge requests", caution on plan.json).
_SECRET_KEY = re.compile(r"(password|passwd|secret|token|private[_-]?key|api[_-]?key|"
                         r"credential|client[_-]?key|\bkey\b)", re.IGNORECASE)
#: Server-set or Konfig-bookkeeping fields left out of field diffs.
_IGNORED_METADATA = ("managedFields", "resourceVersion", "generation", "uid",
                     "creationTimestamp", "selfLink")


@dataclass(frozen=True)
class FieldChange:
    """One changed field: ``path`` in dotted form with ``[i]`` for list items
    (``spec.env.LOG_LEVEL``), ``old`` / ``new`` values (``None`` when absent)."""

    path: str
    old: Any
    new: Any

    def describe(self) -> str:
        return f"{self.path}: {_short(self.old)} → {_short(self.new)}"


@dataclass(frozen=True)
class ObjectChange:
    """One object that would change. ``system`` is ``cluster`` or ``gitlab``; ``kind``,
    ``namespace`` (``""`` when cluster-scoped or for GitLab) and ``name`` identify it; ``layer``
    says which set it belongs to (``definitions``: Konfig's custom resources as ``konfig
    apply`` writes them; ``objects``: what the operator writes from them; ``gitlab``)."""

    system: str
    layer: str
    op: Op
    kind: str
    namespace: str
    name: str
    fields: tuple[FieldChange, ...] = ()
    policy: Policy = ""
    reason: str = ""
    managers: tuple[str, ...] = ()

    @property
    def symbol(self) -> str:
        return SYMBOLS[self.op]

    @property
    def title(self) -> str:
        where = f"{self.namespace}/{self.name}" if self.namespace else self.name
        return f"{self.kind} {where}"

    def to_json(self) -> dict[str, Any]:
        return {"system": self.system, "layer": self.layer, "op": self.op, "kind": self.kind,
                "namespace": self.namespace, "name": self.name,
                "fields": [{"path": f.path, "old": f.old, "new": f.new} for f in self.fields],
                "policy": self.policy, "reason": self.reason, "managers": list(self.managers)}


@dataclass
class ChangeSet:
    """Every change of one ``konfig diff`` run, and notes (what was not compared and why)."""

    changes: list[ObjectChange] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    compared: list[str] = field(default_factory=list)

    def counts(self) -> dict[str, int]:
        """``{"create": N, "update": N, "delete": N, "conflict": N}``."""
        counts = dict.fromkeys(("create", "update", "delete", "conflict"), 0)
        for change in self.changes:
            counts[change.op] += 1
        return counts

    @property
    def empty(self) -> bool:
        return not self.changes

    def gitlab_report(self) -> dict[str, int]:
        """GitLab's ``artifacts:reports:terraform`` summary: ``{"create", "update",
        "delete"}`` counts, which the merge request widget shows without any token. Conflicts
        count as updates (applying would have to take fields over). Source:
        https://docs.gitlab.com/user/infrastructure/iac/mr_integration/"""
        counts = self.counts()
        return {"create": counts["create"], "update": counts["update"] + counts["conflict"],
                "delete": counts["delete"]}

    def to_json(self) -> dict[str, Any]:
        return {"counts": self.counts(), "compared": list(self.compared),
                "changes": [c.to_json() for c in self.changes], "notes": list(self.notes)}


def is_secret_key(key: str) -> bool:
    """Whether a map key names a credential (see :data:`_SECRET_KEY`)."""
    return bool(_SECRET_KEY.search(key))


def mask(value: Any, path: str = "", *, secret: bool = False) -> Any:
    """``value`` with every leaf under a secret key replaced by :data:`MASK`."""
    if secret:
        return MASK if not isinstance(value, (dict, list)) else _mask_all(value)
    if isinstance(value, dict):
        return {k: mask(v, f"{path}.{k}", secret=is_secret_key(str(k))) for k, v in value.items()}
    if isinstance(value, list):
        return [mask(v, path) for v in value]
    return value


def _mask_all(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _mask_all(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_mask_all(v) for v in value]
    return MASK


def comparable(obj: Mapping[str, Any], *, drop_annotations: Iterable[str] = ()) -> dict[str, Any]:
    """The parts of a Kubernetes object a person changes: everything but ``status`` and
    server-set metadata (:data:`_IGNORED_METADATA`), without the annotations named in
    ``drop_annotations`` (Konfig's desired-hash, say). Mask the diff with :func:`masked`."""
    out = {k: v for k, v in obj.items() if k != "status"}
    meta = {k: v for k, v in (obj.get("metadata") or {}).items() if k not in _IGNORED_METADATA}
    annotations = {k: v for k, v in (meta.get("annotations") or {}).items()
                   if k not in set(drop_annotations)
                   and k != "kubectl.kubernetes.io/last-applied-configuration"}
    if annotations:
        meta["annotations"] = annotations
    else:
        meta.pop("annotations", None)
    out["metadata"] = meta
    return out


def masked(changes: Iterable[FieldChange], *, kind: str = "") -> tuple[FieldChange, ...]:
    """``changes`` with the values of secret fields replaced by :data:`MASK` (a secret that
    changed still shows as changed: the diff is taken before masking). Secret fields: any
    path segment naming a credential (:func:`is_secret_key`), and everything under a
    Secret's ``data``/``stringData``."""
    out = []
    for change in changes:
        segments = re.split(r"[.\[\]=]+", change.path)
        secret = any(is_secret_key(s) for s in segments if s) or (
            kind == "Secret" and segments[0] in ("data", "stringData"))
        if secret:
            change = FieldChange(change.path, None if change.old is None else MASK,
                                 None if change.new is None else MASK)
        else:
            change = FieldChange(change.path, mask(change.old), mask(change.new))
        out.append(change)
    return tuple(out)


def field_changes(old: Any, new: Any, path: str = "") -> list[FieldChange]:
    """Every leaf where ``old`` and ``new`` differ, in document order of ``new`` then fields
    only ``old`` has. Lists of maps that all carry ``name`` are compared by name
    (``spec.containers[name=app].image``); other lists compare item by item, and a length
    change reports the whole list."""
    if isinstance(old, dict) and isinstance(new, dict):
        out: list[FieldChange] = []
        for key, value in new.items():
            sub = f"{path}.{key}" if path else str(key)
            if key not in old:
                out.append(FieldChange(sub, None, value))
            else:
                out += field_changes(old[key], value, sub)
        for key, value in old.items():
            if key not in new:
                out.append(FieldChange(f"{path}.{key}" if path else str(key), value, None))
        return out
    if isinstance(old, list) and isinstance(new, list):
        if _named(old) and _named(new):
            by_name = {item["name"]: item for item in old}
            out = []
            for item in new:
                sub = f"{path}[name={item['name']}]"
                out += (field_changes(by_name.pop(item["name"]), item, sub)
                        if item["name"] in by_name else [FieldChange(sub, None, item)])
            out += [FieldChange(f"{path}[name={n}]", item, None) for n, item in by_name.items()]
            return out
        if len(old) == len(new):
            out = []
            for i, (a, b) in enumerate(zip(old, new)):
                out += field_changes(a, b, f"{path}[{i}]")
            return out
        return [FieldChange(path, old, new)]
    if type(old) is not type(new) or old != new:
        return [FieldChange(path or ".", old, new)]
    return []


def _named(items: list[Any]) -> bool:
    return bool(items) and all(isinstance(i, dict) and isinstance(i.get("name"), str)
                               for i in items) and len({i["name"] for i in items}) == len(items)


def _short(value: Any, limit: int = 80) -> str:
    if value is None:
        return "(none)"
    text = value if isinstance(value, str) else repr(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"
