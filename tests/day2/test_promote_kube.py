"""`konfig.kube.promote` with the real kubernetes client against the Kubernetes API emulator."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from kubernetes.client import ApiException

from konfig.kube.promote import ClusterStateError, apply_promotion, observe, promote
from konfig.promotion import PromotionRefused, plan_promotion

from . import org

NOW = datetime(2025, 3, 1, 9, 15, 0, tzinfo=UTC)


def run(cluster, to, **kw):
    kw.setdefault("workload", "checkout")
    return promote(cluster.api_client, to_environment=to, actor="alice", now=NOW, **kw)


def refused(cluster, to, **kw) -> PromotionRefused:
    with pytest.raises(PromotionRefused) as caught:
        run(cluster, to, **kw)
    return caught.value


def test_moves_the_digest_running_in_dev_to_stage(seeded):
    seeded.workload("shop", "dev", org.IMAGE_B)
    seeded.workload("shop", "stage", org.IMAGE_A)

    report = run(seeded, "stage")  # domain inferred: only shop has a checkout

    assert report.applied and not report.warnings
    stage = seeded.get("workloads", "shop-stage", "checkout")
    assert stage["spec"]["image"] == org.IMAGE_B
    assert stage["metadata"]["generation"] == 2
    assert stage["metadata"]["annotations"] == {
        "konfig.dev/promoted-from": "dev",
        "konfig.dev/promoted-by": "alice",
        "konfig.dev/promoted-at": "2025-03-01T09:15:00Z",
        "konfig.dev/promoted-digest": org.DIGEST_B,
    }
    assert "konfig-promote" in {m["manager"] for m in stage["metadata"]["managedFields"]}
    assert stage["spec"]["env"] == {"LOG_LEVEL": "info"}  # the rest of the spec is untouched
    (event,) = seeded.events_about("shop-stage", "checkout")
    assert event.reason == "Promoted" and event.type == "Normal" and event.action == "Promote"
    assert event.regarding.kind == "Workload" and event.regarding.uid == stage["metadata"]["uid"]
    assert org.DIGEST_B in event.note and "alice" in event.note
    assert event.metadata.name == report.event
    # The source is left alone.
    assert seeded.get("workloads", "shop-dev", "checkout")["spec"]["image"] == org.IMAGE_B


def test_creates_the_workload_in_an_environment_that_has_none(seeded):
    seeded.workload("shop", "stage", org.IMAGE_B)

    report = run(seeded, "prod", domain="shop")

    assert report.applied and report.promotion.create and report.promotion.production
    prod = seeded.get("workloads", "shop-prod", "checkout")
    assert prod["spec"]["image"] == org.IMAGE_B and prod["spec"]["domain"] == "shop"
    assert prod["metadata"]["annotations"]["konfig.dev/promoted-from"] == "stage"
    assert "status" not in prod  # the operator reports on it, not the promotion
    assert [e.reason for e in seeded.events_about("shop-prod", "checkout")] == ["Promoted"]


def test_promoting_again_changes_nothing(seeded):
    seeded.workload("shop", "dev", org.IMAGE_B)
    seeded.workload("shop", "stage", org.IMAGE_A)
    run(seeded, "stage")
    before = seeded.get("workloads", "shop-stage", "checkout")

    again = run(seeded, "stage")

    assert not again.applied and not again.promotion.changed
    assert seeded.get("workloads", "shop-stage", "checkout")["metadata"]["resourceVersion"] == \
        before["metadata"]["resourceVersion"]
    assert len(seeded.events_about("shop-stage", "checkout")) == 1


def test_a_dry_run_writes_nothing(seeded):
    seeded.workload("shop", "dev", org.IMAGE_B)
    seeded.workload("shop", "stage", org.IMAGE_A)

    report = run(seeded, "stage", dry_run=True)

    assert report.promotion.changed and not report.applied
    assert seeded.get("workloads", "shop-stage", "checkout")["spec"]["image"] == org.IMAGE_A
    assert seeded.events_about("shop-stage", "checkout") == []


def test_a_domain_without_stage_goes_from_dev_to_prod(seeded):
    seeded.workload("stores", "dev", org.IMAGE_B)
    assert run(seeded, "prod", domain="stores").promotion.source_environment == "dev"
    assert seeded.get("workloads", "stores-prod", "checkout")["spec"]["image"] == org.IMAGE_B


def assert_untouched(cluster, namespace="shop-stage", image=org.IMAGE_A):
    target = cluster.get("workloads", namespace, "checkout")
    assert target is None or (target["spec"]["image"] == image and "annotations" not in target["metadata"])
    assert cluster.events_about(namespace, "checkout") == []


def test_refuses_a_tag_without_digest(seeded):
    seeded.workload("shop", "dev", f"{org.REPO}:v1.4.0")
    seeded.workload("shop", "stage", org.IMAGE_A)
    assert refused(seeded, "stage").code == "no-digest"
    assert_untouched(seeded)


def test_refuses_skipping_an_environment(seeded):
    seeded.workload("shop", "dev", org.IMAGE_B)
    seeded.workload("shop", "prod", org.IMAGE_A)
    caught = refused(seeded, "prod", from_environment="dev")
    assert caught.code == "skip" and "stage" in caught.reason
    assert_untouched(seeded, "shop-prod")


def test_refuses_an_environment_the_domain_does_not_have(seeded):
    seeded.workload("stores", "dev", org.IMAGE_B)
    assert refused(seeded, "stage", domain="stores").code == "not-in-domain"
    assert refused(seeded, "qa", domain="stores").code == "unknown-environment"


def test_refuses_a_source_that_is_not_ready(seeded):
    seeded.workload("shop", "dev", org.IMAGE_B, ready="False")
    seeded.workload("shop", "stage", org.IMAGE_A)
    caught = refused(seeded, "stage")
    assert caught.code == "not-ready" and "shop-dev" in caught.reason
    assert_untouched(seeded)


def test_refuses_a_source_the_operator_has_not_observed_yet(seeded):
    seeded.workload("shop", "dev", org.IMAGE_B, observe=False)
    seeded.workload("shop", "stage", org.IMAGE_A)
    assert refused(seeded, "stage").code == "not-ready"
    # A new spec (generation 2) that the operator has not reconciled yet: still refused.
    seeded.custom.patch_namespaced_custom_object("konfig.dev", "v1alpha1", "shop-stage", "workloads", "checkout",
                                                 {"spec": {"image": org.IMAGE_B}})
    seeded.workload("shop", "prod", org.IMAGE_A)
    assert refused(seeded, "prod").code == "not-ready"
    assert_untouched(seeded, "shop-prod")


def test_refuses_an_unknown_workload(seeded):
    seeded.workload("shop", "dev", org.IMAGE_B)
    assert refused(seeded, "stage", workload="cart").code == "unknown-workload"
    caught = refused(seeded, "stage", workload="cart", domain="shop")
    assert caught.code == "unknown-workload" and "shop-dev" in caught.reason


def test_asks_for_the_domain_when_the_name_is_not_unique(seeded):
    seeded.workload("shop", "dev", org.IMAGE_B)
    seeded.workload("stores", "dev", org.IMAGE_A)
    assert refused(seeded, "prod").code == "ambiguous-workload"
    assert run(seeded, "prod", domain="stores").promotion.image == org.IMAGE_A


def test_a_concurrent_change_of_the_target_is_not_overwritten(seeded):
    seeded.workload("shop", "dev", org.IMAGE_B)
    seeded.workload("shop", "stage", org.IMAGE_A)
    inputs = observe(seeded.api_client, workload="checkout", to_environment="stage", domain="shop")
    promotion = plan_promotion(control_plane=inputs.control_plane, domain=inputs.domain, workload="checkout",
                               to_environment="stage", source=inputs.source, target=inputs.target,
                               actor="alice", now=NOW)
    seeded.custom.patch_namespaced_custom_object("konfig.dev", "v1alpha1", "shop-stage", "workloads", "checkout",
                                                 {"spec": {"env": {"LOG_LEVEL": "debug"}}})

    with pytest.raises(ApiException) as caught:
        apply_promotion(seeded.api_client, promotion)

    assert caught.value.status == 409
    assert_untouched(seeded)
    assert run(seeded, "stage").applied  # observing again succeeds


def test_without_a_control_plane(cluster):
    cluster.namespace("konfig-system")
    with pytest.raises(ClusterStateError, match="ControlPlane"):
        run(cluster, "stage", domain="shop")
