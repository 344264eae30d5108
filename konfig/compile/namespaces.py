"""Namespaces of the control-plane cluster: ``konfig-system`` and one per domain environment,
each with its own ConfigConnectorContext, and RBAC for each domain environment's CI identity
(in its own namespace only)."""

from __future__ import annotations

from konfig.compile import naming
from konfig.compile.access import ci_service_account_email
from konfig.compile.context import CompileContext
from konfig.compile.objects import konfig_labels, kube_object
from konfig.compile.state import PROJECT_ID_ANNOTATION, SYSTEM_NAMESPACE, KubeObject
from konfig.model import Domain

CCC_API = "core.cnrm.cloud.google.com/v1beta1"
RBAC_API = "rbac.authorization.k8s.io/v1"


def compile_namespaces(ctx: CompileContext) -> list[KubeObject]:
    """Namespace + ConfigConnectorContext for the control plane and each domain environment,
    plus RoleBindings for the domain's CI identity and groups in each domain environment."""
    cp_sa = naming.service_account_email(naming.CONTROL_PLANE_SERVICE_ACCOUNT_ID, ctx.cp_project_id)
    labels = konfig_labels(ctx.cp_name)
    objects = [
        _namespace(SYSTEM_NAMESPACE, ctx.cp_project_id, labels),
        _context(SYSTEM_NAMESPACE, cp_sa, labels),
    ]
    for domain in sorted(ctx.defs.domains.values(), key=lambda d: d.name):
        # CI reads the promotion path (ControlPlane, Domain) from the system namespace.
        objects.append(_role_binding(
            SYSTEM_NAMESPACE, f"konfig-ci-{domain.name}", naming.CLUSTER_ROLE_DEFINITIONS_READER,
            konfig_labels(ctx.cp_name, domain.spec.platform, domain.name),
            [_user(ci_service_account_email(ctx, domain.name, env.name))
             for env in ctx.domain_environments(domain)]))
        for env in ctx.domain_environments(domain):
            objects += _domain_environment(ctx, domain, env.name)
    return objects


def _namespace(name: str, project_id: str, labels: dict[str, str]) -> KubeObject:
    return kube_object("v1", "Namespace", name, labels=labels,
                       annotations={PROJECT_ID_ANNOTATION: project_id})


def _context(namespace: str, google_service_account: str, labels) -> KubeObject:
    """Config Connector in namespaced mode acts in ``namespace`` as this Google service
    account. Source: https://cloud.google.com/config-connector/docs/how-to/install-namespaced"""
    return kube_object(
        CCC_API, "ConfigConnectorContext", naming.CONFIG_CONNECTOR_CONTEXT_NAME,
        namespace=namespace, labels=labels,
        spec={"googleServiceAccount": google_service_account,
              "requestProjectPolicy": "RESOURCE_PROJECT", "stateIntoSpec": "Absent"},
    )


def _domain_environment(ctx: CompileContext, domain: Domain, environment: str) -> list[KubeObject]:
    labels = konfig_labels(ctx.cp_name, domain.spec.platform, domain.name, environment)
    namespace = naming.namespace_name(domain.name, environment)
    project_id = ctx.project_id(domain, environment)
    kcc_sa = naming.service_account_email(naming.KCC_SERVICE_ACCOUNT_ID, project_id)
    return [
        _namespace(namespace, project_id, labels),
        _context(namespace, kcc_sa, labels),
        # CI may apply Workloads here and read their status (promotion), nothing else. GKE maps
        # a Google service account's token to the Kubernetes user named by its email. Source:
        # https://cloud.google.com/kubernetes-engine/docs/how-to/role-based-access-control
        # Only this environment's own CI identity: no other environment's pipeline (nor any
        # other domain's) can write here.
        _role_binding(namespace, "konfig-ci", naming.CLUSTER_ROLE_WORKLOAD_DEPLOYER, labels,
                      [_user(ci_service_account_email(ctx, domain.name, environment))]),
        # Humans of the domain (and above) may read what Konfig made here; Google Groups for
        # RBAC names a group subject by its email. Source:
        # https://cloud.google.com/kubernetes-engine/docs/how-to/google-groups-rbac
        _role_binding(namespace, "konfig-viewers", naming.CLUSTER_ROLE_VIEWER, labels,
                      [{"apiGroup": "rbac.authorization.k8s.io", "kind": "Group", "name": g}
                       for g in _groups_above(ctx, domain)]),
    ]


def _user(email: str) -> dict[str, str]:
    return {"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": email}


def _role_binding(namespace: str, name: str, cluster_role: str, labels, subjects) -> KubeObject:
    return kube_object(
        RBAC_API, "RoleBinding", name, namespace=namespace, labels=labels,
        roleRef={"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": cluster_role},
        subjects=subjects,
    )


def _groups_above(ctx: CompileContext, domain: Domain) -> list[str]:
    """Every group with a role on the domain: its own, its platform's, the control plane's."""
    platform = ctx.defs.platforms.get(domain.spec.platform)
    groups = [*ctx.cp.spec.groups, *(platform.spec.groups if platform else []), *domain.spec.groups]
    return sorted({g.group for g in groups})
