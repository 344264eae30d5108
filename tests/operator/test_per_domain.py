"""The operator reconciles per domain, end to end against the Kubernetes API emulator: a bad
definition stalls only what it belongs to and keeps its objects, and a change costs only its
unit's requests (asserted on the requests the API server saw)."""

from __future__ import annotations

import copy

import pytest

from konfig.compile import compile_definitions
from konfig.kube.custom_resources import custom_resources
from konfig.load import load_definitions
from konfig.model import API_VERSION
from konfig.operator.sandbox import Sandbox

from tests.e2e.conftest import ROOT, wait_for

RUN = "run.cnrm.cloud.google.com/v1beta1"
SYSTEM = "konfig-system"


@pytest.fixture
def converged():
    defs = load_definitions(ROOT / "definitions")
    sandbox = Sandbox(defs, resync_interval=3600, config={"requeue_max": 1.0}).start()
    try:
        assert sandbox.apply(defs).ok
        assert sandbox.wait_converged(60).ready
        yield sandbox
    finally:
        sandbox.stop()


def resource(sandbox: Sandbox, kind: str, namespace: str, name: str) -> dict:
    return sandbox.kube.get(API_VERSION, kind, namespace, name)


def condition(body: dict, kind: str) -> dict:
    return next(c for c in body["status"]["conditions"] if c["type"] == kind)


def apply_cr(sandbox: Sandbox, body: dict) -> None:
    doc = {k: body[k] for k in ("apiVersion", "kind", "spec")}
    doc["metadata"] = {"name": body["metadata"]["name"], "namespace": body["metadata"]["namespace"]}
    sandbox.client.apply(doc, field_manager="konfig")


def cr_of(kind: str, namespace: str, name: str) -> dict:
    defs = load_definitions(ROOT / "definitions")
    return copy.deepcopy(next(r for r in custom_resources(defs) if (
        r["kind"], r["metadata"]["namespace"], r["metadata"]["name"]) == (kind, namespace, name)))


def env_of(sandbox: Sandbox, namespace: str, name: str) -> dict:
    live = sandbox.kube.get(RUN, "RunService", namespace, name)
    return {e["name"]: e.get("value") for e in live["spec"]["template"]["containers"][0]["env"]}


def test_a_bad_workload_stalls_only_its_instance_and_keeps_its_objects(converged):
    sandbox = converged
    before = sandbox.kube.get(RUN, "RunService", "stores-dev", "pos-gateway")
    bad = cr_of("Workload", "stores-dev", "pos-gateway")
    bad["spec"]["resources"][0]["template"] = "no-such-template"
    apply_cr(sandbox, bad)
    wait_for(lambda: condition(resource(sandbox, "Workload", "stores-dev", "pos-gateway"),
                               "Stalled")["status"] == "True", what="stalled workload")
    stall = condition(resource(sandbox, "Workload", "stores-dev", "pos-gateway"), "Stalled")
    assert stall["reason"] == "InvalidDefinitions"
    assert stall["message"].startswith("spec.resources[0].template:")
    assert "no-such-template" in stall["message"]
    # Its last good objects are kept, nothing pruned.
    kept = sandbox.kube.get(RUN, "RunService", "stores-dev", "pos-gateway")
    assert kept["metadata"]["uid"] == before["metadata"]["uid"]
    # Everything else stays Ready, including the same workload in prod and its domain.
    for kind, ns, name in [("Workload", "stores-prod", "pos-gateway"), ("Domain", SYSTEM, "stores"),
                           ("Workload", "ecommerce-dev", "cart"), ("ControlPlane", SYSTEM, "acme")]:
        assert condition(resource(sandbox, kind, ns, name), "Ready")["status"] == "True", (kind, ns, name)
    def warned() -> bool:  # kopf posts Events in the background
        return any(e["type"] == "Warning" and e["involvedObject"]["name"] == "pos-gateway"
                   and e["reason"] == "InvalidDefinitions"
                   and "spec.resources[0].template" in e["message"]
                   for e in sandbox.kube.list("v1", "Event", "stores-dev"))

    wait_for(warned, what="a Warning Event on the workload")

    # A change in another domain still lands while the bad workload is there.
    cart = cr_of("Workload", "ecommerce-dev", "cart")
    cart["spec"]["env"] = {**cart["spec"].get("env", {}), "ZZ_FEATURE_X": "on"}
    apply_cr(sandbox, cart)
    wait_for(lambda: env_of(sandbox, "ecommerce-dev", "cart").get("ZZ_FEATURE_X") == "on",
             what="change in another domain applied")

    # Fixing it converges.
    apply_cr(sandbox, cr_of("Workload", "stores-dev", "pos-gateway"))
    assert sandbox.wait_converged(30).ready


def test_a_bad_domain_stalls_its_workloads_and_says_why(converged):
    sandbox = converged
    bad = cr_of("Domain", SYSTEM, "inventory")
    bad["spec"]["environments"] = ["nowhere"]
    apply_cr(sandbox, bad)
    wait_for(lambda: condition(resource(sandbox, "Workload", "inventory-dev", "stock-service"),
                               "Stalled")["status"] == "True", what="stalled workload")
    message = condition(resource(sandbox, "Workload", "inventory-dev", "stock-service"),
                        "Stalled")["message"]
    assert "Domain konfig-system/inventory" in message and "kept" in message
    assert condition(resource(sandbox, "Domain", SYSTEM, "inventory"), "Stalled")["message"].startswith(
        "spec.environments[0]:")
    assert sandbox.kube.get(RUN, "RunService", "inventory-dev", "stock-service") is not None
    assert sandbox.kube.get("v1", "Namespace", None, "inventory-dev") is not None
    assert condition(resource(sandbox, "Domain", SYSTEM, "ecommerce"), "Ready")["status"] == "True"


def test_a_workload_change_reads_and_writes_only_its_unit(converged):
    sandbox = converged
    wait_for(lambda: sandbox.operator.loop.idle, what="idle operator")
    sandbox.kube.clear_requests()
    cart = cr_of("Workload", "ecommerce-dev", "cart")
    cart["spec"]["env"] = {**cart["spec"].get("env", {}), "ZZ_FEATURE_Y": "on"}
    apply_cr(sandbox, cart)
    wait_for(lambda: env_of(sandbox, "ecommerce-dev", "cart").get("ZZ_FEATURE_Y") == "on",
             what="change applied")
    wait_for(lambda: sandbox.operator.loop.idle and not sandbox.operator.loop.busy, what="idle")
    seen = [r for r in sandbox.kube.requests if "watch" not in r.query]
    writes = [r for r in seen if r.method in ("PATCH", "POST", "PUT", "DELETE")]
    object_writes = [r for r in writes if "/konfig.dev/" not in r.path
                     and not r.path.endswith("/events")]
    # The change itself (our apply of the Workload), its status and Events aside, the operator
    # wrote the RunService, and nothing outside the domain's unit. (The emulator merges env
    # lists by name and appends new items, so a dependency URL variable sorting first makes
    # every pass rewrite checkout there; a real server keeps the applied order.)
    paths = [r.path for r in object_writes]
    assert "/apis/run.cnrm.cloud.google.com/v1beta1/namespaces/ecommerce-dev/runservices/cart" in paths
    assert all(any(f"/namespaces/ecommerce-{e}/" in p for e in ("dev", "stage", "prod"))
               for p in paths), paths
    lists = [r for r in seen if r.method == "GET"]
    selectors = {r.query.get("labelSelector") for r in lists if r.query.get("labelSelector")}
    # every list is by label, of the unit's domain (and, for the URLs its workloads call, of
    # the domains in its scope), never of the whole control plane
    assert selectors and all("konfig-domain in (ecommerce" in s for s in selectors), selectors
    # No read of another domain's namespaces.
    assert not [r.path for r in seen if "/namespaces/" in r.path
                and not any(f"/namespaces/{ns}" in r.path for ns in
                            ("ecommerce-dev", "ecommerce-stage", "ecommerce-prod", SYSTEM))]
    assert len(lists) < 40, [r.path for r in lists]


def test_bad_definitions_present_from_the_start_apply_the_rest(tmp_path):
    defs = load_definitions(ROOT / "definitions")
    state = compile_definitions(defs)
    sandbox = Sandbox(defs, operator=False).start()
    try:
        resources = custom_resources(defs)
        broken = next(r for r in resources if r["kind"] == "Workload"
                      and r["metadata"]["namespace"] == "stores-dev")
        broken["spec"]["resources"][0]["template"] = "no-such-template"
        for ns in (o for o in state.kubernetes if o["kind"] == "Namespace"):
            sandbox.client.apply(ns)
        for r in resources:
            sandbox.client.apply(r)
        sandbox.start_operator()
        wait_for(lambda: sandbox.kube.get(RUN, "RunService", "stores-prod", "pos-gateway"),
                 what="the good instance applied")
        assert sandbox.kube.get(RUN, "RunService", "stores-dev", "pos-gateway") is None
        result = sandbox.wait_converged(30, until=lambda c: len(c.stalled) == 1
                                        and len(c.not_ready) == 1)
        assert result.stalled and "Workload stores-dev/pos-gateway" in result.stalled[0]
        broken["spec"]["resources"][0]["template"] = "firestore"
        sandbox.client.apply(broken)
        assert sandbox.wait_converged(30).ready
    finally:
        sandbox.stop()
