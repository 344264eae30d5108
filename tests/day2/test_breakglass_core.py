"""The pure break-glass rules (konfig.breakglass): refusals, the IAMPolicyMembers of a grant,
reading grants back from objects, expiry."""

from __future__ import annotations

import copy
from datetime import UTC, datetime, timedelta

import jsonschema
import pytest
from ruamel.yaml import YAML

from konfig import breakglass as bg

from . import org

NOW = datetime(2025, 3, 1, 12, 0, 0, 999, tzinfo=UTC)
CP = org.model(org.control_plane())
RETAIL = org.model(org.platform())
SHOP = org.model(org.domain())
OWNERS = ["platform-admins@acme.com", "retail-owners@acme.com", "shop-oncall@acme.com"]


def grant(env="prod", duration="1h", reason="INC-42 checkout down", *, cp=CP, platform=RETAIL,
          domain=SHOP, groups=None, now=NOW):
    return bg.plan_grant(control_plane=cp, platform=platform, domain=domain, environment=env,
                         duration=duration, reason=reason, actor="alice", now=now, groups=groups)


def refusal(**kw) -> bg.BreakGlassRefused:
    with pytest.raises(bg.BreakGlassRefused) as caught:
        grant(**kw)
    return caught.value


def iam_policy_member_schema() -> dict:
    from pathlib import Path

    import konfig

    crd_file = (Path(konfig.__file__).parent / "data" / "kcc" / "crds" /
                "apiextensions.k8s.io_v1_customresourcedefinition_iampolicymembers.iam.cnrm.cloud.google.com.yaml")
    crd = YAML(typ="safe").load(crd_file.read_text())
    return crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]


def test_grant_goes_to_every_owner_group_up_the_tree_for_the_asked_time():
    g = grant()
    assert g.groups == tuple(OWNERS)
    assert g.roles == tuple(sorted(org.BREAK_GLASS_ROLES))
    assert g.project_id == "acme-shop-prod"
    assert g.requested_at == datetime(2025, 3, 1, 12, 0, tzinfo=UTC)
    assert g.expires_at - g.requested_at == timedelta(hours=1)
    assert g.id.startswith("bg-") and g.id == grant().id  # stable for the same request
    assert g.id != grant(reason="another incident").id


def test_project_id_override_of_the_domain_is_used():
    domain = org.model(org.domain(projectIds={"prod": "acme-legacy-shop"}))
    assert grant(domain=domain).project_id == "acme-legacy-shop"
    assert grant("dev", domain=domain).project_id == "acme-shop-dev"


def test_a_subset_of_the_owner_groups_can_be_asked_for():
    assert grant(groups=["shop-oncall@acme.com"]).groups == ("shop-oncall@acme.com",)
    caught = refusal(groups=["shop-devs@acme.com"])
    assert caught.code == "not-an-owner" and "shop-devs@acme.com" in caught.reason


def test_objects_one_per_group_and_role_with_a_time_condition():
    g = grant()
    objects = bg.build_grant_objects(g)
    assert len(objects) == len(OWNERS) * len(org.BREAK_GLASS_ROLES)
    assert len({o["metadata"]["name"] for o in objects}) == len(objects)
    schema = iam_policy_member_schema()
    pairs = set()
    for obj in objects:
        jsonschema.validate(obj, schema)  # what Config Connector's CRD accepts
        meta, spec = obj["metadata"], obj["spec"]
        assert obj["apiVersion"] == "iam.cnrm.cloud.google.com/v1beta1" and obj["kind"] == "IAMPolicyMember"
        assert meta["namespace"] == "konfig-system" and len(meta["name"]) <= 63
        assert meta["labels"] == {
            "konfig-control-plane": "acme", "konfig-platform": "retail", "konfig-domain": "shop",
            "konfig-environment": "prod", "konfig-break-glass": "true", "konfig-break-glass-id": g.id,
                "konfig-break-glass-level": "domain",
        }
        assert meta["annotations"] == {
            "konfig.dev/requested-by": "alice", "konfig.dev/reason": "INC-42 checkout down",
            "konfig.dev/requested-at": "2025-03-01T12:00:00Z", "konfig.dev/expires-at": "2025-03-01T13:00:00Z",
        }
        assert spec["resourceRef"] == {"apiVersion": "resourcemanager.cnrm.cloud.google.com/v1beta1",
                                       "kind": "Project", "name": "acme-shop-prod"}
        assert spec["condition"] == {
            "title": f"break-glass {g.id}",
            "description": "INC-42 checkout down",
            "expression": 'request.time < timestamp("2025-03-01T13:00:00Z")',
        }
        assert spec["member"].startswith("group:")
        pairs.add((spec["member"].removeprefix("group:"), spec["role"]))
        assert bg.is_break_glass(obj)
        assert "cnrm.cloud.google.com/deletion-policy" not in meta["annotations"]  # removal revokes
    assert pairs == {(g_, r) for g_ in OWNERS for r in org.BREAK_GLASS_ROLES}


def test_long_reasons_are_cut_in_the_condition_but_kept_in_the_annotation():
    reason = "x" * 600
    obj = bg.build_grant_objects(grant(reason=reason))[0]
    assert len(obj["spec"]["condition"]["description"]) == bg.CONDITION_DESCRIPTION_MAX
    assert obj["metadata"]["annotations"]["konfig.dev/reason"] == reason


def test_the_longest_allowed_duration_is_accepted():
    assert grant(duration="4h").expires_at == datetime(2025, 3, 1, 16, 0, tzinfo=UTC)
    assert grant(duration="240m").expires_at == datetime(2025, 3, 1, 16, 0, tzinfo=UTC)


@pytest.mark.parametrize("duration", ["5h", "241m", "1d"])
def test_refuses_longer_than_max_duration(duration):
    caught = refusal(duration=duration)
    assert caught.code == "too-long" and "4h" in caught.reason


@pytest.mark.parametrize("duration", ["0h", "0s", "-1h", "1.5h", "soon", ""])
def test_refuses_a_duration_that_is_not_positive(duration):
    assert refusal(duration=duration).code == "bad-duration"


@pytest.mark.parametrize("reason", ["", "   "])
def test_refuses_without_a_reason(reason):
    assert refusal(reason=reason).code == "no-reason"


def test_refuses_an_unknown_environment():
    assert refusal(env="qa").code == "unknown-environment"
    stores = org.model(org.stores())
    caught = refusal(env="stage", domain=stores)
    assert caught.code == "not-in-domain" and "dev, prod" in caught.reason


def test_refuses_a_domain_without_owner_groups():
    cp = copy.deepcopy(org.control_plane())
    cp["spec"]["groups"] = [{"group": "engineering@acme.com", "role": "viewer"}]
    domain = org.domain(groups=[{"group": "shop-devs@acme.com", "role": "developer"}])
    caught = refusal(cp=org.model(cp), platform=org.model(org.platform([])), domain=org.model(domain))
    assert caught.code == "no-owner-groups"


def test_basic_roles_which_iam_cannot_condition_are_refused_at_load_time():
    from konfig.errors import DefinitionError

    cp = copy.deepcopy(org.control_plane())
    cp["spec"]["breakGlass"]["roles"] = ["roles/owner"]
    with pytest.raises(DefinitionError, match="cannot be time-bound"):
        org.model(cp)


def test_default_roles_are_predefined_and_conditionable():
    cp = copy.deepcopy(org.control_plane())
    del cp["spec"]["breakGlass"]["roles"]
    roles = org.model(cp).spec.break_glass.roles
    assert roles and not {"roles/owner", "roles/editor", "roles/viewer"} & set(roles)


def test_grants_read_back_from_their_objects():
    first = grant()
    second = grant("dev", "2h", "stuck migration", now=NOW + timedelta(minutes=5))
    objects = bg.build_grant_objects(first) + bg.build_grant_objects(second)
    stranger = copy.deepcopy(objects[0])
    stranger["metadata"]["labels"] = {"konfig-control-plane": "acme"}  # not break-glass: ignored
    objects[0]["status"] = {"conditions": [{"type": "Ready", "status": "True"}]}

    found = bg.grants_from_objects([*objects, stranger])

    assert found == [first, second]  # sorted by expiry
    assert found[0].ready == 1 and len(found[0].objects) == 6
    assert set(found[1].objects) == {o["metadata"]["name"] for o in bg.build_grant_objects(second)}


def test_expiry_is_read_from_the_condition_when_the_annotation_is_gone():
    objects = bg.build_grant_objects(grant())
    for obj in objects:
        del obj["metadata"]["annotations"]["konfig.dev/expires-at"]
    assert bg.grants_from_objects(objects)[0].expires_at == datetime(2025, 3, 1, 13, 0, tzinfo=UTC)
    for obj in objects:
        obj["spec"]["condition"]["expression"] = "true"
    # Unreadable expiry: treated as past, so the grant is removed rather than kept forever.
    assert bg.expired(bg.grants_from_objects(objects), NOW)


def test_expired_grants():
    short = grant(duration="30m")
    long = grant(duration="3h", reason="other")
    grants = [short, long]
    assert bg.expired(grants, NOW) == []
    assert bg.expired(grants, short.expires_at - timedelta(seconds=1)) == []
    assert bg.expired(grants, short.expires_at) == [short]
    assert bg.expired(grants, long.expires_at + timedelta(days=1)) == [short, long]
    assert short.state(NOW) == "active" and short.state(short.expires_at) == "expired"


def test_status_lines_keep_the_newest():
    g = grant()
    line = g.status_line("granted", at=NOW, by="alice")
    assert line == {
        "id": g.id, "env": "prod", "groups": OWNERS, "roles": sorted(org.BREAK_GLASS_ROLES),
        "expiresAt": "2025-03-01T13:00:00Z", "requestedBy": "alice", "reason": "INC-42 checkout down",
        "state": "granted", "at": "2025-03-01T12:00:00Z", "by": "alice",
    }
    lines = []
    for i in range(bg.STATUS_HISTORY + 5):
        lines = bg.append_status_line(lines, {**line, "id": str(i)})
    assert len(lines) == bg.STATUS_HISTORY and lines[-1]["id"] == str(bg.STATUS_HISTORY + 4)
    assert lines[0]["id"] == "5"
