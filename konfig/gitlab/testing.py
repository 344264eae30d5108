"""Synthetic desired GitLab trees, shaped like the compiler's, for tests, benchmarks and the
sandbox. Deterministic: the same arguments give the same tree."""

from __future__ import annotations

from konfig.compile import naming
from konfig.compile.state import (
    ACCESS_LEVELS,
    GitLabGroup,
    GitLabProject,
    GitLabTree,
    GroupVariable,
    SamlGroupLink,
)

ENVIRONMENTS = ("dev", "stage", "prod")


def _link(email: str, role: str) -> SamlGroupLink:
    return SamlGroupLink(email.split("@", 1)[0], ACCESS_LEVELS[role])


def domain_variables(domain: str, platform: str, environments: tuple[str, ...],
                     prefix: str = "acme-") -> tuple[GroupVariable, ...]:
    """The CI/CD variables the compiler puts on a domain group (see
    :mod:`konfig.compile.naming`)."""
    variables = []
    for env in environments:
        project_id = naming.default_project_id(prefix, domain, env)
        variables += [
            GroupVariable(naming.CI_VAR_GCP_PROJECT, project_id, env),
            GroupVariable(naming.CI_VAR_NAMESPACE, naming.namespace_name(domain, env), env),
            GroupVariable(naming.CI_VAR_WIF_PROVIDER,
                          "projects/998877665544/locations/global/workloadIdentityPools/gitlab/"
                          "providers/gitlab", env),
            GroupVariable(naming.CI_VAR_CI_SERVICE_ACCOUNT, naming.service_account_email(
                naming.ci_service_account_id(domain, env), f"{prefix}cp"), env, masked=True,
                protected=env == "prod"),
        ]
    variables += [
        GroupVariable(naming.CI_VAR_ENVIRONMENTS, " ".join(environments)),
        GroupVariable(naming.CI_VAR_PRODUCTION_ENVIRONMENTS, "prod" if "prod" in environments else ""),
        GroupVariable(naming.CI_VAR_PLATFORM, platform),
        GroupVariable(naming.CI_VAR_DOMAIN, domain),
    ]
    return tuple(sorted(variables))


def synthetic_tree(
    platforms: int = 2,
    domains_per_platform: int = 2,
    workloads_per_domain: int = 2,
    *,
    root: str = "acme",
    control_plane: str = "acme",
    url: str = "https://gitlab.example.com",
    links: bool = True,
    variables: bool = True,
    environments: tuple[str, ...] = ENVIRONMENTS,
) -> GitLabTree:
    """A control plane with ``platforms`` platforms of ``domains_per_platform`` domains of
    ``workloads_per_domain`` workloads each, plus the two control-plane projects.

    Groups: ``1 + P + P*D``; projects: ``2 + P*D*W``.
    """
    cp_path = naming.gitlab_group_path(root, control_plane)
    groups = [GitLabGroup(
        cp_path, control_plane.capitalize(), control_plane, root,
        f"Konfig control plane {control_plane}", "ControlPlane",
        saml_group_links=tuple(sorted((_link("platform-admins@acme.example", "owner"),
                                       _link("engineering@acme.example", "viewer")))) if links else (),
        variables=tuple(sorted((
            GroupVariable(naming.CI_VAR_CONTROL_PLANE_PROJECT, f"{control_plane}-cp"),
            GroupVariable(naming.CI_VAR_REGION, "europe-west1"),
            GroupVariable(naming.CI_VAR_CLUSTER, "konfig")))) if variables else (),
    )]
    projects = [
        GitLabProject(f"{cp_path}/konfig-control-plane", "konfig-control-plane",
                      "konfig-control-plane", cp_path, "Konfig definitions", "control-plane"),
        GitLabProject(f"{cp_path}/workload-template", "workload-template", "workload-template",
                      cp_path, "Template of workload repositories", "workload-template"),
    ]
    production = tuple(e for e in environments if e == "prod")
    for p in range(platforms):
        platform = f"platform-{p:03d}"
        p_path = f"{cp_path}/{platform}"
        groups.append(GitLabGroup(
            p_path, platform.capitalize(), platform, cp_path, f"Platform {platform}", "Platform",
            saml_group_links=(_link(f"{platform}-leads@acme.example", "maintainer"),) if links else ()))
        for d in range(domains_per_platform):
            domain = f"domain-{p:03d}-{d:03d}"
            d_path = f"{p_path}/{domain}"
            groups.append(GitLabGroup(
                d_path, domain, domain, p_path, f"Domain {domain}", "Domain",
                saml_group_links=tuple(sorted((_link(f"{domain}-devs@acme.example", "developer"),
                                               _link(f"{domain}-oncall@acme.example", "owner"))))
                if links else (),
                variables=domain_variables(domain, platform, environments) if variables else ()))
            for w in range(workloads_per_domain):
                name = f"wl-{w:03d}"
                projects.append(GitLabProject(
                    f"{d_path}/{name}", name, name, d_path, f"Workload {name} of {domain}",
                    "workload", protected_environments=production))
    groups.sort(key=lambda g: (g.full_path.count("/"), g.full_path))
    projects.sort(key=lambda p: p.path_with_namespace)
    return GitLabTree(url, root, tuple(groups), tuple(projects))
