"""The Kubernetes adapter against the API emulator, through the real kubernetes client."""

from __future__ import annotations

import copy

from konfig.compile import compile_definitions
from konfig.compile.state import DELETION_POLICY, object_key
from konfig.kube.custom_resources import apply_definitions
from konfig.kube.diff import HASH_ANNOTATION
from konfig.kube.sync import reconcile_objects
from konfig.model import API_VERSION

from tests.operator.conftest import writes


def test_objects_are_applied_once_then_left_alone(kube, client, example_state):
    first = reconcile_objects(client, example_state.kubernetes, "acme")
    assert first.ok and first.counts()["created"] == len(example_state.kubernetes)
    stored = kube.get("run.cnrm.cloud.google.com/v1beta1", "RunService", "ecommerce-dev", "checkout")
    assert stored["metadata"]["labels"]["konfig-control-plane"] == "acme"
    assert [m["manager"] for m in stored["metadata"]["managedFields"]][0] == "konfig"
    kube.clear_requests()
    second = reconcile_objects(client, example_state.kubernetes, "acme")
    assert second.counts()["unchanged"] == len(example_state.kubernetes)
    assert writes(kube) == []  # trust your own writes: no needless writes


def test_drift_is_corrected_and_deleted_objects_recreated(kube, client, example_state):
    reconcile_objects(client, example_state.kubernetes, "acme")
    api = "run.cnrm.cloud.google.com/v1beta1"
    live = kube.get(api, "RunService", "ecommerce-dev", "checkout")
    edited = copy.deepcopy(live["spec"])
    edited["template"]["scaling"] = {"maxInstanceCount": 99}
    client.patch(client.kinds.get(api, "RunService"), "ecommerce-dev", "checkout",
                 {"spec": {"template": {"scaling": {"maxInstanceCount": 99}}}}, field_manager="kubectl")
    kube.delete(api, "RunService", "ecommerce-dev", "cart")
    report = reconcile_objects(client, example_state.kubernetes, "acme")
    assert {(r.action, r.key[3]) for r in report.changed} == {("updated", "checkout"), ("created", "cart")}
    desired = next(o for o in example_state.kubernetes if object_key(o) == ("run.cnrm.cloud.google.com",
                   "RunService", "ecommerce-dev", "checkout"))
    assert kube.get(api, "RunService", "ecommerce-dev", "checkout")["spec"]["template"]["scaling"] == \
        desired["spec"]["template"]["scaling"]


def test_prune_deletes_what_is_no_longer_desired_and_only_konfigs(kube, client, example_defs):
    state = compile_definitions(example_defs)
    reconcile_objects(client, state.kubernetes, "acme")
    foreign = {"apiVersion": "storage.cnrm.cloud.google.com/v1beta1", "kind": "StorageBucket",
               "metadata": {"name": "not-konfigs", "namespace": "stores-dev"}, "spec": {"location": "EU"}}
    kube.create(foreign)
    smaller = copy.deepcopy(example_defs)
    del smaller.domains["stores"]
    smaller.workloads = {k: v for k, v in smaller.workloads.items() if k[0] != "stores"}
    remaining = compile_definitions(smaller).kubernetes
    report = reconcile_objects(client, remaining, "acme")
    assert report.ok
    deleted = report.of("deleted")
    gone = {object_key(o) for o in state.kubernetes} - {object_key(o) for o in remaining}
    assert {r.key for r in deleted} == gone - {("", "Namespace", "", "stores-dev")}
    assert report.of("kept")[0].key == ("", "Namespace", "", "stores-dev")
    assert all(o["metadata"]["labels"].get("konfig-domain") != "stores" for o in remaining)
    abandoned = {r.key[1] for r in deleted if r.abandoned}
    assert {"Project", "Folder", "FirestoreDatabase"} <= abandoned
    assert all(r.obj["metadata"]["annotations"][DELETION_POLICY] == "abandon"
               for r in deleted if r.abandoned)
    # The namespaces went last, except the one still holding an object that is not Konfig's.
    prod = kube.get("v1", "Namespace", None, "stores-prod")
    assert prod is None or prod["metadata"].get("deletionTimestamp")
    assert kube.get(foreign["apiVersion"], "StorageBucket", "stores-dev", "not-konfigs") is not None


def test_a_name_held_by_a_foreign_object_is_a_conflict(kube, client, example_state):
    target = next(o for o in example_state.kubernetes if o["kind"] == "StorageBucket")
    taken = {"apiVersion": target["apiVersion"], "kind": target["kind"],
             "metadata": {"name": target["metadata"]["name"], "namespace": target["metadata"]["namespace"]},
             "spec": {"location": "US"}}
    kube.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": taken["metadata"]["namespace"]}})
    kube.create(taken)
    report = reconcile_objects(client, example_state.kubernetes, "acme")
    [conflict] = report.of("conflict")
    assert conflict.key[3] == target["metadata"]["name"] and "without Konfig's labels" in conflict.message
    live = kube.get(target["apiVersion"], "StorageBucket", taken["metadata"]["namespace"], taken["metadata"]["name"])
    assert live["spec"] == {"location": "US"} and HASH_ANNOTATION not in (live["metadata"].get("annotations") or {})


def test_konfig_apply_writes_resources_and_prunes_removed_definitions(kube, client, example_defs,
                                                                       example_state):
    result = apply_definitions(client, example_defs, example_state)
    assert result.ok
    workloads = kube.list(API_VERSION, "Workload")
    expected = sum(len(example_defs.domain_environments(example_defs.domains[d]))
                   for d, _ in example_defs.workloads)
    assert len(workloads) == expected
    cart = kube.get(API_VERSION, "Workload", "ecommerce-prod", "cart")
    assert cart["metadata"]["labels"]["konfig-environment"] == "prod"
    assert kube.get("v1", "Namespace", None, "ecommerce-prod") is not None
    kube.clear_requests()
    dry = apply_definitions(client, example_defs, example_state, dry_run=True)
    assert writes(kube) == [] and all(r.action == "unchanged" for r in dry.results)
    smaller = copy.deepcopy(example_defs)
    del smaller.workloads[("ecommerce", "cart")]
    smaller.domains["ecommerce"] = smaller.domains["ecommerce"].model_copy(
        update={"spec": smaller.domains["ecommerce"].spec.model_copy(update={"workloads": ["checkout", "catalog"]})})
    result = apply_definitions(client, smaller, compile_definitions(smaller))
    assert result.ok
    assert sorted(r.key[2] for r in result.resources.of("deleted")) == [
        "ecommerce-dev", "ecommerce-prod", "ecommerce-stage"]
    assert result.resources.of("updated")[0].key[3] == "ecommerce"
