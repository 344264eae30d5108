"""Compiled workloads: injected connection details, per-environment overrides, runtimes, and
per-environment instances as the cluster holds them."""

from __future__ import annotations

import dataclasses

from konfig.compile import compile_definitions
from konfig.compile.state import LABEL_ENVIRONMENT, LABEL_WORKLOAD


def objects_of(state, workload, env=None, kind=None):
    return [o for o in state.kubernetes
            if o["metadata"]["labels"].get(LABEL_WORKLOAD) == workload
            and (env is None or o["metadata"]["labels"].get(LABEL_ENVIRONMENT) == env)
            and (kind is None or o["kind"] == kind)]


def run_env(state, workload, env):
    [service] = objects_of(state, workload, env, "RunService")
    [container] = service["spec"]["template"]["containers"]
    return service, {e["name"]: e["value"] for e in container["env"]}


def test_resources_connection_details_are_injected_with_resource_prefixes(example_state):
    _, env = run_env(example_state, "checkout", "dev")
    assert env["ORDERS_DB_NAME"] == "orders"
    assert env["ORDERS_DB_INSTANCE"] == "acme-ecommerce-dev:europe-west1:checkout-orders"
    assert env["RECEIPTS_BUCKET"].startswith("acme-ecommerce-dev-checkout-receipts")
    assert env["ORDER_EVENTS_TOPIC"] == "projects/acme-ecommerce-dev/topics/checkout-order-events"
    assert env["KONFIG_ENVIRONMENT"] == "dev" and env["GOOGLE_CLOUD_PROJECT"] == "acme-ecommerce-dev"


def test_environment_overrides_merge_over_the_base_spec(example_state):
    dev, dev_env = run_env(example_state, "checkout", "dev")
    prod, prod_env = run_env(example_state, "checkout", "prod")
    assert dev_env["LOG_LEVEL"] == "info" and prod_env["LOG_LEVEL"] == "warn"
    assert dev["spec"]["template"]["scaling"] == {"minInstanceCount": 0, "maxInstanceCount": 10}
    assert prod["spec"]["template"]["scaling"] == {"minInstanceCount": 2, "maxInstanceCount": 50}
    assert prod["spec"]["projectRef"]["external"] == "projects/acme-shop-prod"  # adopted project


def test_external_workloads_accept_load_balancer_traffic_only(example_state):
    checkout, _ = run_env(example_state, "checkout", "prod")
    cart, _ = run_env(example_state, "cart", "prod")
    assert checkout["spec"]["ingress"] == "INGRESS_TRAFFIC_INTERNAL_LOAD_BALANCER"
    assert cart["spec"]["ingress"] == "INGRESS_TRAFFIC_INTERNAL_ONLY"


def test_gke_runtime_gets_deployment_service_and_workload_identity(example_state):
    assert not objects_of(example_state, "dispatcher", "dev", "RunService")
    [deployment] = objects_of(example_state, "dispatcher", "dev", "Deployment")
    [ksa] = objects_of(example_state, "dispatcher", "dev", "ServiceAccount")
    [service] = objects_of(example_state, "dispatcher", "dev", "Service")
    pod = deployment["spec"]["template"]["spec"]
    assert pod["serviceAccountName"] == ksa["metadata"]["name"] == "dispatcher"
    assert ksa["metadata"]["annotations"]["iam.gke.io/gcp-service-account"] == \
        "wl-dispatcher@acme-fulfilment-dev.iam.gserviceaccount.com"
    assert service["spec"]["selector"] == deployment["spec"]["selector"]["matchLabels"]
    members = {m["spec"].get("member") for m in objects_of(example_state, "dispatcher", "dev", "IAMPolicyMember")}
    assert "serviceAccount:acme-konfig.svc.id.goog[fulfilment-dev/dispatcher]" in members


def test_dataflow_runtime_has_no_runtime_object_but_worker_role(example_state):
    objects = objects_of(example_state, "stock-reports", "dev")
    assert not [o for o in objects if o["kind"] in ("RunService", "Deployment")]
    roles = {(m["spec"]["role"], m["spec"]["resourceRef"]["kind"]) for m in objects if m["kind"] == "IAMPolicyMember"}
    assert ("roles/dataflow.worker", "Project") in roles


def test_instances_only_renders_environments_that_have_an_instance(example_defs):
    checkout = example_defs.workloads[("ecommerce", "checkout")]
    pinned = "europe-west1-docker.pkg.dev/acme-konfig/ecommerce/checkout@sha256:" + "1" * 64
    dev = checkout.model_copy(update={"spec": checkout.spec.model_copy(update={"image": pinned})})
    defs = dataclasses.replace(example_defs, instances_only=True,
                               workload_instances={("ecommerce", "checkout", "dev"): dev})
    state = compile_definitions(defs)
    assert {o["metadata"]["labels"][LABEL_ENVIRONMENT] for o in objects_of(state, "checkout")} == {"dev"}
    assert not objects_of(state, "cart")  # no instance anywhere yet
    [service] = objects_of(state, "checkout", "dev", "RunService")
    assert service["spec"]["template"]["containers"][0]["image"] == pinned
