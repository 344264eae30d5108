"""Definitions built from the custom resources the cluster holds (pure)."""

from __future__ import annotations

import copy

import pytest

from konfig.compile import compile_definitions
from konfig.kube.custom_resources import custom_resources
from konfig.kube.owners import Ref
from konfig.load import bundled_templates
from konfig.operator.cluster import build_view

SYSTEM = "konfig-system"


@pytest.fixture(scope="module")
def library():
    return list(bundled_templates())


@pytest.fixture()
def resources(example_defs):
    return copy.deepcopy(custom_resources(example_defs))


def find(resources, kind, namespace, name):
    return next(r for r in resources if (r["kind"], r["metadata"]["namespace"], r["metadata"]["name"])
                == (kind, namespace, name))


def test_cluster_resources_compile_like_the_tree(resources, library, example_state):
    view = build_view(resources, system_namespace=SYSTEM, library=library)
    assert view.valid and not view.orphans
    state = compile_definitions(view.definitions)
    assert state.kubernetes == example_state.kubernetes
    assert state.gitlab == example_state.gitlab


def test_a_workload_renders_only_where_it_has_an_instance(resources, library, example_state):
    kept = [r for r in resources if not (r["kind"] == "Workload" and r["metadata"]["name"] == "cart"
                                         and r["metadata"]["namespace"] != "ecommerce-dev")]
    view = build_view(kept, system_namespace=SYSTEM, library=library)
    namespaces = {o["metadata"].get("namespace") for o in compile_definitions(view.definitions).kubernetes
                  if o["metadata"].get("labels", {}).get("konfig-workload") == "cart"}
    assert namespaces == {"ecommerce-dev"}


def test_each_environment_runs_its_own_image(resources, library):
    dev = find(resources, "Workload", "ecommerce-dev", "cart")
    dev["spec"]["image"] = "europe-west1-docker.pkg.dev/acme-konfig/ecommerce/cart:latest"
    view = build_view(resources, system_namespace=SYSTEM, library=library)
    assert view.valid, view.problem_texts()  # a tag is fine in the first environment
    prod = find(resources, "Workload", "ecommerce-prod", "cart")
    prod["spec"]["image"] = "europe-west1-docker.pkg.dev/acme-konfig/ecommerce/cart:latest"
    problems = build_view(resources, system_namespace=SYSTEM, library=library).problem_texts()
    assert any("pinned by digest" in p and "'prod'" in p for p in problems)


def test_a_bad_workload_is_held_alone_and_named_with_its_field(resources, library):
    find(resources, "Workload", "stores-dev", "pos-gateway")["spec"]["resources"][0]["template"] = "nope"
    find(resources, "Workload", "payments-dev", "payments-api")["spec"]["domain"] = "stores"
    view = build_view(resources, system_namespace=SYSTEM, library=library)
    assert set(view.held) == {Ref("Workload", "stores-dev", "pos-gateway"),
                              Ref("Workload", "payments-dev", "payments-api")}
    texts = view.problem_texts()
    assert any(t.startswith("Workload stores-dev/pos-gateway: spec.resources[0].template:") for t in texts)
    assert any(t.startswith("Workload payments-dev/payments-api: spec.domain:") for t in texts)
    defs = view.definitions
    assert defs is not None and not view.valid
    assert ("stores", "pos-gateway", "dev") not in defs.workload_instances
    assert ("stores", "pos-gateway", "prod") in defs.workload_instances
    assert ("payments", "payments-api", "stage") in defs.workload_instances
    assert ("ecommerce", "cart", "dev") in defs.workload_instances


def test_a_tag_in_stage_stalls_the_stage_instance_at_its_image(resources, library):
    stage = find(resources, "Workload", "ecommerce-stage", "cart")
    stage["spec"]["image"] = "europe-west1-docker.pkg.dev/acme-konfig/ecommerce/cart:v1"
    view = build_view(resources, system_namespace=SYSTEM, library=library)
    # checkout calls cart: its stage instance waits too, the other environments go on
    assert set(view.held) == {Ref("Workload", "ecommerce-stage", "cart"),
                              Ref("Workload", "ecommerce-stage", "checkout")}
    assert "Workload ecommerce-stage/cart (a workload it calls)" in \
        view.held[Ref("Workload", "ecommerce-stage", "checkout")][0].message
    (problem,) = view.held[Ref("Workload", "ecommerce-stage", "cart")]
    assert problem.location.file == "Workload ecommerce-stage/cart"
    assert problem.location.field == "spec.image"
    assert ("ecommerce", "cart", "prod") in view.definitions.workload_instances


def test_a_bad_template_holds_only_the_workloads_using_it(resources, library):
    redis = next(t for t in library if t.name == "redis").to_document()
    first = redis["spec"]["resources"][0]
    first["spec"] = {**first.get("spec", {}), "memorySizeGb": "${params.memorySizeGb +}"}
    resources.append({**redis, "metadata": {"name": "redis", "namespace": SYSTEM}})
    view = build_view(resources, system_namespace=SYSTEM, library=library)
    template = Ref("ResourceTemplate", SYSTEM, "redis")
    users = {Ref("Workload", f"ecommerce-{e}", "cart") for e in ("dev", "stage", "prod")}
    callers = {Ref("Workload", f"ecommerce-{e}", "checkout") for e in ("dev", "stage", "prod")}
    assert set(view.held) == {template, *users, *callers}
    assert view.held[template][0].location.file == str(template)
    assert all("ResourceTemplate konfig-system/redis" in view.held[u][0].message for u in users)
    assert ("ecommerce", "catalog", "dev") in view.definitions.workload_instances


def test_a_bad_domain_holds_its_workloads_and_a_bad_platform_its_domains(resources, library):
    find(resources, "Domain", SYSTEM, "payments")["spec"]["environments"] = ["nowhere"]
    view = build_view(resources, system_namespace=SYSTEM, library=library)
    held = set(view.held)
    assert Ref("Domain", SYSTEM, "payments") in held
    assert {Ref("Workload", f"payments-{e}", "payments-api") for e in ("dev", "stage", "prod")} <= held
    assert not any(r.namespace.startswith("inventory") for r in held)
    assert "payments" not in view.definitions.domains and "ecommerce" in view.definitions.domains

    find(resources, "Domain", SYSTEM, "payments")["spec"].pop("environments")
    find(resources, "Platform", SYSTEM, "supply-chain")["spec"]["services"] = ["not-a-service"]
    view = build_view(resources, system_namespace=SYSTEM, library=library)
    held = set(view.held)
    assert {Ref("Platform", SYSTEM, "supply-chain"), Ref("Domain", SYSTEM, "inventory"),
            Ref("Domain", SYSTEM, "fulfilment"),
            Ref("Workload", "inventory-dev", "stock-service")} <= held
    message = view.held[Ref("Domain", SYSTEM, "inventory")][0].message
    assert "Platform konfig-system/supply-chain" in message and "kept" in message
    assert "ecommerce" in view.definitions.domains


def test_a_bad_control_plane_holds_everything(resources, library):
    find(resources, "ControlPlane", SYSTEM, "acme")["spec"]["environments"] = []
    view = build_view(resources, system_namespace=SYSTEM, library=library)
    assert view.definitions is None
    assert set(view.held) == set(view.resources)
    assert "ControlPlane konfig-system/acme" in view.held[Ref("Domain", SYSTEM, "stores")][0].message


def test_orphans_and_deletions_are_set_aside(resources, library):
    stray = copy.deepcopy(find(resources, "Workload", "stores-dev", "pos-gateway"))
    stray["metadata"]["namespace"] = "default"
    domain = find(resources, "Domain", SYSTEM, "stores")
    domain["metadata"]["deletionTimestamp"] = "2024-01-01T00:00:00Z"
    for r in resources:
        if r["kind"] == "Workload" and r["metadata"]["namespace"].startswith("stores-"):
            r["metadata"]["deletionTimestamp"] = "2024-01-01T00:00:00Z"
    view = build_view([*resources, stray], system_namespace=SYSTEM, library=library)
    assert view.valid, view.problem_texts()
    assert Ref("Workload", "default", "pos-gateway") in view.orphans
    assert Ref("Domain", SYSTEM, "stores") in view.deleting
    assert "stores" not in view.definitions.domains


def test_a_deleting_control_plane_is_torn_down(resources, library):
    find(resources, "ControlPlane", SYSTEM, "acme")["metadata"]["deletionTimestamp"] = "2024-01-01T00:00:00Z"
    view = build_view(resources, system_namespace=SYSTEM, library=library)
    assert view.control_plane == "acme" and view.control_plane_deleting and view.definitions is None


def test_a_held_resource_renders_as_its_last_good_definition(resources, library, example_state):
    good = build_view(resources, system_namespace=SYSTEM, library=library)
    find(resources, "Workload", "stores-dev", "pos-gateway")["spec"]["resources"][0]["template"] = "nope"
    view = build_view(resources, system_namespace=SYSTEM, library=library, last_good=good.models)
    ref = Ref("Workload", "stores-dev", "pos-gateway")
    assert ref in view.held and view.kept == {ref}
    assert view.held[ref][0].location.field == "spec.resources[0].template"
    # everything renders as before, shared objects (routes, grants) included
    assert compile_definitions(view.definitions).kubernetes == example_state.kubernetes


def test_a_last_good_that_no_longer_fits_is_dropped(resources, library):
    good = build_view(resources, system_namespace=SYSTEM, library=library)
    find(resources, "Workload", "stores-dev", "pos-gateway")["spec"]["resources"][0]["template"] = "nope"
    # the workload it calls is gone: its last good definition no longer validates either
    resources = [r for r in resources if r["metadata"]["name"] != "payments-api"]
    view = build_view(resources, system_namespace=SYSTEM, library=library, last_good=good.models)
    ref = Ref("Workload", "stores-dev", "pos-gateway")
    assert ref in view.held and ref not in view.kept
    assert ("stores", "pos-gateway", "dev") not in view.definitions.workload_instances
