"""The loader: a directory tree of YAML → validated :class:`~konfig.definitions.Definitions`.

Reads every ``*.yaml``/``*.yml`` file below the given path (multi-document files allowed),
plus the bundled ``resource-templates/`` library (templates found in the tree extend or
override it). Every problem of the run, syntax, schema or cross-reference, is collected and
raised together as one :class:`~konfig.errors.DefinitionError`.
"""

from __future__ import annotations

import errno
import os
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
    skipped: list[str] = []
    objects = _load_files(_yaml_files(root, problems, skipped, shown_base), shown_base, problems)
    definitions = _assemble(library, objects, problems)
    definitions.skipped_files = skipped
    return definitions


def parse_objects(
    documents: Iterable[tuple[str, str]], *, bundled_templates: bool = True
) -> Definitions:
    """Like :func:`load_definitions` for in-memory ``(file name, text)`` pairs (the operator
    builds definitions from cluster objects this way). Raises :class:`DefinitionError`."""
    problems = Problems()
    library = _bundled_templates(problems) if bundled_templates else []
    objects: list[Definition] = []
    for name, text in documents:
        if len(text) > MAX_FILE_BYTES:
            problems.add(Location(name, 0), f"document is {len(text):,} characters; at most "
                         f"{MAX_FILE_BYTES:,}")
            continue
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


#: Largest definitions file read, in bytes (the largest bundled template is about 10 KiB; a
#: definitions file is a page of YAML, not a data dump).
MAX_FILE_BYTES = 1024 * 1024


def _yaml_files(root: Path, problems: Problems | None = None, skipped: list[str] | None = None,
                base: Path | None = None) -> list[Path]:
    """Every regular ``*.yaml``/``*.yml`` file below ``root``, sorted, walking without following
    symlinks to folders. Hidden files and folders (names starting with ``.``) are skipped and
    listed in ``skipped``. A symlink that leads outside ``root`` or into a loop is a problem;
    a symlinked file inside ``root`` is read through its link, a symlinked folder inside
    ``root`` is skipped (its files are read where they really are)."""
    if root.is_file():
        return [root]
    problems = problems if problems is not None else Problems()
    skipped = skipped if skipped is not None else []
    base = base or root
    real_root = root.resolve()
    found: list[Path] = []
    for folder, dirs, files in os.walk(root, followlinks=False):
        here = Path(folder)
        for name in sorted(dirs):
            path = here / name
            if name.startswith("."):
                skipped.append(f"{_relative(path, base)}/")
                dirs.remove(name)
            elif path.is_symlink():
                dirs.remove(name)
                if _symlink_problem(path, real_root, base, problems) is None:
                    skipped.append(f"{_relative(path, base)}/ (symlink to a folder inside the tree)")
        for name in sorted(files):
            path = here / name
            if not name.endswith(YAML_SUFFIXES):
                continue
            if name.startswith("."):
                skipped.append(_relative(path, base))
                continue
            if path.is_symlink() and _symlink_problem(path, real_root, base, problems) is not None:
                continue
            if not path.is_file():
                continue  # a FIFO or device: reading it could block forever
            found.append(path)
    return sorted(found)


def _symlink_problem(link: Path, real_root: Path, base: Path, problems: Problems) -> str | None:
    """Why the symlink ``link`` may not be followed (also added to ``problems``), or ``None``."""
    shown = _relative(link, base)
    try:
        target = link.resolve(strict=True)
    except RuntimeError:
        message = "symlink loop: the link leads back to itself"
    except OSError as err:
        message = ("symlink loop: the link leads back to itself" if err.errno == errno.ELOOP
                   else f"broken symlink to {os.readlink(link)!r}")
    else:
        inside = target == real_root or real_root in target.parents
        parent = link.parent.resolve()
        if not inside:
            message = (f"symlink leads outside the definitions folder (to {str(target)!r}); "
                       "definitions are read only from inside it")
        elif target.is_dir() and (target == parent or target in parent.parents):
            message = "symlink loop: the link points to a folder that contains it"
        else:
            return None
    problems.add(Location(shown, 0), message)
    return message


def _load_files(files: list[Path], base: Path, problems: Problems) -> list[Definition]:
    objects: list[Definition] = []
    for file in files:
        shown = _relative(file, base)
        try:
            size = file.stat().st_size
            if size > MAX_FILE_BYTES:
                problems.add(Location(shown, 0), f"file is {size:,} bytes; definitions files may "
                             f"have at most {MAX_FILE_BYTES:,} (split it)")
                continue
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
    documents, yaml_problems = parse_documents(text, problems.invalid_kinds)
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


def _pattern_words() -> dict[str, str]:
    from konfig.model import names

    return {
        names.IMAGE_REFERENCE_RE: "must be a container image reference (registry/path:tag or "
        "@sha256:digest; no spaces, quotes or shell characters)",
        names.SAML_GROUP_NAME_RE: "must be a SAML group name: printable characters without "
        "quotes, backslashes, backticks, '$' or newlines, not starting or ending with a space",
        names.GITLAB_NAME_RE: "must be a name GitLab accepts: letters, digits, '_', '.', '-', "
        "spaces and parentheses, starting with a letter, digit or '_'",
    }


def _message(error: dict[str, Any]) -> str:
    pattern = (error.get("ctx") or {}).get("pattern")
    words = _pattern_words().get(pattern) if error["type"] == "string_pattern_mismatch" else None
    if words:
        value = error.get("input")
        return f"{words} (got {value!r})" if isinstance(value, str) else words
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
