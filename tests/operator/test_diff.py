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


# -- konfig diff: the cluster side, end to end against the emulator ---------------------------

import json
import shutil

from typer.testing import CliRunner

from cli import app
from konfig.changes import MASK, ChangeSet, FieldChange, ObjectChange, field_changes, masked

runner = CliRunner()


def _diff(kubeconfig, tree, *extra):
    return runner.invoke(app, ["diff", str(tree), "--kubeconfig", kubeconfig, "--no-gitlab",
                               *extra], env={"COLUMNS": "200"})


def _converge(client, definitions):
    """`konfig apply` then one operator pass (GitLab off), as the pipeline and the operator do."""
    from konfig.compile import compile_definitions
    from konfig.kube.custom_resources import apply_definitions
    from konfig.load import load_definitions
    from konfig.operator.config import OperatorConfig
    from konfig.operator.reconciler import Reconciler

    defs = load_definitions(definitions)
    assert apply_definitions(client, defs, compile_definitions(defs)).ok
    reconciler = Reconciler(client, OperatorConfig())
    for _ in range(6):  # until a pass changes nothing (service URLs arrive after a first pass)
        result = reconciler.reconcile("change")
        assert not result.failed, result.error
        if result.kube is not None and not result.kube.changed:
            return
    raise AssertionError("the operator did not settle")


def test_diff_lists_exactly_the_changes_then_nothing_after_apply(kube, client, tmp_path,
                                                                 definitions_dir):
    kubeconfig = str(kube.kubeconfig_path(tmp_path))
    tree = tmp_path / "defs"
    shutil.copytree(definitions_dir, tree)
    _converge(client, tree)
    unchanged = _diff(kubeconfig, tree)
    assert unchanged.exit_code == 0, unchanged.output
    assert "no changes" in unchanged.output

    # One workload's env changes, a domain is added, a workload is removed.
    checkout = tree / "workloads" / "checkout.yaml"
    text = checkout.read_text()
    assert "LOG_LEVEL: info" in text
    checkout.write_text(text.replace("LOG_LEVEL: info", "LOG_LEVEL: debug"))
    (tree / "workloads" / "stock-reports.yaml").unlink()
    (tree / "domains" / "loyalty.yaml").write_text(
        "apiVersion: konfig.dev/v1alpha1\nkind: Domain\nmetadata: {name: loyalty}\n"
        "spec:\n  platform: retail\n  environments: [dev]\n")

    result = _diff(kubeconfig, tree, "--json")
    assert result.exit_code == 2, result.output
    plan = json.loads(result.output)
    by = {(c["layer"], c["op"], c["kind"], c["namespace"], c["name"]): c for c in plan["changes"]}
    # The definitions layer: exactly the three edits.
    definitions = sorted(k for k in by if k[0] == "definitions")
    workload_envs = [k for k in definitions if k[2] == "Workload" and k[4] == "checkout"]
    assert workload_envs and all(k[1] == "update" for k in workload_envs)
    assert ("definitions", "create", "Domain", "konfig-system", "loyalty") in by
    assert all(k[1] == "delete" for k in definitions if k[4] == "stock-reports")
    assert {k[4] for k in definitions} == {"checkout", "loyalty", "stock-reports"}
    update = by[workload_envs[0]]
    assert {"path": "spec.env.LOG_LEVEL", "old": "info", "new": "debug"} in update["fields"]
    # The objects layer: the new domain's namespace, the removed workload's objects pruned
    # (stateful ones abandoned), the checkout runtime's env.
    assert ("objects", "create", "Namespace", "", "loyalty-dev") in by
    pruned = [c for c in plan["changes"] if c["layer"] == "objects" and c["op"] == "delete"]
    assert pruned and all(c["namespace"].startswith("inventory-") or c["namespace"] ==
                          "konfig-system" for c in pruned)
    assert all(c["policy"] in ("abandon", "delete") for c in pruned)
    objects_updated = {c["name"] for c in plan["changes"]
                       if c["layer"] == "objects" and c["op"] == "update"}
    # The runtime of the changed workload, and the retail platform's budget, whose project
    # filter gains the new domain's project.
    assert objects_updated and all("checkout" in name or name == "budget-platform-retail"
                                   for name in objects_updated), objects_updated

    tree_out = _diff(kubeconfig, tree)
    assert tree_out.exit_code == 2
    assert "~ Workload" in tree_out.output and "spec.env.LOG_LEVEL: info → debug" in tree_out.output
    assert "+ Domain konfig-system/loyalty" in tree_out.output

    report = tmp_path / "report.json"
    full = tmp_path / "plan.json"
    gl = _diff(kubeconfig, tree, "--format", "gitlab-report", "--report-file", str(report),
               "--plan-file", str(full))
    assert gl.exit_code == 2
    counts = json.loads(report.read_text())
    assert set(counts) == {"create", "update", "delete"} and counts == json.loads(gl.output)
    assert counts["create"] and counts["update"] and counts["delete"]
    assert json.loads(full.read_text())["counts"]["create"] == counts["create"]

    _converge(client, tree)
    after = _diff(kubeconfig, tree)
    assert after.exit_code == 0, after.output


def test_diff_shows_other_field_managers(kube, client, tmp_path, definitions_dir):
    kubeconfig = str(kube.kubeconfig_path(tmp_path))
    _converge(client, definitions_dir)
    info = client.kinds.get("konfig.dev/v1alpha1", "Workload")
    live = client.get(info, "ecommerce-dev", "checkout")
    assert live is not None
    # Someone changes a field Konfig sets, by hand, with their own field manager.
    client.apply({"apiVersion": "konfig.dev/v1alpha1", "kind": "Workload",
                  "metadata": {"name": "checkout", "namespace": "ecommerce-dev"},
                  "spec": {"env": {"LOG_LEVEL": "trace"}}}, field_manager="kubectl-edit")
    result = _diff(kubeconfig, definitions_dir, "--json")
    assert result.exit_code == 2, result.output
    [conflict] = [c for c in json.loads(result.output)["changes"] if c["op"] == "conflict"]
    assert conflict["name"] == "checkout" and conflict["managers"] == ["kubectl-edit"]
    assert {"path": "spec.env.LOG_LEVEL", "old": "trace", "new": "info"} in conflict["fields"]


def test_unreachable_cluster_is_an_error_not_an_empty_plan(tmp_path, definitions_dir):
    from konfig.sandbox.kube_api import KubeEmulator

    with KubeEmulator() as gone:
        kubeconfig = str(gone.kubeconfig_path(tmp_path))
    result = _diff(kubeconfig, definitions_dir)
    assert result.exit_code == 1
    assert "cannot read the cluster" in result.output and "No plan was made" in result.output


def test_secrets_are_masked_in_field_changes():
    old = {"spec": {"env": {"API_TOKEN": "abc", "LOG": "info"}}}
    new = {"spec": {"env": {"API_TOKEN": "xyz", "LOG": "debug"}}}
    changes = masked(field_changes(old, new))
    assert FieldChange("spec.env.API_TOKEN", MASK, MASK) in changes
    assert FieldChange("spec.env.LOG", "info", "debug") in changes
    secret = masked(field_changes({"data": {"a": "eA=="}}, {"data": {"a": "eQ==", "b": "eg=="}}),
                    kind="Secret")
    assert secret == (FieldChange("data.a", MASK, MASK), FieldChange("data.b", None, MASK))
    added = masked([FieldChange("spec", None, {"password": "p", "user": "u"})])
    assert added == (FieldChange("spec", None, {"password": MASK, "user": "u"}),)


def test_named_lists_are_compared_by_name_and_report_counts():
    old = {"containers": [{"name": "a", "image": "x"}, {"name": "b", "image": "y"}]}
    new = {"containers": [{"name": "b", "image": "y"}, {"name": "a", "image": "z"}]}
    assert field_changes(old, new) == [FieldChange("containers[name=a].image", "x", "z")]
    changes = ChangeSet([ObjectChange("cluster", "objects", op, "K", "", "n")
                         for op in ("create", "update", "conflict", "delete", "delete")])
    assert changes.gitlab_report() == {"create": 1, "update": 2, "delete": 2}


def test_apply_without_workloads_never_touches_workloads_or_namespaces(kube, client, tmp_path,
                                                                       definitions_dir):
    kubeconfig = str(kube.kubeconfig_path(tmp_path))
    full = runner.invoke(app, ["apply", str(definitions_dir), "--kubeconfig", kubeconfig])
    assert full.exit_code == 0, full.output
    tree = tmp_path / "defs"
    shutil.copytree(definitions_dir, tree)
    shutil.rmtree(tree / "workloads")  # the definitions repository holds no workloads
    before = len(client.list(client.kinds.get("konfig.dev/v1alpha1", "Workload")))
    seen = len(kube.requests)
    result = runner.invoke(app, ["apply", str(tree), "--kubeconfig", kubeconfig,
                                 "--no-workloads"])
    assert result.exit_code == 0, result.output
    touched = [r.path for r in kube.requests[seen:]]
    assert touched
    assert all("/namespaces/konfig-system/" in p for p in touched), touched
    assert len(client.list(client.kinds.get("konfig.dev/v1alpha1", "Workload"))) == before
    plan = _diff(kubeconfig, tree, "--no-workloads", "--json")
    assert not [c for c in json.loads(plan.output)["changes"]
                if c["layer"] == "definitions"], plan.output


def test_the_definitions_pipelines_plan_keeps_the_workloads_of_their_repositories(
        kube, client, tmp_path, definitions_dir):
    """The definitions repository holds no Workloads: its plan must not prune what the
    workload repositories deployed (the operator compiles the cluster's Workloads too)."""
    kubeconfig = str(kube.kubeconfig_path(tmp_path))
    _converge(client, definitions_dir)
    tree = tmp_path / "defs"
    shutil.copytree(definitions_dir, tree)
    shutil.rmtree(tree / "workloads")
    plan = _diff(kubeconfig, tree, "--no-workloads")
    assert plan.exit_code == 0, plan.output
    # A real change still shows, and only it.
    (tree / "domains" / "loyalty.yaml").write_text(
        "apiVersion: konfig.dev/v1alpha1\nkind: Domain\nmetadata: {name: loyalty}\n"
        "spec:\n  platform: retail\n  environments: [dev]\n")
    changed = json.loads(_diff(kubeconfig, tree, "--no-workloads", "--json").output)
    assert changed["counts"]["delete"] == 0 and changed["counts"]["create"] > 0


def test_named_lists_match_by_name_whatever_the_servers_order():
    """A server may keep its own order of an associative list's items (env, containers):
    that is not drift, or the operator would rewrite the object on every pass."""
    desired = {"env": [{"name": "A", "value": "1"}, {"name": "B", "value": "2"}]}
    reordered = {"env": [{"name": "B", "value": "2"}, {"name": "A", "value": "1"}]}
    assert contains(reordered, desired) and first_difference(reordered, desired) is None
    changed = {"env": [{"name": "B", "value": "3"}, {"name": "A", "value": "1"}]}
    assert not contains(changed, desired)
    assert not contains({"args": ["b", "a"]}, {"args": ["a", "b"]})  # plain lists keep order
