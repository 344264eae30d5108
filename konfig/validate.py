"""Cross-reference validation: the checks no single definition can make on its own.

Pure: takes validated model objects, returns :class:`~konfig.definitions.Definitions` and adds
every problem found to the collector (nothing stops at the first problem).
"""

from __future__ import annotations

import re

from typing import Iterable

from konfig.compile import naming
from konfig.definitions import Definitions
from konfig.errors import Location, Problems
from konfig.model import ControlPlane, Definition, Domain, Platform, ResourceTemplate, Workload
from konfig.model import names
from konfig.model.workload import visibility_admits


def validate_definitions(
    objects: Iterable[Definition], problems: Problems, *, library: Iterable[Definition] = ()
) -> Definitions | None:
    """Index ``objects`` and check every cross-reference; ``library`` holds bundled templates
    that objects may override by name. Returns ``None`` only when no usable control plane
    exists (everything else is reported and indexing goes on)."""
    objects = list(objects)
    control_plane = _single_control_plane(objects, problems)
    if control_plane is None:
        return None
    defs = Definitions(control_plane=control_plane)
    for template in library:
        if isinstance(template, ResourceTemplate):
            defs.templates[template.name] = template
    from_tree: dict[str, ResourceTemplate] = {}
    for obj in objects:
        if isinstance(obj, Platform):
            _add_unique(defs.platforms, obj.name, obj, problems)
        elif isinstance(obj, Domain):
            _add_unique(defs.domains, obj.name, obj, problems)
        elif isinstance(obj, Workload):
            _add_unique(defs.workloads, (obj.spec.domain, obj.name), obj, problems)
        elif isinstance(obj, ResourceTemplate):
            _add_unique(from_tree, obj.name, obj, problems)
    defs.templates.update(from_tree)  # the tree extends or overrides the bundled library
    _check_control_plane(control_plane, problems)
    for platform in defs.platforms.values():
        _check_platform(defs, platform, problems)
    for domain in defs.domains.values():
        _check_domain(defs, domain, problems)
    _check_raw_kcc(defs, problems)
    _check_project_ids(defs, problems)
    _check_namespaces(defs, problems)
    for workload in defs.workloads.values():
        _check_workload(defs, workload, problems)
    _check_templates(defs, problems)
    _check_network(control_plane, problems)
    _check_routes(defs, problems)
    return defs


def _check_raw_kcc(defs: Definitions, problems: Problems) -> None:
    """Raw Config Connector manifests and the control plane's allow-list (compile/rawkcc.py)."""
    from konfig.compile.rawkcc import allow_list_problems, raw_kcc_problems

    problems.extend(allow_list_problems(defs))
    for domain in defs.domains.values():
        if domain.spec.platform in defs.platforms:
            problems.extend(raw_kcc_problems(defs, domain))


def _single_control_plane(objects: list[Definition], problems: Problems) -> ControlPlane | None:
    planes = [o for o in objects if isinstance(o, ControlPlane)]
    if not planes:
        if "ControlPlane" in problems.invalid_kinds:
            return None  # it exists but is invalid; its problems are reported already
        where = objects[0].source if objects else Location("<definitions>", 0)
        problems.add(where, "no ControlPlane definition found; exactly one is required")
        return None
    for extra in planes[1:]:
        problems.add(
            extra.locate("metadata.name"),
            f"a second ControlPlane ({extra.name!r}); exactly one is allowed, the first is "
            f"{planes[0].name!r} at {planes[0].source}",
        )
    return planes[0]


def _add_unique(index: dict, key, obj: Definition, problems: Problems) -> None:
    if key in index:
        first = index[key]
        problems.add(
            obj.locate("metadata.name"),
            f"duplicate {obj.KIND} {obj.name!r}; first defined at {first.source}",
        )
        return
    index[key] = obj


def _check_subset(
    obj: Definition, field: str, values: list[str] | None, allowed: list[str], what: str,
    problems: Problems,
) -> None:
    for i, value in enumerate(values or []):
        if value not in allowed:
            problems.add(obj.locate(f"{field}[{i}]"), f"{value!r} is not among the {what}")


def _check_duplicates(obj: Definition, field: str, values: list[str], problems: Problems) -> None:
    seen: set[str] = set()
    for i, value in enumerate(values):
        if value in seen:
            problems.add(obj.locate(f"{field}[{i}]"), f"{value!r} is listed twice")
        seen.add(value)


def _check_groups(obj: Definition, field: str, groups, problems: Problems) -> None:
    _check_duplicates(obj, field, [g.group for g in groups], problems)


def _check_folder_name(obj: Definition, display_name: str | None, problems: Problems) -> None:
    name = display_name or obj.name
    problem = names.folder_display_name_problem(name)
    if problem:
        field = "spec.displayName" if display_name else "metadata.name"
        problems.add(obj.locate(field), problem)


def _check_control_plane(cp: ControlPlane, problems: Problems) -> None:
    envs = cp.environment_names
    _check_duplicates(cp, "spec.environments", envs, problems)
    _check_duplicates(cp, "spec.services", cp.spec.services, problems)
    _check_groups(cp, "spec.groups", cp.spec.groups, problems)
    _check_folder_name(cp, cp.spec.display_name, problems)
    project_id = cp.spec.gcp.project_id or naming.control_plane_project_id(
        cp.spec.gcp.project_id_prefix, cp.name
    )
    problem = names.project_id_problem(project_id)
    if problem:
        problems.add(cp.locate("spec.gcp.projectId" if cp.spec.gcp.project_id else "metadata.name"), problem)


def _check_platform(defs: Definitions, platform: Platform, problems: Problems) -> None:
    cp = defs.control_plane
    _check_folder_name(platform, platform.spec.display_name, problems)
    _check_subset(platform, "spec.services", platform.spec.services, cp.spec.services,
                  "control plane's services", problems)
    _check_groups(platform, "spec.groups", platform.spec.groups, problems)


def _check_domain(defs: Definitions, domain: Domain, problems: Problems) -> None:
    cp = defs.control_plane
    platform = defs.platforms.get(domain.spec.platform)
    if platform is None:
        problems.add(domain.locate("spec.platform"), f"platform {domain.spec.platform!r} is not defined")
    _check_folder_name(domain, domain.spec.display_name, problems)
    _check_groups(domain, "spec.groups", domain.spec.groups, problems)
    _check_duplicates(domain, "spec.workloads", domain.spec.workloads, problems)
    envs = domain.spec.environments
    if envs is not None:
        _check_subset(domain, "spec.environments", envs, cp.environment_names,
                      "control plane's environments", problems)
        known = [e for e in envs if e in cp.environment_names]
        in_order = [e for e in cp.environment_names if e in known]
        if known != in_order:
            problems.add(
                domain.locate("spec.environments"),
                f"environments must follow the control plane's order {cp.environment_names} "
                f"(got {envs})",
            )
        if not envs:
            problems.add(domain.locate("spec.environments"), "a domain needs at least one environment")
    allowed = platform.spec.services if platform and platform.spec.services is not None else cp.spec.services
    _check_subset(domain, "spec.services", domain.spec.services, allowed,
                  "platform's services", problems)
    domain_envs = defs.domain_environments(domain)
    for env in domain.spec.project_ids:
        if env not in domain_envs:
            problems.add(domain.locate(f"spec.projectIds.{env}"), f"{env!r} is not an environment of this domain")
    for env in domain_envs:
        ci_sa = naming.ci_service_account_id(domain.name, env)
        problem = names.service_account_id_problem(ci_sa)
        if problem:
            problems.add(domain.locate("metadata.name"),
                         f"{problem} (the CI service account of environment {env})")


def project_id_for(defs: Definitions, domain: Domain, environment: str) -> str:
    """The GCP project ID of a domain environment: the override, or the default scheme."""
    override = domain.spec.project_ids.get(environment)
    if override:
        return override
    return naming.default_project_id(defs.control_plane.spec.gcp.project_id_prefix, domain.name, environment)


def _check_project_ids(defs: Definitions, problems: Problems) -> None:
    cp = defs.control_plane
    seen: dict[str, str] = {}
    cp_project = cp.spec.gcp.project_id or naming.control_plane_project_id(cp.spec.gcp.project_id_prefix, cp.name)
    seen[cp_project] = "the control plane"
    for env in cp.spec.environments:
        host = _host_project_id(cp, env.name)
        explicit = cp.spec.network.environments.get(env.name)
        field = (f"spec.network.environments.{env.name}.projectId"
                 if explicit is not None and explicit.project_id else "spec.gcp.projectIdPrefix")
        problem = names.project_id_problem(host)
        if problem:
            problems.add(cp.locate(field), f"{problem} (the network host project of {env.name!r})")
        elif host in seen:
            problems.add(cp.locate(field), f"project ID {host!r} is also used by {seen[host]}")
        seen.setdefault(host, f"the network of environment {env.name!r}")
    for domain in defs.domains.values():
        for env in defs.domain_environments(domain):
            project_id = project_id_for(defs, domain, env)
            field = f"spec.projectIds.{env}" if env in domain.spec.project_ids else "metadata.name"
            problem = names.project_id_problem(project_id)
            if problem:
                problems.add(domain.locate(field), problem)
            elif env not in project_id and env not in domain.spec.project_ids:
                problems.add(domain.locate(field), f"project ID {project_id!r} must include the environment")
            owner = f"domain {domain.name!r} environment {env!r}"
            if project_id in seen:
                problems.add(domain.locate(field), f"project ID {project_id!r} is also used by {seen[project_id]}")
            seen.setdefault(project_id, owner)


def _host_project_id(cp: ControlPlane, environment: str) -> str:
    given = cp.spec.network.environments.get(environment)
    if given is not None and given.project_id:
        return given.project_id
    return naming.network_host_project_id(cp.spec.gcp.project_id_prefix, environment)


def _check_network(cp: ControlPlane, problems: Problems) -> None:
    """Per-environment network and ingress settings name environments of the control plane;
    every environment's range can be split and overlaps no other."""
    from konfig.compile.ipam import plan_ranges

    envs = cp.environment_names
    for section in ("network", "ingress"):
        for env in getattr(cp.spec, section).environments:
            if env not in envs:
                problems.add(cp.locate(f"spec.{section}.environments.{env}"),
                             f"{env!r} is not an environment of the control plane ({', '.join(envs)})")
    _, range_problems = plan_ranges(cp)
    for env, message in range_problems:
        given = cp.spec.network.environments.get(env)
        field = (f"spec.network.environments.{env}.cidr" if given is not None and given.cidr
                 else f"spec.environments[{envs.index(env)}].name")
        problems.add(cp.locate(field), message)


def _check_routes(defs: Definitions, problems: Problems) -> None:
    """Paths unique per environment and load balancer; external workloads need a host; a GKE
    workload cannot be load-balanced yet (refused rather than left unreachable)."""
    from konfig.compile.routes import LOAD_BALANCER_OF, plan_routes

    _, route_problems = plan_routes(defs)
    for problem in route_problems:
        problems.add(problem.where, problem.message)
    for workload in defs.workloads.values():
        visibility = workload.spec.ingress.visibility
        if workload.spec.runtime != "cloudrun" and visibility in LOAD_BALANCER_OF:
            problems.add(
                workload.locate("spec.ingress.visibility"),
                f"visibility {visibility!r} needs a load balancer, which serves Cloud Run "
                f"workloads only; runtime {workload.spec.runtime!r} can be 'domain' visible "
                "(use runtime cloudrun to be load-balanced)")


def _injected_variables(defs: Definitions, workload: Workload) -> dict[str, str]:
    """Every variable Konfig injects into the workload's container, with where it comes from."""
    from konfig.compile.workloads import (
        BASE_PATH_VARIABLE,
        BASE_VARIABLES,
        dependency_variable,
        env_var_prefix,
    )

    injected = {name: "Konfig" for name in BASE_VARIABLES}
    injected[BASE_PATH_VARIABLE] = "Konfig (load-balanced workloads)"
    for i, request in enumerate(workload.spec.resources):
        template = defs.templates.get(request.template)
        for key in (template.spec.env if template is not None else {}):
            injected.setdefault(f"{env_var_prefix(request.name)}_{key}",
                                f"resource {request.name!r} (spec.resources[{i}], template {template.name!r})")
    for i, dep in enumerate(workload.spec.dependencies):
        injected.setdefault(dependency_variable(dep.workload),
                            f"dependency {dep.workload!r} (spec.dependencies[{i}])")
    return injected


def _check_variables(defs: Definitions, workload: Workload, problems: Problems) -> None:
    """A workload's own env (base or per environment) may not replace an injected variable,
    and two injected variables may not share a name."""
    from konfig.compile.workloads import dependency_variable, env_var_prefix

    injected = _injected_variables(defs, workload)
    env_fields = [("spec.env", workload.spec.env)] + [
        (f"spec.environments.{e}.env", o.env or {}) for e, o in workload.spec.environments.items()]
    for field, env in env_fields:
        for name in env:
            if name in injected:
                problems.add(workload.locate(f"{field}.{name}"),
                             f"{name} is set by {injected[name]}; a workload's env cannot replace "
                             "an injected variable: rename it")
    for i, dep in enumerate(workload.spec.dependencies):
        name = dependency_variable(dep.workload)
        for j, request in enumerate(workload.spec.resources):
            template = defs.templates.get(request.template)
            keys = template.spec.env if template is not None else {}
            if any(f"{env_var_prefix(request.name)}_{k}" == name for k in keys):
                problems.add(workload.locate(f"spec.dependencies[{i}]"),
                             f"{name} would be set both by this dependency and by resource "
                             f"{request.name!r} (spec.resources[{j}]); rename the resource")
def _check_namespaces(defs: Definitions, problems: Problems) -> None:
    """Namespace names ``<domain>-<environment>`` must not collide (``shop`` + ``x-eu`` and
    ``shop-x`` + ``eu`` both give ``shop-x-eu``): one namespace holds one domain environment."""
    seen: dict[str, tuple[Domain, str]] = {}
    for domain in defs.domains.values():
        for env in defs.domain_environments(domain):
            namespace = naming.namespace_name(domain.name, env)
            if namespace in seen:
                other, other_env = seen[namespace]
                for (d, e), (o, oe) in (((domain, env), (other, other_env)), ((other, other_env), (domain, env))):
                    problems.add(d.locate("metadata.name"),
                                 f"the namespace of environment {e!r}, {namespace!r}, is also the "
                                 f"namespace of domain {o.name!r} environment {oe!r} (defined at "
                                 f"{o.source}); rename one of the domains")
            else:
                seen[namespace] = (domain, env)


def _check_workload(defs: Definitions, workload: Workload, problems: Problems) -> None:
    spec = workload.spec
    domain = defs.domains.get(spec.domain)
    if domain is None:
        problems.add(workload.locate("spec.domain"), f"domain {spec.domain!r} is not defined")
        return
    if domain.spec.platform != spec.platform:
        problems.add(
            workload.locate("spec.platform"),
            f"domain {domain.name!r} belongs to platform {domain.spec.platform!r}, not {spec.platform!r}",
        )
    problem = names.service_account_id_problem(naming.workload_service_account_id(workload.name))
    if problem:
        problems.add(workload.locate("metadata.name"), f"{problem} (the workload's service account)")
    envs = defs.domain_environments(domain)
    for env in spec.environments:
        if env not in envs:
            problems.add(workload.locate(f"spec.environments.{env}"),
                          f"{env!r} is not an environment of domain {domain.name!r} ({envs})")
    for env in envs[1:]:
        image = _effective_image(workload, env)
        if image and "@sha256:" not in image:
            field = f"spec.environments.{env}.image" if env in spec.environments and spec.environments[env].image else "spec.image"
            problems.add(workload.locate(field),
                         f"image must be pinned by digest (@sha256:...) in environment {env!r}: only "
                         f"the first environment ({envs[0]!r}) may run a tag")
    for i, request in enumerate(spec.resources):
        template = defs.templates.get(request.template)
        if template is None:
            invalid = (" or is invalid (see its problems)"
                       if "ResourceTemplate" in problems.invalid_kinds else "")
            problems.add(workload.locate(f"spec.resources[{i}].template"),
                         f"resource template {request.template!r} does not exist{invalid} "
                         f"(known: {', '.join(sorted(defs.templates))})")
        else:
            if request.access not in template.spec.access:
                problems.add(workload.locate(f"spec.resources[{i}].access"),
                             f"template {template.name!r} offers access {sorted(template.spec.access)}, "
                             f"not {request.access!r}")
            missing = sorted(set(template.spec.services) - set(defs.services(domain)))
            if missing:
                problems.add(workload.locate(f"spec.resources[{i}].template"),
                             f"template {template.name!r} needs {', '.join(missing)}, which domain "
                             f"{domain.name!r} does not enable")
    for i, dep in enumerate(spec.dependencies):
        _check_dependency(defs, workload, i, dep, problems)
    _check_variables(defs, workload, problems)
    _check_runtime(defs, domain, workload, problems)


#: The API each runtime needs in the domain's projects (Cloud Run's is checked with the network).
RUNTIME_SERVICES = {"dataflow": "dataflow.googleapis.com"}
_VARIABLE_REFERENCE = re.compile(r"\$\(([A-Za-z_][A-Za-z0-9_]*)\)")


def _check_runtime(defs: Definitions, domain: Domain, workload: Workload, problems: Problems) -> None:
    """A Dataflow workload declares its Flex Template (``spec.dataflow``) and only then; its
    parameters name only variables the workload has; the runtime's API is enabled."""
    spec = workload.spec
    if spec.runtime == "dataflow" and spec.dataflow is None:
        problems.add(workload.locate("spec.runtime"),
                     "a dataflow workload declares its Flex Template: add spec.dataflow with mode "
                     "(streaming or batch) and the template's parameters; spec.image is the "
                     "template's launcher image")
    if spec.runtime != "dataflow":
        if spec.dataflow is not None:
            problems.add(workload.locate("spec.dataflow"),
                         f"spec.dataflow is for runtime dataflow, not {spec.runtime!r}")
        for env, override in spec.environments.items():
            if override.dataflow is not None:
                problems.add(workload.locate(f"spec.environments.{env}.dataflow"),
                             f"spec.dataflow is for runtime dataflow, not {spec.runtime!r}")
    service = RUNTIME_SERVICES.get(spec.runtime)
    if service and service not in defs.services(domain):
        problems.add(workload.locate("spec.runtime"),
                     f"runtime {spec.runtime} needs {service}, which domain {domain.name!r} does "
                     "not enable")
    if spec.dataflow is None:
        return
    for i, request in enumerate(spec.resources):
        if request.name in ("df-temp", "df-staging"):
            problems.add(workload.locate(f"spec.resources[{i}].name"),
                         f"{request.name!r} names the Dataflow job's own {request.name[3:]} bucket; "
                         "choose another resource name")
    known = set(_injected_variables(defs, workload)) | set(spec.env)
    sources = [("spec.dataflow.parameters", spec.dataflow.parameters)] + [
        (f"spec.environments.{e}.dataflow.parameters", (o.dataflow.parameters or {}))
        for e, o in spec.environments.items() if o.dataflow is not None]
    for field, parameters in sources:
        for name, value in parameters.items():
            for variable in _VARIABLE_REFERENCE.findall(value):
                if variable not in known:
                    problems.add(workload.locate(f"{field}.{name}"),
                                 f"$({variable}) is not a variable of this workload (its env and the "
                                 f"injected ones: {', '.join(sorted(known))})")


def _effective_image(workload: Workload, env: str) -> str | None:
    override = workload.spec.environments.get(env)
    return (override.image if override and override.image else None) or workload.spec.image


def _check_dependency(defs: Definitions, workload: Workload, i: int, dep, problems: Problems) -> None:
    target_domain = dep.domain or workload.spec.domain
    target = defs.workloads.get((target_domain, dep.workload))
    where = workload.locate(f"spec.dependencies[{i}]")
    if target is None:
        problems.add(where, f"workload {dep.workload!r} in domain {target_domain!r} is not defined")
        return
    if target is workload:
        problems.add(where, "a workload cannot depend on itself")
        return
    if not visibility_admits(
        target.spec.ingress.visibility,
        target_platform=target.spec.platform, target_domain=target.spec.domain,
        caller_platform=workload.spec.platform, caller_domain=workload.spec.domain,
    ):
        problems.add(
            where,
            f"{target_domain}/{dep.workload} has visibility {target.spec.ingress.visibility!r}, "
            f"which does not admit callers from {workload.spec.platform}/{workload.spec.domain}",
        )


def _check_templates(defs: Definitions, problems: Problems) -> None:
    # The template engine owns its rules; one engine (its caches) for the whole run.
    from konfig.compile.policy import TemplatePolicy
    from konfig.compile.templates import TemplateEngine, check_template

    engine = TemplateEngine()
    policy = TemplatePolicy.of(defs.control_plane)
    for template in defs.templates.values():
        problems.extend(check_template(template, engine, policy, check_schemas=True))


__all__ = ["validate_definitions", "project_id_for"]
