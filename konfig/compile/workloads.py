"""Workloads: per environment a dedicated service account, the resources rendered from
templates with least-privilege bindings, and the runtime object with connection details."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from konfig.compile import naming
from konfig.compile.context import CompileContext
from konfig.compile.kms import kms_key_context
from konfig.compile.network import template_network
from konfig.compile.policy import rendered_problems
from konfig.compile.objects import konfig_labels, kube_object, object_name, policy_member, role_slug
from konfig.compile.state import KubeObject, object_key
from konfig.compile.templates import render_resource
from konfig.errors import DefinitionError, Problems
from konfig.model import Domain, Environment, Workload
from konfig.model.workload import WorkloadSpec, visibility_admits

IAM = "iam.cnrm.cloud.google.com/v1beta1"
RUN = "run.cnrm.cloud.google.com/v1beta1"

#: Cloud Run ingress per visibility: only external workloads accept traffic from outside
#: (through the load balancer); the rest only from inside the organisation's networks.
#: Source: https://cloud.google.com/run/docs/securing/ingress
RUN_INGRESS = {
    "domain": "INGRESS_TRAFFIC_INTERNAL_ONLY",
    "platform": "INGRESS_TRAFFIC_INTERNAL_ONLY",
    "controlplane": "INGRESS_TRAFFIC_INTERNAL_ONLY",
    "external": "INGRESS_TRAFFIC_INTERNAL_LOAD_BALANCER",
}
#: Project roles of runtimes that have no resource to bind on.
RUNTIME_PROJECT_ROLES = {"dataflow": ("roles/dataflow.worker",)}


@dataclass(frozen=True)
class Target:
    """Where one workload environment lives."""

    workload: Workload
    domain: Domain
    environment: Environment
    spec: WorkloadSpec
    namespace: str
    project_id: str
    control_plane: str

    @property
    def service_account_id(self) -> str:
        return naming.workload_service_account_id(self.workload.name)

    @property
    def service_account_email(self) -> str:
        return naming.service_account_email(self.service_account_id, self.project_id)

    @property
    def labels(self) -> dict[str, str]:
        return konfig_labels(self.control_plane, self.workload.spec.platform, self.domain.name,
                             self.environment.name, self.workload.name)


def compile_workloads(ctx: CompileContext) -> list[KubeObject]:
    """Every workload in every environment of its domain. Raises :class:`DefinitionError`
    with every rendering problem found."""
    problems = Problems()
    targets = _targets(ctx, problems)
    callers = _callers(ctx, targets)
    objects: list[KubeObject] = []
    for target in targets:
        try:
            objects += _workload_environment(ctx, target, callers.get(_key(target), []))
        except DefinitionError as err:
            problems.extend(err.problems)
    problems.raise_if_any()
    return objects


def _key(t: Target) -> tuple[str, str, str]:
    return (t.domain.name, t.workload.name, t.environment.name)


def _targets(ctx: CompileContext, problems: Problems) -> list[Target]:
    targets = []
    for (domain_name, name) in sorted(ctx.defs.workloads):
        domain = ctx.defs.domains[domain_name]
        for env in ctx.domain_environments(domain):
            workload = ctx.defs.workload_in(domain_name, name, env.name)
            if workload is None:
                continue  # not deployed to this environment yet
            try:
                spec = workload.spec_for(env.name)
            except ValidationError as err:  # a merged override is invalid (e.g. min > max)
                for error in err.errors():
                    message = error["msg"].removeprefix("Value error, ")
                    problems.add(workload.locate(f"spec.environments.{env.name}"),
                                 f"with this environment's overrides, {message}")
                continue
            targets.append(Target(workload, domain, env, spec,
                                  naming.namespace_name(domain.name, env.name),
                                  ctx.project_id(domain, env.name), ctx.cp_name))
    return targets


def _callers(ctx: CompileContext, targets: list[Target]) -> dict[tuple, list[Target]]:
    """For each workload environment, the workload environments that declared a dependency
    on it and that its visibility admits (the same environment only)."""
    by_key = {_key(t): t for t in targets}
    callers: dict[tuple, list[Target]] = {}
    for caller in targets:
        for dep in caller.spec.dependencies:
            key = (dep.domain or caller.domain.name, dep.workload, caller.environment.name)
            callee = by_key.get(key)
            if callee is None:
                continue  # the callee's domain lacks this environment
            if visibility_admits(callee.spec.ingress.visibility,
                                 target_platform=callee.workload.spec.platform,
                                 target_domain=callee.domain.name,
                                 caller_platform=caller.workload.spec.platform,
                                 caller_domain=caller.domain.name):
                callers.setdefault(key, []).append(caller)
    return callers


def _template_context(ctx: CompileContext, t: Target) -> dict[str, Any]:
    return {
        "workload": {"name": t.workload.name, "platform": t.workload.spec.platform,
                     "domain": t.domain.name, "namespace": t.namespace, "runtime": t.spec.runtime,
                     "serviceAccount": {"name": t.service_account_id,
                                        "email": t.service_account_email}},
        "environment": {"name": t.environment.name, "production": t.environment.production,
                        "index": ctx.cp.environment_names.index(t.environment.name),
                        **kms_key_context(ctx, t.domain, t.environment)},
        "domain": {"name": t.domain.name, "projectId": t.project_id, "namespace": t.namespace},
        "platform": {"name": t.workload.spec.platform},
        "controlPlane": {"name": ctx.cp_name, "region": ctx.region, "projectId": ctx.cp_project_id},
        "network": template_network(ctx, t.environment.name),
    }


def env_var_prefix(resource_name: str) -> str:
    """``order-events`` → ``ORDER_EVENTS``: the prefix of a resource's injected variables."""
    return resource_name.upper().replace("-", "_")


def dependency_variable(workload: str) -> str:
    """``payments-api`` → ``PAYMENTS_API_URL``: the variable holding a dependency's URL."""
    return f"{env_var_prefix(workload)}_URL"


#: Variables Konfig sets in every runtime container, whatever it declares.
BASE_VARIABLES = ("GOOGLE_CLOUD_PROJECT", "KONFIG_ENVIRONMENT")
#: Set in load-balanced workloads: the path they are served under (no rewrite is done).
BASE_PATH_VARIABLE = "KONFIG_BASE_PATH"


def _workload_environment(ctx: CompileContext, t: Target, callers: list[Target]) -> list[KubeObject]:
    labels = t.labels
    sa_name = t.service_account_id
    objects = [
        kube_object(IAM, "IAMServiceAccount", sa_name, namespace=t.namespace, labels=labels,
                    spec={"resourceID": t.service_account_id,
                          "displayName": f"Workload {t.workload.name} ({t.environment.name})"}),
    ]
    env: dict[str, str] = {
        "KONFIG_ENVIRONMENT": t.environment.name,
        "GOOGLE_CLOUD_PROJECT": t.project_id,
    }
    base = _template_context(ctx, t)
    for i, request in enumerate(t.spec.resources):
        template = ctx.defs.templates[request.template]
        context = {**base, "resource": {"name": request.name, "access": request.access,
                                        "objectName": object_name(t.workload.name, request.name)}}
        rendered = render_resource(template, request=request, environment=t.environment,
                                   context=context, where=t.workload.locate(f"spec.resources[{i}]"),
                                   engine=ctx.engine)
        _check_policy(ctx, t, template, rendered, context)
        who = f"workload {t.workload.name}, resource {request.name}, environment {t.environment.name}"
        for obj, origin in zip(rendered.objects, rendered.origins):
            adopted = _adopt(obj, t.namespace, labels)
            ctx.origins[object_key(adopted)] = (template, origin, who)
            objects.append(adopted)
        for key, value in rendered.env.items():
            env[f"{env_var_prefix(request.name)}_{key}"] = value
        for role in rendered.roles:
            objects.append(_resource_binding(t, request.name, role, rendered.bind_target, labels))
    for role in RUNTIME_PROJECT_ROLES.get(t.spec.runtime, ()):
        objects.append(_resource_binding(t, "runtime", role, None, labels))
    route = ctx.routes.get(_key(t))
    if route is not None:
        env[BASE_PATH_VARIABLE] = route.path
    env.update(_dependency_urls(ctx, t))
    # A workload's own env never replaces an injected variable: validation refuses that.
    env.update({k: v for k, v in t.spec.env.items() if k not in env})
    objects += _runtime(ctx, t, env, callers, labels)
    who = f"workload {t.workload.name}, environment {t.environment.name}"
    for obj in objects:
        ctx.origins.setdefault(object_key(obj), (t.workload, "spec", who))
    return objects


def _dependency_urls(ctx: CompileContext, t: Target) -> dict[str, str]:
    from konfig.compile.ingress import own_url

    """``<DEPENDENCY>_URL`` per dependency present in this environment: its load-balancer URL
    where it is routed, else its own Cloud Run URL once Config Connector reports it (the URL
    holds the project number, unknown before the project exists: noted until then)."""
    urls: dict[str, str] = {}
    for dep in t.spec.dependencies:
        domain = dep.domain or t.domain.name
        route = ctx.routes.get((domain, dep.workload, t.environment.name))
        if route is not None:
            urls[dependency_variable(dep.workload)] = route.url
            continue
        namespace = naming.namespace_name(domain, t.environment.name)
        target = ctx.defs.workload_in(domain, dep.workload, t.environment.name)
        url = own_url(ctx, target, namespace) if target is not None else None
        if url:
            urls[dependency_variable(dep.workload)] = url
        elif target is not None and target.spec.runtime == "cloudrun":
            ctx.notes.append(
                f"{t.namespace}/{t.workload.name}: {dependency_variable(dep.workload)} is set once "
                f"Cloud Run reports the URL of {namespace}/{dep.workload}")
    return urls
def _check_policy(ctx: CompileContext, t: Target, template, rendered, context) -> None:
    """The template policy on what this workload environment rendered (konfig.compile.policy):
    objects may refer to the domain environment's project and its Shared VPC host project.
    Raises :class:`DefinitionError` located in the template."""
    who = f"workload {t.workload.name}, environment {t.environment.name}"
    host = (context.get("network") or {}).get("hostProject")
    problems = rendered_problems(template, rendered.objects, rendered.origins,
                                 project_id=t.project_id, who=who, policy=ctx.policy,
                                 shared_projects=frozenset({host} if host else ()),
                                 service_accounts=frozenset({t.service_account_id,
                                                             t.service_account_email}))
    if problems:
        raise DefinitionError(problems)


def _adopt(obj: KubeObject, namespace: str, labels: dict[str, str]) -> KubeObject:
    """Place a rendered template object in the namespace with Konfig's labels; the template's
    own labels and annotations are kept, Konfig's win on conflict."""
    meta = dict(obj.get("metadata", {}))
    built = kube_object(obj["apiVersion"], obj["kind"], meta["name"], namespace=namespace,
                        labels={**meta.get("labels", {}), **labels},
                        annotations=meta.get("annotations"))
    built.update({k: v for k, v in obj.items() if k not in ("apiVersion", "kind", "metadata")})
    return built


def _resource_binding(t: Target, resource: str, role: str, target: KubeObject | None, labels) -> KubeObject:
    if target is None:
        ref = {"kind": "Project", "external": f"projects/{t.project_id}"}
    else:
        ref = {"apiVersion": target["apiVersion"], "kind": target["kind"],
               "name": target["metadata"]["name"]}
    return policy_member(
        object_name(t.workload.name, resource, role_slug(role)), namespace=t.namespace,
        labels=labels, resource_ref=ref, role=role,
        service_account_ref={"name": t.service_account_id},
    )


def _runtime(ctx: CompileContext, t: Target, env: dict[str, str], callers: list[Target], labels) -> list[KubeObject]:
    from konfig.compile import runtimes

    if t.spec.runtime == "dataflow":
        return runtimes.dataflow(ctx, t, env, labels)  # buckets and grants even before an image
    if not t.spec.image:
        ctx.notes.append(f"{t.namespace}/{t.workload.name}: no image yet, runtime not rendered")
        return []
    if t.spec.runtime == "gke":
        return runtimes.gke(ctx, t, env, labels)
    return _cloud_run(ctx, t, env, callers, labels)


def _env_list(env: dict[str, str]) -> list[dict[str, str]]:
    return [{"name": k, "value": v} for k, v in sorted(env.items())]


def _cloud_run(ctx: CompileContext, t: Target, env, callers: list[Target], labels) -> list[KubeObject]:
    spec = t.spec
    container: dict[str, Any] = {
        "name": t.workload.name,
        "image": spec.image,
        "ports": [{"containerPort": spec.container.port}],
        "env": _env_list(env),
        "resources": {"limits": {"cpu": spec.container.cpu, "memory": spec.container.memory}},
    }
    if spec.container.command:
        container["command"] = list(spec.container.command)
    if spec.container.args:
        container["args"] = list(spec.container.args)
    service = kube_object(
        RUN, "RunService", t.workload.name, namespace=t.namespace, labels=labels,
        spec={
            "location": ctx.region,
            "projectRef": {"external": f"projects/{t.project_id}"},
            "ingress": RUN_INGRESS[spec.ingress.visibility],
            "template": {
                "serviceAccountRef": {"name": t.service_account_id},
                "containers": [container],
                "scaling": {"minInstanceCount": spec.scaling.min, "maxInstanceCount": spec.scaling.max},
                "labels": dict(labels),
                "vpcAccess": _direct_vpc_egress(ctx, t),
            },
        },
    )
    route = ctx.routes.get(_key(t))
    if route is not None:
        # Callers behind the load balancer sign ID tokens for its URL, not the run.app one.
        # Source: https://cloud.google.com/run/docs/configuring/custom-audiences
        service["spec"]["customAudiences"] = [route.url]
    objects = [service]
    ref = {"apiVersion": RUN, "kind": "RunService", "name": t.workload.name}
    members = sorted({f"serviceAccount:{c.service_account_email}" for c in callers})
    if spec.ingress.visibility == "external":
        members.append("allUsers")  # public behind the load balancer; ingress limits the path
    for member in members:
        objects.append(policy_member(
            object_name(t.workload.name, "invoker", _member_slug(member)),
            namespace=t.namespace, labels=labels, resource_ref=ref,
            role="roles/run.invoker", member=member))
    return objects


def _direct_vpc_egress(ctx: CompileContext, t: Target) -> dict[str, Any]:
    """All egress through the environment's shared subnet (Direct VPC egress), tagged with the
    domain: calls to internal load balancers, private IPs and internal-ingress services stay
    on the network, internet egress goes through Cloud NAT. Source:
    https://cloud.google.com/run/docs/configuring/vpc-direct-vpc"""
    e = t.environment.name
    return {
        "egress": "ALL_TRAFFIC",
        "networkInterfaces": [{
            "networkRef": {"external": ctx.network_link(e)},
            "subnetworkRef": {"external": ctx.subnet_link(e, ctx.region)},
            "tags": [naming.network_tag(t.domain.name)],
        }],
    }


def _member_slug(member: str) -> str:
    """``serviceAccount:wl-a@acme-shop-prod.iam.gserviceaccount.com`` → ``wl-a-acme-shop-prod``
    (unique per caller: account and project), ``allUsers`` → ``allusers``."""
    return member.split(":", 1)[-1].removesuffix(".iam.gserviceaccount.com").replace("@", "-")
