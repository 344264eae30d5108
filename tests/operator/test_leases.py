"""Unit Leases (coordination.k8s.io/v1) shared by replicas, against the API emulator over
HTTP, with a clock the test moves."""

from __future__ import annotations

import pytest

from konfig.operator.leases import LEASE, LeaseKeeper, lease_name

UNITS = ["control-plane", *(f"domain/d{i}" for i in range(9))]
NS = "konfig-system"


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture(autouse=True)
def namespace(client):
    client.apply({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NS}})


def holders(client) -> dict[str, str]:
    return {i["metadata"]["name"]: i["spec"].get("holderIdentity") or ""
            for i in client.list(LEASE, namespace=NS, label_selector="konfig.dev/lease=unit")}


def test_replicas_share_units_one_owner_each_and_fail_over(client):
    clock = Clock()
    taken: list[tuple[str, str]] = []
    keepers = [LeaseKeeper(client, NS, f"r{i}", duration=15, clock=clock,
                           on_acquired=lambda u, i=i: taken.append((f"r{i}", u)))
               for i in range(3)]
    for _ in range(3):  # a few rounds: everyone sees everyone, shares settle
        for k in keepers:
            k.tick(UNITS)
        clock.now += 5
    owners = {u: [k.identity for k in keepers if k.owns(u)] for u in UNITS}
    assert all(len(o) == 1 for o in owners.values()), owners
    counts = sorted(sum(1 for o in owners.values() if o == [k.identity]) for k in keepers)
    assert max(counts) <= 4 and min(counts) >= 2, counts  # at most ceil(10 / 3) each
    assert sorted(holders(client).values()) == sorted(o[0] for o in owners.values())

    # r0 dies (no more renewals): its units stay its own until the lease duration passes...
    dead = keepers[0]
    lost = [u for u in UNITS if dead.owns(u)]
    clock.now += 5  # 10 s since r0's last renewal (the setup loop moved 5 s already)
    for k in keepers[1:]:
        k.tick(UNITS)
    assert not any(k.owns(u) for k in keepers[1:] for u in lost)
    assert not any(dead.owns(u) for u in lost)  # it would stop itself past the renew deadline
    # ...and then the others take them over, one owner each.
    clock.now += 6
    for _ in range(2):
        for k in keepers[1:]:
            k.tick(UNITS)
    owners = {u: [k.identity for k in keepers[1:] if k.owns(u)] for u in UNITS}
    assert all(len(o) == 1 for o in owners.values()), owners
    assert {u for who, u in taken if who != "r0"} >= set(lost)


def test_a_stopping_replica_hands_its_units_over_at_once(client):
    clock = Clock()
    a = LeaseKeeper(client, NS, "a", duration=15, clock=clock)
    a.tick(UNITS)
    assert all(a.owns(u) for u in UNITS)
    b = LeaseKeeper(client, NS, "b", duration=15, clock=clock)
    b.tick(UNITS)
    assert not any(b.owns(u) for u in UNITS)  # held and fresh: not taken
    a.release_all()
    b.tick(UNITS)
    assert all(b.owns(u) for u in UNITS) and not any(a.owns(u) for u in UNITS)
    assert set(holders(client).values()) == {"b"}


def test_a_new_replica_gets_its_share(client):
    clock = Clock()
    a = LeaseKeeper(client, NS, "a", duration=15, clock=clock)
    a.tick(UNITS)
    b = LeaseKeeper(client, NS, "b", duration=15, clock=clock)
    b.tick(UNITS)  # b becomes visible to a through its (empty-handed) round? no lease yet
    for _ in range(3):
        clock.now += 5
        a.tick(UNITS)
        b.tick(UNITS)
    mine_a = [u for u in UNITS if a.owns(u)]
    mine_b = [u for u in UNITS if b.owns(u)]
    assert len(mine_a) == len(mine_b) == 5 and not set(mine_a) & set(mine_b)


def test_names_are_dns_subdomains():
    assert lease_name("domain/payments") == "konfig-unit-domain-payments"
    assert lease_name("control-plane") == "konfig-unit-control-plane"
