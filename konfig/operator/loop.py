"""The reconciler loop: a queue of reconcile units (:mod:`.units`), coalescing changes,
resyncing each unit over the interval, backing off per unit.

Watch handlers only call :meth:`ReconcileLoop.observe` (or :meth:`mark_dirty`), which marks
the units a change affects (:func:`.units.affected`); one asyncio task runs
:meth:`ReconcileLoop.run`, which waits for a change, or for a unit's resync, requeue (children
not ready yet) or retry (its own backoff after a failure) to fall due, waits ``debounce``
seconds so a burst of changes becomes one pass, and runs the blocking pass over the due units
in a worker thread (the reconciler works on them in parallel, ``workers`` at most). Each
unit's resync falls at its own phase of the interval, so the periodic resync walks the units
instead of reading everything at once.

The operator's own writes must not start passes: a status or finalizer write does not change
``metadata.generation``, and each pass records the generation (and deletion state) it saw of
every resource, so a watch event carrying what the last pass already saw is ignored.
"""

from __future__ import annotations

import asyncio
import logging
import random
import threading
import time
from typing import Any, Callable, Iterable

from konfig.operator.config import OperatorConfig
from konfig.operator.outcome import Retry, Waiting
from konfig.operator.reconciler import PassResult, Reconciler
from konfig.operator.units import affected

log = logging.getLogger("konfig.operator")
#: Queue key of a pass over every unit (a pass that failed before it knew the units).
ALL = "*"


def backoff(attempt: int, initial: float, maximum: float) -> float:
    """Exponential backoff with full jitter on top: ``initial * 2**(attempt-1)`` capped at
    ``maximum``, plus up to ``initial`` seconds (so failing replicas do not retry in step)."""
    return min(maximum, initial * 2 ** max(0, attempt - 1)) + random.uniform(0, initial)


def jittered(interval: float, fraction: float) -> float:
    """``interval`` spread uniformly by ``± fraction`` (so replicas and restarts do not resync
    in lockstep)."""
    return max(0.0, interval * (1 + random.uniform(-fraction, fraction)))


class ReconcileLoop:
    """Drives a :class:`Reconciler`. Create and run it inside the operator's event loop;
    :meth:`mark_dirty` and :meth:`observe` are safe from that loop (watch handlers) and, via
    ``call_soon_threadsafe``, from other threads.

    ``owns(unit)`` (the lease keeper, :mod:`.leases`, when several replicas share the units)
    tells whether this replica may reconcile a unit; units it does not own are skipped."""

    def __init__(self, reconciler: Reconciler, config: OperatorConfig,
                 owns: Callable[[str], bool] | None = None,
                 holds: Callable[[str], bool] | None = None) -> None:
        self.reconciler = reconciler
        self.config = config
        self.owns = owns
        #: Whether this replica is the recorded holder of a unit even if its Lease is not
        #: fresh right now: such a unit is tried again shortly instead of being dropped.
        self.holds = holds
        self._wake: asyncio.Event | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._dirty = False
        self._dirty_units: set[str] | None = set()  # None: every unit
        self._seen: dict[str, tuple[Any, bool]] = {}
        self._bodies: dict[str, dict[str, Any]] = {}  # uid -> last spec seen (for affected())
        self._seen_lock = threading.Lock()
        self.reasons: list[str] = []
        self.changes = 0  #: change signals received (burst detection)
        self.passes: list[PassResult] = []
        self.busy = False
        self.started = False
        self.first_pass_done: asyncio.Event | None = None  # made in run()
        self.last_beat = time.monotonic()
        self._due: dict[str, tuple[float, str]] = {}  # unit -> (monotonic time, trigger)
        self._failures: dict[str, int] = {}
        self._requeue_delay: dict[str, float] = {}
        self._resync_at: dict[str, float] = {}
        #: Units of the pass running now (``None``: every unit), for the lease keeper.
        self.in_flight: set[str] = set()

    # -- signals from watch handlers -----------------------------------------------------------

    def observe(self, event_type: str | None, body: dict[str, Any]) -> None:
        """A watch event about a Konfig resource: mark the units it affects, unless the last
        pass already saw this generation and deletion state of it (the operator's own
        writes)."""
        meta = body.get("metadata") or {}
        uid = meta.get("uid")
        state = (meta.get("generation"), bool(meta.get("deletionTimestamp")))
        with self._seen_lock:
            if event_type == "DELETED":
                known = self._seen.pop(uid, None)
                if known is not None and known[1] and known[0] == "released":
                    return  # we released its finalizer ourselves: nothing left to do
            elif uid and (self._seen.get(uid) == state
                          or self._seen.get(uid, (None,))[0] == "released"):
                return
            before = self._bodies.get(uid)
            after = None if event_type == "DELETED" else {"spec": body.get("spec") or {}}
            if uid:
                if after is None:
                    self._bodies.pop(uid, None)
                else:
                    self._bodies[uid] = after
        index = self.reconciler.index
        if body.get("kind") == "Domain" and after is not None:
            index.domains.add(str(meta.get("name")))  # a new unit, before any pass saw it
        units = affected(index, str(body.get("kind")), str(meta.get("name")),
                         before, after or before)
        self.mark_dirty(f"{event_type or 'LISTED'} {body.get('kind')} "
                        f"{meta.get('namespace')}/{meta.get('name')}", units=units)

    def mark_dirty(self, reason: str, units: Iterable[str] | None = None) -> None:
        """Ask for a pass soon over ``units`` (every unit when ``None``), coalesced with other
        requests."""
        if self._loop is not None and _running_loop() is not self._loop:
            units = None if units is None else set(units)
            self._loop.call_soon_threadsafe(lambda: self.mark_dirty(reason, units))
            return
        self._dirty = True
        if units is None or self._dirty_units is None:
            self._dirty_units = None
        else:
            self._dirty_units |= set(units)
        self.changes += 1
        self.reasons.append(reason)
        del self.reasons[:-50]
        if self._wake is not None:
            self._wake.set()

    def remember(self, resources: list[dict[str, Any]]) -> None:
        """Record what a pass read, before it writes anything (called from its thread)."""
        seen = {}
        bodies = {}
        for r in resources:
            meta = r["metadata"]
            seen[meta.get("uid")] = (meta.get("generation"), bool(meta.get("deletionTimestamp")))
            bodies[meta.get("uid")] = {"spec": r.get("spec") or {}}
        with self._seen_lock:
            self._seen = seen
            self._bodies = bodies

    def saw(self, resources: list[dict[str, Any]]) -> bool:
        """Whether the last pass read exactly these resources at these generations (so its
        verdicts are about what the cluster holds now, not a half-applied set)."""
        current = {r["metadata"].get("uid"): (r["metadata"].get("generation"),
                                              bool(r["metadata"].get("deletionTimestamp")))
                   for r in resources}
        with self._seen_lock:
            return current == self._seen

    def released(self, uid: str) -> None:
        """The pass released this resource's finalizer: its last events are our doing."""
        with self._seen_lock:
            self._seen[uid] = ("released", True)

    # -- the loop -------------------------------------------------------------------------------

    @property
    def queue_depth(self) -> int:
        """Units due now and not started."""
        now = time.monotonic()
        due = sum(1 for when, _ in self._due.values() if when <= now)
        dirty = (len(self.reconciler.index.units()) if self._dirty_units is None
                 else len(self._dirty_units)) if self._dirty else 0
        return due + dirty

    async def run(self, stop: asyncio.Event | None = None) -> None:
        """Run passes until cancelled (or ``stop`` is set). Never raises for a failed pass."""
        self._loop = asyncio.get_running_loop()
        self._wake = asyncio.Event()
        self.first_pass_done = asyncio.Event()
        self.started = True
        await asyncio.sleep(self.config.debounce)
        trigger: str | None = "startup"
        batch: list[str] | None = None  # None: every unit
        while stop is None or not stop.is_set():
            self.last_beat = time.monotonic()
            if trigger is None:
                if not self._dirty:
                    deadline = min((when for when, _ in self._due.values()),
                                   default=time.monotonic() + self.config.resync_interval)
                    self._wake.clear()
                    try:
                        await asyncio.wait_for(self._wake.wait(),
                                               timeout=max(0.0, deadline - time.monotonic()))
                    except asyncio.TimeoutError:
                        pass
                if stop is not None and stop.is_set():
                    return
                trigger, batch = await self._next_batch()
                if trigger is None:
                    continue
            self._dirty = False
            if self.owns is not None:  # several replicas: only the units we hold a Lease of
                wanted = batch if batch is not None else self.reconciler.index.units()
                batch = [u for u in wanted if self.owns(u)]
                later = time.monotonic() + max(0.2, self.config.lease_duration / 3)
                for unit in wanted:
                    if unit not in batch and self.holds is not None and self.holds(unit):
                        self._due[unit] = (later, trigger if trigger != "startup" else "retry")
                if not batch:
                    self.first_pass_done.set()
                    trigger = None
                    continue
            self.reconciler.metrics.queue_depth.set(self.queue_depth)
            log.debug("pass (%s) over %s", trigger, "every unit" if batch is None else batch)
            self.busy = True
            self.in_flight = set(batch if batch is not None else self.reconciler.index.units())
            try:
                result = await asyncio.to_thread(self._pass, trigger, batch)
            finally:
                self.busy = False
                self.in_flight = set()
            self.passes.append(result)
            del self.passes[:-200]
            self._schedule(trigger, result)
            self.first_pass_done.set()
            trigger, batch = None, None

    async def _next_batch(self) -> tuple[str | None, list[str] | None]:
        """The trigger and units of the next pass (``(None, None)``: nothing due yet)."""
        if self._dirty:
            await self._quiet()  # let the burst (konfig apply, say) finish
            units = self._dirty_units
            self._dirty_units = set()
            if units is None:
                for unit in list(self._due):
                    if self._due[unit][1] != "resync":
                        del self._due[unit]
                return "change", None
            now = time.monotonic()
            due = {u for u, (when, _) in self._due.items() if when <= now}
            for unit in units | due:
                self._pop_due(unit)
            return "change", sorted(units | due)
        now = time.monotonic()
        due = sorted(u for u, (when, _) in self._due.items() if when <= now)
        if not due:
            return None, None
        triggers = {self._due[u][1] for u in due}
        for unit in due:
            self._pop_due(unit)
        if ALL in due:
            return "retry", None
        for name in ("resync", "retry", "requeue"):
            if name in triggers:
                return name, due
        return "requeue", due

    def _pop_due(self, unit: str) -> None:
        """Take ``unit`` off the queue; its resync stays planned unless that is what is due."""
        entry = self._due.pop(unit, None)
        if entry is not None and entry[1] != "resync" and unit in self._resync_at:
            self._due[unit] = (self._resync_at[unit], "resync")

    async def _quiet(self) -> None:
        """Wait until no change arrived for ``debounce`` seconds (at most 20 debounces), so
        one pass sees a whole burst of changes."""
        deadline = time.monotonic() + 20 * self.config.debounce
        while time.monotonic() < deadline:
            seen = self.changes
            await asyncio.sleep(self.config.debounce)
            if self.changes == seen:
                return

    def _pass(self, trigger: str, units: list[str] | None) -> PassResult:
        self.reconciler.on_read = self.remember
        self.reconciler.on_release = self.released
        return self.reconciler.reconcile(trigger, units)

    def _schedule(self, trigger: str, result: PassResult) -> None:
        """Plan each unit's next pass from its outcome: a retry with the unit's own backoff,
        a requeue (doubling) while it waits, else its next resync."""
        now = time.monotonic()
        units = self.reconciler.index.units()
        interval = self.config.resync_interval
        for i, unit in enumerate(units):  # new units get a resync phase of their own
            if unit not in self._resync_at or trigger in ("startup",):
                phase = interval * (i + 1) / max(1, len(units))
                self._resync_at[unit] = now + jittered(phase, self.config.resync_jitter)
        for unit in [u for u in self._resync_at if u not in units]:
            self._resync_at.pop(unit)
            self._due.pop(unit, None)
        log.debug("outcomes: %s", {u.unit: type(u.outcome).__name__ for u in result.units.values()})
        for unit, outcome in ((u.unit, u.outcome) for u in result.units.values()):
            if trigger == "resync" and unit in self._resync_at:
                self._resync_at[unit] = now + jittered(interval, self.config.resync_jitter)
            if trigger == "change":
                self._requeue_delay[unit] = self.config.requeue_initial
            if isinstance(outcome, Retry):
                failures = self._failures.get(unit, 0) + 1
                self._failures[unit] = failures
                delay = outcome.delay if outcome.delay is not None else backoff(
                    failures, self.config.retry_initial, self.config.retry_max)
                log.info("unit %s failed (%s); retrying in %.1fs", unit, outcome.reason, delay)
                self._due[unit] = (now + delay, "retry")
                continue
            self._failures.pop(unit, None)
            if isinstance(outcome, Waiting):
                delay = self._requeue_delay.get(unit, self.config.requeue_initial)
                self._requeue_delay[unit] = min(delay * 2, self.config.requeue_max)
                self._due[unit] = (now + delay, "requeue")
                continue
            self._requeue_delay[unit] = self.config.requeue_initial
            if unit in self._resync_at:
                self._due[unit] = (self._resync_at[unit], "resync")
        for unit in units:
            self._due.setdefault(unit, (self._resync_at[unit], "resync"))
        if result.failed and not result.units:  # failed before it knew its units: all again
            failures = self._failures.get(ALL, 0) + 1
            self._failures[ALL] = failures
            self._due[ALL] = (now + backoff(failures, self.config.retry_initial,
                                            self.config.retry_max), "retry")
        else:
            self._failures.pop(ALL, None)

    @property
    def settled(self) -> bool:
        """Idle, and no unit waits for a requeue or retry (only resyncs are planned)."""
        return self.idle and all(trigger == "resync" for _, trigger in list(self._due.values()))

    @property
    def idle(self) -> bool:
        """No pass running and none asked for."""
        return self.started and not self.busy and not self._dirty


def _running_loop() -> asyncio.AbstractEventLoop | None:
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None
