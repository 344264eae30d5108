"""Rendering: a template compiled per environment kind (a :class:`Plan`), and a workload's
resource request rendered from it into Config Connector objects, env values and roles."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping

from konfig.compile.templates.engine import TemplateEngine
from konfig.compile.templates.expressions import ROOTS, Program, cel_type, condition_source
from konfig.compile.templates.limits import CostMeter
from konfig.compile.templates.parameters import ParamError, params_for
from konfig.compile.templates.tree import (
    FAILED,
    Node,
    Scope,
    compile_value,
    located,
    merge_nodes,
    without_nulls,
)
from konfig.errors import DefinitionError, Location, Problem
from konfig.model.controlplane import Environment
from konfig.model.template import ResourceTemplate
from konfig.model.workload import ResourceRequest

#: Variant keys that apply to every environment flagged ``production: true`` / not flagged.
PRODUCTION, NONPRODUCTION = "production", "nonproduction"


@dataclass(frozen=True)
class RenderedResource:
    """A workload's resource in one environment, rendered from its template.

    - ``objects``: Config Connector manifests with every expression evaluated, in template
      order; without namespace and Konfig labels (the compiler adds those and the deletion
      policy).
    - ``env``: the template's ``env`` evaluated, keys unprefixed (``DB_NAME``).
    - ``roles``: the roles of the requested access mode.
    - ``bind_to``: ``"project"`` or the template resource id that carries the IAM binding.
    - ``bind_target``: the rendered object for ``bind_to`` (``None`` for ``"project"``).
    - ``services``: the APIs the objects need (``sqladmin.googleapis.com``).
    - ``origins``: for each object (same order), the template field it came from
      (``spec.resources[0].template``), to locate problems found later.
    """

    objects: tuple[dict, ...]
    env: dict[str, str]
    roles: tuple[str, ...]
    bind_to: str
    bind_target: dict | None
    services: tuple[str, ...]
    origins: tuple[str, ...] = ()


@dataclass(frozen=True)
class PlannedResource:
    id: str
    index: int
    include_when: tuple[tuple[Program, str], ...]
    tree: Node


@dataclass
class Plan:
    """A template compiled for one environment kind (its variant keys applied)."""

    template: ResourceTemplate
    variant_keys: tuple[str, ...]
    resources: tuple[PlannedResource, ...]
    env: tuple[tuple[str, Node], ...]
    param_layers: tuple[tuple[str, dict[str, Any]], ...]  # (variant key, params)
    param_checks: dict[str, list[ParamError]] = field(default_factory=dict)


def variant_keys(template: ResourceTemplate, environment: Environment) -> tuple[str, ...]:
    """The ``spec.environments`` keys that apply to ``environment``, in merge order:
    ``production`` or ``nonproduction`` first, then the environment's own name."""
    variants = template.spec.environments
    wanted = (PRODUCTION if environment.production else NONPRODUCTION, environment.name)
    return tuple(key for key in wanted if key in variants)


def plan_for(engine: TemplateEngine, template: ResourceTemplate, keys: tuple[str, ...]) -> Plan:
    """``template`` compiled with the variants ``keys`` (cached in ``engine``). Raises
    :class:`DefinitionError` with every syntax, reference and limit problem, located in the
    template."""
    cache_key = (id(template), keys)
    cached = engine.plans.get(cache_key)
    if cached is not None and cached.template is template:
        if isinstance(cached, _BrokenPlan):
            raise DefinitionError(list(cached.problems))
        return cached
    try:
        plan = _build_plan(engine, template, keys)
    except DefinitionError as error:
        engine.plans[cache_key] = _BrokenPlan(template, tuple(error.problems))
        raise
    engine.plans[cache_key] = plan
    return plan


@dataclass(frozen=True)
class _BrokenPlan:
    template: ResourceTemplate
    problems: tuple[Problem, ...]


def _build_plan(engine: TemplateEngine, template: ResourceTemplate, keys: tuple[str, ...]) -> Plan:
    problems: list[tuple[str, str]] = []
    spec = template.spec
    program, check = engine.program, engine.expression_problems

    def compiled(value: Any, origin: str) -> Node:
        return compile_value(value, origin, problems, program, check)

    trees: dict[str, Node] = {}
    for index, resource in enumerate(spec.resources):
        trees[resource.id] = compiled(resource.template, f"spec.resources[{index}].template")
    for key in keys:
        for j, patch in enumerate(spec.environments[key].resources):
            origin = f"spec.environments.{key}.resources[{j}]"
            if patch.id not in trees:
                problems.append((f"{origin}.id", _unknown_id_message(template, patch.id)))
                continue
            trees[patch.id] = merge_nodes(trees[patch.id], compiled(patch.template, f"{origin}.template"))
    resources = []
    for index, resource in enumerate(spec.resources):
        conditions = []
        for k, condition in enumerate(resource.include_when):
            origin = f"spec.resources[{index}].includeWhen[{k}]"
            source = condition_source(condition)
            issues = check(source)
            if issues:
                problems.extend((origin, issue) for issue in issues)
                continue
            conditions.append((program(source), origin))
        tree = without_nulls(trees[resource.id])
        resources.append(PlannedResource(resource.id, index, tuple(conditions), tree))
    env = tuple((name, compiled(value, f"spec.env.{name}")) for name, value in spec.env.items())
    if problems:
        raise DefinitionError(located(template, problems))
    return Plan(
        template=template,
        variant_keys=keys,
        resources=tuple(resources),
        env=env,
        param_layers=tuple((key, spec.environments[key].params) for key in keys),
    )


def _unknown_id_message(template: ResourceTemplate, resource_id: str) -> str:
    ids = ", ".join(r.id for r in template.spec.resources)
    return f"variant patches resource {resource_id!r}, which is not a resource id (ids: {ids})"


def _who(context: Mapping[str, Any], environment: Environment) -> str:
    workload = (context.get("workload") or {}).get("name", "?")
    resource = (context.get("resource") or {}).get("name", "?")
    return f"workload {workload}, resource {resource}, environment {environment.name}"


def render_resource(
    template: ResourceTemplate,
    *,
    request: ResourceRequest,
    environment: Environment,
    context: Mapping[str, Any],
    where: Location | None = None,
    engine: TemplateEngine | None = None,
) -> RenderedResource:
    """Render ``request`` (a workload's resource) from ``template`` in ``environment``.

    ``context`` holds the expression roots the compiler knows::

        workload:     {name, platform, domain, namespace, runtime,
                       serviceAccount: {name, email}}
        resource:     {name, access, objectName}       # objectName = "<workload>-<resource>"
        environment:  {name, production, index, kmsKey, kmsKeyId}  # CMEK key, "" outside production
        domain:       {name, projectId, namespace}
        platform:     {name}
        controlPlane: {name, region, projectId}
        network:      {name, hostProject, selfLink, region, subnetwork, servicesRange}

    and the engine adds ``params`` (see the package docstring). ``where`` is the location of
    the request in the workload (``spec.resources[2]``), used for problems with its params or
    access mode. ``engine`` holds the caches (a compile passes its own; a fresh one is used
    otherwise).

    Raises :class:`~konfig.errors.DefinitionError` with every problem found: an access mode
    the template does not offer, params that break the template's schema (pointing at the
    request, or at the template variant that set them), expressions that fail or exceed the
    cost limits (pointing at the template's file, line and field, and naming the workload,
    resource and environment), and an IAM target (``bindTo``) left out by ``includeWhen``.
    """
    engine = engine or TemplateEngine()
    who = _who(context, environment)
    spec = template.spec
    if request.access not in spec.access:
        base = where or Location()
        field_name = ".".join(f for f in (base.field, "access") if f)
        offered = ", ".join(sorted(spec.access))
        raise DefinitionError(
            [
                Problem(
                    base.at(field_name),
                    f"template {template.name!r} has no access mode {request.access!r} "
                    f"(offered: {offered}) ({who})",
                )
            ]
        )
    try:
        plan = plan_for(engine, template, variant_keys(template, environment))
    except DefinitionError as error:
        raise DefinitionError(
            [Problem(p.location, f"{p.message} ({who})") for p in error.problems]
        ) from None
    params, problems = params_for(template, plan.param_layers, plan.param_checks, request, where, who)
    if problems:
        raise DefinitionError(problems)
    return render_plan(engine, plan, {**context, "params": params}, request.access, who)


def render_plan(
    engine: TemplateEngine, plan: Plan, variables: Mapping[str, Any], access: str, who: str
) -> RenderedResource:
    """Render a compiled template with every root in ``variables``. Raises
    :class:`DefinitionError`."""
    template = plan.template
    missing = [root for root in ROOTS if root not in variables]
    if missing:  # a compiler bug, not a user error: never render with a stale root
        raise ValueError(f"render context lacks {', '.join(missing)}")
    try:
        ctx = engine.context_with(variables)
    except (ValueError, TypeError) as error:  # a value CEL cannot hold (a date, bytes...)
        origin = "spec.parameters"
        raise DefinitionError([Problem(template.locate(origin), f"the values of this render "
                                       f"cannot be given to CEL: {error} ({who})")]) from None
    scope = Scope(ctx, template, who, CostMeter(variables, engine.budget))
    rendered: dict[str, dict] = {}
    objects, origins = [], []
    for resource in plan.resources:
        if not _included(resource, scope):
            continue
        value = resource.tree.render(scope)
        if value is FAILED:
            continue
        rendered[resource.id] = value
        objects.append(value)
        origins.append(f"spec.resources[{resource.index}].template")
    env: dict[str, str] = {}
    for name, node in plan.env:
        value = node.render(scope)
        if value is FAILED:
            continue
        if value is None or isinstance(value, (dict, list)):
            scope.fail(f"spec.env.{name}", f"env value gives {cel_type(value)}, not text")
            continue
        env[name] = ("true" if value else "false") if isinstance(value, bool) else str(value)
    mode = template.spec.access_mode(access)
    bind_to = mode.bind_to or "project"
    target = None
    if bind_to != "project":
        target = rendered.get(bind_to)
        if target is None and not scope.problems:
            scope.fail(
                f"spec.access.{access}",
                f"access mode {access!r} binds to resource {bind_to!r}, which is not rendered "
                "here (its includeWhen is false)",
            )
    if scope.problems:
        raise DefinitionError(scope.problems)
    return RenderedResource(
        objects=tuple(objects),
        env=env,
        roles=tuple(mode.roles),
        bind_to=bind_to,
        bind_target=target,
        services=tuple(dict.fromkeys(template.spec.services)),
        origins=tuple(origins),
    )


def _included(resource: PlannedResource, scope: Scope) -> bool:
    for condition, origin in resource.include_when:
        value = scope.evaluate(condition, origin)
        if value is FAILED:
            return False
        if not isinstance(value, bool):
            scope.fail(
                origin, f"includeWhen ${{{condition.source}}} gives {cel_type(value)}, not a bool"
            )
            return False
        if not value:
            return False
    return True
