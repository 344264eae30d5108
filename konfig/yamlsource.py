"""YAML documents with line numbers: PyYAML's composer (libyaml when available) keeps a
``Mark`` on every node, which we flatten into a field-path → line map per document.

Pure parsing of text already read; the loader does the file I/O.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import yaml

_Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


@dataclass(frozen=True)
class YamlDocument:
    """One document of a file: its data, the 1-based line where it starts, and ``lines``
    mapping dotted field paths (``spec.resources[1].template``) to 1-based lines."""

    data: Any
    line: int
    lines: dict[str, int]


@dataclass(frozen=True)
class YamlProblem:
    """A syntax or structure problem at ``line`` (1-based) with its ``field`` path."""

    line: int
    field: str
    message: str


def parse_documents(text: str) -> tuple[list[YamlDocument], list[YamlProblem]]:
    """Parse every document of ``text``. Returns the documents and the problems found
    (a YAML syntax error stops the file there; duplicate keys are reported and the last one
    wins, as in YAML loaders, but the user hears of it)."""
    loader = _Loader(text)
    documents: list[YamlDocument] = []
    problems: list[YamlProblem] = []
    try:
        while loader.check_node():
            node = loader.get_node()
            lines: dict[str, int] = {}
            _index(node, "", lines, problems)
            data = loader.construct_document(node)
            if data is not None:
                documents.append(YamlDocument(data, node.start_mark.line + 1, lines))
    except yaml.MarkedYAMLError as err:
        mark = err.problem_mark or err.context_mark
        line = mark.line + 1 if mark else 0
        problems.append(YamlProblem(line, "", f"invalid YAML: {err.problem or err}"))
    finally:
        loader.dispose()
    return documents, problems


def _index(node: yaml.Node, path: str, lines: dict[str, int], problems: list[YamlProblem]) -> None:
    if isinstance(node, yaml.MappingNode):
        seen: set[str] = set()
        for key_node, value_node in node.value:
            key = str(key_node.value)
            child = f"{path}.{key}" if path else key
            if key in seen:
                problems.append(
                    YamlProblem(key_node.start_mark.line + 1, child, "duplicate key")
                )
            seen.add(key)
            lines[child] = key_node.start_mark.line + 1
            _index(value_node, child, lines, problems)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            child = f"{path}[{i}]"
            lines[child] = item.start_mark.line + 1
            _index(item, child, lines, problems)


def nearest_line(lines: dict[str, int], field: str, default: int) -> int:
    """Line of ``field`` in ``lines``, or of its nearest parent that has one (a missing field's
    parent mapping), or ``default``."""
    path = field
    while path:
        if path in lines:
            return lines[path]
        cut = max(path.rfind("."), path.rfind("["))
        path = path[:cut] if cut > 0 else ""
    return default
