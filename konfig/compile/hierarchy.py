"""Folders and projects: control plane → platform → domain → one project per environment.

Everything here lives in the ``konfig-system`` namespace and is actuated by the control
plane's own service account.
"""

from __future__ import annotations

from konfig.compile.context import BASE_SERVICES, CONTROL_PLANE_SERVICES, CompileContext
from konfig.compile.objects import kube_object, konfig_labels, object_name
from konfig.compile.state import PROJECT_ID_ANNOTATION, SYSTEM_NAMESPACE, KubeObject
from konfig.model import Domain, Platform

RM = "resourcemanager.cnrm.cloud.google.com/v1beta1"
SU = "serviceusage.cnrm.cloud.google.com/v1beta1"

#: Org-policy constraints set on the control-plane folder (inherited by everything below).
#: Sources: https://cloud.google.com/resource-manager/docs/organization-policy/restricting-service-accounts
FOLDER_CONSTRAINTS = (
    # The Compute Engine default service account never gets Editor automatically.
    ("no-default-sa-grants", "constraints/iam.automaticIamGrantsForDefaultServiceAccounts"),
    # Keyless: nobody can create service-account keys.
    ("no-sa-keys", "constraints/iam.disableServiceAccountKeyCreation"),
)


def control_plane_folder_name(ctx: CompileContext) -> str:
    return object_name("controlplane", ctx.cp_name)


def platform_folder_name(platform: str) -> str:
    return object_name("platform", platform)


def domain_folder_name(domain: str) -> str:
    return object_name("domain", domain)


def project_object_name(project_id: str) -> str:
    return project_id


def compile_hierarchy(ctx: CompileContext) -> list[KubeObject]:
    """All folders, projects, enabled services and folder org policies."""
    objects = _control_plane(ctx)
    for platform in sorted(ctx.defs.platforms.values(), key=lambda p: p.name):
        objects.append(_platform_folder(ctx, platform))
    for domain in sorted(ctx.defs.domains.values(), key=lambda d: d.name):
        objects += _domain(ctx, domain)
    return objects


def _parent_ref(parent: str) -> dict[str, dict[str, str]]:
    kind, number = parent.split("/", 1)
    key = "organizationRef" if kind == "organizations" else "folderRef"
    return {key: {"external": number}}


def _folder(name: str, display_name: str, parent: dict, labels: dict[str, str]) -> KubeObject:
    return kube_object(
        RM, "Folder", name, namespace=SYSTEM_NAMESPACE, labels=labels,
        spec={"displayName": display_name, **parent},
    )


def project_object(ctx: CompileContext, project_id: str, display: str, folder: str, labels) -> KubeObject:
    """A Project in ``konfig-system`` under the Folder object ``folder``, on the billing account."""
    return kube_object(
        RM, "Project", project_object_name(project_id), namespace=SYSTEM_NAMESPACE, labels=labels,
        spec={
            "name": display,
            "resourceID": project_id,
            "folderRef": {"name": folder},
            "billingAccountRef": {"external": ctx.cp.spec.gcp.billing_account},
        },
    )


def service_objects(project_id: str, services, labels) -> list[KubeObject]:
    """One Service (enabled API) per entry of ``services`` in ``project_id``, sorted."""
    return [
        kube_object(
            SU, "Service", object_name(project_id, service.split(".", 1)[0]),
            namespace=SYSTEM_NAMESPACE, labels=labels,
            annotations={PROJECT_ID_ANNOTATION: project_id},
            spec={"resourceID": service, "projectRef": {"external": project_id}},
        )
        for service in sorted(set(services))
    ]


def _control_plane(ctx: CompileContext) -> list[KubeObject]:
    labels = konfig_labels(ctx.cp_name)
    folder = control_plane_folder_name(ctx)
    display = ctx.cp.spec.display_name or ctx.cp_name
    objects = [
        _folder(folder, display, _parent_ref(ctx.cp.spec.gcp.parent), labels),
        project_object(ctx, ctx.cp_project_id, f"{ctx.cp_name} control plane"[:30], folder, labels),
    ]
    objects += service_objects(ctx.cp_project_id, CONTROL_PLANE_SERVICES, labels)
    for suffix, constraint in FOLDER_CONSTRAINTS:
        objects.append(
            kube_object(
                RM, "ResourceManagerPolicy", object_name(folder, suffix),
                namespace=SYSTEM_NAMESPACE, labels=labels,
                spec={"constraint": constraint, "booleanPolicy": {"enforced": True},
                      "folderRef": {"name": folder}},
            )
        )
    return objects


def _platform_folder(ctx: CompileContext, platform: Platform) -> KubeObject:
    return _folder(
        platform_folder_name(platform.name),
        platform.spec.display_name or platform.name,
        {"folderRef": {"name": control_plane_folder_name(ctx)}},
        konfig_labels(ctx.cp_name, platform.name),
    )


def _domain(ctx: CompileContext, domain: Domain) -> list[KubeObject]:
    platform = domain.spec.platform
    folder = domain_folder_name(domain.name)
    objects = [
        _folder(folder, domain.spec.display_name or domain.name,
                {"folderRef": {"name": platform_folder_name(platform)}},
                konfig_labels(ctx.cp_name, platform, domain.name)),
    ]
    services = [*ctx.services(domain), *BASE_SERVICES]
    for env in ctx.domain_environments(domain):
        labels = konfig_labels(ctx.cp_name, platform, domain.name, env.name)
        project_id = ctx.project_id(domain, env.name)
        objects.append(project_object(ctx, project_id, f"{domain.name}-{env.name}", folder, labels))
        objects += service_objects(project_id, services, labels)
    return objects
