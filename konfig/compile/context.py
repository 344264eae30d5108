"""Facts the compiler derives once from the definitions and every module reads."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from functools import cached_property

from konfig.compile import naming
from konfig.compile.ipam import EnvironmentRanges, plan_ranges
from konfig.compile.routes import Route, plan_routes
from konfig.compile.policy import TemplatePolicy
from konfig.compile.templates import TemplateEngine
from konfig.definitions import Definitions
from konfig.model import Domain, Environment
from konfig.validate import project_id_for

#: APIs every domain-environment project needs whatever it runs: service accounts and tokens,
#: and Compute Engine for its serverless network endpoint groups, backend services and Cloud
#: Armor policies, and to be a Shared VPC service project
#: (https://cloud.google.com/vpc/docs/provisioning-shared-vpc#prerequisites).
BASE_SERVICES = ("compute.googleapis.com", "iam.googleapis.com", "iamcredentials.googleapis.com")
#: APIs of each environment's Shared VPC host project: the network, private services access,
#: the private DNS zone of the internal host and the load balancers' certificates.
NETWORK_HOST_SERVICES = (
    "certificatemanager.googleapis.com",
    "compute.googleapis.com",
    "dns.googleapis.com",
    "servicenetworking.googleapis.com",
)


@dataclass(frozen=True)
class CompileFacts:
    """What the compiler may know of the live system, passed in by a shell (the operator reads
    it from the cluster); empty for an offline plan.

    ``service_urls`` maps ``(namespace, RunService name)`` to the service's URL as Config
    Connector reports it (``status.uri``): Cloud Run URLs contain the project number, which
    only exists once the project does (https://cloud.google.com/run/docs/triggering/https-request).
    """

    service_urls: Mapping[tuple[str, str], str] = field(default_factory=dict)
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
    facts: CompileFacts = field(default_factory=CompileFacts)
    #: The template engine of this compile (owns the compiled templates and CEL contexts).
    engine: TemplateEngine = field(default_factory=TemplateEngine)
    #: Object key -> (definition, field, who): the YAML each object came from (DesiredState.origins).
    origins: dict[tuple[str, str, str, str], tuple[Any, str, str]] = field(default_factory=dict)

    @cached_property
    def policy(self) -> TemplatePolicy:
        """The template policy of this control plane (konfig.compile.policy)."""
        return TemplatePolicy.of(self.cp)

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

    # ------------------------------------------------------------------ network and ingress

    @cached_property
    def ranges(self) -> dict[str, EnvironmentRanges]:
        """The address plan of each environment's network (see :mod:`konfig.compile.ipam`);
        environments whose range has a problem (reported by validation) are absent."""
        return plan_ranges(self.cp)[0]

    def host_project_id(self, environment: str) -> str:
        """The Shared VPC host project of ``environment``."""
        given = self.cp.spec.network.environments.get(environment)
        if given is not None and given.project_id:
            return given.project_id
        return naming.network_host_project_id(self.cp.spec.gcp.project_id_prefix, environment)

    def network_name(self, environment: str) -> str:
        """Name of the environment's VPC network in its host project."""
        return f"konfig-{environment}"

    def network_link(self, environment: str) -> str:
        """``projects/<host>/global/networks/<name>``: how other projects name the network."""
        return f"projects/{self.host_project_id(environment)}/global/networks/{self.network_name(environment)}"

    def subnet_name(self, environment: str, region: str) -> str:
        return f"konfig-{environment}-{region}"

    def subnet_link(self, environment: str, region: str) -> str:
        """``projects/<host>/regions/<region>/subnetworks/<name>``."""
        return (f"projects/{self.host_project_id(environment)}/regions/{region}/subnetworks/"
                f"{self.subnet_name(environment, region)}")

    def services_range_name(self, environment: str) -> str:
        """Name of the global address reserved for private services access."""
        return f"konfig-{environment}-services"

    @cached_property
    def routes(self) -> dict[tuple[str, str, str], Route]:
        """Load-balancer routes by ``(domain, workload, environment)`` (see
        :mod:`konfig.compile.routes`); routes with a problem (reported by validation) are absent."""
        return plan_routes(self.defs)[0]
