"""Label and field selectors of the Kubernetes API, parsed and matched against object dicts.

Label selector grammar (https://kubernetes.io/docs/concepts/overview/working-with-objects/labels/
#label-selectors): comma-separated requirements, all of which must hold:

    key                 the label exists
    !key                the label does not exist
    key=value, key==value
    key!=value          also true when the label is absent
    key in (v1,v2)
    key notin (v1,v2)   also true when the label is absent

Field selectors (https://kubernetes.io/docs/concepts/overview/working-with-objects/field-selectors/)
are ``path=value``, ``path==value`` or ``path!=value`` joined by commas. The real API accepts only
a few paths per kind (``metadata.name`` and ``metadata.namespace`` everywhere); the emulator
accepts any dotted path and compares the value's string form (a missing field reads as ``""``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from konfig.sandbox.kube_types import StatusError

_REQUIREMENT = re.compile(
    r"""^\s*(?:
        (?P<not_exists>!\s*(?P<nkey>[^\s=!,()]+))
      | (?P<set_key>[^\s=!,()]+)\s+(?P<set_op>in|notin)\s*\((?P<values>[^)]*)\)
      | (?P<eq_key>[^\s=!,()]+)\s*(?P<eq_op>==|=|!=)\s*(?P<value>[^\s=!,()]*)
      | (?P<exists>[^\s=!,()]+)
    )\s*$""",
    re.VERBOSE,
)


@dataclass(frozen=True)
class Requirement:
    """One parsed selector requirement: ``op`` is one of
    ``exists``, ``!exists``, ``=``, ``!=``, ``in``, ``notin``."""

    key: str
    op: str
    values: frozenset[str] = frozenset()

    def matches(self, labels: dict[str, str]) -> bool:
        """Whether the labels (a str -> str dict) satisfy this requirement."""
        present = self.key in labels
        value = labels.get(self.key)
        if self.op == "exists":
            return present
        if self.op == "!exists":
            return not present
        if self.op in ("=", "in"):
            return present and value in self.values
        # "!=" and "notin" hold when the label is absent (as in the real API).
        return not present or value not in self.values


def _split_top_level(text: str) -> list[str]:
    """Split on commas that are not inside parentheses (``in (a,b)`` keeps its commas)."""
    parts, depth, current = [], 0, []
    for char in text:
        if char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
        if char == "," and depth == 0:
            parts.append("".join(current))
            current = []
        else:
            current.append(char)
    parts.append("".join(current))
    return [part for part in parts if part.strip()]


def parse_label_selector(text: str | None) -> tuple[Requirement, ...]:
    """Parse a label selector string; an empty or missing selector matches everything.

    Raises StatusError 400 BadRequest on a malformed selector (as the real API does)."""
    if not text:
        return ()
    requirements = []
    for part in _split_top_level(text):
        match = _REQUIREMENT.match(part)
        if not match:
            raise StatusError.bad_request(f"unable to parse requirement: {part.strip()!r}")
        if match["not_exists"]:
            requirements.append(Requirement(match["nkey"], "!exists"))
        elif match["set_key"]:
            values = frozenset(v.strip() for v in match["values"].split(",") if v.strip())
            requirements.append(Requirement(match["set_key"], match["set_op"], values))
        elif match["eq_key"]:
            op = "!=" if match["eq_op"] == "!=" else "="
            requirements.append(Requirement(match["eq_key"], op, frozenset([match["value"]])))
        else:
            requirements.append(Requirement(match["exists"], "exists"))
    return tuple(requirements)


def parse_field_selector(text: str | None) -> tuple[Requirement, ...]:
    """Parse a field selector (``path=value``, ``path==value``, ``path!=value``, comma-joined).

    Raises StatusError 400 BadRequest on a malformed selector."""
    if not text:
        return ()
    requirements = []
    for part in _split_top_level(text):
        match = re.match(r"^\s*([^\s=!]+)\s*(==|=|!=)\s*(.*?)\s*$", part)
        if not match:
            raise StatusError.bad_request(f"invalid field selector: {part.strip()!r}")
        op = "!=" if match[2] == "!=" else "="
        requirements.append(Requirement(match[1], op, frozenset([match[3]])))
    return tuple(requirements)


def _field_value(obj: dict[str, Any], path: str) -> str:
    """The string form of a dotted field path in an object, ``""`` if absent."""
    value: Any = obj
    for part in path.split("."):
        if not isinstance(value, dict) or part not in value:
            return ""
        value = value[part]
    if isinstance(value, bool):
        return "true" if value else "false"
    return "" if value is None else str(value)


@dataclass(frozen=True)
class Selector:
    """A label selector and a field selector, both of which must match."""

    labels: tuple[Requirement, ...] = ()
    fields: tuple[Requirement, ...] = ()

    @classmethod
    def parse(cls, label_selector: str | None, field_selector: str | None) -> Selector:
        """Parse both query parameters; raises StatusError 400 on malformed input."""
        return cls(parse_label_selector(label_selector), parse_field_selector(field_selector))

    def matches(self, obj: dict[str, Any]) -> bool:
        """Whether the object dict satisfies every label and field requirement."""
        labels = (obj.get("metadata") or {}).get("labels") or {}
        if not all(req.matches(labels) for req in self.labels):
            return False
        for req in self.fields:
            value = _field_value(obj, req.key)
            if not req.matches({req.key: value}):
                return False
        return True
