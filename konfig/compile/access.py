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
from konfig.compile.rawkcc import raw_kcc_roles
from konfig.compile.state import PROJECT_ID_ANNOTATION, SYSTEM_NAMESPACE, KubeObject
from konfig.model import Domain, GroupBinding

IAM = "iam.cnrm.cloud.google.com/v1beta1"
#: Default branch of the definitions repository (the GitLab projects Konfig creates use main).
DEFAULT_BRANCH = "main"
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
    objects += _control_plane_ci(ctx)
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
    # Raw Config Connector manifests of this environment add the allow-list's roles of their
    # API groups (ControlPlane spec.rawKcc; compile/rawkcc.py).
    roles = sorted({*KCC_BASE_ROLES, *(KCC_SERVICE_ROLES[s] for s in ctx.services(domain)
                                        if s in KCC_SERVICE_ROLES),
                    *raw_kcc_roles(ctx.defs, domain, environment)})
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


def ci_service_account_email(ctx: CompileContext, domain: str, environment: str) -> str:
    """Email of one domain environment's CI service account (in the control-plane project)."""
    return naming.service_account_email(naming.ci_service_account_id(domain, environment),
                                        ctx.cp_project_id)


def control_plane_ci_email(ctx: CompileContext, *, planner: bool = False) -> str:
    """Email of the definitions repository's applying (or, ``planner``, read-only) identity."""
    account = (naming.CONTROL_PLANE_PLANNER_SERVICE_ACCOUNT_ID if planner
               else naming.CONTROL_PLANE_CI_SERVICE_ACCOUNT_ID)
    return naming.service_account_email(account, ctx.cp_project_id)


def control_plane_project_path(ctx: CompileContext) -> str:
    """GitLab path of the definitions repository (``<parent>/<cp>/konfig-control-plane``)."""
    return naming.gitlab_group_path(ctx.gitlab_cp_path(), naming.CONTROL_PLANE_GITLAB_PROJECT)


def registry_path(ctx: CompileContext, domain: str) -> str:
    """Artifact Registry repository of a domain's images (Docker format), in the control-plane
    project. Source: https://cloud.google.com/artifact-registry/docs/docker/names"""
    return f"{ctx.region}-docker.pkg.dev/{ctx.cp_project_id}/{domain}"


#: Attributes of a GitLab CI job's ID token (claims: https://docs.gitlab.com/ci/secrets/
#: id_token_authentication/#token-payload; ``ref_protected`` is the string "true"/"false",
#: ``environment`` is present only for jobs with ``environment:``). Bindings name one attribute
#: value (principalSet), so the attributes that decide who may impersonate an identity combine
#: the claims that matter:
#:
#: * ``deployment``: ``<namespace_path>:<environment>``, the domain group and the GitLab
#:   environment the job deploys to (non-production identities);
#: * ``protected_deployment``: the same, but only for jobs on protected refs (else
#:   ``unprotected``), so a pipeline of an unprotected branch never matches a production
#:   binding even when its job names the production environment;
#: * ``protected_branch``: ``<project_path>:<branch>`` for protected branches only (the
#:   definitions repository's apply job).
#:
#: CEL mapping syntax: https://cloud.google.com/iam/docs/workload-identity-federation#mapping
CI_ATTRIBUTE_MAPPING = {
    "google.subject": "assertion.sub",
    "attribute.namespace_path": "assertion.namespace_path",
    "attribute.project_path": "assertion.project_path",
    "attribute.ref": "assertion.ref",
    "attribute.ref_type": "assertion.ref_type",
    "attribute.ref_protected": "assertion.ref_protected",
    "attribute.deployment":
        "assertion.namespace_path + ':' + "
        "('environment' in assertion ? assertion.environment : '')",
    "attribute.protected_deployment":
        "assertion.ref_protected == 'true' ? assertion.namespace_path + ':' + "
        "('environment' in assertion ? assertion.environment : '') : 'unprotected'",
    "attribute.protected_branch":
        "assertion.ref_protected == 'true' && assertion.ref_type == 'branch' ? "
        "assertion.project_path + ':' + assertion.ref : 'unprotected'",
}


def ci_member(ctx: CompileContext, attribute: str, value: str) -> str | None:
    """The principal set of every token whose ``attribute`` is ``value`` (``None`` until the
    control-plane project number, hence the pool's name, is known). Source:
    https://cloud.google.com/iam/docs/principal-identifiers"""
    pool = ctx.workload_identity_pool
    return f"principalSet://iam.googleapis.com/{pool}/attribute.{attribute}/{value}" if pool \
        else None


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
                "attributeMapping": CI_ATTRIBUTE_MAPPING,
                "attributeCondition": f"assertion.namespace_path.startsWith('{ctx.gitlab_root}/')",
            },
        ),
    ]


def _ci_identity(ctx: CompileContext, domain: Domain) -> list[KubeObject]:
    """A domain's CI identities, one service account per environment (spec "GitOps": CI
    identities are per domain environment). Each is impersonable only by jobs of projects in
    the domain's GitLab group that deploy to that environment; a production environment's only
    by such jobs on protected refs. Only the first environment's identity may push images (the
    build runs there); all may read the control-plane cluster's endpoint. Cluster RBAC (one
    RoleBinding in its own namespace) is compiled in :mod:`konfig.compile.namespaces`."""
    labels = konfig_labels(ctx.cp_name, domain.spec.platform, domain.name)
    repo = object_name("registry", domain.name)
    objects = [
        kube_object(
            AR, "ArtifactRegistryRepository", repo, namespace=SYSTEM_NAMESPACE, labels=labels,
            annotations={PROJECT_ID_ANNOTATION: ctx.cp_project_id},
            # Immutable tags: the git-<sha> tag a build pushes is the record release
            # promotion trusts, so nobody may move it (docs/gitops.md).
            spec={"resourceID": domain.name, "location": ctx.region, "format": "DOCKER",
                  "description": f"Images of domain {domain.name}",
                  "dockerConfig": {"immutableTags": True}},
        ),
    ]
    group_path = ctx.gitlab_domain_path(domain)
    for index, env in enumerate(ctx.domain_environments(domain)):
        env_labels = konfig_labels(ctx.cp_name, domain.spec.platform, domain.name, env.name)
        sa = object_name("ci", domain.name, env.name)
        objects.append(_service_account(
            sa, naming.ci_service_account_id(domain.name, env.name), ctx.cp_project_id,
            f"GitLab CI of domain {domain.name}, environment {env.name}", env_labels))
        if index == 0:
            objects.append(policy_member(
                object_name(repo, "writer", "ci", env.name), namespace=SYSTEM_NAMESPACE,
                labels=env_labels,
                resource_ref={"apiVersion": AR, "kind": "ArtifactRegistryRepository",
                              "name": repo},
                role="roles/artifactregistry.writer", service_account_ref={"name": sa}))
        objects.append(_cluster_viewer(ctx, sa, env_labels))
        attribute = "protected_deployment" if env.production else "deployment"
        member = ci_member(ctx, attribute, f"{group_path}:{env.name}")
        if member:
            objects.append(_workload_identity_user(sa, member, env_labels))
    return objects


def _cluster_viewer(ctx: CompileContext, sa: str, labels) -> KubeObject:
    """``container.clusters.get`` on the control-plane project (``gcloud container clusters
    get-credentials``); what the identity may do inside the cluster is Kubernetes RBAC."""
    return policy_member(
        object_name(sa, "cluster-viewer"), namespace=SYSTEM_NAMESPACE, labels=labels,
        resource_ref={"apiVersion": "resourcemanager.cnrm.cloud.google.com/v1beta1",
                      "kind": "Project", "name": project_object_name(ctx.cp_project_id)},
        role="roles/container.clusterViewer", service_account_ref={"name": sa})


def _workload_identity_user(sa: str, member: str, labels) -> KubeObject:
    return policy_member(
        object_name(sa, "workload-identity"), namespace=SYSTEM_NAMESPACE, labels=labels,
        resource_ref={"apiVersion": IAM, "kind": "IAMServiceAccount", "name": sa},
        role="roles/iam.workloadIdentityUser", member=member)


def _control_plane_ci(ctx: CompileContext) -> list[KubeObject]:
    """The definitions repository's identities (spec "GitOps"): ``konfig-ci`` applies, and is
    impersonable only by jobs of that one project on its protected default branch;
    ``konfig-planner`` reads, for merge request plans of that project. Their Kubernetes RBAC
    comes from the chart (``controlPlaneCI`` values)."""
    labels = konfig_labels(ctx.cp_name)
    project = control_plane_project_path(ctx)
    objects: list[KubeObject] = []
    for planner in (False, True):
        account = (naming.CONTROL_PLANE_PLANNER_SERVICE_ACCOUNT_ID if planner
                   else naming.CONTROL_PLANE_CI_SERVICE_ACCOUNT_ID)
        sa = object_name(account, ctx.cp_name)
        display = ("Konfig definitions: merge request plans (read-only)" if planner
                   else "Konfig definitions: apply from the protected default branch")
        objects.append(_service_account(sa, account, ctx.cp_project_id, display, labels))
        objects.append(_cluster_viewer(ctx, sa, labels))
        member = (ci_member(ctx, "project_path", project) if planner
                  else ci_member(ctx, "protected_branch", f"{project}:{DEFAULT_BRANCH}"))
        if member:
            objects.append(_workload_identity_user(sa, member, labels))
    return objects
