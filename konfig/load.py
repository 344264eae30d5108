"""The loader: a directory tree of YAML → validated :class:`~konfig.definitions.Definitions`.

Reads every ``*.yaml``/``*.yml`` file below the given path (multi-document files allowed),
plus the bundled ``resource-templates/`` library (templates found in the tree extend or
override it). Every problem of the run, syntax, schema or cross-reference, is collected and
raised together as one :class:`~konfig.errors.DefinitionError`.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Any, Iterable

from pydantic import ValidationError

from konfig.definitions import Definitions
from konfig.errors import DefinitionError, Location, Problem, Problems
from konfig.model import API_VERSION, KINDS, Definition, ResourceTemplate
from konfig.resources import bundled_dir
from konfig.validate import validate_definitions
from konfig.yamlsource import YamlDocument, nearest_line, parse_documents

YAML_SUFFIXES = (".yaml", ".yml")


def load_definitions(
    path: str | Path, *, bundled_templates: bool = True, base: str | Path | None = None
) -> Definitions:
    """Load, validate and cross-check every definition under ``path`` (a folder or a file).

    ``base`` is the folder file names are shown relative to (default: ``path`` itself).
    Raises :class:`DefinitionError` with every problem found; ``FileNotFoundError`` if
    ``path`` does not exist.
    """
    root = Path(path)
    if not root.exists():
        raise FileNotFoundError(f"{root}: no such file or folder")
    problems = Problems()
    library = _bundled_templates(problems) if bundled_templates else []
    shown_base = Path(base) if base else (root if root.is_dir() else root.parent)
    objects = _load_files(_yaml_files(root), shown_base, problems)
    return _assemble(library, objects, problems)


def parse_objects(
    documents: Iterable[tuple[str, str]], *, bundled_templates: bool = True
) -> Definitions:
    """Like :func:`load_definitions` for in-memory ``(file name, text)`` pairs (the operator
    builds definitions from cluster objects this way). Raises :class:`DefinitionError`."""
    problems = Problems()
    library = _bundled_templates(problems) if bundled_templates else []
    objects: list[Definition] = []
    for name, text in documents:
        objects += _parse_text(name, text, problems)
    return _assemble(library, objects, problems)


def parse_definition(data: dict[str, Any], *, file: str = "<cluster>") -> Definition:
    """Validate one already-parsed document (e.g. a custom resource read from the cluster).
    Raises :class:`DefinitionError`."""
    problems = Problems()
    obj = _to_model(YamlDocument(data, 0, {}), file, problems)
    problems.raise_if_any()
    assert obj is not None
    return obj


@lru_cache(maxsize=1)
def bundled_templates() -> tuple[ResourceTemplate, ...]:
    """The bundled ResourceTemplate library, read once (it ships with Konfig). Raises
    :class:`DefinitionError` if a bundled template is invalid."""
    problems = Problems()
    library = _bundled_templates(problems)
    problems.raise_if_any()
    return tuple(t for t in library if isinstance(t, ResourceTemplate))


def _bundled_templates(problems: Problems) -> list[Definition]:
    library = bundled_dir("resource-templates")
    return _load_files(_yaml_files(library), library.parent, problems)


def _yaml_files(root: Path) -> list[Path]:
    if root.is_file():
        return [root]
    return sorted(
        p
        for p in root.rglob("*")
        if p.suffix in YAML_SUFFIXES
        and p.is_file()
        and not any(part.startswith(".") for part in p.relative_to(root).parts)
    )


def _load_files(files: list[Path], base: Path, problems: Problems) -> list[Definition]:
    objects: list[Definition] = []
    for file in files:
        shown = _relative(file, base)
        try:
            text = file.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as err:
            problems.add(Location(shown, 0), f"cannot read file: {err}")
            continue
        objects += _parse_text(shown, text, problems)
    return objects


def _relative(file: Path, base: Path) -> str:
    try:
        return str(file.relative_to(base))
    except ValueError:
        return str(file)


def _parse_text(shown: str, text: str, problems: Problems) -> list[Definition]:
    documents, yaml_problems = parse_documents(text)
    for p in yaml_problems:
        problems.add(Location(shown, p.line, p.field), p.message)
    objects = []
    for doc in documents:
        obj = _to_model(doc, shown, problems)
        if obj is not None:
            objects.append(obj)
    return objects


def _to_model(doc: YamlDocument, shown: str, problems: Problems) -> Definition | None:
    where = Location(shown, doc.line)
    data = doc.data
    if not isinstance(data, dict):
        problems.add(where, "a definition must be a mapping with apiVersion, kind, metadata, spec")
        return None
    kind = data.get("kind")
    if data.get("apiVersion") != API_VERSION:
        problems.add(
            where.at("apiVersion", doc.lines.get("apiVersion", doc.line)),
            f"must be {API_VERSION!r} (got {data.get('apiVersion')!r})",
        )
        return None
    model = KINDS.get(kind) if isinstance(kind, str) else None
    if model is None:
        problems.add(
            where.at("kind", doc.lines.get("kind", doc.line)),
            f"unknown kind {kind!r}; expected one of {', '.join(KINDS)}",
        )
        return None
    try:
        obj = model.model_validate(data)
    except ValidationError as err:
        problems.invalid_kinds.add(kind)
        for e in err.errors():
            field = _field_path(data, e["loc"])
            line = nearest_line(doc.lines, field, doc.line)
            problems.add(Location(shown, line, field), _message(e))
        return None
    obj.bind_source(where, doc.lines)
    return obj


def _field_path(data: Any, loc: tuple[Any, ...]) -> str:
    """Turn a pydantic error location into the document's field path, dropping the
    segments pydantic adds for union members and validators (they are not in the data)."""
    path, node = "", data
    for seg in loc:
        if isinstance(node, dict) and seg in node:
            path = f"{path}.{seg}" if path else str(seg)
            node = node[seg]
        elif isinstance(node, list) and isinstance(seg, int) and seg < len(node):
            path = f"{path}[{seg}]"
            node = node[seg]
        elif isinstance(node, dict) and isinstance(seg, str) and not seg[:1].isupper() and "[" not in seg:
            # A missing required field: name it, it is not in the data.
            path = f"{path}.{seg}" if path else seg
            node = None
    return path


_MESSAGES = {
    "extra_forbidden": "unknown field",
    "missing": "required field is missing",
}


def _message(error: dict[str, Any]) -> str:
    message = _MESSAGES.get(error["type"], error["msg"])
    if message.startswith("Value error, "):
        message = message[len("Value error, ") :]
    value = error.get("input")
    if error["type"] not in _MESSAGES and isinstance(value, (str, int, float, bool)):
        message = f"{message} (got {value!r})"
    return message


def _assemble(library: list[Definition], objects: list[Definition], problems: Problems) -> Definitions:
    definitions = validate_definitions(objects, problems, library=library)
    problems.raise_if_any()
    assert definitions is not None
    return definitions


__all__ = [
    "DefinitionError", "Problem", "bundled_templates", "load_definitions", "parse_definition",
    "parse_objects",
]
