"""The pure diff of the Kubernetes adapter: what is created, updated, left alone and pruned."""

from __future__ import annotations

import copy

from konfig.compile.state import DELETION_POLICY
from konfig.kube.diff import (
    BREAK_GLASS_LABEL,
    HASH_ANNOTATION,
    contains,
    desired_hash,
    first_difference,
    plan,
    with_hash,
)
from konfig.compile.state import object_key

CP = "acme"


def obj(kind="StorageBucket", name="b", namespace="shop-dev", api="storage.cnrm.cloud.google.com/v1beta1",
        labels=None, spec=None, annotations=None):
    meta = {"name": name, "labels": {"konfig-control-plane": CP, **(labels or {})}}
    if namespace:
        meta["namespace"] = namespace
    if annotations:
        meta["annotations"] = annotations
    return {"apiVersion": api, "kind": kind, "metadata": meta, "spec": spec or {"location": "EU"}}


def live_of(desired, **extra):
    """What the server would hold after applying ``desired``: server fields added."""
    live = copy.deepcopy(with_hash(desired))
    live["metadata"].update(uid="u-1", resourceVersion="7", generation=1, **extra)
    live["status"] = {"conditions": [{"type": "Ready", "status": "True"}]}
    return live


def observed(*objects):
    return {object_key(o): o for o in objects}


def test_missing_object_is_created_with_its_hash():
    desired = obj()
    [action] = plan([desired], {}, CP).actions
    assert action.op == "create"
    assert action.obj["metadata"]["annotations"][HASH_ANNOTATION] == desired_hash(desired)


def test_applied_object_is_left_alone_despite_server_fields():
    desired = obj()
    assert [a.op for a in plan([desired], observed(live_of(desired)), CP).actions] == ["unchanged"]


def test_drift_and_new_desired_fields_update():
    desired = obj()
    drifted = live_of(desired)
    drifted["spec"]["location"] = "US"  # changed by hand
    [action] = plan([desired], observed(drifted), CP).actions
    assert action.op == "update" and "spec.location" in action.reason
    changed = obj(spec={"location": "EU", "storageClass": "NEARLINE"})
    assert plan([changed], observed(live_of(desired)), CP).actions[0].op == "update"


def test_removed_desired_field_updates_through_the_hash():
    before = obj(spec={"location": "EU", "storageClass": "NEARLINE"})
    after = obj(spec={"location": "EU"})
    # The live object still holds every field of `after`, but its hash says it was applied
    # from `before`, so server-side apply must run to drop storageClass.
    [action] = plan([after], observed(live_of(before)), CP).actions
    assert action.op == "update"


def test_objects_that_are_not_konfigs_are_never_taken_over():
    desired = obj()
    foreign = live_of(desired)
    del foreign["metadata"]["labels"]["konfig-control-plane"]
    other_plane = live_of(obj())
    other_plane["metadata"]["labels"]["konfig-control-plane"] = "other"
    assert plan([desired], observed(foreign), CP).actions[0].op == "conflict"
    [action] = plan([desired], observed(other_plane), CP).actions
    assert action.op == "conflict" and "other" in action.reason
    # ...and never pruned either.
    assert plan([], observed(foreign, other_plane), CP).actions == []


def test_existing_namespaces_are_adopted():
    ns = obj(kind="Namespace", name="konfig-system", namespace=None, api="v1", spec={})
    del ns["spec"]
    made_by_helm = {"apiVersion": "v1", "kind": "Namespace",
                    "metadata": {"name": "konfig-system", "uid": "n", "labels": {}}}
    assert plan([ns], observed(made_by_helm), CP).actions[0].op == "update"


def test_prune_deletes_in_reverse_order_keeps_break_glass_and_marks_abandon():
    project = live_of(obj(kind="Project", name="p", namespace="konfig-system",
                          api="resourcemanager.cnrm.cloud.google.com/v1beta1",
                          annotations={DELETION_POLICY: "abandon"}))
    member = live_of(obj(kind="IAMPolicyMember", name="m", namespace="konfig-system",
                         api="iam.cnrm.cloud.google.com/v1beta1"))
    grant = live_of(obj(kind="IAMPolicyMember", name="bg", namespace="konfig-system",
                        api="iam.cnrm.cloud.google.com/v1beta1", labels={BREAK_GLASS_LABEL: "true"}))
    going = live_of(obj(name="going"), deletionTimestamp="2024-01-01T00:00:00Z")
    actions = plan([], observed(project, member, grant, going), CP).actions
    ops = [(a.op, a.key[3]) for a in actions]
    assert ("keep", "bg") in ops and ("delete", "going") not in ops
    deletes = [name for op, name in ops if op == "delete"]
    assert deletes == ["m", "p"]  # bindings before the project they bind on
    assert [a.abandons for a in actions if a.op == "delete"] == [False, True]


def test_namespaces_go_last_and_only_when_emptied_and_never_the_system_one():
    ns = {"apiVersion": "v1", "kind": "Namespace",
          "metadata": {"name": "shop-dev", "uid": "n", "labels": {"konfig-control-plane": CP}}}
    system = copy.deepcopy(ns)
    system["metadata"]["name"] = "konfig-system"
    inside = live_of(obj(name="x"))
    ops = [(a.op, a.key[1]) for a in plan([], observed(ns, system, inside), CP).actions]
    assert ops[-1] == ("delete", "Namespace") and ("keep", "Namespace") in ops
    still_used = plan([obj(name="x")], observed(ns, inside), CP).actions
    assert [(a.op, a.key[1]) for a in still_used] == [("unchanged", "StorageBucket"),
                                                      ("keep", "Namespace")]


def test_contains_is_strict_on_lists_and_booleans():
    assert contains({"a": [1, {"b": 2, "c": 3}]}, {"a": [1, {"b": 2}]})
    assert not contains({"a": [1, 2]}, {"a": [1]})
    assert not contains({"a": 1}, {"a": True})
    assert first_difference({"a": {"b": [1]}}, {"a": {"b": [2]}}) == "a.b[0]"


def test_objects_of_definitions_the_pass_did_not_read_are_never_pruned():
    """A pass that read a half-applied set (the Domain not applied yet) must not prune that
    domain's namespace and objects: removal goes through the resource's deletion."""
    from konfig.kube.owners import responsible

    labels = {"konfig-domain": "shop", "konfig-environment": "dev"}
    ns = {"apiVersion": "v1", "kind": "Namespace",
          "metadata": {"name": "shop-dev", "uid": "n", "labels": {"konfig-control-plane": CP, **labels}}}
    inside = live_of(obj(name="x", labels=labels))
    seen_nothing = plan([], observed(ns, inside), CP, read=lambda live: False).actions
    assert {(a.op, a.key[1]) for a in seen_nothing} == {("keep", "Namespace"), ("keep", "StorageBucket")}
    read = {responsible(ns)}
    assert read == {responsible(inside)}  # both belong to the Domain resource
    seen_domain = plan([], observed(ns, inside), CP, read=lambda live: responsible(live) in read).actions
    assert [(a.op, a.key[1]) for a in seen_domain] == [("delete", "StorageBucket"), ("delete", "Namespace")]
