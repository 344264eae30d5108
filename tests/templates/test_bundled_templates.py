"""The bundled resource templates: each passes the load-time checks, and every access mode
renders, in a non-production and a production environment, into Config Connector objects that
validate against the upstream CRDs with no unknown fields."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from konfig.compile.templates import check_template, render_resource, sample_params
from konfig.errors import Location
from konfig.kcc_schema import validate_object
from konfig.model.controlplane import Environment
from konfig.model.template import ResourceTemplate
from konfig.model.workload import ResourceRequest
from konfig.resources import bundled_dir
from konfig.yamlsource import parse_documents

from tests.templates.helpers import DEV, PROD, context

REQUIRED = {
    "cloudsql-postgres": {"read", "readwrite"},
    "storage-bucket": {"read", "write", "admin"},
    "pubsub-topic": {"publish"},
    "pubsub-subscription": {"subscribe"},
    "redis": {"readwrite"},
    "secret": {"read"},
    "firestore": {"read", "readwrite"},
}
#: Roles no workload may get from a template (spec/definitions.md, "Invariants").
FORBIDDEN_ROLES = {"roles/owner", "roles/editor"}


def _load() -> dict[str, ResourceTemplate]:
    templates = {}
    root = bundled_dir("resource-templates")
    for path in sorted(root.glob("*.yaml")):
        documents, problems = parse_documents(path.read_text(encoding="utf-8"))
        assert not problems, (path, problems)
        for document in documents:
            template = ResourceTemplate.model_validate(document.data)
            template.bind_source(Location(f"resource-templates/{path.name}", document.line),
                                 document.lines)
            templates[template.name] = template
    return templates


TEMPLATES = _load()
CASES = [
    (name, access, environment)
    for name, template in sorted(TEMPLATES.items())
    for access in sorted(template.spec.access)
    for environment in (DEV, PROD)
]


def render(name: str, access: str, environment: Environment, *, workload="checkout",
           resource="orders", **params):
    template = TEMPLATES[name]
    request = ResourceRequest(name=resource, template=name, access=access,
                              params={**sample_params(template), **params})
    ctx = context(environment, workload=workload, resource=resource)
    ctx["resource"]["access"] = access
    return render_resource(template, request=request, environment=environment, context=ctx)


def test_the_required_templates_and_access_modes_are_bundled():
    for name, modes in REQUIRED.items():
        assert name in TEMPLATES, name
        assert modes <= set(TEMPLATES[name].spec.access), name


@pytest.mark.parametrize("name", sorted(TEMPLATES))
def test_template_passes_load_time_checks(name):
    assert [str(p) for p in check_template(TEMPLATES[name])] == []


@pytest.mark.parametrize("name", sorted(TEMPLATES))
def test_every_access_mode_names_its_source_and_no_broad_role(name):
    spec = TEMPLATES[name].spec
    for access in spec.access:
        mode = spec.access_mode(access)
        assert mode.source and "https://cloud.google.com/" in mode.source, (name, access)
        assert not FORBIDDEN_ROLES & set(mode.roles), (name, access)
    assert spec.services and all(s.endswith(".googleapis.com") for s in spec.services)


@pytest.mark.parametrize(("name", "access", "environment"), CASES,
                         ids=[f"{n}-{a}-{e.name}" for n, a, e in CASES])
def test_renders_objects_that_validate_against_their_crds(name, access, environment):
    rendered = render(name, access, environment)
    assert rendered.objects
    for obj in rendered.objects:
        assert validate_object(obj) == [], (obj["kind"], json.dumps(obj, indent=1))
        assert "namespace" not in obj["metadata"]
        assert "password" not in json.dumps(obj).lower()  # IAM everywhere, no secrets in Git
    assert rendered.env and all(isinstance(v, str) and v for v in rendered.env.values())
    if rendered.bind_to == "project":
        assert rendered.bind_target is None
    else:
        assert rendered.bind_target in rendered.objects


@pytest.mark.parametrize("name", sorted(TEMPLATES))
def test_long_names_still_validate(name):
    """Workload and resource names at their limits (24 characters each) on a 30-character
    project: names derived from them must still fit Kubernetes and GCP limits."""
    workload, resource = "w" * 23 + "1", "r" * 23 + "2"
    for environment in (DEV, PROD):
        template = TEMPLATES[name]
        access = sorted(template.spec.access)[0]
        request = ResourceRequest(name=resource, template=name, access=access,
                                  params=sample_params(template))
        ctx = context(environment, workload=workload, resource=resource)
        ctx["domain"]["projectId"] = "acme-a-very-long-domain-" + environment.name.ljust(5, "x")
        rendered = render_resource(template, request=request, environment=environment, context=ctx)
        for obj in rendered.objects:
            assert validate_object(obj) == [], obj
            resource_id = obj["spec"].get("resourceID", "")
            assert len(resource_id) <= 63, resource_id


def test_cloudsql_is_ha_and_protected_in_production_only():
    dev = render("cloudsql-postgres", "readwrite", DEV).objects[0]["spec"]["settings"]
    prod = render("cloudsql-postgres", "readwrite", PROD).objects[0]["spec"]["settings"]
    assert (dev["availabilityType"], prod["availabilityType"]) == ("ZONAL", "REGIONAL")
    assert (dev["deletionProtectionEnabled"], prod["deletionProtectionEnabled"]) == (False, True)
    assert prod["backupConfiguration"]["pointInTimeRecoveryEnabled"] is True
    assert prod["backupConfiguration"]["backupRetentionSettings"]["retainedBackups"] >= 14
    assert dev["tier"] != prod["tier"]
    for settings in (dev, prod):
        assert {"name": "cloudsql.iam_authentication", "value": "on"} in settings["databaseFlags"]
        assert settings["connectorEnforcement"] == "REQUIRED"


def test_cloudsql_golden_path_is_iam_database_authentication():
    rendered = render("cloudsql-postgres", "readwrite", DEV)
    kinds = {o["kind"]: o for o in rendered.objects}
    assert set(kinds) == {"SQLInstance", "SQLDatabase", "SQLUser"}
    user = kinds["SQLUser"]["spec"]
    assert user["type"] == "CLOUD_IAM_SERVICE_ACCOUNT"
    email = "wl-checkout@acme-shop-dev.iam.gserviceaccount.com"
    # Postgres IAM users are the service account email without ".gserviceaccount.com"
    assert user["resourceID"] == rendered.env["DB_USER"] == email.removesuffix(".gserviceaccount.com")
    instance = kinds["SQLInstance"]["metadata"]["name"]
    assert kinds["SQLDatabase"]["spec"]["instanceRef"] == {"name": instance}
    assert user["instanceRef"] == {"name": instance}
    assert rendered.env["DB_INSTANCE"] == f"acme-shop-dev:us-central1:{instance}"
    assert rendered.env["DB_NAME"] == kinds["SQLDatabase"]["spec"]["resourceID"] == "orders"
    assert rendered.bind_to == "project"
    assert rendered.roles == ("roles/cloudsql.client", "roles/cloudsql.instanceUser")


def test_cloudsql_extra_flags_are_sorted_after_iam_authentication():
    flags = render("cloudsql-postgres", "read", DEV,
                   databaseFlags={"max_connections": "200", "log_min_duration_statement": "500"}
                   ).objects[0]["spec"]["settings"]["databaseFlags"]
    assert [f["name"] for f in flags] == [
        "cloudsql.iam_authentication", "log_min_duration_statement", "max_connections"]


def test_storage_roles_grow_with_access_and_bind_on_the_bucket():
    roles = {a: set(render("storage-bucket", a, DEV).roles) for a in ("read", "write", "admin")}
    assert roles["read"] == {"roles/storage.objectViewer"}
    assert roles["write"] == {"roles/storage.objectCreator", "roles/storage.objectViewer"}
    assert roles["admin"] == {"roles/storage.objectAdmin"}
    rendered = render("storage-bucket", "write", PROD)
    assert rendered.bind_target["kind"] == "StorageBucket"
    spec = rendered.bind_target["spec"]
    assert spec["versioning"] == {"enabled": True} and spec["lifecycleRule"]
    assert spec["uniformBucketLevelAccess"] is True and spec["publicAccessPrevention"] == "enforced"
    assert render("storage-bucket", "write", DEV).bind_target["spec"]["versioning"] == {
        "enabled": False}
    assert rendered.env["BUCKET"] == spec["resourceID"]


def test_bucket_names_are_global_so_they_include_the_project():
    dev = render("storage-bucket", "read", DEV).env["BUCKET"]
    prod = render("storage-bucket", "read", PROD).env["BUCKET"]
    assert dev != prod and "acme-shop-dev" in dev


def test_pubsub_binds_on_the_topic_and_the_subscription():
    topic = render("pubsub-topic", "publish", PROD)
    assert topic.roles == ("roles/pubsub.publisher",)
    assert topic.bind_target["kind"] == "PubSubTopic"
    assert topic.bind_target["spec"]["messageRetentionDuration"] == "604800s"
    assert "messageRetentionDuration" not in render("pubsub-topic", "publish", DEV).objects[0]["spec"]
    assert topic.env["TOPIC"] == "projects/acme-shop-prod/topics/checkout-orders"
    sub = render("pubsub-subscription", "subscribe", DEV, topic="billing-invoices")
    assert sub.roles == ("roles/pubsub.subscriber",)
    assert sub.bind_target["kind"] == "PubSubSubscription"
    assert sub.bind_target["spec"]["topicRef"] == {"name": "billing-invoices"}
    external = render("pubsub-subscription", "subscribe", DEV,
                      topic="projects/acme-pay-dev/topics/settled")
    assert external.objects[0]["spec"]["topicRef"] == {
        "external": "projects/acme-pay-dev/topics/settled"}


def test_redis_is_highly_available_in_production_and_reachable_only_by_network():
    dev = render("redis", "readwrite", DEV)
    prod = render("redis", "readwrite", PROD)
    assert (dev.objects[0]["spec"]["tier"], prod.objects[0]["spec"]["tier"]) == (
        "BASIC", "STANDARD_HA")
    assert prod.roles == ("roles/redis.viewer",) and prod.bind_to == "project"
    # Private services access on the environment's shared network, never a project's own.
    spec = prod.objects[0]["spec"]
    assert spec["authorizedNetworkRef"]["external"] == "projects/acme-net-prod/global/networks/konfig-prod"
    assert spec["connectMode"] == "PRIVATE_SERVICE_ACCESS"
    assert spec["reservedIpRange"] == "konfig-prod-services"


def test_cloudsql_has_a_private_ip_only_on_the_shared_network():
    for env in (DEV, PROD):
        ip = render("cloudsql-postgres", "readwrite", env).objects[0]["spec"]["settings"]["ipConfiguration"]
        assert ip["ipv4Enabled"] is False
        assert ip["privateNetworkRef"] == {
            "external": f"projects/acme-net-{env.name}/global/networks/konfig-{env.name}"}
        assert ip["allocatedIpRange"] == f"konfig-{env.name}-services"


def test_secret_and_firestore_roles():
    secret = render("secret", "read", PROD)
    assert secret.roles == ("roles/secretmanager.secretAccessor",)
    assert secret.bind_target["kind"] == "SecretManagerSecret"
    assert secret.env["SECRET"] == "projects/acme-shop-prod/secrets/checkout-orders"
    assert render("firestore", "read", DEV).roles == ("roles/datastore.viewer",)
    rw = render("firestore", "readwrite", PROD)
    assert rw.roles == ("roles/datastore.user",) and rw.bind_to == "project"
    assert rw.objects[0]["spec"]["deleteProtectionState"] == "DELETE_PROTECTION_ENABLED"
    assert render("firestore", "readwrite", DEV).objects[0]["spec"]["deleteProtectionState"] == (
        "DELETE_PROTECTION_DISABLED")


def test_bundled_templates_are_all_in_the_library_folder():
    names = {p.stem for p in Path(bundled_dir("resource-templates")).glob("*.yaml")}
    assert names == set(TEMPLATES)
