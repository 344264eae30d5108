"""``export_terraform`` on a Konfig-shaped desired state (data/konfig-org.yaml).

Expected import IDs are written from the google provider documentation's "Import" sections,
not from the exporter; the output is always parsed by Terraform's own loader.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from export_helpers import DATA, ParsedConfig, load_yaml_docs, parse_terraform_dir

from konfig.export import Options, export_terraform, write_files

ORG = DATA / "konfig-org.yaml"
SA = "google_service_account.ecommerce_dev__wl_checkout"
PROJECT = "google_project.konfig_system__acme_ecommerce_dev"


@pytest.fixture(scope="module")
def export():
    return export_terraform(load_yaml_docs(ORG))


@pytest.fixture(scope="module")
def parsed(export, tmp_path_factory) -> ParsedConfig:
    out = tmp_path_factory.mktemp("tf")
    write_files(out, export.files())
    return parse_terraform_dir(out)


def test_no_problems_and_every_reference_resolves(export, parsed: ParsedConfig) -> None:
    assert export.problems == []
    parsed.check_references()
    assert sorted(p.name for p in parsed.directory.iterdir()) == [
        "README.md",
        "ecommerce-dev.tf",
        "konfig-system.tf",
        "variables.tf",
        "versions.tf",
    ]


def test_one_resource_and_one_import_per_cloud_object(export, parsed: ParsedConfig) -> None:
    objects = load_yaml_docs(ORG)
    kcc = [o for o in objects if o["apiVersion"].split("/")[0].endswith(".cnrm.cloud.google.com")]
    not_cloud = [o for o in kcc if o["kind"] in ("ConfigConnectorContext", "BillingBudgetsBudget")]
    partial = next(o for o in objects if o["kind"] == "IAMPartialPolicy")
    partial_members = sum(len(b["members"]) for b in partial["spec"]["bindings"])
    expected = len(kcc) - len(not_cloud) - 1 + partial_members
    assert len(parsed.resources) == expected == len(export.resources)
    assert set(parsed.imports()) == set(parsed.resources)


IMPORT_IDS = {
    PROJECT: "projects/acme-ecommerce-dev",
    "google_project_service.konfig_system__acme_ecommerce_dev_run": "acme-ecommerce-dev/run.googleapis.com",
    SA: "projects/acme-ecommerce-dev/serviceAccounts/wl-checkout@acme-ecommerce-dev.iam.gserviceaccount.com",
    "google_storage_bucket.ecommerce_dev__acme_ecommerce_dev_receipts": "acme-ecommerce-dev-receipts",
    "google_storage_bucket_iam_member.ecommerce_dev__checkout_receipts_write": (
        "b/acme-ecommerce-dev-receipts roles/storage.objectCreator "
        "serviceAccount:wl-checkout@acme-ecommerce-dev.iam.gserviceaccount.com"
    ),
    "google_pubsub_topic.ecommerce_dev__order_events": "projects/acme-ecommerce-dev/topics/order-events",
    "google_pubsub_topic_iam_member.ecommerce_dev__checkout_order_events_publish": (
        "projects/acme-ecommerce-dev/topics/order-events roles/pubsub.publisher "
        "serviceAccount:wl-checkout@acme-ecommerce-dev.iam.gserviceaccount.com"
    ),
    "google_pubsub_subscription.ecommerce_dev__order_events_audit": (
        "projects/acme-ecommerce-dev/subscriptions/order-events-audit"
    ),
    "google_sql_database_instance.ecommerce_dev__orders": "projects/acme-ecommerce-dev/instances/orders",
    "google_sql_database.ecommerce_dev__orders": "projects/acme-ecommerce-dev/instances/orders/databases/orders",
    "google_sql_user.ecommerce_dev__checkout": "acme-ecommerce-dev/orders/checkout",
    "google_cloud_run_v2_service.ecommerce_dev__checkout": (
        "projects/acme-ecommerce-dev/locations/us-central1/services/checkout"
    ),
    "google_cloud_run_v2_service_iam_member.ecommerce_dev__checkout_invoker_cart": (
        "projects/acme-ecommerce-dev/locations/us-central1/services/checkout roles/run.invoker "
        "serviceAccount:wl-cart@acme-ecommerce-dev.iam.gserviceaccount.com"
    ),
    "google_secret_manager_secret.ecommerce_dev__checkout_api_key": (
        "projects/acme-ecommerce-dev/secrets/checkout-api-key"
    ),
    "google_firestore_database.ecommerce_dev__checkout_sessions": "projects/acme-ecommerce-dev/databases/(default)",
    "google_redis_instance.ecommerce_dev__cache": "acme-ecommerce-dev/us-central1/cache",
    "google_project_iam_member.ecommerce_dev__ecommerce_devs_viewer": "acme-ecommerce-dev roles/viewer group:ecommerce-devs@acme.com",
    "google_project_iam_member.ecommerce_dev__ecommerce_oncall_1_0": (
        "acme-ecommerce-dev roles/owner group:ecommerce-oncall@acme.com break-glass"
    ),
    "google_service_account_iam_member.konfig_system__konfig_kcc_workload_identity": (
        "projects/acme-ecommerce-dev/serviceAccounts/konfig-kcc@acme-ecommerce-dev.iam.gserviceaccount.com "
        "roles/iam.workloadIdentityUser "
        "serviceAccount:acme-cp.svc.id.goog[cnrm-system/cnrm-controller-manager-ecommerce-dev]"
    ),
    "google_iam_workload_identity_pool.konfig_system__gitlab": (
        "projects/acme-cp/locations/global/workloadIdentityPools/gitlab"
    ),
    "google_iam_workload_identity_pool_provider.konfig_system__gitlab": (
        "projects/acme-cp/locations/global/workloadIdentityPools/gitlab/providers/gitlab"
    ),
    "google_org_policy_policy.konfig_system__ecommerce_dev_no_default_sa_grants": (
        "projects/acme-ecommerce-dev/policies/iam.automaticIamGrantsForDefaultServiceAccounts"
    ),
}


@pytest.mark.parametrize("address", sorted(IMPORT_IDS))
def test_import_ids_follow_the_provider_documentation(parsed: ParsedConfig, address: str) -> None:
    assert parsed.imports()[address] == f'"{IMPORT_IDS[address]}"'


def test_folders_are_imported_by_a_number_the_user_supplies(parsed: ParsedConfig) -> None:
    # Google assigns folder numbers; a desired state cannot know them.
    folders = [a for a in parsed.resources if a.startswith("google_folder.")]
    assert len(folders) == 3
    for address in folders:
        import_id = parsed.imports()[address]
        (variable,) = [v for v in parsed.variables if f"${{var.{v}}}" in import_id]
        assert import_id == f'"folders/${{var.{variable}}}"'
    member = parsed.imports()["google_folder_iam_member.konfig_system__retail_leads_viewer"]
    assert member.startswith('"folders/${var.konfig_system__retail_folder_number} roles/viewer ')


@pytest.mark.parametrize(
    ("address", "attribute", "expected"),
    [
        ("google_folder.konfig_system__acme", "parent", '"organizations/123456789012"'),
        ("google_folder.konfig_system__retail", "parent", '"folders/${google_folder.konfig_system__acme.folder_id}"'),
        (PROJECT, "folder_id", "google_folder.konfig_system__ecommerce.folder_id"),
        (PROJECT, "project_id", '"acme-ecommerce-dev"'),
        (PROJECT, "billing_account", '"012345-6789AB-CDEF01"'),
        (PROJECT, "auto_create_network", "false"),
        ("google_project_service.konfig_system__acme_ecommerce_dev_run", "project", f"{PROJECT}.project_id"),
        ("google_project_service.konfig_system__acme_ecommerce_dev_run", "service", '"run.googleapis.com"'),
        ("google_project_iam_member.ecommerce_dev__ecommerce_devs_viewer", "project", f"{PROJECT}.project_id"),
        ("google_storage_bucket_iam_member.ecommerce_dev__checkout_receipts_write", "member", f'"serviceAccount:${{{SA}.email}}"'),
        ("google_storage_bucket.ecommerce_dev__acme_ecommerce_dev_receipts", "force_destroy", "false"),
        ("google_sql_database.ecommerce_dev__orders", "instance", "google_sql_database_instance.ecommerce_dev__orders.name"),
        ("google_sql_user.ecommerce_dev__checkout", "password", "var.ecommerce_dev__checkout_password"),
        ("google_sql_database_instance.ecommerce_dev__orders", "settings.tier", '"db-custom-1-3840"'),
        ("google_cloud_run_v2_service.ecommerce_dev__checkout", "template.service_account", f"{SA}.email"),
        (
            "google_cloud_run_v2_service.ecommerce_dev__checkout",
            "template.volumes.cloud_sql_instance.instances",
            "[google_sql_database_instance.ecommerce_dev__orders.connection_name]",
        ),
        (
            "google_pubsub_subscription.ecommerce_dev__order_events_audit",
            "topic",
            '"projects/${google_pubsub_topic.ecommerce_dev__order_events.project}/topics/'
            '${google_pubsub_topic.ecommerce_dev__order_events.name}"',
        ),
        (
            "google_iam_workload_identity_pool_provider.konfig_system__gitlab",
            "workload_identity_pool_id",
            "google_iam_workload_identity_pool.konfig_system__gitlab.workload_identity_pool_id",
        ),
        ("google_iam_workload_identity_pool_provider.konfig_system__gitlab", "project", '"acme-cp"'),
        ("google_iam_workload_identity_pool.konfig_system__gitlab", "project", '"acme-cp"'),
        ("google_org_policy_policy.konfig_system__ecommerce_dev_no_default_sa_grants", "spec.rules.enforce", '"TRUE"'),
        ("google_secret_manager_secret.ecommerce_dev__checkout_api_key", "project", '"acme-ecommerce-dev"'),
        ("google_firestore_database.ecommerce_dev__checkout_sessions", "type", '"FIRESTORE_NATIVE"'),
    ],
)
def test_arguments(parsed: ParsedConfig, address: str, attribute: str, expected: str) -> None:
    assert parsed.attribute(address, attribute) == expected


def test_konfig_labels_are_dropped_and_others_kept(parsed: ParsedConfig) -> None:
    labels = parsed.attribute(PROJECT, "labels")
    assert "cost-center" in labels and "konfig-" not in labels
    assert "tier" in parsed.attribute("google_sql_database_instance.ecommerce_dev__orders", "settings.user_labels")
    revision_labels = parsed.attribute("google_cloud_run_v2_service.ecommerce_dev__checkout", "template.labels")
    assert "team" in revision_labels and "konfig-" not in revision_labels
    for address in parsed.resources:
        for attribute in ("labels", "user_labels"):
            if parsed.has_attribute(address, attribute):
                assert "konfig-" not in parsed.attribute(address, attribute)


def test_konfig_labels_can_be_kept(tmp_path: Path) -> None:
    export = export_terraform(load_yaml_docs(ORG), Options(keep_konfig_labels=True))
    write_files(tmp_path, export.files())
    labels = parse_terraform_dir(tmp_path).attribute(PROJECT, "labels")
    assert "konfig-environment" in labels and "konfig-domain" in labels


def test_abandoned_objects_are_protected_from_destroy(parsed: ParsedConfig) -> None:
    abandoned = {
        (o["kind"], o["metadata"]["name"])
        for o in load_yaml_docs(ORG)
        if (o["metadata"].get("annotations") or {}).get("cnrm.cloud.google.com/deletion-policy") == "abandon"
    }
    protected = [a for a, r in parsed.resources.items() if r["Managed"]["PreventDestroy"]]
    assert len(protected) == len(abandoned) == 8
    assert not parsed.resources["google_pubsub_topic.ecommerce_dev__order_events"]["Managed"]["PreventDestroy"]


def test_secret_values_become_sensitive_variables(parsed: ParsedConfig) -> None:
    variable = parsed.variables["ecommerce_dev__checkout_password"]
    assert variable["Sensitive"] is True
    assert "orders-db-password" in variable["Description"]


def test_non_cloud_objects_are_listed_as_not_exported(export, parsed: ParsedConfig) -> None:
    skipped = {(s.key.kind, s.key.name): s.reason for s in export.skipped}
    assert set(skipped) == {
        ("Namespace", "konfig-system"),
        ("Namespace", "ecommerce-dev"),
        ("ConfigConnectorContext", "configconnectorcontext.core.cnrm.cloud.google.com"),
        ("RoleBinding", "konfig-ci"),
        ("BillingBudgetsBudget", "ecommerce-dev-budget"),
    }
    assert "no Terraform mapping for kind BillingBudgetsBudget" in skipped[("BillingBudgetsBudget", "ecommerce-dev-budget")]
    readme = (parsed.directory / "README.md").read_text(encoding="utf-8")
    assert "RoleBinding ecommerce-dev/konfig-ci" in readme
    assert "BillingBudgetsBudget ecommerce-dev/ecommerce-dev-budget" in readme
    assert "RBAC" in readme and "ConfigConnectorContexts" in readme
    for variable in parsed.variables:
        assert f"`{variable}`" in readme


def test_output_is_deterministic() -> None:
    first = export_terraform(load_yaml_docs(ORG)).files()
    second = export_terraform(list(reversed(load_yaml_docs(ORG)))).files()
    assert first == second
