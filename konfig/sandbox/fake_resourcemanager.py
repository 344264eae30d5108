"""A stateful fake of the Google Cloud REST APIs that ``konfig bootstrap`` and ``konfig doctor``
call, served over HTTP on 127.0.0.1 for the real ``google-cloud-*`` clients (``transport="rest"``,
``AnonymousCredentials``, ``api_endpoint="http://127.0.0.1:PORT"``).

One server answers three APIs, because API enablement and billing linkage are state of the
projects the fake holds:

* Cloud Resource Manager v3 (https://cloud.google.com/resource-manager/reference/rest):
  organizations get / testIamPermissions; folders get / list / create (a long-running
  operation) / getIamPolicy / setIamPolicy / testIamPermissions; projects get / create / patch
  (long-running) / testIamPermissions; ``GET /v3/operations/**``.
* Service Usage v1 (https://cloud.google.com/service-usage/docs/reference/rest):
  ``services:batchGet``, ``services:batchEnable`` (long-running), ``GET /v1/operations/*``.
* Cloud Billing v1 (https://cloud.google.com/billing/docs/reference/rest): billing account
  get / getIamPolicy / setIamPolicy / testIamPermissions, project ``billingInfo`` get / put.

Requests and responses are the APIs' JSON mappings of their protobuf messages, produced and
parsed with the client libraries' own message types (``google.protobuf.json_format``), so the
field names, enum encodings (``$alt=json;enum-encoding=int`` is honoured) and ``Any`` payloads of
operations are the real ones. Errors use Google's JSON error body
(``{"error": {"code", "message", "status"}}``).

Behaviour copied from the real services, because Konfig's adapter must cope with it:

* long-running operations finish after ``operation_polls`` polls (0 = done at once); the folder
  or project only becomes visible when its operation is done;
* a folder's display name is unique among its active siblings (``FAILED_PRECONDITION``);
* getting a project that does not exist answers 403 ``PERMISSION_DENIED``, as GCP does not tell
  callers whether a project ID exists;
* ``setIamPolicy`` with a stale ``etag`` answers 409 ``ABORTED``;
* enabling a billable API in a project without billing answers ``FAILED_PRECONDITION``;
  enabling ``container.googleapis.com`` also enables ``compute.googleapis.com`` (its dependency).

Faults are injectable (:meth:`FakeResourceManager.fail_next`, :meth:`deny_permissions`,
:meth:`hide`, :meth:`concurrent_policy_change`) and every call is recorded in :attr:`calls`.
"""

from __future__ import annotations

import base64
import json
import re
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable
from urllib.parse import parse_qs, urlsplit

from google.cloud import billing_v1, resourcemanager_v3, service_usage_v1
from google.iam.v1 import iam_policy_pb2, policy_pb2
from google.longrunning import operations_pb2
from google.protobuf import json_format, timestamp_pb2
from google.protobuf.message import Message

#: Services that need a billing account before they can be enabled (a sample: enough for the
#: fake to show the ordering problem; the real list is every billable service).
BILLABLE_SERVICES = frozenset(
    {"compute.googleapis.com", "container.googleapis.com", "artifactregistry.googleapis.com"}
)
#: Services enabled together with the key (a dependency the real Service Usage resolves).
SERVICE_DEPENDENCIES = {"container.googleapis.com": ("compute.googleapis.com",)}
#: Limits of Service Usage (https://cloud.google.com/service-usage/docs/reference/rest/v1/services).
MAX_BATCH_ENABLE, MAX_BATCH_GET = 20, 30

_FOLDER_DISPLAY_NAME = re.compile(r"^[\w]([\w _-]{0,28}[\w])?$")
_PROJECT_ID = re.compile(r"^[a-z][-a-z0-9]{4,28}[a-z0-9]$")

#: ``(project_id, project_number, service)``; called when a service becomes enabled.
ServiceHook = Callable[[str, str, str], None]


class FakeError(Exception):
    """An error the fake answers with: HTTP status, canonical status name, message."""

    def __init__(self, http_status: int, status: str, message: str) -> None:
        super().__init__(message)
        self.http_status, self.status, self.message = http_status, status, message


@dataclass
class _Fault:
    http_status: int
    status: str
    message: str
    times: int


@dataclass
class _PendingOperation:
    """An operation whose effect is applied when it is reported done."""

    name: str
    polls_left: int
    metadata: Message
    finish: Callable[[], Message]  # applies the change, returns the response message
    reserves: str = ""  # "folder:<parent>:<display name>" or "project:<id>" while pending
    result: operations_pb2.Operation | None = None


@dataclass
class _Route:
    method: str
    pattern: re.Pattern[str]
    rpc: str
    handler: Callable[..., tuple[int, Any]]


@dataclass
class _State:
    organizations: dict[str, str] = field(default_factory=dict)  # name -> display name
    folders: dict[str, resourcemanager_v3.Folder] = field(default_factory=dict)
    projects: dict[str, resourcemanager_v3.Project] = field(default_factory=dict)  # by number
    services: dict[str, set[str]] = field(default_factory=dict)  # project number -> enabled
    billing_accounts: dict[str, bool] = field(default_factory=dict)  # name -> open
    billing: dict[str, str] = field(default_factory=dict)  # project id -> billing account name
    policies: dict[str, policy_pb2.Policy] = field(default_factory=dict)
    operations: dict[str, _PendingOperation] = field(default_factory=dict)


class FakeResourceManager:
    """The fake server. ``start()`` binds an ephemeral port on 127.0.0.1; :attr:`endpoint` is
    the ``api_endpoint`` to give the clients (``http://127.0.0.1:PORT``); ``stop()`` shuts down.

    ``organizations``: organization names that exist (``organizations/N``);
    ``billing_accounts``: ``{"012345-6789AB-CDEF01": open}``; ``operation_polls``: polls of
    ``GET operations/...`` answered ``done: false`` before an operation completes;
    ``page_size``: largest page of ``folders.list``; ``on_service_enabled``: hook called with
    ``(project_id, project_number, service)`` (the sandbox wires it to the IAM fake so that
    enabling Compute Engine creates the default service account, as GCP does).
    """

    def __init__(
        self,
        *,
        organizations: tuple[str, ...] = ("organizations/123456789012",),
        billing_accounts: dict[str, bool] | None = None,
        operation_polls: int = 1,
        page_size: int = 100,
        on_service_enabled: ServiceHook | None = None,
    ) -> None:
        self.operation_polls = operation_polls
        self.page_size = page_size
        self.on_service_enabled = on_service_enabled
        self.calls: list[str] = []
        self._lock = threading.RLock()
        self._state = _State()
        self._state.organizations = {name: f"org {name.split('/')[1]}" for name in organizations}
        accounts = (
            billing_accounts if billing_accounts is not None else {"012345-6789AB-CDEF01": True}
        )
        self._state.billing_accounts = {f"billingAccounts/{a}": o for a, o in accounts.items()}
        self._faults: dict[str, list[_Fault]] = {}
        self._denied: dict[str, set[str]] = {}
        self._hidden: set[str] = set()
        self._conflicts: dict[str, tuple[str, str]] = {}
        self._counter = 1000
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._routes = self._build_routes()

    # ----------------------------------------------------------------- lifecycle

    def start(self) -> "FakeResourceManager":
        """Serve on an ephemeral port of 127.0.0.1 in a daemon thread; returns ``self``."""
        fake = self

        class Handler(_Handler):
            owner = fake

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and release the port."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> "FakeResourceManager":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def port(self) -> int:
        assert self._server is not None, "call start() first"
        return self._server.server_address[1]

    @property
    def endpoint(self) -> str:
        """``http://127.0.0.1:PORT``: the ``api_endpoint`` for the REST clients."""
        return f"http://127.0.0.1:{self.port}"

    # ----------------------------------------------------------------- seeding and inspection

    def add_folder(self, parent: str, display_name: str) -> str:
        """Create an active folder at once (no operation); returns its name ``folders/N``."""
        with self._lock:
            self._require_container(parent)
            folder = resourcemanager_v3.Folder(
                name=f"folders/{self._next_id()}",
                parent=parent,
                display_name=display_name,
                state=resourcemanager_v3.Folder.State.ACTIVE,
                create_time=_now(),
                etag=self._new_etag_text(),
            )
            self._state.folders[folder.name] = folder
            return folder.name

    def add_project(
        self, project_id: str, parent: str, labels: dict[str, str] | None = None
    ) -> str:
        """Create an active project at once; returns its project number."""
        with self._lock:
            project = self._new_project(project_id, parent, labels or {}, "")
            self._state.projects[project.name.split("/")[1]] = project
            return project.name.split("/")[1]

    def add_billing_account(self, account: str, open_: bool = True) -> None:
        """Make ``billingAccounts/<account>`` exist (open or closed)."""
        with self._lock:
            self._state.billing_accounts[f"billingAccounts/{account}"] = open_

    def link_billing(self, project_id: str, account: str) -> None:
        """Link ``project_id`` to ``billingAccounts/<account>`` at once."""
        with self._lock:
            self._state.billing[project_id] = f"billingAccounts/{account}"

    def enable_services(self, project_id: str, services: list[str]) -> None:
        """Mark services enabled in a project (no billing check, no hooks)."""
        with self._lock:
            number = self._project(f"projects/{project_id}").name.split("/")[1]
            self._state.services.setdefault(number, set()).update(services)

    def folders(self) -> list[resourcemanager_v3.Folder]:
        """Every folder, in creation order."""
        with self._lock:
            return list(self._state.folders.values())

    def projects(self) -> list[resourcemanager_v3.Project]:
        """Every project, in creation order."""
        with self._lock:
            return list(self._state.projects.values())

    def enabled_services(self, project_id: str) -> set[str]:
        """Services enabled in a project (by project ID)."""
        with self._lock:
            number = self._project(f"projects/{project_id}").name.split("/")[1]
            return set(self._state.services.get(number, set()))

    def billing_account_of(self, project_id: str) -> str | None:
        """``billingAccounts/X`` linked to the project, or None."""
        with self._lock:
            return self._state.billing.get(project_id) or None

    def bindings(self, resource: str) -> dict[str, set[str]]:
        """Unconditional bindings of a resource's IAM policy: role -> members."""
        with self._lock:
            policy = self._state.policies.get(resource, policy_pb2.Policy())
            return {b.role: set(b.members) for b in policy.bindings if not b.HasField("condition")}

    def add_binding(self, resource: str, role: str, member: str) -> None:
        """Add one member to a role on a resource's policy, changing its etag."""
        with self._lock:
            policy = self._policy(resource)
            _add_member(policy, role, member)
            policy.etag = self._new_etag()

    # ----------------------------------------------------------------- faults

    def fail_next(
        self, rpc: str, http_status: int, status: str, message: str = "injected", times: int = 1
    ) -> None:
        """Answer the next ``times`` calls of ``rpc`` (``CreateFolder``, ``SetIamPolicy``,
        ``BatchEnableServices``, ...: the names in :attr:`calls`) with this error."""
        with self._lock:
            self._faults.setdefault(rpc, []).append(_Fault(http_status, status, message, times))

    def deny_permissions(self, resource: str, permissions: list[str]) -> None:
        """``testIamPermissions`` on ``resource`` will not return these permissions."""
        with self._lock:
            self._denied.setdefault(resource, set()).update(permissions)

    def hide(self, resource: str) -> None:
        """Reads of ``resource`` (an organization, folder or billing account) answer 403."""
        with self._lock:
            self._hidden.add(resource)

    def concurrent_policy_change(self, resource: str, role: str, member: str) -> None:
        """Simulate another writer: just before the next ``setIamPolicy`` on ``resource`` is
        applied, add ``member`` to ``role`` and change the etag, so a read-modify-write that
        read the old policy gets 409 ``ABORTED``."""
        with self._lock:
            self._conflicts[resource] = (role, member)

    # ----------------------------------------------------------------- request dispatch

    def _build_routes(self) -> list[_Route]:
        r = _Route
        n = r"([^/:]+)"
        return [
            # Resource Manager v3
            r(
                "GET",
                re.compile(rf"^/v3/organizations/{n}$"),
                "GetOrganization",
                self._get_organization,
            ),
            r(
                "POST",
                re.compile(rf"^/v3/((?:organizations|folders|projects)/{n}):testIamPermissions$"),
                "TestIamPermissions",
                self._test_permissions,
            ),
            r(
                "POST",
                re.compile(rf"^/v3/((?:organizations|folders|projects)/{n}):getIamPolicy$"),
                "GetIamPolicy",
                self._get_policy,
            ),
            r(
                "POST",
                re.compile(rf"^/v3/((?:organizations|folders|projects)/{n}):setIamPolicy$"),
                "SetIamPolicy",
                self._set_policy,
            ),
            r("GET", re.compile(r"^/v3/folders$"), "ListFolders", self._list_folders),
            r("POST", re.compile(r"^/v3/folders$"), "CreateFolder", self._create_folder),
            r("GET", re.compile(rf"^/v3/folders/{n}$"), "GetFolder", self._get_folder),
            r("POST", re.compile(r"^/v3/projects$"), "CreateProject", self._create_project),
            r("GET", re.compile(rf"^/v3/projects/{n}$"), "GetProject", self._get_project),
            r("PATCH", re.compile(rf"^/v3/projects/{n}$"), "UpdateProject", self._update_project),
            r("GET", re.compile(r"^/v3/(operations/.+)$"), "GetOperation", self._get_operation),
            # Service Usage v1
            r(
                "GET",
                re.compile(rf"^/v1/projects/{n}/services:batchGet$"),
                "BatchGetServices",
                self._batch_get_services,
            ),
            r(
                "POST",
                re.compile(rf"^/v1/projects/{n}/services:batchEnable$"),
                "BatchEnableServices",
                self._batch_enable_services,
            ),
            r("GET", re.compile(r"^/v1/(operations/[^/]+)$"), "GetOperation", self._get_operation),
            # Cloud Billing v1
            r(
                "GET",
                re.compile(rf"^/v1/(billingAccounts/{n})$"),
                "GetBillingAccount",
                self._get_billing_account,
            ),
            r(
                "GET",
                re.compile(rf"^/v1/(billingAccounts/{n}):getIamPolicy$"),
                "GetIamPolicy",
                self._get_policy,
            ),
            r(
                "POST",
                re.compile(rf"^/v1/(billingAccounts/{n}):setIamPolicy$"),
                "SetIamPolicy",
                self._set_policy,
            ),
            r(
                "POST",
                re.compile(rf"^/v1/(billingAccounts/{n}):testIamPermissions$"),
                "TestIamPermissions",
                self._test_permissions,
            ),
            r(
                "GET",
                re.compile(rf"^/v1/projects/{n}/billingInfo$"),
                "GetProjectBillingInfo",
                self._get_billing_info,
            ),
            r(
                "PUT",
                re.compile(rf"^/v1/projects/{n}/billingInfo$"),
                "UpdateProjectBillingInfo",
                self._put_billing_info,
            ),
        ]

    def dispatch(self, method: str, url: str, body: bytes) -> tuple[int, dict[str, Any]]:
        """Answer one HTTP request: ``(status, JSON body)``."""
        parts = urlsplit(url)
        query = parse_qs(parts.query, keep_blank_values=True)
        ints = "enum-encoding=int" in ",".join(query.get("$alt", []))
        for route in self._routes:
            match = route.pattern.match(parts.path) if route.method == method else None
            if not match:
                continue
            with self._lock:
                self.calls.append(route.rpc)
                try:
                    self._maybe_fail(route.rpc)
                    status, payload = route.handler(*match.groups(), query=query, body=body)
                except FakeError as err:
                    return err.http_status, _error_body(err)
                except Exception as err:  # a bug in the fake: answer it, do not hang the client
                    return 500, _error_body(FakeError(500, "INTERNAL", f"fake failed: {err!r}"))
                return status, json_format.MessageToDict(payload, use_integers_for_enums=ints)
        return 404, _error_body(FakeError(404, "NOT_FOUND", f"no route for {method} {parts.path}"))

    def _maybe_fail(self, rpc: str) -> None:
        queue = self._faults.get(rpc)
        if not queue:
            return
        fault = queue[0]
        fault.times -= 1
        if fault.times <= 0:
            queue.pop(0)
        raise FakeError(fault.http_status, fault.status, fault.message)

    # ----------------------------------------------------------------- organizations and folders

    def _get_organization(self, org_id: str, **_: Any) -> tuple[int, Message]:
        name = f"organizations/{org_id}"
        if name not in self._state.organizations or name in self._hidden:
            raise _denied(name)
        org = resourcemanager_v3.Organization(
            name=name,
            display_name=self._state.organizations[name],
            state=resourcemanager_v3.Organization.State.ACTIVE,
        )
        return 200, resourcemanager_v3.Organization.pb(org)

    def _get_folder(self, folder_id: str, **_: Any) -> tuple[int, Message]:
        return 200, resourcemanager_v3.Folder.pb(self._folder(f"folders/{folder_id}"))

    def _list_folders(self, *, query: dict[str, list[str]], **_: Any) -> tuple[int, Message]:
        parent = _one(query, "parent")
        self._require_container(parent)
        show_deleted = _one(query, "showDeleted", "false") == "true"
        children = [
            f
            for f in self._state.folders.values()
            if f.parent == parent
            and (show_deleted or f.state == resourcemanager_v3.Folder.State.ACTIVE)
        ]
        children.sort(key=lambda f: f.display_name)
        size = min(int(_one(query, "pageSize", "0") or 0) or self.page_size, self.page_size)
        start = int(_one(query, "pageToken", "0") or 0)
        page = children[start : start + size]
        response = resourcemanager_v3.ListFoldersResponse(folders=page)
        if start + size < len(children):
            response.next_page_token = str(start + size)
        return 200, resourcemanager_v3.ListFoldersResponse.pb(response)

    def _create_folder(self, *, body: bytes, **_: Any) -> tuple[int, Message]:
        folder = _parse(body, resourcemanager_v3.Folder)
        self._require_container(folder.parent)
        if not _FOLDER_DISPLAY_NAME.match(folder.display_name):
            raise FakeError(
                400, "INVALID_ARGUMENT", f"invalid display name {folder.display_name!r}"
            )
        taken = {
            f.display_name
            for f in self._state.folders.values()
            if f.parent == folder.parent and f.state == resourcemanager_v3.Folder.State.ACTIVE
        }
        reservation = f"folder:{folder.parent}:{folder.display_name}"
        if folder.display_name in taken or reservation in self._reservations():
            raise FakeError(
                400,
                "FAILED_PRECONDITION",
                f"A folder with display name {folder.display_name!r} already exists under "
                f"{folder.parent}.",
            )
        created = resourcemanager_v3.Folder(
            name=f"folders/{self._next_id()}",
            parent=folder.parent,
            display_name=folder.display_name,
            state=resourcemanager_v3.Folder.State.ACTIVE,
            create_time=_now(),
            etag=self._new_etag_text(),
        )

        def finish() -> Message:
            self._state.folders[created.name] = created
            return resourcemanager_v3.Folder.pb(created)

        metadata = resourcemanager_v3.CreateFolderMetadata.pb(
            resourcemanager_v3.CreateFolderMetadata(
                display_name=folder.display_name, parent=folder.parent
            )
        )
        return 200, self._start_operation("operations/cf", metadata, finish, reservation)

    # ----------------------------------------------------------------- projects

    def _create_project(self, *, body: bytes, **_: Any) -> tuple[int, Message]:
        wanted = _parse(body, resourcemanager_v3.Project)
        if not _PROJECT_ID.match(wanted.project_id):
            raise FakeError(400, "INVALID_ARGUMENT", f"invalid project ID {wanted.project_id!r}")
        reservation = f"project:{wanted.project_id}"
        known_ids = {p.project_id for p in self._state.projects.values()}
        if wanted.project_id in known_ids or reservation in self._reservations():
            raise FakeError(409, "ALREADY_EXISTS", "Requested entity already exists")
        self._require_container(wanted.parent)
        project = self._new_project(
            wanted.project_id, wanted.parent, dict(wanted.labels), wanted.display_name
        )

        def finish() -> Message:
            self._state.projects[project.name.split("/")[1]] = project
            return resourcemanager_v3.Project.pb(project)

        metadata = resourcemanager_v3.CreateProjectMetadata.pb(
            resourcemanager_v3.CreateProjectMetadata(gettable=True, ready=False)
        )
        return 200, self._start_operation("operations/cp", metadata, finish, reservation)

    def _get_project(self, key: str, **_: Any) -> tuple[int, Message]:
        return 200, resourcemanager_v3.Project.pb(self._project(f"projects/{key}"))

    def _update_project(self, key: str, *, query: dict[str, list[str]], body: bytes, **_: Any):
        project = self._project(f"projects/{key}")
        patch = _parse(body, resourcemanager_v3.Project)
        mask = [p for p in _one(query, "updateMask", "").split(",") if p]
        if not mask:
            raise FakeError(400, "INVALID_ARGUMENT", "updateMask is required")
        unknown = set(mask) - {"labels", "displayName", "display_name"}
        if unknown:
            raise FakeError(400, "INVALID_ARGUMENT", f"cannot update {sorted(unknown)}")

        def finish() -> Message:
            if "labels" in mask:
                project.labels.clear()
                project.labels.update(dict(patch.labels))
            if {"displayName", "display_name"} & set(mask):
                project.display_name = patch.display_name
            project.etag = self._new_etag_text()
            return resourcemanager_v3.Project.pb(project)

        metadata = resourcemanager_v3.UpdateProjectMetadata.pb(
            resourcemanager_v3.UpdateProjectMetadata()
        )
        return 200, self._start_operation("operations/up", metadata, finish)

    # ----------------------------------------------------------------- IAM policies

    def _get_policy(self, resource: str, _id: str, **_: Any) -> tuple[int, Message]:
        self._require_readable(resource)
        return 200, self._policy(resource)

    def _set_policy(self, resource: str, _id: str, *, body: bytes, **_: Any) -> tuple[int, Message]:
        self._require_readable(resource)
        request = json_format.Parse(
            body or b"{}", iam_policy_pb2.SetIamPolicyRequest(), ignore_unknown_fields=True
        )
        current = self._policy(resource)
        if resource in self._conflicts:
            role, member = self._conflicts.pop(resource)
            _add_member(current, role, member)
            current.etag = self._new_etag()
        if request.policy.etag and request.policy.etag != current.etag:
            raise FakeError(
                409,
                "ABORTED",
                "There were concurrent policy changes. Please retry the whole read-modify-write "
                "with exponential backoff.",
            )
        new = policy_pb2.Policy()
        new.CopyFrom(request.policy)
        if any(b.HasField("condition") for b in new.bindings) and new.version < 3:
            raise FakeError(400, "INVALID_ARGUMENT", "conditional bindings need policy version 3")
        new.etag = self._new_etag()
        self._state.policies[resource] = new
        return 200, new

    def _test_permissions(self, resource: str, _id: str, *, body: bytes, **_: Any):
        self._require_readable(resource)
        request = json_format.Parse(
            body or b"{}", iam_policy_pb2.TestIamPermissionsRequest(), ignore_unknown_fields=True
        )
        denied = self._denied.get(resource, set())
        granted = [p for p in request.permissions if p not in denied]
        return 200, iam_policy_pb2.TestIamPermissionsResponse(permissions=granted)

    # ----------------------------------------------------------------- Service Usage

    def _batch_get_services(self, key: str, *, query: dict[str, list[str]], **_: Any):
        project = self._project(f"projects/{key}")
        names = query.get("names", [])
        if len(names) > MAX_BATCH_GET:
            raise FakeError(400, "INVALID_ARGUMENT", f"at most {MAX_BATCH_GET} names per request")
        number = project.name.split("/")[1]
        enabled = self._state.services.get(number, set())
        services = []
        for name in names:
            service = name.rsplit("/", 1)[-1]
            state = (
                service_usage_v1.State.ENABLED
                if service in enabled
                else service_usage_v1.State.DISABLED
            )
            services.append(
                service_usage_v1.Service(
                    name=f"projects/{number}/services/{service}",
                    parent=f"projects/{number}",
                    config=service_usage_v1.ServiceConfig(name=service),
                    state=state,
                )
            )
        return 200, service_usage_v1.BatchGetServicesResponse.pb(
            service_usage_v1.BatchGetServicesResponse(services=services)
        )

    def _batch_enable_services(self, key: str, *, body: bytes, **_: Any):
        project = self._project(f"projects/{key}")
        request = _parse(body, service_usage_v1.BatchEnableServicesRequest)
        ids = list(request.service_ids)
        if not ids or len(ids) > MAX_BATCH_ENABLE:
            raise FakeError(400, "INVALID_ARGUMENT", f"give 1 to {MAX_BATCH_ENABLE} service IDs")
        wanted = list(
            dict.fromkeys(ids + [d for s in ids for d in SERVICE_DEPENDENCIES.get(s, ())])
        )
        billed = self._state.billing.get(project.project_id)
        if not billed and BILLABLE_SERVICES & set(wanted):
            raise FakeError(
                400,
                "FAILED_PRECONDITION",
                f"Billing account for project '{project.name.split('/')[1]}' is not found. Billing "
                "must be enabled for activation of service(s) "
                f"{sorted(BILLABLE_SERVICES & set(wanted))} to proceed.",
            )
        number = project.name.split("/")[1]

        def finish() -> Message:
            enabled = self._state.services.setdefault(number, set())
            newly = [s for s in wanted if s not in enabled]
            enabled.update(wanted)
            for service in newly:
                if self.on_service_enabled:
                    self.on_service_enabled(project.project_id, number, service)
            return service_usage_v1.BatchEnableServicesResponse.pb(
                service_usage_v1.BatchEnableServicesResponse(
                    services=[
                        service_usage_v1.Service(
                            name=f"projects/{number}/services/{s}",
                            parent=f"projects/{number}",
                            state=service_usage_v1.State.ENABLED,
                        )
                        for s in wanted
                    ]
                )
            )

        metadata = service_usage_v1.OperationMetadata.pb(service_usage_v1.OperationMetadata())
        return 200, self._start_operation("operations/acat.p2", metadata, finish)

    # ----------------------------------------------------------------- Cloud Billing

    def _get_billing_account(self, name: str, _id: str, **_: Any) -> tuple[int, Message]:
        self._require_readable(name)
        account = billing_v1.BillingAccount(
            name=name, open_=self._state.billing_accounts[name], display_name=f"Billing {_id}"
        )
        return 200, billing_v1.BillingAccount.pb(account)

    def _get_billing_info(self, project_id: str, **_: Any) -> tuple[int, Message]:
        project = self._project(f"projects/{project_id}")
        return 200, self._billing_info(project.project_id)

    def _put_billing_info(self, project_id: str, *, body: bytes, **_: Any) -> tuple[int, Message]:
        project = self._project(f"projects/{project_id}")
        info = _parse(body, billing_v1.ProjectBillingInfo)
        account = info.billing_account_name
        if account:
            self._require_readable(account)
            if not self._state.billing_accounts[account]:
                raise FakeError(400, "FAILED_PRECONDITION", f"{account} is closed")
        self._state.billing[project.project_id] = account
        return 200, self._billing_info(project.project_id)

    def _billing_info(self, project_id: str) -> Message:
        account = self._state.billing.get(project_id, "")
        return billing_v1.ProjectBillingInfo.pb(
            billing_v1.ProjectBillingInfo(
                name=f"projects/{project_id}/billingInfo",
                project_id=project_id,
                billing_account_name=account,
                billing_enabled=bool(account) and self._state.billing_accounts.get(account, False),
            )
        )

    # ----------------------------------------------------------------- operations

    def _reservations(self) -> set[str]:
        """Names held by operations still running (a second create must not race them)."""
        return {op.reserves for op in self._state.operations.values() if op.result is None}

    def _start_operation(
        self, prefix: str, metadata: Message, finish: Callable[[], Message], reserves: str = ""
    ) -> tuple[int, Message]:
        name = f"{prefix}.{self._next_id()}"
        pending = _PendingOperation(name, self.operation_polls, metadata, finish, reserves)
        self._state.operations[name] = pending
        if pending.polls_left <= 0:
            self._complete(pending)
        return self._operation_message(pending)

    def _get_operation(self, name: str, **_: Any) -> tuple[int, Message]:
        pending = self._state.operations.get(name)
        if pending is None:
            raise FakeError(404, "NOT_FOUND", f"operation {name} not found")
        if pending.result is None:
            if pending.polls_left <= 0:
                self._complete(pending)
            else:
                pending.polls_left -= 1
        return 200, self._operation_message(pending)

    def _complete(self, pending: _PendingOperation) -> None:
        op = operations_pb2.Operation(name=pending.name, done=True)
        op.metadata.Pack(pending.metadata)
        try:
            op.response.Pack(pending.finish())
        except FakeError as err:
            op.error.code = _GRPC_CODES.get(err.status, 2)
            op.error.message = err.message
        pending.result = op

    @staticmethod
    def _operation_message(pending: _PendingOperation) -> Message:
        if pending.result is not None:
            return pending.result
        op = operations_pb2.Operation(name=pending.name, done=False)
        op.metadata.Pack(pending.metadata)
        return op

    # ----------------------------------------------------------------- helpers

    def _next_id(self) -> int:
        self._counter += 1
        return self._counter

    def _new_etag(self) -> bytes:
        return f"etag-{self._next_id()}".encode()

    def _new_etag_text(self) -> str:
        return base64.b64encode(self._new_etag()).decode()

    def _new_project(
        self, project_id: str, parent: str, labels: dict[str, str], display_name: str
    ) -> resourcemanager_v3.Project:
        number = str(100000000000 + self._next_id())
        return resourcemanager_v3.Project(
            name=f"projects/{number}",
            project_id=project_id,
            parent=parent,
            display_name=display_name or project_id,
            labels=labels,
            state=resourcemanager_v3.Project.State.ACTIVE,
            create_time=_now(),
            etag=self._new_etag_text(),
        )

    def _project(self, name: str) -> resourcemanager_v3.Project:
        key = name.split("/", 1)[1]
        for number, project in self._state.projects.items():
            if key in (number, project.project_id) and name not in self._hidden:
                return project
        # GCP answers 403 for unknown project IDs, so callers cannot probe for existence.
        raise _denied(name)

    def _folder(self, name: str) -> resourcemanager_v3.Folder:
        folder = self._state.folders.get(name)
        if folder is None or name in self._hidden:
            raise _denied(name)
        return folder

    def _require_container(self, parent: str) -> None:
        if parent.startswith("organizations/"):
            if parent not in self._state.organizations or parent in self._hidden:
                raise _denied(parent)
        elif parent.startswith("folders/"):
            self._folder(parent)
        else:
            raise FakeError(400, "INVALID_ARGUMENT", f"invalid parent {parent!r}")

    def _require_readable(self, resource: str) -> None:
        kind = resource.split("/", 1)[0]
        if kind == "billingAccounts":
            if resource not in self._state.billing_accounts or resource in self._hidden:
                raise _denied(resource)
        elif kind == "projects":
            self._project(resource)
        else:
            self._require_container(resource)

    def _policy(self, resource: str) -> policy_pb2.Policy:
        if resource not in self._state.policies:
            self._state.policies[resource] = policy_pb2.Policy(version=1, etag=self._new_etag())
        return self._state.policies[resource]


_GRPC_CODES = {
    "INVALID_ARGUMENT": 3,
    "NOT_FOUND": 5,
    "ALREADY_EXISTS": 6,
    "PERMISSION_DENIED": 7,
    "FAILED_PRECONDITION": 9,
    "ABORTED": 10,
    "INTERNAL": 13,
    "UNAVAILABLE": 14,
}


def _add_member(policy: policy_pb2.Policy, role: str, member: str) -> None:
    for binding in policy.bindings:
        if binding.role == role and not binding.HasField("condition"):
            if member not in binding.members:
                binding.members.append(member)
            return
    policy.bindings.add(role=role, members=[member])


def _parse(body: bytes, message_type: Any) -> Any:
    """Parse a JSON body into a proto-plus message (unknown fields are errors, as in GCP)."""
    try:
        pb = json_format.Parse(body or b"{}", message_type.pb(message_type()))
    except json_format.ParseError as err:
        raise FakeError(400, "INVALID_ARGUMENT", f"invalid JSON payload: {err}") from err
    return message_type.wrap(pb)


def _one(query: dict[str, list[str]], key: str, default: str | None = None) -> str:
    values = query.get(key)
    if not values:
        if default is None:
            raise FakeError(400, "INVALID_ARGUMENT", f"missing query parameter {key}")
        return default
    return values[0]


def _now() -> timestamp_pb2.Timestamp:
    stamp = timestamp_pb2.Timestamp()
    stamp.GetCurrentTime()
    return stamp


def _denied(resource: str) -> FakeError:
    return FakeError(
        403,
        "PERMISSION_DENIED",
        f"The caller does not have permission (or {resource} does not exist).",
    )


def _error_body(err: FakeError) -> dict[str, Any]:
    return {"error": {"code": err.http_status, "message": err.message, "status": err.status}}


class _Handler(BaseHTTPRequestHandler):
    """HTTP adapter: hands each request to :meth:`FakeResourceManager.dispatch`."""

    owner: FakeResourceManager
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body are two writes: avoid 40 ms stalls

    def _serve(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        status, payload = self.owner.dispatch(self.command, self.path, body)
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json; charset=UTF-8")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _serve

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - quiet server
        pass
