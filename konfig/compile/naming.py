"""How Konfig names what it creates. One place, so adapters and docs agree with the compiler.

All functions are pure and stable: the same input gives the same name on every run.
"""

from __future__ import annotations

from konfig.model import names

#: Object name of the ConfigConnectorContext; Config Connector requires exactly this name.
#: Source: https://cloud.google.com/config-connector/docs/how-to/install-namespaced
CONFIG_CONNECTOR_CONTEXT_NAME = "configconnectorcontext.core.cnrm.cloud.google.com"

#: Account ID of the Google service account Config Connector uses in one domain environment;
#: it lives in that environment's own project, so it is unique per project.
KCC_SERVICE_ACCOUNT_ID = "konfig-kcc"
#: Account ID of the control plane's own service account (in the control-plane project).
CONTROL_PLANE_SERVICE_ACCOUNT_ID = "konfig-controller"
#: Account ID of the node service account of the control-plane GKE cluster, where GKE
#: workloads run (created by `konfig bootstrap` with the cluster; never the Compute Engine
#: default account). It pulls the images of domains that run GKE workloads.
CLUSTER_NODE_SERVICE_ACCOUNT_ID = "konfig-nodes"
#: Account IDs of the definitions repository's CI identities (control-plane project): the one
#: that applies on the protected default branch, and the read-only one that plans merge requests.
CONTROL_PLANE_CI_SERVICE_ACCOUNT_ID = "konfig-ci"
#: The definitions repository's GitLab project, in the control plane's group.
CONTROL_PLANE_GITLAB_PROJECT = "konfig-control-plane"
CONTROL_PLANE_PLANNER_SERVICE_ACCOUNT_ID = "konfig-planner"
#: Workload Identity pool and provider (in the control-plane project) trusted by CI pipelines.
WORKLOAD_IDENTITY_POOL = "gitlab"
WORKLOAD_IDENTITY_PROVIDER = "gitlab"

#: ClusterRoles installed by the Helm chart (charts/konfig) and bound per domain-environment
#: namespace: the operator holds `bind` on exactly these, so it never needs `escalate`.
CLUSTER_ROLE_WORKLOAD_DEPLOYER = "konfig-workload-deployer"
CLUSTER_ROLE_VIEWER = "konfig-viewer"
CLUSTER_ROLE_DEFINITIONS_READER = "konfig-definitions-reader"

#: Names of the GitLab CI/CD variables Konfig sets on each domain group. The first four are
#: scoped to one GitLab environment (named like the Konfig environment).
CI_VAR_GCP_PROJECT = "KONFIG_GCP_PROJECT"
CI_VAR_NAMESPACE = "KONFIG_NAMESPACE"
CI_VAR_WIF_PROVIDER = "KONFIG_WIF_PROVIDER"
CI_VAR_CI_SERVICE_ACCOUNT = "KONFIG_CI_SERVICE_ACCOUNT"
#: Unscoped ("*") variables on the domain group.
CI_VAR_ENVIRONMENTS = "KONFIG_ENVIRONMENTS"  # space-separated, in promotion order
CI_VAR_PRODUCTION_ENVIRONMENTS = "KONFIG_PRODUCTION_ENVIRONMENTS"  # space-separated
CI_VAR_PLATFORM = "KONFIG_PLATFORM"
CI_VAR_DOMAIN = "KONFIG_DOMAIN"
CI_VAR_REGISTRY = "KONFIG_REGISTRY"  # Artifact Registry repository for the domain's images
#: Unscoped variables on the control-plane group (inherited by every project below).
CI_VAR_CONTROL_PLANE_PROJECT = "KONFIG_CONTROL_PLANE_PROJECT"
CI_VAR_REGION = "KONFIG_REGION"
CI_VAR_CLUSTER = "KONFIG_CLUSTER"  # name of the control-plane GKE cluster
CI_VAR_CLI_IMAGE = "KONFIG_CLI_IMAGE"  # image with konfig, gcloud and kubectl (promote jobs)
CI_VAR_WIF_PROVIDER_CP = CI_VAR_WIF_PROVIDER  # also on the control-plane group (its pipeline)
CI_VAR_CP_CI_SERVICE_ACCOUNT = "KONFIG_CP_CI_SERVICE_ACCOUNT"  # protected: apply on main
CI_VAR_CP_PLANNER_SERVICE_ACCOUNT = "KONFIG_CP_PLANNER_SERVICE_ACCOUNT"  # merge request plans


def namespace_name(domain: str, environment: str) -> str:
    """Namespace of one domain environment: ``<domain>-<environment>`` (≤ 29 characters,
    a valid DNS label since both parts are)."""
    return f"{domain}-{environment}"


def default_project_id(prefix: str, domain: str, environment: str) -> str:
    """Default GCP project ID of a domain environment: ``<prefix><domain>-<environment>``.

    When that exceeds 30 characters, the domain part is shortened and a 4-character hash of
    the full name is added so the ID stays unique and stable, and still ends with the
    environment (``acme-verylongdomainna-1a2b-prod``).
    """
    candidate = f"{prefix}{domain}-{environment}"
    if len(candidate) <= names.PROJECT_ID_MAX:
        return candidate
    digest = names.short_hash(candidate)
    room = names.PROJECT_ID_MAX - len(prefix) - len(environment) - len(digest) - 2
    return f"{prefix}{domain[:room].rstrip('-')}-{digest}-{environment}"


def control_plane_project_id(prefix: str, control_plane: str) -> str:
    """Default control-plane project ID: ``<prefix><control plane>-cp``."""
    return f"{prefix}{control_plane}-cp"


def workload_service_account_id(workload: str) -> str:
    """Account ID of a workload's dedicated service account: ``wl-<workload>`` (its project is
    the domain environment's, so the ID is unique there)."""
    return f"wl-{workload}"


#: Longest service-account ID GCP accepts (6-30 characters).
SERVICE_ACCOUNT_ID_MAX = 30


def ci_service_account_id(domain: str, environment: str) -> str:
    """Account ID of one domain environment's CI service account, in the control-plane
    project: ``ci-<domain>-<environment>`` (unique: domain names are unique in a control
    plane). Past 30 characters (the service-account ID limit) the domain part is shortened
    and a 4-character hash of the full name added, keeping the environment at the end:
    ``ci-averylongdomainna-1a2b-prod``. Source:
    https://cloud.google.com/iam/docs/service-accounts-create#creating"""
    candidate = f"ci-{domain}-{environment}"
    if len(candidate) <= SERVICE_ACCOUNT_ID_MAX:
        return candidate
    digest = names.short_hash(candidate)
    room = SERVICE_ACCOUNT_ID_MAX - len("ci-") - len(environment) - len(digest) - 2
    return f"ci-{domain[:room].rstrip('-')}-{digest}-{environment}"


def service_account_email(account_id: str, project_id: str) -> str:
    """Email of a user-managed service account. Source:
    https://cloud.google.com/iam/docs/service-account-overview#user-managed"""
    return f"{account_id}@{project_id}.iam.gserviceaccount.com"


def gitlab_group_path(*parts: str) -> str:
    """Join GitLab path segments into a full path."""
    return "/".join(parts)


def network_host_project_id(prefix: str, environment: str) -> str:
    """Default ID of an environment's Shared VPC host project: ``<prefix>net-<environment>``
    (``<prefix>network-<environment>`` where that would be under 6 characters)."""
    candidate = f"{prefix}net-{environment}"
    if len(candidate) < names.PROJECT_ID_MIN:
        candidate = f"{prefix}network-{environment}"
    return candidate


def network_tag(domain: str) -> str:
    """Network tag of a domain's Cloud Run instances on the shared network (egress firewall
    rules can tell domains apart by it): ``konfig-<domain>``."""
    return f"konfig-{domain}"
