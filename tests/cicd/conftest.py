"""Fixtures for the workload GitLab template's tests: the template, GitLab's CI schema, the
group variables Konfig sets, and child pipelines rendered by the template's own generator."""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass
from functools import lru_cache

import pytest

from konfig.compile import naming
from konfig.resources import bundled_dir

from .gitlab_ci import Config, load_config, load_yaml, schema_validator

TEMPLATE = bundled_dir("gitlab-templates") / "workload"

#: (KONFIG_ENVIRONMENTS, KONFIG_PRODUCTION_ENVIRONMENTS) pairs the tests render pipelines for:
#: the default path, a short one, a single environment, production first, two production
#: environments in a longer path, and a control-plane production environment the domain skips.
ENVIRONMENT_CASES = [
    ("dev stage prod", "prod"),
    ("dev prod", "prod"),
    ("dev", ""),
    ("prod", "prod"),
    ("test qa preprod prod-eu prod-us", "prod-eu prod-us"),
    ("dev stage", "prod"),
]

DOMAIN = "ecommerce"
PLATFORM = "retail"
CONTROL_PLANE_PROJECT = "acme-cp"
PROJECT_NUMBER = "998877665544"


@dataclass(frozen=True)
class Context:
    """What GitLab knows about a push: the predefined variables rules and scripts see."""

    branch: str | None = None
    tag: str | None = None
    source: str = "push"
    default_branch: str = "main"

    def predefined(self) -> dict[str, str]:
        variables = {"CI_DEFAULT_BRANCH": self.default_branch, "CI_PIPELINE_SOURCE": self.source}
        if self.branch is not None:
            variables["CI_COMMIT_BRANCH"] = self.branch
            variables["CI_COMMIT_REF_NAME"] = self.branch
        if self.tag is not None:
            variables["CI_COMMIT_TAG"] = self.tag
            variables["CI_COMMIT_REF_NAME"] = self.tag
        return variables


MAIN = Context(branch="main")
TAG = Context(tag="v1.4.0")


@dataclass(frozen=True)
class GroupVariables:
    """The CI/CD variables Konfig puts on the control-plane and domain groups
    (konfig/compile/naming.py): ``unscoped`` apply to every job, ``scoped[env]`` only to jobs
    whose ``environment:name`` is ``env``."""

    unscoped: dict[str, str]
    scoped: dict[str, dict[str, str]]

    def for_environment(self, environment: str | None) -> dict[str, str]:
        return {**self.unscoped, **(self.scoped.get(environment, {}) if environment else {})}


def group_variables(environments: str, production: str) -> GroupVariables:
    provider = (
        f"projects/{PROJECT_NUMBER}/locations/global/workloadIdentityPools/"
        f"{naming.WORKLOAD_IDENTITY_POOL}/providers/{naming.WORKLOAD_IDENTITY_PROVIDER}"
    )
    unscoped = {
        naming.CI_VAR_ENVIRONMENTS: environments,
        naming.CI_VAR_PRODUCTION_ENVIRONMENTS: production,
        naming.CI_VAR_PLATFORM: PLATFORM,
        naming.CI_VAR_DOMAIN: DOMAIN,
        naming.CI_VAR_REGISTRY: f"us-docker.pkg.dev/{CONTROL_PLANE_PROJECT}/{DOMAIN}",
        naming.CI_VAR_CONTROL_PLANE_PROJECT: CONTROL_PLANE_PROJECT,
        naming.CI_VAR_REGION: "us-central1",
        naming.CI_VAR_CLUSTER: "konfig",
        "KONFIG_CLI_IMAGE": "us-docker.pkg.dev/acme-cp/konfig/konfig:0.1.0",
    }
    scoped = {
        env: {
            naming.CI_VAR_GCP_PROJECT: naming.default_project_id("acme-", DOMAIN, env),
            naming.CI_VAR_NAMESPACE: naming.namespace_name(DOMAIN, env),
            naming.CI_VAR_WIF_PROVIDER: provider,
            naming.CI_VAR_CI_SERVICE_ACCOUNT: naming.service_account_email(
                naming.ci_service_account_id(DOMAIN, env), CONTROL_PLANE_PROJECT),
        }
        for env in environments.split()
    }
    return GroupVariables(unscoped, scoped)


@lru_cache(maxsize=None)
def render(
    environments: str, production: str, context: Context, extra: tuple[tuple[str, str], ...] = ()
) -> subprocess.CompletedProcess[str]:
    """Run the template's generator (``sh ci/pipeline.sh``) as the ``generate`` job would."""
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        **group_variables(environments, production).unscoped,
        **context.predefined(),
        **dict(extra),
    }
    return subprocess.run(
        ["sh", "ci/pipeline.sh"], cwd=TEMPLATE, env=env, capture_output=True, text=True,
        timeout=30, check=False,
    )


def render_child(environments: str, production: str, context: Context) -> Config:
    """The child pipeline for this context, parsed; fails the test if generation failed."""
    result = render(environments, production, context)
    assert result.returncode == 0, result.stderr
    return load_yaml(result.stdout)


@pytest.fixture(scope="session")
def engine(tmp_path_factory):
    """A git checkout of the workload template for gitlab-ci-local (one per test worker)."""
    from .gitlab_ci_local import Repository

    return Repository(tmp_path_factory.mktemp("engine") / "checkout", TEMPLATE,
                      project_url="https://gitlab.example.com/acme/acme/retail/ecommerce/checkout.git")


@pytest.fixture(scope="session")
def validator():
    return schema_validator()


@pytest.fixture(scope="session")
def parent_raw() -> Config:
    return load_yaml(TEMPLATE / ".gitlab-ci.yml")


@pytest.fixture(scope="session")
def parent() -> Config:
    """.gitlab-ci.yml with its ``include: local`` files merged in."""
    return load_config(TEMPLATE / ".gitlab-ci.yml", TEMPLATE)
