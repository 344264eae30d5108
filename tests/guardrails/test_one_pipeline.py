"""`konfig validate` runs everything `konfig plan`, `konfig apply` and the operator run
(konfig.pipeline.desired_state), so what plan refuses, validate refuses too, located at the
YAML that caused it (never `<compiled>:0` or `<rendered>:0`, never a pydantic URL)."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from tests.core.orgs import CONTROL_PLANE, DOMAIN, WORKLOAD
from tests.guardrails.helpers import TEMPLATE, problem_at, validate, write_tree


def both(root) -> tuple[list[str], list[str]]:
    """The problems validate and plan print for ``root``; both must fail."""
    from cli import app

    code, validate_lines = validate(root)
    assert code == 1, validate_lines
    planned = CliRunner().invoke(app, ["plan", str(root)])
    assert planned.exit_code == 1
    return validate_lines, [line for line in planned.output.splitlines() if line.strip()]


def assert_located(lines: list[str]) -> None:
    text = "\n".join(lines)
    assert "<compiled>" not in text and "<rendered>" not in text and "pydantic" not in text, text


def test_bad_workload_params_fail_validate_at_the_request(tmp_path):
    workload = WORKLOAD.replace("{name: receipts, template: storage-bucket, access: write}",
                                "{name: receipts, template: storage-bucket, access: write, "
                                "params: {deleteAfterDays: soon}}")
    validated, planned = both(write_tree(tmp_path, None, **{"workload.yaml": workload}))
    assert_located(validated)
    assert "'soon' is not of type 'integer'" in problem_at(
        validated, "workload.yaml", "spec.resources[0].params.deleteAfterDays")
    assert validated[:-1] == planned[:-1]


def test_an_override_breaking_scaling_fails_validate_in_plain_words(tmp_path):
    workload = WORKLOAD + "  scaling: {min: 0, max: 2}\n  environments:\n    prod: {scaling: {min: 5}}\n"
    validated, _ = both(write_tree(tmp_path, None, **{"workload.yaml": workload}))
    assert_located(validated)
    message = problem_at(validated, "workload.yaml", "spec.environments.prod")
    assert "min (5) must not exceed max (2)" in message


def test_domains_whose_namespaces_collide_fail_validate_naming_both(tmp_path):
    plane = CONTROL_PLANE.replace(
        "    - {name: dev}\n    - {name: stage}\n    - {name: prod, production: true}\n",
        "    - {name: eu}\n    - {name: x-eu, production: true}\n")
    shop = DOMAIN.replace("name: ecommerce", "name: shop").replace("  workloads: [checkout]\n", "")
    shop_x = (DOMAIN.replace("name: ecommerce", "name: shop-x").replace("  workloads: [checkout]\n", "")
              + "  projectIds: {eu: acme-shopx-eu}\n")
    validated, _ = both(write_tree(tmp_path, None, **{
        "control-plane.yaml": plane, "shop.yaml": shop, "shop-x.yaml": shop_x,
        "workload.yaml": WORKLOAD.replace("image: us-docker", "# image: us-docker")}))
    assert_located(validated)
    assert "'shop-x-eu', is also the namespace of domain 'shop-x'" in problem_at(
        validated, "shop.yaml", "metadata.name")
    assert "'shop-x-eu', is also the namespace of domain 'shop'" in problem_at(
        validated, "shop-x.yaml", "metadata.name")


def test_a_crd_violation_of_a_rendered_object_points_at_the_template(tmp_path):
    text = TEMPLATE.replace("location: EU", "location: EU\n          versionning: {enabled: true}")
    validated, planned = both(write_tree(tmp_path, text))
    assert_located(validated)
    assert_located(planned)
    message = problem_at(validated, "templates/box.yaml", "spec.resources[0].template.spec.versionning")
    assert "unknown field" in message


def test_plan_on_a_valid_tree_succeeds_when_validate_does(tmp_path):
    from cli import app

    root = write_tree(tmp_path)
    code, lines = validate(root)
    assert code == 0, lines
    assert CliRunner().invoke(app, ["plan", str(root)]).exit_code == 0


@pytest.mark.parametrize("entry", ["validate", "plan", "apply", "operator"])
def test_every_entry_point_runs_the_same_pipeline(entry):
    """The commands and the operator call konfig.pipeline.desired_state (no second path that
    could skip the CRD check or the policy)."""
    import inspect

    from konfig.commands import core
    from konfig.operator import reconciler

    source = {
        "validate": inspect.getsource(core.validate),
        "plan": inspect.getsource(core.plan),
        "apply": inspect.getsource(__import__("konfig.commands.kube", fromlist=["x"]).apply_command),
        "operator": inspect.getsource(reconciler.Reconciler._compile),
    }[entry]
    assert "compile_or_exit" in source or "desired_state(" in source
    assert "desired_state(" in inspect.getsource(core.compile_or_exit)
