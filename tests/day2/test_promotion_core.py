"""The pure promotion rules (konfig.promotion): every refusal, and what a promotion writes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from konfig.promotion import (
    PROMOTED_AT,
    PROMOTED_BY,
    PROMOTED_DIGEST,
    PROMOTED_FROM,
    PromotionRefused,
    infer_domain,
    plan_promotion,
)

from . import org

NOW = datetime(2025, 3, 1, 12, 30, 15, 123456, tzinfo=UTC)
CP = org.model(org.control_plane())
SHOP = org.model(org.domain())
STORES = org.model(org.stores())


def plan(to="stage", *, frm=None, domain=SHOP, source=None, target=None, **kw):
    return plan_promotion(control_plane=CP, domain=domain, workload="checkout", to_environment=to,
                          from_environment=frm, source=source, target=target, actor="alice", now=NOW,
                          **kw)


def refusal(**kw) -> PromotionRefused:
    with pytest.raises(PromotionRefused) as caught:
        plan(**kw)
    return caught.value


def source_in(env: str, domain: str = "shop", image: str = org.IMAGE_B, **kw):
    obj = org.running(org.workload(domain), image, **kw)
    obj["metadata"]["namespace"] = f"{domain}-{env}"
    return obj


def test_moves_the_running_digest_to_the_next_environment():
    target = org.running(org.workload(image=org.IMAGE_A))
    target["metadata"].update(namespace="shop-stage", resourceVersion="42")

    promotion = plan(source=source_in("dev"), target=target)

    assert (promotion.source_environment, promotion.target_environment) == ("dev", "stage")
    assert (promotion.source_namespace, promotion.target_namespace) == ("shop-dev", "shop-stage")
    assert promotion.image == org.IMAGE_B and promotion.digest == org.DIGEST_B
    assert promotion.previous_image == org.IMAGE_A and promotion.changed and not promotion.create
    assert not promotion.production
    assert promotion.merge_patch() == {
        "metadata": {
            "resourceVersion": "42",
            "annotations": {
                PROMOTED_FROM: "dev",
                PROMOTED_BY: "alice",
                PROMOTED_AT: "2025-03-01T12:30:15Z",
                PROMOTED_DIGEST: org.DIGEST_B,
            },
        },
        "spec": {"image": org.IMAGE_B},
    }
    assert "alice" in promotion.event_note() and org.DIGEST_B in promotion.event_note()
    with pytest.raises(ValueError):
        promotion.new_object()


def test_promoted_at_is_utc_whatever_the_callers_zone():
    later = NOW.astimezone(timezone(timedelta(hours=-5)))
    promotion = plan_promotion(control_plane=CP, domain=SHOP, workload="checkout", to_environment="stage",
                               source=source_in("dev"), target=None, actor="bob", now=later)
    assert promotion.annotations()[PROMOTED_AT] == "2025-03-01T12:30:15Z"
    with pytest.raises(ValueError):
        plan_promotion(control_plane=CP, domain=SHOP, workload="checkout", to_environment="stage",
                       source=source_in("dev"), target=None, actor="bob", now=NOW.replace(tzinfo=None))


def test_creates_the_target_from_the_source_when_the_environment_has_none():
    source = source_in("stage")
    source["metadata"]["labels"]["konfig-environment"] = "stage"

    promotion = plan("prod", source=source)

    assert promotion.create and promotion.production and promotion.previous_image is None
    new = promotion.new_object()
    assert new["metadata"]["namespace"] == "shop-prod" and new["metadata"]["name"] == "checkout"
    assert new["metadata"]["labels"] == {"app.kubernetes.io/part-of": "shop", "konfig-environment": "prod"}
    assert new["metadata"]["annotations"][PROMOTED_FROM] == "stage"
    assert new["spec"] == {**source["spec"], "image": org.IMAGE_B}
    assert "status" not in new and "resourceVersion" not in new["metadata"]
    # The source object is left as it was.
    assert source["metadata"]["labels"]["konfig-environment"] == "stage"


def test_explicit_adjacent_from_is_accepted():
    assert plan("prod", frm="stage", source=source_in("stage")).source_environment == "stage"


def test_a_domain_without_stage_promotes_dev_to_prod():
    promotion = plan("prod", domain=STORES, source=source_in("dev", "stores"))
    assert promotion.source_environment == "dev" and promotion.target_namespace == "stores-prod"


def test_nothing_to_do_when_the_target_already_runs_the_digest():
    target = org.running(org.workload(image=org.IMAGE_B))
    assert not plan(source=source_in("dev"), target=target).changed


def test_refuses_an_unknown_environment():
    assert refusal(to="qa", source=source_in("dev")).code == "unknown-environment"
    assert refusal(to="prod", frm="qa", source=source_in("dev")).code == "unknown-environment"


def test_refuses_an_environment_the_domain_does_not_have():
    caught = refusal(to="stage", domain=STORES, source=source_in("dev", "stores"))
    assert caught.code == "not-in-domain" and "dev, prod" in caught.reason


def test_refuses_promoting_into_the_first_environment():
    assert refusal(to="dev", source=source_in("dev")).code == "first-environment"


def test_refuses_skipping_an_environment():
    caught = refusal(to="prod", frm="dev", source=source_in("dev"))
    assert caught.code == "skip" and "stage" in caught.reason


def test_refuses_going_backwards():
    caught = refusal(to="stage", frm="prod", source=source_in("prod"))
    assert caught.code == "skip" and "backwards" in caught.reason


def test_refuses_an_unknown_workload():
    caught = refusal(to="stage", source=None)
    assert caught.code == "unknown-workload" and "shop-dev" in caught.reason


def test_refuses_a_workload_of_another_domain():
    assert refusal(source=source_in("dev", domain="stores")).code == "domain-mismatch"
    target = org.running(org.workload("stores"))
    assert refusal(source=source_in("dev"), target=target).code == "domain-mismatch"


def test_refuses_a_tag_without_digest():
    caught = refusal(source=source_in("dev", image=f"{org.REPO}:v1.2.3"))
    assert caught.code == "no-digest" and "v1.2.3" in caught.reason


@pytest.mark.parametrize(
    "state",
    [
        {"generation": 3, "observed": 2},  # the operator has not seen the latest spec
        {"ready": "False"},  # seen, but failing
    ],
)
def test_refuses_a_source_that_is_not_running_its_spec(state):
    assert refusal(source=source_in("dev", **state)).code == "not-ready"


def test_refuses_a_ready_condition_of_an_older_generation():
    source = source_in("dev", generation=2)
    source["status"]["conditions"][0]["observedGeneration"] = 1
    assert refusal(source=source).code == "not-ready"


def test_refuses_a_source_without_status():
    source = source_in("dev")
    del source["status"]
    assert refusal(source=source).code == "not-ready"
    source = source_in("dev")
    del source["status"]["image"]
    assert refusal(source=source).code == "not-ready"


def test_infer_domain():
    assert infer_domain("checkout", [org.workload("shop"), org.workload("shop")]) == "shop"
    with pytest.raises(PromotionRefused) as none:
        infer_domain("checkout", [])
    assert none.value.code == "unknown-workload"
    with pytest.raises(PromotionRefused) as several:
        infer_domain("checkout", [org.workload("shop"), org.workload("stores")])
    assert several.value.code == "ambiguous-workload" and "--domain" in several.value.reason
