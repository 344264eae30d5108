"""Reconcile scenarios: the adapter against the fake GitLab, through python-gitlab over HTTP."""

from __future__ import annotations

import dataclasses
import math
import re

import pytest

from konfig.compile.state import GITLAB_MARKER_TEXT, SamlGroupLink
from konfig.gitlab import RetryPolicy, reconcile
from konfig.gitlab.model import default_control_plane_template_dir, load_template_files
from konfig.gitlab.observe import deep_slice
from konfig.gitlab.testing import synthetic_tree
from konfig.sandbox.fake_gitlab import FakeGitLab

from .conftest import TEMPLATE, Syncer, make_fake


def _texts(files) -> dict[str, str]:
    return {path: content.decode() for path, content in files.items()}


def _snapshot(fake: FakeGitLab, root: str = "acme") -> dict:
    """Everything Konfig manages, as the fake holds it (ids and timestamps left out)."""
    state = {}
    for path in fake.groups_under(root):
        group = fake.group(path)
        state[path] = {"name": group["name"], "description": group["description"],
                       "links": fake.saml_links(path),
                       "variables": sorted((v["key"], v["environment_scope"], v["value"],
                                            v["protected"], v["masked"])
                                           for v in fake.variables(path))}
    for path in fake.projects_under(root):
        project = fake.project(path)
        protections = fake.protections(path)
        state[path] = {"archived": project["archived"], "topics": project["topics"],
                       "files": fake.files(path),
                       **{kind: sorted(items) for kind, items in protections.items()}}
    return state


@pytest.fixture
def example_tree(example_state):
    return example_state.gitlab


def test_first_sync_builds_the_whole_example_tree(fake, sync, example_tree):
    report = sync(example_tree)
    assert report.ok, [r.describe() for r in report.failed]
    for group in example_tree.groups:
        observed = fake.group(group.full_path)
        assert observed is not None and GITLAB_MARKER_TEXT in observed["description"]
        assert fake.saml_links(group.full_path) == {
            link.saml_group_name: link.access_level for link in group.saml_group_links}
        assert sorted((v["key"], v["environment_scope"], v["value"])
                      for v in fake.variables(group.full_path)) == \
            sorted((v.key, v.environment_scope, v.value) for v in group.variables)
    for project in example_tree.projects:
        observed = fake.project(project.path_with_namespace)
        assert "konfig-managed" in observed["topics"]
        protections = fake.protections(project.path_with_namespace)
        assert set(protections["branches"]) >= {"main"} and "v*" in protections["tags"]
        assert set(protections["environments"]) == set(project.protected_environments)
        main = protections["branches"]["main"]
        assert [lv["access_level"] for lv in main["push_access_levels"]] == [40]
        assert [lv["access_level"] for lv in main["merge_access_levels"]] == [30]
        if project.kind != "control-plane":
            assert fake.files(project.path_with_namespace) == _texts(TEMPLATE.files)
    # The definitions repository gets the bundled starter tree (README, pipeline) once.
    starter = load_template_files(default_control_plane_template_dir())
    assert ".gitlab-ci.yml" in starter.files and "README.md" in starter.files
    assert fake.files(f"{example_tree.root_full_path}/acme/konfig-control-plane") == \
        _texts(starter.files)
    # Writes: exactly one request per planned change, plus nothing else (trust your writes);
    # protections a template import copied are not written again.
    copied = [r for r in report.results if "copied from the template" in r.message]
    writes = [r for r in fake.requests if r.is_write]
    assert len(writes) == len(report.results) - len(copied) == report.writes
    # Reads: the shape pass and one import_status poll per workload at most.
    workloads = [p for p in example_tree.projects if p.kind == "workload"]
    assert fake.count(writes=False) <= 2 + 2 * len(workloads)


def test_second_sync_makes_zero_writes(fake, sync, example_tree):
    assert sync(example_tree).ok
    again = sync(example_tree)
    assert again.ok and again.results == []
    assert fake.count(writes=True) == 0
    managed = len(example_tree.groups) + len(example_tree.projects)
    assert again.deep_read == managed
    assert fake.count(writes=False) <= 3 + 3 * managed


def test_saml_link_removed_by_hand_is_restored(fake, sync, example_tree):
    sync(example_tree)
    domain = next(g for g in example_tree.groups if g.kind == "Domain")
    link = domain.saml_group_links[0]
    fake.delete_saml_link(domain.full_path, link.saml_group_name)
    shape = sync(example_tree, depth="shape")
    assert shape.results == [] and fake.count(writes=True) == 0  # the shape pass cannot see it
    report = sync(example_tree)
    assert [(r.change.action, r.change.kind, r.change.path, r.change.name)
            for r in report.results] == [("create", "saml_link", domain.full_path,
                                          link.saml_group_name)]
    assert fake.saml_links(domain.full_path)[link.saml_group_name] == link.access_level


def test_access_level_changed_in_yaml_is_changed_in_gitlab(fake, sync, example_tree):
    sync(example_tree)
    domain = next(g for g in example_tree.groups if g.kind == "Domain")
    old = domain.saml_group_links[0]
    new = SamlGroupLink(old.saml_group_name, 40 if old.access_level != 40 else 30)
    changed = dataclasses.replace(domain, saml_group_links=(new, *domain.saml_group_links[1:]))
    tree = dataclasses.replace(example_tree, groups=tuple(
        changed if g is domain else g for g in example_tree.groups))
    report = sync(tree)
    assert report.ok and [r.change.action for r in report.results] == ["update"]
    assert fake.saml_links(domain.full_path)[new.saml_group_name] == new.access_level
    # No update endpoint exists: delete, then create.
    assert [(r.method, bool(re.search("saml_group_links", r.route))) for r in fake.requests
            if r.is_write] == [("DELETE", True), ("POST", True)]


def test_removed_workload_is_archived_never_deleted_and_comes_back(fake, sync, example_tree):
    sync(example_tree)
    gone = next(p for p in example_tree.projects if p.kind == "workload")
    smaller = dataclasses.replace(example_tree, projects=tuple(
        p for p in example_tree.projects if p is not gone))
    report = sync(smaller)
    assert [(r.change.action, r.change.path) for r in report.results] == \
        [("archive", gone.path_with_namespace)]
    project = fake.project(gone.path_with_namespace)
    assert project["archived"] is True and project["marked_for_deletion_on"] is None
    assert not any(r.method == "DELETE" for r in fake.requests)
    assert sync(smaller).results == []  # archived stays archived, no churn
    back = sync(example_tree)
    assert [r.change.action for r in back.results] == ["unarchive"]
    assert fake.project(gone.path_with_namespace)["archived"] is False


def test_injected_429s_and_500s_converge_without_duplicates(example_tree):
    clean = make_fake()
    clean.set_custom_project_templates("acme", "acme/acme")
    Syncer(clean)(example_tree)
    faulty = make_fake()
    faulty.set_custom_project_templates("acme", "acme/acme")
    try:
        faulty.random_faults(0.15, seed=7, after_commit_ratio=0.5)
        syncer = Syncer(faulty, retry=RetryPolicy(attempts=3, initial=0.001, max_wait=0.01,
                                                  jitter=0.001))
        faults, passes = [], 0
        while passes < 6:
            passes += 1
            report = syncer(example_tree)
            faults += [r for r in faulty.requests if r.fault]
            if report.ok:
                break
        assert report.ok, [r.describe() for r in report.failed]
        assert {f.status for f in faults} >= {429, 500} and \
            any(f.fault == "after_commit" for f in faults)
        faulty.clear_faults()
        assert _snapshot(faulty) == _snapshot(clean)  # no duplicates, nothing missing
        assert syncer(example_tree).results == [] and faulty.count(writes=True) == 0
    finally:
        clean.stop()
        faulty.stop()


def test_retry_after_is_honoured(fake):
    tree = synthetic_tree(1, 1, 0, links=False, variables=False)
    fake.inject_fault(429, method="POST", route=r"^/groups$", retry_after=1)
    sync = Syncer(fake, retry=RetryPolicy(attempts=3, initial=0.001, max_wait=5, jitter=0))
    report = sync(tree)
    assert report.ok and report.throttled == 1
    posts = [r for r in fake.requests if r.method == "POST" and r.route == "/groups"]
    assert posts[0].status == 429 and posts[1].status == 201
    assert posts[1].started - posts[0].ended >= 0.95


def test_requests_in_flight_are_bounded():
    fake = make_fake(latency=0.003)  # slow enough for requests to overlap
    try:
        report = Syncer(fake, max_in_flight=3)(synthetic_tree(2, 2, 2))
        assert report.ok
        assert fake.max_in_flight == 3
    finally:
        fake.stop()


def test_partial_failure_converges_on_the_next_run(fake, sync):
    tree = synthetic_tree(1, 2, 2, links=False)
    fake.inject_fault(503, method="POST", route=r"/repository/commits$", times=100)
    first = sync(tree)
    assert not first.ok
    failed = {(r.change.kind, r.change.action) for r in first.failed}
    assert ("repository", "create") in failed  # template files could not be pushed
    assert all(r.change.kind != "project" or r.status != "done" or
               r.change.data.get("kind") != "workload" for r in first.results)
    fake.clear_faults()
    second = sync(tree)
    assert second.ok, [r.describe() for r in second.failed]
    assert sync(tree).results == []
    for project in tree.projects:
        if project.kind != "control-plane":
            assert fake.files(project.path_with_namespace) == _texts(TEMPLATE.files)
    assert len(fake.projects_under("acme")) == len(tree.projects)


def test_shape_pass_reads_grow_with_pages_not_objects(fake, sync):
    tree = synthetic_tree(5, 99, 0, links=False, variables=False)
    assert len(tree.groups) == 501
    first = sync(tree)
    assert first.ok and fake.count(writes=True) == len(first.results)
    for groups in (500, 250):
        sub = dataclasses.replace(tree, groups=tree.groups[:groups])
        shape = sync(sub, depth="shape")
        expected = 1 + math.ceil((len(fake.groups_under("acme/acme"))) / 100) + \
            math.ceil(len(tree.projects) / 100)
        assert fake.count(writes=False) == shape.reads == expected
        assert fake.count(writes=True) == 0


def test_deep_pass_spreads_over_resyncs(fake):
    period = 4
    sync = Syncer(fake, deep_period=period)
    tree = synthetic_tree(2, 3, 2)
    sync(tree)
    seen = []
    for round_ in range(period):
        report = sync(tree, depth="shape", deep_round=round_)
        assert report.results == []
        seen.append(report.deep_read)
    assert sum(seen) == len(tree.groups) + len(tree.projects)
    selector = [deep_slice(period, r) for r in range(period)]
    for group in tree.groups:
        assert sum(s(group.full_path) for s in selector) == 1


def test_free_tier_reports_premium_features_and_falls_back():
    fake = make_fake(tier="free")
    try:
        tree = synthetic_tree(1, 1, 2)
        report = Syncer(fake)(tree)
        assert report.ok
        statuses = {(r.change.kind, r.status) for r in report.results}
        assert ("saml_link", "unsupported") in statuses
        assert ("protected_environment", "unsupported") in statuses
        assert any("SAML group links need GitLab Premium" in n for n in report.notes)
        assert any("custom project templates" in n for n in report.notes)
        workload = next(p for p in tree.projects if p.kind == "workload")
        assert fake.files(workload.path_with_namespace) == _texts(TEMPLATE.files)
        assert fake.project(workload.path_with_namespace)["import_status"] == "none"
        again = Syncer(fake)(tree)
        assert again.ok and again.results == [] and fake.count(writes=True) == 0
        # A SAML probe per pass, not one per group.
        assert fake.count(route="saml_group_links") == 1
    finally:
        fake.stop()


def test_template_import_is_awaited_before_protecting(example_tree):
    fake = make_fake(import_delay=0.15)
    fake.set_custom_project_templates("acme", "acme/acme")
    try:
        report = Syncer(fake)(example_tree)
        assert report.ok
        workload = next(p for p in example_tree.projects if p.kind == "workload")
        project = fake.project(workload.path_with_namespace)
        pid = project["id"]
        log = fake.requests
        polls = [i for i, r in enumerate(log) if r.method == "GET" and r.route == f"/projects/{pid}"]
        protect = [i for i, r in enumerate(log) if r.is_write
                   and r.route.startswith(f"/projects/{pid}/protected_")]
        assert polls and protect and max(polls) < min(protect)
        assert fake.files(workload.path_with_namespace) == _texts(TEMPLATE.files)
        assert project["import_status"] == "finished"
    finally:
        fake.stop()


@pytest.mark.parametrize("mode", ["fork", "initial_commit"])
def test_other_creation_modes(mode):
    fake = make_fake()
    try:
        tree = synthetic_tree(1, 1, 2, links=False)
        syncer = Syncer(fake, creation_mode=mode)
        assert syncer(tree).ok
        for project in tree.projects:
            if project.kind == "workload":
                observed = fake.project(project.path_with_namespace)
                assert "konfig-managed" in observed["topics"]
                assert "forked_from_project" not in observed
                assert fake.files(project.path_with_namespace) == _texts(TEMPLATE.files)
        again = syncer(tree)
        assert again.results == [] and fake.count(writes=True) == 0
    finally:
        fake.stop()


def test_unmarked_objects_are_never_changed(fake, sync):
    tree = synthetic_tree(1, 1, 1, links=False)
    fake.seed_group("acme/acme", description="created by hand")
    fake.seed_group("acme/acme/platform-000", description="also by hand")
    report = sync(tree)
    assert not report.ok
    assert [(r.change.action, r.change.path) for r in report.results] == [("conflict", "acme/acme")]
    assert fake.count(writes=True) == 0
    assert fake.group("acme/acme")["description"] == "created by hand"


def test_pending_deletion_is_restored_and_drift_fixed(fake, sync):
    tree = synthetic_tree(1, 1, 1, links=False)
    sync(tree)
    workload = next(p for p in tree.projects if p.kind == "workload")
    fake.delete_by_hand(workload.path_with_namespace)
    fake.edit_group("acme/acme/platform-000", name="Renamed by hand")
    report = sync(tree, depth="shape")
    assert sorted((r.change.action, r.change.kind) for r in report.results) == \
        [("restore", "project"), ("update", "group")]
    assert fake.project(workload.path_with_namespace)["marked_for_deletion_on"] is None
    assert fake.group("acme/acme/platform-000")["name"] == "Platform-000"


def test_domain_moved_to_another_platform_is_transferred(fake, sync):
    tree = synthetic_tree(2, 1, 1, links=False)
    sync(tree)
    domain = next(g for g in tree.groups if g.kind == "Domain" and "platform-000/" in g.full_path)
    before = fake.project(f"{domain.full_path}/wl-000")["id"]
    new_path = domain.full_path.replace("platform-000", "platform-001")
    moved = dataclasses.replace(domain, full_path=new_path,
                                parent_full_path="acme/acme/platform-001")
    projects = tuple(dataclasses.replace(
        p, path_with_namespace=p.path_with_namespace.replace(domain.full_path, new_path),
        namespace_full_path=new_path) if p.namespace_full_path == domain.full_path else p
        for p in tree.projects)
    tree2 = dataclasses.replace(tree, groups=tuple(moved if g is domain else g
                                                   for g in tree.groups), projects=projects)
    report = sync(tree2)
    assert report.ok
    assert [(r.change.action, r.change.kind) for r in report.results] == [("move", "group")]
    assert fake.project(f"{new_path}/wl-000")["id"] == before
    assert fake.group(domain.full_path) is None


def test_dry_run_writes_nothing(fake, sync, example_tree):
    report = sync(example_tree, dry_run=True)
    assert report.ok and report.results and all(r.status == "planned" for r in report.results)
    assert fake.count(writes=True) == 0
    assert fake.groups_under("acme") == []


def test_missing_parent_group_is_an_error_not_a_creation(fake):
    tree = dataclasses.replace(synthetic_tree(1, 1, 1, root="ghost"), root_full_path="ghost")
    report = Syncer(fake)(tree)
    assert not report.ok and "adopts it and never creates it" in report.error
    assert fake.count(writes=True) == 0


def test_settings_target_builds_its_own_client(fake):
    from .conftest import settings_for

    report = reconcile(settings_for(fake), synthetic_tree(1, 1, 1, links=False),
                       template=TEMPLATE)
    assert report.ok and report.writes == fake.count(writes=True)


def test_definitions_repository_is_seeded_once_and_never_rewritten(fake, sync, example_tree):
    assert sync(example_tree).ok
    path = f"{example_tree.root_full_path}/acme/konfig-control-plane"
    seeded = fake.commits(path)
    assert seeded == 1
    # The platform team's own commit: Konfig leaves the repository alone from now on.
    client = sync.client
    project = client.projects.get(path)
    project.commits.create({"branch": "main", "commit_message": "our definitions",
                            "actions": [{"action": "create", "file_path": "definitions/cp.yaml",
                                         "content": "kind: ControlPlane\n"}]})
    again = sync(example_tree)
    assert again.ok and not [r for r in again.results if r.change.kind == "repository"]
    assert fake.commits(path) == 2 and "definitions/cp.yaml" in fake.files(path)


def test_update_lines_are_plain_text_not_api_answers(fake, sync, example_tree):
    assert sync(example_tree).ok
    changed = dataclasses.replace(example_tree, projects=tuple(
        dataclasses.replace(p, description=p.description + " (renamed)")
        for p in example_tree.projects))
    report = sync(changed)
    updates = [r for r in report.results if r.change.action == "update"]
    assert updates and all(r.status == "done" for r in updates)
    assert all(not r.message.startswith("{") and "'id':" not in r.message for r in updates)
