"""Owner references, responsibility, and the status roll-up (pure)."""

from __future__ import annotations

from konfig.kube.owners import Ref, owner_reference, responsible
from konfig.operator.status import (
    Children,
    child_readiness,
    conditions,
    status_patch,
    verdict_for,
    verdict_ready,
)

SYSTEM = "konfig-system"
UIDS = {Ref("Workload", "shop-dev", "cart"): "w-uid", Ref("Domain", SYSTEM, "shop"): "d-uid",
        Ref("ControlPlane", SYSTEM, "acme"): "c-uid"}


def labelled(namespace, **labels):
    meta = {"name": "x", "labels": {"konfig-control-plane": "acme",
                                    **{f"konfig-{k}": v for k, v in labels.items()}}}
    if namespace:
        meta["namespace"] = namespace
    return {"apiVersion": "v1", "kind": "K", "metadata": meta}


def test_owner_references_only_within_one_namespace():
    workload_obj = labelled("shop-dev", platform="p", domain="shop", environment="dev", workload="cart")
    assert owner_reference(workload_obj, UIDS, SYSTEM)["uid"] == "w-uid"
    project = labelled(SYSTEM, platform="p", domain="shop", environment="dev")
    assert owner_reference(project, UIDS, SYSTEM)["kind"] == "Domain"
    context_in_env_ns = labelled("shop-dev", platform="p", domain="shop", environment="dev")
    assert responsible(context_in_env_ns, SYSTEM) == Ref("Domain", SYSTEM, "shop")
    assert owner_reference(context_in_env_ns, UIDS, SYSTEM) is None  # cross-namespace
    assert owner_reference(labelled(None), UIDS, SYSTEM) is None  # cluster-scoped
    assert responsible({"apiVersion": "v1", "kind": "K", "metadata": {"name": "x"}}, SYSTEM) is None
    # A workload's grant on a shared subnet lives in the system namespace, where no Workload
    # does: its domain is responsible, so it is pruned with the workload, not leaked.
    grant = labelled(SYSTEM, platform="p", domain="shop", environment="dev", workload="cart")
    assert responsible(grant, SYSTEM) == Ref("Domain", SYSTEM, "shop")


def kcc(ready=None, generation=1, observed=1):
    obj = {"apiVersion": "sql.cnrm.cloud.google.com/v1beta1", "kind": "SQLInstance",
           "metadata": {"name": "db", "namespace": "shop-dev", "generation": generation}}
    if ready is not None:
        obj["status"] = {"observedGeneration": observed,
                         "conditions": [{"type": "Ready", "status": ready, "reason": "UpdateFailed",
                                         "message": "quota"}]}
    return obj


def test_child_readiness_follows_config_connector():
    assert child_readiness(kcc("True")) == (True, "")
    assert child_readiness(kcc())[0] is False
    assert "quota" in child_readiness(kcc("False"))[1]
    assert child_readiness(kcc("True", generation=2, observed=1))[0] is False
    assert child_readiness({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "n"}})[0]


def test_roll_up_and_counts():
    verdict = verdict_for(Children([kcc("True"), kcc("False")]))
    assert verdict.ready[0] is False and verdict.ready[1] == "ChildrenNotReady"
    assert verdict.reconciling[0] is True and verdict.extra["children"] == {"SQLInstance": 2}
    assert verdict.extra["readyChildren"] == 1
    conflict = verdict_for(Children([kcc("True")], conflicts=["StorageBucket x: taken"]))
    assert conflict.stalled[0] is True
    gitlab = verdict_for(Children([kcc("True")]), gitlab_error="group refused")
    assert gitlab.ready[1] == "GitLabSyncFailed" and gitlab.reconciling[0]


def test_conditions_keep_transition_time_and_patches_are_minimal():
    resource = {"metadata": {"generation": 3}, "status": {}}
    verdict = verdict_ready("ok", {"children": {"A": 1}})
    patch = status_patch(resource, verdict, "2024-01-01T00:00:00Z")
    assert [c["observedGeneration"] for c in patch["status"]["conditions"]] == [3, 3, 3]
    resource["status"] = patch["status"]
    assert status_patch(resource, verdict, "2024-02-02T00:00:00Z") is None  # nothing changed
    later = conditions(resource["status"]["conditions"], verdict, 4, "2024-03-03T00:00:00Z")
    assert all(c["lastTransitionTime"] == "2024-01-01T00:00:00Z" for c in later)
    fewer = status_patch(resource, verdict_ready("ok", {"children": {"B": 2}}), "t")
    assert fewer["status"]["children"] == {"A": None, "B": 2}  # a merge patch that drops A
