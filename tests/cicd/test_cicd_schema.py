"""Every CI file the template ships, and every child pipeline it generates, is valid against
GitLab's own CI schema (data/ci-schema.json) - as written and with `extends` resolved, since the
schema accepts anything under a hidden `.job` key."""

from __future__ import annotations

import copy

import pytest

from .conftest import ENVIRONMENT_CASES, MAIN, TAG, TEMPLATE, render_child
from .gitlab_ci import load_yaml, resolved_config, schema_errors


def test_the_schema_rejects_an_invalid_job(validator, parent_raw):
    """Guards the other tests: the validator does reject what GitLab rejects."""
    broken = copy.deepcopy(parent_raw)
    broken["generate"]["when"] = "sometimes"
    broken["deploy"]["trigger"]["strategy"] = "wait"
    errors = schema_errors(broken, validator)
    assert any(e.startswith("generate") for e in errors)
    assert any(e.startswith("deploy") for e in errors)


def test_gitlab_ci_yml_is_valid(validator, parent_raw):
    assert schema_errors(parent_raw, validator) == []


def test_job_templates_file_is_valid(validator):
    assert schema_errors(load_yaml(TEMPLATE / "ci" / "jobs.yml"), validator) == []


def test_parent_pipeline_with_includes_and_extends_resolved_is_valid(validator, parent):
    assert schema_errors(resolved_config(parent), validator) == []


@pytest.mark.parametrize("context", [MAIN, TAG], ids=["main", "tag"])
@pytest.mark.parametrize(("environments", "production"), ENVIRONMENT_CASES)
def test_generated_child_pipeline_is_valid(validator, environments, production, context):
    child = render_child(environments, production, context)
    assert schema_errors(child, validator) == []
    assert schema_errors(resolved_config(child), validator) == []


# ---- the definitions repository's starter (gitlab-templates/control-plane) ------------------

CONTROL_PLANE = TEMPLATE.parent / "control-plane"


@pytest.mark.parametrize("name", [".gitlab-ci.yml", "ci/jobs.yml"])
def test_definitions_pipeline_files_are_valid(validator, name):
    assert schema_errors(load_yaml(CONTROL_PLANE / name), validator) == []


def test_definitions_pipeline_with_includes_and_extends_resolved_is_valid(validator):
    from .gitlab_ci import load_config

    config = load_config(CONTROL_PLANE / ".gitlab-ci.yml", CONTROL_PLANE)
    assert schema_errors(resolved_config(config), validator) == []
