"""Break-glass above the domain: a platform's folder and the control-plane project, with the
owner groups declared at that level or above, recorded on the Platform or the ControlPlane; and
the Privileged Access Manager path, which refuses with the PAM request to make instead."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from konfig.breakglass import BreakGlassRefused, grants_from_objects
from konfig.kube.breakglass import list_grants, remove_expired_grants, request_grant, revoke_grant

from . import org
from .test_cli import konfig, kubeconfig  # noqa: F401 - fixture

NOW = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)
RM = "resourcemanager.cnrm.cloud.google.com/v1beta1"


def level_grant(cluster, level, platform=None, now=NOW, **kw):
    return request_grant(cluster.api_client, level=level, platform=platform, duration="1h",
                         reason="INC-11 network down", actor="alice", now=now, **kw)


def test_platform_grant_is_on_its_folder_for_platform_and_control_plane_owners(seeded):
    report = level_grant(seeded, "platform", "retail")
    members = seeded.members()
    assert {(m["spec"]["member"], m["spec"]["role"]) for m in members} == {
        (f"group:{g}", r) for g in ("platform-admins@acme.com", "retail-owners@acme.com")
        for r in org.BREAK_GLASS_ROLES}
    assert {m["spec"]["resourceRef"]["kind"] for m in members} == {"Folder"}
    assert {m["spec"]["resourceRef"]["name"] for m in members} == {"platform-retail"}
    labels = members[0]["metadata"]["labels"]
    assert labels["konfig-break-glass-level"] == "platform" and labels["konfig-platform"] == "retail"
    assert "konfig-domain" not in labels
    platform = seeded.get("platforms", "konfig-system", "retail")
    [line] = platform["status"]["breakGlass"]
    assert (line["id"], line["level"], line["state"]) == (report.grant.id, "platform", "granted")
    (event,) = seeded.events_about("konfig-system", "retail")
    assert (event.reason, event.regarding.kind) == ("BreakGlassGranted", "Platform")
    # Read back, listed, and revoked like a domain grant.
    [listed] = list_grants(seeded.api_client)
    assert (listed.level, listed.platform, listed.project_id) == ("platform", "retail", "")
    revoke_grant(seeded.api_client, report.grant.id, actor="bob", now=NOW)
    assert seeded.members() == []
    assert seeded.get("platforms", "konfig-system", "retail")["status"]["breakGlass"][-1]["state"] == "revoked"


def test_control_plane_grant_is_on_the_control_plane_project_for_its_owners_only(seeded):
    report = level_grant(seeded, "controlplane")
    members = seeded.members()
    assert {m["spec"]["member"] for m in members} == {"group:platform-admins@acme.com"}
    assert {m["spec"]["resourceRef"]["name"] for m in members} == {"acme-acme-cp"}
    assert report.grant.where == "control plane acme (project acme-acme-cp)"
    control_plane = seeded.get("controlplanes", "konfig-system", "acme")
    assert control_plane["status"]["breakGlass"][-1]["level"] == "controlplane"


def test_level_grants_expire_like_domain_grants(seeded):
    old = level_grant(seeded, "controlplane", now=datetime.now(UTC) - timedelta(hours=3)).grant
    [report] = remove_expired_grants(seeded.api_client, now=datetime.now(UTC))
    assert report.grant.id == old.id and seeded.members() == []


def test_a_level_without_owner_groups_is_refused(cluster):
    cp = org.control_plane()
    cp["spec"]["groups"] = [{"group": "engineering@acme.com", "role": "viewer"}]
    cluster.namespace("konfig-system")
    cluster.put(cp, "konfig-system")
    cluster.put(org.platform(groups=[{"group": "retail-leads@acme.com", "role": "maintainer"}]), "konfig-system")
    for level, platform in (("controlplane", None), ("platform", "retail")):
        with pytest.raises(BreakGlassRefused) as caught:
            level_grant(cluster, level, platform)
        assert caught.value.code == "no-owner-groups"
        assert "has no owner group" in caught.value.reason
    assert cluster.members() == []


def test_an_unknown_platform_is_refused(seeded):
    with pytest.raises(BreakGlassRefused) as caught:
        level_grant(seeded, "platform", "wholesale")
    assert caught.value.code == "unknown-level"


def test_with_pam_the_request_is_refused_with_the_pam_command(cluster):
    cluster.seed(org.control_plane(privilegedAccessManager=True))
    with pytest.raises(BreakGlassRefused) as caught:
        request_grant(cluster.api_client, domain="shop", environment="prod", duration="30m",
                      reason="INC-12", actor="alice", now=NOW)
    assert caught.value.code == "use-pam"
    assert ("gcloud pam grants create --entitlement=konfig-break-glass --location=global "
            "--project=acme-shop-prod --requested-duration=1800s") in caught.value.reason
    assert cluster.members() == []


def test_old_grants_without_a_level_label_read_as_domain_grants():
    member = {"metadata": {"name": "m", "labels": {"konfig-break-glass": "true", "konfig-break-glass-id": "bg-1",
                                                   "konfig-domain": "shop", "konfig-environment": "prod"}},
              "spec": {"resourceRef": {"apiVersion": RM, "kind": "Project", "name": "acme-shop-prod"},
                       "member": "group:a@acme.com", "role": "roles/run.admin"}}
    [grant] = grants_from_objects([member])
    assert (grant.level, grant.project_id) == ("domain", "acme-shop-prod")


def test_cli_levels(seeded, kubeconfig):  # noqa: F811 - fixture
    platform = konfig("break-glass", "request", "--platform", "retail", "--reason", "INC-13",
                      "--kubeconfig", kubeconfig)
    assert platform.exit_code == 0, platform.output
    assert "on platform retail (its folder)" in platform.output
    cp = konfig("break-glass", "request", "--control-plane", "--reason", "INC-13", "--kubeconfig", kubeconfig)
    assert cp.exit_code == 0 and "acme-acme-cp" in cp.output
    listed = konfig("break-glass", "list", "--kubeconfig", kubeconfig)
    assert "platform" in listed.output and "controlplane" in listed.output
    for args in (("shop",), ("--platform", "retail", "--control-plane"), ("shop", "--env", "prod", "--platform", "x"),
                 ("--control-plane", "--env", "prod")):
        bad = konfig("break-glass", "request", *args, "--reason", "x", "--kubeconfig", kubeconfig)
        assert bad.exit_code == 2, (args, bad.output)
