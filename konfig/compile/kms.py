"""Customer-managed encryption keys (CMEK) in production.

Per domain environment flagged ``production: true``, in its namespace (actuated by its own
Config Connector identity, on its own project):

- a key ring ``konfig`` in the control plane's default region and a symmetric key ``cmek`` in
  it, rotated every 90 days; both abandoned, never deleted (Cloud KMS cannot delete key rings
  anyway, and destroying a key makes the data it protects unreadable);
- one ``ServiceIdentity`` per CMEK-capable service the domain uses (its Google-managed service
  agent, created on demand) and ``roles/cloudkms.cryptoKeyEncrypterDecrypter`` for that agent
  on the key only (``IAMPolicyMember`` with ``memberFrom.serviceIdentityRef``).

Templates see the key as ``environment.kmsKey`` (the KMSCryptoKey's object name, for
``...KeyRef: {name: ...}``) and ``environment.kmsKeyId`` (its full resource name), both ``""``
outside production (:func:`kms_key_context`).

Cloud Storage is not in :data:`SERVICE_AGENTS`: its agent
(``service-<number>@gs-project-accounts.iam.gserviceaccount.com``) comes from the Storage API's
``projects.serviceAccount.get``, not from Service Usage's ``generateServiceIdentity``, so
Config Connector's ServiceIdentity cannot produce it (see docs/runtimes.md, "CMEK").
"""

from __future__ import annotations

from konfig.compile import naming
from konfig.compile.access import kcc_service_account_object
from konfig.compile.context import CompileContext
from konfig.compile.hierarchy import SU, project_object_name
from konfig.compile.objects import konfig_labels, kube_object, object_name, policy_member, role_slug
from konfig.compile.state import PROJECT_ID_ANNOTATION, SYSTEM_NAMESPACE, KubeObject
from konfig.model import Domain, Environment

KMS = "kms.cnrm.cloud.google.com/v1beta1"
IAM = "iam.cnrm.cloud.google.com/v1beta1"
RM = "resourcemanager.cnrm.cloud.google.com/v1beta1"
KMS_SERVICE = "cloudkms.googleapis.com"

#: Cloud KMS resource IDs (fixed: a key ring can never be deleted, so its name is forever).
KEY_RING_ID = "konfig"
KEY_ID = "cmek"
#: Object names of the key ring and key in each production namespace.
KEY_RING_OBJECT = "konfig-keyring"
KEY_OBJECT = "konfig-cmek"
#: 90 days, as Google's CMEK guidance recommends at most. Source:
#: https://cloud.google.com/kms/docs/key-rotation#frequency_of_key_rotation
ROTATION_PERIOD = f"{90 * 24 * 3600}s"
ENCRYPTER_ROLE = "roles/cloudkms.cryptoKeyEncrypterDecrypter"

#: Services whose Google-managed agent encrypts with a customer key, created with
#: ``services.generateServiceIdentity`` (Config Connector ``ServiceIdentity``). Sources:
#: https://cloud.google.com/sql/docs/postgres/configure-cmek,
#: https://cloud.google.com/pubsub/docs/encryption,
#: https://cloud.google.com/secret-manager/docs/cmek,
#: https://cloud.google.com/artifact-registry/docs/cmek,
#: https://cloud.google.com/memorystore/docs/redis/cmek
SERVICE_AGENTS = (
    "artifactregistry.googleapis.com",
    "pubsub.googleapis.com",
    "redis.googleapis.com",
    "secretmanager.googleapis.com",
    "sqladmin.googleapis.com",
)

#: Roles the domain environment's Config Connector identity needs for the objects above, on
#: its own project: manage keys and their IAM, and create service identities.
#: Source: https://cloud.google.com/kms/docs/reference/permissions-and-roles,
#: https://cloud.google.com/service-usage/docs/access-control
KCC_CMEK_ROLES = ("roles/cloudkms.admin", "roles/serviceusage.serviceUsageAdmin")


def uses_cmek(environment: Environment) -> bool:
    """CMEK is on in production environments."""
    return environment.production


def kms_key_id(project_id: str, region: str) -> str:
    """Full resource name of a production environment's key. Source:
    https://cloud.google.com/kms/docs/resource-hierarchy#retrieve_resource_id"""
    return f"projects/{project_id}/locations/{region}/keyRings/{KEY_RING_ID}/cryptoKeys/{KEY_ID}"


def kms_key_context(ctx: CompileContext, domain: Domain, environment: Environment) -> dict[str, str]:
    """What template expressions see under ``environment``: ``kmsKey`` (object name) and
    ``kmsKeyId`` (resource name), ``""`` where CMEK is off."""
    if not uses_cmek(environment):
        return {"kmsKey": "", "kmsKeyId": ""}
    return {"kmsKey": KEY_OBJECT,
            "kmsKeyId": kms_key_id(ctx.project_id(domain, environment.name), ctx.region)}


def compile_kms(ctx: CompileContext) -> list[KubeObject]:
    """The key ring, key, service agents and their grants of every production domain
    environment, plus the Cloud KMS API and the Config Connector roles they need."""
    objects: list[KubeObject] = []
    for domain in sorted(ctx.defs.domains.values(), key=lambda d: d.name):
        for env in ctx.domain_environments(domain):
            if uses_cmek(env):
                objects += _environment(ctx, domain, env)
    return objects


def _environment(ctx: CompileContext, domain: Domain, env: Environment) -> list[KubeObject]:
    labels = konfig_labels(ctx.cp_name, domain.spec.platform, domain.name, env.name)
    namespace = naming.namespace_name(domain.name, env.name)
    project_id = ctx.project_id(domain, env.name)
    services = ctx.services(domain)
    objects = [
        kube_object(KMS, "KMSKeyRing", KEY_RING_OBJECT, namespace=namespace, labels=labels,
                    spec={"location": ctx.region, "resourceID": KEY_RING_ID}),
        kube_object(KMS, "KMSCryptoKey", KEY_OBJECT, namespace=namespace, labels=labels,
                    spec={"keyRingRef": {"name": KEY_RING_OBJECT}, "resourceID": KEY_ID,
                          "purpose": "ENCRYPT_DECRYPT", "rotationPeriod": ROTATION_PERIOD}),
    ]
    key_ref = {"apiVersion": KMS, "kind": "KMSCryptoKey", "name": KEY_OBJECT}
    for service in SERVICE_AGENTS:
        if service not in services:
            continue
        agent = object_name("agent", service.split(".", 1)[0])
        objects.append(kube_object(SU, "ServiceIdentity", agent, namespace=namespace, labels=labels,
                                   spec={"projectRef": {"external": project_id},
                                         "resourceID": service}))
        objects.append(kube_object(
            IAM, "IAMPolicyMember", object_name(agent, "cmek"), namespace=namespace, labels=labels,
            spec={"resourceRef": key_ref, "role": ENCRYPTER_ROLE,
                  "memberFrom": {"serviceIdentityRef": {"name": agent}}},
        ))
    objects += _project_setup(ctx, domain, env.name, project_id, services, labels)
    return objects


def _project_setup(ctx: CompileContext, domain: Domain, environment: str, project_id: str,
                   services: list[str], labels: dict[str, str]) -> list[KubeObject]:
    """The Cloud KMS API (unless the domain lists it already) and the roles of the
    environment's Config Connector identity, in ``konfig-system`` like its other roles."""
    objects = []
    if KMS_SERVICE not in services:
        objects.append(kube_object(
            SU, "Service", object_name(project_id, "cloudkms"), namespace=SYSTEM_NAMESPACE,
            labels=labels, annotations={PROJECT_ID_ANNOTATION: project_id},
            spec={"resourceID": KMS_SERVICE, "projectRef": {"external": project_id}}))
    sa = kcc_service_account_object(domain.name, environment)
    for role in KCC_CMEK_ROLES:
        objects.append(policy_member(
            object_name(sa, role_slug(role)), namespace=SYSTEM_NAMESPACE, labels=labels,
            resource_ref={"apiVersion": RM, "kind": "Project", "name": project_object_name(project_id)},
            role=role, service_account_ref={"name": sa}))
    return objects


__all__ = ["compile_kms", "kms_key_context", "kms_key_id", "uses_cmek", "KEY_OBJECT"]
