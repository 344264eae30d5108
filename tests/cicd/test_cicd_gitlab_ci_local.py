"""The definitions (control-plane) and workload pipelines as GitLab runs them: job selection and
job runs by gitlab-ci-local (see tests/cicd/gitlab_ci_local.py for what it cannot do), jobs in
shell mode against the fake tools, and, for release promotion, the real ``konfig promote``
against the Kubernetes API emulator and a registry on 127.0.0.1."""

from __future__ import annotations

import base64
import json
import shutil
import sys
from pathlib import Path

import pytest

from konfig.compile import naming
from konfig.resources import bundled_dir
from tests.day2 import org
from tests.day2.conftest import cluster, kube, seeded  # noqa: F401 - fixtures (the emulator)
from tests.day2.fake_registry import FakeRegistry

from .conftest import CONTROL_PLANE_PROJECT, PROJECT_NUMBER
from .gitlab_ci_local import Repository
from .runner import FAKE_CLI

CONTROL_PLANE_TEMPLATE = bundled_dir("gitlab-templates") / "control-plane"
WORKLOAD_TEMPLATE = bundled_dir("gitlab-templates") / "workload"
DEFINITIONS = Path(__file__).resolve().parents[2] / "definitions"
CP_PROJECT = "https://gitlab.example.com/acme/acme/konfig-control-plane.git"
PROVIDER = (f"projects/{PROJECT_NUMBER}/locations/global/workloadIdentityPools/"
            f"{naming.WORKLOAD_IDENTITY_POOL}/providers/{naming.WORKLOAD_IDENTITY_PROVIDER}")
APPLIER = f"konfig-ci@{CONTROL_PLANE_PROJECT}.iam.gserviceaccount.com"
PLANNER = f"konfig-planner@{CONTROL_PLANE_PROJECT}.iam.gserviceaccount.com"
#: What the control-plane group gives every job of the definitions repository.
CP_GROUP = {"KONFIG_CLI_IMAGE": "us-docker.pkg.dev/acme-cp/konfig/konfig:0.1.0",
            "KONFIG_CONTROL_PLANE_PROJECT": CONTROL_PLANE_PROJECT, "KONFIG_REGION": "us-central1",
            "KONFIG_CLUSTER": "konfig", "KONFIG_WIF_PROVIDER": PROVIDER,
            "KONFIG_CP_PLANNER_SERVICE_ACCOUNT": PLANNER}


def id_token(aud: str) -> str:
    """An ID token as GitLab would mint it (gitlab-ci-local mints none)."""
    def part(data: dict) -> str:
        return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()
    return f"{part({'alg': 'none'})}.{part({'aud': aud, 'sub': 'project_path:x'})}.sig"


def fake_tools(root: Path) -> dict[str, str]:
    """The fake gcloud, docker, kubectl and konfig on PATH, and their state folder."""
    bin_dir, state = root / "bin", root / "state"
    bin_dir.mkdir(parents=True)
    state.mkdir()
    for tool in ("gcloud", "docker", "kubectl", "konfig"):
        wrapper = bin_dir / tool
        wrapper.write_text(f'#!/bin/sh\nexec "{sys.executable}" "{FAKE_CLI}" {tool} "$@"\n')
        wrapper.chmod(0o755)
    import os
    return {"PATH": f"{bin_dir}:{os.environ['PATH']}", "FAKE_STATE": str(state)}


def calls(env: dict[str, str], tool: str) -> list[list[str]]:
    log = Path(env["FAKE_STATE"]) / "calls.jsonl"
    entries = [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []
    return [e["argv"] for e in entries if e["tool"] == tool]


# ---- the definitions repository ---------------------------------------------------------------

MR = {"CI_PIPELINE_SOURCE": "merge_request_event", "CI_MERGE_REQUEST_IID": "7"}
MAIN_PROTECTED = {"CI_COMMIT_REF_PROTECTED": "true"}


@pytest.fixture
def definitions_repo(tmp_path) -> Repository:
    repo = Repository(tmp_path / "cp", CONTROL_PLANE_TEMPLATE, project_url=CP_PROJECT,
                      env=fake_tools(tmp_path))
    for path in DEFINITIONS.rglob("*.yaml"):
        if "workloads" not in path.parts:
            target = repo.path / "definitions" / path.relative_to(DEFINITIONS)
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(path, target)
    repo.commit({}, "our definitions")
    return repo


def test_the_starter_tree_only_explains_until_definitions_are_committed(tmp_path):
    repo = Repository(tmp_path / "cp", CONTROL_PLANE_TEMPLATE, project_url=CP_PROJECT)
    # With GitLab's own JSON schema check of the file (gitlab-ci-local's).
    assert set(repo.jobs(CP_GROUP, schema=True)) == {"setup"}
    assert set(repo.jobs({**CP_GROUP, **MR})) == {"setup"}


def test_merge_requests_validate_then_plan_and_never_apply(definitions_repo):
    jobs = definitions_repo.jobs({**CP_GROUP, **MR}, schema=True)
    assert set(jobs) == {"validate", "plan"}
    assert jobs["plan"]["needs"] == [{"job": "validate", "artifacts": True, "optional": False}] \
        or jobs["plan"]["needs"] == ["validate"]


def test_the_protected_default_branch_applies(definitions_repo):
    assert set(definitions_repo.jobs({**CP_GROUP, **MAIN_PROTECTED})) == {"validate", "apply"}
    # Not protected (or another branch): validate only, never apply.
    assert set(definitions_repo.jobs(CP_GROUP)) == {"validate"}
    definitions_repo.git("checkout", "-q", "-b", "feature")
    assert set(definitions_repo.jobs({**CP_GROUP, **MAIN_PROTECTED})) == {"validate"}


def test_validate_runs_the_real_konfig_on_the_definitions(definitions_repo):
    run = definitions_repo.run("validate", CP_GROUP, env={"FAKE_REAL_KONFIG": "1"})
    assert run.returncode == 0, run.output
    assert "valid" in run.output and "1 control plane" in run.output
    definitions_repo.commit({"definitions/domains/broken.yaml":
                             "apiVersion: konfig.dev/v1alpha1\nkind: Domain\n"
                             "metadata: {name: broken}\nspec: {platform: nowhere}\n"})
    broken = definitions_repo.run("validate", CP_GROUP, env={"FAKE_REAL_KONFIG": "1"})
    assert broken.returncode != 0 and "nowhere" in broken.output


def test_the_plan_job_signs_in_as_the_planner_and_exposes_the_plan(definitions_repo):
    aud = f"https://iam.googleapis.com/{PROVIDER}"
    run = definitions_repo.run("plan", {**CP_GROUP, **MR, "GCP_ID_TOKEN": id_token(aud)})
    assert run.returncode == 0, run.output
    env = definitions_repo.env
    [cred] = [c for c in calls(env, "gcloud") if c[:3] == ["iam", "workload-identity-pools",
                                                           "create-cred-config"]]
    assert f"--service-account={PLANNER}" in cred
    [diff] = calls(env, "konfig")
    assert diff[:4] == ["diff", "definitions", "--no-workloads", "--no-gitlab"]
    assert "--report-file" in diff and "--plan-file" in diff


def test_the_apply_job_needs_the_protected_identity(definitions_repo):
    aud = f"https://iam.googleapis.com/{PROVIDER}"
    variables = {**CP_GROUP, **MAIN_PROTECTED, "GCP_ID_TOKEN": id_token(aud)}
    # The protected variable reaches protected refs only: without it the job stops first.
    missing = definitions_repo.run("apply", variables)
    assert missing.returncode != 0 and "no service account for this job" in missing.output
    run = definitions_repo.run("apply", {**variables, "KONFIG_CP_CI_SERVICE_ACCOUNT": APPLIER})
    assert run.returncode == 0, run.output
    env = definitions_repo.env
    assert calls(env, "konfig")[-1] == ["apply", "definitions", "--no-workloads"]
    assert any(f"--service-account={APPLIER}" in c for c in calls(env, "gcloud"))


# ---- the workload repository: a release tag promotes its commit ------------------------------

WORKLOAD_YAML = """\
apiVersion: konfig.dev/v1alpha1
kind: Workload
metadata:
  name: ${KONFIG_WORKLOAD}
spec:
  platform: ${KONFIG_PLATFORM}
  domain: ${KONFIG_DOMAIN}
  env: {LOG_LEVEL: warn, RELEASE_FLAG: "v2"}
  scaling: {min: 1, max: 4}
"""


@pytest.fixture
def registry():
    with FakeRegistry() as server:
        yield server


def domain_variables(registry: FakeRegistry, environment: str) -> dict[str, str]:
    """What the domain group gives a job of ``environment`` on a protected tag."""
    return {
        **CP_GROUP, "KONFIG_ENVIRONMENTS": "dev stage prod",
        "KONFIG_PRODUCTION_ENVIRONMENTS": "prod", "KONFIG_PLATFORM": "retail",
        "KONFIG_DOMAIN": "shop", "KONFIG_REGISTRY": f"{registry.host}/acme-cp/shop",
        "KONFIG_NAMESPACE": f"shop-{environment}",
        "KONFIG_CI_SERVICE_ACCOUNT":
            f"{naming.ci_service_account_id('shop', environment)}@{CONTROL_PLANE_PROJECT}"
            ".iam.gserviceaccount.com",
        "GCP_ID_TOKEN": id_token(f"https://iam.googleapis.com/{PROVIDER}"),
    }


def tag_pipeline(repo: Repository, tag: str) -> tuple[dict[str, str], tuple[str, ...]]:
    repo.git(*("-c", "user.email=ci@example.com", "-c", "user.name=CI"), "tag", tag)
    return {"CI_COMMIT_TAG": tag, "CI_COMMIT_REF_NAME": tag, "CI_COMMIT_REF_PROTECTED": "true"}, \
        ("CI_COMMIT_BRANCH",)


def test_a_tag_promotes_its_commit_through_stage_and_prod(seeded, registry, tmp_path):
    tools = fake_tools(tmp_path)
    kubeconfig = seeded.kube.kubeconfig_path(tmp_path)
    repo = Repository(tmp_path / "checkout", WORKLOAD_TEMPLATE,
                      project_url="https://gitlab.example.com/acme/acme/retail/shop/checkout.git",
                      env={**tools, "FAKE_KUBECONFIG_SOURCE": str(kubeconfig),
                           "FAKE_REAL_KONFIG": "1", "FAKE_ACCESS_TOKEN": registry.token,
                           "GITLAB_USER_LOGIN": "release-manager"})
    released = repo.commit({"workload.yaml": WORKLOAD_YAML}, "v2 settings")
    # The default-branch build of that commit recorded its digest; main moved on since, and dev
    # runs a newer build.
    registry.push("acme-cp/shop/checkout", f"git-{released}", org.DIGEST_B)
    seeded.workload("shop", "dev", f"{registry.host}/acme-cp/shop/checkout@{org.DIGEST_A}")
    tag, unset = tag_pipeline(repo, "v2.0.0")

    parent = repo.jobs({**domain_variables(registry, "dev"), **tag}, unset=unset, schema=True)
    assert set(parent) == {"generate", "promote"}  # no build on a tag
    generated = repo.run("generate", {**domain_variables(registry, "dev"), **tag}, unset=unset)
    assert generated.returncode == 0, generated.output
    shutil.copy(repo.artifact("generate", "konfig-pipeline.yml"), repo.path / "child.yml")
    child = repo.jobs({**domain_variables(registry, "stage"), **tag}, unset=unset,
                      file="child.yml")
    assert set(child) == {"promote:stage", "promote:prod", "release"}
    assert child["promote:prod"]["when"] == "manual"
    image = f"{registry.host}/acme-cp/shop/checkout@{org.DIGEST_B}"

    stage = repo.run("promote:stage", {**domain_variables(registry, "stage"), **tag},
                     unset=unset, file="child.yml")
    assert stage.returncode == 0, stage.output
    workload = seeded.get("workloads", "shop-stage", "checkout")
    assert workload["spec"]["image"] == image  # the tagged commit's build, not dev's
    assert workload["spec"]["env"] == {"LOG_LEVEL": "warn", "RELEASE_FLAG": "v2"}
    assert workload["metadata"]["annotations"]["konfig.dev/promoted-commit"] == released
    assert workload["metadata"]["annotations"]["konfig.dev/release"] == "v2.0.0"
    assert repo.dotenv("promote:stage", "promote.env").read_text().startswith(
        f"IMAGE_REF={image}\n")

    # prod: only once stage runs it (the operator reports Ready), then by the manual job.
    early = repo.run("promote:prod", {**domain_variables(registry, "prod"), **tag},
                     unset=unset, file="child.yml")
    assert early.returncode != 0 and "not" in early.output
    assert seeded.get("workloads", "shop-prod", "checkout") is None
    generation = workload["metadata"]["generation"]
    seeded.custom.patch_namespaced_custom_object_status(
        "konfig.dev", "v1alpha1", "shop-stage", "workloads", "checkout",
        {"status": {"image": image, "observedGeneration": generation,
                    "conditions": [{"type": "Ready", "status": "True", "reason": "Reconciled",
                                    "observedGeneration": generation,
                                    "lastTransitionTime": "2025-03-01T00:00:00Z"}]}})
    prod = repo.run("promote:prod", {**domain_variables(registry, "prod"), **tag},
                    unset=unset, file="child.yml")
    assert prod.returncode == 0, prod.output
    assert seeded.get("workloads", "shop-prod", "checkout")["spec"]["image"] == image


def test_a_tag_on_a_commit_that_was_never_built_promotes_nothing(seeded, registry, tmp_path):
    tools = fake_tools(tmp_path)
    repo = Repository(tmp_path / "checkout", WORKLOAD_TEMPLATE,
                      project_url="https://gitlab.example.com/acme/acme/retail/shop/checkout.git",
                      env={**tools, "FAKE_KUBECONFIG_SOURCE":
                           str(seeded.kube.kubeconfig_path(tmp_path)), "FAKE_REAL_KONFIG": "1",
                           "FAKE_ACCESS_TOKEN": registry.token})
    repo.commit({"workload.yaml": WORKLOAD_YAML}, "never built")
    seeded.workload("shop", "dev", f"{registry.host}/acme-cp/shop/checkout@{org.DIGEST_A}")
    tag, unset = tag_pipeline(repo, "v9.9.9")
    generated = repo.run("generate", {**domain_variables(registry, "dev"), **tag}, unset=unset)
    assert generated.returncode == 0, generated.output
    shutil.copy(repo.artifact("generate", "konfig-pipeline.yml"), repo.path / "child.yml")
    run = repo.run("promote:stage", {**domain_variables(registry, "stage"), **tag}, unset=unset,
                   file="child.yml")
    assert run.returncode != 0 and "never built" in run.output
    assert seeded.get("workloads", "shop-stage", "checkout") is None


def test_main_builds_and_deploys_and_branches_run_nothing(registry, tmp_path):
    repo = Repository(tmp_path / "checkout", WORKLOAD_TEMPLATE,
                      project_url="https://gitlab.example.com/acme/acme/retail/shop/checkout.git")
    variables = domain_variables(registry, "dev")
    assert set(repo.jobs(variables)) == {"generate", "deploy"}
    repo.git("checkout", "-q", "-b", "feature")
    assert repo.jobs(variables) == {}
