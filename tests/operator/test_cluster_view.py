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


def test_problems_name_the_resource_and_invalidate_everything(resources, library):
    find(resources, "Workload", "stores-dev", "pos-gateway")["spec"]["resources"][0]["template"] = "nope"
    find(resources, "Workload", "payments-dev", "payments-api")["spec"]["domain"] = "stores"
    view = build_view(resources, system_namespace=SYSTEM, library=library)
    assert view.definitions is None
    texts = view.problem_texts()
    assert any(t.startswith("Workload stores-dev/pos-gateway: spec.resources[0].template:") for t in texts)
    assert any(t.startswith("Workload payments-dev/payments-api: spec.domain:") for t in texts)


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
