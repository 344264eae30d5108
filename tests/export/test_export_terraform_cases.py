"""Single behaviours of the Terraform export, on small hand-written objects."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from export_helpers import parse_terraform_dir

from konfig.export import export_terraform, write_files
from konfig.export.hcl import render_block


def kcc(kind: str, group: str, name: str, spec: dict[str, Any] | None = None, namespace: str = "team",
        annotations: dict[str, str] | None = None, status: dict[str, Any] | None = None) -> dict[str, Any]:
    obj: dict[str, Any] = {
        "apiVersion": f"{group}.cnrm.cloud.google.com/v1beta1",
        "kind": kind,
        "metadata": {"name": name, "namespace": namespace},
        "spec": spec or {},
    }
    if annotations:
        obj["metadata"]["annotations"] = annotations
    if status:
        obj["status"] = status
    return obj


def namespace(name: str = "team", project: str | None = "team-project") -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name}
    if project:
        meta["annotations"] = {"cnrm.cloud.google.com/project-id": project}
    return {"apiVersion": "v1", "kind": "Namespace", "metadata": meta}


def parsed(tmp_path: Path, objects: list[dict[str, Any]]):
    export = export_terraform(objects)
    assert export.problems == []
    write_files(tmp_path, export.files())
    config = parse_terraform_dir(tmp_path)
    config.check_references()
    return export, config


def test_reference_to_an_object_outside_the_export_is_a_literal_with_a_warning(tmp_path: Path) -> None:
    sub = kcc("PubSubSubscription", "pubsub", "audit", {"topicRef": {"name": "events"}})
    export, config = parsed(tmp_path, [namespace(), sub])
    assert config.attribute("google_pubsub_subscription.team__audit", "topic") == '"projects/team-project/topics/events"'
    assert any("PubSubTopic team/events is not exported" in w for w in export.warnings)
    assert "PubSubTopic team/events is not exported" in (tmp_path / "README.md").read_text()


def test_reference_needing_a_computed_value_of_a_missing_object_is_a_problem() -> None:
    # A KMS key's self link cannot be derived from its name alone (key ring, location).
    run = kcc("RunService", "run", "api", {"location": "europe-west1", "template": {
        "encryptionKeyRef": {"name": "ghost"}, "containers": [{"image": "gcr.io/x/y"}]}})
    export = export_terraform([namespace(), run])
    assert export.problems == [
        "RunService team/api: spec.template.encryptionKeyRef: KMSCryptoKey team/ghost is not exported "
        "and its value cannot be derived; give the reference as `external`"
    ]


def test_all_problems_of_a_run_are_reported_together() -> None:
    objects = [
        namespace(),
        kcc("RunService", "run", "a", {"location": "x", "template": {"encryptionKeyRef": {"name": "ghost"}}}),
        kcc("StorageBucket", "storage", "b", {"location": "US", "somethingRef": {"name": "x"}}),
        kcc("IAMPolicyMember", "iam", "m", {"resourceRef": {"kind": "SQLInstance", "name": "db"},
                                             "member": "user:a@b.c", "role": "roles/x"}),
        kcc("IAMPolicyMember", "iam", "n", {"resourceRef": {"kind": "StorageBucket", "name": "b"}, "role": "roles/x"}),
    ]
    problems = export_terraform(objects).problems
    assert len(problems) == 4
    assert any("spec.somethingRef: reference not described by the mapping" in p for p in problems)
    assert any("no Terraform IAM member resource for kind SQLInstance" in p for p in problems)
    assert any("IAMPolicyMember team/n" in p and "exactly one of member or memberFrom" in p for p in problems)


def test_kind_without_mapping_is_skipped_with_its_reason() -> None:
    export = export_terraform([namespace(), kcc("BigtableInstance", "bigtable", "t", {})])
    (skipped,) = export.skipped[1:]
    assert skipped.key.kind == "BigtableInstance"
    assert "no Terraform mapping for kind BigtableInstance" in skipped.reason
    assert export.resources == []


def test_iam_policy_is_skipped_not_converted() -> None:
    policy = kcc("IAMPolicy", "iam", "p", {"resourceRef": {"kind": "Project", "external": "projects/p"},
                                          "bindings": [{"role": "roles/viewer", "members": ["user:a@b.c"]}]})
    export = export_terraform([policy])
    assert [s.key.kind for s in export.skipped] == ["IAMPolicy"]
    assert "IAMPartialPolicy" in export.skipped[0].reason


def test_project_comes_from_the_namespace_name_when_nothing_else_says(tmp_path: Path) -> None:
    export, config = parsed(tmp_path, [namespace("orphans", project=None), kcc("PubSubTopic", "pubsub", "t", namespace="orphans")])
    assert config.attribute("google_pubsub_topic.orphans__t", "project") == '"orphans"'
    assert any("used the namespace name 'orphans'" in w for w in export.warnings)


def test_object_annotation_wins_over_namespace(tmp_path: Path) -> None:
    topic = kcc("PubSubTopic", "pubsub", "t", annotations={"cnrm.cloud.google.com/project-id": "other"})
    _, config = parsed(tmp_path, [namespace(), topic])
    assert config.attribute("google_pubsub_topic.team__t", "project") == '"other"'
    assert config.imports()["google_pubsub_topic.team__t"] == '"projects/other/topics/t"'


def test_folder_read_from_a_cluster_is_imported_by_its_number(tmp_path: Path) -> None:
    folder = kcc("Folder", "resourcemanager", "f", {"displayName": "F", "organizationRef": {"external": "organizations/42"}},
                 status={"folderId": "777", "name": "folders/777"})
    export, config = parsed(tmp_path, [folder])
    assert config.imports()["google_folder.team__f"] == '"folders/777"'
    assert config.attribute("google_folder.team__f", "parent") == '"organizations/42"'
    assert export.variables == []


def test_same_name_in_two_namespaces_gives_two_resources(tmp_path: Path) -> None:
    objects = [namespace("dev", "p-dev"), namespace("prod", "p-prod"),
               kcc("IAMServiceAccount", "iam", "wl-api", namespace="dev"),
               kcc("IAMServiceAccount", "iam", "wl-api", namespace="prod")]
    _, config = parsed(tmp_path, objects)
    assert set(config.resources) == {"google_service_account.dev__wl_api", "google_service_account.prod__wl_api"}
    assert config.attribute("google_service_account.prod__wl_api", "project") == '"p-prod"'


def test_resource_manager_policy_becomes_the_public_resource_per_parent(tmp_path: Path) -> None:
    objects = [
        namespace(),
        kcc("ResourceManagerPolicy", "resourcemanager", "on-project",
            {"constraint": "constraints/compute.disableSerialPortAccess", "booleanPolicy": {"enforced": True},
             "projectRef": {"name": "team-project"}}),
        kcc("ResourceManagerPolicy", "resourcemanager", "on-folder",
            {"constraint": "compute.vmExternalIpAccess", "folderRef": {"external": "folders/123"},
             "listPolicy": {"deny": {"all": True}}}),
        kcc("ResourceManagerPolicy", "resourcemanager", "on-org",
            {"constraint": "constraints/iam.allowedPolicyMemberDomains",
             "organizationRef": {"external": "456"}, "restorePolicy": {"default": True}}),
    ]
    _, config = parsed(tmp_path, objects)
    assert config.imports() == {
        "google_project_organization_policy.team__on_project": '"team-project:constraints/compute.disableSerialPortAccess"',
        "google_folder_organization_policy.team__on_folder": '"folders/123/constraints/compute.vmExternalIpAccess"',
        "google_organization_policy.team__on_org": '"456/constraints/iam.allowedPolicyMemberDomains"',
    }
    assert config.attribute("google_folder_organization_policy.team__on_folder", "folder") == '"folders/123"'
    assert config.attribute("google_organization_policy.team__on_org", "org_id") == '"456"'
    assert config.attribute("google_project_organization_policy.team__on_project", "boolean_policy.enforced") == "true"


def test_policy_without_parent_is_a_problem() -> None:
    policy = kcc("ResourceManagerPolicy", "resourcemanager", "p", {"constraint": "constraints/x"})
    (problem,) = export_terraform([namespace(), policy]).problems
    assert problem == (
        "ResourceManagerPolicy team/p: has no parent; give spec.projectRef, spec.folderRef or spec.organizationRef"
    )


def test_log_sink_on_a_project(tmp_path: Path) -> None:
    sink = kcc("LoggingLogSink", "logging", "audit", {"projectRef": {"external": "team-project"},
               "destination": {"storageBucketRef": {"external": "audit-bucket"}}, "filter": "severity>=ERROR"})
    _, config = parsed(tmp_path, [sink])
    assert config.imports() == {"google_logging_project_sink.team__audit": '"projects/team-project/sinks/audit"'}
    assert config.attribute("google_logging_project_sink.team__audit", "destination") == '"audit-bucket"'


def test_log_sink_destination_to_an_exported_bucket_uses_its_template(tmp_path: Path) -> None:
    bucket = kcc("StorageBucket", "storage", "audit-bucket", {"location": "EU"})
    sink = kcc("LoggingLogSink", "logging", "audit", {"projectRef": {"external": "team-project"},
               "destination": {"storageBucketRef": {"name": "audit-bucket"}}})
    _, config = parsed(tmp_path, [namespace(), bucket, sink])
    assert config.attribute("google_logging_project_sink.team__audit", "destination") == (
        '"storage.googleapis.com/${google_storage_bucket.team__audit_bucket.name}"'
    )


def test_locationality_selects_the_global_or_regional_resource(tmp_path: Path) -> None:
    objects = [namespace(), kcc("ComputeAddress", "compute", "lb", {"location": "global"}),
               kcc("ComputeAddress", "compute", "nat", {"location": "europe-west1"})]
    _, config = parsed(tmp_path, objects)
    assert config.imports() == {
        "google_compute_global_address.team__lb": '"projects/team-project/global/addresses/lb"',
        "google_compute_address.team__nat": '"projects/team-project/regions/europe-west1/addresses/nat"',
    }
    assert config.attribute("google_compute_address.team__nat", "region") == '"europe-west1"'
    assert not config.has_attribute("google_compute_global_address.team__lb", "location")


def test_iam_member_with_service_account_outside_the_export(tmp_path: Path) -> None:
    member = kcc("IAMPolicyMember", "iam", "m", {
        "resourceRef": {"kind": "Project", "external": "projects/team-project"},
        "memberFrom": {"serviceAccountRef": {"name": "wl-x"}}, "role": "roles/viewer"})
    export, config = parsed(tmp_path, [namespace(), member])
    assert config.attribute("google_project_iam_member.team__m", "member") == (
        '"serviceAccount:wl-x@team-project.iam.gserviceaccount.com"'
    )
    assert config.attribute("google_project_iam_member.team__m", "project") == '"team-project"'
    assert any("IAMServiceAccount team/wl-x is not exported" in w for w in export.warnings)


def test_clear_text_secret_is_flagged() -> None:
    user = kcc("SQLUser", "sql", "u", {"instanceRef": {"external": "db"}, "password": {"value": "hunter2"}})
    export = export_terraform([namespace(), user])
    assert any("spec.password is written in clear text" in w for w in export.warnings)
    assert 'password = "hunter2"' in render_block(export.resources[0].resource_block())


def test_org_policy_policy_on_a_folder_with_parameters(tmp_path: Path) -> None:
    policy = kcc("OrgPolicyPolicy", "orgpolicy", "gke", {
        "resourceID": "gcp.restrictServiceUsage",
        "folderRef": {"external": "folders/123"},
        "spec": {"rules": [{"allowAll": False, "parameters": {"allowedServices": ["run.googleapis.com"]}}]},
        "dryRunSpec": {"rules": [{"denyAll": True}], "inheritFromParent": False},
    })
    _, config = parsed(tmp_path, [policy])
    address = "google_org_policy_policy.team__gke"
    assert config.imports() == {address: '"folders/123/policies/gcp.restrictServiceUsage"'}
    assert config.attribute(address, "parent") == '"folders/123"'
    assert config.attribute(address, "spec.rules.allow_all") == '"FALSE"'
    # The API's own camelCase parameter names, as a JSON string (org_policy_policy docs).
    assert config.attribute(address, "spec.rules.parameters") == '"{\\"allowedServices\\": [\\"run.googleapis.com\\"]}"'
    assert config.attribute(address, "dry_run_spec.rules.deny_all") == '"TRUE"'
    assert config.attribute(address, "dry_run_spec.inherit_from_parent") == "false"


def test_iam_member_on_a_type_without_known_import_format(tmp_path: Path) -> None:
    ring = kcc("KMSKeyRing", "kms", "ring", {"location": "europe-west1"})
    key = kcc("KMSCryptoKey", "kms", "key", {"keyRingRef": {"name": "ring"}})
    member = kcc("IAMPolicyMember", "iam", "decrypt", {
        "resourceRef": {"kind": "KMSCryptoKey", "name": "key"},
        "member": "serviceAccount:x@team-project.iam.gserviceaccount.com",
        "role": "roles/cloudkms.cryptoKeyDecrypter"})
    export, config = parsed(tmp_path, [namespace(), ring, key, member])
    address = "google_kms_crypto_key_iam_member.team__decrypt"
    # The mapping names the key by its ID (iamConfig referenceField type "id").
    assert config.attribute(address, "crypto_key_id") == "google_kms_crypto_key.team__key.id"
    assert address not in config.imports()
    assert any("IAMPolicyMember team/decrypt: import ID" in w for w in export.warnings)
