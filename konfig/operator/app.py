"""The kopf operator: watch handlers, the reconciler loop, probes and metrics, and runners.

kopf watches the five Konfig kinds cluster-wide. Its handlers (``@kopf.on.event``) only tell
the :class:`~konfig.operator.loop.ReconcileLoop` that something changed; they never write to
the resources, so kopf stores no progress annotations on them. The loop, started by the
startup handler, runs every pass; finalizers, status and children are the reconciler's.

Probes (``--health-port``): ``/healthz`` answers 200 while the loop task is alive, ``/readyz``
200 once the first pass has completed. ``/metrics`` (``--metrics-port``) serves the Prometheus
text format. Events go through kopf's poster (asynchronous, batched with kopf's own).
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import threading
from typing import Any, Callable

import kopf
from aiohttp import web

from konfig.kube.client import KubeClient
from konfig.kube.crds import GROUP, NAMES, VERSION
from konfig.operator.cache import ResourceCache
from konfig.operator.config import OperatorConfig
from konfig.operator.leases import LeaseKeeper
from konfig.operator.loop import ReconcileLoop
from konfig.operator.metrics import Metrics
from konfig.operator.reconciler import LogEvents, Reconciler

log = logging.getLogger("konfig.operator")


class KopfEvents:
    """Posts Events through kopf (:func:`kopf.event`) from the reconciler's thread.

    kopf's poster is reachable only from a context its watch handlers run in, so the first
    handler call captures that context; before it exists, Events are only logged."""

    def __init__(self) -> None:
        self._context: contextvars.Context | None = None
        self._lock = threading.Lock()
        self._fallback = LogEvents()
        self.posted = 0

    def capture(self) -> None:
        if self._context is None:
            self._context = contextvars.copy_context()

    def emit(self, resource: dict[str, Any], type_: str, reason: str, message: str) -> None:
        if self._context is None:
            self._fallback.emit(resource, type_, reason, message)
            return
        ref = {"apiVersion": resource["apiVersion"], "kind": resource["kind"],
               "metadata": {k: resource["metadata"].get(k) for k in ("name", "namespace", "uid")}}
        with self._lock:  # a Context can be entered by one thread at a time
            self._context.run(kopf.event, ref, type=type_, reason=reason, message=message[:1024])
            self.posted += 1


def default_identity() -> str:
    """This replica's name: ``$POD_NAME`` (the chart sets it), else host name and pid."""
    import os
    import socket

    return os.environ.get("POD_NAME") or f"{socket.gethostname()}-{os.getpid()}"


def connection_info(client: KubeClient, default_namespace: str) -> kopf.ConnectionInfo:
    """kopf's credentials from the kubernetes client's configuration (same cluster, same
    identity: kubeconfig, in-cluster service account or a bare sandbox URL)."""
    cfg = client.configuration
    if cfg.refresh_api_key_hook is not None:
        cfg.refresh_api_key_hook(cfg)
    auth = (cfg.api_key or {}).get("authorization") or (cfg.api_key or {}).get("BearerToken")
    scheme = token = None
    if auth:
        scheme, _, token = auth.partition(" ") if " " in auth else ("Bearer", "", auth)
    return kopf.ConnectionInfo(
        server=cfg.host, ca_path=cfg.ssl_ca_cert or None, insecure=not cfg.verify_ssl,
        username=cfg.username or None, password=cfg.password or None, scheme=scheme,
        token=token, certificate_path=cfg.cert_file or None, private_key_path=cfg.key_file or None,
        default_namespace=default_namespace)


class Operator:
    """One operator: the kube client, reconciler, loop, kopf registry, probes and metrics.

    ``gitlab_reconcile`` replaces the GitLab adapter call (``(tree, depth=, deep_round=) ->
    SyncReport``), for tests that count or fail GitLab passes."""

    def __init__(self, config: OperatorConfig, *, client: KubeClient | None = None,
                 gitlab_reconcile: Callable[..., Any] | None = None) -> None:
        self.config = config
        self.client = client or KubeClient.connect(config.kubeconfig, config.context,
                                                   server=config.server,
                                                   pool_size=config.workers * 2)
        self.metrics = Metrics()
        self.events = KopfEvents()
        self.cache = ResourceCache()
        self.reconciler = Reconciler(self.client, config, events=self.events,
                                     metrics=self.metrics, gitlab_reconcile=gitlab_reconcile,
                                     cache=self.cache)
        self.loop = ReconcileLoop(self.reconciler, config)
        self.leases: LeaseKeeper | None = None
        if config.leases:
            self.leases = LeaseKeeper(
                self.client, config.system_namespace, config.identity or default_identity(),
                duration=config.lease_duration,
                on_acquired=lambda unit: self.loop.mark_dirty(f"took unit {unit}", units=[unit]),
                busy=lambda: self.loop.in_flight)
            self.loop.owns = self.leases.owns
            self.reconciler.owns = self.leases.owns
            self.loop.holds = self.leases.holds
        self._lease_task: asyncio.Task | None = None
        self.health_port: int | None = None
        self.metrics_port: int | None = None
        self._task: asyncio.Task | None = None
        self._runners: list[web.AppRunner] = []
        self.registry = self._registry()

    # -- kopf ----------------------------------------------------------------------------------

    def _registry(self) -> kopf.OperatorRegistry:
        registry = kopf.OperatorRegistry()
        operator = self

        @kopf.on.login(registry=registry)
        def login(**_: Any) -> kopf.ConnectionInfo:
            return connection_info(operator.client, operator.config.system_namespace)

        @kopf.on.startup(registry=registry)
        async def startup(settings: kopf.OperatorSettings, **_: Any) -> None:
            settings.posting.level = logging.WARNING  # our Events are explicit, not log lines
            settings.watching.server_timeout = 300
            settings.networking.request_timeout = 60
            await operator.start_background()

        @kopf.on.cleanup(registry=registry)
        async def cleanup(**_: Any) -> None:
            await operator.stop_background()

        for kind, names in NAMES.items():
            @kopf.on.event(GROUP, VERSION, names.plural, registry=registry, id=f"watch-{kind}")
            async def changed(event: dict[str, Any], body: Any, **_: Any) -> None:
                operator.events.capture()
                operator.cache.event(event.get("type"), dict(body))
                operator.loop.observe(event.get("type"), dict(body))

        return registry

    async def run(self, *, stop_flag: Any = None, ready_flag: Any = None) -> None:
        """Run kopf (cluster-wide) until ``stop_flag`` is set or the task is cancelled."""
        await kopf.operator(
            registry=self.registry, clusterwide=True,
            standalone=self.config.standalone if not self.config.peering else False,
            peering_name=self.config.peering, stop_flag=stop_flag, ready_flag=ready_flag)

    # -- background: the loop, probes, metrics ---------------------------------------------------

    async def start_background(self) -> None:
        if self.leases is not None:
            await asyncio.to_thread(self.reconciler.refresh_index)
            await asyncio.to_thread(self.leases.tick, self.reconciler.index.units())
            self._lease_task = asyncio.create_task(self._keep_leases(), name="konfig leases")
        self._task = asyncio.create_task(self.loop.run(), name="konfig reconciler")
        if self.config.health_port is not None:
            app = web.Application()
            app.router.add_get("/healthz", self._healthz)
            app.router.add_get("/readyz", self._readyz)
            self.health_port = await self._serve(app, self.config.health_port)
        if self.config.metrics_port is not None:
            app = web.Application()
            app.router.add_get("/metrics", self._metrics)
            self.metrics_port = await self._serve(app, self.config.metrics_port)

    async def _serve(self, app: web.Application, port: int) -> int:
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, self.config.health_host, port)
        await site.start()
        self._runners.append(runner)
        server = site._server  # aiohttp keeps the listening sockets there
        return server.sockets[0].getsockname()[1] if server and server.sockets else port

    async def _keep_leases(self) -> None:
        """Renew, take and give back unit Leases every third of their duration."""
        assert self.leases is not None
        while True:
            await asyncio.sleep(self.leases.renew_every)
            try:
                await asyncio.to_thread(self.leases.tick, self.reconciler.index.units())
            except Exception:  # noqa: BLE001 - never let the keeper die: owns() turns false
                log.exception("lease round failed")
            self.metrics.units_owned.set(len(self.leases.owned()))

    async def stop_background(self) -> None:
        for task in (self._task, self._lease_task):
            if task is None:
                continue
            task.cancel()
            try:
                await task
            except (asyncio.CancelledError, Exception):  # noqa: BLE001 - shutting down
                pass
        if self.leases is not None:  # hand the units over at once (rolling updates)
            await asyncio.to_thread(self.leases.release_all)
        for runner in self._runners:
            await runner.cleanup()
        self._runners.clear()

    @property
    def alive(self) -> bool:
        return self._task is not None and not self._task.done()

    @property
    def ready(self) -> bool:
        done = self.loop.first_pass_done
        return self.alive and done is not None and done.is_set()

    async def _healthz(self, _: web.Request) -> web.Response:
        return web.json_response({"alive": self.alive}, status=200 if self.alive else 500)

    async def _readyz(self, _: web.Request) -> web.Response:
        return web.json_response({"ready": self.ready}, status=200 if self.ready else 503)

    async def _metrics(self, _: web.Request) -> web.Response:
        return web.Response(body=self.metrics.render(),
                            headers={"Content-Type": self.metrics.content_type})


class OperatorThread:
    """Runs an :class:`Operator` in a background thread with its own event loop (tests and
    ``konfig sandbox``). ``start()`` waits until kopf is ready; ``stop()`` shuts it down."""

    def __init__(self, operator: Operator) -> None:
        self.operator = operator
        self._stop = threading.Event()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._main, name="konfig-operator", daemon=True)
        self.error: BaseException | None = None

    def _main(self) -> None:
        try:
            asyncio.run(self.operator.run(stop_flag=self._stop, ready_flag=self._ready))
        except BaseException as err:  # noqa: BLE001 - reported by stop()
            self.error = err

    def start(self, timeout: float = 30.0) -> "OperatorThread":
        self._thread.start()
        if not self._ready.wait(timeout):
            raise TimeoutError(f"the operator did not start within {timeout}s: {self.error}")
        return self

    def stop(self, timeout: float = 30.0) -> None:
        self._stop.set()
        self._thread.join(timeout)

    def __enter__(self) -> "OperatorThread":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
