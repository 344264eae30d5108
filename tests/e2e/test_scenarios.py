"""The controller end to end: ``konfig apply`` then the kopf operator, against the Kubernetes
API emulator (with its fake Config Connector) and the fake GitLab, over HTTP on 127.0.0.1."""

from __future__ import annotations

import collections

from konfig.compile import compile_definitions
from konfig.compile.state import DELETION_POLICY, object_key
from konfig.load import load_definitions
from konfig.model import API_VERSION
from konfig.operator.sandbox import object_counts

from tests.e2e.conftest import edit, wait_for

RUN = "run.cnrm.cloud.google.com/v1beta1"


def desired_counts(state) -> collections.Counter:
    return collections.Counter(o["kind"] for o in state.kubernetes)


def test_apply_builds_everything_then_follows_changes(tree, sandbox_for):
    sandbox = sandbox_for(tree, resync_interval=1.0,
                          config={"gitlab_full_every": 2, "requeue_max": 1.0})
    defs = load_definitions(tree)
    state = compile_definitions(defs)
    assert sandbox.apply(defs, state=state).ok
    converged = sandbox.wait_converged(30)
    assert converged.ready, converged.not_ready[:5] + converged.stalled[:5]

    # Every namespace, Config Connector object and RBAC binding, with labels and owners.
    assert object_counts(sandbox) == desired_counts(state)
    bucket = next(o for o in state.kubernetes if o["kind"] == "StorageBucket")
    live = sandbox.kube.get(bucket["apiVersion"], "StorageBucket", bucket["metadata"]["namespace"],
                            bucket["metadata"]["name"])
    assert live["metadata"]["ownerReferences"][0]["kind"] == "Workload"
    assert live["status"]["conditions"][0]["status"] == "True"
    # ...and the GitLab tree, one for one.
    gitlab = sandbox.gitlab_tree()
    assert sorted(gitlab) == sorted(g.full_path for g in state.gitlab.groups)
    assert sorted(f"{g}/{p}" for g, ps in gitlab.items() for p in ps) == sorted(
        p.path_with_namespace for p in state.gitlab.projects)
    checkout = sandbox.kube.get(API_VERSION, "Workload", "ecommerce-prod", "checkout")
    assert checkout["status"]["image"].endswith(defs.workloads[("ecommerce", "checkout")].spec.image.split("@")[1])
    assert checkout["status"]["children"]["RunService"] == 1

    # A changed workload is patched.
    edit(tree / "workloads" / "checkout.yaml", "prod: {scaling: {min: 2, max: 50}",
         "prod: {scaling: {min: 3, max: 40}")
    sandbox.apply(load_definitions(tree))
    wait_for(lambda: (sandbox.kube.get(RUN, "RunService", "ecommerce-prod", "checkout")["spec"]
                      ["template"]["scaling"].get("maxInstanceCount") == 40), what="patched RunService")
    converged = sandbox.wait_converged(30)
    assert converged.ready
    assert sandbox.kube.get(API_VERSION, "Workload", "ecommerce-prod", "checkout")["status"][
        "observedGeneration"] == 2

    # A deleted child object is recreated by the resync.
    old_uid = sandbox.kube.get(RUN, "RunService", "ecommerce-dev", "cart")["metadata"]["uid"]
    sandbox.kube.delete(RUN, "RunService", "ecommerce-dev", "cart")
    recreated = wait_for(lambda: sandbox.kube.get(RUN, "RunService", "ecommerce-dev", "cart"),
                         what="recreated RunService")
    assert recreated["metadata"]["uid"] != old_uid

    # The resync restores a SAML link removed by hand in GitLab.
    group = "acme/acme/retail/ecommerce"
    links = sandbox.gitlab.saml_links(group)
    sandbox.gitlab.delete_saml_link(group, "ecommerce-devs")
    wait_for(lambda: sandbox.gitlab.saml_links(group) == links, timeout=30, what="SAML link restored")


def test_a_template_or_domain_change_rerenders_dependent_workloads(tree, sandbox_for):
    sandbox = sandbox_for(tree)
    sandbox.apply(load_definitions(tree))
    assert sandbox.wait_converged(30).ready
    # The tree overrides the bundled storage-bucket template: every workload's bucket follows.
    from konfig.resources import bundled_dir

    text = (bundled_dir("resource-templates") / "storage-bucket.yaml").read_text()
    (tree / "storage-bucket.yaml").write_text(text.replace("default: STANDARD", "default: NEARLINE"))
    defs = load_definitions(tree)
    state = compile_definitions(defs)
    # Template buckets only: a Dataflow workload's temp and staging buckets are not templated.
    buckets = [o for o in state.kubernetes if o["kind"] == "StorageBucket"
               and not o["metadata"]["name"].endswith(("-df-temp", "-df-staging"))]
    assert buckets and all(o["spec"]["storageClass"] == "NEARLINE" for o in buckets)
    sandbox.apply(defs, state=state)
    assert sandbox.kube.get(API_VERSION, "ResourceTemplate", "konfig-system", "storage-bucket")
    wait_for(lambda: all(sandbox.kube.get(o["apiVersion"], "StorageBucket", o["metadata"]["namespace"],
                                          o["metadata"]["name"])["spec"]["storageClass"] == "NEARLINE"
                         for o in buckets), what="buckets re-rendered")
    # A domain change (its groups) reaches the RoleBindings of its namespaces.
    edit(tree / "domains" / "retail.yaml", "ecommerce-devs@acme-retail.example",
         "shop-devs@acme-retail.example")
    sandbox.apply(load_definitions(tree))
    wait_for(lambda: any(s["name"] == "shop-devs@acme-retail.example" for s in sandbox.kube.get(
        "rbac.authorization.k8s.io/v1", "RoleBinding", "ecommerce-dev", "konfig-viewers")["subjects"]),
        what="RoleBinding re-rendered")
    assert sandbox.wait_converged(30).ready


def test_a_removed_domain_is_pruned_per_policy(tree, sandbox_for):
    sandbox = sandbox_for(tree)
    defs = load_definitions(tree)
    sandbox.apply(defs)
    assert sandbox.wait_converged(30).ready
    before = {object_key(o): o for o in compile_definitions(defs).kubernetes}
    # Remove the stores domain and its workload from the definitions.
    edit(tree / "domains" / "retail.yaml", "  workloads: [pos-gateway]\n", "  workloads: []\n")
    text = (tree / "domains" / "retail.yaml").read_text()
    (tree / "domains" / "retail.yaml").write_text(text[:text.index("---\napiVersion: konfig.dev/v1alpha1\nkind: Domain\nmetadata:\n  name: stores")])
    (tree / "workloads" / "pos-gateway.yaml").unlink()
    smaller = load_definitions(tree)
    after = {object_key(o) for o in compile_definitions(smaller).kubernetes}
    result = sandbox.apply(smaller)
    assert {r.key[3] for r in result.resources.of("deleted")} == {"stores", "pos-gateway"}

    def pruned():
        return sandbox.kube.get(API_VERSION, "Domain", "konfig-system", "stores") is None and all(
            sandbox.kube.get(o["apiVersion"], o["kind"], key[2] or None, key[3]) is None
            for key, o in before.items() if key not in after and key[1] != "Namespace")
    wait_for(pruned, what="the stores domain pruned and its finalizer released")
    gone = [o for k, o in before.items() if k not in after]
    abandoned = {o["kind"] for o in gone if (o["metadata"].get("annotations") or {}).get(DELETION_POLICY) == "abandon"}
    assert {"Project", "Folder", "FirestoreDatabase"} <= abandoned
    events = [e for e in sandbox.kube.list("v1", "Event", "konfig-system")
              if e["involvedObject"]["name"] == "stores"]
    assert any("abandon" in e["message"] for e in events)
    # GitLab: the domain's workload project is archived, never deleted.
    project = wait_for(lambda: (p := sandbox.gitlab.project("acme/acme/retail/stores/pos-gateway"))
                       and p.get("archived") and p, what="project archived")
    assert project["archived"] is True
    assert sandbox.wait_converged(30).ready


def test_deleting_a_workload_resource_prunes_its_children(tree, sandbox_for):
    sandbox = sandbox_for(tree)
    sandbox.apply(load_definitions(tree))
    assert sandbox.wait_converged(30).ready
    assert "konfig.dev/finalizer" in sandbox.kube.get(
        API_VERSION, "Workload", "ecommerce-dev", "cart")["metadata"]["finalizers"]
    sandbox.kube.delete(API_VERSION, "Workload", "ecommerce-dev", "cart")
    wait_for(lambda: sandbox.kube.get(API_VERSION, "Workload", "ecommerce-dev", "cart") is None,
             what="Workload deleted")
    assert sandbox.kube.get(RUN, "RunService", "ecommerce-dev", "cart") is None
    assert sandbox.kube.get(RUN, "RunService", "ecommerce-prod", "cart") is not None


def test_the_operators_own_writes_do_not_retrigger_it(tree, sandbox_for):
    sandbox = sandbox_for(tree)
    sandbox.apply(load_definitions(tree))
    assert sandbox.wait_converged(30).ready
    loop = sandbox.operator.loop
    wait_for(lambda: loop.idle and not any(p.not_ready for p in loop.passes[-1:]), what="idle operator")
    metrics = sandbox.operator.metrics
    changes = metrics.value("konfig_reconciles_total", trigger="change", outcome="ok")
    # A status write by someone else (like the operator's own) and then a spec change: the
    # watch delivers them in order, so once the spec change's pass ran, the status write has
    # been seen too.
    sandbox.client.patch(sandbox.client.kinds.get(API_VERSION, "Workload"), "ecommerce-dev", "cart",
                         {"status": {"note": "written by a status writer"}}, subresource="status")
    sandbox.client.patch(sandbox.client.kinds.get(API_VERSION, "Workload"), "ecommerce-dev", "cart",
                         {"spec": {"env": {"FEATURE": "on"}}})
    wait_for(lambda: sandbox.kube.get(RUN, "RunService", "ecommerce-dev", "cart") and any(
        e.get("name") == "FEATURE" for c in sandbox.kube.get(RUN, "RunService", "ecommerce-dev", "cart")
        ["spec"]["template"]["containers"] for e in c.get("env", [])), what="env applied")
    assert sandbox.wait_converged(30).ready
    wait_for(lambda: loop.idle, what="idle operator")
    assert metrics.value("konfig_reconciles_total", trigger="change", outcome="ok") == changes + 1
    # The pass wrote statuses and the children were marked Ready: none of that started a pass.
    assert metrics.value("konfig_reconciles_total", trigger="change", outcome="ok") == changes + 1


def test_deleting_the_control_plane_tears_down_per_policy(tree, sandbox_for):
    sandbox = sandbox_for(tree)
    defs = load_definitions(tree)
    state = compile_definitions(defs)
    sandbox.apply(defs, state=state)
    assert sandbox.wait_converged(30).ready
    sandbox.kube.delete(API_VERSION, "ControlPlane", "konfig-system", "acme")
    wait_for(lambda: sandbox.kube.get(API_VERSION, "ControlPlane", "konfig-system", "acme") is None,
             what="the ControlPlane's finalizer released")
    # Everything goes but the system namespace (the operator lives there); the domain
    # namespaces finish terminating once their Workloads' finalizers are released.
    wait_for(lambda: object_counts(sandbox) == collections.Counter({"Namespace": 1}),
             what="everything pruned")
    # Every GitLab project is archived; groups stay (GitLab cannot archive groups).
    for project in state.gitlab.projects:
        assert sandbox.gitlab.project(project.path_with_namespace)["archived"] is True
    # The remaining definitions now lack their control plane: they stall, saying so.
    stalled = sandbox.wait_converged(30, until=lambda c: len(c.stalled) == len(c.resources) > 0)
    assert any("ControlPlane" in s for s in stalled.stalled)


def test_gitlab_failures_are_reported_retried_and_do_not_block_the_cluster(tree, sandbox_for):
    sandbox = sandbox_for(tree, config={"retry_initial": 0.2, "retry_max": 1.0})
    sandbox.gitlab.inject_fault(403, method="POST", times=10_000)
    defs = load_definitions(tree)
    state = compile_definitions(defs)
    sandbox.apply(defs, state=state)

    def cluster_ready_gitlab_failing(c):
        by_kind = collections.defaultdict(list)
        for r in c.resources:
            ready = next((x for x in (r.get("status") or {}).get("conditions", []) if x["type"] == "Ready"), {})
            by_kind[r["kind"]].append(ready.get("reason"))
        return (by_kind["Workload"] and all(x == "UpToDate" for x in by_kind["Workload"])
                and by_kind["Domain"] and all(x == "GitLabSyncFailed" for x in by_kind["Domain"]))
    sandbox.wait_converged(30, until=cluster_ready_gitlab_failing)
    assert object_counts(sandbox) == desired_counts(state)  # the cluster side went ahead
    domain = sandbox.kube.get(API_VERSION, "Domain", "konfig-system", "payments")
    assert domain["status"]["gitlab"]["synced"] is False
    assert "acme/acme/retail/payments" in domain["status"]["gitlab"]["message"]
    control_plane = sandbox.kube.get(API_VERSION, "ControlPlane", "konfig-system", "acme")
    assert "403" in control_plane["status"]["gitlab"]["message"]
    assert any(e["reason"] == "GitLabSyncFailed" for e in sandbox.kube.list("v1", "Event", "konfig-system"))
    # GitLab recovers: the retries (with backoff) converge without any new change.
    sandbox.gitlab.clear_faults()
    assert sandbox.wait_converged(30).ready
    assert sandbox.kube.get(API_VERSION, "Domain", "konfig-system", "payments")["status"]["gitlab"] == {"synced": True}


def test_a_changed_group_reaches_gitlab(tree, sandbox_for):
    sandbox = sandbox_for(tree)
    sandbox.apply(load_definitions(tree))
    assert sandbox.wait_converged(30).ready
    edit(tree / "domains" / "retail.yaml", "{group: payments-oncall@acme-retail.example, role: owner}",
         "{group: payments-oncall@acme-retail.example, role: maintainer}")
    sandbox.apply(load_definitions(tree))
    wait_for(lambda: sandbox.gitlab.saml_links("acme/acme/retail/payments").get("payments-oncall") == 40,
             what="SAML link updated to Maintainer")
