"""`konfig.kube.breakglass` with the real kubernetes client against the Kubernetes API
emulator: grants as IAMPolicyMembers, list, revoke, expiry, and the records on the Domain."""

from __future__ import annotations

import copy
from datetime import UTC, datetime, timedelta

import pytest

from konfig.breakglass import BreakGlassRefused
from konfig.kube.breakglass import (
    ClusterStateError,
    list_grants,
    remove_expired_grants,
    request_grant,
    revoke_grant,
)

from . import org

NOW = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)
OWNERS = ["platform-admins@acme.com", "retail-owners@acme.com", "shop-oncall@acme.com"]


def grant(cluster, env="prod", duration="1h", reason="INC-7 payments failing", domain="shop", now=NOW, **kw):
    return request_grant(cluster.api_client, domain=domain, environment=env, duration=duration,
                         reason=reason, actor="alice", now=now, **kw)


def refused(cluster, **kw) -> BreakGlassRefused:
    with pytest.raises(BreakGlassRefused) as caught:
        grant(cluster, **kw)
    return caught.value


def domain_of(cluster, name="shop"):
    return cluster.get("domains", "konfig-system", name)


def test_grant_creates_one_conditional_member_per_owner_group_and_role(seeded):
    report = grant(seeded)

    assert not report.warnings
    members = seeded.members()
    assert sorted(m["metadata"]["name"] for m in members) == sorted(report.objects)
    assert {(m["spec"]["member"], m["spec"]["role"]) for m in members} == {
        (f"group:{g}", r) for g in OWNERS for r in org.BREAK_GLASS_ROLES
    }
    g = report.grant
    for member in members:
        assert member["spec"]["resourceRef"] == {
            "apiVersion": "resourcemanager.cnrm.cloud.google.com/v1beta1", "kind": "Project",
            "name": "acme-shop-prod"}
        assert member["spec"]["condition"] == {
            "title": f"break-glass {g.id}", "description": "INC-7 payments failing",
            "expression": 'request.time < timestamp("2025-03-01T13:00:00Z")'}
        labels = member["metadata"]["labels"]
        assert labels["konfig-break-glass"] == "true" and labels["konfig-break-glass-id"] == g.id
        assert (labels["konfig-control-plane"], labels["konfig-platform"], labels["konfig-domain"],
                labels["konfig-environment"]) == ("acme", "retail", "shop", "prod")
        assert member["metadata"]["annotations"]["konfig.dev/requested-by"] == "alice"


def test_grant_is_recorded_on_the_domain(seeded):
    g = grant(seeded).grant

    domain = domain_of(seeded)
    assert g.id in domain["metadata"]["annotations"]["konfig.dev/break-glass-last"]
    assert "granted" in domain["metadata"]["annotations"]["konfig.dev/break-glass-last"]
    assert domain["status"]["breakGlass"] == [{
        "id": g.id, "env": "prod", "groups": OWNERS, "roles": sorted(org.BREAK_GLASS_ROLES),
        "expiresAt": "2025-03-01T13:00:00Z", "requestedBy": "alice", "reason": "INC-7 payments failing",
        "state": "granted", "at": "2025-03-01T12:00:00Z", "by": "alice",
    }]
    (event,) = seeded.events_about("konfig-system", "shop")
    assert (event.reason, event.type, event.regarding.kind) == ("BreakGlassGranted", "Normal", "Domain")
    assert g.id in event.note and "INC-7" in event.note


def test_status_lines_written_by_others_are_kept(seeded):
    seeded.custom.patch_namespaced_custom_object_status(
        "konfig.dev", "v1alpha1", "konfig-system", "domains", "shop",
        {"status": {"observedGeneration": 1, "conditions": [{"type": "Ready", "status": "True"}]}})
    first = grant(seeded).grant
    second = grant(seeded, env="dev", reason="debug", now=NOW + timedelta(minutes=1)).grant

    status = domain_of(seeded)["status"]
    assert [(line["id"], line["state"]) for line in status["breakGlass"]] == [
        (first.id, "granted"), (second.id, "granted")]
    assert status["conditions"] == [{"type": "Ready", "status": "True"}]


def test_a_subset_of_owner_groups(seeded):
    report = grant(seeded, groups=["shop-oncall@acme.com"])
    assert {m["spec"]["member"] for m in seeded.members()} == {"group:shop-oncall@acme.com"}
    assert len(report.objects) == len(org.BREAK_GLASS_ROLES)


def test_list_shows_active_and_expired_grants(seeded):
    short = grant(seeded, duration="30m").grant
    long = grant(seeded, env="dev", duration="4h", reason="other").grant
    grant(seeded, domain="stores", env="dev", reason="stores issue")

    grants = list_grants(seeded.api_client, domain="shop")

    assert [g.id for g in grants] == [short.id, long.id]
    later = NOW + timedelta(hours=1)
    assert [g.state(later) for g in grants] == ["expired", "active"]
    assert grants[0].groups == tuple(OWNERS) and grants[0].environment == "prod"
    assert len(list_grants(seeded.api_client)) == 3


def test_revoke_deletes_the_grants_objects_and_records_it(seeded):
    keep = grant(seeded, env="dev", reason="keep me").grant
    gone = grant(seeded).grant

    report = revoke_grant(seeded.api_client, gone.id, actor="bob", now=NOW + timedelta(minutes=10))

    assert report.grant == gone and report.state == "revoked"
    remaining = seeded.members()
    assert {m["metadata"]["labels"]["konfig-break-glass-id"] for m in remaining} == {keep.id}
    domain = domain_of(seeded)
    last = domain["status"]["breakGlass"][-1]
    assert (last["id"], last["state"], last["by"], last["at"]) == (gone.id, "revoked", "bob", "2025-03-01T12:10:00Z")
    assert last["requestedBy"] == "alice"
    assert "revoked" in domain["metadata"]["annotations"]["konfig.dev/break-glass-last"]
    reasons = [e.reason for e in seeded.events_about("konfig-system", "shop")]
    assert sorted(reasons) == ["BreakGlassGranted", "BreakGlassGranted", "BreakGlassRevoked"]


def test_revoking_an_unknown_grant_is_refused(seeded):
    grant(seeded)
    with pytest.raises(BreakGlassRefused) as caught:
        revoke_grant(seeded.api_client, "bg-0000000000", actor="bob", now=NOW)
    assert caught.value.code == "unknown-grant"
    assert len(seeded.members()) == 3 * 2


def test_the_operator_removes_expired_grants_on_resync(seeded):
    short = grant(seeded, duration="30m").grant
    long = grant(seeded, env="dev", duration="2h", reason="other").grant

    assert remove_expired_grants(seeded.api_client, system_namespace="konfig-system",
                                 now=NOW + timedelta(minutes=29)) == []
    assert len(seeded.members()) == 12

    reports = remove_expired_grants(seeded.api_client, system_namespace="konfig-system",
                                    now=short.expires_at)

    assert [(r.grant.id, r.state) for r in reports] == [(short.id, "expired")]
    assert {m["metadata"]["labels"]["konfig-break-glass-id"] for m in seeded.members()} == {long.id}
    last = domain_of(seeded)["status"]["breakGlass"][-1]
    assert (last["id"], last["state"], last["by"]) == (short.id, "expired", "konfig-operator")
    expired_events = [e for e in seeded.events_about("konfig-system", "shop") if e.reason == "BreakGlassExpired"]
    assert len(expired_events) == 1 and expired_events[0].reporting_controller == "konfig.dev/operator"

    later = remove_expired_grants(seeded.api_client, system_namespace="konfig-system",
                                  now=NOW + timedelta(days=1))
    assert [r.grant.id for r in later] == [long.id] and seeded.members() == []


def test_expired_grants_of_a_removed_domain_are_still_removed(seeded):
    g = grant(seeded, duration="30m").grant
    seeded.custom.delete_namespaced_custom_object("konfig.dev", "v1alpha1", "konfig-system", "domains", "shop")

    (report,) = remove_expired_grants(seeded.api_client, system_namespace="konfig-system",
                                      now=g.expires_at)

    assert seeded.members() == [] and report.warnings and "no longer exists" in report.warnings[0]


def test_objects_without_the_break_glass_label_are_never_touched(seeded):
    foreign = {
        "apiVersion": "iam.cnrm.cloud.google.com/v1beta1", "kind": "IAMPolicyMember",
        "metadata": {"name": "standing-viewer", "labels": {"konfig-control-plane": "acme"}},
        "spec": {"resourceRef": {"kind": "Project", "name": "acme-shop-prod"}, "role": "roles/viewer",
                 "member": "group:shop-oncall@acme.com",
                 "condition": {"title": "old", "expression": 'request.time < timestamp("2000-01-01T00:00:00Z")'}},
    }
    seeded.custom.create_namespaced_custom_object("iam.cnrm.cloud.google.com", "v1beta1", "konfig-system",
                                                  "iampolicymembers", foreign)
    grant(seeded, duration="30m")
    remove_expired_grants(seeded.api_client, system_namespace="konfig-system", now=NOW + timedelta(days=1))
    assert [m["metadata"]["name"] for m in seeded.members()] == ["standing-viewer"]


def test_a_dry_run_writes_nothing(seeded):
    report = grant(seeded, dry_run=True)
    assert len(report.objects) == 6 and seeded.members() == []
    assert "status" not in domain_of(seeded) and seeded.events_about("konfig-system", "shop") == []


@pytest.mark.parametrize(
    ("kw", "code"),
    [
        ({"duration": "5h"}, "too-long"),
        ({"duration": "0m"}, "bad-duration"),
        ({"reason": " "}, "no-reason"),
        ({"env": "qa"}, "unknown-environment"),
        ({"env": "stage", "domain": "stores"}, "not-in-domain"),
    ],
)
def test_refusals_write_nothing(seeded, kw, code):
    assert refused(seeded, **kw).code == code
    assert seeded.members() == []
    assert seeded.events_about("konfig-system", "shop") == []
    assert seeded.events_about("konfig-system", "stores") == []


def test_refuses_a_domain_without_owner_groups(cluster):
    cp = org.control_plane()
    cp["spec"]["groups"] = [{"group": "engineering@acme.com", "role": "viewer"}]
    lonely = org.domain("lonely", groups=[{"group": "lonely-devs@acme.com", "role": "developer"}])
    cluster.namespace("konfig-system")
    cluster.put(cp, "konfig-system")
    cluster.put(org.platform([]), "konfig-system")
    cluster.put(lonely, "konfig-system")
    assert refused(cluster, domain="lonely").code == "no-owner-groups"
    assert cluster.members() == []


def test_refuses_a_basic_owner_role_found_in_the_cluster(cluster):
    cp = copy.deepcopy(org.control_plane())
    cp["spec"]["breakGlass"]["roles"] = ["roles/owner"]  # applied around `konfig apply`
    cluster.seed(cp)
    with pytest.raises(ClusterStateError, match="roles/owner cannot be time-bound"):
        grant(cluster)


def test_an_unknown_domain(seeded):
    with pytest.raises(ClusterStateError, match="no Domain 'cart'"):
        grant(seeded, domain="cart")
