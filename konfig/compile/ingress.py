"""Load balancers and path routing (spec/definitions.md, "Ingress and path routing").

Per environment, only when a workload needs it (a load balancer with nothing behind it would
cost money and serve nothing):

- ``external`` workloads: one global external application load balancer in the environment's
  host project: a reserved global address, a Google-managed certificate for the external host
  (Certificate Manager, load-balancer authorization), an SSL policy (TLS 1.2+), the URL map
  routing each workload's path, the HTTPS proxy and forwarding rule, and a second URL map,
  proxy and forwarding rule on port 80 that redirect to HTTPS;
- ``platform`` and ``controlplane`` workloads: one regional internal application load balancer
  on the shared network (address in the subnet, URL map, HTTP proxy, forwarding rule), and a
  private DNS zone on the network with ``internal.<env>.<host>`` pointing at it.

Per routed workload, in its own namespace (its domain environment's project): a serverless
network endpoint group for its Cloud Run service and a backend service; external backends carry
the domain environment's Cloud Armor policy. The host project's URL map references those
backend services across projects, so the control plane's service account gets
``roles/compute.loadBalancerServiceUser`` on each such project. Sources:
https://cloud.google.com/load-balancing/docs/https/setting-up-https-serverless,
https://cloud.google.com/load-balancing/docs/l7-internal/setting-up-l7-internal-serverless,
https://cloud.google.com/load-balancing/docs/l7-internal/l7-internal-shared-vpc (cross-project
service referencing).

Requests that match no path are redirected to a host under ``.invalid`` (RFC 2606: it never
resolves), so they reach no workload; see docs/networking.md.
"""

from __future__ import annotations

from collections import defaultdict

from konfig.compile import naming
from konfig.compile.access import kcc_service_account_object
from konfig.compile.context import CompileContext
from konfig.compile.hierarchy import project_object_name
from konfig.compile.network import COMPUTE, network_object_name, subnet_object_name
from konfig.compile.objects import (
    konfig_labels,
    kube_object,
    object_name,
    policy_member,
    role_slug,
)
from konfig.compile.routes import LoadBalancer, Route
from konfig.compile.state import (
    PROJECT_ID_ANNOTATION,
    SYSTEM_NAMESPACE,
    KubeObject,
    NetworkView,
    RouteView,
    SubnetView,
)
from konfig.model import Domain

CERTIFICATE_MANAGER = "certificatemanager.cnrm.cloud.google.com/v1beta1"
DNS = "dns.cnrm.cloud.google.com/v1beta1"
RM = "resourcemanager.cnrm.cloud.google.com/v1beta1"

#: Where unmatched requests are sent: a reserved name that never resolves (RFC 2606).
UNROUTED_HOST = "unrouted.invalid"
#: URL maps accept at most 100 tests (https://cloud.google.com/load-balancing/docs/quotas,
#: "URL maps"): the first 100 routes by path are tested.
MAX_URL_MAP_TESTS = 100
#: Name of the Cloud Armor policy of a domain environment with external workloads.
EDGE_POLICY = "konfig-edge"
#: Roles a domain environment's Config Connector service account needs on its own project for
#: the load-balancer objects of its workloads. Source:
#: https://cloud.google.com/load-balancing/docs/access-control/iam-roles
KCC_LB_ROLES = ("roles/compute.loadBalancerAdmin",)
KCC_EDGE_ROLES = ("roles/compute.securityAdmin",)  # Cloud Armor policies
#: The host project's URL maps may use backend services of a service project. Source:
#: https://cloud.google.com/load-balancing/docs/https/setting-up-reg-ext-shared-vpc#cross-project
SERVICE_USER_ROLE = "roles/compute.loadBalancerServiceUser"


def lb_name(environment: str, lb: LoadBalancer) -> str:
    """Base name of one environment's load balancer objects: ``konfig-<env>-<external|internal>``."""
    return f"konfig-{environment}-{lb.value}"


def backend_name(workload: str) -> str:
    """Name (object and GCP resource) of a workload's network endpoint group and backend service."""
    return object_name("lb", workload)


def compile_ingress(ctx: CompileContext) -> list[KubeObject]:
    """Every load balancer, every routed workload's backend, and the grants they need."""
    by_lb: dict[tuple[str, LoadBalancer], list[Route]] = defaultdict(list)
    for route in ctx.routes.values():
        by_lb[(route.environment, route.load_balancer)].append(route)
    objects: list[KubeObject] = []
    for (env, lb), routes in sorted(by_lb.items()):
        if env not in ctx.ranges:
            continue
        routes.sort(key=lambda r: r.path)
        if lb is LoadBalancer.EXTERNAL:
            objects += _external(ctx, env, routes)
        else:
            objects += _internal(ctx, env, routes)
        for route in routes:
            objects += _backend(ctx, route)
    objects += _domain_grants(ctx, by_lb)
    return objects


# ------------------------------------------------------------------------------ front ends


def _in_host(ctx: CompileContext, env: str, api: str, kind: str, name: str, spec: dict) -> KubeObject:
    return kube_object(api, kind, name, namespace=SYSTEM_NAMESPACE,
                       labels=konfig_labels(ctx.cp_name, environment=env),
                       annotations={PROJECT_ID_ANNOTATION: ctx.host_project_id(env)}, spec=spec)


def backend_link(ctx: CompileContext, route: Route) -> str:
    """Self link of the route's backend service in its domain environment's project."""
    domain = ctx.defs.domains[route.domain]
    project = ctx.project_id(domain, route.environment)
    scope = "global" if route.load_balancer is LoadBalancer.EXTERNAL else f"regions/{ctx.region}"
    return (f"https://www.googleapis.com/compute/v1/projects/{project}/{scope}/backendServices/"
            f"{backend_name(route.workload)}")


def _url_map_spec(ctx: CompileContext, routes: list[Route], location: str) -> dict:
    host = routes[0].host
    unrouted = {"hostRedirect": UNROUTED_HOST, "redirectResponseCode": "FOUND", "stripQuery": True}
    rules, tests = [], []
    for route in routes:
        service = {"backendServiceRef": {"external": backend_link(ctx, route)}}
        rules.append({"paths": [route.path, f"{route.path}/*"], "service": service})
        tests.append({"host": host, "path": route.path,
                      "service": {"backendServiceRef": {"external": backend_link(ctx, route)}}})
    return {
        "location": location,
        "defaultUrlRedirect": unrouted,
        "hostRule": [{"hosts": [host], "pathMatcher": "workloads"}],
        "pathMatcher": [{"name": "workloads", "defaultUrlRedirect": unrouted, "pathRule": rules}],
        # GCP checks these when it accepts the URL map: each workload path reaches its backend.
        "test": tests[:MAX_URL_MAP_TESTS],
    }


def _external(ctx: CompileContext, env: str, routes: list[Route]) -> list[KubeObject]:
    name = lb_name(env, LoadBalancer.EXTERNAL)
    host = routes[0].host
    project_ref = {"external": f"projects/{ctx.host_project_id(env)}"}
    redirect = f"{name}-http"
    return [
        _in_host(ctx, env, COMPUTE, "ComputeAddress", name, {
            "resourceID": name, "location": "global", "addressType": "EXTERNAL",
            "ipVersion": "IPV4", "description": f"External load balancer of {host}"}),
        _in_host(ctx, env, CERTIFICATE_MANAGER, "CertificateManagerCertificate", name, {
            "resourceID": name, "location": "global", "projectRef": project_ref,
            "scope": "DEFAULT", "managed": {"domains": [host]},
            "description": f"Google-managed certificate of {host}"}),
        _in_host(ctx, env, CERTIFICATE_MANAGER, "CertificateManagerCertificateMap", name, {
            "resourceID": name, "projectRef": project_ref}),
        _in_host(ctx, env, CERTIFICATE_MANAGER, "CertificateManagerCertificateMapEntry", name, {
            "resourceID": name, "projectRef": project_ref, "hostname": host,
            "mapRef": {"name": name}, "certificatesRefs": [{"name": name}]}),
        _in_host(ctx, env, COMPUTE, "ComputeSSLPolicy", name, {
            "resourceID": name, "profile": "MODERN", "minTlsVersion": "TLS_1_2"}),
        _in_host(ctx, env, COMPUTE, "ComputeURLMap", name,
                 {"resourceID": name, **_url_map_spec(ctx, routes, "global")}),
        _in_host(ctx, env, COMPUTE, "ComputeTargetHTTPSProxy", name, {
            "resourceID": name, "location": "global", "urlMapRef": {"name": name},
            "certificateMapRef": {"name": name}, "sslPolicyRef": {"name": name}}),
        _in_host(ctx, env, COMPUTE, "ComputeForwardingRule", f"{name}-https", {
            "resourceID": f"{name}-https", "location": "global",
            "loadBalancingScheme": "EXTERNAL_MANAGED", "ipProtocol": "TCP", "portRange": "443",
            "ipAddress": {"addressRef": {"name": name}},
            "target": {"targetHTTPSProxyRef": {"name": name}}}),
        # Port 80 only redirects to HTTPS.
        _in_host(ctx, env, COMPUTE, "ComputeURLMap", redirect, {
            "resourceID": redirect, "location": "global",
            "defaultUrlRedirect": {"httpsRedirect": True, "stripQuery": False,
                                   "redirectResponseCode": "MOVED_PERMANENTLY_DEFAULT"}}),
        _in_host(ctx, env, COMPUTE, "ComputeTargetHTTPProxy", redirect, {
            "resourceID": redirect, "location": "global", "urlMapRef": {"name": redirect}}),
        _in_host(ctx, env, COMPUTE, "ComputeForwardingRule", redirect, {
            "resourceID": redirect, "location": "global",
            "loadBalancingScheme": "EXTERNAL_MANAGED", "ipProtocol": "TCP", "portRange": "80",
            "ipAddress": {"addressRef": {"name": name}},
            "target": {"targetHTTPProxyRef": {"name": redirect}}}),
    ]


def _internal(ctx: CompileContext, env: str, routes: list[Route]) -> list[KubeObject]:
    name = lb_name(env, LoadBalancer.INTERNAL)
    host = routes[0].host
    region = ctx.region
    network_ref = {"name": network_object_name(env)}
    subnet_ref = {"name": subnet_object_name(env, region)}
    return [
        _in_host(ctx, env, COMPUTE, "ComputeAddress", name, {
            "resourceID": name, "location": region, "addressType": "INTERNAL",
            "subnetworkRef": subnet_ref, "description": f"Internal load balancer of {host}"}),
        _in_host(ctx, env, COMPUTE, "ComputeURLMap", name,
                 {"resourceID": name, **_url_map_spec(ctx, routes, region)}),
        _in_host(ctx, env, COMPUTE, "ComputeTargetHTTPProxy", name, {
            "resourceID": name, "location": region, "urlMapRef": {"name": name}}),
        _in_host(ctx, env, COMPUTE, "ComputeForwardingRule", name, {
            "resourceID": name, "location": region, "loadBalancingScheme": "INTERNAL_MANAGED",
            "ipProtocol": "TCP", "portRange": "80", "networkRef": network_ref,
            "subnetworkRef": subnet_ref, "ipAddress": {"addressRef": {"name": name}},
            "target": {"targetHTTPProxyRef": {"name": name}}}),
        _in_host(ctx, env, DNS, "DNSManagedZone", name, {
            "resourceID": name, "dnsName": f"{host}.", "visibility": "private",
            "description": f"Internal host of environment {env} (managed by Konfig)",
            "privateVisibilityConfig": {"networks": [{"networkRef": network_ref}]}}),
        _in_host(ctx, env, DNS, "DNSRecordSet", name, {
            "name": f"{host}.", "type": "A", "ttl": 300, "managedZoneRef": {"name": name},
            "rrdatasRefs": [{"kind": "ComputeAddress", "name": name}]}),
    ]


# -------------------------------------------------------------------- per-workload backends


def _workload_labels(ctx: CompileContext, route: Route) -> dict[str, str]:
    domain = ctx.defs.domains[route.domain]
    return konfig_labels(ctx.cp_name, domain.spec.platform, route.domain, route.environment,
                         route.workload)


def _backend(ctx: CompileContext, route: Route) -> list[KubeObject]:
    namespace = naming.namespace_name(route.domain, route.environment)
    labels = _workload_labels(ctx, route)
    name = backend_name(route.workload)
    external = route.load_balancer is LoadBalancer.EXTERNAL
    project = ctx.project_id(ctx.defs.domains[route.domain], route.environment)
    backend: dict = {
        "resourceID": name,
        "location": "global" if external else ctx.region,
        "loadBalancingScheme": "EXTERNAL_MANAGED" if external else "INTERNAL_MANAGED",
        "protocol": "HTTPS",
        # By self link: Config Connector resolves a name here only to the zonal/global kind
        # ComputeNetworkEndpointGroup (servicemappings/compute.yaml), not to the regional one.
        "backend": [{"group": {"networkEndpointGroupRef": {"external": (
            f"https://www.googleapis.com/compute/v1/projects/{project}/regions/{ctx.region}/"
            f"networkEndpointGroups/{name}")}}}],
        "logConfig": {"enable": True, "sampleRate": 1.0},
    }
    if external:
        backend["securityPolicyRef"] = {"name": EDGE_POLICY}
    return [
        kube_object(COMPUTE, "ComputeRegionNetworkEndpointGroup", name, namespace=namespace,
                    labels=labels, spec={
                        "resourceID": name, "region": ctx.region,
                        "networkEndpointType": "SERVERLESS",
                        "cloudRun": {"serviceRef": {"name": route.workload}}}),
        kube_object(COMPUTE, "ComputeBackendService", name, namespace=namespace, labels=labels,
                    spec=backend),
    ]


def _edge_policy(ctx: CompileContext, domain: Domain, env: str) -> KubeObject:
    """Cloud Armor: Google's preconfigured SQL-injection and XSS rules (enforced in production,
    in preview elsewhere so teams see what they would block), Layer 7 DDoS adaptive
    protection, and allow by default. Source:
    https://cloud.google.com/armor/docs/waf-rules"""
    production = ctx.environments[env].production
    waf = [(1000, "sqli-v33-stable"), (1001, "xss-v33-stable")]
    rules = [
        {"priority": priority, "action": "deny(403)", "preview": not production,
         "description": f"Preconfigured WAF rule {expr}",
         "match": {"expr": {"expression": f"evaluatePreconfiguredWaf('{expr}')"}}}
        for priority, expr in waf
    ]
    rules.append({"priority": 2147483647, "action": "allow", "description": "Default rule",
                  "match": {"versionedExpr": "SRC_IPS_V1", "config": {"srcIpRanges": ["*"]}}})
    return kube_object(
        COMPUTE, "ComputeSecurityPolicy", EDGE_POLICY,
        namespace=naming.namespace_name(domain.name, env),
        labels=konfig_labels(ctx.cp_name, domain.spec.platform, domain.name, env),
        spec={"resourceID": EDGE_POLICY, "type": "CLOUD_ARMOR",
              "description": "Edge policy of the external load balancer's backends (Konfig)",
              "adaptiveProtectionConfig": {"layer7DdosDefenseConfig": {"enable": True}},
              "rule": rules})


def _domain_grants(ctx: CompileContext, by_lb: dict[tuple[str, LoadBalancer], list[Route]]) -> list[KubeObject]:
    """Per domain environment with routed workloads: its Cloud Armor policy (if external), the
    load-balancer roles of its Config Connector account on its project, and the control
    plane's use of its backend services."""
    kinds: dict[tuple[str, str], set[LoadBalancer]] = defaultdict(set)
    for (env, lb), routes in by_lb.items():
        if env in ctx.ranges:
            for route in routes:
                kinds[(route.domain, env)].add(lb)
    objects: list[KubeObject] = []
    for (domain_name, env), lbs in sorted(kinds.items()):
        domain = ctx.defs.domains[domain_name]
        project = project_object_name(ctx.project_id(domain, env))
        labels = konfig_labels(ctx.cp_name, domain.spec.platform, domain_name, env)
        project_ref = {"apiVersion": RM, "kind": "Project", "name": project}
        roles = list(KCC_LB_ROLES)
        if LoadBalancer.EXTERNAL in lbs:
            objects.append(_edge_policy(ctx, domain, env))
            roles += KCC_EDGE_ROLES
        kcc = kcc_service_account_object(domain_name, env)
        for role in roles:
            objects.append(policy_member(
                object_name(kcc, role_slug(role)), namespace=SYSTEM_NAMESPACE, labels=labels,
                resource_ref=project_ref, role=role, service_account_ref={"name": kcc}))
        objects.append(policy_member(
            object_name(project, role_slug(SERVICE_USER_ROLE), "controller"),
            namespace=SYSTEM_NAMESPACE, labels=labels, resource_ref=project_ref,
            role=SERVICE_USER_ROLE, service_account_ref={"name": object_name("controller", ctx.cp_name)}))
    return objects


# ------------------------------------------------------------------------- the plan's view


def own_url(ctx: CompileContext, workload, namespace: str) -> str | None:
    """A workload's URL where no load balancer serves it: the Kubernetes Service of a GKE
    workload; the Cloud Run service's URL once Config Connector reports it; none for Dataflow."""
    if workload.spec.runtime == "gke":
        return f"http://{workload.name}.{namespace}.svc.cluster.local"
    if workload.spec.runtime == "dataflow":
        return None
    return ctx.facts.service_urls.get((namespace, workload.name))


def network_views(ctx: CompileContext) -> tuple[NetworkView, ...]:
    """Per environment: the network, the hosts of the load balancers it renders and every
    workload's route (sorted by domain and workload), for ``konfig plan``."""
    views = []
    for env in ctx.cp.spec.environments:
        ranges = ctx.ranges.get(env.name)
        if ranges is None:
            continue
        routes = []
        for (domain_name, name) in sorted(ctx.defs.workloads):
            domain = ctx.defs.domains.get(domain_name)
            if domain is None or env.name not in ctx.defs.domain_environments(domain):
                continue
            workload = ctx.defs.workload_in(domain_name, name, env.name)
            if workload is None:
                continue
            route = ctx.routes.get((domain_name, name, env.name))
            namespace = naming.namespace_name(domain_name, env.name)
            url = route.url if route else own_url(ctx, workload, namespace)
            routes.append(RouteView(
                domain_name, name, workload.spec.ingress.visibility,
                route.load_balancer.value if route else "none",
                route.path if route else None, url))
        hosts = {r.load_balancer: r.host for r in ctx.routes.values() if r.environment == env.name}
        views.append(NetworkView(
            environment=env.name, host_project=ctx.host_project_id(env.name),
            network=ctx.network_name(env.name), cidr=ranges.cidr,
            subnets=tuple(SubnetView(r.region, r.subnet, r.proxy) for r in ranges.regions),
            services_range=ranges.services,
            external_host=hosts.get(LoadBalancer.EXTERNAL),
            internal_host=hosts.get(LoadBalancer.INTERNAL),
            routes=tuple(routes)))
    return tuple(views)
