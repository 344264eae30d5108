"""Reconcile units (pure): what a change marks, and that a unit's scoped compile renders
exactly the unit's objects of a whole compile."""

from __future__ import annotations

import copy

import pytest

from konfig.compile import compile_definitions
from konfig.errors import Location, Problem
from konfig.kube.custom_resources import custom_resources
from konfig.kube.owners import Ref
from konfig.load import bundled_templates
from konfig.operator.cluster import build_view
from konfig.operator.decide import unit_outcome
from konfig.operator.reconciler import _compiled_part
from konfig.operator.outcome import Ready, Retry, Stalled, Waiting, combine
from konfig.operator.units import (
    CONTROL_PLANE,
    UnitIndex,
    affected,
    domain_unit,
    scope,
    unit_of_object,
    unit_of_resource,
)

from bench.plan import generate
from konfig.load import load_definitions

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


def assert_scoped_compiles_match(resources, library):
    whole = compile_definitions(build_view(resources, system_namespace=SYSTEM,
                                           library=library).definitions).kubernetes
    for unit in UnitIndex.of(resources).units():
        view = build_view(scope(resources, [unit]), system_namespace=SYSTEM, library=library)
        assert view.valid, (unit, view.problem_texts())
        part = _compiled_part(view.definitions, [unit])  # what a pass over the unit compiles
        got = [o for o in compile_definitions(part).kubernetes if unit_of_object(o) == unit]
        assert got == [o for o in whole if unit_of_object(o) == unit], unit
        assert got, unit


def test_each_units_scoped_compile_renders_its_objects_of_the_whole(resources, library):
    assert_scoped_compiles_match(resources, library)


def test_scoped_compiles_match_on_a_generated_organisation(library, tmp_path):
    generate(tmp_path, 12)
    defs = load_definitions(tmp_path)
    assert_scoped_compiles_match(custom_resources(defs), library)


def test_a_domain_scope_is_small(resources):
    picked = scope(resources, [domain_unit("fulfilment")])
    workloads = {(r["metadata"]["namespace"], r["metadata"]["name"]) for r in picked
                 if r["kind"] == "Workload"}
    assert {ns.split("-")[0] for ns, _ in workloads} <= {"fulfilment", "inventory", "payments",
                                                        "ecommerce", "stores"}
    assert ("fulfilment-dev", "dispatcher") in workloads
    assert len(workloads) < len([r for r in resources if r["kind"] == "Workload"])
    assert scope(resources, [CONTROL_PLANE]) == resources


def test_what_a_change_marks(resources):
    index = UnitIndex.of(resources)
    cart = find(resources, "Workload", "ecommerce-dev", "cart")
    # checkout (same domain) calls cart: only ecommerce
    assert affected(index, "Workload", "cart", cart, cart) == {domain_unit("ecommerce")}
    payments = find(resources, "Workload", "payments-dev", "payments-api")
    marked = affected(index, "Workload", "payments-api", payments, payments)
    assert domain_unit("payments") in marked and domain_unit("ecommerce") in marked  # a caller
    assert domain_unit("fulfilment") not in marked
    public = copy.deepcopy(cart)
    public["spec"].setdefault("ingress", {})["visibility"] = "external"
    assert CONTROL_PLANE in affected(index, "Workload", "cart", cart, public)
    assert CONTROL_PLANE in affected(index, "Workload", "cart", public, cart)


def test_a_workload_that_control_plane_objects_depend_on_marks_the_control_plane(example_defs):
    """Whatever a workload changes among the control plane's own objects (load balancers,
    routes), a change of it marks the control-plane unit: checked by removing each workload."""
    base = [o for o in compile_definitions(example_defs).kubernetes
            if unit_of_object(o) == CONTROL_PLANE]
    resources = custom_resources(example_defs)
    index = UnitIndex.of(resources)
    for key, workload in example_defs.workloads.items():
        rest = copy.copy(example_defs)
        rest.workloads = {k: v for k, v in example_defs.workloads.items() if k != key}
        rest.workload_instances = {k: v for k, v in example_defs.workload_instances.items()
                                   if k[:2] != key}
        try:
            cp = [o for o in compile_definitions(rest).kubernetes
                  if unit_of_object(o) == CONTROL_PLANE]
        except Exception:  # noqa: BLE001 - callers of it no longer compile: not this test's
            continue
        if cp != base:
            body = next(r for r in resources if r["kind"] == "Workload"
                        and (r["spec"]["domain"], r["metadata"]["name"]) == key)
            assert CONTROL_PLANE in affected(index, "Workload", key[1], body, body), key
    assert affected(index, "ResourceTemplate", "redis", None, None) == {
        CONTROL_PLANE, domain_unit("ecommerce")}
    assert affected(index, "ResourceTemplate", "unused", None, None) == {CONTROL_PLANE}
    assert affected(index, "Domain", "stores", None, None) == {CONTROL_PLANE, domain_unit("stores")}
    assert affected(index, "Platform", "supply-chain", None, None) == {
        CONTROL_PLANE, domain_unit("inventory"), domain_unit("fulfilment")}
    assert affected(index, "ControlPlane", "acme", None, None) == set(index.units())


def test_units_of_objects_and_resources(example_state):
    units = {unit_of_object(o) for o in example_state.kubernetes}
    assert units == {CONTROL_PLANE, *(domain_unit(d) for d in
                                      ("ecommerce", "fulfilment", "inventory", "payments", "stores"))}
    assert unit_of_resource(Ref("Workload", "stores-dev", "x"), {"spec": {"domain": "stores"}}) == \
        domain_unit("stores")
    assert unit_of_resource(Ref("ResourceTemplate", SYSTEM, "redis"), {}) == CONTROL_PLANE


def test_outcomes_combine_and_a_unit_with_a_held_workload_is_stalled(resources, library):
    assert combine() == Ready()
    assert isinstance(combine(Ready(), Stalled(()), Waiting("x")), Waiting)
    assert isinstance(combine(Waiting("x"), Retry("boom")), Retry)
    find(resources, "Workload", "stores-dev", "pos-gateway")["spec"]["resources"][0]["template"] = "nope"
    view = build_view(resources, system_namespace=SYSTEM, library=library)
    refs = [ref for ref, r in view.resources.items()
            if unit_of_resource(ref, r) == domain_unit("stores")]
    outcome = unit_outcome(view, refs, None, 0, False)
    assert isinstance(outcome, Stalled)
    assert outcome.problems[0].location == Location("Workload stores-dev/pos-gateway", 0,
                                                    "spec.resources[0].template")
    others = [ref for ref, r in view.resources.items()
              if unit_of_resource(ref, r) == domain_unit("ecommerce")]
    assert unit_outcome(view, others, None, 0, False) == Ready()
    assert isinstance(unit_outcome(view, others, None, 2, False), Waiting)
    assert isinstance(unit_outcome(view, others, None, 0, True), Retry)
    assert isinstance(Stalled((Problem(Location("f", 0, "x"), "m"),)).reason, str)
