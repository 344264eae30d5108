"""The template policy holds for every template, bundled or not: each adversarial template is
refused by `konfig validate` with the template's file, line and field."""

from __future__ import annotations

import pytest

from tests.guardrails.helpers import TEMPLATE, control_plane_with, problem_at, validate, write_tree

FILE = "templates/box.yaml"


def refused(tmp_path, template: str, field: str, **files) -> str:
    code, lines = validate(write_tree(tmp_path, template, **files))
    assert code == 1, lines
    return problem_at(lines, FILE, field)


def test_the_unmodified_template_is_valid(tmp_path):
    code, lines = validate(write_tree(tmp_path))
    assert code == 0, lines


@pytest.mark.parametrize("role", ["roles/owner", "roles/editor", "roles/viewer"])
def test_basic_roles_are_refused(tmp_path, role):
    text = TEMPLATE.replace("roles: [roles/storage.objectViewer]", f"roles: [{role}]")
    assert "basic role" in refused(tmp_path, text, "spec.access.read.roles[0]")


def test_basic_roles_are_refused_in_the_short_form(tmp_path):
    text = TEMPLATE.replace("read: {roles: [roles/storage.objectViewer], bindTo: bucket}",
                            "read: [roles/storage.objectViewer, roles/owner]")
    assert "basic role" in refused(tmp_path, text, "spec.access.read[1]")


@pytest.mark.parametrize("role", [
    "roles/iam.serviceAccountTokenCreator", "roles/resourcemanager.projectIamAdmin",
    "roles/resourcemanager.folderAdmin", "roles/resourcemanager.organizationAdmin",
    "roles/billing.admin", "roles/iam.securityAdmin", "roles/storage.securityAdmin",
    "roles/orgpolicy.policyAdmin",
])
def test_roles_that_administer_iam_or_the_hierarchy_are_refused(tmp_path, role):
    text = TEMPLATE.replace("roles/storage.objectViewer", role)
    message = refused(tmp_path, text, "spec.access.read.roles[0]")
    assert "administers" in message and "spec.policy.extraRoles" in message


def test_the_control_plane_can_allow_an_extra_role_explicitly(tmp_path):
    text = TEMPLATE.replace("roles/storage.objectViewer", "roles/iam.serviceAccountTokenCreator")
    plane = control_plane_with("policy: {extraRoles: [roles/iam.serviceAccountTokenCreator]}\n")
    code, lines = validate(write_tree(tmp_path, text, **{"control-plane.yaml": plane}))
    assert code == 0, lines


def test_the_control_plane_cannot_allow_basic_roles_or_iam_kinds(tmp_path):
    plane = control_plane_with("policy: {extraRoles: [roles/owner], extraKinds: [IAMPolicy]}\n")
    code, lines = validate(write_tree(tmp_path, **{"control-plane.yaml": plane}))
    assert code == 1
    assert "basic roles cannot be allowed" in problem_at(lines, "control-plane.yaml", "spec.policy.extraRoles")
    assert "IAM kinds are never rendered" in problem_at(lines, "control-plane.yaml", "spec.policy.extraKinds")


IAM_POLICY = """\
    - id: grant
      template:
        apiVersion: iam.cnrm.cloud.google.com/v1beta1
        kind: IAMPolicy
        metadata: {name: "${resource.objectName}-policy"}
        spec:
          resourceRef: {kind: Organization, external: "123456789012"}
          bindings: [{role: roles/owner, members: ["user:someone@example.com"]}]
"""


def test_templates_may_not_render_iam(tmp_path):
    message = refused(tmp_path, TEMPLATE + IAM_POLICY, "spec.resources[1].template.kind")
    assert "may not render IAM objects" in message


def test_templates_may_not_render_iam_members_or_keys(tmp_path):
    member = IAM_POLICY.replace("kind: IAMPolicy", "kind: IAMPolicyMember")
    assert "IAM" in refused(tmp_path, TEMPLATE + member, "spec.resources[1].template.kind")
    key = IAM_POLICY.replace("kind: IAMPolicy", "kind: IAMServiceAccountKey")
    assert "not a Config Connector kind Konfig knows" in refused(
        tmp_path, TEMPLATE + key, "spec.resources[1].template.kind")


def test_templates_may_not_create_projects_or_folders(tmp_path):
    project = """\
    - id: p
      template:
        apiVersion: resourcemanager.cnrm.cloud.google.com/v1beta1
        kind: Project
        metadata: {name: "${resource.objectName}-p"}
        spec: {name: x, billingAccountRef: {external: "012345-6789AB-CDEF01"}}
"""
    assert "belongs to Konfig" in refused(tmp_path, TEMPLATE + project, "spec.resources[1].template.kind")


def test_a_public_bucket_is_refused(tmp_path):
    text = TEMPLATE.replace("publicAccessPrevention: enforced", "publicAccessPrevention: inherited")
    message = refused(tmp_path, text, "spec.resources[0].template.spec.publicAccessPrevention")
    assert "no public buckets" in message


def test_a_bundled_template_replaced_without_public_access_prevention_is_refused(tmp_path):
    from konfig.resources import bundled_dir

    bundled = (bundled_dir("resource-templates") / "storage-bucket.yaml").read_text()
    text = bundled.replace("publicAccessPrevention: enforced", "publicAccessPrevention: inherited")
    assert text != bundled
    code, lines = validate(write_tree(tmp_path, None, **{"resource-templates/storage-bucket.yaml": text}))
    assert code == 1
    assert any("resource-templates/storage-bucket.yaml:" in line and "no public buckets" in line
               for line in lines), lines


@pytest.mark.parametrize("member", ["allUsers", "allAuthenticatedUsers"])
def test_public_members_are_refused_anywhere(tmp_path, member):
    text = TEMPLATE.replace("location: EU", f"location: EU\n          note: \"{member}\"")
    assert member in refused(tmp_path, text, "spec.resources[0].template.spec.note")


@pytest.mark.parametrize("value", ["delete", "\"${'del' + 'ete'}\""])
def test_the_deletion_policy_is_konfigs(tmp_path, value):
    KEY = "cnrm.cloud.google.com/deletion-policy"
    text = TEMPLATE.replace(
        'name: "${domain.projectId}-${resource.objectName}"',
        'name: "${domain.projectId}-${resource.objectName}"\n'
        f"          annotations: {{cnrm.cloud.google.com/deletion-policy: {value}}}")
    message = refused(tmp_path, text, "spec.resources[0].template.metadata.annotations." + KEY)
    assert "abandoned, never deleted" in message


def test_the_project_annotation_may_not_point_elsewhere(tmp_path):
    KEY = "cnrm.cloud.google.com/project-id"
    text = TEMPLATE.replace(
        'name: "${domain.projectId}-${resource.objectName}"',
        'name: "${domain.projectId}-${resource.objectName}"\n'
        '          annotations: {cnrm.cloud.google.com/project-id: "${controlPlane.projectId}"}')
    message = refused(tmp_path, text, "spec.resources[0].template.metadata.annotations." + KEY)
    assert "project-id is Konfig's" in message


def test_namespace_and_konfig_labels_are_konfigs(tmp_path):
    text = TEMPLATE.replace(
        'name: "${domain.projectId}-${resource.objectName}"',
        'name: "${domain.projectId}-${resource.objectName}"\n'
        "          namespace: konfig-system\n"
        "          labels: {konfig-domain: payments}")
    code, lines = validate(write_tree(tmp_path, text))
    assert code == 1
    assert "namespace is Konfig's" in problem_at(lines, FILE, "spec.resources[0].template.metadata.namespace")
    assert "konfig-* labels" in problem_at(lines, FILE, "spec.resources[0].template.metadata.labels.konfig-domain")


def test_references_to_another_project_are_refused(tmp_path):
    text = TEMPLATE.replace(
        "location: EU",
        "location: EU\n          logging: {logBucket: \"projects/acme-cp-other/buckets/x\"}")
    message = refused(tmp_path, text, "spec.resources[0].template.spec.logging.logBucket")
    assert "refers to project 'acme-cp-other'" in message


def test_a_database_with_a_public_ip_is_refused(tmp_path):
    from konfig.resources import bundled_dir

    bundled = (bundled_dir("resource-templates") / "cloudsql-postgres.yaml").read_text()
    text = bundled.replace("ipv4Enabled: false", "ipv4Enabled: true")
    assert text != bundled
    code, lines = validate(write_tree(tmp_path, None, **{"cloudsql-postgres.yaml": text}))
    assert code == 1
    assert any(line.startswith("cloudsql-postgres.yaml:") and "public IP" in line for line in lines), lines


def test_every_bundled_template_satisfies_the_policy():
    from konfig.compile.policy import template_problems
    from konfig.load import bundled_templates

    for template in bundled_templates():
        assert template_problems(template) == [], template.name


def test_the_control_plane_can_allow_another_project_explicitly(tmp_path):
    text = TEMPLATE.replace(
        "location: EU",
        "location: EU\n          logging: {logBucket: \"projects/acme-logs-prod/buckets/x\"}")
    code, _ = validate(write_tree(tmp_path, text))
    assert code == 1
    plane = control_plane_with("policy: {extraProjects: [acme-logs-prod]}\n")
    code, lines = validate(write_tree(tmp_path, text, **{"control-plane.yaml": plane}))
    assert code == 0, lines


def test_objects_may_run_only_as_the_workloads_own_service_account(tmp_path):
    run = """\
    - id: job
      template:
        apiVersion: run.cnrm.cloud.google.com/v1beta1
        kind: RunJob
        metadata: {name: "${resource.objectName}-job"}
        spec:
          location: us-central1
          projectRef: {external: "projects/${domain.projectId}"}
          template:
            template:
              serviceAccountRef: {external: "konfig-kcc@${domain.projectId}.iam.gserviceaccount.com"}
              containers: [{image: alpine}]
"""
    message = refused(tmp_path, TEMPLATE + run,
                      "spec.resources[1].template.spec.template.template.serviceAccountRef")
    assert "own service account" in message


def test_owner_references_and_finalizers_are_konfigs(tmp_path):
    text = TEMPLATE.replace(
        'name: "${domain.projectId}-${resource.objectName}"',
        'name: "${domain.projectId}-${resource.objectName}"\n'
        "          finalizers: [x]")
    assert "metadata may hold only" in refused(tmp_path, text, "spec.resources[0].template.metadata.finalizers")


def test_dataset_access_lists_are_refused(tmp_path):
    dataset = """\
    - id: data
      template:
        apiVersion: bigquery.cnrm.cloud.google.com/v1beta1
        kind: BigQueryDataset
        metadata: {name: "${resource.objectName.replace('-', '_')}"}
        spec:
          location: EU
          access: [{role: OWNER, userByEmail: mallory@example.com}]
"""
    assert "access lists are IAM" in refused(tmp_path, TEMPLATE + dataset, "spec.resources[1].template.spec.access")
