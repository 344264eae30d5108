"""The desired GitLab tree: subgroups mirroring the folder tree, SAML group links per role,
the control plane's two projects, one project per workload, and CI/CD variables."""

from __future__ import annotations

from konfig.compile import naming
from konfig.compile.access import ci_service_account_email, control_plane_ci_email, registry_path
from konfig.compile.context import CompileContext
from konfig.compile.state import (
    ACCESS_LEVELS,
    GITLAB_MARKER_TEXT,
    GitLabGroup,
    GitLabProject,
    GitLabTree,
    GroupVariable,
    SamlGroupLink,
)
from konfig.model import Domain, GroupBinding

CONTROL_PLANE_PROJECT = "konfig-control-plane"
WORKLOAD_TEMPLATE_PROJECT = "workload-template"
#: Name of the control-plane GKE cluster CI deploys to (where Config Connector runs).
DEFAULT_CLUSTER = "konfig"


def _described(text: str) -> str:
    return f"{text} {GITLAB_MARKER_TEXT}"


def _links(groups: list[GroupBinding]) -> tuple[SamlGroupLink, ...]:
    """One SAML link per group; if a group is listed twice the higher role wins."""
    best: dict[str, int] = {}
    for g in groups:
        best[g.saml_name] = max(best.get(g.saml_name, 0), ACCESS_LEVELS[g.role])
    return tuple(sorted(SamlGroupLink(name, level) for name, level in best.items()))


def compile_gitlab(ctx: CompileContext) -> GitLabTree:
    """The GitLab tree under the adopted parent group; groups parents-first, projects sorted."""
    cp = ctx.cp
    cp_path = ctx.gitlab_cp_path()
    groups = [
        GitLabGroup(
            full_path=cp_path, name=cp.spec.display_name or cp.name, path=cp.name,
            parent_full_path=ctx.gitlab_root, kind="ControlPlane",
            description=_described(f"Konfig control plane {cp.name}"),
            saml_group_links=_links(cp.spec.groups),
            variables=tuple(sorted(_control_plane_variables(ctx))),
        )
    ]
    for platform in sorted(ctx.defs.platforms.values(), key=lambda p: p.name):
        groups.append(GitLabGroup(
            full_path=ctx.gitlab_platform_path(platform.name),
            name=platform.spec.display_name or platform.name, path=platform.name,
            parent_full_path=cp_path, kind="Platform",
            description=_described(f"Platform {platform.name}"),
            saml_group_links=_links(platform.spec.groups),
        ))
    projects = [
        GitLabProject(
            path_with_namespace=f"{cp_path}/{CONTROL_PLANE_PROJECT}", name=CONTROL_PLANE_PROJECT,
            path=CONTROL_PLANE_PROJECT, namespace_full_path=cp_path, kind="control-plane",
            description=_described("Konfig definitions of this control plane"),
        ),
        GitLabProject(
            path_with_namespace=f"{cp_path}/{WORKLOAD_TEMPLATE_PROJECT}",
            name=WORKLOAD_TEMPLATE_PROJECT, path=WORKLOAD_TEMPLATE_PROJECT,
            namespace_full_path=cp_path, kind="workload-template",
            description=_described("Template of every workload repository"),
        ),
    ]
    production = tuple(e.name for e in cp.spec.environments if e.production)
    for domain in sorted(ctx.defs.domains.values(), key=lambda d: d.name):
        groups.append(_domain_group(ctx, domain))
        path = ctx.gitlab_domain_path(domain)
        envs = {e.name for e in ctx.domain_environments(domain)}
        for workload in sorted(domain.spec.workloads):
            projects.append(GitLabProject(
                path_with_namespace=f"{path}/{workload}", name=workload, path=workload,
                namespace_full_path=path, kind="workload",
                description=_described(f"Workload {workload} of domain {domain.name}"),
                protected_environments=tuple(e for e in production if e in envs),
            ))
    groups.sort(key=lambda g: (g.full_path.count("/"), g.full_path))
    projects.sort(key=lambda p: p.path_with_namespace)
    return GitLabTree(url=cp.spec.gitlab.url, root_full_path=ctx.gitlab_root,
                      groups=tuple(groups), projects=tuple(projects))


def _control_plane_variables(ctx: CompileContext) -> list[GroupVariable]:
    variables = [
        GroupVariable(naming.CI_VAR_CONTROL_PLANE_PROJECT, ctx.cp_project_id),
        GroupVariable(naming.CI_VAR_REGION, ctx.region),
        GroupVariable(naming.CI_VAR_CLUSTER, DEFAULT_CLUSTER),
    ]
    # The definitions repository's pipeline (gitlab-templates/control-plane). The applying
    # identity is a protected variable: only protected refs receive it (and its Workload
    # Identity binding accepts the protected default branch only).
    variables.append(GroupVariable(naming.CI_VAR_CP_CI_SERVICE_ACCOUNT,
                                   control_plane_ci_email(ctx), protected=True))
    variables.append(GroupVariable(naming.CI_VAR_CP_PLANNER_SERVICE_ACCOUNT,
                                   control_plane_ci_email(ctx, planner=True)))
    provider = ctx.workload_identity_pool
    if provider:
        variables.append(GroupVariable(
            naming.CI_VAR_WIF_PROVIDER, f"{provider}/providers/{naming.WORKLOAD_IDENTITY_PROVIDER}"))
    if ctx.cp.spec.gitlab.cli_image:
        variables.append(GroupVariable(naming.CI_VAR_CLI_IMAGE, ctx.cp.spec.gitlab.cli_image))
    else:
        ctx.notes.append("spec.gitlab.cliImage is not set: workload pipelines cannot promote "
                         "releases on tags until it is (KONFIG_CLI_IMAGE).")
    return variables


def _domain_group(ctx: CompileContext, domain: Domain) -> GitLabGroup:
    envs = ctx.domain_environments(domain)
    variables = [
        GroupVariable(naming.CI_VAR_ENVIRONMENTS, " ".join(e.name for e in envs)),
        GroupVariable(naming.CI_VAR_PRODUCTION_ENVIRONMENTS,
                      " ".join(e.name for e in envs if e.production)),
        GroupVariable(naming.CI_VAR_PLATFORM, domain.spec.platform),
        GroupVariable(naming.CI_VAR_DOMAIN, domain.name),
        GroupVariable(naming.CI_VAR_REGISTRY, registry_path(ctx, domain.name)),
    ]
    provider = ctx.workload_identity_pool
    for env in envs:
        protected = env.production  # production values only reach protected refs
        if provider:
            variables.append(GroupVariable(
                naming.CI_VAR_WIF_PROVIDER,
                f"{provider}/providers/{naming.WORKLOAD_IDENTITY_PROVIDER}", env.name,
                protected=protected))
        variables += [
            GroupVariable(naming.CI_VAR_CI_SERVICE_ACCOUNT,
                          ci_service_account_email(ctx, domain.name, env.name), env.name,
                          protected=protected),
            GroupVariable(naming.CI_VAR_GCP_PROJECT, ctx.project_id(domain, env.name), env.name,
                          protected=protected),
            GroupVariable(naming.CI_VAR_NAMESPACE, naming.namespace_name(domain.name, env.name),
                          env.name, protected=protected),
        ]
    return GitLabGroup(
        full_path=ctx.gitlab_domain_path(domain), name=domain.spec.display_name or domain.name,
        path=domain.name, parent_full_path=ctx.gitlab_platform_path(domain.spec.platform),
        kind="Domain", description=_described(f"Domain {domain.name}"),
        saml_group_links=_links(domain.spec.groups),
        variables=tuple(sorted(variables)),
    )


def definitions_pipeline_settings(defs, project_number: str | None) -> dict[str, object]:
    """What the definitions repository's pipeline needs, for ``konfig bootstrap`` to print:
    ``variables`` (key -> (value, protected)) that ``konfig sync gitlab`` sets on the
    control-plane group, and the chart's ``controlPlaneCI`` values (``helm``) that give its
    identities their RBAC. ``project_number`` is the control-plane project's (the Workload
    Identity provider's name needs it); ``None`` leaves the provider out."""
    from konfig.compile.access import control_plane_ci_email, control_plane_project_path

    ctx = CompileContext(defs)
    variables: dict[str, tuple[str, bool]] = {
        naming.CI_VAR_CP_CI_SERVICE_ACCOUNT: (control_plane_ci_email(ctx), True),
        naming.CI_VAR_CP_PLANNER_SERVICE_ACCOUNT: (control_plane_ci_email(ctx, planner=True),
                                                   False),
        naming.CI_VAR_CONTROL_PLANE_PROJECT: (ctx.cp_project_id, False),
        naming.CI_VAR_REGION: (ctx.region, False),
        naming.CI_VAR_CLUSTER: (DEFAULT_CLUSTER, False),
    }
    number = project_number or ctx.project_number
    if number:
        variables[naming.CI_VAR_WIF_PROVIDER] = (
            f"projects/{number}/locations/global/workloadIdentityPools/"
            f"{naming.WORKLOAD_IDENTITY_POOL}/providers/{naming.WORKLOAD_IDENTITY_PROVIDER}", False)
    if ctx.cp.spec.gitlab.cli_image:
        variables[naming.CI_VAR_CLI_IMAGE] = (ctx.cp.spec.gitlab.cli_image, False)
    return {"project": control_plane_project_path(ctx), "variables": variables,
            "helm": {"controlPlaneCI.applier": control_plane_ci_email(ctx),
                     "controlPlaneCI.planner": control_plane_ci_email(ctx, planner=True)}}
