"""Policy arithmetic: only ever adds, and a conditional grant is not a standing one."""

from __future__ import annotations

from google.iam.v1 import policy_pb2
from google.type import expr_pb2

from konfig.gcp.policy import add_member, missing_roles, unconditional_bindings

SA = "serviceAccount:konfig-controller@acme-cp.iam.gserviceaccount.com"


def break_glass_policy() -> policy_pb2.Policy:
    policy = policy_pb2.Policy(version=3, etag=b"e1")
    policy.bindings.add(
        role="roles/resourcemanager.folderCreator",
        members=[SA],
        condition=expr_pb2.Expr(
            title="until", expression='request.time < timestamp("2030-01-01T00:00:00Z")'
        ),
    )
    policy.bindings.add(role="roles/viewer", members=["group:eng@acme.com"])
    return policy


def test_conditional_grant_does_not_count_as_held():
    policy = break_glass_policy()

    assert missing_roles(
        unconditional_bindings(policy), SA, ("roles/resourcemanager.folderCreator",)
    ) == ("roles/resourcemanager.folderCreator",)


def test_add_member_keeps_every_existing_binding_and_the_condition():
    policy = break_glass_policy()

    added = add_member(policy, SA, ("roles/resourcemanager.folderCreator", "roles/viewer"))

    assert added == ("roles/resourcemanager.folderCreator", "roles/viewer")
    conditional = [b for b in policy.bindings if b.HasField("condition")]
    assert len(conditional) == 1 and list(conditional[0].members) == [SA]
    assert unconditional_bindings(policy) == {
        "roles/resourcemanager.folderCreator": frozenset({SA}),
        "roles/viewer": frozenset({"group:eng@acme.com", SA}),
    }
    assert add_member(policy, SA, ("roles/viewer",)) == ()  # idempotent
