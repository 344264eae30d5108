"""Outcomes of reconciling one unit, as values (in the manner of koreo-core's ``result.py``:
Ok / Retry / PermFail, each with where it came from).

* :class:`Ready`: everything applied and ready; look again at the next resync.
* :class:`Waiting`: applied, but something is not ready yet (Config Connector still working,
  an object being deleted); look again soon, doubling the delay up to a cap.
* :class:`Retry`: a temporary failure (an API error, a GitLab outage); retry after ``delay``
  seconds (the loop applies per-unit backoff when it is ``None``).
* :class:`Stalled`: no progress without a change to the definitions; ``problems`` say where
  (file = the custom resource, field, message). Only a change of the unit's resources helps.

:func:`combine` folds the outcomes of a unit's parts into the one that decides when to look
again: a retry first, then waiting (a unit with one stalled workload and others still
converging is looked at again soon), then stalled, then ready.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Union

from konfig.errors import Problem


@dataclass(frozen=True)
class Ready:
    message: str = ""


@dataclass(frozen=True)
class Waiting:
    reason: str


@dataclass(frozen=True)
class Retry:
    reason: str
    delay: float | None = None  #: seconds; ``None``: the loop's backoff decides


@dataclass(frozen=True)
class Stalled:
    problems: tuple[Problem, ...]

    @property
    def reason(self) -> str:
        return "; ".join(str(p) for p in self.problems[:5]) or "stalled"


Outcome = Union[Ready, Waiting, Retry, Stalled]

_RANK = {Ready: 0, Stalled: 1, Waiting: 2, Retry: 3}


def combine(*outcomes: Outcome) -> Outcome:
    """The outcome of a unit made of parts (see the module doc). Empty: :class:`Ready`."""
    worst: Outcome = Ready()
    for outcome in outcomes:
        if _RANK[type(outcome)] > _RANK[type(worst)]:
            worst = outcome
    return worst


__all__ = ["Outcome", "Ready", "Retry", "Stalled", "Waiting", "combine"]
