"""Facts the compiler derives once from the definitions and every module reads."""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property

from konfig.compile import naming
from konfig.definitions import Definitions
from konfig.model import Domain, Environment
from konfig.validate import project_id_for

#: APIs every domain-environment project needs whatever it runs (service accounts, tokens).
BASE_SERVICES = ("iam.googleapis.com", "iamcredentials.googleapis.com")
#: APIs the control-plane project needs, with why:
#: - container: the GKE cluster running Config Connector and the controller
#:   (https://cloud.google.com/config-connector/docs/how-to/install-manually);
#: - cloudresourcemanager, serviceusage, iam, cloudbilling: the Config Connector kinds the
#:   controller writes (Folder/Project, Service, IAMServiceAccount/IAMPolicyMember, the billing
#:   link of each new project);
#: - iamcredentials, sts: Workload Identity Federation for CI pipelines
#:   (https://cloud.google.com/iam/docs/workload-identity-federation-with-deployment-pipelines);
#: - artifactregistry: the domains' image repositories.
CONTROL_PLANE_SERVICES = (
    "artifactregistry.googleapis.com",
    "cloudbilling.googleapis.com",
    "cloudresourcemanager.googleapis.com",
    "container.googleapis.com",
    "iam.googleapis.com",
    "iamcredentials.googleapis.com",
    "serviceusage.googleapis.com",
    "sts.googleapis.com",
)


@dataclass
class CompileContext:
    """Derived facts: names of the control plane's project, folders and environments."""

    defs: Definitions
    notes: list[str] = field(default_factory=list)

    @property
    def cp(self):
        return self.defs.control_plane

    @property
    def cp_name(self) -> str:
        return self.cp.name

    @cached_property
    def cp_project_id(self) -> str:
        gcp = self.cp.spec.gcp
        return gcp.project_id or naming.control_plane_project_id(gcp.project_id_prefix, self.cp.name)

    @property
    def region(self) -> str:
        return self.cp.spec.gcp.default_region

    @cached_property
    def environments(self) -> dict[str, Environment]:
        return {e.name: e for e in self.cp.spec.environments}

    def domain_environments(self, domain: Domain) -> list[Environment]:
        """The domain's environments in promotion order."""
        return [self.environments[e] for e in self.defs.domain_environments(domain)]

    def project_id(self, domain: Domain, environment: str) -> str:
        return project_id_for(self.defs, domain, environment)

    def services(self, domain: Domain) -> list[str]:
        """APIs enabled in the domain's projects (see :meth:`Definitions.services`)."""
        return self.defs.services(domain)

    @property
    def gitlab_root(self) -> str:
        return self.cp.spec.gitlab.parent_group

    def gitlab_cp_path(self) -> str:
        return naming.gitlab_group_path(self.gitlab_root, self.cp_name)

    def gitlab_platform_path(self, platform: str) -> str:
        return naming.gitlab_group_path(self.gitlab_cp_path(), platform)

    def gitlab_domain_path(self, domain: Domain) -> str:
        return naming.gitlab_group_path(self.gitlab_platform_path(domain.spec.platform), domain.name)

    @property
    def project_number(self) -> str | None:
        return self.cp.spec.gcp.project_number

    @property
    def workload_identity_pool(self) -> str | None:
        """``projects/N/locations/global/workloadIdentityPools/gitlab``, when N is known."""
        if not self.project_number:
            return None
        return (
            f"projects/{self.project_number}/locations/global/workloadIdentityPools/"
            f"{naming.WORKLOAD_IDENTITY_POOL}"
        )

    def kcc_member(self, namespace: str) -> str:
        """Kubernetes service account Config Connector runs as for ``namespace`` in
        namespaced mode, as a Workload Identity member. Source:
        https://cloud.google.com/config-connector/docs/how-to/install-namespaced"""
        return (
            f"serviceAccount:{self.cp_project_id}.svc.id.goog"
            f"[cnrm-system/cnrm-controller-manager-{namespace}]"
        )
