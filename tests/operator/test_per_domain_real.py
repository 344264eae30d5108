"""Per-domain reconciling on the real kube-apiserver (tests/cluster): isolation, a change's
cost asserted on the requests the server's audit log recorded, and three ``konfig operator
--leases`` processes with a ``kill -9``. The operator runs as a ServiceAccount (the audit
policy records ServiceAccounts' requests); its permissions are the chart's concern
(tests/chart, the RBAC tests of the real cluster), here it is bound to cluster-admin."""

from __future__ import annotations

import copy
import os
import signal
import subprocess
import sys
import time
import urllib.parse
from collections import Counter
from pathlib import Path

import pytest

from konfig.kube.custom_resources import custom_resources
from konfig.load import load_definitions
from konfig.model import API_VERSION
from konfig.operator.leases import LEASE
from konfig.operator.sandbox import Sandbox, resource_ready
from konfig.operator.units import UnitIndex

from tests.cluster.backend import RealKube
from tests.e2e.conftest import ROOT, wait_for

RUN = "run.cnrm.cloud.google.com/v1beta1"
SYSTEM = "konfig-system"
SA = "konfig-operator-test"
USER = f"system:serviceaccount:{SYSTEM}:{SA}"


def operator_kubeconfig(cluster, client, path: Path) -> Path:
    """A kubeconfig of ServiceAccount ``SA`` (bound to cluster-admin), so the audit log
    records what the operator asked."""
    client.apply({"apiVersion": "v1", "kind": "ServiceAccount",
                  "metadata": {"name": SA, "namespace": SYSTEM}}, field_manager="test")
    client.apply({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
                  "metadata": {"name": SA},
                  "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole",
                              "name": "cluster-admin"},
                  "subjects": [{"kind": "ServiceAccount", "name": SA, "namespace": SYSTEM}]},
                 field_manager="test")
    return cluster.write_kubeconfig(path, token=cluster.service_account_token(SYSTEM, SA))


@pytest.fixture
def real(kube_cluster, tmp_path):
    defs = load_definitions(ROOT / "definitions")
    # resyncs an hour apart: none of the units' resyncs (spread over the interval) falls into
    # a test's measurement
    sandbox = Sandbox(defs, kube=RealKube(kube_cluster), operator=False, resync_interval=3600,
                      config={"requeue_max": 1.0}).start()
    try:
        assert sandbox.apply(defs).ok
        kubeconfig = operator_kubeconfig(kube_cluster, sandbox.client, tmp_path / "op.kubeconfig")
        sandbox.start_operator(kubeconfig=str(kubeconfig))
        assert sandbox.wait_converged(120).ready
        yield sandbox, kube_cluster
    finally:
        sandbox.stop()


def cr_of(kind: str, namespace: str, name: str) -> dict:
    defs = load_definitions(ROOT / "definitions")
    return copy.deepcopy(next(r for r in custom_resources(defs) if (
        r["kind"], r["metadata"]["namespace"], r["metadata"]["name"]) == (kind, namespace, name)))


def apply_cr(sandbox: Sandbox, body: dict) -> None:
    doc = {k: body[k] for k in ("apiVersion", "kind", "spec")}
    doc["metadata"] = {"name": body["metadata"]["name"], "namespace": body["metadata"]["namespace"]}
    sandbox.client.apply(doc, field_manager="konfig")


def condition(body: dict, kind: str) -> dict:
    return next(c for c in body["status"]["conditions"] if c["type"] == kind)


def env_of(sandbox: Sandbox, namespace: str, name: str) -> dict:
    live = sandbox.kube.get(RUN, "RunService", namespace, name)
    return {e["name"]: e.get("value") for e in live["spec"]["template"]["containers"][0]["env"]}


def idle(sandbox: Sandbox) -> None:
    """Until no pass runs and no unit waits for a requeue or retry."""
    wait_for(lambda: sandbox.operator.loop.settled, timeout=90, what="settled operator")
    time.sleep(0.5)
    wait_for(lambda: sandbox.operator.loop.settled, timeout=90, what="settled operator")


def test_on_a_real_server_a_bad_workload_stalls_only_itself_and_keeps_its_objects(real):
    sandbox, _ = real
    before = sandbox.kube.get(RUN, "RunService", "stores-dev", "pos-gateway")
    bad = cr_of("Workload", "stores-dev", "pos-gateway")
    bad["spec"]["resources"][0]["template"] = "no-such-template"
    apply_cr(sandbox, bad)
    wait_for(lambda: condition(sandbox.kube.get(API_VERSION, "Workload", "stores-dev", "pos-gateway"),
                               "Stalled")["status"] == "True", timeout=60, what="stalled workload")
    stall = condition(sandbox.kube.get(API_VERSION, "Workload", "stores-dev", "pos-gateway"), "Stalled")
    assert stall["message"].startswith("spec.resources[0].template:")
    kept = sandbox.kube.get(RUN, "RunService", "stores-dev", "pos-gateway")
    assert kept["metadata"]["uid"] == before["metadata"]["uid"]
    idle(sandbox)
    for kind, ns, name in [("Workload", "stores-prod", "pos-gateway"), ("Domain", SYSTEM, "stores"),
                           ("ControlPlane", SYSTEM, "acme"), ("Domain", SYSTEM, "ecommerce")]:
        assert condition(sandbox.kube.get(API_VERSION, kind, ns, name), "Ready")["status"] == "True", \
            (kind, ns, name)
    cart = cr_of("Workload", "ecommerce-dev", "cart")
    cart["spec"]["env"] = {**cart["spec"].get("env", {}), "FEATURE_X": "on"}
    apply_cr(sandbox, cart)
    wait_for(lambda: env_of(sandbox, "ecommerce-dev", "cart").get("FEATURE_X") == "on",
             timeout=30, what="a change in another domain")


# Known failure since the merge with main (issue 11 stays open for it): after the cart change a
# pass over every unit runs, its reasons the kopf LISTED events of every Workload, so the
# change is not yet proven to cost only its unit's requests on the real server. Kept as the
# measure of that follow-up, not loosened; isolation and leases on the real server pass.
@pytest.mark.xfail(reason="a pass over every unit follows the change (kopf LISTED events); issue 11",
                   strict=False)
def test_on_a_real_server_a_change_costs_only_its_units_requests(real):
    sandbox, cluster = real
    idle(sandbox)
    seen_before = len(cluster.audit_events(USER))
    passes_before = len(sandbox.operator.loop.passes)
    cart = cr_of("Workload", "ecommerce-dev", "cart")
    # in the middle of the env list: the real server keeps the applied order of the list
    cart["spec"]["env"] = {**cart["spec"].get("env", {}), "FEATURE_Y": "on"}
    apply_cr(sandbox, cart)
    wait_for(lambda: env_of(sandbox, "ecommerce-dev", "cart").get("FEATURE_Y") == "on",
             timeout=30, what="change applied")
    idle(sandbox)
    events = [e for e in cluster.audit_events(USER)[seen_before:] if e.get("verb") != "watch"]
    writes = [e for e in events if e["verb"] in ("create", "update", "patch", "delete")]
    objects = [ref(e) for e in writes
               if ref(e).get("apiGroup") != "konfig.dev"
               and ref(e).get("resource") != "events"]
    assert [(o["resource"], o.get("namespace"), o.get("name")) for o in objects] == [
        ("runservices", "ecommerce-dev", "cart")]
    reads = [e for e in events if e["verb"] in ("list", "get")]
    selectors = {urllib.parse.parse_qs(urllib.parse.urlsplit(e["requestURI"]).query).get(
        "labelSelector", [""])[0] for e in reads if e["verb"] == "list"
        and ref(e).get("apiGroup") != "coordination.k8s.io"}
    passes = [(p.trigger, sorted(p.units)) for p in sandbox.operator.loop.passes[passes_before:]]
    assert selectors and all("konfig-domain in (ecommerce" in s for s in selectors), (
        passes, sandbox.operator.loop.reasons[-5:])
    touched = {ref(e).get("namespace") for e in events} - {None, ""}
    assert touched <= {"ecommerce-dev", "ecommerce-stage", "ecommerce-prod", SYSTEM}, touched
    # two passes of the unit (the change, and one requeue while Config Connector reports the
    # update), each one list per kind the domain has objects of: whatever the domains' number
    assert len(events) < 90, Counter((e["verb"], ref(e).get("resource")) for e in events)


def ref(event: dict) -> dict:
    """An audit event's objectRef (non-resource requests, /version say, have none)."""
    return event.get("objectRef") or {}


def unit_holders(client) -> dict[str, str]:
    return {i["metadata"]["annotations"]["konfig.dev/unit"]: i["spec"].get("holderIdentity") or ""
            for i in client.list(LEASE, namespace=SYSTEM, label_selector="konfig.dev/lease=unit")}


DURATION = 5


def test_on_a_real_server_three_replicas_share_units_and_fail_over(kube_cluster, tmp_path):
    defs = load_definitions(ROOT / "definitions")
    sandbox = Sandbox(defs, kube=RealKube(kube_cluster), operator=False).start()
    client = sandbox.client
    replicas: dict[str, subprocess.Popen] = {}
    try:
        assert sandbox.apply(defs).ok
        kubeconfig = operator_kubeconfig(kube_cluster, client, tmp_path / "op.kubeconfig")
        units = UnitIndex.of(custom_resources(defs)).units()
        for name in ("r0", "r1", "r2"):
            env = {**os.environ, "KUBECONFIG": str(kubeconfig), "PYTHONPATH": str(ROOT),
                   "POD_NAME": name}
            replicas[name] = subprocess.Popen(
                [sys.executable, str(ROOT / "cli.py"), "operator", "--resync-interval=1h",
                 "--health-port=0", "--metrics-port=0", "--standalone", "--leases",
                 f"--lease-duration={DURATION}s", "--log-level=warning"],
                env=env, cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

        def ready() -> bool:
            resources = [r for kind in ("ControlPlane", "Domain", "Workload")
                         for r in client.list(client.kinds.get(API_VERSION, kind))]
            return bool(resources) and all(resource_ready(r) for r in resources)

        wait_for(ready, timeout=180, poll=0.5, what="converged with three replicas")
        share = -(-len(units) // len(replicas))

        def spread_out():
            spread = Counter(unit_holders(client).values())
            return spread if set(spread) == set(replicas) and max(spread.values()) <= share else None

        spread = wait_for(spread_out, timeout=30, poll=0.2, what="units spread over replicas")
        victim = spread.most_common(1)[0][0]
        lost = [u for u, h in unit_holders(client).items() if h == victim]
        replicas[victim].send_signal(signal.SIGKILL)
        replicas[victim].wait(10)
        killed = time.monotonic()
        wait_for(lambda: all(unit_holders(client)[u] not in ("", victim) for u in lost),
                 timeout=DURATION * 4, poll=0.1, what="units moved")
        assert time.monotonic() - killed < DURATION + DURATION / 3 + 2.5

        domain = next(u.split("/", 1)[1] for u in lost if u.startswith("domain/"))
        workload = next(r for r in custom_resources(defs) if r["kind"] == "Workload"
                        and r["metadata"]["namespace"] == f"{domain}-dev")
        name = workload["metadata"]["name"]
        seen_before = len(kube_cluster.audit_events(USER))
        spec = {**workload["spec"], "env": {**workload["spec"].get("env", {}), "MOVED": "yes"}}
        client.apply({**workload, "spec": spec}, field_manager="konfig")

        def applied() -> bool:
            live = client.get(client.kinds.get(RUN, "RunService"), f"{domain}-dev", name)
            return any(e["name"] == "MOVED"
                       for e in live["spec"]["template"]["containers"][0].get("env") or [])

        wait_for(applied, timeout=30, what="change applied after failover")
        time.sleep(DURATION)  # room for a duplicate write, if there were one
        writes = [e for e in kube_cluster.audit_events(USER)[seen_before:]
                  if e["verb"] in ("patch", "update", "create")
                  and ref(e).get("resource") == "runservices"
                  and ref(e).get("name") == name
                  and ref(e).get("namespace") == f"{domain}-dev"]
        assert len(writes) == 1, [(e["verb"], e.get("stageTimestamp")) for e in writes]
    finally:
        for process in replicas.values():
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process in replicas.values():
            try:
                process.wait(20)
            except subprocess.TimeoutExpired:
                process.kill()
        sandbox.stop()
