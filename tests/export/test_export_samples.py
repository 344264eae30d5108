"""The upstream Config Connector samples (data/samples, see data/SOURCE.md) through the
Terraform export, all in one namespace: every sample converts, Terraform parses the result
and every reference resolves."""

from __future__ import annotations

from pathlib import Path

import pytest
from export_helpers import DATA, ParsedConfig, load_yaml_docs, parse_terraform_dir

from konfig.export import export_terraform, write_files

SUBSTITUTIONS = {"PROJECT_ID": "my-project", "FOLDER_ID": "123", "ORG_ID": "456", "PROJECT_NUMBER": "789"}


def _samples() -> list[dict]:
    objects = [
        {"apiVersion": "v1", "kind": "Namespace",
         "metadata": {"name": "samples", "annotations": {"cnrm.cloud.google.com/project-id": "my-project"}}}
    ]
    for path in sorted((DATA / "samples").rglob("*.yaml")):
        for doc in load_yaml_docs(path, SUBSTITUTIONS):
            doc["metadata"]["namespace"] = "samples"
            objects.append(doc)
    return objects


@pytest.fixture(scope="module")
def export():
    return export_terraform(_samples())


@pytest.fixture(scope="module")
def parsed(export, tmp_path_factory) -> ParsedConfig:
    out = tmp_path_factory.mktemp("samples")
    write_files(out, export.files())
    return parse_terraform_dir(out)


def test_every_sample_converts(export, parsed: ParsedConfig) -> None:
    assert export.problems == []
    assert [(s.key.kind, s.key.name) for s in export.skipped] == [
        ("Namespace", "samples"),
        ("Secret", "runservice-dep-secret"),
    ]
    parsed.check_references()
    assert len(parsed.resources) == len(_samples()) - 2


@pytest.mark.parametrize(
    ("address", "attribute", "expected"),
    [
        ("google_folder.samples__folder_sample_in_folder", "parent", '"folders/123"'),
        ("google_folder.samples__folder_sample_in_org", "parent", '"organizations/456"'),
        ("google_project.samples__project_sample_in_folder", "folder_id", '"123"'),
        ("google_project.samples__project_sample_in_org", "org_id", '"456"'),
        ("google_project.samples__project_sample_in_org", "auto_create_network", "false"),
        ("google_project_iam_member.samples__iampolicymember_sample_projlevel", "project", '"my-project"'),
        (
            "google_pubsub_topic_iam_member.samples__iampolicymember_sample_pubsubadmin",
            "topic",
            "google_pubsub_topic.samples__iampolicymember_dep_pubsubadmin.name",
        ),
        (
            "google_pubsub_topic.samples__pubsubtopic_sample",
            "schema_settings.schema",
            '"projects/${google_pubsub_schema.samples__pubsubtopic_dep.project}/schemas/'
            '${google_pubsub_schema.samples__pubsubtopic_dep.name}"',
        ),
        ("google_pubsub_schema.samples__pubsubtopic_dep", "project", '"my-project"'),
        ("google_cloud_run_v2_service.samples__runservice_sample_basic", "project", '"my-project"'),
        ("google_cloud_run_v2_service.samples__runservice_sample_basic", "template.scaling.max_instance_count", "2"),
        (
            "google_cloud_run_v2_service.samples__runservice_sample_secret",
            "template.volumes.secret.secret",
            "google_secret_manager_secret.samples__runservice_dep_secret.name",
        ),
        (
            "google_cloud_run_v2_service.samples__runservice_sample_secret",
            "template.volumes.secret.items.version",
            "google_secret_manager_secret_version.samples__runservice_dep_secret.version",
        ),
        (
            "google_cloud_run_v2_service.samples__runservice_sample_serviceaccount",
            "template.service_account",
            "google_service_account.samples__runservice_dep_serviceaccount.email",
        ),
        ("google_storage_bucket.samples__my_project_sample", "versioning.enabled", "true"),
        ("google_storage_bucket.samples__my_project_sample", "cors.method", '["GET", "HEAD", "DELETE"]'),
        ("google_sql_database_instance.samples__sqlinstance_sample_mysql", "settings.tier", '"db-f1-micro"'),
    ],
)
def test_sample_arguments(parsed: ParsedConfig, address: str, attribute: str, expected: str) -> None:
    assert parsed.attribute(address, attribute) == expected


def test_secret_version_data_is_a_sensitive_variable(parsed: ParsedConfig) -> None:
    address = "google_secret_manager_secret_version.samples__runservice_dep_secret"
    assert parsed.attribute(address, "secret") == "google_secret_manager_secret.samples__runservice_dep_secret.name"
    reference = parsed.attribute(address, "secret_data")
    variable = parsed.variables[reference.removeprefix("var.")]
    assert variable["Sensitive"] is True and "runservice-dep-secret" in variable["Description"]


def test_resources_with_server_generated_ids_get_no_import_but_a_warning(export, parsed: ParsedConfig) -> None:
    # A secret version's number is assigned by Google; without it there is nothing to import.
    address = "google_secret_manager_secret_version.samples__runservice_dep_secret"
    assert address not in parsed.imports()
    assert any("SecretManagerSecretVersion samples/runservice-dep-secret: import ID" in w for w in export.warnings)
    assert set(parsed.imports()) == set(parsed.resources) - {address}


def test_placeholders_left_in_a_sample_parse(tmp_path: Path) -> None:
    # Unsubstituted "${PROJECT_ID?}" must be escaped, not read as a Terraform interpolation.
    objects = load_yaml_docs(DATA / "samples" / "iampolicymember" / "external-project-level-policy-member" / "iam_v1beta1_iampolicymember.yaml")
    export = export_terraform(objects)
    write_files(tmp_path, export.files())
    config = parse_terraform_dir(tmp_path)
    config.check_references()
    assert config.attribute("google_project_iam_member.iampolicymember_sample_projlevel", "project") == '"$${PROJECT_ID?}"'
