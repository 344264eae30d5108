"""The pipelines GitLab creates from the template, for each kind of push: one build per commit
on main, a deploy to the first environment only, tag pipelines that promote along
KONFIG_ENVIRONMENTS without building, production behind a manual job.

Pipelines are created by gitlab-ci-local (tests/cicd/gitlab_ci_local.py); the home-made model
(gitlab_ci.py) remains only for the trigger job's ``trigger:include:artifact``, which
gitlab-ci-local does not turn into a child pipeline."""

from __future__ import annotations

import pytest

from ruamel.yaml import YAML

from .conftest import ENVIRONMENT_CASES, MAIN, TAG, Context, render, render_child
from .gitlab_ci import PipelineError, create_pipeline, evaluate, need_names, resolved_jobs
from .gitlab_ci_local import created_pipeline

_ENGINE = None

FEATURE = Context(branch="feature/login")
MERGE_REQUEST = Context(branch=None, source="merge_request_event")
OTHER_TAG = Context(tag="release-2024")


@pytest.fixture(autouse=True)
def _engine(engine):
    global _ENGINE
    _ENGINE = engine


def child_pipeline(environments: str, production: str, context: Context) -> dict[str, dict]:
    """The child pipeline's jobs as GitLab creates them (gitlab-ci-local; every `needs`
    checked)."""
    return _child_pipeline(environments, production, context)


_CHILDREN: dict = {}


def _child_pipeline(environments: str, production: str, context: Context) -> dict[str, dict]:
    key = (environments, production, context)
    if key not in _CHILDREN:
        result = render(environments, production, context)
        assert result.returncode == 0, result.stderr
        jobs = created_pipeline(_ENGINE, context.predefined(), text=result.stdout)
        assert jobs is not None
        _CHILDREN[key] = jobs
    return _CHILDREN[key]


def builds(jobs: dict[str, dict]) -> list[str]:
    """Jobs that build an image: they run `docker build`."""
    return [
        name for name, job in jobs.items()
        if any("docker build" in line for line in map(str, job.get("script", [])))
    ]


# ---- the rules engine the tests rely on ------------------------------------------------------


@pytest.mark.parametrize(
    ("expression", "variables", "expected"),
    [
        ("$A == $B", {"A": "main", "B": "main"}, True),
        ("$A == $B", {"A": "feature", "B": "main"}, False),
        ("$A == $B", {"B": "main"}, False),
        ("$T =~ /^v/", {"T": "v1.0.0"}, True),
        ("$T =~ /^v/", {"T": "release-v1"}, False),
        ("$T =~ /^v/", {}, False),
        ('$S == "merge_request_event" || $T', {"T": "x"}, True),
        ("$A && ($B || $C)", {"A": "1", "C": "1"}, True),
        ("$A && $B || $C", {"C": "1"}, True),
        ("$A == null", {}, True),
        ("$A", {"A": ""}, False),
    ],
)
def test_expression_evaluator_follows_gitlab(expression, variables, expected):
    assert evaluate(expression, variables) is expected


# ---- the parent pipeline ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("context", "expected"),
    [
        (MAIN, {"generate", "deploy"}),
        (TAG, {"generate", "promote"}),
        (FEATURE, None),
        (MERGE_REQUEST, None),
        (OTHER_TAG, None),
    ],
    ids=["main", "v-tag", "feature-branch", "merge-request", "other-tag"],
)
def test_parent_pipeline_jobs_per_kind_of_push(engine, context, expected):
    jobs = created_pipeline(engine, context.predefined())
    assert (set(jobs) if jobs is not None else None) == expected


def test_parent_pipeline_never_builds_or_talks_to_gcp(engine):
    for context in (MAIN, TAG):
        jobs = created_pipeline(engine, context.predefined())
        assert builds(jobs) == []
        for job in jobs.values():
            assert "id_tokens" not in job
            assert "environment" not in job


@pytest.mark.parametrize("context", [MAIN, TAG], ids=["main", "tag"])
def test_trigger_runs_the_generated_pipeline_and_mirrors_its_status(parent, context):
    # The home-made model: it checks trigger:include:artifact against the trigger's needs,
    # which gitlab-ci-local cannot (it does not create child pipelines from artifacts).
    jobs = create_pipeline(parent, context.predefined())
    (trigger,) = [job for job in jobs.values() if "trigger" in job]
    assert trigger["needs"] == ["generate"]
    assert trigger["trigger"]["include"] == [{"artifact": "konfig-pipeline.yml", "job": "generate"}]
    assert trigger["trigger"]["strategy"] == "depend"
    # The parent's YAML variables would override group variables in the child.
    assert trigger["trigger"]["forward"]["yaml_variables"] is False
    assert jobs["generate"]["artifacts"]["paths"] == ["konfig-pipeline.yml"]


def test_user_test_jobs_gate_generation(parent):
    stages = parent["stages"]
    assert stages.index("test") < stages.index(parent["generate"]["stage"])
    assert "needs" not in parent["generate"]  # so it waits for the whole test stage


# ---- main: build once, deploy to the first environment --------------------------------------


@pytest.mark.parametrize(("environments", "production"), ENVIRONMENT_CASES)
def test_main_builds_once_and_deploys_only_to_the_first_environment(environments, production):
    jobs = child_pipeline(environments, production, MAIN)
    first = environments.split()[0]
    assert builds(jobs) == ["build"]
    deploys = {name: job for name, job in jobs.items() if job.get("environment", {}).get("action", "start") == "start"}
    assert list(deploys) == [f"deploy:{first}"]
    deploy = deploys[f"deploy:{first}"]
    assert deploy["environment"]["name"] == first
    assert need_names(deploy) == ["build"]
    # The digest travels from build to deploy through the dotenv report.
    assert jobs["build"]["artifacts"]["reports"]["dotenv"] == "build.env"
    assert any('"$IMAGE_REF"' in line for line in deploy["script"])


@pytest.mark.parametrize(("environments", "production"), ENVIRONMENT_CASES)
def test_build_gets_the_first_environments_credentials_without_deploying(environments, production):
    build = child_pipeline(environments, production, MAIN)["build"]
    assert build["environment"] == {"name": environments.split()[0], "action": "prepare"}


# ---- tags: promote along KONFIG_ENVIRONMENTS, no build --------------------------------------


@pytest.mark.parametrize(("environments", "production"), ENVIRONMENT_CASES)
def test_tag_pipeline_has_no_build_and_no_deploy_of_a_new_image(environments, production):
    jobs = child_pipeline(environments, production, TAG)
    assert builds(jobs) == []
    # No job deploys a build's IMAGE_REF; the release job only records the promoted one.
    assert not any("IMAGE_REF" in str(job.get("script")) for name, job in jobs.items()
                   if name != "release")
    assert not any(name.startswith("deploy") for name in jobs)


@pytest.mark.parametrize(("environments", "production"), ENVIRONMENT_CASES)
def test_promotions_follow_the_environment_order_each_needing_the_previous(environments, production):
    jobs = child_pipeline(environments, production, TAG)
    order = environments.split()
    promotions = {name: job for name, job in jobs.items() if "environment" in job}
    assert [job["environment"]["name"] for job in promotions.values()] == order[1:]
    assert list(promotions) == [f"promote:{env}" for env in order[1:]]
    for index, (name, job) in enumerate(promotions.items()):
        expected = [] if index == 0 else [f"promote:{order[index]}"]
        assert need_names(job) == expected, name
        assert any('--to "$CI_ENVIRONMENT_NAME"' in line for line in job["script"])
        assert job["resource_group"] == f"konfig-{job['environment']['name']}"


def test_a_single_environment_tag_pipeline_is_not_empty():
    jobs = child_pipeline("dev", "", TAG)
    assert list(jobs) == ["promote:nothing"]
    assert "id_tokens" not in jobs["promote:nothing"]


# ---- production ------------------------------------------------------------------------------


@pytest.mark.parametrize("context", [MAIN, TAG], ids=["main", "tag"])
@pytest.mark.parametrize(("environments", "production"), ENVIRONMENT_CASES)
def test_production_jobs_are_manual_blocking_and_production_tier(environments, production, context):
    jobs = child_pipeline(environments, production, context)
    for name, job in jobs.items():
        environment = job.get("environment")
        if not environment or environment.get("action") == "prepare":
            assert job.get("when", "on_success") == "on_success", name
            continue
        if environment["name"] in production.split():
            assert job["when"] == "manual", name
            assert job["allow_failure"] is False, name  # later environments wait for it
            assert environment["deployment_tier"] == "production", name
        else:
            assert job.get("when", "on_success") == "on_success", name
            assert environment["deployment_tier"] in ("development", "staging"), name


def test_tiers_of_the_default_path():
    jobs = {**child_pipeline("dev stage prod", "prod", MAIN), **child_pipeline("dev stage prod", "prod", TAG)}
    tiers = {job["environment"]["name"]: job["environment"].get("deployment_tier")
             for job in jobs.values()
             if "environment" in job and job["environment"].get("action") != "prepare"}
    assert tiers == {"dev": "development", "stage": "staging", "prod": "production"}


# ---- the generator refuses what it cannot turn into a pipeline ------------------------------


@pytest.mark.parametrize(
    ("environments", "context", "extra", "message"),
    [
        ("", MAIN, (), "KONFIG_ENVIRONMENTS is empty"),
        ("dev Stage", MAIN, (), "'Stage' is not a valid environment name"),
        ("dev stage-", TAG, (), "'stage-' is not a valid environment name"),
        ("dev stage dev", TAG, (), "'dev' is listed twice"),
        ("dev *", MAIN, (), "'*' is not a valid environment name"),
        ("dev stage", FEATURE, (), "default branch or on a tag only"),
        ("dev stage", TAG, (("KONFIG_CLI_IMAGE", ""),), "KONFIG_CLI_IMAGE is not set"),
    ],
)
def test_generator_fails_with_a_clear_message(environments, context, extra, message):
    result = render(environments, "", context, extra)
    assert result.returncode != 0
    assert message in result.stderr
    assert result.stdout == ""  # nothing half-written for the trigger to run


def test_generated_jobs_never_need_a_job_outside_their_pipeline(engine):
    """created_pipeline fails where GitLab would refuse the child; check that it can."""
    import io

    child = render_child("dev stage prod", "prod", TAG)
    del child["promote:stage"]
    text = io.StringIO()
    YAML(typ="safe").dump(child, text)
    with pytest.raises(AssertionError, match="promote:stage"):
        created_pipeline(engine, TAG.predefined(), text=text.getvalue())
    # The home-made model refuses it too (it is still used for trigger:include:artifact).
    with pytest.raises(PipelineError, match="needs 'promote:stage'"):
        create_pipeline(child, TAG.predefined())


def test_generated_pipeline_uses_only_known_templates():
    for context in (MAIN, TAG):
        child = render_child("dev stage prod", "prod", context)
        assert resolved_jobs(child)  # resolves every `extends`, raising on an unknown one
