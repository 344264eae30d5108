"""Break-glass through Privileged Access Manager (PAM), where the control plane enables it
(``spec.breakGlass.privilegedAccessManager``).

Instead of the time-conditioned bindings ``konfig break-glass request`` creates on demand, PAM
holds standing *entitlements*: who may ask (the owner groups of the level and above), for what
(the break-glass roles), and for how long at most (``spec.breakGlass.maxDuration``). An owner
then requests a grant from PAM itself, which records the justification, notifies, and removes
the binding at expiry. Konfig renders one entitlement per level: every domain environment's
project, every platform's folder, and the control-plane project (spec/definitions.md, "Roles").
Source: https://cloud.google.com/iam/docs/pam-overview

Nothing here without PAM: the IAM-condition path needs no standing object.
"""

from __future__ import annotations

from konfig.breakglass import PAM_ENTITLEMENT_ID, owner_groups
from konfig.compile.context import CompileContext
from konfig.compile.hierarchy import (
    SU,
    control_plane_folder_name,
    platform_folder_name,
    project_object_name,
)
from konfig.compile.objects import konfig_labels, kube_object, object_name, policy_member
from konfig.compile.state import PROJECT_ID_ANNOTATION, SYSTEM_NAMESPACE, KubeObject

PAM = "privilegedaccessmanager.cnrm.cloud.google.com/v1beta1"
RM = "resourcemanager.cnrm.cloud.google.com/v1beta1"
#: Lets the controller manage entitlements on the control-plane folder and everything below.
#: Source: https://cloud.google.com/iam/docs/pam-permissions-and-setup
PAM_ADMIN_ROLE = "roles/privilegedaccessmanager.admin"
PAM_SERVICE = "privilegedaccessmanager.googleapis.com"


def entitlement_name(kind: str, name: str) -> str:
    """Object name of the entitlement on a ``project`` (by ID) or ``platform`` (by name)."""
    return object_name("break-glass", kind, name)


def compile_break_glass(ctx: CompileContext) -> list[KubeObject]:
    """The PAM entitlements of every level that has owner groups, the PAM API in the
    control-plane project and the controller's PAM role; nothing when PAM is off."""
    if not ctx.cp.spec.break_glass.privileged_access_manager:
        return []
    labels = konfig_labels(ctx.cp_name)
    objects = _setup(ctx, labels)
    owners = owner_groups(ctx.cp, None, None)
    if owners:
        objects.append(_entitlement(ctx, "project", ctx.cp_project_id, owners, labels,
                                    {"projectRef": {"name": project_object_name(ctx.cp_project_id)}}))
    else:
        ctx.notes.append(f"break-glass: control plane {ctx.cp_name} has no owner group, so no PAM "
                         "entitlement on the control-plane project (nor on levels without their own)")
    for platform in sorted(ctx.defs.platforms.values(), key=lambda p: p.name):
        owners = owner_groups(ctx.cp, platform, None)
        if owners:
            objects.append(_entitlement(ctx, "platform", platform.name, owners,
                                        konfig_labels(ctx.cp_name, platform.name),
                                        {"folderRef": {"name": platform_folder_name(platform.name)}}))
    for domain in sorted(ctx.defs.domains.values(), key=lambda d: d.name):
        owners = owner_groups(ctx.cp, ctx.defs.platforms.get(domain.spec.platform), domain)
        for env in ctx.domain_environments(domain) if owners else []:
            project_id = ctx.project_id(domain, env.name)
            objects.append(_entitlement(
                ctx, "project", project_id, owners,
                konfig_labels(ctx.cp_name, domain.spec.platform, domain.name, env.name),
                {"projectRef": {"name": project_object_name(project_id)}}))
    return objects


def _entitlement(ctx: CompileContext, kind: str, name: str, owners: list[str],
                 labels: dict[str, str], parent: dict) -> KubeObject:
    principals = [f"group:{g}" for g in owners]
    return kube_object(
        PAM, "PrivilegedAccessManagerEntitlement", entitlement_name(kind, name),
        namespace=SYSTEM_NAMESPACE, labels=labels,
        spec={
            **parent,
            "location": "global",
            "resourceID": PAM_ENTITLEMENT_ID,
            "eligibleUsers": [{"principals": principals}],
            "maxRequestDuration": f"{ctx.cp.spec.break_glass.max_seconds}s",
            "privilegedAccess": {"gcpIAMAccess": {"roleBindings": [
                {"role": role} for role in sorted(set(ctx.cp.spec.break_glass.roles))]}},
            # Break-glass: no approver to wait for, but always a written reason.
            "requesterJustificationConfig": {"unstructured": {}},
            "additionalNotificationTargets": {"adminEmailRecipients": list(owners)},
        },
    )


def _setup(ctx: CompileContext, labels: dict[str, str]) -> list[KubeObject]:
    return [
        kube_object(SU, "Service", object_name(ctx.cp_project_id, "privilegedaccessmanager"),
                    namespace=SYSTEM_NAMESPACE, labels=labels,
                    annotations={PROJECT_ID_ANNOTATION: ctx.cp_project_id},
                    spec={"resourceID": PAM_SERVICE, "projectRef": {"external": ctx.cp_project_id}}),
        policy_member(
            object_name(control_plane_folder_name(ctx), "pam-admin", "controller"),
            namespace=SYSTEM_NAMESPACE, labels=labels,
            resource_ref={"apiVersion": RM, "kind": "Folder", "name": control_plane_folder_name(ctx)},
            role=PAM_ADMIN_ROLE, service_account_ref={"name": object_name("controller", ctx.cp_name)},
        ),
    ]


__all__ = ["compile_break_glass", "entitlement_name"]
