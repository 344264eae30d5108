"""The chart's RBAC on a real API server: the rendered CRDs, ServiceAccount, ClusterRoles and
bindings are installed, and the operator runs with its ServiceAccount's own token (the
TokenRequest API), so a missing permission fails the scenario. The API server's audit log
records every request the operator made; each rule of its ClusterRole is then removed in turn
and the real authoriser (SubjectAccessReview) asked about every recorded request, so a rule
no request needs is found. CI identities and kubectl are checked on the same cluster."""

from __future__ import annotations

import collections
import json
import shutil
import subprocess
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import helm_python as helm
import pytest
from ruamel.yaml import YAML

from konfig.compile import compile_definitions
from konfig.kube.breakglass import list_grants, request_grant
from konfig.kube.client import KubeClient, KubeError
from konfig.load import load_definitions
from konfig.model import API_VERSION
from konfig.operator.sandbox import Sandbox, object_counts

from tests.chart.test_chart_render import CHART, NAMESPACE, render
from tests.cluster import ClusterError
from tests.cluster.backend import RealKube
from tests.e2e.conftest import ROOT, edit, wait_for

RBAC = "rbac.authorization.k8s.io/v1"
STORES_DOMAIN = "---\napiVersion: konfig.dev/v1alpha1\nkind: Domain\nmetadata:\n  name: stores"


@pytest.fixture(scope="module")
def chart_objects() -> list[dict[str, Any]]:
    with helm.Chart.load(CHART) as chart:
        objects = render(chart)
    yaml = YAML(typ="safe")
    crds = [yaml.load(p.read_text()) for p in sorted((CHART / "crds").glob("*.yaml"))]
    return crds + [o for o in objects if o["kind"] in (
        "ServiceAccount", "ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding")]


def install(cluster, objects: list[dict[str, Any]]) -> KubeClient:
    """Apply ``objects`` as the admin (the system namespace first); returns the admin client."""
    admin = KubeClient.connect(str(cluster.kubeconfig))
    admin.discover(RBAC)
    admin.discover("apiextensions.k8s.io/v1")
    admin.apply({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NAMESPACE}})
    for obj in objects:
        if obj["kind"] in ("ServiceAccount", "Role", "RoleBinding"):
            obj["metadata"].setdefault("namespace", NAMESPACE)
        admin.apply(obj)
    return admin


def operator_service_account(objects: list[dict[str, Any]]) -> str:
    (account,) = [o["metadata"]["name"] for o in objects if o["kind"] == "ServiceAccount"]
    return account


def operator_role(objects: list[dict[str, Any]]) -> dict[str, Any]:
    binding = next(o for o in objects if o["kind"] == "ClusterRoleBinding"
                   and any(s["kind"] == "ServiceAccount" for s in o["subjects"]))
    return next(o for o in objects if o["kind"] == "ClusterRole"
                and o["metadata"]["name"] == binding["roleRef"]["name"])


def tree_copy(tmp_path: Path) -> Path:
    target = tmp_path / "definitions"
    shutil.copytree(ROOT / "definitions", target)
    return target


def run_as_service_account(cluster, objects, tmp_path: Path):
    """Apply the example organisation as the admin (as CI would), run the operator with the
    chart's ServiceAccount token until converged; let it remove an expired break-glass grant
    (its resync does, posting an Event); then remove a domain (pruning) and converge again.
    Returns (sandbox, the operator's user name, its token); the caller stops the sandbox."""
    account = operator_service_account(objects)
    token = cluster.service_account_token(NAMESPACE, account)
    kubeconfig = cluster.write_kubeconfig(tmp_path / "operator.kubeconfig", token=token, user=account)
    tree = tree_copy(tmp_path)
    defs = load_definitions(tree)
    sandbox = Sandbox(defs, kube=RealKube(cluster), operator=False, resync_interval=2.0).start()
    try:
        sandbox.apply(defs)
        sandbox.start_operator(kubeconfig=str(kubeconfig))
        converged = sandbox.wait_converged(90)
        assert converged.ready, converged.not_ready[:5] + converged.stalled[:5]
        assert object_counts(sandbox) == collections.Counter(
            o["kind"] for o in compile_definitions(defs).kubernetes)
        # A break-glass grant that expired an hour ago: the operator's resync removes it.
        import kubernetes.config

        with kubernetes.config.new_client_from_config(config_file=str(cluster.kubeconfig)) as api:
            report = request_grant(api, domain="payments", environment="prod", duration="1h",
                                   reason="INC-1 RBAC test", actor="alice@acme-retail.example",
                                   now=datetime.now(timezone.utc) - timedelta(hours=2))
            wait_for(lambda: all(g.id != report.grant.id for g in list_grants(api)),
                     timeout=60, what="the expired break-glass grant removed by the operator")
        # Remove a domain: the operator prunes (deletes) what it no longer wants.
        text = (tree / "domains" / "retail.yaml").read_text()
        text = text.replace("  workloads: [pos-gateway]\n", "  workloads: []\n")
        (tree / "domains" / "retail.yaml").write_text(text[:text.index(STORES_DOMAIN)])
        (tree / "workloads" / "pos-gateway.yaml").unlink()
        sandbox.apply(load_definitions(tree))
        wait_for(lambda: sandbox.kube.get(API_VERSION, "Domain", NAMESPACE, "stores") is None,
                 timeout=60, what="the stores domain pruned")
        assert sandbox.wait_converged(60).ready
    except BaseException:
        sandbox.stop()
        raise
    return sandbox, f"system:serviceaccount:{NAMESPACE}:{account}", token


def may_bind(cluster, token: str, bindings: list[dict[str, Any]]) -> bool:
    """Whether the operator may still create each kind of RoleBinding it wrote: creating one
    needs ``bind`` on the role or every permission in it, decided inside the API server (no
    request of its own to audit), so each is tried as the operator with ``dryRun=All``."""
    for binding in bindings:
        meta = binding["metadata"]
        probe = {"apiVersion": RBAC, "kind": "RoleBinding", "roleRef": binding["roleRef"],
                 "subjects": binding["subjects"], "metadata": {"name": f"rbac-probe-{meta['name']}"}}
        try:
            cluster.request("POST", f"/apis/{RBAC}/namespaces/{meta['namespace']}/rolebindings?dryRun=All",
                            probe, token=token)
        except ClusterError as err:
            if " 403 " in str(err):
                return False
            raise
    return True


def requests_made(cluster, user: str) -> set[tuple]:
    """Distinct resource attributes of ``user``'s audited requests:
    ``(verb, group, resource, subresource, namespace, name)``."""
    out = set()
    for event in cluster.audit_events(user):
        ref = event.get("objectRef")
        if ref:
            out.add((event["verb"], ref.get("apiGroup", ""), ref.get("resource", ""),
                     ref.get("subresource", ""), ref.get("namespace", ""), ref.get("name", "")))
    return out


def allowed(cluster, user: str, groups: list[str], attributes: tuple) -> bool:
    verb, group, resource, subresource, namespace, name = attributes
    review = cluster.request("POST", "/apis/authorization.k8s.io/v1/subjectaccessreviews", {
        "apiVersion": "authorization.k8s.io/v1", "kind": "SubjectAccessReview",
        "spec": {"user": user, "groups": groups, "resourceAttributes": {
            "verb": verb, "group": group, "resource": resource, "subresource": subresource,
            "namespace": namespace, "name": name}}})
    return bool(review["status"].get("allowed"))


def test_the_operator_converges_with_exactly_the_charts_permissions(kube_cluster, chart_objects, tmp_path):
    cluster = kube_cluster
    admin = install(cluster, chart_objects)
    role = operator_role(chart_objects)
    try:
        sandbox, user, token = run_as_service_account(cluster, chart_objects, tmp_path)
        bindings = list({b["roleRef"]["name"]: b for b in sandbox.kube.list(RBAC, "RoleBinding")
                         if (b["metadata"].get("labels") or {}).get("konfig-control-plane")}.values())
        sandbox.stop()
        assert bindings
        made = requests_made(cluster, user)
        assert made, "the audit log recorded the operator's requests"
        denied = [e for e in cluster.audit_events(user)
                  if (e.get("annotations") or {}).get("authorization.k8s.io/decision") == "forbid"]
        # Two refusals are by design (konfig/kube/sync.py): the operator looks for objects to
        # prune in every Config Connector kind Konfig ships and skips kinds it may not list (the
        # chart grants only the kinds the templates render); and it keeps a removed domain's
        # namespaces when the chart does not let it delete namespaces (rbac.deleteNamespaces,
        # off by default). Any other refusal is a missing permission.
        def expected(event: dict[str, Any]) -> bool:
            ref = event["objectRef"]
            return ((event["verb"] == "list" and ref.get("apiGroup", "").endswith(".cnrm.cloud.google.com"))
                    or (event["verb"] == "delete" and ref["resource"] == "namespaces"))
        assert all(expected(e) for e in denied), sorted(
            {(e["verb"], e["requestURI"].split("?")[0]) for e in denied if not expected(e)})
        made = {a for a in made if (a[0], a[1], a[2]) not in {
            (e["verb"], e["objectRef"].get("apiGroup", ""), e["objectRef"]["resource"]) for e in denied}}
        groups = ["system:serviceaccounts", f"system:serviceaccounts:{NAMESPACE}", "system:authenticated"]
        assert all(allowed(cluster, user, groups, a) for a in made)
        assert may_bind(cluster, token, bindings)
        unneeded = []
        for index, rule in enumerate(role["rules"]):
            admin.apply({**role, "rules": role["rules"][:index] + role["rules"][index + 1:]})
            # The authoriser's cache follows the ClusterRole within moments.
            time.sleep(1.0)
            if all(allowed(cluster, user, groups, a) for a in made) and may_bind(cluster, token, bindings):
                unneeded.append(rule)
        assert not unneeded, f"rules no request of the operator needed: {json.dumps(unneeded)}"
    finally:
        admin.apply(role)
        for obj in chart_objects:
            if obj["kind"] in ("ClusterRole", "ClusterRoleBinding"):
                admin.delete(admin.kinds.get(RBAC, obj["kind"]), None, obj["metadata"]["name"])
        admin.close()


@pytest.fixture
def converged_org(kube_cluster, chart_objects, tmp_path):
    """The example organisation converged on the real cluster with the chart installed."""
    admin = install(kube_cluster, chart_objects)
    tree = tree_copy(tmp_path)
    defs = load_definitions(tree)
    sandbox = Sandbox(defs, kube=RealKube(kube_cluster)).start()
    try:
        sandbox.apply(defs)
        assert sandbox.wait_converged(90).ready
        yield sandbox, defs
    finally:
        sandbox.stop()
        for obj in chart_objects:
            if obj["kind"] in ("ClusterRole", "ClusterRoleBinding"):
                admin.delete(admin.kinds.get(RBAC, obj["kind"]), None, obj["metadata"]["name"])
        admin.close()


def test_a_ci_identity_applies_workloads_only_in_its_domains_namespaces(converged_org, kube_cluster, tmp_path):
    sandbox, defs = converged_org
    state = compile_definitions(defs)
    binding = next(o for o in state.kubernetes if o["kind"] == "RoleBinding"
                   and o["metadata"]["name"] == "konfig-ci" and o["metadata"]["namespace"] == "ecommerce-dev")
    (subject,) = binding["subjects"]
    ci = KubeClient.connect(str(kube_cluster.kubeconfig_for(subject["name"], path=tmp_path / "ci.kubeconfig")))
    try:
        own = sandbox.kube.get(API_VERSION, "Workload", "ecommerce-dev", "cart")
        workload = {"apiVersion": API_VERSION, "kind": "Workload",
                    "metadata": {"name": "cart", "namespace": "ecommerce-dev",
                                 "labels": own["metadata"].get("labels") or {}},
                    "spec": own["spec"]}
        ci.apply(workload, field_manager="konfig-ci")  # its own namespace: allowed
        assert ci.get(ci.kinds.get(API_VERSION, "Workload"), "ecommerce-dev", "cart")
        foreign = [ns for ns in (o["metadata"]["name"] for o in state.kubernetes if o["kind"] == "Namespace")
                   if not ns.startswith("ecommerce-")]
        assert foreign
        for namespace in foreign:
            with pytest.raises(KubeError) as denied:
                ci.apply({**workload, "metadata": {**workload["metadata"], "namespace": namespace}},
                         field_manager="konfig-ci")
            assert denied.value.status == 403, namespace
        for kind in ("ControlPlane", "Platform", "Domain", "ResourceTemplate"):
            # Authorisation comes before validation: any body shows the refusal.
            live = next(iter(sandbox.client.list(sandbox.client.kinds.get(API_VERSION, kind))), None) or {
                "metadata": {"name": "probe", "namespace": NAMESPACE}, "spec": {}}
            meta = live["metadata"]
            with pytest.raises(KubeError) as denied:
                ci.apply({"apiVersion": API_VERSION, "kind": kind, "spec": live["spec"],
                          "metadata": {"name": meta["name"], "namespace": meta["namespace"]}},
                         field_manager="konfig-ci")
            assert denied.value.status == 403, kind
    finally:
        ci.close()


KUBECTL = shutil.which("kubectl")


@pytest.mark.skipif(KUBECTL is None, reason="kubectl is not installed (Debian: apt-get install kubernetes-client)")
def test_kubectl_shows_printer_columns_and_waits_for_ready(converged_org, kube_cluster):
    sandbox, defs = converged_org
    env = {"KUBECONFIG": str(kube_cluster.kubeconfig), "PATH": "/usr/bin:/bin", "HOME": str(kube_cluster.workdir)}

    def kubectl(*args: str) -> str:
        done = subprocess.run([KUBECTL, *args], env=env, capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, done.stderr
        return done.stdout

    table = kubectl("get", "controlplanes,domains,workloads", "-A")
    lines = [line.split() for line in table.splitlines() if line.strip()]
    headers = [line for line in lines if line[0] == "NAMESPACE"]
    assert headers and all("READY" in h for h in headers), table
    names = {row[1].split("/")[-1] for row in lines if row[0] != "NAMESPACE"}
    assert {"acme", "payments", "cart", "checkout"} <= names, table
    assert kubectl("wait", "--for=condition=Ready", "workloads", "--all", "-n", "ecommerce-dev",
                   "--timeout=30s").count("condition met") == len(
        sandbox.client.list(sandbox.client.kinds.get(API_VERSION, "Workload"), namespace="ecommerce-dev"))
