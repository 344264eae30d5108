"""The watch's store of custom resources (pure)."""

from konfig.operator.cache import ResourceCache


def body(uid: str, generation: int = 1) -> dict:
    return {"kind": "Domain", "metadata": {"uid": uid, "name": uid, "generation": generation}}


def test_events_during_a_list_win_over_it():
    cache = ResourceCache()
    cache.begin()
    cache.event("ADDED", body("cp"))  # created while the list was under way: not in it
    cache.event("DELETED", body("gone"))  # deleted after the list read it
    cache.replace([body("gone"), body("d1")])
    assert sorted(r["metadata"]["uid"] for r in cache.items()) == ["cp", "d1"]
    assert cache.primed


def test_later_events_update_and_delete():
    cache = ResourceCache()
    cache.begin()
    cache.replace([body("d1")])
    cache.event("MODIFIED", body("d1", 2))
    assert cache.items()[0]["metadata"]["generation"] == 2
    cache.event("DELETED", body("d1", 2))
    assert cache.items() == []
