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


#: Deepest nesting of mappings and sequences in a document (definitions nest about 10 deep).
MAX_DEPTH = 64
#: Most nodes a document may expand to through aliases, as a multiple of the nodes written
#: (and at least :data:`MIN_EXPANSION_BUDGET`): YAML aliases can make a few lines expand to
#: billions of nodes ("billion laughs", https://en.wikipedia.org/wiki/Billion_laughs_attack).
MAX_ALIAS_EXPANSION = 10
MIN_EXPANSION_BUDGET = 100_000


class _TooLarge(Exception):
    def __init__(self, line: int, field: str, message: str) -> None:
        super().__init__(message)
        shown = field if len(field) <= 80 else field[:77] + "..."
        self.problem = YamlProblem(line, shown, message)


def parse_documents(
    text: str, skipped_kinds: set[str] | None = None
) -> tuple[list[YamlDocument], list[YamlProblem]]:
    """Parse every document of ``text``. Returns the documents and the problems found
    (a YAML syntax error stops the file there; duplicate keys are reported and the last one
    wins, as in YAML loaders, but the user hears of it). A document nested deeper than
    :data:`MAX_DEPTH` or whose aliases expand past :data:`MAX_ALIAS_EXPANSION` times its size
    is refused with a problem, before anything is built from it; so is a document holding a
    value no definition can (a date, binary, NaN); the ``kind`` of each document refused adds
    to ``skipped_kinds``."""
    loader = _Loader(text)
    documents: list[YamlDocument] = []
    problems: list[YamlProblem] = []
    try:
        while loader.check_node():
            node = loader.get_node()
            lines: dict[str, int] = {}
            found: list[YamlProblem] = []
            try:
                budget = [max(MIN_EXPANSION_BUDGET, MAX_ALIAS_EXPANSION * _distinct_nodes(node))]
                _index(node, "", lines, found, 0, budget)
            except _TooLarge as error:
                problems.append(error.problem)
                _note_kind(node, skipped_kinds)
                continue
            problems += found
            if any(p.message != "duplicate key" for p in found):
                _note_kind(node, skipped_kinds)
                continue  # a value no definition can hold: the document is not built
            try:
                data = loader.construct_document(node)
            except (ValueError, TypeError, OverflowError) as err:  # e.g. a 5,000-digit number
                problems.append(YamlProblem(node.start_mark.line + 1, "",
                                            f"a value cannot be read: {str(err).split(';')[0]}"))
                continue
            if data is not None:
                documents.append(YamlDocument(data, node.start_mark.line + 1, lines))
    except yaml.MarkedYAMLError as err:
        mark = err.problem_mark or err.context_mark
        line = mark.line + 1 if mark else 0
        problems.append(YamlProblem(line, "", f"invalid YAML: {err.problem or err}"))
    except (yaml.YAMLError, RecursionError) as err:
        problems.append(YamlProblem(0, "", f"invalid YAML: {err}"))
    finally:
        loader.dispose()
    return documents, problems


def _note_kind(node: yaml.Node, kinds: set[str] | None) -> None:
    if kinds is None or not isinstance(node, yaml.MappingNode):
        return
    for key, value in node.value:
        if getattr(key, "value", None) == "kind" and isinstance(value, yaml.ScalarNode):
            kinds.add(str(value.value))


def _distinct_nodes(root: yaml.Node) -> int:
    """Number of distinct nodes (aliases not expanded), iteratively."""
    seen: set[int] = set()
    stack = [root]
    while stack:
        node = stack.pop()
        if id(node) in seen:
            continue
        seen.add(id(node))
        if isinstance(node, yaml.MappingNode):
            for key, value in node.value:
                stack += (key, value)
        elif isinstance(node, yaml.SequenceNode):
            stack += node.value
    return len(seen)


def _index(node: yaml.Node, path: str, lines: dict[str, int], problems: list[YamlProblem],
           depth: int, budget: list[int]) -> None:
    budget[0] -= 1
    if budget[0] < 0:
        raise _TooLarge(node.start_mark.line + 1, path,
                        f"YAML aliases expand this document more than {MAX_ALIAS_EXPANSION} times "
                        "its size; write the values out instead of repeating aliases")
    if depth > MAX_DEPTH:
        raise _TooLarge(node.start_mark.line + 1, path,
                        f"nested more than {MAX_DEPTH} levels deep")
    if isinstance(node, yaml.ScalarNode):
        problem = _non_json_scalar(node)
        if problem:
            problems.append(YamlProblem(node.start_mark.line + 1, path, problem))
        return
    if isinstance(node, yaml.MappingNode):
        if node.tag in _NON_JSON_TAGS:
            problems.append(YamlProblem(node.start_mark.line + 1, path, _NON_JSON_TAGS[node.tag]))
        seen: set[str] = set()
        for key_node, value_node in node.value:
            key = str(key_node.value) if isinstance(key_node, yaml.ScalarNode) else "<key>"
            child = f"{path}.{key}" if path else key
            if key in seen:
                problems.append(
                    YamlProblem(key_node.start_mark.line + 1, child, "duplicate key")
                )
            seen.add(key)
            lines[child] = key_node.start_mark.line + 1
            _index(value_node, child, lines, problems, depth + 1, budget)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            child = f"{path}[{i}]"
            lines[child] = item.start_mark.line + 1
            _index(item, child, lines, problems, depth + 1, budget)


#: YAML types with no JSON (and so no Kubernetes or CEL) equivalent: definitions hold text,
#: numbers, booleans, lists and maps only.
_NON_JSON_TAGS = {
    "tag:yaml.org,2002:timestamp": "YAML reads this as a date or time; quote it to make it text",
    "tag:yaml.org,2002:binary": "binary (!!binary) values are not allowed; use text (base64 in quotes)",
    "tag:yaml.org,2002:set": "sets (!!set) are not allowed; use a list",
    "tag:yaml.org,2002:omap": "ordered maps (!!omap) are not allowed; use a map",
    "tag:yaml.org,2002:pairs": "pairs (!!pairs) are not allowed; use a map",
}
_NON_FINITE = {".nan", ".inf", "+.inf", "-.inf"}


def _non_json_scalar(node: yaml.ScalarNode) -> str | None:
    if node.tag in _NON_JSON_TAGS:
        return _NON_JSON_TAGS[node.tag]
    if node.tag == "tag:yaml.org,2002:float" and str(node.value).lower() in _NON_FINITE:
        return "not a finite number (JSON and Kubernetes have no NaN or infinity)"
    if node.tag == "tag:yaml.org,2002:int" and len(str(node.value)) > 30:
        return "a number this long is not allowed (at most 30 digits)"
    return None


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
