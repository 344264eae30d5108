"""The fake GitLab server, checked through the real python-gitlab client over HTTP: the REST
shapes and status codes the adapter relies on."""

from __future__ import annotations

import time

import gitlab
import pytest

from konfig.sandbox.fake_gitlab import FakeGitLab, _Ctx

from .conftest import TOKEN


@pytest.fixture
def gl(fake: FakeGitLab) -> gitlab.Gitlab:
    return gitlab.Gitlab(fake.url, private_token=TOKEN, per_page=100)


def _group(gl: gitlab.Gitlab, path: str, parent: str, **extra):
    parent_id = gl.groups.get(parent).id
    return gl.groups.create({"name": path.upper(), "path": path, "parent_id": parent_id, **extra})


def test_paths_are_unique_per_parent_across_groups_and_projects(gl):
    _group(gl, "cp", "acme")
    cp = gl.groups.get("acme/cp")
    gl.projects.create({"name": "app", "path": "app", "namespace_id": cp.id})
    with pytest.raises(gitlab.GitlabCreateError) as taken_by_group:
        _group(gl, "cp", "acme")
    assert taken_by_group.value.response_code == 400
    assert taken_by_group.value.error_message == \
        'Failed to save group {:path=>["has already been taken"]}'
    with pytest.raises(gitlab.GitlabCreateError) as taken_by_project:
        _group(gl, "app", "acme/cp")
    assert "has already been taken" in str(taken_by_project.value.error_message)
    _group(gl, "lib", "acme/cp")
    with pytest.raises(gitlab.GitlabCreateError) as project_on_group:
        gl.projects.create({"name": "Library", "path": "lib", "namespace_id": cp.id})
    assert project_on_group.value.response_code == 400
    assert project_on_group.value.error_message == {"path": ["has already been taken"]}
    # Same path under another parent is fine.
    _group(gl, "other", "acme")
    _group(gl, "lib", "acme/other")


def test_full_path_composition_and_lookups_by_id_or_encoded_path(gl, fake):
    cp = _group(gl, "cp", "acme")
    _group(gl, "retail", "acme/cp")
    domain = _group(gl, "shop", "acme/cp/retail")
    project = gl.projects.create({"name": "api", "path": "api", "namespace_id": domain.id})
    assert domain.full_path == "acme/cp/retail/shop"
    assert project.path_with_namespace == "acme/cp/retail/shop/api"
    assert gl.groups.get("acme/cp/retail/shop").id == domain.id
    assert gl.projects.get("acme/cp/retail/shop/api").id == project.id
    assert gl.projects.get(project.id).namespace["full_path"] == "acme/cp/retail/shop"
    assert fake.requests[-1].path.endswith(f"/projects/{project.id}")
    gl.http_get("/projects/acme%2Fcp%2Fretail%2Fshop%2Fapi")
    # Renaming a parent's path re-composes every full path below it.
    gl.http_put(f"/groups/{cp.id}", post_data={"path": "control"})
    assert gl.projects.get(project.id).path_with_namespace == "acme/control/retail/shop/api"
    with pytest.raises(gitlab.GitlabGetError):
        gl.groups.get("acme/cp/retail/shop")


def test_invisible_objects_are_404_and_bad_tokens_401(fake, gl):
    fake.seed_group("secret", owner="someone-else")
    fake.seed_project("secret/vault")
    with pytest.raises(gitlab.GitlabGetError) as group:
        gl.groups.get("secret")
    assert (group.value.response_code, group.value.error_message) == (404, "404 Group Not Found")
    with pytest.raises(gitlab.GitlabGetError) as project:
        gl.projects.get("secret/vault")
    assert project.value.error_message == "404 Project Not Found"
    stranger = gitlab.Gitlab(fake.url, private_token="nope")
    with pytest.raises(gitlab.GitlabAuthenticationError) as unauth:
        stranger.groups.get("acme")
    assert unauth.value.response_code == 401


def test_top_level_group_creation_is_refused_like_gitlab_com(gl):
    with pytest.raises(gitlab.GitlabCreateError) as refused:
        gl.groups.create({"name": "new-top", "path": "new-top"})
    assert refused.value.response_code == 403


def test_pagination_headers_and_links(gl, fake):
    root = gl.groups.get("acme")
    for i in range(7):
        gl.groups.create({"name": f"g{i}", "path": f"g{i}", "parent_id": root.id})
    response = gl.http_get(f"/groups/{root.id}/descendant_groups", query_data={"per_page": 3,
                                                                               "page": 2}, raw=True)
    headers = response.headers
    assert (headers["x-page"], headers["x-per-page"], headers["x-next-page"],
            headers["x-prev-page"], headers["x-total"], headers["x-total-pages"]) == \
        ("2", "3", "3", "1", "7", "3")
    assert set(response.links) == {"next", "prev", "first", "last"}
    assert "page=3" in response.links["next"]["url"]
    assert [g["path"] for g in response.json()] == ["g3", "g4", "g5"]
    last = gl.http_get(f"/groups/{root.id}/descendant_groups",
                       query_data={"per_page": 3, "page": 3}, raw=True)
    assert last.headers["x-next-page"] == "" and "next" not in last.links
    fake.reset_log()
    listed = gl.groups.get(root.id, lazy=True).descendant_groups.list(get_all=True, per_page=2)
    assert len(listed) == 7
    assert fake.count(route="descendant_groups") == 4  # pages, following rel="next"


def test_totals_are_omitted_past_ten_thousand_rows(fake):
    ctx = _Ctx(fake, None, {"per_page": ["100"]}, {}, "http://x", "/api/v4/groups/1/projects")
    ctx.paginate(list(range(10_001)))
    assert "x-total" not in ctx.headers and 'rel="last"' not in ctx.headers["Link"]
    assert ctx.headers["x-next-page"] == "2"


def test_saml_links_need_premium_and_saml_enabled():
    for options in ({"tier": "free"}, {"saml_enabled": False}):
        with FakeGitLab(**options) as server:
            server.add_token(TOKEN)
            server.seed_group("acme")
            client = gitlab.Gitlab(server.url, private_token=TOKEN)
            with pytest.raises(gitlab.GitlabAuthenticationError) as refused:
                client.http_get("/groups/acme/saml_group_links")
            assert refused.value.response_code == 401


def test_saml_links_have_no_update_and_delete_by_name(gl):
    group = _group(gl, "cp", "acme")
    links = gl.groups.get(group.id, lazy=True).saml_group_links
    links.create({"saml_group_name": "devs", "access_level": 30})
    with pytest.raises(gitlab.GitlabCreateError) as duplicate:
        links.create({"saml_group_name": "devs", "access_level": 40})
    assert duplicate.value.response_code == 400
    links.delete("devs")
    assert links.list() == []


def test_template_import_is_asynchronous_and_copies_protections(gl, fake):
    cp = _group(gl, "acme", "acme")
    template = gl.projects.create({"name": "tpl", "path": "tpl", "namespace_id": cp.id})
    template.protectedbranches.create({"name": "main", "push_access_level": 40,
                                       "merge_access_level": 30})
    template.commits.create({"branch": "main", "commit_message": "init", "actions": [
        {"action": "create", "file_path": "app/main.py", "content": "print()"}]})
    fake.import_delay = 0.3
    project = gl.projects.create({
        "name": "w", "path": "w", "namespace_id": cp.id, "use_custom_template": True,
        "template_project_id": template.id, "group_with_project_templates_id": cp.id})
    assert project.import_status == "scheduled"
    assert gl.projects.get(project.id).empty_repo is True
    assert fake.protections("acme/acme/w")["branches"] == {}
    deadline = time.monotonic() + 5
    while gl.projects.get(project.id).import_status != "finished":
        assert time.monotonic() < deadline
        time.sleep(0.05)
    assert fake.files("acme/acme/w") == {"app/main.py": "print()"}
    assert fake.protections("acme/acme/w")["branches"]["main"]["merge_access_levels"][0][
        "access_level"] == 30


def test_custom_template_refused_when_not_configured(gl, fake):
    other = _group(gl, "other", "acme")
    template = gl.projects.create({"name": "tpl", "path": "tpl", "namespace_id": other.id})
    with pytest.raises(gitlab.GitlabCreateError) as refused:
        gl.projects.create({"name": "w", "path": "w", "namespace_id": other.id,
                            "use_custom_template": True, "template_project_id": template.id,
                            "group_with_project_templates_id": other.id})
    assert refused.value.error_message == {
        "template_project_id": [f"{template.id} is unknown or invalid"]}


def test_delayed_deletion_and_restore(gl, fake):
    group = _group(gl, "cp", "acme")
    project = gl.projects.create({"name": "p", "path": "p", "namespace_id": group.id})
    response = gl.http_delete(f"/projects/{project.id}")
    assert response.status_code == 202
    assert gl.projects.get(project.id).marked_for_deletion_on
    gl.http_post(f"/projects/{project.id}/restore")
    assert gl.projects.get(project.id).marked_for_deletion_on is None
    gl.http_delete(f"/groups/{group.id}")
    assert gl.groups.get(group.id).marked_for_deletion_on
    assert fake.purge_deletions() == 2
    with pytest.raises(gitlab.GitlabGetError):
        gl.groups.get(group.id)


def test_variables_with_environment_scopes(gl):
    group = _group(gl, "cp", "acme")
    for scope in ("dev", "prod"):
        gl.http_post(f"/groups/{group.id}/variables",
                     post_data={"key": "K", "value": f"v-{scope}", "environment_scope": scope})
    with pytest.raises(gitlab.GitlabHttpError) as ambiguous:
        gl.http_get(f"/groups/{group.id}/variables/K")
    assert ambiguous.value.response_code == 409
    got = gl.http_get(f"/groups/{group.id}/variables/K",
                      query_data={"filter[environment_scope]": "prod"})
    assert got["value"] == "v-prod"
    with pytest.raises(gitlab.GitlabHttpError) as masked:
        gl.http_post(f"/groups/{group.id}/variables",
                     post_data={"key": "S", "value": "short", "masked": True})
    assert masked.value.response_code == 400


def test_faults_and_request_log(gl, fake):
    fake.inject_fault(429, method="GET", route=r"^/groups/acme$", retry_after=0, times=2)
    fake.reset_log()
    assert gl.groups.get("acme").path == "acme"  # python-gitlab obeys 429 by itself
    assert [r.status for r in fake.requests] == [429, 429, 200]
    root = gl.groups.get("acme")
    fake.inject_fault(500, method="POST", route=r"^/groups$", after_commit=True)
    with pytest.raises(gitlab.GitlabCreateError):
        gl.groups.create({"name": "x", "path": "x", "parent_id": root.id})
    assert fake.group("acme/x") is not None  # the write happened; the answer was lost
    assert fake.requests[-1].fault == "after_commit"
