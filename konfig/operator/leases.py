"""Reconcile units shared among operator replicas through Kubernetes Leases
(``coordination.k8s.io/v1``, https://kubernetes.io/docs/concepts/architecture/leases/).

Each unit has one Lease in the system namespace (``konfig-unit-<unit>``). A replica reconciles
a unit only while it holds that unit's Lease and renewed it less than ``renew_deadline`` ago,
so at most one replica works on a unit at a time:

* **acquire**: a Lease that does not exist is created; one whose holder is empty, or whose
  record (holder, renew time, transitions) no replica changed for ``duration`` seconds *as
  observed by this replica's clock*, is taken over with an update carrying the observed
  ``resourceVersion`` (optimistic concurrency: of two replicas racing, one gets 409 and
  backs off). This is client-go's leader-election rule (observed time, not the record's
  timestamps), so clock skew between replicas does not matter.
* **renew**: the holder updates ``renewTime`` every ``duration / 3`` seconds. A replica that
  cannot renew stops treating the unit as its own after ``renew_deadline`` (two thirds of
  ``duration``), before any other replica may take it (``duration``).
* **share**: every replica also renews a Lease of its own (``konfig-replica-<identity>``, its
  heartbeat), so replicas know how many they are; a replica takes at most its fair share,
  ``ceil(units / live replicas)``, and one over its share gives units back (empty holder) so
  a new replica gets work.
* **release**: on shutdown every held Lease is given back (empty holder), so a rolling update
  moves units at once instead of after ``duration``.
"""

from __future__ import annotations

import logging
import math
import re
import threading
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Callable, Iterable

from konfig.kube.client import KubeClient, KubeError
from konfig.kube.kinds import KindInfo

log = logging.getLogger("konfig.operator")

LEASE = KindInfo("coordination.k8s.io", "v1", "Lease", "leases", True)
#: Label on every Lease of the operator: ``unit`` (one per unit) or ``replica`` (one per
#: replica, its heartbeat: how replicas learn how many they are), listed in one request.
LEASE_LABEL = "konfig.dev/lease"


def lease_name(unit: str) -> str:
    """``konfig-unit-control-plane``, ``konfig-unit-domain-<name>`` (DNS subdomain)."""
    return "konfig-unit-" + unit.replace("/", "-")


def replica_lease_name(identity: str) -> str:
    """``konfig-replica-<identity>``, made a valid DNS subdomain."""
    safe = re.sub(r"[^a-z0-9.-]+", "-", identity.lower()).strip("-.") or "replica"
    return ("konfig-replica-" + safe)[:253]


def _micro_time(now: datetime | None = None) -> str:
    """RFC 3339 with microseconds, as ``MicroTime`` fields want."""
    return (now or datetime.now(timezone.utc)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@dataclass
class _Seen:
    """A Lease as last observed: its record, and when (monotonic) the record last changed."""

    holder: str
    record: tuple
    resource_version: str
    observed_at: float
    mine_since: float | None = None  #: when this replica last renewed it successfully


class LeaseKeeper:
    """Holds this replica's share of unit Leases. ``identity`` names the replica (its Pod
    name); times are seconds. ``owns(unit)`` is what the reconcile loop asks before a pass;
    ``tick(units)`` acquires, renews and gives back Leases (run it every ``renew_every``)."""

    def __init__(self, client: KubeClient, namespace: str, identity: str, *,
                 duration: float = 15.0, clock: Callable[[], float] = time.monotonic,
                 on_acquired: Callable[[str], None] | None = None,
                 busy: Callable[[], set[str]] | None = None) -> None:
        self.client = client
        self.namespace = namespace
        self.identity = identity
        self.duration = duration
        self.renew_every = duration / 3
        self.renew_deadline = duration * 2 / 3
        self.clock = clock
        self.on_acquired = on_acquired
        #: Units a pass of this replica is working on now: never given back mid-pass.
        self.busy = busy or (lambda: set())
        self._seen: dict[str, _Seen] = {}
        self._units: dict[str, str] = {}  # lease name -> unit
        self._lock = threading.Lock()
        self.acquired = 0
        self.released = 0

    # -- questions -------------------------------------------------------------------------

    def owns(self, unit: str) -> bool:
        """Whether this replica may reconcile ``unit`` now."""
        with self._lock:
            seen = self._seen.get(lease_name(unit))
            return (seen is not None and seen.holder == self.identity
                    and seen.mine_since is not None
                    and self.clock() - seen.mine_since < self.renew_deadline)

    def holds(self, unit: str) -> bool:
        """Whether this replica is the recorded holder of ``unit`` (fresh or not: a unit it
        holds but could not renew lately is not :meth:`owns`, but should be tried again)."""
        with self._lock:
            seen = self._seen.get(lease_name(unit))
            return seen is not None and seen.holder == self.identity

    def owned(self) -> list[str]:
        with self._lock:
            return sorted(name for name, s in self._seen.items()
                          if s.holder == self.identity and name.startswith("konfig-unit-"))

    # -- the work --------------------------------------------------------------------------

    def tick(self, units: Iterable[str]) -> None:
        """One round: read every unit Lease (one list), renew ours, take free or expired ones
        up to our share, give back what is over it. Never raises for API errors (logged; the
        next round tries again, and :meth:`owns` turns false once renewals stop)."""
        units = list(units)
        try:
            live = {item["metadata"]["name"]: item for item in self.client.list(
                LEASE, namespace=self.namespace, label_selector=LEASE_LABEL)}
        except KubeError as err:
            log.warning("cannot read unit leases: %s", err)
            return
        now = self.clock()
        me = replica_lease_name(self.identity)
        self._write(me, "", live.get(me), renew=True, kind="replica")
        names = {lease_name(u): u for u in units}
        self._units.update(names)
        with self._lock:
            for name in [n for n in self._seen if n not in live and n != me]:
                del self._seen[name]  # deleted meanwhile (a replica that stopped)
            for name, item in live.items():
                self._observe(name, item, now)
            holders = {s.holder for n, s in self._seen.items() if s.holder
                       and now - s.observed_at < self.duration
                       and n.startswith("konfig-replica-")}
            holders.add(self.identity)
            share = math.ceil(len(units) / len(holders)) if units else 0
            mine = [n for n in names if self._seen.get(n) and self._seen[n].holder == self.identity]
        for name in mine:  # renew first: never lose what we hold to a slow round
            self._write(name, names[name], live.get(name), renew=True)
        over = len(mine) - share
        working = self.busy()
        spare = [n for n in sorted(mine, reverse=True) if names[n] not in working]
        for name in spare[:max(0, over)]:
            self.release(names[name])
        held = len(mine) - min(len(spare), max(0, over))
        for name in sorted(names, key=lambda n: hash((self.identity, n))):
            if held >= share:
                break
            if name in mine:
                continue
            seen = self._seen.get(name)
            free = seen is None or not seen.holder or now - seen.observed_at >= self.duration
            if name not in live or free:
                if self._write(name, names[name], live.get(name), renew=False):
                    held += 1

    def _observe(self, name: str, item: dict[str, Any], now: float) -> None:
        spec = item.get("spec") or {}
        record = (spec.get("holderIdentity") or "", spec.get("renewTime"),
                  spec.get("leaseTransitions"))
        previous = self._seen.get(name)
        if previous is not None and previous.record == record:
            previous.resource_version = item["metadata"]["resourceVersion"]
            return
        self._seen[name] = _Seen(record[0], record, item["metadata"]["resourceVersion"], now,
                                 previous.mine_since if previous and record[0] == self.identity
                                 else None)

    def _write(self, name: str, unit: str, live: dict[str, Any] | None, *, renew: bool,
               kind: str = "unit") -> bool:
        now_text = _micro_time()
        spec: dict[str, Any] = {"holderIdentity": self.identity,
                                "leaseDurationSeconds": max(1, math.ceil(self.duration)),
                                "renewTime": now_text}
        try:
            if live is None:
                body = {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
                        "metadata": {"name": name, "namespace": self.namespace,
                                     "labels": {LEASE_LABEL: kind},
                                     "annotations": {"konfig.dev/unit": unit}},
                        "spec": {**spec, "acquireTime": now_text, "leaseTransitions": 0}}
                stored = self.client.request("POST", LEASE.collection_path(self.namespace),
                                             body=body)
            else:
                old = live.get("spec") or {}
                new_spec = {**old, **spec}
                if old.get("holderIdentity") != self.identity:
                    new_spec["acquireTime"] = now_text
                    new_spec["leaseTransitions"] = int(old.get("leaseTransitions") or 0) + 1
                body = {**live, "spec": new_spec}
                stored = self.client.request("PUT", LEASE.item_path(self.namespace, name),
                                             body=body)
        except KubeError as err:  # 409: another replica was first; 404 on update: gone
            if not (err.conflict or (err.status == 404 and live is not None)):
                log.warning("lease %s: %s", name, err)
            return False
        with self._lock:
            fresh = name not in self._seen or self._seen[name].holder != self.identity
            self._observe(name, stored, self.clock())
            self._seen[name].mine_since = self.clock()
        if fresh and not renew and kind == "unit":
            self.acquired += 1
            log.info("took unit %s", unit)
            if self.on_acquired is not None:
                self.on_acquired(unit)
        return True

    def release(self, unit: str) -> None:
        """Give ``unit``'s Lease back (empty holder) so another replica takes it at once."""
        name = lease_name(unit)
        with self._lock:
            seen = self._seen.get(name)
            if seen is None or seen.holder != self.identity:
                return
            seen.mine_since = None
        try:
            live = self.client.get(LEASE, self.namespace, name)
            if live is None or (live.get("spec") or {}).get("holderIdentity") != self.identity:
                return
            live["spec"] = {**live["spec"], "holderIdentity": "", "leaseDurationSeconds": 1}
            stored = self.client.request("PUT", LEASE.item_path(self.namespace, name), body=live)
        except KubeError as err:
            log.warning("lease %s not released: %s", name, err)
            return
        with self._lock:
            self._observe(name, stored, self.clock())
        self.released += 1

    def release_all(self) -> None:
        """Give back every Lease held and drop the heartbeat (shutdown)."""
        me = replica_lease_name(self.identity)
        for name in self.owned():
            if name != me:
                self.release(self._units.get(name, name[len("konfig-unit-"):]))
        try:
            self.client.delete(LEASE, self.namespace, me)
        except KubeError as err:
            log.warning("replica lease %s not deleted: %s", me, err)


__all__ = ["LEASE", "LeaseKeeper", "lease_name"]
