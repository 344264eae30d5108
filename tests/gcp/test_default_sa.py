"""The default compute service account of domain projects: disabled and its Editor grant
removed by bootstrap, reported by doctor, through the real clients against the GCP fakes."""

from __future__ import annotations

import dataclasses

from konfig.gcp import default_sa
from konfig.gcp.doctor import Status, run_checks

from .conftest import ORG

EDITOR = "roles/editor"


def _domain_project(fakes, project_id, *, label="acme", editor=True, other_editor=None):
    labels = {"konfig-control-plane": label} if label else {}
    number = fakes.rm.add_project(project_id, ORG, labels)
    fakes.iam.add_default_compute_service_account(project_id, number)
    email = f"{number}-compute@developer.gserviceaccount.com"
    if editor:
        fakes.rm.add_binding(f"projects/{number}", EDITOR, f"serviceAccount:{email}")
    if other_editor:
        fakes.rm.add_binding(f"projects/{number}", EDITOR, other_editor)
    return number, email


def test_konfig_projects_get_their_default_account_disabled_and_editor_removed(fakes, clients):
    number, email = _domain_project(fakes, "acme-shop-prod", other_editor="group:ops@acme.com")
    other_number, other_email = _domain_project(fakes, "someone-else", label=None)

    accounts = default_sa.observe(clients, "acme", ["acme-shop-prod", "someone-else", "acme-new-dev"])
    changes = default_sa.plan(accounts)
    assert [(c.account.project_id, c.disable, c.remove_editor) for c in changes] == [
        ("acme-shop-prod", True, True)]
    assert any("someone-else: not labelled" in n for n in default_sa.notes(accounts))
    assert any("acme-new-dev: not visible" in n for n in default_sa.notes(accounts))

    report = default_sa.apply(clients, changes)
    assert report.failed == [] and len(report.done) == 2
    assert fakes.iam.account(email).disabled
    assert fakes.rm.bindings(f"projects/{number}")[EDITOR] == {"group:ops@acme.com"}  # others kept
    # Not Konfig's: untouched.
    assert not fakes.iam.account(other_email).disabled
    assert f"serviceAccount:{other_email}" in fakes.rm.bindings(f"projects/{other_number}")[EDITOR]
    # Idempotent: nothing left to do.
    assert default_sa.plan(default_sa.observe(clients, "acme", ["acme-shop-prod"])) == []


def test_editor_removal_retries_a_concurrent_policy_change(fakes, clients):
    number, email = _domain_project(fakes, "acme-shop-dev")
    fakes.rm.concurrent_policy_change(f"projects/{number}", "roles/viewer", "group:late@acme.com")
    changes = default_sa.plan(default_sa.observe(clients, "acme", ["acme-shop-dev"]))
    report = default_sa.apply(clients, changes)
    assert report.failed == []
    bindings = fakes.rm.bindings(f"projects/{number}")
    assert EDITOR not in bindings and bindings["roles/viewer"] == {"group:late@acme.com"}


def test_doctor_reports_domain_projects_whose_default_account_is_active(fakes, clients, target):
    _domain_project(fakes, "acme-shop-prod", editor=False)
    with_projects = dataclasses.replace(target, domain_projects=("acme-shop-prod", "acme-shop-dev"))
    [result] = [r for r in run_checks(clients, with_projects) if r.check == "domain-default-sa"]
    assert result.status is Status.MISSING
    assert "acme-shop-prod" in result.detail and "enabled" in result.detail
    assert "konfig bootstrap" in result.fix

    default_sa.apply(clients, default_sa.plan(default_sa.observe(clients, "acme", ["acme-shop-prod"])))
    [result] = [r for r in run_checks(clients, with_projects) if r.check == "domain-default-sa"]
    assert result.status is Status.OK and "not visible yet: acme-shop-dev" in result.detail


def test_bootstrap_command_hardens_existing_domain_projects(fakes, tmp_path):
    from typer.testing import CliRunner

    from cli import app

    from .conftest import CONTROL_PLANE_YAML

    (tmp_path / "control-plane.yaml").write_text(CONTROL_PLANE_YAML)
    (tmp_path / "org.yaml").write_text(
        "apiVersion: konfig.dev/v1alpha1\nkind: Platform\nmetadata: {name: retail}\n---\n"
        "apiVersion: konfig.dev/v1alpha1\nkind: Domain\nmetadata: {name: shop}\nspec: {platform: retail}\n")
    number, email = _domain_project(fakes, "acme-shop-prod")

    def run(*args):
        return CliRunner().invoke(app, list(args), env={**fakes.env, "COLUMNS": "200"})

    dry = run("bootstrap", str(tmp_path), "--dry-run")
    assert dry.exit_code == 0, dry.output
    assert "domain project acme-shop-prod: disable and remove its roles/editor grant" in dry.output
    assert not fakes.iam.account(email).disabled
    done = run("bootstrap", str(tmp_path))
    assert done.exit_code == 0, done.output
    assert fakes.iam.account(email).disabled and EDITOR not in fakes.rm.bindings(f"projects/{number}")
    assert "acme-shop-dev: not visible" in done.output
