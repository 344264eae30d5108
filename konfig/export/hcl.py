"""A small writer for Terraform's native HCL syntax, formatted as ``terraform fmt`` does.

Values are plain Python data plus three markers: :class:`Expr` (a raw expression such as
``google_project.acme.project_id``), :class:`Template` (a string with ``${...}``
interpolations) and :class:`HclMap` (a map attribute, ``labels = {...}``, as opposed to a
nested block). A :class:`Body` is an ordered list of ``(name, value)`` entries where a value
that is itself a :class:`Body` renders as a nested block.

Layout rules (those of ``hclwrite.Format``, and of the upstream Config Connector converter's
golden files): consecutive one-line attributes align their ``=``; blocks and multi-line maps
are set apart by blank lines; lists render on one line. String escapes follow the HCL native
syntax spec (https://github.com/hashicorp/hcl/blob/main/hclsyntax/spec.md#template-expressions):
``\\``, ``"``, ``\\n``, ``\\r``, ``\\t``, other control characters as ``\\uNNNN``, and a
literal ``${`` / ``%{`` doubled to ``$${`` / ``%%{`` so it is not read as a template sequence.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Iterable

INDENT = "  "
_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_-]*$")
#: Bare words that HCL reads as literals or keywords, so map keys spelled so must be quoted.
_RESERVED = {"true", "false", "null", "for", "in", "if", "endfor", "endif"}


@dataclass(frozen=True)
class Expr:
    """A raw HCL expression, written verbatim (``var.x``, ``google_folder.a.folder_id``)."""

    text: str


@dataclass(frozen=True)
class Template:
    """A string template: literal parts and :class:`Expr` parts, rendered as
    ``"folders/${google_folder.a.folder_id}"``."""

    parts: tuple[str | Expr, ...]


@dataclass(frozen=True)
class HclMap:
    """A map-typed attribute (``labels = { env = "dev" }``); keys are kept verbatim."""

    items: tuple[tuple[str, Any], ...]

    @classmethod
    def of(cls, mapping: dict[str, Any]) -> "HclMap":
        return cls(tuple(sorted(mapping.items())))


@dataclass
class Body:
    """The inside of a block: ``(name, value)`` entries in output order. A :class:`Body`
    value is a nested block; repeat a name for repeated blocks."""

    entries: list[tuple[str, Any]] = field(default_factory=list)

    def add(self, name: str, value: Any) -> "Body":
        self.entries.append((name, value))
        return self

    def get(self, name: str) -> Any:
        """The first value named ``name`` (``None`` when absent)."""
        return next((v for n, v in self.entries if n == name), None)


@dataclass(frozen=True)
class Block:
    """A top-level block: ``resource "type" "name" { ... }``, ``import { ... }``, ..."""

    type: str
    labels: tuple[str, ...]
    body: Body


def concat(*parts: "str | Expr | Template") -> "str | Template":
    """Join strings and expressions into one string value: a plain ``str`` when every part is
    literal, else a :class:`Template`. Nested templates are flattened."""
    flat: list[str | Expr] = []
    for part in parts:
        items = part.parts if isinstance(part, Template) else (part,)
        for item in items:
            if isinstance(item, str) and flat and isinstance(flat[-1], str):
                flat[-1] += item
            elif item != "":
                flat.append(item)
    if all(isinstance(p, str) for p in flat):
        return "".join(flat)  # type: ignore[arg-type]
    return Template(tuple(flat))


def quote(text: str) -> str:
    """A quoted HCL string literal with the escapes of the native syntax."""
    out = []
    for i, ch in enumerate(text):
        nxt = text[i + 1 : i + 2]
        if ch == "\\":
            out.append("\\\\")
        elif ch == '"':
            out.append('\\"')
        elif ch == "\n":
            out.append("\\n")
        elif ch == "\r":
            out.append("\\r")
        elif ch == "\t":
            out.append("\\t")
        elif ch in "$%" and nxt == "{":
            out.append(ch + ch)
        elif ord(ch) < 0x20 or ord(ch) == 0x7F:
            out.append(f"\\u{ord(ch):04x}")
        else:
            out.append(ch)
    return '"' + "".join(out) + '"'


def _template(value: Template) -> str:
    if len(value.parts) == 1 and isinstance(value.parts[0], Expr):
        return value.parts[0].text  # "${x}" alone is just x (terraform fmt's advice)
    rendered = []
    for part in value.parts:
        rendered.append("${" + part.text + "}" if isinstance(part, Expr) else quote(part)[1:-1])
    return '"' + "".join(rendered) + '"'


def map_key(key: str) -> str:
    """A map key: bare when it is an identifier (``managed-by-cnrm``), quoted otherwise."""
    return key if _IDENTIFIER.match(key) and key not in _RESERVED else quote(key)


def inline(value: Any) -> str:
    """One-line rendering of a scalar, expression, template or list."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() else repr(value)
    if isinstance(value, str):
        return quote(value)
    if isinstance(value, Expr):
        return value.text
    if isinstance(value, Template):
        return _template(value)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(inline(v) for v in value) + "]"
    if isinstance(value, HclMap) and not value.items:
        return "{}"
    if isinstance(value, HclMap):
        return "{ " + ", ".join(f"{map_key(k)} = {inline(v)}" for k, v in value.items) + " }"
    raise TypeError(f"cannot render {type(value).__name__} as an HCL value: {value!r}")


def _is_multiline(value: Any) -> bool:
    return isinstance(value, Body) or (isinstance(value, HclMap) and bool(value.items))


def _aligned(pairs: list[tuple[str, str]], indent: str) -> list[str]:
    width = max(len(k) for k, _ in pairs)
    return [f"{indent}{k.ljust(width)} = {v}" for k, v in pairs]


def render_body(body: Body, depth: int = 1) -> list[str]:
    """Lines of ``body`` at ``depth`` levels of indentation (no trailing newline)."""
    indent = INDENT * depth
    lines: list[str] = []
    group: list[tuple[str, str]] = []
    previous_multiline: bool | None = None

    def flush() -> None:
        if group:
            lines.extend(_aligned(group, indent))
            group.clear()

    for name, value in body.entries:
        multiline = _is_multiline(value)
        if previous_multiline is not None and (multiline or previous_multiline):
            flush()
            lines.append("")
        previous_multiline = multiline
        if isinstance(value, Body) and not value.entries:
            lines.append(f"{indent}{name} {{}}")
        elif isinstance(value, Body):
            lines.append(f"{indent}{name} {{")
            lines.extend(render_body(value, depth + 1))
            lines.append(f"{indent}}}")
        elif isinstance(value, HclMap) and value.items:
            lines.append(f"{indent}{name} = {{")
            pairs = [(map_key(k), inline(v)) for k, v in value.items]
            lines.extend(_aligned(pairs, indent + INDENT))
            lines.append(f"{indent}}}")
        else:
            group.append((name, inline(value)))
    flush()
    return lines


def render_block(block: Block) -> str:
    """One top-level block with a trailing newline."""
    head = " ".join([block.type, *(quote(label) for label in block.labels)])
    return "\n".join([f"{head} {{", *render_body(block.body), "}"]) + "\n"


def render_file(blocks: Iterable[Block], header: str = "") -> str:
    """A whole ``.tf`` file: an optional ``#`` comment header, then blocks separated by one
    blank line."""
    parts = [render_block(b) for b in blocks]
    text = "\n".join(parts)
    if header:
        comment = "".join(f"# {line}".rstrip() + "\n" for line in header.splitlines())
        text = comment + ("\n" + text if text else "")
    return text
