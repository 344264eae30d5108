"""Bad input is reported as ``file:line: field: message``, every problem in one run."""

from __future__ import annotations

import pytest

from konfig.errors import DefinitionError
from konfig.load import load_definitions
from tests.core.orgs import CONTROL_PLANE, DOMAIN, PLATFORM, WORKLOAD, write_org


def problems_of(tmp_path, **files) -> list[str]:
    write_org(tmp_path, **files)
    with pytest.raises(DefinitionError) as info:
        load_definitions(tmp_path)
    return [str(p) for p in info.value.problems]


def test_minimal_org_is_valid(tmp_path):
    defs = load_definitions(write_org(tmp_path))
    assert defs.control_plane.name == "acme"
    assert list(defs.domains) == ["ecommerce"]
    assert ("ecommerce", "checkout") in defs.workloads
    assert "storage-bucket" in defs.templates  # the bundled library is loaded


# (file, old text, new text, expected "file:line: field: message" fragment)
CASES = [
    ("workload.yaml", "spec:\n", "spec:\n  replicas: 3\n", "workload.yaml:5: spec.replicas: unknown field"),
    ("workload.yaml", "name: checkout", "name: Checkout", "workload.yaml:3: metadata.name: String should match pattern"),
    ("workload.yaml", "name: checkout", "name: " + "c" * 25, "workload.yaml:3: metadata.name: String should have at most 24 characters"),
    ("domain.yaml", "name: ecommerce", "name: " + "e" * 21, "domain.yaml:3: metadata.name: String should have at most 20 characters"),
    ("control-plane.yaml", "{name: dev}", "{name: development}", "control-plane.yaml:12: spec.environments[0].name: String should have at most 8 characters"),
    ("control-plane.yaml", "billingAccount: 012345-6789AB-CDEF01", "billingAccount: 'ABC-123'", "control-plane.yaml:7: spec.gcp.billingAccount: String should match pattern"),
    ("control-plane.yaml", "parent: organizations/123456789012", "parent: org/1", "control-plane.yaml:6: spec.gcp.parent"),
    ("domain.yaml", "platform: retail", "platform: wholesale", "domain.yaml:5: spec.platform: platform 'wholesale' is not defined"),
    ("workload.yaml", "domain: ecommerce", "domain: shop", "workload.yaml:6: spec.domain: domain 'shop' is not defined"),
    ("workload.yaml", "template: storage-bucket", "template: nosql", "workload.yaml:9: spec.resources[0].template: resource template 'nosql' does not exist"),
    ("workload.yaml", "access: write", "access: godmode", "workload.yaml:9: spec.resources[0].access: template 'storage-bucket' offers access"),
    ("domain.yaml", "workloads: [checkout]", "environments: [prod, dev]\n  workloads: [checkout]", "domain.yaml:8: spec.environments: environments must follow the control plane's order"),
    ("domain.yaml", "workloads: [checkout]", "environments: [dev, qa]\n  workloads: [checkout]", "domain.yaml:8: spec.environments[1]: 'qa' is not among the control plane's environments"),
    ("platform.yaml", "spec:\n", "spec:\n  services: [bigquery.googleapis.com]\n", "platform.yaml:5: spec.services[0]: 'bigquery.googleapis.com' is not among the control plane's services"),
    ("workload.yaml", "kind: Workload", "kind: Workloads", "workload.yaml:2: kind: unknown kind 'Workloads'"),
    ("workload.yaml", "apiVersion: konfig.dev/v1alpha1", "apiVersion: konfig.dev/v2", "workload.yaml:1: apiVersion: must be 'konfig.dev/v1alpha1'"),
    ("domain.yaml", "role: developer", "role: admin", "domain.yaml:7: spec.groups[0].role: Input should be 'viewer', 'developer', 'maintainer' or 'owner'"),
    ("domain.yaml", "group: ecommerce-devs@acme.com", "group: ecommerce-devs", "domain.yaml:7: spec.groups[0].group: String should match pattern"),
    ("workload.yaml", "@sha256:", ":latest@sha256:", None),  # tag+digest is fine
    ("workload.yaml", "checkout@sha256:" + "a" * 64, "checkout:1.2.3", "workload.yaml:7: spec.image: image must be pinned by digest (@sha256:...) in environment 'stage'"),
    ("workload.yaml", "resources:", "scaling: {min: 5, max: 2}\n  resources:", "workload.yaml:8: spec.scaling: min (5) must not exceed max (2)"),
    ("domain.yaml", "workloads: [checkout]", "workloads: [checkout]\n  projectIds: {prod: Bad_Project}", "domain.yaml:9: spec.projectIds.prod: project ID 'Bad_Project' must be lowercase"),
    ("domain.yaml", "workloads: [checkout]", "workloads: [checkout]\n  projectIds: {qa: acme-shop-qa}", "domain.yaml:9: spec.projectIds.qa"),
    ("workload.yaml", "resources:", "dependencies: [{workload: nobody}]\n  resources:", "workload.yaml:8: spec.dependencies[0]: workload 'nobody' in domain 'ecommerce' is not defined"),
    ("control-plane.yaml", "maxDuration", "maxDuration", None),
    ("control-plane.yaml", "  groups:\n", "  breakGlass: {maxDuration: forever}\n  groups:\n", "control-plane.yaml:16: spec.breakGlass.maxDuration: duration 'forever' must be a whole number and a unit"),
    ("platform.yaml", "metadata: {name: retail}", "metadata: {name: retail}\nspec:\n  displayName: R", None),
    ("workload.yaml", "spec:\n", "spec:\n  environments: {qa: {scaling: {min: 1}}}\n", "workload.yaml:5: spec.environments.qa: 'qa' is not an environment of domain 'ecommerce'"),
]

BASE = {"control-plane.yaml": CONTROL_PLANE, "platform.yaml": PLATFORM, "domain.yaml": DOMAIN,
        "workload.yaml": WORKLOAD}


@pytest.mark.parametrize("file, old, new, expected", [c for c in CASES if c[3]],
                         ids=[c[3].split(": ", 1)[0] + ":" + c[3].split(": ")[1] for c in CASES if c[3]])
def test_bad_input_is_located(tmp_path, file, old, new, expected):
    assert old in BASE[file], "test case does not apply to the base organisation"
    problems = problems_of(tmp_path, **{file: BASE[file].replace(old, new, 1)})
    assert any(p.startswith(expected) for p in problems), problems
    assert not any("no ControlPlane definition found" in p for p in problems)


def test_folder_display_name_too_short(tmp_path):
    text = PLATFORM.replace("spec:\n", "spec:\n  displayName: R\n")
    problems = problems_of(tmp_path, **{"platform.yaml": text})
    assert any("platform.yaml:5: spec.displayName: folder display name 'R' is 1 characters" in p
               for p in problems), problems


def test_every_problem_is_reported_in_one_run(tmp_path):
    problems = problems_of(
        tmp_path,
        **{
            "workload.yaml": WORKLOAD.replace("spec:\n", "spec:\n  bogus: 1\n"),
            "domain.yaml": DOMAIN.replace("platform: retail", "platform: nowhere"),
            "extra.yaml": "apiVersion: konfig.dev/v1alpha1\nkind: Gadget\nmetadata: {name: x}\n",
        },
    )
    assert len(problems) >= 3
    assert any(p.startswith("workload.yaml:5: spec.bogus: unknown field") for p in problems)
    assert any(p.startswith("domain.yaml:5: spec.platform:") for p in problems)
    assert any(p.startswith("extra.yaml:2: kind: unknown kind 'Gadget'") for p in problems)


def test_duplicate_names_point_to_both(tmp_path):
    problems = problems_of(tmp_path, **{"more/domain-again.yaml": DOMAIN})
    assert any(p.startswith("more/domain-again.yaml:3: metadata.name: duplicate Domain 'ecommerce'; "
                            "first defined at domain.yaml:1") for p in problems), problems


def test_yaml_syntax_and_duplicate_keys(tmp_path):
    problems = problems_of(tmp_path, **{
        "broken.yaml": "apiVersion: konfig.dev/v1alpha1\nkind: [\n",
        "platform.yaml": PLATFORM + "metadata: {name: again}\n",
    })
    assert any(p.startswith("broken.yaml:3: invalid YAML") for p in problems), problems
    assert any(p.startswith("platform.yaml:6: metadata: duplicate key") for p in problems), problems


def test_missing_control_plane_and_multiple(tmp_path):
    assert any("no ControlPlane definition found" in p
               for p in problems_of(tmp_path, **{"control-plane.yaml": None}))


def test_second_control_plane(tmp_path):
    other = CONTROL_PLANE.replace("name: acme}", "name: other}")
    problems = problems_of(tmp_path, **{"z-other.yaml": other})
    assert any(p.startswith("z-other.yaml:3: metadata.name: a second ControlPlane ('other')") for p in problems)


def test_project_id_collision_and_length(tmp_path):
    domain2 = DOMAIN.replace("name: ecommerce", "name: shop").replace(
        "workloads: [checkout]", "workloads: []\n  projectIds: {dev: acme-ecommerce-dev}")
    problems = problems_of(tmp_path, **{"domain2.yaml": domain2})
    assert any("project ID 'acme-ecommerce-dev' is also used by domain 'ecommerce' environment 'dev'" in p
               for p in problems), problems


def test_short_project_id_without_prefix(tmp_path):
    cp = CONTROL_PLANE.replace("    projectIdPrefix: acme-\n", "")
    domain = DOMAIN.replace("name: ecommerce", "name: ab").replace("workloads: [checkout]", "workloads: []")
    problems = problems_of(tmp_path, **{"control-plane.yaml": cp, "domain.yaml": domain,
                                        "workload.yaml": None})
    assert any("domain.yaml:3: metadata.name: project ID 'ab-qa'" in p or
               "project ID 'ab-dev' is 6" in p or "ci-ab" in p or
               "domain.yaml:3: metadata.name: folder display name 'ab'" in p
               for p in problems), problems


def test_visibility_must_admit_dependency(tmp_path):
    other_domain = DOMAIN.replace("name: ecommerce", "name: payments").replace("[checkout]", "[api]")
    api = WORKLOAD.replace("name: checkout", "name: api").replace("domain: ecommerce", "domain: payments")
    checkout = WORKLOAD.replace("resources:", "dependencies: [{workload: api, domain: payments}]\n  resources:")
    problems = problems_of(tmp_path, **{"payments.yaml": other_domain, "api.yaml": api,
                                        "workload.yaml": checkout})
    assert any(p.startswith("workload.yaml:8: spec.dependencies[0]: payments/api has visibility 'domain', "
                            "which does not admit callers from retail/ecommerce") for p in problems), problems


def test_never_a_traceback_from_the_cli(tmp_path):
    from typer.testing import CliRunner

    from cli import app

    write_org(tmp_path, **{"workload.yaml": WORKLOAD.replace("spec:\n", "spec:\n  bogus: 1\n")})
    result = CliRunner().invoke(app, ["validate", str(tmp_path)])
    assert result.exit_code == 1
    assert "Traceback" not in result.output
    assert "spec.bogus" in result.output and "unknown field" in result.output
