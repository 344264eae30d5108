"""The single reconciler loop: coalesces changes, resyncs periodically, backs off on failure.

Watch handlers only call :meth:`ReconcileLoop.observe` (or :meth:`mark_dirty`); one asyncio task
runs :meth:`ReconcileLoop.run`, which waits for a change, a resync (jittered), a requeue
(children not ready yet) or a retry (backoff after a failure), waits ``debounce`` seconds so a
burst of changes becomes one pass, and runs the blocking pass in a worker thread.

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
from typing import Any

from konfig.operator.config import OperatorConfig
from konfig.operator.reconciler import PassResult, Reconciler

log = logging.getLogger("konfig.operator")


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
    ``call_soon_threadsafe``, from other threads."""

    def __init__(self, reconciler: Reconciler, config: OperatorConfig) -> None:
        self.reconciler = reconciler
        self.config = config
        self._wake: asyncio.Event | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._dirty = False
        self._seen: dict[str, tuple[Any, bool]] = {}
        self._seen_lock = threading.Lock()
        self.reasons: list[str] = []
        self.changes = 0  #: change signals received (burst detection)
        self.passes: list[PassResult] = []
        self.busy = False
        self.started = False
        self.first_pass_done: asyncio.Event | None = None  # made in run()
        self.last_beat = time.monotonic()
        self._failures = 0
        self._requeue_delay = config.requeue_initial

    # -- signals from watch handlers -----------------------------------------------------------

    def observe(self, event_type: str | None, body: dict[str, Any]) -> None:
        """A watch event about a Konfig resource: mark dirty unless the last pass already saw
        this generation and deletion state of it (the operator's own writes)."""
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
        self.mark_dirty(f"{event_type or 'LISTED'} {body.get('kind')} "
                        f"{meta.get('namespace')}/{meta.get('name')}")

    def mark_dirty(self, reason: str) -> None:
        """Ask for a pass soon (coalesced with other requests)."""
        if self._loop is not None and _running_loop() is not self._loop:
            self._loop.call_soon_threadsafe(self.mark_dirty, reason)
            return
        self._dirty = True
        self.changes += 1
        self.reasons.append(reason)
        del self.reasons[:-50]
        if self._wake is not None:
            self._wake.set()

    def remember(self, resources: list[dict[str, Any]]) -> None:
        """Record what a pass read, before it writes anything (called from its thread)."""
        seen = {}
        for r in resources:
            meta = r["metadata"]
            seen[meta.get("uid")] = (meta.get("generation"), bool(meta.get("deletionTimestamp")))
        with self._seen_lock:
            self._seen = seen

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

    async def run(self, stop: asyncio.Event | None = None) -> None:
        """Run passes until cancelled (or ``stop`` is set). Never raises for a failed pass."""
        self._loop = asyncio.get_running_loop()
        self._wake = asyncio.Event()
        self.first_pass_done = asyncio.Event()
        self.started = True
        trigger: str | None = "startup"
        await asyncio.sleep(self.config.debounce)
        next_resync = time.monotonic() + jittered(self.config.resync_interval,
                                                  self.config.resync_jitter)
        requeue_at: float | None = None
        while stop is None or not stop.is_set():
            self.last_beat = time.monotonic()
            if trigger is None:
                deadline = min(next_resync, requeue_at if requeue_at is not None else next_resync)
                if not self._dirty:
                    self._wake.clear()
                    try:
                        await asyncio.wait_for(self._wake.wait(),
                                               timeout=max(0.0, deadline - time.monotonic()))
                    except asyncio.TimeoutError:
                        pass
                if stop is not None and stop.is_set():
                    return
                now = time.monotonic()
                if self._dirty:
                    trigger = "change"
                    await self._quiet()  # let the burst (konfig apply, say) finish
                elif now >= next_resync:
                    trigger = "resync"
                elif requeue_at is not None and now >= requeue_at:
                    trigger = "retry" if self._failures else "requeue"
                else:
                    continue
            self._dirty = False
            self.busy = True
            try:
                result = await asyncio.to_thread(self._pass, trigger)
            finally:
                self.busy = False
            self.passes.append(result)
            del self.passes[:-200]
            if trigger in ("startup", "resync"):
                next_resync = time.monotonic() + jittered(self.config.resync_interval,
                                                          self.config.resync_jitter)
            requeue_at = self._next_requeue(trigger, result)
            self.first_pass_done.set()
            trigger = None

    async def _quiet(self) -> None:
        """Wait until no change arrived for ``debounce`` seconds (at most 20 debounces), so
        one pass sees a whole burst of changes."""
        deadline = time.monotonic() + 20 * self.config.debounce
        while time.monotonic() < deadline:
            seen = self.changes
            await asyncio.sleep(self.config.debounce)
            if self.changes == seen:
                return

    def _pass(self, trigger: str) -> PassResult:
        self.reconciler.on_read = self.remember
        self.reconciler.on_release = self.released
        return self.reconciler.reconcile(trigger)

    def _next_requeue(self, trigger: str, result: PassResult) -> float | None:
        now = time.monotonic()
        if trigger == "change":
            self._requeue_delay = self.config.requeue_initial
        if result.failed:
            self._failures += 1
            delay = backoff(self._failures, self.config.retry_initial, self.config.retry_max)
            log.info("pass failed (%s); retrying in %.1fs", result.error or "see status", delay)
            return now + delay
        self._failures = 0
        if result.not_ready or result.waiting:
            delay = self._requeue_delay
            self._requeue_delay = min(self._requeue_delay * 2, self.config.requeue_max)
            return now + delay
        self._requeue_delay = self.config.requeue_initial
        return None

    @property
    def idle(self) -> bool:
        """No pass running and none asked for."""
        return self.started and not self.busy and not self._dirty


def _running_loop() -> asyncio.AbstractEventLoop | None:
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None
