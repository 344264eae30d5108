"""Release promotion by commit (docs/gitops.md): a v* tag promotes that commit's recorded
digest and that commit's workload.yaml, in order, and nothing else. The real CLI, the real
kubernetes client against the API emulator, and a registry over HTTP on 127.0.0.1."""

from __future__ import annotations

from pathlib import Path

import pytest

from . import org
from .fake_registry import FakeRegistry
from .test_cli import konfig

COMMIT = "c0ffee" + "0" * 34
OTHER_COMMIT = "bad" + "1" * 37
WORKLOAD_YAML = """\
apiVersion: konfig.dev/v1alpha1
kind: Workload
metadata:
  name: ${KONFIG_WORKLOAD}
spec:
  platform: retail
  domain: ${KONFIG_DOMAIN}
  env: {LOG_LEVEL: warn, FEATURE_X: "on"}
  scaling: {min: 1, max: 5}
"""


@pytest.fixture
def registry():
    with FakeRegistry() as server:
        yield server


@pytest.fixture
def release(seeded, registry, tmp_path):
    repository = f"{registry.host}/acme-konfig/shop/checkout"
    registry.push("acme-konfig/shop/checkout", f"git-{COMMIT}", org.DIGEST_B)
    workload_file = tmp_path / "workload.yaml"
    workload_file.write_text(WORKLOAD_YAML)
    env = {"KUBECONFIG": str(seeded.kube.kubeconfig_path(tmp_path)), "KONFIG_DOMAIN": "shop",
           "KONFIG_WORKLOAD": "checkout", "KONFIG_REGISTRY_TOKEN": registry.token,
           "KONFIG_IMAGE_NAME": repository, "CI_COMMIT_TAG": "v1.4.0",
           "GITLAB_USER_LOGIN": "release-bot"}

    def run(to: str, commit: str = COMMIT, *extra: str):
        return konfig("promote", "checkout", "--to", to, "--commit", commit,
                      "--workload-file", str(workload_file), *extra, **env)

    run.repository = repository
    run.workload_file = workload_file
    return run


def test_a_tag_promotes_its_commits_digest_and_workload_through_the_environments(seeded, release,
                                                                                 tmp_path):
    # dev runs a newer build of main than the tag: stage still gets the tagged commit's.
    seeded.workload("shop", "dev", org.IMAGE_A)
    dotenv = tmp_path / "promote.env"
    first = release("stage", COMMIT, "--dotenv", str(dotenv))
    assert first.exit_code == 0, first.output
    stage = seeded.get("workloads", "shop-stage", "checkout")
    image = f"{release.repository}@{org.DIGEST_B}"
    assert stage["spec"]["image"] == image
    # The commit's workload.yaml moves with its digest: env and scaling, not just the image.
    assert stage["spec"]["env"] == {"LOG_LEVEL": "warn", "FEATURE_X": "on"}
    assert {k: stage["spec"]["scaling"][k] for k in ("min", "max")} == {"min": 1, "max": 5}
    annotations = stage["metadata"]["annotations"]
    assert annotations["konfig.dev/promoted-commit"] == COMMIT
    assert annotations["konfig.dev/release"] == "v1.4.0"
    assert annotations["konfig.dev/promoted-by"] == "release-bot"
    assert dotenv.read_text() == f"IMAGE_REF={image}\nIMAGE_DIGEST={org.DIGEST_B}\n"
    (event,) = seeded.events_about("shop-stage", "checkout")
    assert "v1.4.0" in event.note and COMMIT[:12] in event.note

    # prod waits until stage runs the release (the operator reports it).
    early = release("prod")
    assert early.exit_code == 1
    assert "not Ready" in early.output or "not yet running" in early.output
    generation = stage["metadata"]["generation"]
    seeded.custom.patch_namespaced_custom_object_status(
        "konfig.dev", "v1alpha1", "shop-stage", "workloads", "checkout",
        {"status": {"image": image, "observedGeneration": generation,
                    "conditions": [{"type": "Ready", "status": "True", "reason": "Reconciled",
                                    "observedGeneration": generation,
                                    "lastTransitionTime": "2025-03-01T00:00:00Z"}]}})
    to_prod = release("prod")
    assert to_prod.exit_code == 0, to_prod.output
    prod = seeded.get("workloads", "shop-prod", "checkout")
    assert prod["spec"]["image"] == image and prod["spec"]["env"]["FEATURE_X"] == "on"
    # Again: nothing to write.
    again = release("prod")
    assert again.exit_code == 0 and "nothing to promote" in again.output


def test_a_commit_that_was_never_built_is_refused(seeded, release):
    seeded.workload("shop", "dev", org.IMAGE_A)
    result = release("stage", OTHER_COMMIT)
    assert result.exit_code == 1
    assert "never built" in result.output and "git-" in result.output
    assert seeded.get("workloads", "shop-stage", "checkout") is None


def test_a_digest_that_is_not_the_commits_is_refused(seeded, release):
    seeded.workload("shop", "dev", org.IMAGE_A)
    other = f"{release.repository}@{org.DIGEST_A}"
    result = release("stage", COMMIT, "--image", other)
    assert result.exit_code == 1 and "is not the image built for commit" in result.output
    assert seeded.get("workloads", "shop-stage", "checkout") is None


def test_prod_refuses_a_release_stage_does_not_run(seeded, release):
    seeded.workload("shop", "stage", f"{release.repository}@{org.DIGEST_A}")
    result = release("prod")
    assert result.exit_code == 1 and "promote v1.4.0 to stage first" in result.output
    assert release("dev").exit_code == 1  # nothing is promoted into the first environment


def test_a_workload_file_of_another_workload_is_refused(seeded, release):
    Path(release.workload_file).write_text(WORKLOAD_YAML.replace("${KONFIG_WORKLOAD}", "cart"))
    result = release("stage")
    assert result.exit_code == 1 and "is not Workload 'checkout'" in result.output


def test_the_registry_must_accept_the_token(seeded, release, registry):
    registry.token = "another"
    result = release("stage")
    assert result.exit_code == 1 and "refused the credentials" in result.output
