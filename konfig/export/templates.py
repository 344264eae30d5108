"""Config Connector ID templates: ``projects/{{project}}/topics/{{name}}``.

Syntax, as upstream ``pkg/krmtotf/templating.go`` defines it: ``{{field}}`` is replaced by the
value of a Terraform field, ``{{field?}}`` may be empty, ``[a|b]`` takes ``a`` when all its
fields resolve and ``b`` otherwise, and ``{{value}}`` stands for the value a reference points
at. Values are ``str`` or :class:`konfig.export.hcl.Template` (when part of the value is only
known as a Terraform expression, such as ``var.folder_id``).
"""

from __future__ import annotations

import re
from typing import Callable

from konfig.export.hcl import Template, concat

StrValue = str | Template
Lookup = Callable[[str], StrValue | None]

FIELD = re.compile(r"{{([0-9A-Za-z_.?]+)}}")


def template_fields(template: str) -> list[str]:
    """Field names used by ``template`` (without the ``?`` marker)."""
    return [m.group(1).rstrip("?") for m in FIELD.finditer(template)]


def expand(template: str, lookup: Lookup, value: StrValue | None = None) -> StrValue | None:
    """Fill ``template`` with ``lookup(field)`` (and ``value`` for ``{{value}}``).

    Returns ``None`` when a required field has no value, so callers can tell "unknown" from
    an empty string.
    """
    if "[" in template:
        left, right = template.index("["), template.rindex("]")
        pieces = [
            expand(template[:left], lookup, value),
            expand(template[left + 1 : right], lookup, value),
            expand(template[right + 1 :], lookup, value),
        ]
        if any(p is None for p in pieces):
            return None
        return concat(*pieces)  # type: ignore[arg-type]
    if "|" in template:
        first, second = template.split("|", 1)
        result = expand(first, lookup, value)
        return result if result is not None else expand(second, lookup, value)
    parts: list[StrValue] = []
    position = 0
    for match in FIELD.finditer(template):
        parts.append(template[position : match.start()])
        name = match.group(1)
        optional = name.endswith("?")
        name = name.rstrip("?")
        resolved = value if name == "value" else lookup(name)
        if resolved is None or resolved == "":
            if not optional:
                return None
            resolved = ""
        parts.append(resolved)
        position = match.end()
    parts.append(template[position:])
    return concat(*parts)
