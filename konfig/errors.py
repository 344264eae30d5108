"""Problems found in definitions, each pointing back to a file, line and field.

Konfig reports every problem of a run at once (never only the first), so the core collects
:class:`Problem` values and raises one :class:`DefinitionError` holding all of them.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True, order=True)
class Location:
    """Where a value came from: ``file`` (as given to the loader), 1-based ``line``, and the
    dotted ``field`` path inside the document (``spec.resources[1].template``).

    ``line`` is 0 when unknown (for example for objects built in code).
    """

    file: str = "<memory>"
    line: int = 0
    field: str = ""

    def at(self, field_path: str, line: int | None = None) -> "Location":
        """Return a location for a sub-field, keeping the file (and line unless given)."""
        return Location(self.file, self.line if line is None else line, field_path)

    def __str__(self) -> str:
        return f"{self.file}:{self.line}"


@dataclass(frozen=True, order=True)
class Problem:
    """One thing wrong with the definitions, rendered as ``file:line: field: message``."""

    location: Location
    message: str

    def __str__(self) -> str:
        where = f"{self.location.file}:{self.location.line}"
        if self.location.field:
            return f"{where}: {self.location.field}: {self.message}"
        return f"{where}: {self.message}"


@dataclass
class DefinitionError(Exception):
    """Raised with every :class:`Problem` found in one run, sorted by file and line."""

    problems: list[Problem] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.problems = sorted(set(self.problems))
        super().__init__(self.__str__())

    def __str__(self) -> str:
        return "\n".join(str(p) for p in self.problems)


class Problems:
    """A collector: add problems while validating, then :meth:`raise_if_any` once.

    >>> p = Problems(); p.add(Location("a.yaml", 3, "spec.x"), "bad"); len(p)
    1
    """

    def __init__(self) -> None:
        self._items: list[Problem] = []
        #: Kinds of which at least one document failed validation (so later checks do not
        #: also complain that such a definition is missing).
        self.invalid_kinds: set[str] = set()

    def add(self, location: Location, message: str) -> None:
        self._items.append(Problem(location, message))

    def extend(self, problems: "list[Problem] | Problems") -> None:
        self._items.extend(problems)

    def __iter__(self):
        return iter(self._items)

    def __len__(self) -> int:
        return len(self._items)

    def raise_if_any(self) -> None:
        """Raise :class:`DefinitionError` with everything collected, if anything was."""
        if self._items:
            raise DefinitionError(list(self._items))
