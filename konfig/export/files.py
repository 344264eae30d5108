"""Writing an export to disk (the one place in konfig/export that does I/O)."""

from __future__ import annotations

from pathlib import Path


class OutputNotEmpty(Exception):
    """The output folder already holds files and overwriting was not asked for."""

    def __init__(self, directory: Path, existing: list[str]) -> None:
        self.directory = directory
        self.existing = existing
        shown = ", ".join(existing[:5]) + (" ..." if len(existing) > 5 else "")
        super().__init__(f"{directory} is not empty ({shown}); choose an empty folder or pass --force")


def write_files(directory: Path, files: dict[str, str], force: bool = False) -> list[Path]:
    """Write ``files`` (relative path -> text) under ``directory``, creating folders.

    Refuses (``OutputNotEmpty``) when ``directory`` already holds anything, unless ``force``:
    then files of the same name are overwritten and other files are left alone (never
    deleted). Returns the written paths, sorted.
    """
    directory = Path(directory)
    if directory.exists() and not force:
        existing = sorted(str(p.relative_to(directory)) for p in directory.rglob("*") if p.is_file())
        if existing:
            raise OutputNotEmpty(directory, existing)
    written = []
    for relative, text in sorted(files.items()):
        path = directory / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        written.append(path)
    return written
