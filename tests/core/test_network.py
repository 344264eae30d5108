"""The golden path's network and ingress (issue "golden path", spec "Networking" and "Ingress
and path routing"): on the example organisation (fixtures of tests/conftest.py) and on small
generated ones."""

from __future__ import annotations

import json

import pytest

from konfig.compile import compile_definitions
from konfig.compile.context import CompileFacts
from konfig.compile.ipam import default_cidr, split
from konfig.compile.state import DELETION_POLICY, LABEL_CONTROL_PLANE, PROJECT_ID_ANNOTATION
from konfig.errors import DefinitionError
from konfig.load import load_definitions
from tests.core.orgs import CONTROL_PLANE, DOMAIN, WORKLOAD, write_org


def of_kind(state, kind: str) -> list[dict]:
    return [o for o in state.kubernetes if o["kind"] == kind]


def named(state, kind: str, name: str, namespace: str = "konfig-system") -> dict:
    return next(o for o in of_kind(state, kind)
                if o["metadata"]["name"] == name and o["metadata"].get("namespace", "") == namespace)


def run_env(service: dict) -> dict[str, str]:
    container = service["spec"]["template"]["containers"][0]
    return {e["name"]: e["value"] for e in container["env"]}


# ------------------------------------------------------------------------- one network per env


def test_each_environment_has_a_host_project_with_a_shared_vpc(example_state, example_defs):
    envs = example_defs.control_plane.environment_names
    hosts = {p["spec"]["resourceID"] for p in of_kind(example_state, "Project")
             if p["spec"]["resourceID"].startswith("acme-net-")}
    assert hosts == {f"acme-net-{e}" for e in envs}
    cp_folder = next(f["metadata"]["name"] for f in of_kind(example_state, "Folder")
                     if "organizationRef" in f["spec"])
    for env in envs:
        project = named(example_state, "Project", f"acme-net-{env}")
        assert project["spec"]["folderRef"] == {"name": cp_folder}
        apis = {s["spec"]["resourceID"] for s in of_kind(example_state, "Service")
                if s["spec"].get("projectRef") == {"external": f"acme-net-{env}"}}
        assert {"compute.googleapis.com", "servicenetworking.googleapis.com",
                "dns.googleapis.com"} <= apis
        host = named(example_state, "ComputeSharedVPCHostProject", f"shared-vpc-{env}")
        assert host["metadata"]["annotations"][PROJECT_ID_ANNOTATION] == f"acme-net-{env}"
        network = named(example_state, "ComputeNetwork", f"network-{env}")
        assert network["spec"]["autoCreateSubnetworks"] is False
        assert network["spec"]["routingMode"] == "REGIONAL"


def test_subnets_nat_private_services_access_and_firewall(example_state):
    region = "europe-west1"
    subnet = named(example_state, "ComputeSubnetwork", f"subnet-dev-{region}")
    assert subnet["spec"]["ipCidrRange"] == "10.10.0.0/20"  # from spec.network.environments.dev
    assert subnet["spec"]["privateIpGoogleAccess"] is True
    proxy = named(example_state, "ComputeSubnetwork", f"proxy-dev-{region}")
    assert proxy["spec"]["purpose"] == "REGIONAL_MANAGED_PROXY" and proxy["spec"]["role"] == "ACTIVE"
    nat = named(example_state, "ComputeRouterNAT", f"nat-dev-{region}")
    assert nat["spec"]["routerRef"] == {"name": f"router-dev-{region}"}
    assert nat["spec"]["subnetwork"][0]["subnetworkRef"] == {"name": f"subnet-dev-{region}"}
    psa = named(example_state, "ComputeAddress", "services-dev")
    assert (psa["spec"]["purpose"], psa["spec"]["address"], psa["spec"]["prefixLength"]) == (
        "VPC_PEERING", "10.10.128.0", 18)
    connection = named(example_state, "ServiceNetworkingConnection", "services-dev")
    assert connection["spec"]["reservedPeeringRanges"] == [{"name": "services-dev"}]
    rules = {r["spec"]["resourceID"]: r["spec"] for r in of_kind(example_state, "ComputeFirewall")
             if r["metadata"]["labels"].get("konfig-environment") == "dev"}
    assert rules["konfig-dev-deny-ingress"]["deny"] == [{"protocol": "all"}]
    assert rules["konfig-dev-deny-ingress"]["priority"] == 65534
    assert rules["konfig-dev-allow-health-checks"]["sourceRanges"] == ["35.191.0.0/16", "130.211.0.0/22"]
    assert rules["konfig-dev-allow-lb-proxies"]["sourceRanges"] == [proxy["spec"]["ipCidrRange"]]
    assert all(r["direction"] == "INGRESS" for r in rules.values())
    assert len(rules) == 3  # nothing else is allowed in


def test_every_domain_environment_is_a_service_project_with_network_user_on_the_subnet_only(
        example_state, example_defs):
    attachments = {o["spec"]["projectRef"]["name"]: o["metadata"]["annotations"][PROJECT_ID_ANNOTATION]
                   for o in of_kind(example_state, "ComputeSharedVPCServiceProject")}
    for domain in example_defs.domains.values():
        for env in example_defs.domain_environments(domain):
            from konfig.validate import project_id_for
            assert attachments[project_id_for(example_defs, domain, env)] == f"acme-net-{env}"
    users = [m for m in of_kind(example_state, "IAMPolicyMember")
             if m["spec"]["role"] == "roles/compute.networkUser"]
    assert users
    assert {m["spec"]["resourceRef"]["kind"] for m in users} == {"ComputeSubnetwork"}
    ecommerce_dev = [m["spec"]["memberFrom"] for m in users
                     if m["metadata"]["labels"].get("konfig-domain") == "ecommerce"
                     and m["metadata"]["labels"].get("konfig-environment") == "dev"]
    assert {"serviceIdentityRef": {"name": "run-service-agent", "namespace": "ecommerce-dev"}} in ecommerce_dev
    assert {"serviceAccountRef": {"name": "kcc-ecommerce-dev"}} in ecommerce_dev
    # Nobody gets networkUser (or anything) on a host project.
    for m in of_kind(example_state, "IAMPolicyMember"):
        ref = m["spec"]["resourceRef"]
        assert not (ref["kind"] == "Project" and ref.get("name", "").startswith("acme-net-")), m["metadata"]["name"]


def test_cloud_run_egresses_through_its_environment_subnet_tagged_by_domain(example_state):
    for service in of_kind(example_state, "RunService"):
        env = service["metadata"]["labels"]["konfig-environment"]
        domain = service["metadata"]["labels"]["konfig-domain"]
        access = service["spec"]["template"]["vpcAccess"]
        assert access["egress"] == "ALL_TRAFFIC"
        (nic,) = access["networkInterfaces"]
        assert nic["networkRef"] == {"external": f"projects/acme-net-{env}/global/networks/konfig-{env}"}
        assert nic["subnetworkRef"] == {
            "external": f"projects/acme-net-{env}/regions/europe-west1/subnetworks/konfig-{env}-europe-west1"}
        assert nic["tags"] == [f"konfig-{domain}"]


def test_databases_and_caches_have_private_ips_only(example_state):
    for sql in of_kind(example_state, "SQLInstance"):
        ip = sql["spec"]["settings"]["ipConfiguration"]
        env = sql["metadata"]["labels"]["konfig-environment"]
        assert ip["ipv4Enabled"] is False
        assert ip["privateNetworkRef"]["external"] == f"projects/acme-net-{env}/global/networks/konfig-{env}"
    for redis in of_kind(example_state, "RedisInstance"):
        assert redis["spec"]["connectMode"] == "PRIVATE_SERVICE_ACCESS"
        assert redis["spec"]["authorizedNetworkRef"]["external"].startswith("projects/acme-net-")


def test_cloud_run_agents_pull_from_their_domain_repository_only(example_state, example_defs):
    readers = [m for m in of_kind(example_state, "IAMPolicyMember")
               if m["spec"]["role"] == "roles/artifactregistry.reader" and "memberFrom" in m["spec"]]
    assert readers
    for m in readers:
        domain = m["metadata"]["labels"]["konfig-domain"]
        env = m["metadata"]["labels"]["konfig-environment"]
        assert m["spec"]["resourceRef"] == {
            "apiVersion": "artifactregistry.cnrm.cloud.google.com/v1beta1",
            "kind": "ArtifactRegistryRepository", "name": f"registry-{domain}"}
        assert m["spec"]["memberFrom"] == {
            "serviceIdentityRef": {"name": "run-service-agent", "namespace": f"{domain}-{env}"}}
    running = {(s["metadata"]["labels"]["konfig-domain"], s["metadata"]["labels"]["konfig-environment"])
               for s in of_kind(example_state, "RunService")}
    pulling = {(m["metadata"]["labels"]["konfig-domain"], m["metadata"]["labels"]["konfig-environment"])
               for m in readers}
    assert running <= pulling
    for identity in of_kind(example_state, "ServiceIdentity"):
        if identity["metadata"]["name"] == "run-service-agent":  # others: CMEK agents
            assert identity["spec"]["resourceID"] == "run.googleapis.com"


def test_gke_nodes_pull_from_the_repositories_of_domains_with_gke_workloads(example_state, example_defs):
    nodes = [m for m in of_kind(example_state, "IAMPolicyMember")
             if m["spec"].get("member") == "serviceAccount:konfig-nodes@acme-konfig.iam.gserviceaccount.com"]
    gke_domains = {d for (d, _), w in example_defs.workloads.items() if w.spec.runtime == "gke"}
    assert gke_domains == {"fulfilment"}
    assert [(m["spec"]["role"], m["spec"]["resourceRef"]["name"]) for m in nodes] == [
        ("roles/artifactregistry.reader", "registry-fulfilment")]


# --------------------------------------------------------------------- load balancers, routes


def test_external_load_balancer_routes_each_external_workload_by_path(example_state):
    url_map = named(example_state, "ComputeURLMap", "konfig-prod-external")
    assert url_map["spec"]["hostRule"] == [{"hosts": ["shop.acme-retail.example"], "pathMatcher": "workloads"}]
    rules = {tuple(r["paths"]): r["service"]["backendServiceRef"]["external"]
             for r in url_map["spec"]["pathMatcher"][0]["pathRule"]}
    assert rules[("/checkout", "/checkout/*")].endswith(
        "/projects/acme-shop-prod/global/backendServices/lb-checkout")
    assert rules[("/pos", "/pos/*")].endswith("/projects/acme-stores-prod/global/backendServices/lb-pos-gateway")
    assert len(rules) == 3  # catalog, checkout, pos-gateway: the external workloads only
    assert url_map["spec"]["defaultUrlRedirect"]["hostRedirect"].endswith(".invalid")
    cert = named(example_state, "CertificateManagerCertificate", "konfig-prod-external")
    assert cert["spec"]["managed"]["domains"] == ["shop.acme-retail.example"]
    dev_cert = named(example_state, "CertificateManagerCertificate", "konfig-dev-external")
    assert dev_cert["spec"]["managed"]["domains"] == ["dev.shop.acme-retail.example"]
    proxy = named(example_state, "ComputeTargetHTTPSProxy", "konfig-prod-external")
    assert proxy["spec"]["certificateMapRef"] == {"name": "konfig-prod-external"}
    https = named(example_state, "ComputeForwardingRule", "konfig-prod-external-https")
    http = named(example_state, "ComputeForwardingRule", "konfig-prod-external-http")
    assert (https["spec"]["portRange"], http["spec"]["portRange"]) == ("443", "80")
    assert https["spec"]["ipAddress"] == http["spec"]["ipAddress"]
    redirect = named(example_state, "ComputeURLMap", "konfig-prod-external-http")
    assert redirect["spec"]["defaultUrlRedirect"]["httpsRedirect"] is True


def test_every_external_backend_has_cloud_armor_and_a_serverless_neg(example_state):
    backends = [b for b in of_kind(example_state, "ComputeBackendService")
                if b["spec"]["loadBalancingScheme"] == "EXTERNAL_MANAGED"]
    assert backends
    for b in backends:
        assert b["spec"]["securityPolicyRef"] == {"name": "konfig-edge"}
        ns = b["metadata"]["namespace"]
        named(example_state, "ComputeSecurityPolicy", "konfig-edge", ns)
        neg = named(example_state, "ComputeRegionNetworkEndpointGroup", b["metadata"]["name"], ns)
        assert neg["spec"]["networkEndpointType"] == "SERVERLESS"
        assert neg["spec"]["cloudRun"]["serviceRef"]["name"] == b["metadata"]["name"].removeprefix("lb-")
        assert b["spec"]["backend"][0]["group"]["networkEndpointGroupRef"]["external"].endswith(
            f"/networkEndpointGroups/{b['metadata']['name']}")


def test_platform_workloads_behind_the_internal_load_balancer_with_private_dns(example_state):
    url_map = named(example_state, "ComputeURLMap", "konfig-dev-internal")
    assert url_map["spec"]["location"] == "europe-west1"
    paths = sorted(r["paths"][0] for r in url_map["spec"]["pathMatcher"][0]["pathRule"])
    assert paths == ["/retail/payments/payments-api", "/supply-chain/inventory/stock-service"]
    rule = named(example_state, "ComputeForwardingRule", "konfig-dev-internal")
    assert rule["spec"]["loadBalancingScheme"] == "INTERNAL_MANAGED"
    zone = named(example_state, "DNSManagedZone", "konfig-dev-internal")
    assert zone["spec"]["dnsName"] == "internal.dev.shop.acme-retail.example."
    assert zone["spec"]["visibility"] == "private"
    record = named(example_state, "DNSRecordSet", "konfig-dev-internal")
    assert record["spec"]["rrdatasRefs"] == [{"kind": "ComputeAddress", "name": "konfig-dev-internal"}]


def test_ingress_settings_and_invokers_follow_visibility(example_state):
    services = {(s["metadata"]["namespace"], s["metadata"]["name"]): s for s in of_kind(example_state, "RunService")}
    cart = services[("ecommerce-dev", "cart")]  # domain: no load balancer
    assert cart["spec"]["ingress"] == "INGRESS_TRAFFIC_INTERNAL_ONLY"
    assert "customAudiences" not in cart["spec"]
    assert not [b for b in of_kind(example_state, "ComputeBackendService") if b["metadata"]["name"] == "lb-cart"]
    checkout = services[("ecommerce-dev", "checkout")]
    assert checkout["spec"]["ingress"] == "INGRESS_TRAFFIC_INTERNAL_LOAD_BALANCER"
    assert checkout["spec"]["customAudiences"] == ["https://dev.shop.acme-retail.example/checkout"]
    payments = services[("payments-dev", "payments-api")]
    assert payments["spec"]["ingress"] == "INGRESS_TRAFFIC_INTERNAL_ONLY"
    assert run_env(payments)["KONFIG_BASE_PATH"] == "/retail/payments/payments-api"


def test_dependency_urls_are_injected(example_defs):
    state = compile_definitions(example_defs)
    checkout = next(s for s in of_kind(state, "RunService")
                    if s["metadata"]["namespace"] == "ecommerce-dev" and s["metadata"]["name"] == "checkout")
    env = run_env(checkout)
    assert env["PAYMENTS_API_URL"] == "http://internal.dev.shop.acme-retail.example/retail/payments/payments-api"
    assert "CART_URL" not in env  # a domain workload's URL holds the project number: not known yet
    assert any("CART_URL" in n for n in state.notes)
    facts = CompileFacts(service_urls={("ecommerce-dev", "cart"): "https://cart-123.europe-west1.run.app"})
    with_url = compile_definitions(example_defs, facts)
    checkout = next(s for s in of_kind(with_url, "RunService")
                    if s["metadata"]["namespace"] == "ecommerce-dev" and s["metadata"]["name"] == "checkout")
    assert run_env(checkout)["CART_URL"] == "https://cart-123.europe-west1.run.app"


def test_new_objects_are_labelled_and_stateful_network_kinds_abandoned(example_state):
    kept = {"ComputeNetwork", "ComputeSubnetwork", "ComputeAddress", "CertificateManagerCertificate",
            "ServiceNetworkingConnection", "ComputeSharedVPCHostProject", "ComputeSharedVPCServiceProject"}
    for obj in example_state.kubernetes:
        assert obj["metadata"]["labels"][LABEL_CONTROL_PLANE] == "acme"
        if obj["kind"] in kept:
            assert obj["metadata"]["annotations"][DELETION_POLICY] == "abandon", obj["metadata"]["name"]


def test_plan_json_lists_networks_and_urls(example_state):
    nets = {n["environment"]: n for n in example_state.to_json()["networks"]}
    assert nets["prod"]["external_host"] == "shop.acme-retail.example"
    assert nets["prod"]["internal_host"] == "internal.prod.shop.acme-retail.example"
    urls = {r["workload"]: r["url"] for r in nets["prod"]["routes"]}
    assert urls["checkout"] == "https://shop.acme-retail.example/checkout"
    json.dumps(example_state.to_json())


# ---------------------------------------------------------------------------- generated orgs

HOSTED = CONTROL_PLANE + "  ingress: {host: api.acme.com}\n"


def external_workload(name: str, domain: str = "ecommerce", path: str | None = None) -> str:
    ingress = f"{{visibility: external, path: {path}}}" if path else "{visibility: external}"
    return (WORKLOAD.replace("name: checkout", f"name: {name}").replace("domain: ecommerce", f"domain: {domain}")
            + f"  ingress: {ingress}\n")


def domain(name: str, workloads: str) -> str:
    return DOMAIN.replace("name: ecommerce", f"name: {name}").replace("[checkout]", workloads)


def compile_org(tmp_path, **files):
    return compile_definitions(load_definitions(write_org(tmp_path, **files)))


def problems_of(tmp_path, **files) -> list[str]:
    write_org(tmp_path, **files)
    with pytest.raises(DefinitionError) as info:
        load_definitions(tmp_path)
    return [str(p) for p in info.value.problems]


def ranges_and_paths(state) -> tuple[dict, dict]:
    ranges = {o["metadata"]["name"]: o["spec"]["ipCidrRange"] for o in of_kind(state, "ComputeSubnetwork")}
    paths = {o["metadata"]["name"]: sorted(r["paths"][0] for r in o["spec"]["pathMatcher"][0]["pathRule"])
             for o in of_kind(state, "ComputeURLMap") if "pathMatcher" in o["spec"]}
    return ranges, paths


def test_adding_a_domain_or_an_environment_renumbers_nothing(tmp_path):
    one = compile_org(tmp_path / "a", **{"control-plane.yaml": HOSTED, "workload.yaml": external_workload("checkout")})
    two = compile_org(
        tmp_path / "b",
        **{"control-plane.yaml": HOSTED.replace("    - {name: dev}\n", "    - {name: dev}\n    - {name: qa}\n"),
           "workload.yaml": external_workload("checkout"),
           "domain2.yaml": domain("aaa-shop", "[front]"),
           "workload2.yaml": external_workload("front", "aaa-shop")})
    ranges_1, paths_1 = ranges_and_paths(one)
    ranges_2, paths_2 = ranges_and_paths(two)
    assert ranges_1.items() <= ranges_2.items()
    assert ranges_2["subnet-qa-us-central1"] == "10.16.0.0/20"
    for name, paths in paths_1.items():
        assert set(paths) <= set(paths_2[name])
    assert paths_1["konfig-dev-external"] == ["/retail/ecommerce/checkout"]


def test_same_definitions_compile_to_identical_output(tmp_path):
    files = {"control-plane.yaml": HOSTED, "workload.yaml": external_workload("checkout")}
    a = compile_org(tmp_path / "a", **files)
    b = compile_org(tmp_path / "b", **files)
    assert json.dumps(a.to_json(), sort_keys=True) == json.dumps(b.to_json(), sort_keys=True)


def test_default_ranges_are_stable_and_the_layout_fits():
    assert default_cidr("dev") == "10.10.0.0/16" and default_cidr("prod") == "10.30.0.0/16"
    assert default_cidr("sandbox") == default_cidr("sandbox")
    ranges = split("dev", "10.10.0.0/19", ["us-central1"], default=False)
    assert ranges.regions[0].proxy.endswith("/26")  # the smallest proxy-only subnet Google allows
    assert ranges.services.endswith("/21")
    with pytest.raises(ValueError, match="too small"):
        split("dev", "10.10.0.0/20", ["us-central1"], default=False)


@pytest.mark.parametrize(("files", "expected"), [
    pytest.param({"workload.yaml": external_workload("checkout")},
                 ["workload.yaml:10: spec.ingress.visibility: an external workload needs the external host"],
                 id="external-without-host"),
    pytest.param({"control-plane.yaml": HOSTED, "workload.yaml": external_workload("checkout", path="/a/../b")},
                 ["workload.yaml:10: spec.ingress.path: '/a/../b' has a '.' or '..' segment"], id="dotdot"),
    pytest.param({"control-plane.yaml": HOSTED, "workload.yaml": external_workload("checkout", path="/a//b")},
                 ["workload.yaml:10: spec.ingress.path: '/a//b' has an empty segment"], id="double-slash"),
    pytest.param({"control-plane.yaml": HOSTED, "workload.yaml": external_workload("checkout", path="/shop/")},
                 ["workload.yaml:10: spec.ingress.path: '/shop/' ends with '/'"], id="trailing-slash"),
    pytest.param({"control-plane.yaml": HOSTED + "  network: {environments: {dev: {cidr: 10.30.0.0/17}}}\n"},
                 ["spec.environments[2].name: range 10.30.0.0/16 of environment 'prod' overlaps the range 10.30.0.0/17 of environment 'dev'"],
                 id="overlap"),
    pytest.param({"control-plane.yaml": HOSTED + "  network: {environments: {dev: {cidr: 10.10.0.1/16}}}\n"},
                 ["spec.network.environments.dev.cidr: '10.10.0.1/16' has host bits set"],
                 id="host-bits"),
    pytest.param({"control-plane.yaml": HOSTED + "  network: {environments: {dev: {cidr: 8.8.0.0/16}}}\n"},
                 ["spec.network.environments.dev.cidr: '8.8.0.0/16' is not a private range"],
                 id="public-range"),
    pytest.param({"control-plane.yaml": HOSTED + "  network: {environments: {dev: {cidr: 10.10.0.0/24}}}\n"},
                 ["spec.network.environments.dev.cidr: 10.10.0.0/24 is too small"], id="too-small"),
    pytest.param({"control-plane.yaml": HOSTED + "  network: {environments: {qa: {cidr: 10.99.0.0/16}}}\n"},
                 ["spec.network.environments.qa: 'qa' is not an environment of the control plane"],
                 id="unknown-environment"),
    pytest.param({"workload.yaml": WORKLOAD + "  env: {GOOGLE_CLOUD_PROJECT: mine, RECEIPTS_BUCKET: x}\n"},
                 ["workload.yaml:10: spec.env.GOOGLE_CLOUD_PROJECT: GOOGLE_CLOUD_PROJECT is set by Konfig",
                  "spec.env.RECEIPTS_BUCKET: RECEIPTS_BUCKET is set by resource 'receipts'"],
                 id="env-replaces-injected"),
])
def test_bad_network_and_ingress_input(tmp_path, files, expected):
    problems = problems_of(tmp_path, **files)
    for fragment in expected:
        assert any(fragment in p for p in problems), (fragment, problems)


def test_two_workloads_on_one_path_are_both_named(tmp_path):
    problems = problems_of(
        tmp_path, **{"control-plane.yaml": HOSTED,
                     "workload.yaml": external_workload("checkout", path="/shop"),
                     "domain.yaml": DOMAIN.replace("[checkout]", "[checkout, cart]"),
                     "workload2.yaml": external_workload("cart", path="/shop")})
    clash = [p for p in problems if "path /shop" in p]
    # One of the two files, naming the other workload.
    assert clash and all(("workload2.yaml" in p and "'checkout'" in p) or ("workload.yaml" in p and "'cart'" in p)
                         for p in clash), problems


def test_a_gke_workload_is_refused_a_load_balanced_visibility(tmp_path):
    gke = external_workload("checkout").replace("  domain: ecommerce\n", "  domain: ecommerce\n  runtime: gke\n")
    problems = problems_of(tmp_path, **{"control-plane.yaml": HOSTED, "workload.yaml": gke})
    assert any("spec.ingress.visibility: visibility 'external' needs a load balancer" in p for p in problems), problems
