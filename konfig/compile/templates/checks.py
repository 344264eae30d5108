"""Load-time checks of a template: schema, expressions, structure, and a dry render with a
sample workload in every environment kind the variants distinguish."""

from __future__ import annotations

from typing import Any

from konfig.compile.policy import DEFAULT_POLICY, TemplatePolicy, rendered_problems, template_problems
from konfig.compile.templates.engine import TemplateEngine
from konfig.compile.templates.expressions import has_expression
from konfig.compile.templates.parameters import parameter_problems, params_for, sample_params
from konfig.compile.templates.rendering import (
    NONPRODUCTION,
    PRODUCTION,
    plan_for,
    render_plan,
    variant_keys,
)
from konfig.errors import DefinitionError, Problem
from konfig.model.controlplane import Environment
from konfig.model.template import ResourceTemplate
from konfig.model.workload import ResourceRequest


def sample_context(
    template: ResourceTemplate | None = None,
    environment: Environment | None = None,
    *,
    access: str | None = None,
) -> dict[str, Any]:
    """A made-up but well-formed ``context`` for ``render_resource`` (workload ``sample``,
    resource ``data``, domain project ``acme-shop-<env>``): what :func:`check_template` renders
    with, and a handy fixture. The shape is the one the compiler passes."""
    environment = environment or Environment(name="dev")
    access = access or (sorted(template.spec.access)[0] if template else "read")
    project = f"acme-shop-{environment.name}"
    namespace = f"shop-{environment.name}"
    return {
        "workload": {
            "name": "sample",
            "platform": "retail",
            "domain": "shop",
            "namespace": namespace,
            "runtime": "cloudrun",
            "serviceAccount": {
                "name": "wl-sample",
                "email": f"wl-sample@{project}.iam.gserviceaccount.com",
            },
        },
        "resource": {"name": "data", "access": access, "objectName": "sample-data"},
        "environment": {
            "name": environment.name,
            "production": environment.production,
            "index": 0,
            # The CMEK key of production environments (konfig.compile.kms), "" elsewhere.
            "kmsKey": "konfig-cmek" if environment.production else "",
            "kmsKeyId": (f"projects/{project}/locations/us-central1/keyRings/konfig/cryptoKeys/cmek"
                         if environment.production else ""),
        },
        "domain": {"name": "shop", "projectId": project, "namespace": namespace},
        "platform": {"name": "retail"},
        "controlPlane": {"name": "acme", "region": "us-central1", "projectId": "acme-cp"},
        "network": {
            "name": f"konfig-{environment.name}",
            "hostProject": f"acme-net-{environment.name}",
            "selfLink": f"projects/acme-net-{environment.name}/global/networks/konfig-{environment.name}",
            "region": "us-central1",
            "subnetwork": f"projects/acme-net-{environment.name}/regions/us-central1/subnetworks/"
                          f"konfig-{environment.name}-us-central1",
            "servicesRange": f"konfig-{environment.name}-services",
        },
    }


def check_template(
    template: ResourceTemplate,
    engine: TemplateEngine | None = None,
    policy: TemplatePolicy | None = None,
    *,
    check_schemas: bool = False,
) -> list[Problem]:
    """Load-time problems of a template, each at its file, line and field (``[]`` if none):

    - ``spec.parameters`` is not a valid JSON Schema, or its defaults (alone, or with a
      variant's ``params``) do not validate against it;
    - a ``${...}`` does not parse, refers to anything but the roots, calls an unknown
      function, or exceeds the static limits (length, nesting); a map key holds an
      expression; ``apiVersion``/``kind`` are not constant; ``metadata.name`` is missing;
    - a variant patches a resource id the template does not have;
    - rendering with :func:`sample_context` in a non-production and a production environment
      (and each environment a variant names) fails: an expression that errors, a bad type,
      too high a cost, or an access mode whose ``bindTo`` resource is left out.

    - with ``check_schemas``, every dry-rendered Config Connector object is valid against its
      CRD (what ``konfig validate`` asks for, so a template no workload uses yet is checked);
    - the template policy of :mod:`konfig.compile.policy` (``policy``: the control plane's,
      default when ``None``): kinds, roles, and on every dry-rendered object Konfig-owned
      fields, public access and references to other projects.
    """
    engine = engine or TemplateEngine()
    policy = policy or DEFAULT_POLICY
    spec = template.spec
    schema_ok, problems = parameter_problems(template)
    problems.extend(template_problems(template, policy))
    for index, resource in enumerate(spec.resources):
        origin = f"spec.resources[{index}].template"
        for field in ("apiVersion", "kind"):
            value = resource.template.get(field)
            if not isinstance(value, str) or has_expression(value):
                problems.append(
                    Problem(
                        template.locate(f"{origin}.{field}"),
                        f"{field} must be a constant string (it selects the schema objects are "
                        "validated against)",
                    )
                )
        metadata = resource.template.get("metadata")
        if not isinstance(metadata, dict) or not metadata.get("name"):
            problems.append(
                Problem(template.locate(f"{origin}.metadata"), "metadata.name is required")
            )
    compiled = True
    for keys in _all_variant_key_sets(template):
        try:
            plan_for(engine, template, keys)
        except DefinitionError as error:
            problems.extend(error.problems)
            compiled = False
    if not problems and schema_ok and compiled:
        problems.extend(_dry_render(engine, template, policy, check_schemas))
    return sorted(set(problems))


def _all_variant_key_sets(template: ResourceTemplate) -> list[tuple[str, ...]]:
    """Variant key combinations worth compiling: each named variant alone and on top of each
    production kind, so every patch is compiled at least once."""
    named = [k for k in template.spec.environments if k not in (PRODUCTION, NONPRODUCTION)]
    sets = []
    for kind in (NONPRODUCTION, PRODUCTION):
        base = (kind,) if kind in template.spec.environments else ()
        sets.append(base)
        sets.extend(base + (name,) for name in named)
    return list(dict.fromkeys(sets))


def sample_environments(template: ResourceTemplate) -> list[Environment]:
    """The environments a dry render covers: a non-production and a production one, and each
    environment a variant names (flagged both ways)."""
    environments = [Environment(name="dev"), Environment(name="prod", production=True)]
    for key in template.spec.environments:
        if key not in (PRODUCTION, NONPRODUCTION):
            try:
                environments.append(Environment(name=key))
                environments.append(Environment(name=key, production=True))
            except ValueError:
                continue  # not an environment name; the variant then never applies
    return environments


def _dry_render(
    engine: TemplateEngine, template: ResourceTemplate, policy: TemplatePolicy, check_schemas: bool
) -> list[Problem]:
    """Render every access mode with :func:`sample_context` in :func:`sample_environments`,
    with :func:`sample_params`; a template that needs params from the workload and gives no
    ``examples`` for them is not dry-rendered."""
    problems: list[Problem] = []
    for environment in sample_environments(template):
        for access in sorted(template.spec.access):
            context = sample_context(template, environment, access=access)
            request = ResourceRequest(
                name="data", template=template.name, access=access, params=sample_params(template)
            )
            kind = "production" if environment.production else "non-production"
            who = f"sample {kind} environment {environment.name!r}, access {access!r}"
            plan = plan_for(engine, template, variant_keys(template, environment))
            params, param_problems = params_for(
                template, plan.param_layers, plan.param_checks, request, None, who
            )
            if param_problems:
                break  # the template needs params from the workload; nothing to dry-render
            try:
                rendered = render_plan(engine, plan, {**context, "params": params}, access, who)
            except DefinitionError as error:
                problems.extend(error.problems)
                continue
            problems.extend(rendered_problems(
                template, rendered.objects, rendered.origins,
                project_id=context["domain"]["projectId"], who=who, policy=policy,
                shared_projects=frozenset({context["network"]["hostProject"]}),
                service_accounts=frozenset(context["workload"]["serviceAccount"].values())))
            if check_schemas:
                problems.extend(_schema_problems(template, rendered.objects, rendered.origins, who))
    return problems


def _schema_problems(
    template: ResourceTemplate, objects: tuple[dict, ...], origins: tuple[str, ...], who: str
) -> list[Problem]:
    """CRD violations of dry-rendered objects, at the template's field (a template no workload
    uses yet is checked too)."""
    from konfig.kcc_schema import validate_object

    problems = []
    for obj, origin in zip(objects, origins):
        for message in validate_object(obj):
            path, _, detail = message.partition(": ")
            field = f"{origin}.{path}" if path and not path.startswith("<") else origin
            problems.append(Problem(template.locate(field), f"{detail or message} ({who})"))
    return problems
