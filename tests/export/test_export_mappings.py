"""Service-mapping loading, name conversions, and the "never silently dropped" rule over
every Config Connector kind the platform uses."""

from __future__ import annotations

from typing import Any

import pytest

from konfig.export import export_terraform
from konfig.export.names import camel_to_snake, snake_to_camel, terraform_name
from konfig.export.servicemappings import SERVICE_MAPPINGS_DIR, default_service_mappings
from konfig.export.templates import expand

#: Kind, group and Terraform resource(s) of the platform's Config Connector kinds, from the
#: kind index derived from Config Connector v1.155.0 (servicemappings + static_config.go).
#: "-" marks kinds without a service mapping (direct/DCL controllers or IAM kinds).
KIND_INDEX = """
ArtifactRegistryRepository artifactregistry google_artifact_registry_repository
BigQueryDataset bigquery google_bigquery_dataset
BillingBudgetsBudget billingbudgets -
ComputeAddress compute google_compute_address,google_compute_global_address
ComputeBackendService compute google_compute_backend_service,google_compute_region_backend_service
ComputeForwardingRule compute google_compute_forwarding_rule,google_compute_global_forwarding_rule
ComputeManagedSSLCertificate compute google_compute_managed_ssl_certificate
ComputeNetworkEndpointGroup compute google_compute_network_endpoint_group
ComputeSSLCertificate compute google_compute_region_ssl_certificate,google_compute_ssl_certificate
ComputeTargetHTTPSProxy compute google_compute_region_target_https_proxy,google_compute_target_https_proxy
ComputeURLMap compute google_compute_region_url_map,google_compute_url_map
ContainerCluster container google_container_cluster
FirestoreDatabase firestore -
Folder resourcemanager google_folder
IAMCustomRole iam google_iam_custom_role
IAMPartialPolicy iam -
IAMPolicy iam -
IAMPolicyMember iam -
IAMServiceAccount iam google_service_account
IAMWorkloadIdentityPoolProvider iam -
IAMWorkloadIdentityPool iam -
KMSCryptoKey kms google_kms_crypto_key
KMSKeyRing kms google_kms_key_ring
LoggingLogSink logging google_logging_log_sink
OrgPolicyCustomConstraint orgpolicy -
OrgPolicyPolicy orgpolicy -
Project resourcemanager google_project
PubSubSubscription pubsub google_pubsub_subscription
PubSubTopic pubsub google_pubsub_topic
RedisInstance redis google_redis_instance
ResourceManagerPolicy resourcemanager google_org_policy
RunService run google_cloud_run_v2_service
SecretManagerSecret secretmanager google_secret_manager_secret
Service serviceusage google_project_service
SQLDatabase sql google_sql_database
SQLInstance sql google_sql_database_instance
SQLUser sql google_sql_user
StorageBucket storage google_storage_bucket
"""
KINDS = [line.split() for line in KIND_INDEX.strip().splitlines()]


def test_vendored_mappings_carry_their_source_and_license() -> None:
    assert (SERVICE_MAPPINGS_DIR / "SOURCE.md").is_file()
    assert "Apache License" in (SERVICE_MAPPINGS_DIR / "LICENSE").read_text(encoding="utf-8")
    assert len(list(SERVICE_MAPPINGS_DIR.glob("*.yaml"))) == 22


@pytest.mark.parametrize(("kind", "group", "resources"), [k for k in KINDS if k[2] != "-"])
def test_each_mapped_kind_has_its_terraform_resources(kind: str, group: str, resources: str) -> None:
    configs = default_service_mappings().configs(f"{group}.cnrm.cloud.google.com", kind)
    assert sorted(rc.name for rc in configs) == sorted(resources.split(","))


def test_mapping_details_are_parsed() -> None:
    (project,) = default_service_mappings().configs("resourcemanager.cnrm.cloud.google.com", "Project")
    assert project.id_template == "projects/{{project_id}}"
    assert project.resource_id_field == "project_id"
    assert project.iam and project.iam.policy_member_name == "google_project_iam_member"
    assert ("folder", "folderRef") in project.hierarchical_references
    folder_ref = next(r for r in project.references if r.key == "folderRef")
    assert (folder_ref.tf_field, folder_ref.target.kind, folder_ref.target.target_field) == ("folder_id", "Folder", "folder_id")
    (sink,) = default_service_mappings().configs("logging.cnrm.cloud.google.com", "LoggingLogSink")
    destination = next(r for r in sink.references if r.tf_field == "destination")
    assert [t.key for t in destination.types][:2] == ["storageBucketRef", "bigQueryDatasetRef"]


def _minimal(kind: str, group: str) -> dict[str, Any]:
    return {
        "apiVersion": f"{group}.cnrm.cloud.google.com/v1beta1",
        "kind": kind,
        "metadata": {"name": "x", "namespace": "ns", "annotations": {"cnrm.cloud.google.com/project-id": "p"}},
        "spec": {"location": "europe-west1", "resourceRef": {"kind": "Project", "external": "projects/p"},
                 "role": "roles/viewer", "member": "user:a@example.com", "bindings": []},
    }


@pytest.mark.parametrize(("kind", "group", "resources"), KINDS)
def test_no_kind_is_dropped_silently(kind: str, group: str, resources: str) -> None:
    export = export_terraform([_minimal(kind, group)])
    accounted = len(export.resources) + len(export.skipped) + len(export.problems)
    if kind == "IAMPartialPolicy":  # no bindings: nothing to write, and nothing lost
        assert accounted == 0
        return
    assert accounted >= 1
    for skipped in export.skipped:
        assert kind in skipped.reason or "IAMPartialPolicy" in skipped.reason


@pytest.mark.parametrize(
    ("camel", "snake"),
    [
        ("diskSizeGb", "disk_size_gb"),
        ("clusterIpv4Cidr", "cluster_ipv4_cidr"),
        ("locationID", "location_id"),
        ("bootDiskKMSKey", "boot_disk_kms_key"),
        ("ipv4Enabled", "ipv4_enabled"),
        ("sha1Fingerprint", "sha1_fingerprint"),
        ("name", "name"),
    ],
)
def test_camel_to_snake(camel: str, snake: str) -> None:
    assert camel_to_snake(camel) == snake


def test_snake_to_camel_is_per_segment() -> None:
    assert snake_to_camel("node_config.service_account") == "nodeConfig.serviceAccount"


def test_terraform_names() -> None:
    assert terraform_name("", "cc-cli") == "cc_cli"
    assert terraform_name("team", "pubsub.googleapis.com") == "team__pubsub_googleapis_com"
    assert terraform_name("", "9lives") == "_9lives"


def test_id_templates_follow_upstream_syntax() -> None:
    values = {"project": "p", "account_id": "a", "role_id": "r", "org_id": ""}
    lookup = values.get
    assert expand("{{project?}}#{{org_id?}}#{{role_id}}", lookup) == "p##r"
    assert expand("projects/{{project}}/serviceAccounts/[{{account_id}}@{{project}}.iam.gserviceaccount.com|{{unique_id}}]", lookup) == (
        "projects/p/serviceAccounts/a@p.iam.gserviceaccount.com"
    )
    assert expand("[{{unique_id}}|{{account_id}}]", lookup) == "a"
    assert expand("{{missing}}/x", lookup) is None
    assert expand("projects/{{project}}/topics/{{value}}", lookup, "t") == "projects/p/topics/t"
