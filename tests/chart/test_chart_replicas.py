"""The chart's scale-out: unit Leases, replicas, a PodDisruptionBudget, lease RBAC."""

from __future__ import annotations

import pytest

from tests.chart.test_chart_render import NAMESPACE, chart, container, one, render  # noqa: F401


def test_one_replica_by_default_without_leases_or_a_budget(chart):
    objects = render(chart)
    assert one(objects, "Deployment")["spec"]["replicas"] == 1
    assert not [o for o in objects if o["kind"] == "PodDisruptionBudget"]
    assert not [o for o in objects if o["kind"] == "Role" and o["metadata"]["name"].endswith("-leases")]
    assert "--leases" not in container(objects)["args"]


def test_leases_run_replicas_with_a_budget_and_lease_rbac_in_the_system_namespace(chart):
    objects = render(chart, replicaCount=3, leases={"enabled": True, "duration": "20s"}, workers=4)
    deployment = one(objects, "Deployment")
    assert deployment["spec"]["replicas"] == 3
    assert deployment["spec"]["strategy"]["type"] == "RollingUpdate"
    args = container(objects)["args"]
    assert "--leases" in args and "--lease-duration=20s" in args and "--workers=4" in args
    assert "--standalone" in args  # no kopf peering: every replica is active on its units
    pdb = one(objects, "PodDisruptionBudget")
    assert pdb["spec"]["maxUnavailable"] == 1
    assert pdb["spec"]["selector"]["matchLabels"] == deployment["spec"]["selector"]["matchLabels"]
    role = one(objects, "Role", "konfig-leases")
    assert role["metadata"]["namespace"] == NAMESPACE
    assert role["rules"] == [{"apiGroups": ["coordination.k8s.io"], "resources": ["leases"],
                              "verbs": ["get", "list", "create", "update", "delete"]}]
    binding = one(objects, "RoleBinding", "konfig-leases")
    assert binding["roleRef"]["name"] == "konfig-leases"
    env = {e["name"] for e in container(objects)["env"]}
    assert "POD_NAME" in env  # the replica's identity in its Leases


def test_one_replica_with_leases_has_no_budget(chart):
    objects = render(chart, leases={"enabled": True})
    assert one(objects, "Deployment")["spec"]["replicas"] == 1
    assert not [o for o in objects if o["kind"] == "PodDisruptionBudget"]


def test_leases_and_peering_exclude_each_other(chart):
    with pytest.raises(Exception, match="exclude each other"):
        render(chart, leases={"enabled": True}, peering={"enabled": True})


def test_the_gitlab_request_budget_is_passed_only_when_changed(chart):
    assert not [a for a in container(render(chart))["args"] if "requests-per-minute" in a]
    args = container(render(chart, gitlab={"url": "https://gitlab.example.com",
                                           "requestsPerMinute": 600}))["args"]
    assert "--gitlab-requests-per-minute=600" in args
    args = container(render(chart, gitlab={"url": "https://gitlab.example.com",
                                           "requestsPerMinute": 0}))["args"]
    assert "--gitlab-requests-per-minute=0" in args
