"""The template engine: CEL in ``${...}``, typed vs interpolated values, escapes, includeWhen,
variants, parameters, and problems located at file:line:field."""

from __future__ import annotations

import hashlib

import pytest

from konfig.compile.templates import (
    ROOTS,
    check_template,
    fit_name,
    render_resource,
    split_expressions,
    variant_keys,
)
from konfig.errors import DefinitionError, Location
from konfig.model.controlplane import Environment

from tests.templates.helpers import DEV, PROD, STAGE, context, line_of, request, template_from_yaml

BASE = """\
apiVersion: konfig.dev/v1alpha1
kind: ResourceTemplate
metadata: {name: t}
spec:
  parameters:
    type: object
    additionalProperties: false
    properties:
      size: {type: integer, minimum: 1, default: 2}
      tier: {type: string, enum: [small, medium, large], default: small}
      labels: {type: object, additionalProperties: {type: string}, default: {}}
  access:
    rw: {roles: [roles/storage.objectAdmin], bindTo: main}
    ro: {roles: [roles/storage.objectViewer, roles/storage.legacyBucketReader]}
    proj: {roles: [roles/pubsub.viewer], bindTo: project}
  env:
    NAME: "${resource.objectName}"
    SIZE: "${params.size}"
    PRODUCTION: "${environment.production}"
    URL: "gs://${domain.projectId}-${resource.name}"
  services: [storage.googleapis.com, storage.googleapis.com]
  resources:
    - id: main
      template:
        apiVersion: storage.cnrm.cloud.google.com/v1beta1
        kind: StorageBucket
        metadata:
          name: "${resource.objectName}"
        spec:
          publicAccessPrevention: enforced
          size: "${params.size}"
          sizeText: "size=${params.size}"
          production: "${environment.production}"
          tier: "${params.tier}"
          list: "${[params.size, params.size * 2]}"
          map: "${ {'zeta': 1, 'alpha': params.tier} }"
          nested: {keep: constant, number: 7}
          owner: "${workload.name}/${resource.name}@${environment.name}"
          escaped: "$${not.an.expression}"
          mixed: "$${literal} and ${params.tier}"
          dropped: "${null}"
          region: "${controlPlane.region}"
    - id: extra
      includeWhen: ["${environment.production}", "params.size > 1"]
      template:
        apiVersion: storage.cnrm.cloud.google.com/v1beta1
        kind: StorageBucket
        metadata: {name: "${resource.objectName}-extra"}
        spec: {flag: true, publicAccessPrevention: enforced}
  environments:
    production:
      params: {size: 5, tier: medium}
      resources:
        - id: main
          template:
            spec:
              nested: {number: 70, added: "${params.tier}"}
              region: null
    prod:
      params: {tier: large}
    nonproduction:
      resources:
        - id: main
          template:
            spec:
              list: [replaced]
"""


@pytest.fixture(scope="module")
def base():
    return template_from_yaml(BASE)


def render(template, environment=DEV, access="rw", where=None, **params):
    return render_resource(
        template,
        request=request(access, **params),
        environment=environment,
        context=context(environment),
        where=where,
    )


def test_the_bundled_base_template_passes_its_own_checks(base):
    assert check_template(base) == []


def test_a_whole_string_expression_keeps_the_type_of_its_value(base):
    spec = render(base, size=3).objects[0]["spec"]
    assert spec["size"] == 3 and type(spec["size"]) is int
    assert spec["production"] is False
    live = render(base, Environment(name="live", production=True), size=3).objects[0]["spec"]
    assert live["list"] == [3, 6]
    assert spec["map"] == {"alpha": "small", "zeta": 1}


def test_text_with_expressions_is_interpolated_as_text(base):
    spec = render(base, size=3).objects[0]["spec"]
    assert spec["sizeText"] == "size=3"
    assert spec["owner"] == "checkout/orders@dev"
    assert render(base).objects[0]["metadata"]["name"] == "checkout-orders"


def test_double_dollar_escapes_an_expression(base):
    spec = render(base).objects[0]["spec"]
    assert spec["escaped"] == "${not.an.expression}"
    assert spec["mixed"] == "${literal} and small"


def test_constants_are_copied_not_shared_between_renders(base):
    first = render(base).objects[0]
    first["spec"]["nested"]["keep"] = "mutated"
    assert render(base).objects[0]["spec"]["nested"]["keep"] == "constant"


def test_null_values_remove_their_field(base):
    assert "dropped" not in render(base).objects[0]["spec"]


def test_map_keys_from_cel_come_out_sorted(base):
    # cel-rust maps iterate in a per-process random order; output must be stable.
    assert list(render(base).objects[0]["spec"]["map"]) == ["alpha", "zeta"]


def test_include_when_needs_every_condition(base):
    assert [o["metadata"]["name"] for o in render(base, DEV).objects] == ["checkout-orders"]
    prod = render(base, PROD).objects
    assert [o["metadata"]["name"] for o in prod] == ["checkout-orders", "checkout-orders-extra"]
    # production but size 1 (the request wins over the variant): the bare CEL condition fails
    assert len(render(base, PROD, size=1).objects) == 1


def test_variant_keys_are_production_kind_first_then_the_environment_name(base):
    assert variant_keys(base, PROD) == ("production", "prod")
    assert variant_keys(base, DEV) == ("nonproduction",)
    assert variant_keys(base, Environment(name="prod")) == ("nonproduction", "prod")


def test_variant_params_overlay_in_order_and_the_request_wins(base):
    # defaults: size 2, tier small; production: size 5, tier medium; prod: tier large
    assert render(base, PROD).objects[0]["spec"]["tier"] == "large"
    assert render(base, PROD).objects[0]["spec"]["size"] == 5
    assert render(base, Environment(name="live", production=True)).objects[0]["spec"]["tier"] == (
        "medium"
    )
    assert render(base, STAGE).objects[0]["spec"]["tier"] == "small"
    assert render(base, PROD, tier="small").objects[0]["spec"]["tier"] == "small"


def test_variant_patches_deep_merge_replace_lists_and_delete_with_null(base):
    prod = render(base, PROD).objects[0]["spec"]
    assert prod["nested"] == {"keep": "constant", "number": 70, "added": "large"}
    assert "region" not in prod
    assert prod["list"] == [5, 10]
    dev = render(base, DEV).objects[0]["spec"]
    assert dev["list"] == ["replaced"]
    assert dev["region"] == "us-central1"
    assert dev["nested"] == {"keep": "constant", "number": 7}


def test_env_values_are_text(base):
    assert render(base, PROD).env == {
        "NAME": "checkout-orders",
        "SIZE": "5",
        "PRODUCTION": "true",
        "URL": "gs://acme-shop-prod-orders",
    }


def test_access_mode_roles_and_binding_target(base):
    rw = render(base, access="rw")
    assert rw.roles == ("roles/storage.objectAdmin",)
    assert rw.bind_to == "main" and rw.bind_target is rw.objects[0]
    ro = render(base, access="ro")  # no bindTo: the first resource
    assert ro.bind_to == "main" and ro.roles == (
        "roles/storage.objectViewer",
        "roles/storage.legacyBucketReader",
    )
    proj = render(base, access="proj")
    assert proj.bind_to == "project" and proj.bind_target is None
    assert rw.services == ("storage.googleapis.com",)


def test_unknown_access_mode_points_at_the_request(base):
    where = Location("checkout/workload.yaml", 12, "spec.resources[0]")
    with pytest.raises(DefinitionError) as caught:
        render(base, access="write", where=where)
    (problem,) = caught.value.problems
    assert problem.location == Location("checkout/workload.yaml", 12, "spec.resources[0].access")
    assert "'write'" in problem.message and "proj, ro, rw" in problem.message


def test_defaults_fill_missing_params_and_bad_params_point_at_the_request(base):
    assert render(base).objects[0]["spec"]["size"] == 2
    where = Location("checkout/workload.yaml", 9, "spec.resources[1]")
    with pytest.raises(DefinitionError) as caught:
        render(base, DEV, where=where, size=0, tier="huge", colour="red")
    problems = caught.value.problems
    fields = {p.location.field for p in problems}
    assert fields == {
        "spec.resources[1].params",  # additionalProperties: colour
        "spec.resources[1].params.size",
        "spec.resources[1].params.tier",
    }
    assert all(p.location.file == "checkout/workload.yaml" and p.location.line == 9 for p in problems)
    assert all("workload checkout, resource orders, environment dev" in p.message for p in problems)
    assert any("'huge' is not one of" in p.message for p in problems)


def test_a_variant_that_sets_a_bad_param_is_blamed_not_the_workload():
    text = BASE.replace("params: {tier: large}", "params: {tier: enormous}")
    template = template_from_yaml(text, "lib/t.yaml")
    problems = check_template(template)
    assert [(p.location.file, p.location.line, p.location.field) for p in problems] == [
        ("lib/t.yaml", line_of(text, "params: {tier: enormous}"), "spec.environments.prod.params.tier")
    ]
    with pytest.raises(DefinitionError) as caught:
        render(template, PROD)
    assert caught.value.problems[0].location.field == "spec.environments.prod.params.tier"
    assert "template 't'" in caught.value.problems[0].message


def test_syntax_errors_are_located_at_their_field():
    text = BASE.replace('size: "${params.size}"\n', 'size: "${params.size +}"\n')
    template = template_from_yaml(text, "lib/t.yaml")
    problems = check_template(template)
    assert len(problems) == 1
    (problem,) = problems
    assert problem.location == Location(
        "lib/t.yaml", line_of(text, "${params.size +}"), "spec.resources[0].template.spec.size"
    )
    assert "CEL syntax error" in problem.message
    with pytest.raises(DefinitionError) as caught:
        render(template)
    assert caught.value.problems[0].location == problem.location
    assert "environment dev" in caught.value.problems[0].message


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ('"${secrets.token}"', "refers to 'secrets'"),
        ('"${os.environ}"', "refers to 'os'"),
        ('"${unknownFn(params.tier)}"', "unknown function(s) 'unknownFn'"),
        ('"${params.tier"', "has no closing"),
        ('"${}"', "empty expression"),
    ],
)
def test_expressions_may_only_use_the_roots_and_known_functions(value, expected):
    text = BASE.replace('tier: "${params.tier}"', f"tier: {value}")
    template = template_from_yaml(text)
    (problem,) = check_template(template)
    assert expected in problem.message
    assert problem.location.field == "spec.resources[0].template.spec.tier"
    assert problem.location.line == line_of(text, f"tier: {value}")


def test_macro_variables_and_library_functions_are_allowed():
    text = BASE.replace(
        'tier: "${params.tier}"',
        "tier: \"${[params.tier].map(t, t.upperAscii()).filter(x, x.size() > 0)[0]"
        " + '-' + shortHash('x') + '-' + string(math.greatest(1, 2))}\"",
    )
    template = template_from_yaml(text)
    assert check_template(template) == []
    expected = f"SMALL-{hashlib.sha256(b'x').hexdigest()[:4]}-2"
    assert render(template).objects[0]["spec"]["tier"] == expected


def test_evaluation_errors_name_the_workload_resource_and_environment():
    text = BASE.replace('tier: "${params.tier}"', 'tier: "${workload.missing}"')
    template = template_from_yaml(text, "lib/t.yaml")
    with pytest.raises(DefinitionError) as caught:
        render(template, PROD)
    (problem,) = caught.value.problems
    assert problem.location == Location(
        "lib/t.yaml", line_of(text, "${workload.missing}"), "spec.resources[0].template.spec.tier"
    )
    assert "'missing'" in problem.message
    assert "workload checkout, resource orders, environment prod" in problem.message
    # the load-time dry render finds it too
    assert any(p.location == problem.location for p in check_template(template))


def test_every_failing_expression_is_reported_at_once():
    text = BASE.replace('tier: "${params.tier}"', 'tier: "${workload.nope}"').replace(
        'PRODUCTION: "${environment.production}"', 'PRODUCTION: "${domain.nope}"'
    )
    with pytest.raises(DefinitionError) as caught:
        render(template_from_yaml(text))
    assert {p.location.field for p in caught.value.problems} == {
        "spec.resources[0].template.spec.tier",
        "spec.env.PRODUCTION",
    }


def test_interpolating_a_list_is_an_error():
    text = BASE.replace('sizeText: "size=${params.size}"', 'sizeText: "size=${[1]}"')
    with pytest.raises(DefinitionError) as caught:
        render(template_from_yaml(text))
    assert "cannot be interpolated" in caught.value.problems[0].message


def test_include_when_must_give_a_bool():
    text = BASE.replace('"params.size > 1"', '"params.size"')
    with pytest.raises(DefinitionError) as caught:
        render(template_from_yaml(text), PROD)
    (problem,) = caught.value.problems
    assert problem.location.field == "spec.resources[1].includeWhen[1]"
    assert "not a bool" in problem.message


def test_a_binding_target_left_out_by_include_when_is_an_error():
    text = BASE.replace("rw: {roles: [roles/storage.objectAdmin], bindTo: main}",
                        "rw: {roles: [roles/storage.objectAdmin], bindTo: extra}")
    template = template_from_yaml(text)
    assert render(template, PROD).bind_target["metadata"]["name"] == "checkout-orders-extra"
    with pytest.raises(DefinitionError) as caught:
        render(template, DEV)
    assert caught.value.problems[0].location.field == "spec.access.rw"
    assert any("'rw'" in p.message and "'extra'" in p.message for p in check_template(template))


def test_a_variant_patching_an_unknown_resource_is_located():
    text = BASE.replace("        - id: main\n          template:\n            spec:\n              list",
                        "        - id: mian\n          template:\n            spec:\n              list")
    template = template_from_yaml(text, "lib/t.yaml")
    (problem,) = check_template(template)
    assert problem.location == Location(
        "lib/t.yaml", line_of(text, "- id: mian"), "spec.environments.nonproduction.resources[0].id"
    )
    assert "'mian'" in problem.message and "main, extra" in problem.message


def test_parameters_must_be_a_valid_json_schema_with_valid_defaults():
    bad_schema = BASE.replace("size: {type: integer, minimum: 1, default: 2}",
                              "size: {type: integr, default: 2}")
    (problem,) = check_template(template_from_yaml(bad_schema))
    assert problem.location.field.startswith("spec.parameters")
    assert "not a valid JSON Schema" in problem.message
    bad_default = BASE.replace("minimum: 1, default: 2", "minimum: 1, default: 0")
    (problem,) = check_template(template_from_yaml(bad_default))
    assert problem.location.field == "spec.parameters.properties.size"
    assert problem.location.line == line_of(bad_default, "size: {type: integer")


def test_a_required_param_without_default_is_the_workloads_to_give():
    text = BASE.replace("    additionalProperties: false\n    properties:",
                        "    additionalProperties: false\n    required: [topic]\n    properties:\n"
                        "      topic: {type: string, examples: [orders]}", 1)
    template = template_from_yaml(text)
    assert check_template(template) == []
    with pytest.raises(DefinitionError) as caught:
        render(template, where=Location("w.yaml", 4, "spec.resources[0]"))
    assert caught.value.problems[0].location == Location("w.yaml", 4, "spec.resources[0].params")
    assert "'topic' is a required property" in caught.value.problems[0].message
    assert render(template, topic="orders").objects


def test_manifests_need_constant_kinds_and_a_name():
    text = BASE.replace("kind: StorageBucket\n        metadata:\n          name: \"${resource.objectName}\"",
                        "kind: \"${params.tier}\"\n        metadata:\n          labels: {a: b}")
    problems = check_template(template_from_yaml(text))
    assert {p.location.field for p in problems} == {
        "spec.resources[0].template.kind",
        "spec.resources[0].template.metadata",
    }


def test_map_keys_cannot_hold_expressions():
    text = BASE.replace("nested: {keep: constant, number: 7}",
                        'nested: {"${params.tier}": constant, number: 7}')
    (problem,) = check_template(template_from_yaml(text))
    assert "map keys" in problem.message


def test_durations_and_braces_inside_expressions():
    text = BASE.replace('tier: "${params.tier}"',
                        "tier: \"${string(duration('1h'))}\"").replace(
        'sizeText: "size=${params.size}"', "sizeText: \"${ {'k': '}'}.k }\"").replace(
        'region: "${controlPlane.region}"', "region: \"${duration('168h')}\"")
    spec = render(template_from_yaml(text)).objects[0]["spec"]
    assert spec["sizeText"] == "}"
    assert spec["region"] == "604800s"


def test_split_expressions():
    assert split_expressions("a-${x.y}-b") == ["a-", ("x.y",), "-b"]
    assert split_expressions("$${x}") == ["${x}"]
    assert split_expressions("${ '}' + \"{\" }") == [("'}' + \"{\"",)]
    assert split_expressions("${{'a': {'b': 1}}.a.b}") == [("{'a': {'b': 1}}.a.b",)]


def test_fit_name_keeps_short_names_and_shortens_long_ones_stably():
    assert fit_name("short-name", 63) == "short-name"
    long = "acme-verylongdomainname-prod-" + "w" * 24 + "-" + "r" * 24
    fitted = fit_name(long, 63)
    assert len(fitted) == 63 and fitted == fit_name(long, 63)
    assert fitted.endswith("-" + hashlib.sha256(long.encode()).hexdigest()[:4])
    assert fit_name(long + "x", 63) != fitted
    # no double hyphen where the cut falls after a hyphen
    cut = "a" * 57 + "-" + "b" * 10
    assert fit_name(cut, 63) == "a" * 57 + "-" + hashlib.sha256(cut.encode()).hexdigest()[:4]
    with pytest.raises(ValueError):
        fit_name(long, 5)


def test_the_context_must_hold_every_root(base):
    ctx = context()
    del ctx["platform"]
    with pytest.raises(ValueError, match="platform"):
        render_resource(base, request=request(), environment=DEV, context=ctx)
    assert set(ROOTS) <= set(context()) | {"params"}
