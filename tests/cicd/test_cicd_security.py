"""No keys anywhere: every job that talks to Google Cloud signs in with its GitLab ID token through
Workload Identity Federation, from an environment whose scoped variables name the provider and
the CI service account; nothing sets or stores a service-account key."""

from __future__ import annotations

import re

import pytest

from konfig.compile import naming

from .conftest import ENVIRONMENT_CASES, MAIN, TAG, TEMPLATE, render_child
from .gitlab_ci import create_pipeline, flatten_script, load_config, resolved_jobs

AUDIENCE = "https://iam.googleapis.com/${KONFIG_WIF_PROVIDER}"
#: Commands that reach Google Cloud or the control-plane cluster.
GCP_COMMAND = re.compile(r"(?:^|[;&|(])\s*(?:gcloud|kubectl|konfig|docker push)\s|ci/deploy\.sh")
#: Ways to authenticate with a key: https://cloud.google.com/iam/docs/service-account-creds#key-types
KEY_USE = re.compile(
    r"activate-service-account|--key-file|keys create|private_key|\"type\":\s*\"service_account\""
    r"|GOOGLE_APPLICATION_CREDENTIALS|GOOGLE_CREDENTIALS|CLOUDSDK_AUTH_ACCESS_TOKEN",
)
SECRET_NAME = re.compile(r"(^|_)(KEY|KEY_FILE|KEYFILE|SA_KEY|JSON_KEY|CREDENTIALS_JSON)$")


def all_pipelines():
    """(label, merged config) for the parent and every rendered child."""
    yield "parent", load_config(TEMPLATE / ".gitlab-ci.yml", TEMPLATE)
    for environments, production in ENVIRONMENT_CASES:
        for context in (MAIN, TAG):
            label = f"{environments!r}/{'tag' if context.tag else 'main'}"
            yield label, render_child(environments, production, context)


def commands(job: dict) -> list[str]:
    return [line for part in ("before_script", "script", "after_script") for line in flatten_script(job.get(part))]


def test_no_variable_holds_a_key():
    for label, config in all_pipelines():
        scopes = [("global", config.get("variables") or {})]
        scopes += [(name, job.get("variables") or {}) for name, job in resolved_jobs(config).items()]
        for scope, variables in scopes:
            for name in variables:
                assert not SECRET_NAME.search(name), f"{label}: {scope}: {name}"
                assert not KEY_USE.search(name), f"{label}: {scope}: {name}"


def test_no_file_of_the_template_uses_a_key():
    for path in sorted(TEMPLATE.rglob("*")):
        if path.is_file() and path.suffix in (".yml", ".yaml", ".sh", ""):
            assert not KEY_USE.search(path.read_text()), path


def test_every_job_that_talks_to_gcp_signs_in_with_its_id_token():
    checked = 0
    for label, config in all_pipelines():
        for name, job in resolved_jobs(config).items():
            lines = commands(job)
            if not any(GCP_COMMAND.search(line) for line in lines):
                continue
            checked += 1
            where = f"{label}: {name}"
            assert job.get("id_tokens") == {"GCP_ID_TOKEN": {"aud": AUDIENCE}}, where
            # The provider and service account are environment-scoped group variables.
            assert job.get("environment", {}).get("name"), where
            before = flatten_script(job["before_script"])
            create = next(i for i, line in enumerate(before) if "create-cred-config" in line)
            login = next(i for i, line in enumerate(before) if line.startswith("gcloud auth login"))
            assert create < login, where
            assert '"$KONFIG_WIF_PROVIDER"' in before[create], where
            assert f'--service-account="${naming.CI_VAR_CI_SERVICE_ACCOUNT}"' in before[create], where
            assert "--credential-source-file=" in before[create], where
            assert "--cred-file=" in before[login], where
            assert not any(GCP_COMMAND.search(line) for line in before[:create]), where
    # Every build and deploy (2 per main pipeline) and every promotion (one per environment
    # after the first) across the rendered pipelines; none in the parent.
    expected = sum(2 + len(envs.split()) - 1 for envs, _ in ENVIRONMENT_CASES)
    assert checked == expected


@pytest.mark.parametrize(("environments", "production"), ENVIRONMENT_CASES)
def test_jobs_deploy_only_to_konfig_environments(environments, production):
    """A job's environment selects its scoped variables: it must be one Konfig manages."""
    for context in (MAIN, TAG):
        jobs = create_pipeline(render_child(environments, production, context), context.predefined())
        for name, job in jobs.items():
            if "environment" in job:
                assert job["environment"]["name"] in environments.split(), name
