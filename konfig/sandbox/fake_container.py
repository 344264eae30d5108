"""A stateful fake of the GKE API (``container.googleapis.com`` v1) for ``konfig bootstrap``,
served over HTTP on 127.0.0.1 for the real :class:`google.cloud.container_v1.ClusterManagerClient`
(``transport="rest"``, ``AnonymousCredentials``, ``api_endpoint="http://127.0.0.1:PORT"``).

Methods (https://cloud.google.com/kubernetes-engine/docs/reference/rest/v1/projects.locations.clusters),
all with ``projects/*/locations/*`` names: clusters get / list / create / update (workload
identity) / setAddons / setResourceLabels, operations get. Requests and responses are the
API's JSON mapping of ``google.container.v1`` messages, parsed and produced with the client
library's own types, so field names and enum encodings are the real ones.

Behaviour copied from GKE, because Konfig's adapter must cope with it:

* GKE operations are not ``google.longrunning``: a mutation answers an ``Operation`` with
  ``status`` RUNNING and the caller polls ``operations.get`` until DONE; here an operation
  is done after ``operation_polls`` polls, and a new cluster is PROVISIONING until its create
  operation is done, then RUNNING;
* one operation at a time per cluster: a second mutation meanwhile answers 400
  ``FAILED_PRECONDITION`` ("an operation is already in progress");
* a cluster name is unique per location (409 ``ALREADY_EXISTS``); an unknown one is 404;
* ``setResourceLabels`` needs the current ``labelFingerprint`` (else 400
  ``FAILED_PRECONDITION``), and every label change makes a new fingerprint;
* private nodes need VPC-native networking (``ipAllocationPolicy.useIpAliases``) and a
  ``/28`` control-plane range, otherwise 400 ``INVALID_ARGUMENT``;
* the network, when given, must be one of :attr:`FakeContainer.networks` (404 otherwise).

Faults are injectable (:meth:`FakeContainer.fail_next`), seeds are direct
(:meth:`FakeContainer.add_cluster`), and every call is recorded in :attr:`calls`.
"""

from __future__ import annotations

import hashlib
import ipaddress
import json
import re
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable
from urllib.parse import parse_qs, urlsplit

from google.cloud import container_v1
from google.protobuf import json_format

_LOCATION = r"projects/([^/]+)/locations/([^/]+)"
Status = container_v1.Cluster.Status
OpStatus = container_v1.Operation.Status


class FakeError(Exception):
    """An error the fake answers with: HTTP status, canonical status name, message."""

    def __init__(self, http_status: int, status: str, message: str) -> None:
        super().__init__(message)
        self.http_status, self.status, self.message = http_status, status, message


@dataclass
class _Operation:
    op: container_v1.Operation
    polls_left: int
    finish: Callable[[], None]
    cluster_key: str


@dataclass
class _Route:
    method: str
    pattern: re.Pattern[str]
    rpc: str
    handler: Callable[..., Any]


@dataclass
class _Fault:
    http_status: int
    status: str
    message: str
    times: int


@dataclass
class _State:
    clusters: dict[str, container_v1.Cluster] = field(default_factory=dict)  # by full name
    operations: dict[str, _Operation] = field(default_factory=dict)  # by full name


class FakeContainer:
    """The fake server. ``start()`` binds an ephemeral port of 127.0.0.1; :attr:`endpoint` is
    the ``api_endpoint`` for the client; ``stop()`` shuts down. ``networks``: network names
    (``projects/P/global/networks/N``) that exist, for clusters placed on a given network."""

    def __init__(self, *, operation_polls: int = 1, networks: tuple[str, ...] = ()) -> None:
        self.operation_polls = operation_polls
        self.networks = set(networks)
        self.calls: list[str] = []
        self._lock = threading.RLock()
        self._state = _State()
        self._faults: dict[str, list[_Fault]] = {}
        self._counter = 0
        self._server: ThreadingHTTPServer | None = None
        self._routes = self._build_routes()

    # ----------------------------------------------------------------- lifecycle

    def start(self) -> "FakeContainer":
        fake = self

        class Handler(_Handler):
            owner = fake

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05},
                         daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> "FakeContainer":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def endpoint(self) -> str:
        assert self._server is not None, "call start() first"
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    # ----------------------------------------------------------------- seeding and inspection

    def add_cluster(self, project: str, location: str, cluster: container_v1.Cluster) -> None:
        """Make a RUNNING cluster exist at once (an adopted or foreign cluster)."""
        with self._lock:
            cluster = container_v1.Cluster(cluster)
            cluster.status = Status.RUNNING
            cluster.location = location
            cluster.self_link = f"https://container.googleapis.com/v1/projects/{project}/locations/{location}/clusters/{cluster.name}"
            cluster.label_fingerprint = _fingerprint(dict(cluster.resource_labels))
            self._state.clusters[f"projects/{project}/locations/{location}/clusters/{cluster.name}"] = cluster

    def cluster(self, project: str, location: str, name: str) -> container_v1.Cluster | None:
        with self._lock:
            found = self._state.clusters.get(f"projects/{project}/locations/{location}/clusters/{name}")
            return container_v1.Cluster(found) if found is not None else None

    def fail_next(self, rpc: str, http_status: int, status: str, message: str = "injected",
                  times: int = 1) -> None:
        """Answer the next ``times`` calls of ``rpc`` (a name in :attr:`calls`) with this error."""
        with self._lock:
            self._faults.setdefault(rpc, []).append(_Fault(http_status, status, message, times))

    # ----------------------------------------------------------------- dispatch

    def _build_routes(self) -> list[_Route]:
        c = rf"^/v1/{_LOCATION}/clusters"
        return [
            _Route("GET", re.compile(rf"{c}/([^/:]+)$"), "GetCluster", self._get),
            _Route("GET", re.compile(rf"{c}$"), "ListClusters", self._list),
            _Route("POST", re.compile(rf"{c}$"), "CreateCluster", self._create),
            _Route("PUT", re.compile(rf"{c}/([^/:]+)$"), "UpdateCluster", self._update),
            _Route("POST", re.compile(rf"{c}/([^/:]+):setAddons$"), "SetAddonsConfig", self._set_addons),
            _Route("POST", re.compile(rf"{c}/([^/:]+):setResourceLabels$"), "SetLabels", self._set_labels),
            _Route("GET", re.compile(rf"^/v1/{_LOCATION}/operations/([^/:]+)$"), "GetOperation",
                   self._get_operation),
        ]

    def dispatch(self, method: str, url: str, body: bytes) -> tuple[int, dict[str, Any]]:
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
                    payload = route.handler(*match.groups(), body=body)
                except FakeError as err:
                    return err.http_status, _error_body(err)
                except Exception as err:  # a bug in the fake: answer it, never hang the client
                    return 500, _error_body(FakeError(500, "INTERNAL", f"fake failed: {err!r}"))
                message = type(payload).pb(payload)
                return 200, json_format.MessageToDict(message, use_integers_for_enums=ints)
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

    # ----------------------------------------------------------------- handlers

    def _cluster(self, project: str, location: str, name: str) -> tuple[str, container_v1.Cluster]:
        key = f"projects/{project}/locations/{location}/clusters/{name}"
        found = self._state.clusters.get(key)
        if found is None:
            raise FakeError(404, "NOT_FOUND", f"Not found: {key}.")
        return key, found

    def _get(self, project: str, location: str, name: str, **_: Any) -> container_v1.Cluster:
        return self._cluster(project, location, name)[1]

    def _list(self, project: str, location: str, **_: Any) -> container_v1.ListClustersResponse:
        prefix = f"projects/{project}/locations/{location}/clusters/"
        return container_v1.ListClustersResponse(
            clusters=[c for k, c in sorted(self._state.clusters.items()) if k.startswith(prefix)])

    def _create(self, project: str, location: str, *, body: bytes) -> container_v1.Operation:
        request = _parse(body, container_v1.CreateClusterRequest)
        cluster = container_v1.Cluster(request.cluster)
        key = f"projects/{project}/locations/{location}/clusters/{cluster.name}"
        if not re.match(r"^[a-z]([-a-z0-9]{0,38}[a-z0-9])?$", cluster.name or ""):
            raise FakeError(400, "INVALID_ARGUMENT", f"invalid cluster name {cluster.name!r}")
        if key in self._state.clusters:
            raise FakeError(409, "ALREADY_EXISTS", f"Already exists: {key}.")
        _check_private(cluster)
        if cluster.network and f"projects/{project}/global/networks/{cluster.network}" not in self.networks \
                and cluster.network not in self.networks:
            raise FakeError(404, "NOT_FOUND", f"network {cluster.network!r} not found")
        cluster.status = Status.PROVISIONING
        cluster.location = location
        cluster.self_link = f"https://container.googleapis.com/v1/{key}"
        cluster.label_fingerprint = _fingerprint(dict(cluster.resource_labels))
        cluster.endpoint = "10.0.0.2" if cluster.private_cluster_config.enable_private_endpoint else "34.1.2.3"
        self._state.clusters[key] = cluster

        def finish() -> None:
            cluster.status = Status.RUNNING

        return self._operation(project, location, key, container_v1.Operation.Type.CREATE_CLUSTER, finish)

    def _update(self, project: str, location: str, name: str, *, body: bytes) -> container_v1.Operation:
        key, cluster = self._cluster(project, location, name)
        self._require_idle(key, cluster)
        update = _parse(body, container_v1.UpdateClusterRequest).update
        pool = update.desired_workload_identity_config.workload_pool

        def finish() -> None:
            if pool:
                cluster.workload_identity_config.workload_pool = pool
            cluster.status = Status.RUNNING

        cluster.status = Status.RECONCILING
        return self._operation(project, location, key, container_v1.Operation.Type.UPDATE_CLUSTER, finish)

    def _set_addons(self, project: str, location: str, name: str, *, body: bytes) -> container_v1.Operation:
        key, cluster = self._cluster(project, location, name)
        self._require_idle(key, cluster)
        addons = _parse(body, container_v1.SetAddonsConfigRequest).addons_config

        def finish() -> None:
            cluster.addons_config = addons
            cluster.status = Status.RUNNING

        cluster.status = Status.RECONCILING
        return self._operation(project, location, key, container_v1.Operation.Type.UPDATE_CLUSTER, finish)

    def _set_labels(self, project: str, location: str, name: str, *, body: bytes) -> container_v1.Operation:
        key, cluster = self._cluster(project, location, name)
        self._require_idle(key, cluster)
        request = _parse(body, container_v1.SetLabelsRequest)
        if request.label_fingerprint != cluster.label_fingerprint:
            raise FakeError(400, "FAILED_PRECONDITION", "Labels could not be set due to fingerprint mismatch.")
        labels = dict(request.resource_labels)

        def finish() -> None:
            cluster.resource_labels = labels
            cluster.label_fingerprint = _fingerprint(labels)

        return self._operation(project, location, key, container_v1.Operation.Type.SET_LABELS, finish)

    def _get_operation(self, project: str, location: str, op_id: str, **_: Any) -> container_v1.Operation:
        name = f"projects/{project}/locations/{location}/operations/{op_id}"
        pending = self._state.operations.get(name)
        if pending is None:
            raise FakeError(404, "NOT_FOUND", f"Not found: {name}.")
        if pending.op.status != OpStatus.DONE:
            if pending.polls_left > 0:
                pending.polls_left -= 1
            else:
                pending.finish()
                pending.op.status = OpStatus.DONE
        return pending.op

    # ----------------------------------------------------------------- helpers

    def _require_idle(self, key: str, cluster: container_v1.Cluster) -> None:
        busy = any(o.cluster_key == key and o.op.status != OpStatus.DONE
                   for o in self._state.operations.values())
        if busy or cluster.status == Status.PROVISIONING:
            raise FakeError(400, "FAILED_PRECONDITION",
                            f"Cluster is running incompatible operation; an operation is already in progress on {key}.")

    def _operation(self, project: str, location: str, key: str, kind: Any,
                   finish: Callable[[], None]) -> container_v1.Operation:
        self._counter += 1
        op_id = f"operation-{self._counter}"
        name = f"projects/{project}/locations/{location}/operations/{op_id}"
        op = container_v1.Operation(name=op_id, operation_type=kind, status=OpStatus.RUNNING,
                                    self_link=f"https://container.googleapis.com/v1/{name}",
                                    target_link=f"https://container.googleapis.com/v1/{key}",
                                    location=location)
        pending = _Operation(op, self.operation_polls, finish, key)
        self._state.operations[name] = pending
        if self.operation_polls == 0:
            finish()
            op.status = OpStatus.DONE
        return op


def _check_private(cluster: container_v1.Cluster) -> None:
    private = cluster.private_cluster_config
    if not private.enable_private_nodes:
        return
    if not cluster.ip_allocation_policy.use_ip_aliases:
        raise FakeError(400, "INVALID_ARGUMENT",
                        "Private clusters must be VPC-native (ipAllocationPolicy.useIpAliases).")
    try:
        block = ipaddress.ip_network(private.master_ipv4_cidr_block)
    except ValueError:
        block = None
    if block is None or block.prefixlen != 28:
        raise FakeError(400, "INVALID_ARGUMENT", "masterIpv4CidrBlock must be a /28 range.")


def _fingerprint(labels: dict[str, str]) -> str:
    return hashlib.sha256(json.dumps(sorted(labels.items())).encode()).hexdigest()[:16]


def _parse(body: bytes, message_type: Any) -> Any:
    try:
        pb = json_format.Parse(body or b"{}", message_type.pb(message_type()))
    except json_format.ParseError as err:
        raise FakeError(400, "INVALID_ARGUMENT", f"invalid JSON payload: {err}") from err
    return message_type.wrap(pb)


def _error_body(err: FakeError) -> dict[str, Any]:
    return {"error": {"code": err.http_status, "message": err.message, "status": err.status}}


class _Handler(BaseHTTPRequestHandler):
    owner: FakeContainer
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True

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
