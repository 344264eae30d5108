"""A stand-in for Config Connector's controllers on the test cluster: the only simulated part
(there is no GCP here).

It watches every Config Connector kind (CRDs of ``*.cnrm.cloud.google.com`` groups declaring
the status subresource) and writes the status the real controller writes once a resource is
up to date: ``conditions: [{type: Ready, status: "True", reason: UpToDate}]`` and
``observedGeneration`` (https://cloud.google.com/config-connector/docs/how-to/monitoring-your-resources);
ConfigConnectorContexts get ``healthy: true`` as Config Connector's operator reports
(https://cloud.google.com/config-connector/docs/how-to/install-namespaced). An object
annotated ``sandbox.konfig.dev/cnrm-fail: <message>`` is reported Ready=False, reason
``UpdateFailed``, and a RunService gets a stand-in ``status.uri`` (as the emulator's fake
does, with the same URL). Like the emulator's fake it adds no
finalizers: deleting such an object is immediate.

It runs list-then-watch per kind (one asyncio loop in a thread, aiohttp), writes the
``/status`` subresource with a merge patch as field manager ``cnrm-controller-manager``, and
relists on a 410 Expired watch.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import json
import ssl
import threading
from dataclasses import dataclass
from typing import Any, Iterable

import aiohttp

from konfig.sandbox.kube_api import (
    CNRM_GROUP_SUFFIX,
    CNRM_MANAGER as MANAGER,
    CONTEXT_KIND,
    FAIL_ANNOTATION,
    config_connector_status,
)



@dataclass(frozen=True)
class Kind:
    group: str
    version: str
    plural: str
    kind: str

    def path(self, namespace: str | None = None, name: str | None = None) -> str:
        base = f"/apis/{self.group}/{self.version}"
        if namespace:
            base += f"/namespaces/{namespace}"
        return f"{base}/{self.plural}" + (f"/{name}" if name else "")


def config_connector_kinds(crds: Iterable[dict[str, Any]]) -> list[Kind]:
    """The storage version of every Config Connector CRD with a status subresource."""
    kinds = []
    for crd in crds:
        spec = crd["spec"]
        if not spec["group"].endswith(CNRM_GROUP_SUFFIX):
            continue
        version = next((v for v in spec["versions"] if v.get("storage")), spec["versions"][0])
        if "status" in (version.get("subresources") or {}):
            kinds.append(Kind(spec["group"], version["name"], spec["names"]["plural"],
                              spec["names"]["kind"]))
    return kinds


def desired_status(obj: dict[str, Any]) -> dict[str, Any]:
    """The status fields the stand-in owns, for ``obj`` as it is now: the emulator's, so both
    agree (:func:`konfig.sandbox.kube_api.config_connector_status`)."""
    return config_connector_status(obj)


def current_status(obj: dict[str, Any]) -> dict[str, Any]:
    status = obj.get("status") or {}
    if obj.get("kind") == CONTEXT_KIND:
        return {k: status[k] for k in ("healthy", "errors") if k in status}
    conditions = [{k: v for k, v in c.items() if k != "lastTransitionTime"}
                  for c in status.get("conditions") or [] if c.get("type") == "Ready"]
    core = {"conditions": conditions, "observedGeneration": status.get("observedGeneration")}
    if "uri" in status:
        core["uri"] = status["uri"]
    return core


class ConfigConnectorStandIn:
    """Run with ``start()``/``stop()`` (or as a context manager) against ``server`` with a
    bearer ``token`` and the cluster's CA file. ``writes`` counts status writes."""

    def __init__(self, server: str, token: str, ca_path: str, kinds: Iterable[Kind]) -> None:
        self.server, self.token, self.ca_path = server, token, ca_path
        self.kinds = list(kinds)
        self.writes = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._synced = threading.Event()
        self._stopping: asyncio.Event | None = None
        self.error: BaseException | None = None

    def start(self, timeout: float = 60.0) -> "ConfigConnectorStandIn":
        """Start; returns once every kind was listed once (existing objects reconciled)."""
        self._thread = threading.Thread(target=self._main, name="kcc-stand-in", daemon=True)
        self._thread.start()
        if not self._synced.wait(timeout):
            raise TimeoutError(f"the Config Connector stand-in did not sync in {timeout}s: {self.error}")
        return self

    def stop(self) -> None:
        if self._loop is not None and self._stopping is not None:
            self._loop.call_soon_threadsafe(self._stopping.set)
        if self._thread is not None:
            self._thread.join(10)

    def __enter__(self) -> "ConfigConnectorStandIn":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- the loop -----------------------------------------------------------------------------

    def _main(self) -> None:
        try:
            asyncio.run(self._run())
        except BaseException as err:  # noqa: BLE001 - reported by start()
            self.error = err

    async def _run(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stopping = asyncio.Event()
        context = ssl.create_default_context(cafile=self.ca_path)
        connector = aiohttp.TCPConnector(ssl=context, limit=len(self.kinds) + 16)
        headers = {"Authorization": f"Bearer {self.token}", "Accept": "application/json"}
        async with aiohttp.ClientSession(self.server, connector=connector, headers=headers) as http:
            listed = [asyncio.Event() for _ in self.kinds]
            tasks = [asyncio.create_task(self._follow(http, kind, done))
                     for kind, done in zip(self.kinds, listed)]
            await asyncio.gather(*(e.wait() for e in listed))
            self._synced.set()
            await self._stopping.wait()
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    async def _follow(self, http: aiohttp.ClientSession, kind: Kind, listed: asyncio.Event) -> None:
        while True:
            try:
                async with http.get(kind.path()) as reply:
                    if reply.status == 404:  # CRD not served (yet): look again later
                        listed.set()
                        await asyncio.sleep(1.0)
                        continue
                    reply.raise_for_status()
                    page = await reply.json()
                for item in page.get("items") or []:
                    item.setdefault("kind", kind.kind)
                    await self._reconcile(http, kind, item)
                listed.set()
                await self._watch(http, kind, page["metadata"]["resourceVersion"])
            except asyncio.CancelledError:
                raise
            except (aiohttp.ClientError, asyncio.TimeoutError, ValueError):
                await asyncio.sleep(0.5)  # the server restarts or the watch broke: relist

    async def _watch(self, http: aiohttp.ClientSession, kind: Kind, version: str) -> None:
        params = {"watch": "1", "resourceVersion": version, "allowWatchBookmarks": "true",
                  "timeoutSeconds": "300"}
        timeout = aiohttp.ClientTimeout(total=None, sock_read=330)
        async with http.get(kind.path(), params=params, timeout=timeout) as reply:
            reply.raise_for_status()
            async for line in reply.content:
                if not line.strip():
                    continue
                event = json.loads(line)
                if event["type"] == "ERROR":
                    return  # 410 Expired and friends: relist
                if event["type"] in ("ADDED", "MODIFIED"):
                    await self._reconcile(http, kind, event["object"])

    async def _reconcile(self, http: aiohttp.ClientSession, kind: Kind, obj: dict[str, Any]) -> None:
        meta = obj["metadata"]
        if meta.get("deletionTimestamp"):
            return
        desired = desired_status(obj)
        if desired == current_status(obj):
            return
        now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
        for condition in desired.get("conditions", []):
            condition["lastTransitionTime"] = now
        body = {"status": {**(obj.get("status") or {}), **desired}}
        path = kind.path(meta.get("namespace"), meta["name"]) + "/status"
        with contextlib.suppress(aiohttp.ClientError):  # gone meanwhile: nothing to report
            async with http.patch(path, params={"fieldManager": MANAGER}, data=json.dumps(body),
                                  headers={"Content-Type": "application/merge-patch+json"}) as reply:
                if reply.status < 300:
                    self.writes += 1
