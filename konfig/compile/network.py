"""The shared network: per environment a Shared VPC host project with one network, and every
domain-environment project attached to it as a service project.

Per environment (spec/definitions.md, "Networking"; docs/networking.md), in ``konfig-system``
and actuated by the control plane's service account:

- the host project ``<prefix>net-<env>`` in the control-plane folder, with its APIs, enabled as
  a Shared VPC host;
- a custom-mode VPC network with regional routing, and per region in use a subnet with private
  Google access, a proxy-only subnet for internal application load balancers, and a Cloud
  Router with Cloud NAT for egress;
- private services access: a reserved range and the service networking connection, so Cloud SQL
  and Memorystore get private IPs on the network;
- firewall rules that deny every ingress by default and allow only the load balancers' health
  checks and proxies.

Per domain environment: the attachment as a service project; the project's Cloud Run service
agent (a ``ServiceIdentity``, so no project number is needed) and the domain's Config Connector
service account get ``roles/compute.networkUser`` on the environment's subnets only, never on
the host project; the service agent may pull the domain's images (``artifactregistry.reader``
on the domain's repository only). Sources:
https://cloud.google.com/vpc/docs/shared-vpc,
https://cloud.google.com/run/docs/configuring/shared-vpc-direct-vpc,
https://cloud.google.com/artifact-registry/docs/integrate-cloud-run#permissions.
"""

from __future__ import annotations

from konfig.compile import naming
from konfig.compile.access import kcc_service_account_object
from konfig.compile.context import NETWORK_HOST_SERVICES, CompileContext
from konfig.compile.hierarchy import (
    control_plane_folder_name,
    project_object,
    project_object_name,
    service_objects,
)
from konfig.compile.ipam import EnvironmentRanges
from konfig.compile.objects import konfig_labels, kube_object, object_name, policy_member
from konfig.compile.state import PROJECT_ID_ANNOTATION, SYSTEM_NAMESPACE, KubeObject
from konfig.model import Domain, Environment

COMPUTE = "compute.cnrm.cloud.google.com/v1beta1"
SERVICE_NETWORKING = "servicenetworking.cnrm.cloud.google.com/v1beta1"
SERVICE_USAGE = "serviceusage.cnrm.cloud.google.com/v1beta1"
IAM = "iam.cnrm.cloud.google.com/v1beta1"
AR = "artifactregistry.cnrm.cloud.google.com/v1beta1"

#: Source ranges of Google's health checkers and of the global external load balancers' Google
#: front ends. Source: https://cloud.google.com/load-balancing/docs/health-check-concepts#ip-ranges
HEALTH_CHECK_RANGES = ("35.191.0.0/16", "130.211.0.0/22")
#: Role the control plane's service account needs on the control-plane folder to enable host
#: projects and attach service projects. Source:
#: https://cloud.google.com/vpc/docs/shared-vpc#iam_in_shared_vpc (Shared VPC Admin)
SHARED_VPC_ADMIN_ROLE = "roles/compute.xpnAdmin"
#: Name of the ServiceIdentity object (in each domain-environment namespace) of the project's
#: Cloud Run service agent, ``service-<number>@serverless-robot-prod.iam.gserviceaccount.com``.
RUN_AGENT = "run-service-agent"


def network_object_name(environment: str) -> str:
    """Name of the ComputeNetwork object (in ``konfig-system``) of ``environment``."""
    return object_name("network", environment)


def subnet_object_name(environment: str, region: str) -> str:
    return object_name("subnet", environment, region)


def compile_network(ctx: CompileContext) -> list[KubeObject]:
    """Host projects, networks, subnets, NAT, private services access, firewall rules, and the
    Shared VPC attachment and grants of every domain environment."""
    objects = [_shared_vpc_admin(ctx)]
    for env in ctx.cp.spec.environments:
        ranges = ctx.ranges.get(env.name)
        if ranges is not None:
            objects += _host(ctx, env, ranges)
    for domain in sorted(ctx.defs.domains.values(), key=lambda d: d.name):
        for env in ctx.domain_environments(domain):
            if env.name in ctx.ranges:
                objects += _service_project(ctx, domain, env)
        if any(w.spec.runtime == "gke" for w in ctx.defs.workloads_of(domain.name)):
            objects.append(_node_reader(ctx, domain))
    return objects


def _node_reader(ctx: CompileContext, domain: Domain) -> KubeObject:
    """The control-plane cluster's node service account pulls the images of a domain that
    runs GKE workloads, from that domain's repository only."""
    repo = object_name("registry", domain.name)
    email = naming.service_account_email(naming.CLUSTER_NODE_SERVICE_ACCOUNT_ID, ctx.cp_project_id)
    return policy_member(
        object_name(repo, "reader", "gke-nodes"), namespace=SYSTEM_NAMESPACE,
        labels=konfig_labels(ctx.cp_name, domain.spec.platform, domain.name),
        resource_ref={"apiVersion": AR, "kind": "ArtifactRegistryRepository", "name": repo},
        role="roles/artifactregistry.reader", member=f"serviceAccount:{email}")


def _shared_vpc_admin(ctx: CompileContext) -> KubeObject:
    folder = control_plane_folder_name(ctx)
    return policy_member(
        object_name(folder, "compute-xpnadmin", "controller"), namespace=SYSTEM_NAMESPACE,
        labels=konfig_labels(ctx.cp_name),
        resource_ref={"apiVersion": "resourcemanager.cnrm.cloud.google.com/v1beta1",
                      "kind": "Folder", "name": folder},
        role=SHARED_VPC_ADMIN_ROLE,
        service_account_ref={"name": object_name("controller", ctx.cp_name)},
    )


def _in_host(ctx: CompileContext, env: str, kind: str, name: str, spec: dict | None,
             api: str = COMPUTE) -> KubeObject:
    return kube_object(api, kind, name, namespace=SYSTEM_NAMESPACE,
                       labels=konfig_labels(ctx.cp_name, environment=env),
                       annotations={PROJECT_ID_ANNOTATION: ctx.host_project_id(env)}, spec=spec)


def _host(ctx: CompileContext, env: Environment, ranges: EnvironmentRanges) -> list[KubeObject]:
    e = env.name
    host = ctx.host_project_id(e)
    labels = konfig_labels(ctx.cp_name, environment=e)
    network_ref = {"name": network_object_name(e)}
    objects = [
        project_object(ctx, host, f"{ctx.cp_name} network {e}"[:30],
                       control_plane_folder_name(ctx), labels),
        *service_objects(host, NETWORK_HOST_SERVICES, labels),
        _in_host(ctx, e, "ComputeSharedVPCHostProject", object_name("shared-vpc", e), None),
        _in_host(ctx, e, "ComputeNetwork", network_object_name(e), {
            "resourceID": ctx.network_name(e),
            "description": f"Shared VPC of environment {e} (managed by Konfig)",
            "autoCreateSubnetworks": False,
            "routingMode": "REGIONAL",
            "deleteDefaultRoutesOnCreate": False,
        }),
    ]
    for r in ranges.regions:
        subnet = subnet_object_name(e, r.region)
        objects += [
            _in_host(ctx, e, "ComputeSubnetwork", subnet, {
                "resourceID": ctx.subnet_name(e, r.region),
                "region": r.region,
                "ipCidrRange": r.subnet,
                "networkRef": network_ref,
                "privateIpGoogleAccess": True,
                "logConfig": {"aggregationInterval": "INTERVAL_5_SEC", "flowSampling": 0.5,
                              "metadata": "INCLUDE_ALL_METADATA"},
            }),
            _in_host(ctx, e, "ComputeSubnetwork", object_name("proxy", e, r.region), {
                "resourceID": f"{ctx.subnet_name(e, r.region)}-proxy",
                "region": r.region,
                "ipCidrRange": r.proxy,
                "networkRef": network_ref,
                "purpose": "REGIONAL_MANAGED_PROXY",
                "role": "ACTIVE",
            }),
            _in_host(ctx, e, "ComputeRouter", object_name("router", e, r.region), {
                "resourceID": f"konfig-{e}-{r.region}",
                "region": r.region,
                "networkRef": network_ref,
            }),
            _in_host(ctx, e, "ComputeRouterNAT", object_name("nat", e, r.region), {
                "resourceID": f"konfig-{e}-{r.region}",
                "region": r.region,
                "routerRef": {"name": object_name("router", e, r.region)},
                "natIpAllocateOption": "AUTO_ONLY",
                "sourceSubnetworkIpRangesToNat": "LIST_OF_SUBNETWORKS",
                "subnetwork": [{"subnetworkRef": {"name": subnet},
                                "sourceIpRangesToNat": ["ALL_IP_RANGES"]}],
                "logConfig": {"enable": True, "filter": "ERRORS_ONLY"},
            }),
        ]
    objects += _private_services_access(ctx, e, ranges)
    objects += _firewall(ctx, e, ranges)
    return objects


def _private_services_access(ctx: CompileContext, e: str, ranges: EnvironmentRanges) -> list[KubeObject]:
    address, prefix = ranges.services.split("/")
    name = object_name("services", e)
    return [
        _in_host(ctx, e, "ComputeAddress", name, {
            "resourceID": ctx.services_range_name(e),
            "location": "global",
            "addressType": "INTERNAL",
            "purpose": "VPC_PEERING",
            "address": address,
            "prefixLength": int(prefix),
            "networkRef": {"name": network_object_name(e)},
        }),
        _in_host(ctx, e, "ServiceNetworkingConnection", name, {
            "networkRef": {"name": network_object_name(e)},
            "service": "servicenetworking.googleapis.com",
            "reservedPeeringRanges": [{"name": name}],
        }, api=SERVICE_NETWORKING),
    ]


def _firewall(ctx: CompileContext, e: str, ranges: EnvironmentRanges) -> list[KubeObject]:
    """Deny every ingress (priority 65534, logged), then allow only health checks and the
    proxy-only subnets' proxies (priority 1000). Sources:
    https://cloud.google.com/load-balancing/docs/https#firewall-rules,
    https://cloud.google.com/load-balancing/docs/l7-internal#firewall_rules"""
    network_ref = {"name": network_object_name(e)}
    log = {"metadata": "INCLUDE_ALL_METADATA"}

    def rule(suffix: str, spec: dict) -> KubeObject:
        return _in_host(ctx, e, "ComputeFirewall", object_name("firewall", e, suffix), {
            "resourceID": f"konfig-{e}-{suffix}", "networkRef": network_ref,
            "direction": "INGRESS", "logConfig": log, **spec})

    return [
        rule("deny-ingress", {"priority": 65534, "sourceRanges": ["0.0.0.0/0"],
                              "deny": [{"protocol": "all"}]}),
        rule("allow-health-checks", {"priority": 1000, "sourceRanges": list(HEALTH_CHECK_RANGES),
                                     "allow": [{"protocol": "tcp"}]}),
        rule("allow-lb-proxies", {"priority": 1000, "sourceRanges": ranges.proxy_ranges,
                                  "allow": [{"protocol": "tcp"}]}),
    ]


def runs_cloud_run(ctx: CompileContext, domain: Domain) -> bool:
    return "run.googleapis.com" in ctx.services(domain)


def _service_project(ctx: CompileContext, domain: Domain, env: Environment) -> list[KubeObject]:
    e = env.name
    project_id = ctx.project_id(domain, e)
    namespace = naming.namespace_name(domain.name, e)
    labels = konfig_labels(ctx.cp_name, domain.spec.platform, domain.name, e)
    objects = [
        kube_object(COMPUTE, "ComputeSharedVPCServiceProject", object_name("shared-vpc", project_id),
                    namespace=SYSTEM_NAMESPACE, labels=labels,
                    annotations={PROJECT_ID_ANNOTATION: ctx.host_project_id(e)},
                    spec={"projectRef": {"name": project_object_name(project_id)}}),
    ]
    regions = [r.region for r in ctx.ranges[e].regions]
    kcc = kcc_service_account_object(domain.name, e)
    for region in regions:
        objects.append(_network_user(ctx, e, region, object_name("kcc", domain.name), labels,
                                     service_account_ref={"name": kcc}))
    if not runs_cloud_run(ctx, domain):
        return objects
    objects.append(kube_object(
        SERVICE_USAGE, "ServiceIdentity", RUN_AGENT, namespace=namespace, labels=labels,
        spec={"resourceID": "run.googleapis.com", "projectRef": {"external": f"projects/{project_id}"}}))
    agent = {"name": RUN_AGENT, "namespace": namespace}
    for region in regions:
        objects.append(_network_user(ctx, e, region, object_name("run", domain.name), labels,
                                     service_identity_ref=agent))
    repo = object_name("registry", domain.name)
    objects.append(policy_member(
        object_name(repo, "reader", e, "run"), namespace=SYSTEM_NAMESPACE, labels=labels,
        resource_ref={"apiVersion": AR, "kind": "ArtifactRegistryRepository", "name": repo},
        role="roles/artifactregistry.reader", service_identity_ref=agent))
    return objects


def _network_user(ctx: CompileContext, e: str, region: str, who: str, labels, **member) -> KubeObject:
    subnet = subnet_object_name(e, region)
    return policy_member(
        object_name(subnet, "networkuser", who), namespace=SYSTEM_NAMESPACE, labels=labels,
        resource_ref={"apiVersion": COMPUTE, "kind": "ComputeSubnetwork", "name": subnet},
        role="roles/compute.networkUser", **member)


def template_network(ctx: CompileContext, environment: str) -> dict[str, str]:
    """The ``network`` root of template expressions: ``{name, hostProject, selfLink, region,
    subnetwork, servicesRange}`` of the environment's network in the default region
    (``selfLink`` and ``subnetwork`` are ``projects/...`` paths, as Config Connector's
    ``external`` references take them)."""
    return {
        "name": ctx.network_name(environment),
        "hostProject": ctx.host_project_id(environment),
        "selfLink": ctx.network_link(environment),
        "region": ctx.region,
        "subnetwork": ctx.subnet_link(environment, ctx.region),
        "servicesRange": ctx.services_range_name(environment),
    }
