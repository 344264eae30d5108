"""Bootstrap through the real google-cloud clients against the local fakes."""

from __future__ import annotations

import dataclasses

from konfig.gcp.bootstrap import Action, Outcome, apply, diff, observe
from konfig.gcp.target import FOLDER_ROLES, REQUIRED_SERVICES

from .conftest import BILLING, ORG

PROJECT_ID = "acme-acme-cp"  # <prefix><control plane>-cp
SA_MEMBER = f"serviceAccount:konfig-controller@{PROJECT_ID}.iam.gserviceaccount.com"


#: A fresh run does everything except labelling an adopted project.
FRESH = [a for a in Action if a is not Action.LABEL_PROJECT]


def bootstrap(clients, target):
    plan = diff(target, observe(clients, target))
    return plan, apply(clients, plan)


def test_fresh_bootstrap_builds_the_whole_foundation(fakes, clients, target):
    plan, report = bootstrap(clients, target)

    assert [s.action for s in plan.steps] == FRESH
    assert report.ok, report.results
    folders = fakes.rm.folders()
    assert [(f.parent, f.display_name) for f in folders] == [(ORG, "acme")]
    (project,) = fakes.rm.projects()
    assert project.project_id == PROJECT_ID
    assert project.parent == folders[0].name
    assert dict(project.labels) == {"konfig-control-plane": "acme"}
    number = project.name.split("/")[1]
    assert report.project_number == number
    assert fakes.rm.billing_account_of(PROJECT_ID) == f"billingAccounts/{BILLING}"
    assert set(REQUIRED_SERVICES) <= fakes.rm.enabled_services(PROJECT_ID)
    assert fakes.iam.account(f"konfig-controller@{PROJECT_ID}.iam.gserviceaccount.com")
    folder_bindings = fakes.rm.bindings(folders[0].name)
    for role in FOLDER_ROLES:
        assert folder_bindings[role] == {SA_MEMBER}
    assert fakes.rm.bindings(f"billingAccounts/{BILLING}")["roles/billing.user"] == {SA_MEMBER}
    # Enabling container.googleapis.com brought Compute Engine and its default account along;
    # bootstrap found it and turned it off.
    assert fakes.iam.account(f"{number}-compute@developer.gserviceaccount.com").disabled


def test_long_running_operations_are_polled_until_done(fakes, clients, target):
    fakes.rm.operation_polls = 4
    _, report = bootstrap(clients, target)

    assert report.ok, report.results
    # Create folder, create project, enable services: each answered done only on the 5th poll.
    assert fakes.rm.calls.count("GetOperation") >= 3 * 5
    assert len(fakes.rm.folders()) == 1 and len(fakes.rm.projects()) == 1


def test_second_run_plans_nothing_and_writes_nothing(fakes, clients, target):
    bootstrap(clients, target)
    writes_after_first = len(fakes.writes())

    plan, report = bootstrap(clients, target)

    assert plan.steps == () and plan.blockers == () and plan.notes == ()
    assert report.ok and report.project_number == fakes.rm.projects()[0].name.split("/")[1]
    assert len(fakes.writes()) == writes_after_first


def test_adopts_existing_folder_and_project_without_duplicates(fakes, clients, target):
    elsewhere = fakes.rm.add_folder(ORG, "legacy")
    folder = fakes.rm.add_folder(ORG, "acme")
    number = fakes.rm.add_project(PROJECT_ID, elsewhere, labels={"team": "platform"})
    fakes.rm.link_billing(PROJECT_ID, BILLING)
    fakes.rm.enable_services(PROJECT_ID, ["compute.googleapis.com", "iam.googleapis.com"])
    fakes.iam.add_default_compute_service_account(PROJECT_ID, number)

    plan, report = bootstrap(clients, target)

    actions = [s.action for s in plan.steps]
    assert Action.CREATE_FOLDER not in actions and Action.CREATE_PROJECT not in actions
    assert Action.LINK_BILLING not in actions
    assert plan.adopts_project
    enable = next(s for s in plan.steps if s.action is Action.ENABLE_SERVICES)
    assert "iam.googleapis.com" not in enable.items
    assert any("never moves" in note for note in plan.notes)
    assert report.ok, report.results
    assert len(fakes.rm.folders()) == 2 and len(fakes.rm.projects()) == 1
    (project,) = fakes.rm.projects()
    assert project.parent == elsewhere  # not moved
    assert dict(project.labels) == {"team": "platform", "konfig-control-plane": "acme"}
    assert fakes.rm.bindings(folder)["roles/resourcemanager.projectCreator"] == {SA_MEMBER}
    assert fakes.iam.account(f"{number}-compute@developer.gserviceaccount.com").disabled


def test_folder_found_on_a_later_page_is_not_created_again(fakes, clients, target):
    fakes.rm.page_size = 2
    for name in ("aaa", "abc", "abd", "acl"):  # sorted before "acme"
        fakes.rm.add_folder(ORG, name)
    existing = fakes.rm.add_folder(ORG, "acme")

    plan, report = bootstrap(clients, target)

    assert plan.observed.folder == existing
    assert report.ok and fakes.rm.calls.count("CreateFolder") == 0
    assert fakes.rm.projects()[0].parent == existing


def test_folder_created_by_someone_else_meanwhile_is_adopted(fakes, clients, target):
    plan = diff(target, observe(clients, target))
    theirs = fakes.rm.add_folder(ORG, "acme")  # between our look and our create

    report = apply(clients, plan)

    assert report.ok, report.results
    assert report.results[0].outcome is Outcome.SKIPPED and report.folder == theirs
    assert len(fakes.rm.folders()) == 1 and fakes.rm.projects()[0].parent == theirs


def test_folder_policy_read_modify_write_survives_a_concurrent_change(fakes, clients, target):
    folder = fakes.rm.add_folder(ORG, "acme")
    fakes.rm.add_binding(folder, "roles/viewer", "group:auditors@acme.com")
    fakes.rm.concurrent_policy_change(folder, "roles/browser", "user:someone@acme.com")

    _, report = bootstrap(clients, target)

    assert report.ok, report.results
    bindings = fakes.rm.bindings(folder)
    assert bindings["roles/viewer"] == {"group:auditors@acme.com"}
    assert bindings["roles/browser"] == {"user:someone@acme.com"}  # the other writer's grant
    assert all(bindings[role] == {SA_MEMBER} for role in FOLDER_ROLES)


def test_new_service_account_not_yet_known_to_iam_is_retried(fakes, clients, target):
    fakes.rm.fail_next(
        "SetIamPolicy",
        400,
        "INVALID_ARGUMENT",
        f"Service account konfig-controller@{PROJECT_ID}.iam.gserviceaccount.com does not exist.",
        times=2,
    )
    _, report = bootstrap(clients, target)

    assert report.ok, report.results
    assert fakes.rm.bindings(fakes.rm.folders()[0].name)[FOLDER_ROLES[0]] == {SA_MEMBER}


def test_failed_step_stops_the_run_and_a_rerun_continues(fakes, clients, target):
    fakes.rm.fail_next("CreateProject", 403, "PERMISSION_DENIED", "no projects.create")

    _, report = bootstrap(clients, target)

    assert not report.ok
    outcomes = {r.step.action: r.outcome for r in report.results}
    assert outcomes[Action.CREATE_FOLDER] is Outcome.DONE
    assert outcomes[Action.CREATE_PROJECT] is Outcome.FAILED
    assert all(outcomes[a] is Outcome.NOT_RUN for a in FRESH[2:])
    failed = next(r for r in report.results if r.outcome is Outcome.FAILED)
    assert "no projects.create" in failed.message and "konfig doctor" in failed.message

    plan, report = bootstrap(clients, target)

    assert plan.steps[0].action is Action.CREATE_PROJECT
    assert report.ok and len(fakes.rm.folders()) == 1 and len(fakes.rm.projects()) == 1


def test_project_of_another_control_plane_blocks_everything(fakes, clients, target):
    folder = fakes.rm.add_folder(ORG, "other")
    fakes.rm.add_project(PROJECT_ID, folder, labels={"konfig-control-plane": "globex"})

    plan, report = bootstrap(clients, target)

    assert plan.blockers and "globex" in plan.blockers[0]
    assert not report.ok and report.results == []
    assert fakes.writes() == []


def test_project_id_taken_by_an_invisible_project_fails_clearly(fakes, clients, target):
    folder = fakes.rm.add_folder(ORG, "someone-else")
    fakes.rm.add_project(PROJECT_ID, folder)
    fakes.rm.hide(f"projects/{PROJECT_ID}")

    _, report = bootstrap(clients, target)

    failed = next(r for r in report.results if r.outcome is Outcome.FAILED)
    assert failed.step.action is Action.CREATE_PROJECT
    assert "spec.gcp.projectId" in failed.message


def test_project_billed_elsewhere_is_left_alone(fakes, clients, target):
    folder = fakes.rm.add_folder(ORG, "acme")
    fakes.rm.add_project(PROJECT_ID, folder, labels={"konfig-control-plane": "acme"})
    fakes.rm.add_billing_account("AAAAAA-BBBBBB-CCCCCC")
    fakes.rm.link_billing(PROJECT_ID, "AAAAAA-BBBBBB-CCCCCC")

    plan, report = bootstrap(clients, target)

    assert Action.LINK_BILLING not in [s.action for s in plan.steps]
    assert any("AAAAAA-BBBBBB-CCCCCC" in note for note in plan.notes)
    assert fakes.rm.billing_account_of(PROJECT_ID) == "billingAccounts/AAAAAA-BBBBBB-CCCCCC"
    assert report.ok


def test_services_are_enabled_in_batches_the_api_accepts(fakes, clients, target):
    extra = tuple(f"api{i:02d}.googleapis.com" for i in range(17))
    wide = dataclasses.replace(target, services=REQUIRED_SERVICES + extra)  # 25 services

    _, report = bootstrap(clients, wide)

    assert report.ok, report.results
    assert fakes.rm.calls.count("BatchEnableServices") == 2  # the API takes at most 20
    assert set(wide.services) <= fakes.rm.enabled_services(PROJECT_ID)


def test_dry_run_plan_is_data_and_changes_nothing(fakes, clients, target):
    plan = diff(target, observe(clients, target))

    assert len(plan) == len(FRESH)
    grant = next(s for s in plan.steps if s.action is Action.GRANT_FOLDER_ROLES)
    assert grant.items == FOLDER_ROLES and grant.target == "<new folder>"
    assert fakes.writes() == []
