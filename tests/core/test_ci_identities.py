"""CI identities per domain environment (spec "GitOps"), proven on the rendered objects.

The provider's attribute mapping and condition are evaluated with a real CEL engine on GitLab
ID-token claims (https://docs.gitlab.com/ci/secrets/id_token_authentication/#token-payload),
and a token may impersonate a service account only if one of that account's
``roles/iam.workloadIdentityUser`` members is ``principalSet://.../attribute.A/V`` with the
token's attribute ``A`` equal to ``V`` (https://cloud.google.com/iam/docs/principal-identifiers).
"""

from __future__ import annotations

import cel
import pytest

from konfig.compile import naming
from konfig.compile.access import control_plane_project_path

PREFIX = "principalSet://iam.googleapis.com/"


def _provider(state):
    [provider] = [o for o in state.kubernetes if o["kind"] == "IAMWorkloadIdentityPoolProvider"]
    return provider


def _attributes(state, claims: dict) -> dict | None:
    """The token's attributes, or None when the provider's condition rejects it."""
    spec = _provider(state)["spec"]
    if not cel.evaluate(spec["attributeCondition"], {"assertion": claims}):
        return None
    return {key.removeprefix("attribute."): cel.evaluate(expr, {"assertion": claims})
            for key, expr in spec["attributeMapping"].items()}


def _impersonable(state) -> dict[str, list[str]]:
    """Service-account object name -> its workloadIdentityUser members."""
    out: dict[str, list[str]] = {}
    for o in state.kubernetes:
        spec = o.get("spec", {})
        if o["kind"] == "IAMPolicyMember" and spec.get("role") == "roles/iam.workloadIdentityUser" \
                and spec["resourceRef"]["kind"] == "IAMServiceAccount" and "member" in spec:
            out.setdefault(spec["resourceRef"]["name"], []).append(spec["member"])
    return out


def can_impersonate(state, claims: dict, sa_object: str) -> bool:
    attributes = _attributes(state, claims)
    if attributes is None:
        return False
    for member in _impersonable(state).get(sa_object, []):
        if not member.startswith(PREFIX):
            continue
        _, attribute_value = member.split("/attribute.", 1)
        attribute, value = attribute_value.split("/", 1)
        if attributes.get(attribute) == value:
            return True
    return False


def claims(project: str, *, ref="main", ref_type="branch", protected=True, environment=None):
    token = {"sub": f"project_path:{project}:ref_type:{ref_type}:ref:{ref}",
             "project_path": project, "namespace_path": project.rsplit("/", 1)[0],
             "ref": ref, "ref_type": ref_type, "ref_protected": "true" if protected else "false"}
    if environment:
        token["environment"] = environment
    return token


@pytest.fixture(scope="module")
def paths(example_state):
    groups = {g.full_path.rsplit("/", 1)[1]: g.full_path for g in example_state.gitlab.groups
              if g.kind == "Domain"}
    return groups


def test_an_unprotected_branch_cannot_get_the_production_identity(example_state, paths):
    project = f"{paths['ecommerce']}/checkout"
    prod = "ci-ecommerce-prod"
    assert can_impersonate(example_state, claims(project, ref="v1.0.0", ref_type="tag",
                                                 environment="prod"), prod)
    assert not can_impersonate(example_state, claims(project, ref="feature", protected=False,
                                                     environment="prod"), prod)
    # Protected, but deploying elsewhere (or to no environment): still no.
    assert not can_impersonate(example_state, claims(project, environment="stage"), prod)
    assert not can_impersonate(example_state, claims(project), prod)


def test_non_production_identities_need_the_domain_and_the_environment(example_state, paths):
    project = f"{paths['ecommerce']}/checkout"
    assert can_impersonate(example_state, claims(project, ref="feature", protected=False,
                                                 environment="dev"), "ci-ecommerce-dev")
    assert not can_impersonate(example_state, claims(project, environment="stage"),
                               "ci-ecommerce-dev")
    # A project in a subgroup of the domain's group, or outside the parent group: no.
    nested = f"{paths['ecommerce']}/team/checkout"
    assert not can_impersonate(example_state, claims(nested, environment="dev"),
                               "ci-ecommerce-dev")
    outsider = claims("elsewhere/ecommerce/checkout", environment="dev")
    assert not can_impersonate(example_state, outsider, "ci-ecommerce-dev")


def test_domain_a_has_no_binding_in_domain_b(example_state, example_defs, paths):
    domains = sorted(example_defs.domains)
    assert len(domains) >= 2
    bindings = [o for o in example_state.kubernetes if o["kind"] == "RoleBinding"]
    for a in domains:
        for env in example_defs.domain_environments(example_defs.domains[a]):
            email = f"{naming.ci_service_account_id(a, env)}@"
            where = {(b["metadata"]["namespace"], b["roleRef"]["name"]) for b in bindings
                     if any(s["name"].startswith(email) for s in b["subjects"])}
            # Its own namespace (apply Workloads) and the promotion path (read-only), nothing else.
            assert where == {(naming.namespace_name(a, env), naming.CLUSTER_ROLE_WORKLOAD_DEPLOYER),
                             ("konfig-system", naming.CLUSTER_ROLE_DEFINITIONS_READER)}, where
        for b in domains:
            if a == b:
                continue
            for env in example_defs.domain_environments(example_defs.domains[b]):
                token = claims(f"{paths[a]}/x", environment=env)
                assert not can_impersonate(example_state, token, f"ci-{b}-{env}")


def test_production_variables_are_protected_and_scoped(example_state, example_defs):
    production = {e.name for e in example_defs.control_plane.spec.environments if e.production}
    for group in example_state.gitlab.groups:
        if group.kind != "Domain":
            continue
        for v in group.variables:
            if v.environment_scope in production:
                assert v.protected, v
        identities = {v.environment_scope: v for v in group.variables
                      if v.key == naming.CI_VAR_CI_SERVICE_ACCOUNT}
        assert "*" not in identities and identities


def test_definitions_repository_identity_is_the_protected_default_branch_only(example_state):
    project = control_plane_project_path_of(example_state)
    ci, planner = "konfig-ci-acme", "konfig-planner-acme"
    assert can_impersonate(example_state, claims(project), ci)
    assert not can_impersonate(example_state, claims(project, ref="feature", protected=False), ci)
    assert not can_impersonate(example_state, claims(project, ref="release", protected=True), ci)
    assert not can_impersonate(example_state, claims(project, ref="main", ref_type="tag"), ci)
    other = claims(project.replace("konfig-control-plane", "workload-template"))
    assert not can_impersonate(example_state, other, ci)
    # The planner (read-only) serves merge request pipelines of that project alone.
    assert can_impersonate(example_state, claims(project, ref="feature", protected=False), planner)
    assert not can_impersonate(example_state, other, planner)
    cp_vars = {v.key: v for v in example_state.gitlab.groups[0].variables}
    assert cp_vars[naming.CI_VAR_CP_CI_SERVICE_ACCOUNT].protected


def control_plane_project_path_of(state) -> str:
    [project] = [p for p in state.gitlab.projects if p.kind == "control-plane"]
    return project.path_with_namespace


def test_long_names_keep_service_account_ids_valid():
    from konfig.model import names

    long = naming.ci_service_account_id("a" * 20, "b" * 8)
    assert len(long) <= 30 and long.endswith("-" + "b" * 8)
    assert names.service_account_id_problem(long) is None
    assert naming.ci_service_account_id("shop", "prod") == "ci-shop-prod"
    assert long != naming.ci_service_account_id("a" * 19 + "c", "b" * 8)


def test_helpers_agree_with_the_tree(example_state, example_defs):
    from konfig.compile.context import CompileContext

    ctx = CompileContext(example_defs)
    assert control_plane_project_path(ctx) == control_plane_project_path_of(example_state)
