"""Definitions built from the custom resources the cluster holds (pure)."""

from __future__ import annotations

import copy

import pytest

from konfig.compile import compile_definitions
from konfig.kube.custom_resources import custom_resources
from konfig.kube.owners import Ref
from konfig.load import bundled_templates
from konfig.errors import Location, Problem
from konfig.operator.cluster import build_view, describe_problem, isolated_objects

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
    assert view.valid and not view.isolated, view.problem_texts()  # a tag is fine in dev
    stage = find(resources, "Workload", "ecommerce-stage", "cart")
    stage["spec"]["image"] = "europe-west1-docker.pkg.dev/acme-konfig/ecommerce/cart:latest"
    view = build_view(resources, system_namespace=SYSTEM, library=library)
    # The stage instance is checked as an override of the prod representative, yet only the
    # stage resource is blamed.
    assert view.valid and set(view.isolated) == {Ref("Workload", "ecommerce-stage", "cart")}
    problems = view.isolated[Ref("Workload", "ecommerce-stage", "cart")].problems
    assert any("pinned by digest" in p.message and "'stage'" in p.message for p in problems)


def texts(view, ref):
    return [describe_problem(p) for p in view.isolated[ref].problems]


def test_an_invalid_workload_is_isolated_and_the_rest_compiles(resources, library, example_state):
    find(resources, "Workload", "stores-dev", "pos-gateway")["spec"]["resources"][0]["template"] = "nope"
    find(resources, "Workload", "payments-stage", "payments-api")["spec"]["domain"] = "stores"
    view = build_view(resources, system_namespace=SYSTEM, library=library)
    assert view.valid and not view.problems
    pos, api = Ref("Workload", "stores-dev", "pos-gateway"), Ref("Workload", "payments-stage", "payments-api")
    assert set(view.isolated) == {pos, api}
    assert any(t.startswith("Workload stores-dev/pos-gateway: spec.resources[0].template:")
               and "'nope'" in t for t in texts(view, pos))
    assert any(t.startswith("Workload payments-stage/payments-api: spec.domain:") for t in texts(view, api))
    assert not view.isolated[pos].held and view.excluded() == {
        pos: ("stores", "pos-gateway", "dev"), api: ("payments", "payments-api", "stage")}
    # Everything else renders exactly as before; the isolated instances not at all.
    state = compile_definitions(view.definitions)
    def place(o):
        labels = o["metadata"].get("labels") or {}
        return labels.get("konfig-domain"), labels.get("konfig-workload"), labels.get("konfig-environment")
    isolated = set(view.excluded().values())
    assert not any(place(o) in isolated for o in state.kubernetes)
    expected = [o for o in example_state.kubernetes if place(o) not in isolated
                and not (o["kind"] == "IAMPolicyMember" and o["spec"].get("member", "").startswith(
                    "serviceAccount:wl-pos-gateway@") and o["metadata"]["namespace"] == "payments-dev")]
    assert len(expected) < len(example_state.kubernetes) - 1
    assert list(state.kubernetes) == expected
    assert state.gitlab == example_state.gitlab  # from the Domains: unaffected
    # The prune keeps their live objects, and the invoker grant payments-api gives pos-gateway.
    keep = isolated_objects(view)
    kept = [o for o in example_state.kubernetes if keep(o)]
    assert kept and all(place(o) in isolated or o["kind"] == "IAMPolicyMember" for o in kept)
    assert any(o["metadata"]["namespace"] == "payments-dev" and "pos-gateway" in o["spec"].get("member", "")
               for o in kept)
    assert not [o for o in state.kubernetes if keep(o)]  # nothing desired is "kept"


def test_a_dependent_of_an_excluded_workload_is_isolated_in_turn(resources, library):
    for r in resources:
        r["metadata"]["uid"] = f"uid-{r['kind']}-{r['metadata']['namespace']}-{r['metadata']['name']}"
    good = build_view(copy.deepcopy(resources), system_namespace=SYSTEM, library=library)
    for env in ("dev", "stage", "prod"):  # every instance of cart broken: cart is gone
        find(resources, "Workload", f"ecommerce-{env}", "cart")["spec"]["scaling"] = {"min": "x"}
    view = build_view(resources, system_namespace=SYSTEM, library=library)
    assert view.valid
    carts = {Ref("Workload", f"ecommerce-{env}", "cart") for env in ("dev", "stage", "prod")}
    checkouts = {Ref("Workload", f"ecommerce-{env}", "checkout") for env in ("dev", "stage", "prod")}
    assert set(view.isolated) == carts | checkouts
    assert all("'cart'" in " ".join(texts(view, r)) and "not defined" in " ".join(texts(view, r))
               for r in checkouts)
    # With the last valid model of each cart (a previous pass compiled them), nothing cascades:
    # cart keeps its last state and checkout is fine.
    last_valid = {f"uid-Workload-{ref.namespace}-{ref.name}": good.current[ref] for ref in carts}
    view = build_view(resources, system_namespace=SYSTEM, library=library, last_valid=last_valid)
    assert set(view.isolated) == carts and all(i.held for i in view.isolated.values())
    assert view.excluded() == {} and isolated_objects(view) is None
    assert compile_definitions(view.definitions).kubernetes == compile_definitions(good.definitions).kubernetes


def test_compile_problems_blamed_on_a_workload_exclude_it(resources, library):
    ref = Ref("Workload", "ecommerce-dev", "cart")
    problem = Problem(Location(str(ref), 0, "spec.resources[0]"), "cannot render")
    view = build_view(resources, system_namespace=SYSTEM, library=library, rejected={ref: [problem]})
    assert view.valid and view.excluded() == {ref: ("ecommerce", "cart", "dev")}
    assert view.isolated[ref].problems == (problem,)


def test_a_platform_problem_invalidates_everything(resources, library):
    find(resources, "Domain", SYSTEM, "stores")["spec"]["platform"] = "nope"
    find(resources, "Workload", "payments-dev", "payments-api")["spec"]["domain"] = "stores"
    view = build_view(resources, system_namespace=SYSTEM, library=library)
    assert view.definitions is None and not view.isolated
    texts_ = view.problem_texts()
    assert any(t.startswith("Domain konfig-system/stores: spec.platform:") for t in texts_)
    assert any(t.startswith("Workload payments-dev/payments-api: spec.domain:") for t in texts_)


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
