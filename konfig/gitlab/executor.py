"""A small dependency-ordered task runner with bounded workers and deferred retries.

Each :class:`Task` runs once its dependencies are done, on a pool of ``max_workers`` threads.
A task returns ``None`` or a note (done), or :class:`Later` to be run again after a delay
without holding a worker (how Konfig waits on asynchronous imports). A failed task skips every
task that depends on it; a task whose feature is unavailable counts as done for its dependents.
"""

from __future__ import annotations

import heapq
import itertools
import time
from collections import deque
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from typing import Callable

from konfig.gitlab.api import ApiError
from konfig.gitlab.features import FeatureUnavailable

DONE, FAILED, SKIPPED, UNSUPPORTED = "done", "failed", "skipped", "unsupported"


@dataclass(frozen=True)
class Later:
    """Run this task again after ``delay`` seconds."""

    delay: float


@dataclass
class Task:
    key: str
    run: Callable[[], "str | None | Later"]
    deps: tuple[str, ...] = ()


@dataclass
class Outcome:
    status: str
    message: str = ""


def _execute(task: Task) -> "Outcome | Later":
    try:
        result = task.run()
    except FeatureUnavailable as err:
        return Outcome(UNSUPPORTED, err.reason)
    except ApiError as err:
        return Outcome(FAILED, str(err))
    except Exception as err:  # noqa: BLE001 - one broken task must not sink the pass
        return Outcome(FAILED, f"{type(err).__name__}: {err}")
    if isinstance(result, Later):
        return result
    return Outcome(DONE, result or "")


def run_tasks(tasks: list[Task], max_workers: int = 8) -> dict[str, Outcome]:
    """Run ``tasks`` respecting ``deps`` (keys of other tasks; unknown keys are ignored) and
    return each task's :class:`Outcome` by key."""
    by_key = {t.key: t for t in tasks}
    waiting = {t.key: {d for d in t.deps if d in by_key and d != t.key} for t in tasks}
    dependents: dict[str, list[str]] = {k: [] for k in by_key}
    for key, deps in waiting.items():
        for dep in deps:
            dependents[dep].append(key)
    outcomes: dict[str, Outcome] = {}
    ready = deque(k for k, deps in waiting.items() if not deps)
    timers: list[tuple[float, int, str]] = []
    seq = itertools.count()

    def settle(key: str, outcome: Outcome) -> None:
        outcomes[key] = outcome
        for child in dependents[key]:
            if child in outcomes:
                continue
            if outcome.status in (DONE, UNSUPPORTED):
                waiting[child].discard(key)
                if not waiting[child]:
                    ready.append(child)
            else:
                settle(child, Outcome(SKIPPED, f"not attempted: {key} {outcome.status}"))

    workers = max(1, max_workers)
    with ThreadPoolExecutor(max_workers=workers,
                            thread_name_prefix="konfig-apply") as pool:
        running: dict[Future, str] = {}
        while ready or running or timers:
            now = time.monotonic()
            while timers and timers[0][0] <= now:
                ready.append(heapq.heappop(timers)[2])
            # Submit no more than there are workers: waiting on a few futures stays cheap.
            while ready and len(running) < workers:
                key = ready.popleft()
                if key not in outcomes:
                    running[pool.submit(_execute, by_key[key])] = key
            if not running:
                if timers:
                    time.sleep(max(0.0, timers[0][0] - time.monotonic()))
                continue
            timeout = max(0.0, timers[0][0] - now) if timers else None
            finished, _ = wait(running, timeout=timeout, return_when=FIRST_COMPLETED)
            for future in finished:
                key = running.pop(future)
                result = future.result()
                if isinstance(result, Later):
                    heapq.heappush(timers, (time.monotonic() + result.delay, next(seq), key))
                else:
                    settle(key, result)
    for key in by_key:  # a dependency cycle would leave tasks unsettled
        outcomes.setdefault(key, Outcome(SKIPPED, "dependency cycle"))
    return outcomes
