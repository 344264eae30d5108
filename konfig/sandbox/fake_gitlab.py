"""A stateful fake of the GitLab REST API v4, served over HTTP on 127.0.0.1.

It exists so that Konfig's GitLab adapter can be tested (and `konfig sandbox` can run) through
the real python-gitlab client, with no monkeypatching: the client speaks HTTP to this server
exactly as it would to GitLab.com or a self-managed instance.

What it models, with GitLab's own response shapes and status codes (sources are the API docs
under https://docs.gitlab.com/api/ and GitLab's Grape endpoints):

* groups and projects with ``full_path`` composed from the parent chain, lookups by numeric id
  or URL-encoded path, one path namespace per parent shared by subgroups and projects
  (``400 Failed to save group {:path=>["has already been taken"]}`` for groups,
  ``400 {"message": {"path": ["has already been taken"]}}`` for projects), visibility no wider
  than the parent's, ``404 Group Not Found`` / ``404 Project Not Found`` for objects the token
  cannot see, ``401 Unauthorized`` without a valid token, ``403 Forbidden`` for top-level group
  creation when the instance forbids it (GitLab.com);
* offset pagination with ``page``/``per_page`` (default 20, at most 100) and the ``Link``,
  ``x-page``, ``x-per-page``, ``x-next-page``, ``x-prev-page``, ``x-total`` and
  ``x-total-pages`` headers (totals omitted past 10,000 rows, as GitLab does);
  https://docs.gitlab.com/api/rest/#pagination
* SAML group links (Premium; ``401`` when SAML is not enabled or the tier lacks it), group CI/CD
  variables with environment scopes, protected branches, tags and environments (Premium);
* project creation from a custom project template (Premium; asynchronous: ``import_status``
  goes ``scheduled`` -> ``started`` -> ``finished``, copying the template's repository and
  protections), forks (asynchronous too), the commits API with actions, archive / unarchive,
  delayed deletion (``202 Accepted``, ``marked_for_deletion_on``) and restore, transfers;
* fault injection (429 with ``Retry-After``, 5xx, dropped connections, optionally *after* the
  write was applied) and a request log, for tests of retries and convergence.

Usage::

    with FakeGitLab() as gl:
        gl.add_token("secret")
        gl.seed_group("acme")
        python_gitlab = gitlab.Gitlab(gl.url, private_token="secret")
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import itertools
import json
import random
import re
import threading
import time
from dataclasses import dataclass, field
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable
from urllib.parse import parse_qs, quote, unquote, urlencode

API_PREFIX = "/api/v4"

GUEST, REPORTER, DEVELOPER, MAINTAINER, OWNER = 10, 20, 30, 40, 50
ACCESS_DESCRIPTIONS = {
    0: "No access",
    10: "Guest",
    20: "Reporter",
    30: "Developers + Maintainers",
    40: "Maintainers",
    50: "Owners",
    60: "Admins",
}
VISIBILITY_ORDER = {"private": 0, "internal": 10, "public": 20}
#: GitLab omits x-total, x-total-pages and rel="last" above this many rows.
TOTAL_HEADERS_LIMIT = 10_000
#: https://docs.gitlab.com/user/reserved_names/ and the path format of
#: https://docs.gitlab.com/user/group/manage/#change-a-groups-path
PATH_RE = re.compile(r"^[A-Za-z0-9_.][A-Za-z0-9_.\-]*$")
MASKABLE_RE = re.compile(r"^[A-Za-z0-9@_\-:+./~=]{8,}$")


class HttpError(Exception):
    """An API error: status code and a JSON (or text) body shaped like GitLab's."""

    def __init__(self, status: int, body: Any, headers: dict[str, str] | None = None) -> None:
        super().__init__(f"{status} {body}")
        self.status = status
        self.body = body
        self.headers = headers or {}


def _not_found(what: str = "Not found") -> HttpError:
    return HttpError(404, {"message": f"404 {what}"})


FORBIDDEN = HttpError(403, {"message": "403 Forbidden"})
UNAUTHORIZED = HttpError(401, {"message": "401 Unauthorized"})


@dataclass
class RequestRecord:
    """One request as the server saw it. ``path`` is the raw path (percent-encoding kept),
    ``route`` the API path below ``/api/v4`` with each segment decoded."""

    method: str
    path: str
    route: str
    query: dict[str, list[str]]
    status: int = 0
    fault: str = ""
    started: float = 0.0
    ended: float = 0.0

    @property
    def is_write(self) -> bool:
        return self.method not in ("GET", "HEAD", "OPTIONS")


@dataclass
class Fault:
    """An injected fault: the next ``times`` requests matching ``method`` and ``route``
    (a regular expression searched in the decoded route) fail with ``status``.

    ``after_commit`` applies the request first and then answers with the error (the write
    happened, the client does not know). ``drop_connection`` closes the socket without an
    answer (a connection error on the client)."""

    status: int = 500
    method: str | None = None
    route: str | None = None
    times: int = 1
    retry_after: int | None = None
    after_commit: bool = False
    drop_connection: bool = False

    def matches(self, method: str, route: str) -> bool:
        if self.times <= 0:
            return False
        if self.method and self.method.upper() != method:
            return False
        return not self.route or re.search(self.route, route) is not None


@dataclass
class _User:
    id: int
    username: str
    is_admin: bool = False


@dataclass
class _Group:
    id: int
    name: str
    path: str
    parent_id: int | None
    description: str = ""
    visibility: str = "private"
    created_at: str = ""
    members: dict[int, int] = field(default_factory=dict)
    marked_for_deletion_on: str | None = None
    saml_links: dict[str, int] = field(default_factory=dict)
    variables: list[dict[str, Any]] = field(default_factory=list)
    custom_project_templates_group_id: int | None = None


@dataclass
class _Branch:
    files: dict[str, str]
    commit: dict[str, Any]


@dataclass
class _Project:
    id: int
    name: str
    path: str
    namespace_id: int
    description: str = ""
    visibility: str = "private"
    topics: list[str] = field(default_factory=list)
    archived: bool = False
    created_at: str = ""
    default_branch: str = "main"
    members: dict[int, int] = field(default_factory=dict)
    branches: dict[str, _Branch] = field(default_factory=dict)
    protected_branches: dict[str, dict[str, Any]] = field(default_factory=dict)
    protected_tags: dict[str, dict[str, Any]] = field(default_factory=dict)
    protected_environments: dict[str, dict[str, Any]] = field(default_factory=dict)
    import_status: str = "none"
    import_error: str | None = None
    import_ready_at: float = 0.0
    import_payload: dict[str, Any] | None = None
    forked_from_id: int | None = None
    marked_for_deletion_on: str | None = None


def _now_iso() -> str:
    return _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def _as_bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    return str(value).lower() in ("true", "1", "yes", "on")


def _level_entry(level: int, next_id: Callable[[], int]) -> dict[str, Any]:
    return {
        "id": next_id(),
        "access_level": level,
        "access_level_description": ACCESS_DESCRIPTIONS.get(level, str(level)),
        "user_id": None,
        "group_id": None,
    }


class FakeGitLab:
    """A GitLab REST v4 server in a background thread, holding its state in memory.

    ``tier`` is ``"premium"`` (SAML links, custom project templates and protected environments
    available) or ``"free"`` (those endpoints refuse as GitLab's do). ``import_delay`` is how
    long (seconds) a template import or fork stays ``scheduled``/``started``.
    ``allow_top_level_groups=False`` refuses ``POST /groups`` without ``parent_id`` with 403, as
    GitLab.com does for API-created top-level groups.

    Thread-safe; every request takes the state lock, so requests are atomic.
    """

    def __init__(
        self,
        *,
        tier: str = "premium",
        saml_enabled: bool = True,
        import_delay: float = 0.05,
        allow_top_level_groups: bool = False,
        deletion_adjourned_days: int = 7,
        version: str = "17.9.2-ee",
        latency: float = 0.0,
    ) -> None:
        if tier not in ("free", "premium", "ultimate"):
            raise ValueError(f"unknown tier {tier!r}")
        self.tier = tier
        self.saml_enabled = saml_enabled
        self.import_delay = import_delay
        self.allow_top_level_groups = allow_top_level_groups
        self.deletion_adjourned_days = deletion_adjourned_days
        self.version = version
        self.latency = latency
        self._lock = threading.RLock()
        self._ids = {k: itertools.count(start) for k, start in
                     (("user", 1), ("group", 100), ("project", 1000), ("misc", 1))}
        self._users: dict[int, _User] = {}
        self._tokens: dict[str, int] = {}
        self._groups: dict[int, _Group] = {}
        self._projects: dict[int, _Project] = {}
        self._pending_templates: dict[str, str] = {}
        self._faults: list[Fault] = []
        self._random_faults: tuple[random.Random, float, tuple[int, ...], float, int] | None = None
        self._log: list[RequestRecord] = []
        self._in_flight = 0
        self.max_in_flight = 0
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._routes = self._build_routes()

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> str:
        """Start serving on 127.0.0.1 on an ephemeral port; return the base URL
        (``http://127.0.0.1:PORT``, the ``url`` python-gitlab wants)."""
        if self._server is not None:
            return self.url
        fake = self

        class Handler(_Handler):
            server_fake = fake

        server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        server.daemon_threads = True
        server.request_queue_size = 128
        self._server = server
        self._thread = threading.Thread(target=server.serve_forever, name="fake-gitlab",
                                        kwargs={"poll_interval": 0.05}, daemon=True)
        self._thread.start()
        return self.url

    def stop(self) -> None:
        """Stop serving and close the socket."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
            self._thread = None

    def __enter__(self) -> "FakeGitLab":
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def url(self) -> str:
        if self._server is None:
            raise RuntimeError("FakeGitLab is not started")
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    # ------------------------------------------------------------------ seeding (no HTTP)

    def add_token(self, token: str, username: str = "konfig-bot", *, admin: bool = False) -> int:
        """Register a personal access token for ``username`` (created if new); return the
        user id."""
        with self._lock:
            user = next((u for u in self._users.values() if u.username == username), None)
            if user is None:
                user = _User(next(self._ids["user"]), username, admin)
                self._users[user.id] = user
            self._tokens[token] = user.id
            return user.id

    def seed_group(
        self,
        full_path: str,
        *,
        name: str | None = None,
        description: str = "",
        visibility: str = "private",
        owner: str | None = "konfig-bot",
        members: dict[str, int] | None = None,
    ) -> dict[str, Any]:
        """Create a group directly (a top-level group too: this is how a test stands up the
        ``parentGroup`` Konfig adopts). ``owner`` (a username, created if needed) gets Owner on
        it. Returns the group as the API shows it."""
        with self._lock:
            parent_path, _, path = full_path.rpartition("/")
            parent = self._group_by_path(parent_path) if parent_path else None
            if parent_path and parent is None:
                raise KeyError(f"parent group {parent_path!r} does not exist")
            self._check_free_path(parent.id if parent else None, path)
            group = _Group(next(self._ids["group"]), name or path, path,
                           parent.id if parent else None, description, visibility, _now_iso())
            for username, level in {**({owner: OWNER} if owner else {}), **(members or {})}.items():
                group.members[self._user_named(username).id] = level
            self._groups[group.id] = group
            return self._group_json(group)

    def seed_project(self, path_with_namespace: str, *, description: str = "",
                     topics: tuple[str, ...] = (), files: dict[str, str] | None = None,
                     archived: bool = False) -> dict[str, Any]:
        """Create a project directly, optionally with ``files`` on ``main``."""
        with self._lock:
            ns_path, _, path = path_with_namespace.rpartition("/")
            ns = self._group_by_path(ns_path)
            if ns is None:
                raise KeyError(f"group {ns_path!r} does not exist")
            self._check_free_path(ns.id, path)
            project = _Project(next(self._ids["project"]), path, path, ns.id, description,
                               ns.visibility, list(topics), archived, _now_iso())
            if files:
                self._commit(project, "main", "Initial commit", files)
            self._projects[project.id] = project
            return self._project_json(project, None)

    def set_custom_project_templates(self, group_path: str, templates_group_path: str) -> None:
        """Set *Settings > General > Custom project templates* of ``group_path`` to its subgroup
        ``templates_group_path`` (Premium; the REST API cannot set it). The subgroup may not exist
        yet: the setting is resolved when it does."""
        with self._lock:
            self._pending_templates[group_path] = templates_group_path

    def delete_saml_link(self, group_path: str, saml_group_name: str) -> None:
        """Remove a SAML group link as a person would in the UI (not through the API log)."""
        with self._lock:
            del self._require_group(group_path).saml_links[saml_group_name]

    def set_saml_link(self, group_path: str, saml_group_name: str, access_level: int) -> None:
        """Add or change a SAML group link by hand."""
        with self._lock:
            self._require_group(group_path).saml_links[saml_group_name] = access_level

    def edit_group(self, full_path: str, **attrs: Any) -> None:
        """Change a group's attributes by hand (``description``, ``name``, ``visibility``)."""
        with self._lock:
            group = self._require_group(full_path)
            for key, value in attrs.items():
                setattr(group, key, value)

    def edit_project(self, path_with_namespace: str, **attrs: Any) -> None:
        """Change a project's attributes by hand (``archived``, ``description``, ``topics``...)."""
        with self._lock:
            project = self._require_project(path_with_namespace)
            for key, value in attrs.items():
                setattr(project, key, value)

    def delete_by_hand(self, full_path: str) -> None:
        """Mark a group or project for (delayed) deletion, as a person in the UI would."""
        with self._lock:
            obj = self._group_by_path(full_path) or self._project_by_path(full_path)
            if obj is None:
                raise KeyError(full_path)
            obj.marked_for_deletion_on = self._deletion_date()

    def purge_deletions(self) -> int:
        """Remove every group and project marked for deletion (with their contents) now, as the
        deletion worker does once the adjourned period is over. Returns how many went."""
        with self._lock:
            gone = 0
            for group in [g for g in self._groups.values() if g.marked_for_deletion_on]:
                if group.id in self._groups:
                    gone += self._destroy_group(group)
            for project in [p for p in self._projects.values() if p.marked_for_deletion_on]:
                del self._projects[project.id]
                gone += 1
            return gone

    # ------------------------------------------------------------------ inspection (no HTTP)

    def group(self, full_path: str) -> dict[str, Any] | None:
        with self._lock:
            group = self._group_by_path(full_path)
            return self._group_json(group) if group else None

    def project(self, path_with_namespace: str) -> dict[str, Any] | None:
        with self._lock:
            project = self._project_by_path(path_with_namespace)
            return self._project_json(project, None) if project else None

    def groups_under(self, full_path: str) -> list[str]:
        """Full paths of every group below ``full_path`` (not itself), sorted."""
        with self._lock:
            root = self._require_group(full_path)
            return sorted(self._full_path(g) for g in self._groups.values()
                          if g.id != root.id and self._is_descendant(g, root.id))

    def projects_under(self, full_path: str) -> list[str]:
        with self._lock:
            root = self._require_group(full_path)
            return sorted(self._project_full_path(p) for p in self._projects.values()
                          if self._group_is_within(p.namespace_id, root.id))

    def saml_links(self, group_path: str) -> dict[str, int]:
        with self._lock:
            return dict(self._require_group(group_path).saml_links)

    def variables(self, group_path: str) -> list[dict[str, Any]]:
        with self._lock:
            return [dict(v) for v in self._require_group(group_path).variables]

    def protections(self, path_with_namespace: str) -> dict[str, dict[str, Any]]:
        """``{"branches": {...}, "tags": {...}, "environments": {...}}`` of a project."""
        with self._lock:
            p = self._require_project(path_with_namespace)
            return {"branches": dict(p.protected_branches), "tags": dict(p.protected_tags),
                    "environments": dict(p.protected_environments)}

    def files(self, path_with_namespace: str, branch: str = "main") -> dict[str, str]:
        with self._lock:
            project = self._require_project(path_with_namespace)
            self._tick_import(project)
            b = project.branches.get(branch)
            return dict(b.files) if b else {}

    def commits(self, path_with_namespace: str, branch: str = "main") -> int:
        """Number of commits on ``branch``."""
        with self._lock:
            b = self._require_project(path_with_namespace).branches.get(branch)
            return len(b.commit["history"]) if b else 0

    # ------------------------------------------------------------------ faults and log

    def inject_fault(self, status: int = 500, *, method: str | None = None,
                     route: str | None = None, times: int = 1, retry_after: int | None = None,
                     after_commit: bool = False, drop_connection: bool = False) -> Fault:
        """Make the next ``times`` matching requests fail (see :class:`Fault`)."""
        fault = Fault(status, method, route, times, retry_after, after_commit, drop_connection)
        with self._lock:
            self._faults.append(fault)
        return fault

    def random_faults(self, rate: float, *, statuses: tuple[int, ...] = (429, 500, 502, 503),
                      seed: int = 0, after_commit_ratio: float = 0.3,
                      retry_after: int = 0) -> None:
        """Fail a random ``rate`` of all requests with one of ``statuses`` (deterministic for a
        given ``seed``); a share of the 5xx on writes happen after the write was applied.
        ``rate=0`` turns it off."""
        with self._lock:
            self._random_faults = ((random.Random(seed), rate, statuses, after_commit_ratio,
                                    retry_after) if rate > 0 else None)

    def clear_faults(self) -> None:
        with self._lock:
            self._faults.clear()
            self._random_faults = None

    @property
    def requests(self) -> list[RequestRecord]:
        """A copy of the request log, in arrival order."""
        with self._lock:
            return list(self._log)

    def reset_log(self) -> None:
        with self._lock:
            self._log.clear()
            self.max_in_flight = self._in_flight

    def count(self, *, writes: bool | None = None, method: str | None = None,
              route: str | None = None) -> int:
        """Count logged requests by kind (``writes=True/False``), method, or route regex."""
        return sum(
            1 for r in self.requests
            if (writes is None or r.is_write == writes)
            and (method is None or r.method == method.upper())
            and (route is None or re.search(route, r.route))
        )

    # ------------------------------------------------------------------ request handling

    def _pick_fault(self, method: str, route: str) -> Fault | None:
        for fault in self._faults:
            if fault.matches(method, route):
                fault.times -= 1
                return fault
        if self._random_faults:
            rng, rate, statuses, after_ratio, retry_after = self._random_faults
            if rng.random() < rate:
                status = rng.choice(statuses)
                after = status >= 500 and method != "GET" and rng.random() < after_ratio
                return Fault(status, retry_after=retry_after if status == 429 else None,
                             after_commit=after)
        return None

    def handle(self, method: str, raw_path: str, query: dict[str, list[str]], body: Any,
               headers: dict[str, str], base_url: str) -> tuple[int, Any, dict[str, str], str]:
        """Serve one request: returns (status, body, headers, fault kind) where a body of
        ``None`` means an empty response and the fault kind ``"drop"`` means close the socket."""
        segments = [unquote(s) for s in raw_path.split("?")[0].split("/")]
        route = "/" + "/".join(segments[3:]) if raw_path.startswith(API_PREFIX) else raw_path
        record = RequestRecord(method, raw_path, route, query, started=time.monotonic())
        with self._lock:
            self._log.append(record)
            self._in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self._in_flight)
            fault = self._pick_fault(method, route)
        try:
            if self.latency:
                time.sleep(self.latency)
            if fault and not fault.after_commit:
                return self._fault_response(fault, record)
            try:
                if not raw_path.startswith(API_PREFIX + "/"):
                    raise HttpError(404, {"error": "404 Not Found"})
                with self._lock:
                    status, payload, extra = self._dispatch(method, segments[3:], query, body,
                                                            headers, base_url, raw_path)
            except HttpError as err:
                status, payload, extra = err.status, err.body, err.headers
            if fault:
                return self._fault_response(fault, record)
            record.status = status
            return status, payload, extra, ""
        finally:
            with self._lock:
                self._in_flight -= 1
                record.ended = time.monotonic()

    def _fault_response(self, fault: Fault, record: RequestRecord) -> tuple[int, Any, dict, str]:
        record.status = 0 if fault.drop_connection else fault.status
        record.fault = "drop" if fault.drop_connection else (
            "after_commit" if fault.after_commit else "before")
        if fault.drop_connection:
            return 0, None, {}, "drop"
        headers: dict[str, str] = {}
        if fault.status == 429:
            # GitLab's throttle answer (Rack::Attack): text body and rate-limit headers.
            # https://docs.gitlab.com/administration/settings/user_and_ip_rate_limits/#response-headers
            wait = 0 if fault.retry_after is None else fault.retry_after
            headers = {"Retry-After": str(wait), "RateLimit-Limit": "600",
                       "RateLimit-Remaining": "0", "RateLimit-Reset": str(int(time.time()) + wait)}
            return 429, "Retry later\n", headers, "fault"
        reason = HTTPStatus(fault.status).phrase if fault.status in HTTPStatus._value2member_map_ else "Error"
        return fault.status, {"message": f"{fault.status} {reason}"}, headers, "fault"

    def _dispatch(self, method: str, parts: list[str], query: dict[str, list[str]], body: Any,
                  headers: dict[str, str], base_url: str, raw_path: str
                  ) -> tuple[int, Any, dict[str, str]]:
        user = self._authenticate(headers)
        for verb, pattern, handler in self._routes:
            if verb != method or len(pattern) != len(parts):
                continue
            args = []
            for want, got in zip(pattern, parts, strict=True):
                if want.startswith(":"):
                    args.append(got)
                elif want != got:
                    break
            else:
                ctx = _Ctx(self, user, query, body if isinstance(body, dict) else {}, base_url,
                           raw_path)
                result = handler(ctx, *args)
                if isinstance(result, tuple):
                    return result
                return (200 if method in ("GET", "PUT") else 201), result, ctx.headers
        raise HttpError(404, {"error": "404 Not Found"})

    def _authenticate(self, headers: dict[str, str]) -> _User:
        token = headers.get("private-token")
        if not token:
            auth = headers.get("authorization", "")
            token = auth[7:] if auth.lower().startswith("bearer ") else None
        if not token or token not in self._tokens:
            raise UNAUTHORIZED
        return self._users[self._tokens[token]]

    # ------------------------------------------------------------------ model helpers

    def _user_named(self, username: str) -> _User:
        user = next((u for u in self._users.values() if u.username == username), None)
        if user is None:
            user = _User(next(self._ids["user"]), username)
            self._users[user.id] = user
        return user

    def _deletion_date(self) -> str:
        return (_dt.date.today() + _dt.timedelta(days=self.deletion_adjourned_days)).isoformat()

    def _full_path(self, group: _Group) -> str:
        parts = [group.path]
        while group.parent_id is not None:
            group = self._groups[group.parent_id]
            parts.append(group.path)
        return "/".join(reversed(parts))

    def _full_name(self, group: _Group) -> str:
        parts = [group.name]
        while group.parent_id is not None:
            group = self._groups[group.parent_id]
            parts.append(group.name)
        return " / ".join(reversed(parts))

    def _project_full_path(self, project: _Project) -> str:
        return f"{self._full_path(self._groups[project.namespace_id])}/{project.path}"

    def _group_by_path(self, full_path: str) -> _Group | None:
        wanted = full_path.lower()
        for group in self._groups.values():
            if group.path.lower() == wanted.rsplit("/", 1)[-1] and \
                    self._full_path(group).lower() == wanted:
                return group
        return None

    def _project_by_path(self, full_path: str) -> _Project | None:
        ns_path, _, path = full_path.lower().rpartition("/")
        for project in self._projects.values():
            if project.path.lower() == path and \
                    self._full_path(self._groups[project.namespace_id]).lower() == ns_path:
                return project
        return None

    def _require_group(self, full_path: str) -> _Group:
        group = self._group_by_path(full_path)
        if group is None:
            raise KeyError(f"no group {full_path!r}")
        return group

    def _require_project(self, full_path: str) -> _Project:
        project = self._project_by_path(full_path)
        if project is None:
            raise KeyError(f"no project {full_path!r}")
        return project

    def _is_descendant(self, group: _Group, ancestor_id: int) -> bool:
        while group.parent_id is not None:
            if group.parent_id == ancestor_id:
                return True
            group = self._groups[group.parent_id]
        return False

    def _group_is_within(self, group_id: int, ancestor_id: int) -> bool:
        return group_id == ancestor_id or self._is_descendant(self._groups[group_id], ancestor_id)

    def _check_free_path(self, parent_id: int | None, path: str, *, project: bool = False,
                         ignore: object = None) -> None:
        """One path namespace per parent, shared by subgroups and projects (GitLab's routes are
        unique, case-insensitively)."""
        lowered = path.lower()
        taken = any(g is not ignore and g.parent_id == parent_id and g.path.lower() == lowered
                    for g in self._groups.values())
        if parent_id is not None:
            taken = taken or any(p is not ignore and p.namespace_id == parent_id
                                 and p.path.lower() == lowered for p in self._projects.values())
        if taken:
            if project:
                raise HttpError(400, {"message": {"path": ["has already been taken"]}})
            raise HttpError(400, {"message":
                                  'Failed to save group {:path=>["has already been taken"]}'})

    def _access_level(self, user: _User, group: _Group | None) -> int:
        if user.is_admin:
            return OWNER
        level = 0
        while group is not None:
            level = max(level, group.members.get(user.id, 0))
            group = self._groups.get(group.parent_id) if group.parent_id else None
        return level

    def _project_access(self, user: _User, project: _Project) -> int:
        return max(project.members.get(user.id, 0),
                   self._access_level(user, self._groups[project.namespace_id]))

    def _visible_group(self, user: _User, group: _Group) -> bool:
        return group.visibility != "private" or self._access_level(user, group) > 0

    def _visible_project(self, user: _User, project: _Project) -> bool:
        return project.visibility != "private" or self._project_access(user, project) > 0

    def _find_group(self, user: _User, ref: str) -> _Group:
        group = self._groups.get(int(ref)) if ref.isdigit() else self._group_by_path(ref)
        if group is None or not self._visible_group(user, group):
            raise _not_found("Group Not Found")
        return group

    def _find_project(self, user: _User, ref: str) -> _Project:
        project = self._projects.get(int(ref)) if ref.isdigit() else self._project_by_path(ref)
        if project is None or not self._visible_project(user, project):
            raise _not_found("Project Not Found")
        self._tick_import(project)
        return project

    def _resolve_pending_templates(self) -> None:
        for owner_path, templates_path in list(self._pending_templates.items()):
            owner, templates = self._group_by_path(owner_path), self._group_by_path(templates_path)
            if owner and templates:
                owner.custom_project_templates_group_id = templates.id
                del self._pending_templates[owner_path]

    def _destroy_group(self, group: _Group) -> int:
        gone = 0
        for child in [g for g in self._groups.values() if g.parent_id == group.id]:
            gone += self._destroy_group(child)
        for project in [p for p in self._projects.values() if p.namespace_id == group.id]:
            del self._projects[project.id]
            gone += 1
        del self._groups[group.id]
        return gone + 1

    # ------------------------------------------------------------------ repositories

    def _commit(self, project: _Project, branch: str, message: str, files: dict[str, str],
                parent: _Branch | None = None) -> dict[str, Any]:
        history = list(parent.commit["history"]) if parent else []
        sha = hashlib.sha1(f"{project.id}{branch}{message}{len(history)}{sorted(files.items())}"
                           .encode()).hexdigest()
        commit = {
            "id": sha, "short_id": sha[:8], "title": message.split("\n", 1)[0],
            "message": message, "author_name": "Konfig", "author_email": "konfig@example.com",
            "authored_date": _now_iso(), "committed_date": _now_iso(), "created_at": _now_iso(),
            "parent_ids": [parent.commit["id"]] if parent else [],
            "web_url": f"/{sha}",
        }
        commit["history"] = [*history, sha]
        first_on_default = not project.branches and branch == project.default_branch
        project.branches[branch] = _Branch(dict(files), commit)
        if first_on_default and branch not in project.protected_branches:
            # Instance default branch protection "fully protected" (the default):
            # https://docs.gitlab.com/user/project/repository/branches/default/#protect-initial-default-branches
            self._protect_branch(project, branch, MAINTAINER, MAINTAINER, False)
        return commit

    def _protect_branch(self, project: _Project, name: str, push: int, merge: int,
                        force: bool) -> dict[str, Any]:
        entry = {
            "id": next(self._ids["misc"]), "name": name,
            "push_access_levels": [_level_entry(push, lambda: next(self._ids["misc"]))],
            "merge_access_levels": [_level_entry(merge, lambda: next(self._ids["misc"]))],
            "unprotect_access_levels": [], "allow_force_push": force,
            "code_owner_approval_required": False,
        }
        project.protected_branches[name] = entry
        return entry

    def _tick_import(self, project: _Project) -> None:
        """Advance an asynchronous import (template or fork) by the clock."""
        if project.import_status not in ("scheduled", "started"):
            return
        now = time.monotonic()
        if now < project.import_ready_at:
            if now >= project.import_ready_at - self.import_delay / 2:
                project.import_status = "started"
            return
        payload = project.import_payload or {}
        if payload.get("fail"):
            project.import_status, project.import_error = "failed", payload["fail"]
            return
        for branch, (files, message) in payload.get("branches", {}).items():
            project.branches[branch] = _Branch(dict(files), {
                **message, "history": list(message["history"])})
        for name, entry in payload.get("protected_branches", {}).items():
            project.protected_branches[name] = json.loads(json.dumps(entry))
        for name, entry in payload.get("protected_tags", {}).items():
            project.protected_tags[name] = json.loads(json.dumps(entry))
        project.import_status = "finished"
        project.import_payload = None

    def _snapshot(self, source: _Project, *, with_protections: bool) -> dict[str, Any]:
        self._tick_import(source)
        snap: dict[str, Any] = {"branches": {
            name: (dict(b.files), dict(b.commit)) for name, b in source.branches.items()}}
        if with_protections:
            # Import/export carries protected branches and tags:
            # https://docs.gitlab.com/user/project/settings/import_export/#project-items-that-are-exported
            snap["protected_branches"] = json.loads(json.dumps(source.protected_branches))
            snap["protected_tags"] = json.loads(json.dumps(source.protected_tags))
        return snap

    # ------------------------------------------------------------------ JSON views

    def _group_json(self, g: _Group) -> dict[str, Any]:
        full_path = self._full_path(g)
        data = {
            "id": g.id, "web_url": f"/groups/{full_path}", "name": g.name, "path": g.path,
            "description": g.description, "visibility": g.visibility,
            "share_with_group_lock": False, "require_two_factor_authentication": False,
            "two_factor_grace_period": 48, "project_creation_level": "developer",
            "auto_devops_enabled": None, "subgroup_creation_level": "maintainer",
            "emails_disabled": False, "emails_enabled": True, "mentions_disabled": None,
            "lfs_enabled": True, "default_branch": None, "default_branch_protection": 2,
            "avatar_url": None, "request_access_enabled": True, "full_name": self._full_name(g),
            "full_path": full_path, "created_at": g.created_at, "parent_id": g.parent_id,
            "organization_id": 1, "shared_runners_setting": "enabled", "ldap_cn": None,
            "ldap_access": None, "wiki_access_level": "enabled",
            "marked_for_deletion_on": g.marked_for_deletion_on,
        }
        return data

    def _namespace_json(self, g: _Group) -> dict[str, Any]:
        full_path = self._full_path(g)
        return {"id": g.id, "name": g.name, "path": g.path, "kind": "group",
                "full_path": full_path, "parent_id": g.parent_id, "avatar_url": None,
                "web_url": f"/groups/{full_path}"}

    def _project_json(self, p: _Project, user: _User | None) -> dict[str, Any]:
        ns = self._groups[p.namespace_id]
        full_path = self._project_full_path(p)
        data = {
            "id": p.id, "description": p.description, "name": p.name,
            "name_with_namespace": f"{self._full_name(ns)} / {p.name}", "path": p.path,
            "path_with_namespace": full_path, "created_at": p.created_at,
            "default_branch": p.default_branch if p.branches else None,
            "tag_list": list(p.topics), "topics": list(p.topics),
            "ssh_url_to_repo": f"git@fake:{full_path}.git",
            "http_url_to_repo": f"/{full_path}.git", "web_url": f"/{full_path}",
            "readme_url": None, "forks_count": 0, "avatar_url": None, "star_count": 0,
            "last_activity_at": p.created_at, "namespace": self._namespace_json(ns),
            "visibility": p.visibility, "archived": p.archived, "empty_repo": not p.branches,
            "import_status": p.import_status, "import_error": p.import_error,
            "marked_for_deletion_at": p.marked_for_deletion_on,
            "marked_for_deletion_on": p.marked_for_deletion_on,
        }
        if p.forked_from_id and p.forked_from_id in self._projects:
            src = self._projects[p.forked_from_id]
            data["forked_from_project"] = {"id": src.id,
                                           "path_with_namespace": self._project_full_path(src)}
        return data

    # ------------------------------------------------------------------ routes

    def _build_routes(self) -> list[tuple[str, list[str], Callable[..., Any]]]:
        table = [
            ("GET", "user", _get_user),
            ("GET", "version", _get_version),
            ("GET", "metadata", _get_version),
            ("GET", "groups", _list_groups),
            ("POST", "groups", _create_group),
            ("GET", "groups/:id", _get_group),
            ("PUT", "groups/:id", _update_group),
            ("DELETE", "groups/:id", _delete_group),
            ("POST", "groups/:id/restore", _restore_group),
            ("POST", "groups/:id/transfer", _transfer_group),
            ("GET", "groups/:id/descendant_groups", _descendant_groups),
            ("GET", "groups/:id/subgroups", _subgroups),
            ("GET", "groups/:id/projects", _group_projects),
            ("GET", "groups/:id/saml_group_links", _list_saml),
            ("POST", "groups/:id/saml_group_links", _create_saml),
            ("GET", "groups/:id/saml_group_links/:name", _get_saml),
            ("DELETE", "groups/:id/saml_group_links/:name", _delete_saml),
            ("GET", "groups/:id/variables", _list_variables),
            ("POST", "groups/:id/variables", _create_variable),
            ("GET", "groups/:id/variables/:key", _get_variable),
            ("PUT", "groups/:id/variables/:key", _update_variable),
            ("DELETE", "groups/:id/variables/:key", _delete_variable),
            ("POST", "projects", _create_project),
            ("GET", "projects/:id", _get_project),
            ("PUT", "projects/:id", _update_project),
            ("DELETE", "projects/:id", _delete_project),
            ("POST", "projects/:id/restore", _restore_project),
            ("POST", "projects/:id/archive", _archive_project),
            ("POST", "projects/:id/unarchive", _unarchive_project),
            ("PUT", "projects/:id/transfer", _transfer_project),
            ("POST", "projects/:id/fork", _fork_project),
            ("DELETE", "projects/:id/fork", _delete_fork_relation),
            ("GET", "projects/:id/import", _get_import),
            ("POST", "projects/:id/repository/commits", _create_commit),
            ("GET", "projects/:id/repository/branches/:branch", _get_branch),
            ("GET", "projects/:id/repository/tree", _get_tree),
            ("GET", "projects/:id/protected_branches", _list_protected_branches),
            ("POST", "projects/:id/protected_branches", _protect_branch),
            ("GET", "projects/:id/protected_branches/:name", _get_protected_branch),
            ("DELETE", "projects/:id/protected_branches/:name", _unprotect_branch),
            ("GET", "projects/:id/protected_tags", _list_protected_tags),
            ("POST", "projects/:id/protected_tags", _protect_tag),
            ("DELETE", "projects/:id/protected_tags/:name", _unprotect_tag),
            ("GET", "projects/:id/protected_environments", _list_protected_envs),
            ("POST", "projects/:id/protected_environments", _protect_env),
            ("DELETE", "projects/:id/protected_environments/:name", _unprotect_env),
        ]
        return [(verb, path.split("/"), fn) for verb, path, fn in table]


# ---------------------------------------------------------------------- request context


class _Ctx:
    """What one handler needs: the fake, the caller, query and body, and response headers."""

    def __init__(self, fake: FakeGitLab, user: _User, query: dict[str, list[str]],
                 body: dict[str, Any], base_url: str, raw_path: str) -> None:
        self.fake, self.user, self.query, self.body = fake, user, query, body
        self.base_url, self.raw_path = base_url, raw_path
        self.headers: dict[str, str] = {}

    def arg(self, name: str, default: Any = None) -> Any:
        if name in self.body:
            return self.body[name]
        values = self.query.get(name)
        return values[0] if values else default

    def require(self, name: str) -> Any:
        value = self.arg(name)
        if value is None or value == "":
            raise HttpError(400, {"error": f"{name} is missing"})
        return value

    def group(self, ref: str) -> _Group:
        return self.fake._find_group(self.user, ref)

    def project(self, ref: str) -> _Project:
        return self.fake._find_project(self.user, ref)

    def need_group(self, group: _Group, level: int) -> None:
        if self.fake._access_level(self.user, group) < level:
            raise FORBIDDEN

    def need_project(self, project: _Project, level: int, *, writable: bool = False) -> None:
        if self.fake._project_access(self.user, project) < level:
            raise FORBIDDEN
        if writable and project.archived:
            raise FORBIDDEN

    def next_id(self) -> int:
        return next(self.fake._ids["misc"])

    def paginate(self, items: list[Any]) -> list[Any]:
        """Offset pagination with GitLab's headers (https://docs.gitlab.com/api/rest/#pagination)."""
        try:
            per_page = min(max(int(self.arg("per_page", 20)), 1), 100)
            page = max(int(self.arg("page", 1)), 1)
        except ValueError:
            raise HttpError(400, {"error": "page is invalid"}) from None
        total = len(items)
        total_pages = max((total + per_page - 1) // per_page, 1)
        chunk = items[(page - 1) * per_page: page * per_page]
        path = self.raw_path.split("?")[0]
        params = {k: v[-1] for k, v in self.query.items() if k not in ("page", "per_page")}

        def link(p: int) -> str:
            return f"{self.base_url}{path}?{urlencode({**params, 'page': p, 'per_page': per_page})}"

        links = []
        if page < total_pages:
            links.append(f'<{link(page + 1)}>; rel="next"')
        if page > 1:
            links.append(f'<{link(page - 1)}>; rel="prev"')
        links.append(f'<{link(1)}>; rel="first"')
        h = {"x-page": str(page), "x-per-page": str(per_page),
             "x-next-page": str(page + 1) if page < total_pages else "",
             "x-prev-page": str(page - 1) if page > 1 else ""}
        if total <= TOTAL_HEADERS_LIMIT:
            links.append(f'<{link(total_pages)}>; rel="last"')
            h.update({"x-total": str(total), "x-total-pages": str(total_pages)})
        h["Link"] = ", ".join(links)
        self.headers.update(h)
        return chunk


# ---------------------------------------------------------------------- handlers: misc


def _get_user(ctx: _Ctx) -> dict[str, Any]:
    u = ctx.user
    return {"id": u.id, "username": u.username, "name": u.username, "state": "active",
            "is_admin": u.is_admin, "bot": False, "web_url": f"/{u.username}"}


def _get_version(ctx: _Ctx) -> dict[str, Any]:
    return {"version": ctx.fake.version, "revision": "fake", "enterprise": True,
            "kas": {"enabled": False, "externalUrl": None, "version": None}}


# ---------------------------------------------------------------------- handlers: groups


def _validate_path(path: str, *, project: bool = False) -> None:
    if not PATH_RE.match(path) or path.endswith((".git", ".atom")) or path[-1] in ".-":
        msg = ("can contain only letters, digits, '_', '-' and '.'. Cannot start with '-', "
               "end in '.git' or end in '.atom'")
        if project:
            raise HttpError(400, {"message": {"path": [msg]}})
        raise HttpError(400, {"message": f"Failed to save group {{:path=>[\"{msg}\"]}}"})


def _check_visibility(fake: FakeGitLab, visibility: str, parent: _Group | None,
                      project: bool = False) -> None:
    if visibility not in VISIBILITY_ORDER:
        raise HttpError(400, {"error": "visibility does not have a valid value"})
    if parent and VISIBILITY_ORDER[visibility] > VISIBILITY_ORDER[parent.visibility]:
        msg = (f"{visibility} is not allowed since the parent group has a "
               f"{parent.visibility} visibility.")
        if project:
            raise HttpError(400, {"message": {"visibility_level": [msg]}})
        raise HttpError(400, {"message": f"Failed to save group {{:visibility_level=>[\"{msg}\"]}}"})


def _list_groups(ctx: _Ctx) -> list[dict[str, Any]]:
    fake = ctx.fake
    groups = [g for g in fake._groups.values() if fake._visible_group(ctx.user, g)]
    search = ctx.arg("search")
    if search:
        groups = [g for g in groups if search.lower() in g.name.lower() or search.lower() in g.path]
    groups.sort(key=lambda g: (g.name.lower(), g.id))
    return [fake._group_json(g) for g in ctx.paginate(groups)]


def _create_group(ctx: _Ctx) -> Any:
    fake = ctx.fake
    name, path = ctx.require("name"), ctx.require("path")
    parent_id = ctx.arg("parent_id")
    parent = None
    if parent_id in (None, ""):
        if not (fake.allow_top_level_groups or ctx.user.is_admin):
            raise FORBIDDEN
    else:
        parent = ctx.group(str(parent_id))
        ctx.need_group(parent, MAINTAINER)
    _validate_path(path)
    visibility = ctx.arg("visibility") or (parent.visibility if parent else "private")
    _check_visibility(fake, visibility, parent)
    fake._check_free_path(parent.id if parent else None, path)
    group = _Group(next(fake._ids["group"]), name, path, parent.id if parent else None,
                   ctx.arg("description") or "", visibility, _now_iso(),
                   members={ctx.user.id: OWNER})
    fake._groups[group.id] = group
    fake._resolve_pending_templates()
    return 201, fake._group_json(group), {}


def _get_group(ctx: _Ctx, ref: str) -> dict[str, Any]:
    fake = ctx.fake
    group = ctx.group(ref)
    data = fake._group_json(group)
    if _as_bool(ctx.arg("with_projects", True)):
        projects = [p for p in fake._projects.values() if p.namespace_id == group.id]
        data["projects"] = [fake._project_json(p, ctx.user) for p in projects[:100]]
        data["shared_projects"] = []
    return data


def _update_group(ctx: _Ctx, ref: str) -> dict[str, Any]:
    fake = ctx.fake
    group = ctx.group(ref)
    ctx.need_group(group, OWNER)
    parent = fake._groups.get(group.parent_id) if group.parent_id else None
    if "path" in ctx.body and ctx.body["path"] != group.path:
        _validate_path(ctx.body["path"])
        try:
            fake._check_free_path(group.parent_id, ctx.body["path"], ignore=group)
        except HttpError:
            raise HttpError(400, {"message": {"path": ["has already been taken"]}}) from None
    if "visibility" in ctx.body:
        _check_visibility(fake, ctx.body["visibility"], parent)
        children = [c for c in fake._groups.values() if c.parent_id == group.id] + \
                   [p for p in fake._projects.values() if p.namespace_id == group.id]
        if any(VISIBILITY_ORDER[c.visibility] > VISIBILITY_ORDER[ctx.body["visibility"]]
               for c in children):
            raise HttpError(400, {"message": {"visibility_level": [
                f"{ctx.body['visibility']} is not allowed since there are sub-groups or "
                "projects with higher visibility."]}})
    for key in ("name", "path", "description", "visibility"):
        if key in ctx.body and ctx.body[key] is not None:
            setattr(group, key, ctx.body[key])
    return fake._group_json(group)


def _delete_group(ctx: _Ctx, ref: str) -> Any:
    group = ctx.group(ref)
    ctx.need_group(group, OWNER)
    if group.marked_for_deletion_on:
        raise HttpError(400, {"message": "Group has been already marked for deletion"})
    group.marked_for_deletion_on = ctx.fake._deletion_date()
    return 202, {"message": "202 Accepted"}, {}


def _restore_group(ctx: _Ctx, ref: str) -> Any:
    group = ctx.group(ref)
    ctx.need_group(group, OWNER)
    if not group.marked_for_deletion_on:
        raise HttpError(400, {"message": "Group has not been marked for deletion"})
    group.marked_for_deletion_on = None
    return 201, ctx.fake._group_json(group), {}


def _transfer_group(ctx: _Ctx, ref: str) -> Any:
    fake = ctx.fake
    group = ctx.group(ref)
    ctx.need_group(group, OWNER)
    target = ctx.group(str(ctx.require("group_id")))
    ctx.need_group(target, MAINTAINER)
    if target.id == group.id or fake._is_descendant(target, group.id):
        raise HttpError(400, {"message": "Transfer failed: Cannot transfer group to one of its subgroup."})
    try:
        fake._check_free_path(target.id, group.path, ignore=group)
    except HttpError:
        raise HttpError(400, {"message": "Transfer failed: The parent group already has a "
                                         "subgroup or a project with the same path."}) from None
    group.parent_id = target.id
    return 201, fake._group_json(group), {}


def _descendants(fake: FakeGitLab, user: _User, root: _Group) -> list[_Group]:
    found = [g for g in fake._groups.values()
             if fake._is_descendant(g, root.id) and fake._visible_group(user, g)]
    found.sort(key=lambda g: (g.name.lower(), g.id))  # order_by=name, sort=asc (the default)
    return found


def _descendant_groups(ctx: _Ctx, ref: str) -> list[dict[str, Any]]:
    fake = ctx.fake
    groups = _descendants(fake, ctx.user, ctx.group(ref))
    return [fake._group_json(g) for g in ctx.paginate(groups)]


def _subgroups(ctx: _Ctx, ref: str) -> list[dict[str, Any]]:
    fake = ctx.fake
    root = ctx.group(ref)
    groups = [g for g in _descendants(fake, ctx.user, root) if g.parent_id == root.id]
    return [fake._group_json(g) for g in ctx.paginate(groups)]


def _group_projects(ctx: _Ctx, ref: str) -> list[dict[str, Any]]:
    fake = ctx.fake
    root = ctx.group(ref)
    if _as_bool(ctx.arg("include_subgroups", False)):
        projects = [p for p in fake._projects.values()
                    if fake._group_is_within(p.namespace_id, root.id)]
    else:
        projects = [p for p in fake._projects.values() if p.namespace_id == root.id]
    projects = [p for p in projects if fake._visible_project(ctx.user, p)]
    archived = ctx.arg("archived")
    if archived is not None:
        projects = [p for p in projects if p.archived == _as_bool(archived)]
    for p in projects:
        fake._tick_import(p)
    # order_by=created_at, sort=desc is the default; ids break ties as GitLab's do.
    projects.sort(key=lambda p: (p.created_at, p.id), reverse=True)
    return [fake._project_json(p, ctx.user) for p in ctx.paginate(projects)]


# ---------------------------------------------------------------------- handlers: SAML links


def _saml_group(ctx: _Ctx, ref: str) -> _Group:
    """SAML group links need Premium, SAML SSO configured, and Owner; else ``401``, as
    ``unauthorized! unless can?(current_user, :admin_saml_group_links, group)`` answers."""
    group = ctx.group(ref)
    fake = ctx.fake
    if fake.tier == "free" or not fake.saml_enabled or fake._access_level(ctx.user, group) < OWNER:
        raise UNAUTHORIZED
    return group


def _saml_json(name: str, level: int) -> dict[str, Any]:
    return {"name": name, "access_level": level, "member_role_id": None, "provider": None}


def _list_saml(ctx: _Ctx, ref: str) -> list[dict[str, Any]]:
    group = _saml_group(ctx, ref)
    return [_saml_json(n, lvl) for n, lvl in group.saml_links.items()]


def _create_saml(ctx: _Ctx, ref: str) -> Any:
    group = _saml_group(ctx, ref)
    name = ctx.require("saml_group_name")
    level = int(ctx.require("access_level"))
    if level not in (0, 5, 10, 15, 20, 30, 40, 50):
        raise HttpError(400, {"error": "access_level does not have a valid value"})
    if name in group.saml_links:
        raise HttpError(400, {"message": "Saml group name has already been taken"})
    group.saml_links[name] = level
    return 201, _saml_json(name, level), {}


def _get_saml(ctx: _Ctx, ref: str, name: str) -> dict[str, Any]:
    group = _saml_group(ctx, ref)
    if name not in group.saml_links:
        raise _not_found()
    return _saml_json(name, group.saml_links[name])


def _delete_saml(ctx: _Ctx, ref: str, name: str) -> Any:
    group = _saml_group(ctx, ref)
    if name not in group.saml_links:
        raise _not_found()
    del group.saml_links[name]
    return 204, None, {}


# ---------------------------------------------------------------------- handlers: variables


def _variable_group(ctx: _Ctx, ref: str) -> _Group:
    group = ctx.group(ref)
    ctx.need_group(group, OWNER)
    return group


def _scope_filter(ctx: _Ctx) -> str | None:
    value = ctx.query.get("filter[environment_scope]")
    if value:
        return value[0]
    nested = ctx.body.get("filter") if isinstance(ctx.body.get("filter"), dict) else None
    return nested.get("environment_scope") if nested else None


def _find_variable(ctx: _Ctx, group: _Group, key: str) -> dict[str, Any]:
    scope = _scope_filter(ctx)
    found = [v for v in group.variables
             if v["key"] == key and (scope is None or v["environment_scope"] == scope)]
    if not found:
        raise HttpError(404, {"message": "404 Variable Not Found"})
    if len(found) > 1:
        raise HttpError(409, {"message": "There are multiple variables with provided "
                                         "parameters. Please use 'filter[environment_scope]'"})
    return found[0]


def _check_masked(value: str, masked: bool) -> None:
    # https://docs.gitlab.com/ci/variables/#mask-a-cicd-variable
    if masked and not MASKABLE_RE.match(value):
        raise HttpError(400, {"message": {"value": ["is invalid"]}})


def _list_variables(ctx: _Ctx, ref: str) -> list[dict[str, Any]]:
    group = _variable_group(ctx, ref)
    return [dict(v) for v in ctx.paginate(group.variables)]


def _create_variable(ctx: _Ctx, ref: str) -> Any:
    group = _variable_group(ctx, ref)
    key, value = ctx.require("key"), ctx.arg("value")
    if value is None:
        raise HttpError(400, {"error": "value is missing"})
    if not re.match(r"^[A-Za-z0-9_]{1,255}$", key):
        raise HttpError(400, {"message": {"key": [
            "can contain only letters, digits and '_'."]}})
    scope = ctx.arg("environment_scope") or "*"
    if any(v["key"] == key and v["environment_scope"] == scope for v in group.variables):
        raise HttpError(400, {"message": {"key": [f"({key}) has already been taken"]}})
    masked = _as_bool(ctx.arg("masked", False))
    _check_masked(str(value), masked)
    variable = {"variable_type": ctx.arg("variable_type") or "env_var", "key": key,
                "value": str(value), "protected": _as_bool(ctx.arg("protected", False)),
                "masked": masked, "hidden": False, "raw": _as_bool(ctx.arg("raw", False)),
                "environment_scope": scope, "description": ctx.arg("description")}
    group.variables.append(variable)
    return 201, dict(variable), {}


def _get_variable(ctx: _Ctx, ref: str, key: str) -> dict[str, Any]:
    return dict(_find_variable(ctx, _variable_group(ctx, ref), key))


def _update_variable(ctx: _Ctx, ref: str, key: str) -> dict[str, Any]:
    group = _variable_group(ctx, ref)
    variable = _find_variable(ctx, group, key)
    masked = _as_bool(ctx.arg("masked", variable["masked"]))
    value = str(ctx.arg("value", variable["value"]))
    _check_masked(value, masked)
    new_scope = ctx.body.get("environment_scope")
    if new_scope and new_scope != variable["environment_scope"] and any(
            v["key"] == key and v["environment_scope"] == new_scope for v in group.variables):
        raise HttpError(400, {"message": {"key": [f"({key}) has already been taken"]}})
    variable.update(value=value, masked=masked)
    for name in ("protected", "raw"):
        if name in ctx.body:
            variable[name] = _as_bool(ctx.body[name])
    for name in ("variable_type", "environment_scope", "description"):
        if name in ctx.body:
            variable[name] = ctx.body[name]
    return dict(variable)


def _delete_variable(ctx: _Ctx, ref: str, key: str) -> Any:
    group = _variable_group(ctx, ref)
    variable = _find_variable(ctx, group, key)
    group.variables.remove(variable)
    return 204, None, {}


# ---------------------------------------------------------------------- handlers: projects


def _topics(value: Any) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        value = value.split(",")
    return [t.strip() for t in value if t and t.strip()]


def _custom_template(ctx: _Ctx, namespace: _Group) -> _Project | None:
    """The template project of a ``use_custom_template`` request, as EE's
    ``Projects::CreateFromTemplateService`` finds it; ``None`` when the tier ignores it."""
    fake = ctx.fake
    if fake.tier == "free" or not _as_bool(ctx.arg("use_custom_template", False)):
        return None  # CE/Free: the parameters are ignored and an empty project is made
    template_id = ctx.arg("template_project_id")
    subgroup_id = ctx.arg("group_with_project_templates_id")
    if subgroup_id:
        templates_group = fake._groups.get(int(subgroup_id))
        owner = fake._groups.get(templates_group.parent_id) if templates_group and \
            templates_group.parent_id else None
        if owner is None or not fake._group_is_within(namespace.id, owner.id):
            raise HttpError(400, {"message": {"namespace": [
                "is not a descendant of the Group owning the template"]}})
        fake._resolve_pending_templates()
        if owner.custom_project_templates_group_id != templates_group.id:
            template = None
        else:
            template = fake._projects.get(int(template_id or 0))
            if template and template.namespace_id != templates_group.id:
                template = None
    else:
        template = None  # instance-level templates are not modelled
    if template is None or fake._project_access(ctx.user, template) < DEVELOPER:
        raise HttpError(400, {"message": {"template_project_id": [
            f"{template_id} is unknown or invalid"]}})
    return template


def _create_project(ctx: _Ctx) -> Any:
    fake = ctx.fake
    name, path = ctx.arg("name"), ctx.arg("path")
    if not name and not path:
        raise HttpError(400, {"error": "path, name are missing, at least one parameter must be provided"})
    name, path = name or path, path or re.sub(r"[^a-z0-9_.-]+", "-", name.lower())
    ns_ref = ctx.arg("namespace_id")
    if ns_ref in (None, ""):
        raise HttpError(400, {"message": {"namespace": ["can't be blank"]}})  # personal projects are not modelled
    namespace = ctx.group(str(ns_ref))
    ctx.need_group(namespace, DEVELOPER)
    _validate_path(path, project=True)
    visibility = ctx.arg("visibility") or "private"
    _check_visibility(fake, visibility, namespace, project=True)
    if any(p.namespace_id == namespace.id and p.name.lower() == name.lower()
           for p in fake._projects.values()):
        raise HttpError(400, {"message": {"name": ["has already been taken"]}})
    fake._check_free_path(namespace.id, path, project=True)
    template = _custom_template(ctx, namespace)
    project = _Project(next(fake._ids["project"]), name, path, namespace.id,
                       ctx.arg("description") or "", visibility, _topics(ctx.arg("topics")),
                       created_at=_now_iso())
    if template is not None:
        project.import_status = "scheduled"
        project.import_ready_at = time.monotonic() + fake.import_delay
        project.import_payload = fake._snapshot(template, with_protections=True)
        project.default_branch = template.default_branch
    elif _as_bool(ctx.arg("initialize_with_readme", False)):
        project.default_branch = ctx.arg("default_branch") or "main"
        fake._commit(project, project.default_branch, "Initial commit",
                     {"README.md": f"# {name}\n"})
    fake._projects[project.id] = project
    return 201, fake._project_json(project, ctx.user), {}


def _get_project(ctx: _Ctx, ref: str) -> dict[str, Any]:
    return ctx.fake._project_json(ctx.project(ref), ctx.user)


def _update_project(ctx: _Ctx, ref: str) -> dict[str, Any]:
    fake = ctx.fake
    project = ctx.project(ref)
    ctx.need_project(project, MAINTAINER)
    namespace = fake._groups[project.namespace_id]
    if "visibility" in ctx.body:
        _check_visibility(fake, ctx.body["visibility"], namespace, project=True)
    if "path" in ctx.body and ctx.body["path"] != project.path:
        _validate_path(ctx.body["path"], project=True)
        fake._check_free_path(namespace.id, ctx.body["path"], project=True, ignore=project)
    if "default_branch" in ctx.body and ctx.body["default_branch"] not in project.branches:
        raise HttpError(400, {"message": {"default_branch": ["is invalid"]}})
    for key in ("name", "path", "description", "visibility", "default_branch"):
        if key in ctx.body and ctx.body[key] is not None:
            setattr(project, key, ctx.body[key])
    if "topics" in ctx.body:
        project.topics = _topics(ctx.body["topics"])
    return fake._project_json(project, ctx.user)


def _delete_project(ctx: _Ctx, ref: str) -> Any:
    project = ctx.project(ref)
    ctx.need_project(project, OWNER)
    if project.marked_for_deletion_on:
        raise HttpError(400, {"message": "Project has been already marked for deletion"})
    project.marked_for_deletion_on = ctx.fake._deletion_date()
    return 202, {"message": "202 Accepted"}, {}


def _restore_project(ctx: _Ctx, ref: str) -> Any:
    project = ctx.project(ref)
    ctx.need_project(project, OWNER)
    if not project.marked_for_deletion_on:
        raise HttpError(400, {"message": "Project already restored"})
    project.marked_for_deletion_on = None
    return 201, ctx.fake._project_json(project, ctx.user), {}


def _archive_project(ctx: _Ctx, ref: str) -> Any:
    project = ctx.project(ref)
    ctx.need_project(project, MAINTAINER)
    project.archived = True
    return 201, ctx.fake._project_json(project, ctx.user), {}


def _unarchive_project(ctx: _Ctx, ref: str) -> Any:
    project = ctx.project(ref)
    ctx.need_project(project, MAINTAINER)
    project.archived = False
    return 201, ctx.fake._project_json(project, ctx.user), {}


def _transfer_project(ctx: _Ctx, ref: str) -> dict[str, Any]:
    fake = ctx.fake
    project = ctx.project(ref)
    ctx.need_project(project, OWNER)
    target = ctx.group(str(ctx.require("namespace")))
    ctx.need_group(target, MAINTAINER)
    try:
        fake._check_free_path(target.id, project.path, project=True, ignore=project)
    except HttpError:
        raise HttpError(400, {"message": "Project with the same name or path in target "
                                         "namespace already exists"}) from None
    project.namespace_id = target.id
    return fake._project_json(project, ctx.user)


def _fork_project(ctx: _Ctx, ref: str) -> Any:
    fake = ctx.fake
    source = ctx.project(ref)
    ns_ref = ctx.arg("namespace_id") or ctx.arg("namespace_path") or ctx.arg("namespace")
    if ns_ref in (None, ""):
        raise HttpError(400, {"message": {"namespace": ["can't be blank"]}})
    namespace = ctx.group(str(ns_ref))
    ctx.need_group(namespace, DEVELOPER)
    path = ctx.arg("path") or source.path
    name = ctx.arg("name") or source.name
    _validate_path(path, project=True)
    try:
        fake._check_free_path(namespace.id, path, project=True)
    except HttpError:
        raise HttpError(409, {"message": {"name": ["has already been taken"],
                                          "path": ["has already been taken"]}}) from None
    visibility = ctx.arg("visibility") or min(
        source.visibility, namespace.visibility, key=VISIBILITY_ORDER.__getitem__)
    _check_visibility(fake, visibility, namespace, project=True)
    project = _Project(next(fake._ids["project"]), name, path, namespace.id,
                       ctx.arg("description") or source.description, visibility,
                       list(source.topics), created_at=_now_iso(),
                       default_branch=source.default_branch, forked_from_id=source.id)
    project.import_status = "scheduled"
    project.import_ready_at = time.monotonic() + fake.import_delay
    project.import_payload = fake._snapshot(source, with_protections=False)
    fake._projects[project.id] = project
    return 201, fake._project_json(project, ctx.user), {}


def _delete_fork_relation(ctx: _Ctx, ref: str) -> Any:
    project = ctx.project(ref)
    ctx.need_project(project, OWNER)
    if not project.forked_from_id:
        return 304, None, {}
    project.forked_from_id = None
    return 204, None, {}


def _get_import(ctx: _Ctx, ref: str) -> dict[str, Any]:
    project = ctx.project(ref)
    full = ctx.fake._project_full_path(project)
    return {"id": project.id, "description": project.description, "name": project.name,
            "path": project.path, "path_with_namespace": full,
            "import_status": project.import_status, "import_type": "gitlab_custom_project_template",
            "correlation_id": "fake", "failed_relations": [], "import_error": project.import_error}


# ---------------------------------------------------------------------- handlers: repository


def _create_commit(ctx: _Ctx, ref: str) -> Any:
    """``POST /projects/:id/repository/commits`` with ``actions``
    (https://docs.gitlab.com/api/commits/#create-a-commit-with-multiple-files-and-actions)."""
    fake = ctx.fake
    project = ctx.project(ref)
    ctx.need_project(project, DEVELOPER, writable=True)
    branch = ctx.require("branch")
    message = ctx.require("commit_message")
    actions = ctx.arg("actions")
    if not isinstance(actions, list) or not actions:
        raise HttpError(400, {"error": "actions is missing"})
    start = ctx.arg("start_branch")
    base = project.branches.get(branch) or (project.branches.get(start) if start else None)
    if base is None and project.branches:
        raise HttpError(400, {"message": "You can only create or edit files when you are on a branch"})
    if project.import_status in ("scheduled", "started"):
        raise HttpError(400, {"message": "You can only create or edit files when you are on a branch"})
    protected = project.protected_branches.get(branch)
    if protected and base is not None:
        allowed = min(e["access_level"] for e in protected["push_access_levels"])
        if fake._project_access(ctx.user, project) < allowed:
            raise HttpError(403, {"message": "You are not allowed to push into this branch"})
    files = dict(base.files) if base else {}
    for action in actions:
        kind, file_path = action.get("action"), action.get("file_path")
        if not file_path:
            raise HttpError(400, {"error": "actions[0][file_path] is missing"})
        content = action.get("content", "")
        if action.get("encoding") == "base64":
            import base64
            content = base64.b64decode(content).decode("utf-8", "replace")
        if kind == "create":
            if file_path in files:
                raise HttpError(400, {"message": "A file with this name already exists"})
            files[file_path] = content
        elif kind == "update":
            if file_path not in files:
                raise HttpError(400, {"message": "A file with this name doesn't exist"})
            files[file_path] = content
        elif kind == "delete":
            if file_path not in files:
                raise HttpError(400, {"message": "A file with this name doesn't exist"})
            del files[file_path]
        elif kind == "move":
            previous = action.get("previous_path")
            if previous not in files:
                raise HttpError(400, {"message": "A file with this name doesn't exist"})
            files[file_path] = files.pop(previous) if not content else content
        elif kind == "chmod":
            if file_path not in files:
                raise HttpError(400, {"message": "A file with this name doesn't exist"})
        else:
            raise HttpError(400, {"error": "actions[0][action] does not have a valid value"})
    commit = fake._commit(project, branch, message, files, base)
    body = {k: v for k, v in commit.items() if k != "history"}
    body["stats"] = {"additions": len(actions), "deletions": 0, "total": len(actions)}
    return 201, body, {}


def _get_branch(ctx: _Ctx, ref: str, name: str) -> dict[str, Any]:
    fake = ctx.fake
    project = ctx.project(ref)
    branch = project.branches.get(name)
    if branch is None:
        raise HttpError(404, {"message": "404 Branch Not Found"})
    protected = project.protected_branches.get(name)
    push = min((e["access_level"] for e in protected["push_access_levels"]), default=40) \
        if protected else 30
    merge = min((e["access_level"] for e in protected["merge_access_levels"]), default=40) \
        if protected else 30
    return {"name": name, "commit": {k: v for k, v in branch.commit.items() if k != "history"},
            "merged": False, "protected": protected is not None,
            "developers_can_push": push <= DEVELOPER, "developers_can_merge": merge <= DEVELOPER,
            "can_push": fake._project_access(ctx.user, project) >= push,
            "default": name == project.default_branch,
            "web_url": f"/{fake._project_full_path(project)}/-/tree/{name}"}


def _get_tree(ctx: _Ctx, ref: str) -> list[dict[str, Any]]:
    project = ctx.project(ref)
    branch = project.branches.get(ctx.arg("ref") or project.default_branch)
    if branch is None:
        raise HttpError(404, {"message": "404 Tree Not Found"})
    recursive = _as_bool(ctx.arg("recursive", False))
    prefix = (ctx.arg("path") or "").strip("/")
    entries: dict[str, str] = {}
    for file_path in branch.files:
        if prefix and not file_path.startswith(prefix + "/"):
            continue
        rel = file_path[len(prefix) + 1:] if prefix else file_path
        parts = rel.split("/")
        base = prefix + "/" if prefix else ""
        if recursive:
            for i in range(1, len(parts)):
                entries.setdefault(base + "/".join(parts[:i]), "tree")
            entries[file_path] = "blob"
        else:
            entries.setdefault(base + parts[0], "blob" if len(parts) == 1 else "tree")
    items = [{"id": hashlib.sha1(p.encode()).hexdigest(), "name": p.rsplit("/", 1)[-1],
              "type": t, "path": p, "mode": "040000" if t == "tree" else "100644"}
             for p, t in sorted(entries.items(), key=lambda e: (e[1] != "tree", e[0]))]
    return ctx.paginate(items)


# ---------------------------------------------------------------------- handlers: protections


def _protection_project(ctx: _Ctx, ref: str, writable: bool = False) -> _Project:
    project = ctx.project(ref)
    ctx.need_project(project, MAINTAINER, writable=writable)
    return project


def _list_protected_branches(ctx: _Ctx, ref: str) -> list[dict[str, Any]]:
    project = _protection_project(ctx, ref)
    return [dict(b) for b in ctx.paginate(list(project.protected_branches.values()))]


def _protect_branch(ctx: _Ctx, ref: str) -> Any:
    project = _protection_project(ctx, ref, writable=True)
    name = ctx.require("name")
    if name in project.protected_branches:
        raise HttpError(409, {"message": f"Protected branch '{name}' already exists"})
    entry = ctx.fake._protect_branch(
        project, name, int(ctx.arg("push_access_level", MAINTAINER)),
        int(ctx.arg("merge_access_level", MAINTAINER)),
        _as_bool(ctx.arg("allow_force_push", False)))
    return 201, dict(entry), {}


def _get_protected_branch(ctx: _Ctx, ref: str, name: str) -> dict[str, Any]:
    project = _protection_project(ctx, ref)
    if name not in project.protected_branches:
        raise _not_found()
    return dict(project.protected_branches[name])


def _unprotect_branch(ctx: _Ctx, ref: str, name: str) -> Any:
    project = _protection_project(ctx, ref, writable=True)
    if project.protected_branches.pop(name, None) is None:
        raise _not_found()
    return 204, None, {}


def _list_protected_tags(ctx: _Ctx, ref: str) -> list[dict[str, Any]]:
    project = _protection_project(ctx, ref)
    return [dict(t) for t in ctx.paginate(list(project.protected_tags.values()))]


def _protect_tag(ctx: _Ctx, ref: str) -> Any:
    project = _protection_project(ctx, ref, writable=True)
    name = ctx.require("name")
    if name in project.protected_tags:
        raise HttpError(409, {"message": f"Protected tag '{name}' already exists"})
    entry = {"name": name, "create_access_levels": [
        _level_entry(int(ctx.arg("create_access_level", MAINTAINER)), ctx.next_id)]}
    project.protected_tags[name] = entry
    return 201, dict(entry), {}


def _unprotect_tag(ctx: _Ctx, ref: str, name: str) -> Any:
    project = _protection_project(ctx, ref, writable=True)
    if project.protected_tags.pop(name, None) is None:
        raise _not_found()
    return 204, None, {}


def _env_project(ctx: _Ctx, ref: str, writable: bool = False) -> _Project:
    project = _protection_project(ctx, ref, writable)
    if ctx.fake.tier == "free":
        raise FORBIDDEN  # protected environments are a Premium feature
    return project


def _list_protected_envs(ctx: _Ctx, ref: str) -> list[dict[str, Any]]:
    project = _env_project(ctx, ref)
    return [dict(e) for e in ctx.paginate(list(project.protected_environments.values()))]


def _protect_env(ctx: _Ctx, ref: str) -> Any:
    project = _env_project(ctx, ref, writable=True)
    name = ctx.require("name")
    levels = ctx.arg("deploy_access_levels")
    if not isinstance(levels, list) or not levels:
        raise HttpError(400, {"error": "deploy_access_levels is missing"})
    if name in project.protected_environments:
        raise HttpError(409, {"message": f"Protected environment '{name}' already exists"})
    entry = {"name": name, "deploy_access_levels": [
        {**_level_entry(int(lvl.get("access_level", MAINTAINER)), ctx.next_id),
         "group_inheritance_type": 0} for lvl in levels],
        "required_approval_count": int(ctx.arg("required_approval_count", 0)),
        "approval_rules": []}
    project.protected_environments[name] = entry
    return 201, dict(entry), {}


def _unprotect_env(ctx: _Ctx, ref: str, name: str) -> Any:
    project = _env_project(ctx, ref, writable=True)
    if project.protected_environments.pop(name, None) is None:
        raise _not_found()
    return 204, None, {}


# ---------------------------------------------------------------------- HTTP plumbing


class _Handler(BaseHTTPRequestHandler):
    """Keep-alive HTTP/1.1 handler that hands every request to the fake."""

    protocol_version = "HTTP/1.1"
    server_fake: FakeGitLab
    # Answer in one segment: headers and body written separately would meet the client's
    # delayed ACK (Nagle), costing ~40 ms per request on loopback.
    disable_nagle_algorithm = True
    wbufsize = -1

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - silence stderr
        return

    def _serve(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        body: Any = {}
        ctype = self.headers.get("Content-Type", "")
        if raw:
            if "json" in ctype:
                try:
                    body = json.loads(raw)
                except ValueError:
                    self._send(400, {"error": "body is not valid JSON"}, {})
                    return
            else:
                body = {k: v[-1] for k, v in parse_qs(raw.decode()).items()}
        path, _, qs = self.path.partition("?")
        query = parse_qs(qs, keep_blank_values=True)
        headers = {k.lower(): v for k, v in self.headers.items()}
        base_url = f"http://{self.headers.get('Host') or '127.0.0.1'}"
        status, payload, extra, fault = self.server_fake.handle(
            self.command, path + ("?" + qs if qs else ""), query, body, headers, base_url)
        if fault == "drop":
            self.close_connection = True
            try:
                self.connection.shutdown(2)
            except OSError:
                pass
            return
        self._send(status, payload, extra)

    def _send(self, status: int, payload: Any, headers: dict[str, str]) -> None:
        if payload is None:
            data, ctype = b"", "application/json"
        elif isinstance(payload, str):
            data, ctype = payload.encode(), "text/plain"
        else:
            data, ctype = json.dumps(payload).encode(), "application/json"
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(data)))
        for key, value in headers.items():
            self.send_header(key, value)
        self.end_headers()
        if data and self.command != "HEAD":
            self.wfile.write(data)
        self.wfile.flush()

    do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = _serve


def encode_path(full_path: str) -> str:
    """URL-encode a namespaced path the way GitLab wants it in ``:id`` (``a%2Fb``)."""
    return quote(full_path, safe="")
