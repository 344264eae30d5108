"""`konfig plan` over the example organisation: CRD validation of every Config Connector
object, the JSON shape, the manifests folder, and the editor schema."""

from __future__ import annotations

import copy
import json

import jsonschema
import yaml
from typer.testing import CliRunner

from cli import app
from konfig.kcc_schema import validate_object

runner = CliRunner()


def _kcc(state):
    return [o for o in state.kubernetes if o["apiVersion"].split("/")[0].endswith(".cnrm.cloud.google.com")]


def test_every_config_connector_object_validates_against_its_crd(example_state):
    objects = _kcc(example_state)
    assert len(objects) > 300
    failures = {f"{o['metadata'].get('namespace')}/{o['kind']}/{o['metadata']['name']}": validate_object(o)
                for o in objects}
    assert {k: v for k, v in failures.items() if v} == {}


def test_unknown_field_in_a_rendered_object_is_caught(example_state):
    run = copy.deepcopy(next(o for o in example_state.kubernetes if o["kind"] == "RunService"))
    run["spec"]["template"]["replicas"] = 3  # not a RunService field: Kubernetes would drop it
    assert any("replicas" in m for m in validate_object(run))


def test_plan_json_shape(definitions_dir):
    result = runner.invoke(app, ["plan", str(definitions_dir), "--json"])
    assert result.exit_code == 0, result.output
    plan = json.loads(result.stdout)
    kinds = {o["kind"] for o in plan["kubernetes"]}
    assert {"Namespace", "ConfigConnectorContext", "Folder", "Project", "RunService"} <= kinds
    group = plan["gitlab"]["groups"][0]
    assert {"full_path", "name", "saml_group_links", "variables"} <= set(group)
    assert all({"saml_group_name", "access_level"} == set(l) for g in plan["gitlab"]["groups"]
               for l in g["saml_group_links"])
    assert all("path_with_namespace" in p for p in plan["gitlab"]["projects"])


def test_plan_out_writes_a_folder_per_namespace(definitions_dir, tmp_path, example_state):
    result = runner.invoke(app, ["plan", str(definitions_dir), "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    namespaces = {o["metadata"]["name"] for o in example_state.kubernetes if o["kind"] == "Namespace"}
    assert {p.name for p in tmp_path.iterdir()} == namespaces
    written = [d for f in tmp_path.rglob("*.yaml") for d in yaml.safe_load_all(f.read_text())]
    assert len(written) == len(example_state.kubernetes)


def test_plan_prints_the_three_trees(definitions_dir):
    result = runner.invoke(app, ["plan", str(definitions_dir)], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    for heading in ("GCP (", "GitLab https://", "Cluster (", "Totals"):
        assert heading in result.stdout
    assert "acme-shop-prod" in result.stdout  # the adopted project ID override


def test_schema_command_validates_real_definitions(definitions_dir):
    result = runner.invoke(app, ["schema"])
    assert result.exit_code == 0
    schema = json.loads(result.stdout)
    validator = jsonschema.Draft202012Validator(schema)
    for file in definitions_dir.rglob("*.yaml"):
        for doc in yaml.safe_load_all(file.read_text()):
            assert not list(validator.iter_errors(doc)), file
    bad = {"apiVersion": "konfig.dev/v1alpha1", "kind": "Domain", "metadata": {"name": "x"},
           "spec": {"platform": "p", "bogus": 1}}
    assert list(validator.iter_errors(bad))


def test_schema_for_one_kind_and_unknown_kind():
    assert json.loads(runner.invoke(app, ["schema", "--kind", "Workload"]).stdout)["title"] == "Workload"
    result = runner.invoke(app, ["schema", "--kind", "Gadget"])
    assert result.exit_code == 2 and "unknown kind" in result.output
