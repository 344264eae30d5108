"""``konfig sync gitlab DIR``: the shell over the adapter, against the fake GitLab."""

from __future__ import annotations

from typer.testing import CliRunner

from cli import app
from konfig.gitlab.model import default_template_dir, load_template_files

from .conftest import TOKEN


def _run(fake, definitions_dir, *extra: str, token: str | None = TOKEN):
    env = {"COLUMNS": "200", "GITLAB_TOKEN": token or ""}
    return CliRunner().invoke(app, ["sync", "gitlab", str(definitions_dir), "--gitlab-url",
                                    fake.url, *extra], env=env)


def test_dry_run_prints_the_diff_and_writes_nothing(fake, definitions_dir):
    result = _run(fake, definitions_dir, "--dry-run")
    assert result.exit_code == 0, result.output
    assert "+ create group acme/acme: under acme" in result.output
    assert "dry run: nothing written" in result.output
    assert fake.count(writes=True) == 0


def test_sync_then_resync_is_in_sync(fake, definitions_dir, example_state):
    first = _run(fake, definitions_dir)
    assert first.exit_code == 0, first.output
    assert "+ create project acme/acme/workload-template" in first.output
    tree = example_state.gitlab
    assert sorted(fake.groups_under("acme")) == sorted(g.full_path for g in tree.groups)
    # The bundled workload template is what workloads are made from.
    bundled = load_template_files(default_template_dir())
    workload = next(p for p in tree.projects if p.kind == "workload")
    assert set(fake.files(workload.path_with_namespace)) == set(bundled.files)
    fake.reset_log()
    second = _run(fake, definitions_dir)
    assert second.exit_code == 0 and "in sync" in second.output
    assert fake.count(writes=True) == 0


def test_failures_exit_non_zero(fake, definitions_dir):
    # 422 is not retried (a 5xx would be, with the CLI's production backoff).
    fake.inject_fault(422, method="POST", route=r"^/groups$", times=1000)
    result = _run(fake, definitions_dir)
    assert result.exit_code == 1
    assert "[failed]" in result.output and "[skipped]" in result.output


def test_token_is_required(fake, definitions_dir):
    result = _run(fake, definitions_dir, token=None)
    assert result.exit_code == 2 and "GITLAB_TOKEN" in result.output


def _diff(fake_url, definitions_dir, token=TOKEN):
    return CliRunner().invoke(app, ["diff", str(definitions_dir), "--no-cluster", "--json",
                                    "--gitlab-url", fake_url],
                              env={"COLUMNS": "200", "GITLAB_TOKEN": token})


def test_diff_against_gitlab_plans_then_is_empty_after_sync(fake, definitions_dir):
    import json

    before = _diff(fake.url, definitions_dir)
    assert before.exit_code == 2, before.output
    plan = json.loads(before.output)
    assert plan["compared"] == ["gitlab"]
    kinds = {(c["op"], c["kind"]) for c in plan["changes"]}
    assert ("create", "project") in kinds and ("create", "group") in kinds
    assert ("create", "repository") in kinds  # the definitions repository's starter tree
    # Variable values never appear in a plan.
    assert all(c["reason"] == "" for c in plan["changes"] if c["kind"] == "variable")
    assert fake.count(writes=True) == 0
    assert _run(fake, definitions_dir).exit_code == 0
    after = _diff(fake.url, definitions_dir)
    assert after.exit_code == 0, after.output
    assert json.loads(after.output)["changes"] == []


def test_diff_with_gitlab_unreachable_is_an_error(definitions_dir):
    result = _diff("http://127.0.0.1:9", definitions_dir)
    assert result.exit_code == 1
    assert "cannot read GitLab" in result.output and "No plan was made" in result.output


def test_plan_shows_the_definitions_repository_and_its_pipeline(definitions_dir):
    result = CliRunner().invoke(app, ["plan", str(definitions_dir)], env={"COLUMNS": "250"})
    assert result.exit_code == 0, result.output
    import re

    # Width-independent: the tree's guides and line breaks removed.
    flat = " ".join(re.sub(r"[│├└─]", " ", result.output).split())
    start = flat.index("konfig-control-plane (control-plane)")
    assert flat.index("repository: the definitions", start) < flat.index(
        "workload-template (workload-template)")
    assert "apply on the protected default branch" in flat[start:]
