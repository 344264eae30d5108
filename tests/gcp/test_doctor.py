"""Doctor checks through the real google-cloud clients against the local fakes."""

from __future__ import annotations

import dataclasses

from konfig.gcp.bootstrap import apply, diff, observe
from konfig.gcp.doctor import Status, missing, run_checks

from .conftest import BILLING, ORG

PROJECT_ID = "acme-acme-cp"


def statuses(results):
    return {r.check: r.status for r in results}


def test_before_bootstrap_reports_what_is_missing_and_how_to_fix_it(fakes, clients, target):
    results = run_checks(clients, target)

    by_check = statuses(results)
    assert by_check["parent"] is Status.OK
    assert by_check["billing-account"] is Status.OK
    assert by_check["folder"] is Status.MISSING
    assert by_check["project"] is Status.MISSING
    assert by_check["service-account"] is Status.MISSING
    assert by_check["services"] is Status.UNKNOWN  # no project to look in yet
    assert by_check["parent-permissions"] is Status.OK
    assert all("konfig bootstrap" in r.fix for r in results if r.check in {"folder", "project"})
    assert fakes.writes() == []  # the doctor only reads


def test_after_bootstrap_everything_is_ok(fakes, clients, target):
    from konfig.gcp import cluster

    report = apply(clients, diff(target, observe(clients, target)))
    assert report.ok
    cluster_target = cluster.ClusterTarget("acme", target.project_id, target.region)
    assert cluster.apply(clients, cluster.diff(cluster_target, cluster.observe(clients, cluster_target))).ok
    recorded = dataclasses.replace(target, project_number=report.project_number)

    results = run_checks(clients, recorded)

    assert missing(results) == [], [(r.check, r.detail) for r in missing(results)]
    assert statuses(results)["compute-default-sa"] is Status.OK


def test_unrecorded_project_number_is_missing_with_the_number_to_set(fakes, clients, target):
    report = apply(clients, diff(target, observe(clients, target)))

    (result,) = [r for r in run_checks(clients, target) if r.check == "project-number"]

    assert result.status is Status.MISSING
    assert f'projectNumber: "{report.project_number}"' in result.fix


def test_invisible_parent_is_missing_and_dependent_checks_unknown(fakes, clients, target):
    fakes.rm.hide(ORG)

    by_check = statuses(run_checks(clients, target))

    assert by_check["parent"] is Status.MISSING
    assert by_check["folder"] is Status.UNKNOWN
    assert by_check["parent-permissions"] is Status.UNKNOWN


def test_missing_caller_permissions_are_named(fakes, clients, target):
    fakes.rm.deny_permissions(
        ORG, ["resourcemanager.folders.create", "resourcemanager.projects.create"]
    )
    fakes.rm.deny_permissions(f"billingAccounts/{BILLING}", ["billing.accounts.setIamPolicy"])

    results = {r.check: r for r in run_checks(clients, target)}

    assert results["parent-permissions"].status is Status.MISSING
    assert results["parent-permissions"].detail == "missing: resourcemanager.folders.create"
    # Before the folder exists, the folder permissions are tested on the parent.
    assert "resourcemanager.projects.create" in results["folder-permissions"].detail
    assert results["billing-permissions"].detail == "missing: billing.accounts.setIamPolicy"
    assert ORG in results["parent-permissions"].fix


def test_billing_account_closed_is_missing_and_unreadable_is_unknown(fakes, clients, target):
    fakes.rm.add_billing_account(BILLING, open_=False)
    assert statuses(run_checks(clients, target))["billing-account"] is Status.MISSING

    fakes.rm.hide(f"billingAccounts/{BILLING}")
    by_check = statuses(run_checks(clients, target))
    assert by_check["billing-account"] is Status.UNKNOWN
    assert by_check["billing-roles"] is Status.UNKNOWN


def test_adopted_project_gaps_are_each_reported(fakes, clients, target):
    folder = fakes.rm.add_folder(ORG, "acme")
    number = fakes.rm.add_project(PROJECT_ID, folder)
    fakes.rm.enable_services(PROJECT_ID, ["iam.googleapis.com"])
    fakes.iam.add_default_compute_service_account(PROJECT_ID, number)

    results = {r.check: r for r in run_checks(clients, target)}

    assert results["folder"].status is Status.OK
    assert (
        results["project"].status is Status.MISSING and "not labelled" in results["project"].detail
    )
    assert results["project-billing"].status is Status.MISSING
    assert f"--billing-account={BILLING}" in results["project-billing"].fix
    assert results["services"].status is Status.MISSING
    assert "iam.googleapis.com" not in results["services"].detail
    assert "container.googleapis.com" in results["services"].fix
    assert results["compute-default-sa"].status is Status.MISSING
    assert results["folder-roles"].status is Status.MISSING
    assert results["project-permissions"].status is Status.OK


def test_api_errors_become_unknown_rather_than_crashing(fakes, clients, target):
    fakes.rm.fail_next("ListFolders", 500, "INTERNAL", "backend down")

    results = {r.check: r for r in run_checks(clients, target)}

    assert results["folder"].status is Status.UNKNOWN
    assert "backend down" in results["folder"].detail
