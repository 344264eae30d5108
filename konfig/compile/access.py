"""Access: group roles on folders, and the identities of the control plane, of each domain
environment's Config Connector, and of each domain's CI pipelines.

Humans get only standing read (roles/viewer) on GCP; writes go through CI and the controller
(spec/definitions.md, "Roles"). Break-glass grants are time-bound and made by
``konfig break-glass``, not compiled here.
"""

from __future__ import annotations

from konfig.compile import naming
from konfig.compile.context import CompileContext
from konfig.compile.hierarchy import (
    control_plane_folder_name,
    domain_folder_name,
    platform_folder_name,
    project_object_name,
)
from konfig.compile.objects import konfig_labels, kube_object, object_name, policy_member, role_slug
from konfig.compile.state import PROJECT_ID_ANNOTATION, SYSTEM_NAMESPACE, KubeObject
from konfig.model import Domain, GroupBinding

IAM = "iam.cnrm.cloud.google.com/v1beta1"
AR = "artifactregistry.cnrm.cloud.google.com/v1beta1"

#: Standing GCP role of every contract role (spec/definitions.md, "Roles").
STANDING_ROLES = {"viewer": "roles/viewer", "developer": "roles/viewer",
                  "maintainer": "roles/viewer", "owner": "roles/viewer"}

#: Roles of the control plane's service account on the control-plane folder: create folders
#: and projects, and grant the groups' folder roles. Billing user is granted on the billing
#: account by `konfig bootstrap` (Config Connector has no billing-account IAM kind here).
#: Source: https://cloud.google.com/resource-manager/docs/access-control-folders
CONTROL_PLANE_FOLDER_ROLES = (
    "roles/resourcemanager.folderCreator",
    "roles/resourcemanager.projectCreator",
    "roles/resourcemanager.folderIamAdmin",
)

#: Roles a domain environment's Config Connector service account needs on its own project
#: whatever the services: create workload service accounts, bind project-level roles, let
#: Cloud Run act as the workload's account, and use the enabled APIs.
#: Source: https://cloud.google.com/iam/docs/understanding-roles
KCC_BASE_ROLES = (
    "roles/iam.serviceAccountAdmin",
    "roles/iam.serviceAccountUser",
    "roles/resourcemanager.projectIamAdmin",
    "roles/serviceusage.serviceUsageConsumer",
)
#: The admin role of each API's resources, granted only when the API is enabled there.
KCC_SERVICE_ROLES = {
    "run.googleapis.com": "roles/run.admin",
    "sqladmin.googleapis.com": "roles/cloudsql.admin",
    "storage.googleapis.com": "roles/storage.admin",
    "pubsub.googleapis.com": "roles/pubsub.admin",
    "redis.googleapis.com": "roles/redis.admin",
    "secretmanager.googleapis.com": "roles/secretmanager.admin",
    "firestore.googleapis.com": "roles/datastore.owner",
    "dataflow.googleapis.com": "roles/dataflow.admin",
    "container.googleapis.com": "roles/container.developer",
}


def kcc_service_account_object(domain: str, environment: str) -> str:
    """Name of the IAMServiceAccount object (in konfig-system) of a domain environment's
    Config Connector identity."""
    return object_name("kcc", domain, environment)


def compile_access(ctx: CompileContext) -> list[KubeObject]:
    """Group bindings, control-plane identity, per-environment Config Connector identities,
    CI identities and the CI Workload Identity Federation pool."""
    objects = _control_plane_identity(ctx)
    objects += _group_bindings(ctx, ctx.cp.spec.groups, control_plane_folder_name(ctx),
                               konfig_labels(ctx.cp_name))
    for platform in sorted(ctx.defs.platforms.values(), key=lambda p: p.name):
        objects += _group_bindings(ctx, platform.spec.groups, platform_folder_name(platform.name),
                                   konfig_labels(ctx.cp_name, platform.name))
    objects += _ci_federation(ctx)
    for domain in sorted(ctx.defs.domains.values(), key=lambda d: d.name):
        labels = konfig_labels(ctx.cp_name, domain.spec.platform, domain.name)
        objects += _group_bindings(ctx, domain.spec.groups, domain_folder_name(domain.name), labels)
        objects += _ci_identity(ctx, domain)
        for env in ctx.domain_environments(domain):
            objects += _kcc_identity(ctx, domain, env.name)
    return objects


def _group_bindings(ctx, groups: list[GroupBinding], folder: str, labels) -> list[KubeObject]:
    return [
        policy_member(
            object_name(folder, role_slug(STANDING_ROLES[g.role]), g.group.replace("@", "-at-")),
            namespace=SYSTEM_NAMESPACE, labels=labels,
            resource_ref={"apiVersion": "resourcemanager.cnrm.cloud.google.com/v1beta1",
                          "kind": "Folder", "name": folder},
            role=STANDING_ROLES[g.role], member=f"group:{g.group}",
        )
        for g in groups
    ]


def _service_account(name: str, account_id: str, project_id: str, display: str, labels) -> KubeObject:
    return kube_object(
        IAM, "IAMServiceAccount", name, namespace=SYSTEM_NAMESPACE, labels=labels,
        annotations={PROJECT_ID_ANNOTATION: project_id},
        spec={"resourceID": account_id, "displayName": display[:100]},
    )


def _control_plane_identity(ctx: CompileContext) -> list[KubeObject]:
    labels = konfig_labels(ctx.cp_name)
    sa = object_name("controller", ctx.cp_name)
    folder = control_plane_folder_name(ctx)
    objects = [
        _service_account(sa, naming.CONTROL_PLANE_SERVICE_ACCOUNT_ID, ctx.cp_project_id,
                         "Konfig control plane (Config Connector in konfig-system)", labels),
        policy_member(
            object_name(sa, "workload-identity"), namespace=SYSTEM_NAMESPACE, labels=labels,
            resource_ref={"apiVersion": IAM, "kind": "IAMServiceAccount", "name": sa},
            role="roles/iam.workloadIdentityUser", member=ctx.kcc_member(SYSTEM_NAMESPACE),
        ),
    ]
    for role in CONTROL_PLANE_FOLDER_ROLES:
        objects.append(
            policy_member(
                object_name(folder, role_slug(role), "controller"),
                namespace=SYSTEM_NAMESPACE, labels=labels,
                resource_ref={"apiVersion": "resourcemanager.cnrm.cloud.google.com/v1beta1",
                              "kind": "Folder", "name": folder},
                role=role, service_account_ref={"name": sa},
            )
        )
    return objects


def _kcc_identity(ctx: CompileContext, domain: Domain, environment: str) -> list[KubeObject]:
    labels = konfig_labels(ctx.cp_name, domain.spec.platform, domain.name, environment)
    project_id = ctx.project_id(domain, environment)
    sa = kcc_service_account_object(domain.name, environment)
    namespace = naming.namespace_name(domain.name, environment)
    roles = sorted({*KCC_BASE_ROLES, *(KCC_SERVICE_ROLES[s] for s in ctx.services(domain)
                                        if s in KCC_SERVICE_ROLES)})
    objects = [
        _service_account(sa, naming.KCC_SERVICE_ACCOUNT_ID, project_id,
                         f"Config Connector for namespace {namespace}", labels),
        policy_member(
            object_name(sa, "workload-identity"), namespace=SYSTEM_NAMESPACE, labels=labels,
            resource_ref={"apiVersion": IAM, "kind": "IAMServiceAccount", "name": sa},
            role="roles/iam.workloadIdentityUser", member=ctx.kcc_member(namespace),
        ),
    ]
    for role in roles:  # on its own project only
        objects.append(
            policy_member(
                object_name(sa, role_slug(role)), namespace=SYSTEM_NAMESPACE, labels=labels,
                resource_ref={"apiVersion": "resourcemanager.cnrm.cloud.google.com/v1beta1",
                              "kind": "Project", "name": project_object_name(project_id)},
                role=role, service_account_ref={"name": sa},
            )
        )
    return objects


def ci_service_account_email(ctx: CompileContext, domain: str) -> str:
    return naming.service_account_email(naming.ci_service_account_id(domain), ctx.cp_project_id)


def registry_path(ctx: CompileContext, domain: str) -> str:
    """Artifact Registry repository of a domain's images (Docker format), in the control-plane
    project. Source: https://cloud.google.com/artifact-registry/docs/docker/names"""
    return f"{ctx.region}-docker.pkg.dev/{ctx.cp_project_id}/{domain}"


def _ci_federation(ctx: CompileContext) -> list[KubeObject]:
    """The Workload Identity pool trusting the GitLab instance's OIDC tokens (id_tokens), only
    for projects under the adopted parent group. Source:
    https://docs.gitlab.com/ci/cloud_services/google_cloud/"""
    labels = konfig_labels(ctx.cp_name)
    project_ref = {"external": f"projects/{ctx.cp_project_id}"}
    pool = object_name("gitlab-pool", ctx.cp_name)
    return [
        kube_object(
            IAM, "IAMWorkloadIdentityPool", pool, namespace=SYSTEM_NAMESPACE, labels=labels,
            annotations={PROJECT_ID_ANNOTATION: ctx.cp_project_id},
            spec={"resourceID": naming.WORKLOAD_IDENTITY_POOL, "location": "global",
                  "projectRef": project_ref, "displayName": "GitLab CI"},
        ),
        kube_object(
            IAM, "IAMWorkloadIdentityPoolProvider", object_name("gitlab-provider", ctx.cp_name),
            namespace=SYSTEM_NAMESPACE, labels=labels,
            annotations={PROJECT_ID_ANNOTATION: ctx.cp_project_id},
            spec={
                "resourceID": naming.WORKLOAD_IDENTITY_PROVIDER,
                "location": "global",
                "projectRef": project_ref,
                "workloadIdentityPoolRef": {"name": pool},
                "displayName": "GitLab",
                "oidc": {"issuerUri": ctx.cp.spec.gitlab.url.rstrip("/")},
                "attributeMapping": {
                    "google.subject": "assertion.sub",
                    "attribute.namespace_path": "assertion.namespace_path",
                    "attribute.project_path": "assertion.project_path",
                    "attribute.ref": "assertion.ref",
                    "attribute.ref_type": "assertion.ref_type",
                    "attribute.ref_protected": "assertion.ref_protected",
                },
                "attributeCondition": f"assertion.namespace_path.startsWith('{ctx.gitlab_root}/')",
            },
        ),
    ]


def _ci_identity(ctx: CompileContext, domain: Domain) -> list[KubeObject]:
    """A domain's CI service account: may push to the domain's registry and (through RBAC in
    the cluster) apply Workloads in the domain's namespaces; impersonable only by pipelines of
    projects under the domain's GitLab group."""
    labels = konfig_labels(ctx.cp_name, domain.spec.platform, domain.name)
    sa = object_name("ci", domain.name)
    repo = object_name("registry", domain.name)
    objects = [
        _service_account(sa, naming.ci_service_account_id(domain.name), ctx.cp_project_id,
                         f"GitLab CI of domain {domain.name}", labels),
        kube_object(
            AR, "ArtifactRegistryRepository", repo, namespace=SYSTEM_NAMESPACE, labels=labels,
            annotations={PROJECT_ID_ANNOTATION: ctx.cp_project_id},
            spec={"resourceID": domain.name, "location": ctx.region, "format": "DOCKER",
                  "description": f"Images of domain {domain.name}"},
        ),
        policy_member(
            object_name(repo, "writer", "ci"), namespace=SYSTEM_NAMESPACE, labels=labels,
            resource_ref={"apiVersion": AR, "kind": "ArtifactRegistryRepository", "name": repo},
            role="roles/artifactregistry.writer", service_account_ref={"name": sa},
        ),
        policy_member(
            object_name(sa, "cluster-viewer"), namespace=SYSTEM_NAMESPACE, labels=labels,
            resource_ref={"apiVersion": "resourcemanager.cnrm.cloud.google.com/v1beta1",
                          "kind": "Project", "name": project_object_name(ctx.cp_project_id)},
            role="roles/container.clusterViewer", service_account_ref={"name": sa},
        ),
    ]
    pool = ctx.workload_identity_pool
    if pool:
        objects.append(
            policy_member(
                object_name(sa, "workload-identity"), namespace=SYSTEM_NAMESPACE, labels=labels,
                resource_ref={"apiVersion": IAM, "kind": "IAMServiceAccount", "name": sa},
                role="roles/iam.workloadIdentityUser",
                member=f"principalSet://iam.googleapis.com/{pool}/attribute.namespace_path/"
                       f"{ctx.gitlab_domain_path(domain)}",
            )
        )
    return objects
