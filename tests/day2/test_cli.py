"""`konfig promote` and `konfig break-glass` end to end: the root CLI app, a kubeconfig, the real
kubernetes client, the Kubernetes API emulator."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from cli import app

from . import org

CI_JOBS = Path(__file__).resolve().parents[2] / "gitlab-templates" / "workload" / "ci" / "jobs.yml"


@pytest.fixture
def kubeconfig(seeded, tmp_path) -> str:
    return str(seeded.kube.kubeconfig_path(tmp_path))


def konfig(*args: str, **env: str | None):
    env = {"COLUMNS": "250", "GITLAB_USER_LOGIN": None, "USER": "carol", "KONFIG_DOMAIN": None, **env}
    result = CliRunner().invoke(app, list(args), env=env)
    assert result.exception is None or isinstance(result.exception, SystemExit), result.output
    return result


def test_promote(seeded, kubeconfig):
    seeded.workload("shop", "dev", org.IMAGE_B)
    seeded.workload("shop", "stage", org.IMAGE_A)

    result = konfig("promote", "checkout", "--to", "stage", "--kubeconfig", kubeconfig)

    assert result.exit_code == 0, result.output
    assert f"Promoted {org.DIGEST_B} from dev to stage" in result.output
    stage = seeded.get("workloads", "shop-stage", "checkout")
    assert stage["spec"]["image"] == org.IMAGE_B
    assert stage["metadata"]["annotations"]["konfig.dev/promoted-by"] == "carol"  # $USER

    again = konfig("promote", "checkout", "--to", "stage", "--kubeconfig", kubeconfig)
    assert again.exit_code == 0 and "nothing to promote" in again.output


def test_promote_as_the_workload_templates_ci_job_calls_it(seeded, tmp_path):
    """ci/jobs.yml runs `konfig promote "$KONFIG_WORKLOAD" --to "$CI_ENVIRONMENT_NAME"` with
    KUBECONFIG, KONFIG_DOMAIN and GITLAB_USER_LOGIN set by GitLab and Konfig."""
    script = CI_JOBS.read_text()
    assert 'konfig promote "$KONFIG_WORKLOAD" --to "$CI_ENVIRONMENT_NAME"' in script
    seeded.workload("shop", "dev", org.IMAGE_A)
    seeded.workload("stores", "dev", org.IMAGE_B)  # same name in another domain
    env = {"KUBECONFIG": str(seeded.kube.kubeconfig_path(tmp_path)), "KONFIG_DOMAIN": "stores",
           "GITLAB_USER_LOGIN": "release-bot"}

    result = konfig("promote", "checkout", "--to", "prod", **env)

    assert result.exit_code == 0, result.output
    prod = seeded.get("workloads", "stores-prod", "checkout")
    assert prod["spec"]["image"] == org.IMAGE_B
    assert prod["metadata"]["annotations"]["konfig.dev/promoted-by"] == "release-bot"
    assert seeded.get("workloads", "shop-prod", "checkout") is None


def test_promote_refusal_exits_1_with_the_reason(seeded, kubeconfig):
    seeded.workload("shop", "dev", org.IMAGE_B)
    result = konfig("promote", "checkout", "--to", "prod", "--from", "dev", "--kubeconfig", kubeconfig)
    assert result.exit_code == 1
    assert "refused (skip)" in result.output and "stage" in result.output


def test_promote_needs_someone_to_record(seeded, kubeconfig):
    result = konfig("promote", "checkout", "--to", "stage", "--kubeconfig", kubeconfig, USER=None)
    assert result.exit_code == 2 and "--actor" in result.output


def test_unreachable_cluster(tmp_path):
    result = konfig("promote", "checkout", "--to", "stage", "--kubeconfig", str(tmp_path / "missing"))
    assert result.exit_code == 1 and "cannot reach the cluster" in result.output


def test_break_glass_request_list_revoke(seeded, kubeconfig):
    requested = konfig("break-glass", "request", "shop", "--env", "prod", "--reason", "INC-9 outage",
                       "--duration", "2h", "--kubeconfig", kubeconfig, "--actor", "dana")
    assert requested.exit_code == 0, requested.output
    grant_id = requested.output.split("break-glass ", 1)[1].split()[0]
    assert grant_id.startswith("bg-") and "acme-shop-prod" in requested.output

    listed = konfig("break-glass", "list", "--kubeconfig", kubeconfig)
    assert listed.exit_code == 0, listed.output
    assert grant_id in listed.output and "active" in listed.output and "INC-9 outage" in listed.output

    as_json = json.loads(konfig("break-glass", "list", "shop", "--json", "--kubeconfig", kubeconfig).output)
    assert [(g["id"], g["state"], g["requestedBy"]) for g in as_json] == [(grant_id, "active", "dana")]
    assert json.loads(konfig("break-glass", "list", "stores", "--json", "--kubeconfig", kubeconfig).output) == []

    revoked = konfig("break-glass", "revoke", grant_id, "--kubeconfig", kubeconfig)
    assert revoked.exit_code == 0, revoked.output
    assert f"Revoked break-glass {grant_id}" in revoked.output
    assert seeded.members() == []
    last = seeded.get("domains", "konfig-system", "shop")["status"]["breakGlass"][-1]
    assert (last["state"], last["by"]) == ("revoked", "carol")

    assert "No break-glass grants" in konfig("break-glass", "list", "--kubeconfig", kubeconfig).output
    assert "No expired grants" in konfig("break-glass", "revoke", "--expired", "--kubeconfig", kubeconfig).output


def test_break_glass_refusals_exit_1(seeded, kubeconfig):
    too_long = konfig("break-glass", "request", "shop", "--env", "prod", "--reason", "x",
                      "--duration", "1d", "--kubeconfig", kubeconfig)
    assert too_long.exit_code == 1 and "refused (too-long)" in too_long.output
    unknown = konfig("break-glass", "revoke", "bg-nope", "--kubeconfig", kubeconfig)
    assert unknown.exit_code == 1 and "refused (unknown-grant)" in unknown.output
    both = konfig("break-glass", "revoke", "bg-nope", "--expired", "--kubeconfig", kubeconfig)
    assert both.exit_code == 2
    assert seeded.members() == []


def test_revoke_expired_removes_grants_past_their_expiry(seeded, kubeconfig):
    from datetime import UTC, datetime, timedelta

    from konfig.kube.breakglass import request_grant

    past = request_grant(seeded.api_client, domain="shop", environment="dev", duration="1h",
                         reason="last night", actor="erin", now=datetime.now(UTC) - timedelta(hours=2)).grant
    current = request_grant(seeded.api_client, domain="shop", environment="prod", duration="1h",
                            reason="now", actor="erin", now=datetime.now(UTC)).grant

    result = konfig("break-glass", "revoke", "--expired", "--kubeconfig", kubeconfig, "--actor", "frank")

    assert result.exit_code == 0, result.output
    assert f"Removed expired break-glass {past.id}" in result.output
    assert {m["metadata"]["labels"]["konfig-break-glass-id"] for m in seeded.members()} == {current.id}
    last = seeded.get("domains", "konfig-system", "shop")["status"]["breakGlass"][-1]
    assert (last["id"], last["state"], last["by"]) == (past.id, "expired", "frank")
