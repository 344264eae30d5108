"""The GitLab REST v4 calls Konfig makes, through python-gitlab, as plain dicts.

One method per endpoint, named after it, so that the adapter's logic never handles
python-gitlab objects and every request it makes is visible here. Errors are translated into a
small hierarchy (:class:`NotFound`, :class:`AlreadyExists`, :class:`Unauthorized`,
:class:`Forbidden`, :class:`ApiError`) so callers can tell "converged already" from "failed".

Endpoints (https://docs.gitlab.com/api/): groups.md (get, create, update, restore, transfer,
descendant groups, projects), saml.md#saml-group-links, group_level_variables.md,
projects.md (create incl. ``use_custom_template``/``template_project_id``/
``group_with_project_templates_id``, fork, archive, restore), commits.md (create with
``actions``), branches.md, repositories.md (tree), protected_branches.md, protected_tags.md,
protected_environments.md.
"""

from __future__ import annotations

from typing import Any, Callable, TypeVar
from urllib.parse import quote

import gitlab
import gitlab.exceptions

from konfig.gitlab.transport import RetriesExhausted

T = TypeVar("T")


class ApiError(Exception):
    """A GitLab API call failed. ``status`` is the HTTP status (0: no answer)."""

    def __init__(self, message: str, status: int = 0) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


class NotFound(ApiError):
    """404: the object does not exist or the token cannot see it."""


class AlreadyExists(ApiError):
    """409, or 400 "has already been taken" / "already exists": the object is there."""


class Unauthorized(ApiError):
    """401: bad token, or (SAML group links) the feature is not enabled for the group."""


class Forbidden(ApiError):
    """403: the token lacks the role, or the tier lacks the feature."""


def _translate(err: Exception) -> ApiError:
    if isinstance(err, RetriesExhausted):
        return ApiError(str(err), err.status)
    if isinstance(err, gitlab.exceptions.GitlabError):
        status = err.response_code or 0
        message = err.error_message
        text = str(message)
        if isinstance(message, bytes):
            text = message.decode("utf-8", "replace")
        if status == 404:
            return NotFound(text, status)
        if status == 401:
            return Unauthorized(text, status)
        if status == 403:
            return Forbidden(text, status)
        if status == 409 or (status == 400 and ("already been taken" in text
                                                or "already exists" in text)):
            return AlreadyExists(text, status)
        return ApiError(f"HTTP {status}: {text}", status)
    raise err


def _call(fn: Callable[[], T]) -> T:
    try:
        return fn()
    except (gitlab.exceptions.GitlabError, RetriesExhausted) as err:
        raise _translate(err) from err


def _enc(value: str | int) -> str:
    return quote(str(value), safe="")


class GitLabApi:
    """Thin facade over a ``gitlab.Gitlab`` client. Every method makes exactly the requests
    its docstring says (lists: one request per page)."""

    def __init__(self, client: gitlab.Gitlab, per_page: int = 100) -> None:
        self.client = client
        self.per_page = per_page

    # -- reads ------------------------------------------------------------------------------

    def get_group(self, ref: str | int) -> dict[str, Any] | None:
        """``GET /groups/:id`` (without the deprecated project list); ``None`` on 404."""
        try:
            return _call(lambda: self.client.groups.get(ref, with_projects=False).attributes)
        except NotFound:
            return None

    def get_project(self, ref: str | int) -> dict[str, Any] | None:
        """``GET /projects/:id``; ``None`` on 404."""
        try:
            return _call(lambda: self.client.projects.get(ref).attributes)
        except NotFound:
            return None

    def _list(self, path: str, **params: Any) -> list[dict[str, Any]]:
        return _call(lambda: list(self.client.http_list(
            path, iterator=True, per_page=self.per_page, query_data=params)))

    def list_descendant_groups(self, group_id: int) -> list[dict[str, Any]]:
        """``GET /groups/:id/descendant_groups``, every page."""
        return self._list(f"/groups/{group_id}/descendant_groups")

    def list_group_projects(self, group_id: int) -> list[dict[str, Any]]:
        """``GET /groups/:id/projects?include_subgroups=true`` (archived ones included),
        every page."""
        return self._list(f"/groups/{group_id}/projects", include_subgroups=True,
                          with_shared=False)

    def list_saml_links(self, group_id: int) -> list[dict[str, Any]]:
        """``GET /groups/:id/saml_group_links`` (not paginated by GitLab)."""
        return _call(lambda: list(self.client.http_get(f"/groups/{group_id}/saml_group_links")))

    def list_group_variables(self, group_id: int) -> list[dict[str, Any]]:
        """``GET /groups/:id/variables``, every page."""
        return self._list(f"/groups/{group_id}/variables")

    def list_protected_branches(self, project_id: int) -> list[dict[str, Any]]:
        return self._list(f"/projects/{project_id}/protected_branches")

    def list_protected_tags(self, project_id: int) -> list[dict[str, Any]]:
        return self._list(f"/projects/{project_id}/protected_tags")

    def list_protected_environments(self, project_id: int) -> list[dict[str, Any]]:
        return self._list(f"/projects/{project_id}/protected_environments")

    def get_saml_link(self, group_id: int, name: str) -> dict[str, Any] | None:
        try:
            return _call(lambda: self.client.http_get(
                f"/groups/{group_id}/saml_group_links/{_enc(name)}"))
        except NotFound:
            return None

    def get_branch(self, project_id: int, branch: str) -> dict[str, Any] | None:
        """``GET /projects/:id/repository/branches/:branch``; ``None`` on 404."""
        try:
            return _call(lambda: self.client.http_get(
                f"/projects/{project_id}/repository/branches/{_enc(branch)}"))
        except NotFound:
            return None

    def list_tree(self, project_id: int, ref: str) -> list[dict[str, Any]]:
        """``GET /projects/:id/repository/tree?recursive=true``; ``[]`` for an empty repo."""
        try:
            return self._list(f"/projects/{project_id}/repository/tree", recursive=True, ref=ref)
        except NotFound:
            return []

    # -- groups -----------------------------------------------------------------------------

    def create_group(self, data: dict[str, Any]) -> dict[str, Any]:
        """``POST /groups`` (a subgroup: ``parent_id`` is always given)."""
        return _call(lambda: self.client.groups.create(data).attributes)

    def update_group(self, group_id: int, data: dict[str, Any]) -> dict[str, Any]:
        """``PUT /groups/:id``."""
        return _call(lambda: self.client.http_put(f"/groups/{group_id}", post_data=data))

    def restore_group(self, group_id: int) -> None:
        """``POST /groups/:id/restore`` (undo a pending delayed deletion)."""
        _call(lambda: self.client.http_post(f"/groups/{group_id}/restore"))

    def transfer_group(self, group_id: int, parent_id: int) -> None:
        """``POST /groups/:id/transfer`` with ``group_id`` (the new parent)."""
        _call(lambda: self.client.http_post(f"/groups/{group_id}/transfer",
                                            post_data={"group_id": parent_id}))

    def create_saml_link(self, group_id: int, name: str, access_level: int) -> None:
        """``POST /groups/:id/saml_group_links``."""
        _call(lambda: self.client.http_post(
            f"/groups/{group_id}/saml_group_links",
            post_data={"saml_group_name": name, "access_level": access_level}))

    def delete_saml_link(self, group_id: int, name: str) -> None:
        """``DELETE /groups/:id/saml_group_links/:saml_group_name``."""
        _call(lambda: self.client.http_delete(
            f"/groups/{group_id}/saml_group_links/{_enc(name)}"))

    def create_group_variable(self, group_id: int, data: dict[str, Any]) -> None:
        """``POST /groups/:id/variables``."""
        _call(lambda: self.client.http_post(f"/groups/{group_id}/variables", post_data=data))

    def update_group_variable(self, group_id: int, key: str, scope: str,
                              data: dict[str, Any]) -> None:
        """``PUT /groups/:id/variables/:key?filter[environment_scope]=scope``."""
        _call(lambda: self.client.http_put(
            f"/groups/{group_id}/variables/{_enc(key)}",
            query_data={"filter[environment_scope]": scope}, post_data=data))

    def delete_group_variable(self, group_id: int, key: str, scope: str) -> None:
        """``DELETE /groups/:id/variables/:key?filter[environment_scope]=scope``."""
        _call(lambda: self.client.http_delete(
            f"/groups/{group_id}/variables/{_enc(key)}",
            **{"filter[environment_scope]": scope}))

    # -- projects ---------------------------------------------------------------------------

    def create_project(self, data: dict[str, Any]) -> dict[str, Any]:
        """``POST /projects``."""
        return _call(lambda: self.client.projects.create(data).attributes)

    def fork_project(self, source_id: int, data: dict[str, Any]) -> dict[str, Any]:
        """``POST /projects/:id/fork``."""
        return _call(lambda: self.client.http_post(f"/projects/{source_id}/fork", post_data=data))

    def delete_fork_relation(self, project_id: int) -> None:
        """``DELETE /projects/:id/fork``."""
        _call(lambda: self.client.http_delete(f"/projects/{project_id}/fork"))

    def update_project(self, project_id: int, data: dict[str, Any]) -> dict[str, Any]:
        """``PUT /projects/:id``."""
        return _call(lambda: self.client.http_put(f"/projects/{project_id}", post_data=data))

    def archive_project(self, project_id: int) -> None:
        """``POST /projects/:id/archive`` (idempotent)."""
        _call(lambda: self.client.http_post(f"/projects/{project_id}/archive"))

    def unarchive_project(self, project_id: int) -> None:
        """``POST /projects/:id/unarchive`` (idempotent)."""
        _call(lambda: self.client.http_post(f"/projects/{project_id}/unarchive"))

    def restore_project(self, project_id: int) -> None:
        """``POST /projects/:id/restore``."""
        _call(lambda: self.client.http_post(f"/projects/{project_id}/restore"))

    def create_commit(self, project_id: int, branch: str, message: str,
                      actions: list[dict[str, Any]]) -> dict[str, Any]:
        """``POST /projects/:id/repository/commits`` with ``actions``."""
        return _call(lambda: self.client.http_post(
            f"/projects/{project_id}/repository/commits",
            post_data={"branch": branch, "commit_message": message, "actions": actions}))

    def protect_branch(self, project_id: int, data: dict[str, Any]) -> None:
        """``POST /projects/:id/protected_branches``."""
        _call(lambda: self.client.http_post(f"/projects/{project_id}/protected_branches",
                                            post_data=data))

    def unprotect_branch(self, project_id: int, name: str) -> None:
        _call(lambda: self.client.http_delete(
            f"/projects/{project_id}/protected_branches/{_enc(name)}"))

    def protect_tag(self, project_id: int, data: dict[str, Any]) -> None:
        """``POST /projects/:id/protected_tags``."""
        _call(lambda: self.client.http_post(f"/projects/{project_id}/protected_tags",
                                            post_data=data))

    def unprotect_tag(self, project_id: int, name: str) -> None:
        _call(lambda: self.client.http_delete(
            f"/projects/{project_id}/protected_tags/{_enc(name)}"))

    def protect_environment(self, project_id: int, data: dict[str, Any]) -> None:
        """``POST /projects/:id/protected_environments``."""
        _call(lambda: self.client.http_post(f"/projects/{project_id}/protected_environments",
                                            post_data=data))

    def unprotect_environment(self, project_id: int, name: str) -> None:
        _call(lambda: self.client.http_delete(
            f"/projects/{project_id}/protected_environments/{_enc(name)}"))
