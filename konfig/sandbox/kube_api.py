"""A Kubernetes API emulator served over HTTP on 127.0.0.1, for tests and ``konfig sandbox``.

The real ``kubernetes`` Python client (typed APIs, ``watch.Watch``, ``dynamic.DynamicClient``)
and the real kopf operator framework run against it unmodified::

    with KubeEmulator(fake_config_connector=True) as kube:
        config = kubernetes.client.Configuration(host=kube.url)
        core = kubernetes.client.CoreV1Api(kubernetes.client.ApiClient(config))
        kube.install_crds([crd_dict, ...])
        kubeconfig = kube.kubeconfig_path(tmp_path)   # for kopf / kubectl-style loaders

What it serves (paths and shapes from https://kubernetes.io/docs/reference/using-api/api-concepts/):

- Discovery: ``/version``, ``/api``, ``/api/v1``, ``/apis``, ``/apis/{group}``,
  ``/apis/{group}/{version}`` (trailing slashes accepted). No ``/openapi``, no aggregated
  discovery (clients fall back to these documents).
- Built-in kinds: v1 Namespace, ConfigMap, Secret, ServiceAccount, Service, Event;
  events.k8s.io/v1 Event (stored apart from v1 Event); apps/v1 Deployment;
  rbac.authorization.k8s.io/v1 Role, RoleBinding, ClusterRole, ClusterRoleBinding;
  coordination.k8s.io/v1 Lease; apiextensions.k8s.io/v1 CustomResourceDefinition. Creating a
  CRD serves its resource at once (scope, names, shortNames, categories, status subresource);
  deleting it deletes its objects first. Namespaces ``default``, ``kube-system``,
  ``kube-public`` and ``kube-node-lease`` exist from the start.
- CRUD, list (``limit``/``continue``), watch (also ``/watch/`` paths and single objects),
  label and field selectors, PUT/PATCH with optimistic concurrency, merge / JSON /
  strategic-merge patches, server-side apply with managedFields, the status subresource,
  ``dryRun=All``, finalizers, namespace termination, ownerReference garbage collection
  (Background, Foreground, Orphan). See the sibling modules for the precise rules: kube_store,
  kube_patch, kube_apply, kube_schema, kube_selectors.
- Like the real server: apply that creates answers 201 (the typed
  ``CustomObjectsApi.patch_*`` methods of kubernetes-client 37 map only 200 and return None
  then; use ``_preload_content=False`` or the DynamicClient); a delete that removes at once
  answers a ``Status`` for built-in kinds and the object for custom resources; removing the
  last finalizer emits only DELETED; an unchanged write keeps the resourceVersion and emits
  nothing; ``default``, ``kube-system`` and ``kube-public`` cannot be deleted (403).

Deliberate simplifications (tests should not depend on them):

- No authentication or authorization: any bearer token is accepted. ``fieldValidation`` is
  honoured only as ``Strict`` on server-side apply of custom resources: an undeclared field is
  refused with the real server's answer (500, "failed to create typed patch object ...: .spec.x:
  field not declared in schema"); otherwise unknown fields are pruned silently.
- No defaulting of built-in kinds beyond Namespace (labels, finalizers, phase) and Secret
  (``stringData`` folded into ``data``, ``type: Opaque``); ``metadata.generation`` is kept for
  every kind. Custom resources are pruned, defaulted and validated against their schema.
- Strategic merge patch merges lists of maps on ``name`` (``type`` for conditions) and is
  refused with 415 on custom resources, like the real server.
- Server-side apply decides list types heuristically (kube_apply) and reports conflicts only on
  leaf fields; ``force=true`` takes the conflicting fields over.
- A CRD is Established at once; namespace termination deletes the contents synchronously, so
  an empty namespace disappears within the DELETE call (the real one stays Terminating briefly).
- Garbage collection runs synchronously when an owner goes away (the real GC is eventually
  consistent); dependents created with already-missing owners are not collected.
- Watches replay from a bounded history; a resourceVersion older than it gets a 410 Expired
  ``ERROR`` event. Bookmarks are sent every ``bookmark_interval`` seconds when asked for.
- The optional fake Config Connector marks objects of ``*.cnrm.cloud.google.com`` groups
  (whose CRDs declare the status subresource) ``Ready`` (or not, see ``FAIL_ANNOTATION``)
  ``config_connector_delay`` seconds after each create or spec change. It adds no finalizers:
  deleting such an object is immediate.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aiohttp import web
from ruamel.yaml import YAML
from ruamel.yaml.error import YAMLError

from konfig.sandbox.kube_selectors import Selector
from konfig.sandbox.kube_store import APPLY_PATCH, PATCH_TYPES, Store, now_rfc3339
from konfig.sandbox.kube_types import CRD_GROUP, ResourceType, StatusError

CNRM_GROUP_SUFFIX = ".cnrm.cloud.google.com"
CNRM_MANAGER = "cnrm-controller-manager"
FAIL_ANNOTATION = "sandbox.konfig.dev/cnrm-fail"
CONTEXT_KIND = "ConfigConnectorContext"
"""On a Config Connector object, makes the fake controller report Ready=False with this
annotation's value as the message (reason ``UpdateFailed``), to test failure roll-ups."""

_log = logging.getLogger(__name__)
_RECORDED = web.RequestKey("konfig_recorded", bool)  # the request log already has this request

KUBERNETES_VERSION = {"major": "1", "minor": "30", "gitVersion": "v1.30.0-konfig-sandbox",
                      "gitCommit": "0000000000000000000000000000000000000000", "gitTreeState": "clean",
                      "buildDate": "2024-04-17T00:00:00Z", "goVersion": "go1.22.2", "compiler": "gc",
                      "platform": "linux/amd64"}


@dataclass(frozen=True)
class RequestRecord:
    """One served HTTP request: method, path, query parameters, response status, the request's
    Content-Type, the parsed JSON/YAML body (None if empty) and the User-Agent."""

    method: str
    path: str
    query: dict[str, str]
    status: int
    content_type: str | None
    body: Any
    user_agent: str | None


def _refuse_undeclared(rtype: ResourceType, namespace: str | None, name: str, body: Any) -> None:
    """kube-apiserver's answer to a strict server-side apply with fields the schema lacks (it
    fails building the typed patch, before any validation, with a 500)."""
    from konfig.sandbox.kube_schema import undeclared

    paths = undeclared(body, rtype.schema, root=True) if isinstance(body, dict) else []
    if paths:
        where = f"{namespace}/{name}" if namespace else name
        raise StatusError(500, "InternalError", f"failed to create typed patch object ({where}; "
                          f"{rtype.api_version}, Kind={rtype.kind}): {paths[0]}: field not declared in schema")


def minimal_crd(group: str, kind: str, *, version: str = "v1", plural: str | None = None,
                namespaced: bool = True, status_subresource: bool = True,
                short_names: Iterable[str] = (), schema: dict[str, Any] | None = None) -> dict[str, Any]:
    """A CustomResourceDefinition dict (apiextensions.k8s.io/v1) serving one version, with a
    schema preserving unknown fields unless ``schema`` is given. Handy for Config Connector kinds
    in tests (e.g. ``minimal_crd("iam.cnrm.cloud.google.com", "IAMServiceAccount")``)."""
    plural = plural or kind.lower() + "s"
    version_entry: dict[str, Any] = {
        "name": version, "served": True, "storage": True,
        "schema": {"openAPIV3Schema": schema or {"type": "object", "x-kubernetes-preserve-unknown-fields": True}},
    }
    if status_subresource:
        version_entry["subresources"] = {"status": {}}
    names: dict[str, Any] = {"kind": kind, "listKind": f"{kind}List", "plural": plural, "singular": kind.lower()}
    if short_names:
        names["shortNames"] = list(short_names)
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"{plural}.{group}"},
        "spec": {"group": group, "scope": "Namespaced" if namespaced else "Cluster",
                 "names": names, "versions": [version_entry]},
    }


def fake_run_uri(obj: dict) -> str:
    """A stand-in for the URL Cloud Run gives a service, ``https://<name>-<project
    number>.<region>.run.app`` (https://cloud.google.com/run/docs/triggering/https-request),
    with a number made from the namespace so it is stable."""
    import hashlib

    number = int(hashlib.sha256(obj["metadata"].get("namespace", "").encode()).hexdigest(), 16) % 10**12
    region = (obj.get("spec") or {}).get("location", "us-central1")
    return f"https://{obj['metadata']['name']}-{number:012d}.{region}.run.app"


def config_connector_status(obj: dict[str, Any]) -> dict[str, Any]:
    """The status a stand-in Config Connector gives ``obj`` as it is now (no timestamps): a
    ConfigConnectorContext ``healthy``; any other object a ``Ready`` condition (``False`` with
    the :data:`FAIL_ANNOTATION` message when set) and ``observedGeneration``; a RunService also
    its :func:`fake_run_uri`. Shared by the emulator and the real test cluster's stand-in, so
    both report the same."""
    failure = (obj["metadata"].get("annotations") or {}).get(FAIL_ANNOTATION)
    if obj.get("kind") == CONTEXT_KIND:
        return {"healthy": not failure, **({"errors": [failure]} if failure else {})}
    condition = ({"type": "Ready", "status": "False", "reason": "UpdateFailed", "message": failure}
                 if failure else
                 {"type": "Ready", "status": "True", "reason": "UpToDate",
                  "message": "The resource is up to date"})
    status = {"conditions": [condition], "observedGeneration": obj["metadata"].get("generation")}
    if obj.get("kind") == "RunService" and not failure:
        status["uri"] = fake_run_uri(obj)
    return status


class _FakeConfigConnector:
    """Marks Config Connector objects Ready after each create/spec change, like the real
    controller's status: ``conditions: [{type: Ready, status: "True", reason: UpToDate,
    message: The resource is up to date}]`` and ``observedGeneration``
    (https://cloud.google.com/config-connector/docs/how-to/monitoring-your-resources); and
    ConfigConnectorContexts ``healthy: true``, as Config Connector's operator does
    (https://cloud.google.com/config-connector/docs/how-to/install-namespaced)."""

    def __init__(self, emulator: KubeEmulator):
        self._emulator = emulator

    def on_change(self, event: str, rtype: ResourceType, old: dict | None, new: dict | None) -> None:
        emulator = self._emulator
        if not emulator.fake_config_connector or event == "DELETED" or new is None:
            return
        if not rtype.group.endswith(CNRM_GROUP_SUFFIX) or not rtype.has_status:
            return  # Config Connector CRDs all declare the status subresource
        meta = new["metadata"]
        if meta.get("deletionTimestamp") or self._desired_status(new) == _status_core(new):
            return
        emulator._call_later(emulator.config_connector_delay, self._reconcile, rtype.storage_key,
                             meta.get("namespace"), meta["name"], meta["uid"])

    def sweep(self) -> None:
        """Schedule a reconcile of every existing Config Connector object."""
        store = self._emulator.store
        with store.lock:
            for rtype in store.types.storage_types():
                if rtype.group.endswith(CNRM_GROUP_SUFFIX):
                    for obj in store.list(rtype)["items"]:
                        self.on_change("MODIFIED", rtype, None, obj)

    @staticmethod
    def _desired_status(obj: dict[str, Any]) -> dict[str, Any]:
        return config_connector_status(obj)

    def _reconcile(self, storage: tuple[str, str], namespace: str | None, name: str, uid: str) -> None:
        store = self._emulator.store
        rtype = next(iter(store.types.versions_of(*storage)), None)
        if rtype is None or not self._emulator.fake_config_connector:
            return
        try:
            obj = store.get(rtype, namespace, name)
        except StatusError:
            return
        if obj["metadata"]["uid"] != uid or obj["metadata"].get("deletionTimestamp"):
            return
        desired = self._desired_status(obj)
        if desired == _status_core(obj):
            return
        for condition in desired.get("conditions", []):
            condition["lastTransitionTime"] = now_rfc3339()
        status = {**(obj.get("status") or {}), **desired}
        body = {"metadata": {"resourceVersion": obj["metadata"]["resourceVersion"]}, "status": status}
        with contextlib.suppress(StatusError):  # changed meanwhile: the next event reschedules
            store.patch(rtype, namespace, name, "application/merge-patch+json", body, manager=CNRM_MANAGER,
                        subresource="status" if rtype.has_status else None)


def _status_core(obj: dict[str, Any]) -> dict[str, Any]:
    """The status fields the fake controller owns, without timestamps, for comparison."""
    status = obj.get("status") or {}
    if obj.get("kind") == CONTEXT_KIND:
        return {k: status[k] for k in ("healthy", "errors") if k in status}
    conditions = [{k: v for k, v in c.items() if k != "lastTransitionTime"}
                  for c in status.get("conditions") or [] if c.get("type") == "Ready"]
    return {"conditions": conditions, "observedGeneration": status.get("observedGeneration")}


class KubeEmulator:
    """An in-process Kubernetes API server on 127.0.0.1 (aiohttp, in a background thread).

    ``start()`` returns the base URL (ephemeral port unless ``port`` is given); ``stop()`` ends
    watches and the server. Usable as a context manager. ``store`` is the underlying
    konfig.sandbox.kube_store.Store. ``fake_config_connector`` may be toggled at any time."""

    def __init__(self, *, host: str = "127.0.0.1", port: int = 0, fake_config_connector: bool = False,
                 config_connector_delay: float = 0.05, bookmark_interval: float = 10.0,
                 history_size: int = 10000) -> None:
        self.host = host
        self.port = port
        self._fake_config_connector = fake_config_connector
        self.config_connector_delay = config_connector_delay
        self.bookmark_interval = bookmark_interval
        self.store = Store(history_size=history_size)
        self._requests: list[RequestRecord] = []
        self._requests_lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._runner: web.AppRunner | None = None
        self._yaml = YAML(typ="safe")
        self._config_connector = _FakeConfigConnector(self)
        self.store.add_listener(self._config_connector.on_change)

    @property
    def fake_config_connector(self) -> bool:
        """Whether Config Connector objects are marked Ready (see _FakeConfigConnector).
        Turning it on also reconciles the objects that already exist."""
        return self._fake_config_connector

    @fake_config_connector.setter
    def fake_config_connector(self, enabled: bool) -> None:
        self._fake_config_connector = enabled
        if enabled:
            self._config_connector.sweep()

    # -- lifecycle ----------------------------------------------------------------------------

    @property
    def url(self) -> str:
        """The base URL, e.g. ``http://127.0.0.1:41234``. Raises RuntimeError if not started."""
        if self._loop is None:
            raise RuntimeError("the emulator is not started")
        return f"http://{self.host}:{self.port}"

    def start(self) -> str:
        """Start serving in a background thread; returns the base URL."""
        if self._loop is not None:
            return self.url
        loop = asyncio.new_event_loop()
        ready: list[BaseException | None] = []
        started = threading.Event()

        def run() -> None:
            asyncio.set_event_loop(loop)
            try:
                loop.run_until_complete(self._serve())
                ready.append(None)
            except BaseException as exc:  # noqa: BLE001 - reported to the starting thread
                ready.append(exc)
                started.set()
                return
            started.set()
            loop.run_forever()
            loop.run_until_complete(self._shutdown())
            loop.close()

        self._loop = loop
        self._thread = threading.Thread(target=run, name="kube-emulator", daemon=True)
        self._thread.start()
        started.wait()
        if ready[0] is not None:
            self._loop = None
            raise ready[0]
        return self.url

    async def _serve(self) -> None:
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, handler_cancellation=True, access_log=None, shutdown_timeout=1.0)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port)
        await site.start()
        self.port = self._runner.addresses[0][1]  # the ephemeral port chosen by the OS

    async def _shutdown(self) -> None:
        self.store.close_all_watches()
        await asyncio.sleep(0)
        if self._runner is not None:
            await self._runner.cleanup()

    def stop(self) -> None:
        """Stop the server (ending open watches) and its thread."""
        loop, thread = self._loop, self._thread
        if loop is None or thread is None:
            return
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=10)
        self._loop = None
        self._thread = None

    def __enter__(self) -> KubeEmulator:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _call_later(self, delay: float, func: Callable[..., None], *args: Any) -> None:
        """Run ``func(*args)`` on the server loop after ``delay`` seconds (thread-safe)."""
        loop = self._loop
        if loop is None or loop.is_closed():
            return
        with contextlib.suppress(RuntimeError):  # loop closing
            loop.call_soon_threadsafe(loop.call_later, delay, func, *args)

    # -- client configuration -------------------------------------------------------------------

    def kubeconfig(self, namespace: str = "default") -> dict[str, Any]:
        """A kubeconfig dict (clusters/users/contexts, current-context ``konfig-sandbox``) for the
        kubernetes client's ``load_kube_config`` and kopf's login."""
        name = "konfig-sandbox"
        return {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{"name": name, "cluster": {"server": self.url}}],
            "users": [{"name": name, "user": {"token": "konfig-sandbox"}}],
            "contexts": [{"name": name, "context": {"cluster": name, "user": name, "namespace": namespace}}],
            "current-context": name,
            "preferences": {},
        }

    def kubeconfig_path(self, directory: str | Path, namespace: str = "default") -> Path:
        """Write the kubeconfig as ``<directory>/kubeconfig.yaml``; returns its path."""
        path = Path(directory) / "kubeconfig.yaml"
        yaml = YAML()
        yaml.default_flow_style = False
        with path.open("w", encoding="utf-8") as stream:
            yaml.dump(self.kubeconfig(namespace), stream)
        return path

    def client_configuration(self) -> Any:
        """A ``kubernetes.client.Configuration`` pointing at the emulator."""
        import kubernetes.client

        return kubernetes.client.Configuration(host=self.url)

    # -- in-process accessors -------------------------------------------------------------------

    def _type(self, api_version: str, kind: str) -> ResourceType:
        rtype = self.store.find(api_version, kind)
        if rtype is None:
            raise KeyError(f"{api_version} {kind} is not served")
        return rtype

    def install_crds(self, crds: Iterable[dict[str, Any]]) -> None:
        """Create (or replace) CustomResourceDefinitions; their resources are served at once.
        Raises StatusError (e.g. 422 for an invalid CRD)."""
        crd_type = self._type(f"{CRD_GROUP}/v1", "CustomResourceDefinition")
        for crd in crds:
            name = crd["metadata"]["name"]
            try:
                current = self.store.get(crd_type, None, name)
            except StatusError:
                self.store.create(crd_type, None, crd, manager="konfig-sandbox")
            else:
                body = {**crd, "metadata": {**crd["metadata"],
                                            "resourceVersion": current["metadata"]["resourceVersion"]}}
                self.store.replace(crd_type, None, name, body, manager="konfig-sandbox")

    def get(self, api_version: str, kind: str, namespace: str | None, name: str) -> dict[str, Any] | None:
        """The object as a dict, or None if absent. Raises KeyError for a kind not served."""
        try:
            return self.store.get(self._type(api_version, kind), namespace, name)
        except StatusError:
            return None

    def list(self, api_version: str, kind: str, namespace: str | None = None,
             label_selector: str | None = None, field_selector: str | None = None) -> list[dict[str, Any]]:
        """Objects of a kind (in one namespace, or all), sorted by namespace and name."""
        selector = Selector.parse(label_selector, field_selector)
        return self.store.list(self._type(api_version, kind), namespace, selector)["items"]

    def create(self, obj: dict[str, Any], manager: str = "konfig-sandbox") -> dict[str, Any]:
        """Create an object from its full dict (apiVersion, kind, metadata.namespace). Raises
        StatusError as the HTTP API would."""
        rtype = self._type(obj["apiVersion"], obj["kind"])
        namespace = (obj.get("metadata") or {}).get("namespace") or ("default" if rtype.namespaced else None)
        return self.store.create(rtype, namespace, obj, manager=manager)

    def delete(self, api_version: str, kind: str, namespace: str | None, name: str,
               propagation: str | None = None) -> None:
        """Delete an object (finalizers and garbage collection apply). Raises StatusError 404."""
        self.store.delete(self._type(api_version, kind), namespace, name, propagation=propagation)

    def wait_for(self, api_version: str, kind: str, namespace: str | None, name: str,
                 predicate: Callable[[dict[str, Any] | None], Any], timeout: float = 10.0) -> dict[str, Any] | None:
        """Block until ``predicate(object or None)`` is truthy (re-checked after every change,
        no polling); returns the object. Raises TimeoutError."""
        rtype = self._type(api_version, kind)

        def check() -> Any:
            try:
                obj: dict[str, Any] | None = self.store.get(rtype, namespace, name)
            except StatusError:
                obj = None
            return (obj,) if predicate(obj) else None

        return self.store.wait(check, timeout)[0]

    def wait(self, predicate: Callable[[], Any], timeout: float = 10.0) -> Any:
        """Block until ``predicate()`` is truthy, re-checking after every change of the cluster
        state and every logged request (no polling); returns its value. Raises TimeoutError."""
        return self.store.wait(predicate, timeout)

    @property
    def requests(self) -> list[RequestRecord]:
        """A copy of the request log, oldest first."""
        with self._requests_lock:
            return list(self._requests)

    def clear_requests(self) -> None:
        """Empty the request log."""
        with self._requests_lock:
            self._requests.clear()

    # -- HTTP -----------------------------------------------------------------------------------

    def _record(self, request: web.Request, status: int, body: Any) -> None:
        with self._requests_lock:
            self._requests.append(RequestRecord(
                method=request.method, path=request.path, query=dict(request.query), status=status,
                content_type=request.headers.get("Content-Type"), body=body,
                user_agent=request.headers.get("User-Agent")))
        self.store.notify()

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        body: Any = None
        try:
            body = await self._read_body(request)
            response = await self._route(request, body)
        except StatusError as exc:
            response = web.json_response(exc.to_status(), status=exc.code)
        except Exception as exc:  # noqa: BLE001 - an emulator bug must still answer a Status
            _log.exception("kube emulator failed on %s %s", request.method, request.path_qs)
            error = StatusError(500, "InternalError", f"emulator error: {exc!r}")
            response = web.json_response(error.to_status(), status=500)
        if not request.get(_RECORDED):
            self._record(request, response.status, body)
        return response

    async def _read_body(self, request: web.Request) -> Any:
        raw = await request.read()
        if not raw.strip():
            return None
        try:
            return json.loads(raw)
        except ValueError:
            if request.content_type == APPLY_PATCH or "yaml" in request.content_type:
                try:
                    return self._yaml.load(raw.decode())
                except (YAMLError, UnicodeDecodeError) as exc:
                    raise StatusError.bad_request(f"invalid YAML body: {exc}") from exc
            raise StatusError.bad_request("the request body is not valid JSON") from None

    async def _route(self, request: web.Request, body: Any) -> web.StreamResponse:
        parts = [p for p in request.path.split("/") if p]
        method = request.method
        if parts == ["version"]:
            return web.json_response(KUBERNETES_VERSION)
        if not parts or parts[0] not in ("api", "apis"):
            raise StatusError.no_route()
        with self.store.lock:  # discovery documents are read consistently
            if parts == ["api"]:
                return web.json_response({"kind": "APIVersions", "versions": ["v1"], "serverAddressByClientCIDRs": [
                    {"clientCIDR": "0.0.0.0/0", "serverAddress": f"{self.host}:{self.port}"}]})
            if parts == ["apis"]:
                return web.json_response(self.store.types.api_group_list())
            if parts[0] == "apis" and len(parts) == 2:
                doc = self.store.types.api_group(parts[1])
                if doc is None:
                    raise StatusError.no_route()
                return web.json_response(doc)
            if parts[0] == "api":
                group, version, rest = "", parts[1], parts[2:]
            else:
                group, version, rest = parts[1], parts[2], parts[3:]
            if not rest:
                doc = self.store.types.api_resource_list(group, version)
                if doc is None or method != "GET":
                    raise StatusError.no_route()
                return web.json_response(doc)
        watch = False
        if rest[0] == "watch":
            watch, rest = True, rest[1:]
        namespace: str | None = None
        if (len(rest) >= 3 and rest[0] == "namespaces"
                and not (group == "" and len(rest) == 3 and rest[2] in ("status", "finalize"))):
            namespace, rest = rest[1], rest[2:]
        if not rest or len(rest) > 3:
            raise StatusError.no_route()
        plural, name, sub = rest[0], (rest[1] if len(rest) > 1 else None), (rest[2] if len(rest) > 2 else None)
        with self.store.lock:
            rtype = self.store.types.lookup(group, version, plural)
        if rtype is None or (namespace is not None and not rtype.namespaced):
            raise StatusError.no_route()
        if sub is not None and sub not in rtype.subresources:
            raise StatusError.no_route()
        if rtype.namespaced and name is not None and namespace is None:
            raise StatusError.no_route()
        query = request.query
        watch = watch or _truthy(query.get("watch"))
        if name is None:
            return await self._collection(request, rtype, namespace, body, watch)
        if watch and request.method == "GET" and sub is None:  # watching one object by name
            selector = Selector.parse(query.get("labelSelector"), f"metadata.name={name}")
            return await self._watch(request, rtype, namespace, selector)
        return await self._item(request, rtype, namespace, name, sub, body)

    async def _collection(self, request: web.Request, rtype: ResourceType, namespace: str | None, body: Any,
                          watch: bool) -> web.StreamResponse:
        query = request.query
        store = self.store
        if request.method == "GET":
            selector = Selector.parse(query.get("labelSelector"), query.get("fieldSelector"))
            if watch:
                return await self._watch(request, rtype, namespace, selector)
            limit = int(query["limit"]) if query.get("limit", "").isdigit() else None
            return web.json_response(store.list(rtype, namespace, selector, limit or None, query.get("continue")))
        if request.method == "POST":
            if rtype.namespaced and namespace is None:
                raise StatusError.method_not_allowed()
            created = store.create(rtype, namespace, body, manager=_manager(request),
                                   dry_run=_dry_run(request, body))
            return web.json_response(created, status=201)
        if request.method == "DELETE":
            selector = Selector.parse(query.get("labelSelector"), query.get("fieldSelector"))
            propagation = query.get("propagationPolicy") or (body or {}).get("propagationPolicy")
            return web.json_response(store.delete_collection(rtype, namespace, selector, propagation=propagation))
        raise StatusError.method_not_allowed()

    async def _item(self, request: web.Request, rtype: ResourceType, namespace: str | None, name: str,
                    sub: str | None, body: Any) -> web.StreamResponse:
        store, query, method = self.store, request.query, request.method
        if method == "GET":
            return web.json_response(store.get(rtype, namespace, name))
        if method == "PUT":
            return web.json_response(store.replace(rtype, namespace, name, body, manager=_manager(request),
                                                   subresource=sub, dry_run=_dry_run(request, body)))
        if method == "PATCH":
            content_type = request.content_type
            if content_type not in PATCH_TYPES:
                raise StatusError.unsupported_media_type(content_type)
            manager = query.get("fieldManager") or (None if content_type == APPLY_PATCH else _manager(request))
            if content_type == APPLY_PATCH and query.get("fieldValidation") == "Strict" and rtype.custom:
                _refuse_undeclared(rtype, namespace, name, body)
            obj, created = store.patch(rtype, namespace, name, content_type, body, manager=manager,
                                       subresource=sub, force=_truthy(query.get("force")),
                                       dry_run=_dry_run(request, body))
            return web.json_response(obj, status=201 if created else 200)
        if method == "DELETE" and sub is None:
            options = body if isinstance(body, dict) else {}
            propagation = query.get("propagationPolicy") or options.get("propagationPolicy")
            if propagation is None and options.get("orphanDependents") is True:
                propagation = "Orphan"
            result, _ = store.delete(rtype, namespace, name, propagation=propagation,
                                     preconditions=options.get("preconditions"),
                                     dry_run=_dry_run(request, body))
            return web.json_response(result)
        raise StatusError.method_not_allowed()

    async def _watch(self, request: web.Request, rtype: ResourceType, namespace: str | None,
                     selector: Selector) -> web.StreamResponse:
        """Stream watch events as JSON lines until timeoutSeconds, client disconnect or stop."""
        query = request.query
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[tuple[str | None, Any]] = asyncio.Queue()

        def deliver(event_type: str | None, obj: Any) -> None:
            with contextlib.suppress(RuntimeError):  # loop already closed at shutdown
                loop.call_soon_threadsafe(queue.put_nowait, (event_type, obj))

        bookmarks = _truthy(query.get("allowWatchBookmarks"))
        send_initial = _truthy(query.get("sendInitialEvents"))
        timeout = float(query["timeoutSeconds"]) if query.get("timeoutSeconds") else None
        response = web.StreamResponse(status=200, headers={"Content-Type": "application/json"})
        try:
            sub, initial, last_rv = self.store.watch(rtype, namespace, selector, query.get("resourceVersion"),
                                                     send_initial, deliver)
        except StatusError as exc:
            if exc.code != 410:
                raise
            await response.prepare(request)
            await response.write(_line({"type": "ERROR", "object": exc.to_status()}))
            await response.write_eof()
            return response

        def bookmark(rv: int, initial_end: bool = False) -> bytes:
            meta: dict[str, Any] = {"resourceVersion": str(rv)}
            if initial_end:
                meta["annotations"] = {"k8s.io/initial-events-end": "true"}
            return _line({"type": "BOOKMARK", "object": {"kind": rtype.kind, "apiVersion": rtype.api_version,
                                                         "metadata": meta}})

        deadline = time.monotonic() + timeout if timeout else None
        self._record(request, 200, None)  # logged when the stream starts, not when it ends
        request[_RECORDED] = True
        try:
            await response.prepare(request)
            for event_type, obj in initial:
                await response.write(_line({"type": event_type, "object": obj}))
            if send_initial and bookmarks:
                await response.write(bookmark(last_rv, initial_end=True))
            next_bookmark = time.monotonic() + self.bookmark_interval
            while True:
                now = time.monotonic()
                if deadline is not None and now >= deadline:
                    break
                wake = min(1.0, (deadline - now) if deadline else 1.0,
                           max(0.0, next_bookmark - now) if bookmarks else 1.0)
                try:
                    event_type, obj = await asyncio.wait_for(queue.get(), timeout=wake)
                except TimeoutError:
                    transport = request.transport
                    if transport is None or transport.is_closing():
                        break
                    if bookmarks and time.monotonic() >= next_bookmark:
                        await response.write(bookmark(last_rv))
                        next_bookmark = time.monotonic() + self.bookmark_interval
                    continue
                if event_type is None:
                    break
                if event_type == "RV":
                    last_rv = max(last_rv, obj)
                    continue
                last_rv = max(last_rv, int(obj["metadata"]["resourceVersion"]))
                await response.write(_line({"type": event_type, "object": obj}))
            await response.write_eof()
        except ConnectionError:
            pass  # the client went away
        finally:
            self.store.unsubscribe(sub)
        return response


def _line(event: dict[str, Any]) -> bytes:
    return (json.dumps(event, separators=(",", ":")) + "\n").encode()


def _truthy(value: str | None) -> bool:
    return (value or "").lower() in ("true", "1")


def _dry_run(request: web.Request, body: Any) -> bool:
    if request.query.get("dryRun") == "All":
        return True
    return isinstance(body, dict) and body.get("kind") == "DeleteOptions" and "All" in (body.get("dryRun") or [])


def _manager(request: web.Request) -> str:
    """The field manager of a non-apply write: ``fieldManager`` or, as the real server does, the
    User-Agent up to its first ``/``."""
    if request.query.get("fieldManager"):
        return request.query["fieldManager"]
    agent = request.headers.get("User-Agent") or "unknown"
    return agent.split("/", 1)[0] or "unknown"
