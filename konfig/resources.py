"""Where Konfig's bundled files live, in a source checkout and in an installed wheel.

A wheel carries ``resource-templates/``, ``gitlab-templates/`` and ``charts/`` under
``konfig/_bundled/`` (see ``pyproject.toml``); a source checkout (or an editable install) reads
them from the repository root. Package data proper (CRDs, service mappings) lives in
``konfig/data/``.
"""

from __future__ import annotations

from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent
DATA_DIR = PACKAGE_DIR / "data"


def bundled_dir(name: str) -> Path:
    """Path of a bundled top-level folder: ``resource-templates``, ``gitlab-templates`` or
    ``charts``. Raises ``FileNotFoundError`` if neither the wheel copy nor the checkout has it."""
    for candidate in (PACKAGE_DIR / "_bundled" / name, PACKAGE_DIR.parent / name):
        if candidate.is_dir():
            return candidate
    raise FileNotFoundError(f"bundled folder {name!r} not found next to the konfig package")


def data_path(*parts: str) -> Path:
    """Path inside ``konfig/data`` (CRDs, service mappings, ...)."""
    return DATA_DIR.joinpath(*parts)
