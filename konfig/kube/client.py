"""A small, generic Kubernetes REST client over the official ``kubernetes`` package.

Konfig writes dozens of kinds (core, RBAC, Config Connector, its own), so instead of one typed
API class per group it speaks the REST paths of :class:`~konfig.kube.kinds.KindInfo` through
``kubernetes.client.ApiClient`` (auth, TLS and connection pooling come from the official
client; responses are parsed as plain dicts, which is also much faster than the typed models).

Every call retries transient failures (HTTP 429, 5xx, dropped connections) with exponential
backoff and jitter (tenacity), honouring ``Retry-After``. Other errors raise
:class:`KubeError` with the server's ``Status`` message.

API conventions used here: https://kubernetes.io/docs/reference/using-api/api-concepts/ and
server-side apply: https://kubernetes.io/docs/reference/using-api/server-side-apply/
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass
from typing import Any, Iterator

import kubernetes.client
import kubernetes.config
import urllib3
from tenacity import (
    RetryCallState,
    Retrying,
    retry_if_exception,
    stop_after_attempt,
)

from konfig.kube.kinds import KindInfo, KindRegistry

#: Field manager of everything Konfig applies (``konfig apply`` and the operator's children).
FIELD_MANAGER = "konfig"
APPLY_PATCH = "application/apply-patch+yaml"
MERGE_PATCH = "application/merge-patch+json"
JSON_PATCH = "application/json-patch+json"
#: Statuses worth retrying: throttling and server-side trouble.
TRANSIENT_STATUSES = frozenset({429, 500, 502, 503, 504})


class KubeError(Exception):
    """A failed API call: HTTP ``status`` (0 for a connection failure), the server's ``reason``
    (``NotFound``, ``Conflict``, ``Invalid``...) and its message."""

    def __init__(self, status: int, reason: str, message: str, retry_after: float | None = None):
        super().__init__(f"{status} {reason}: {message}" if status else message)
        self.status = status
        self.reason = reason
        self.message = message
        self.retry_after = retry_after

    @property
    def transient(self) -> bool:
        """Worth retrying. kube-apiserver answers a strict server-side apply with an
        undeclared field with a 500 (it fails building the typed patch): that is the
        object's fault, never retried."""
        if self.status == 500 and "failed to create typed patch object" in self.message:
            return False
        return self.status == 0 or self.status in TRANSIENT_STATUSES

    @property
    def not_found(self) -> bool:
        return self.status == 404

    @property
    def conflict(self) -> bool:
        return self.status == 409


@dataclass(frozen=True)
class RetrySettings:
    """Retries of one request: ``attempts`` in all, waits ``initial * 2**n`` seconds plus up to
    ``jitter`` seconds, capped at ``max_wait`` (``Retry-After`` wins when larger, up to the
    cap)."""

    attempts: int = 6
    initial: float = 0.2
    max_wait: float = 10.0
    jitter: float = 0.2


def load_configuration(kubeconfig: str | None = None, context: str | None = None,
                       *, server: str | None = None) -> kubernetes.client.Configuration:
    """A client configuration: ``server`` (a bare URL, no auth: the sandbox) or the kubeconfig
    (``kubeconfig`` path, else ``$KUBECONFIG``/``~/.kube/config``; ``context`` or the current
    one), falling back to the in-cluster service account when no kubeconfig exists and none was
    named. Raises ``kubernetes.config.ConfigException`` when nothing usable is found."""
    configuration = kubernetes.client.Configuration()
    if server:
        configuration.host = server
        return configuration
    try:
        kubernetes.config.load_kube_config(config_file=kubeconfig, context=context,
                                           client_configuration=configuration)
    except kubernetes.config.ConfigException:
        if kubeconfig or context:
            raise
        kubernetes.config.load_incluster_config(client_configuration=configuration)
    return configuration


class KubeClient:
    """Generic reads and writes of any kind in :attr:`kinds`.

    Thread-safe: calls may run from a thread pool (``pool_size`` bounds the HTTP connections).
    ``registry`` defaults to :meth:`KindRegistry.shipped`.
    """

    def __init__(self, configuration: kubernetes.client.Configuration, *,
                 registry: KindRegistry | None = None, retry: RetrySettings | None = None,
                 pool_size: int = 16, timeout: float = 30.0) -> None:
        configuration.connection_pool_maxsize = max(pool_size, 4)
        self.configuration = configuration
        self.api = kubernetes.client.ApiClient(configuration)
        self.api.user_agent = "konfig"
        self.kinds = registry or KindRegistry.shipped()
        self.retry = retry or RetrySettings()
        self.timeout = timeout

    @classmethod
    def connect(cls, kubeconfig: str | None = None, context: str | None = None, *,
                server: str | None = None, **kwargs: Any) -> "KubeClient":
        """A client from :func:`load_configuration`'s arguments."""
        return cls(load_configuration(kubeconfig, context, server=server), **kwargs)

    @property
    def host(self) -> str:
        return self.configuration.host

    def close(self) -> None:
        self.api.close()

    # -- raw requests -------------------------------------------------------------------------

    def request(self, method: str, path: str, *, query: dict[str, Any] | None = None,
                body: Any = None, content_type: str | None = None) -> Any:
        """One HTTP request with retries of transient failures; returns the parsed JSON body
        (``None`` when empty). Raises :class:`KubeError`."""
        retrying = Retrying(
            stop=stop_after_attempt(self.retry.attempts),
            wait=self._wait,
            retry=retry_if_exception(lambda e: isinstance(e, KubeError) and e.transient),
            reraise=True,
        )
        return retrying(self._request_once, method, path, query, body, content_type)

    def _wait(self, state: RetryCallState) -> float:
        backoff = min(self.retry.max_wait, self.retry.initial * 2 ** (state.attempt_number - 1)
                      ) + random.uniform(0, self.retry.jitter)
        error = state.outcome.exception() if state.outcome else None
        after = getattr(error, "retry_after", None)
        return min(max(backoff, after or 0.0), self.retry.max_wait)

    def _request_once(self, method: str, path: str, query: dict[str, Any] | None, body: Any,
                      content_type: str | None) -> Any:
        headers = {"Accept": "application/json"}
        if body is not None:
            headers["Content-Type"] = content_type or "application/json"
        query_params = [(k, v) for k, v in (query or {}).items() if v is not None]
        _, url, headers, body, _ = self.api.param_serialize(
            method, path, query_params=query_params, header_params=headers, body=body,
            auth_settings=["BearerToken"])
        try:
            response = self.api.call_api(method, url, headers, body, _request_timeout=self.timeout)
            data = response.read()
        except (urllib3.exceptions.HTTPError, OSError) as err:
            raise KubeError(0, "ConnectionError", f"{method} {path}: {err}") from err
        except kubernetes.client.ApiException as err:
            raise KubeError(err.status or 0, "ClientError", str(err.reason)) from err
        if 200 <= response.status < 300:
            return json.loads(data) if data else None
        raise _error(response.status, data, response.headers.get("Retry-After"))

    # -- typed helpers --------------------------------------------------------------------------

    def info(self, obj_or_api_version: dict[str, Any] | str, kind: str | None = None) -> KindInfo:
        if isinstance(obj_or_api_version, dict):
            return self.kinds.of(obj_or_api_version)
        assert kind is not None
        return self.kinds.get(obj_or_api_version, kind)

    def get(self, info: KindInfo, namespace: str | None, name: str) -> dict[str, Any] | None:
        """The object, or ``None`` when it does not exist."""
        try:
            return self.request("GET", info.item_path(namespace, name))
        except KubeError as err:
            if err.not_found:
                return None
            raise

    def list(self, info: KindInfo, *, namespace: str | None = None,
             label_selector: str | None = None, page_size: int = 500) -> list[dict[str, Any]]:
        """Every object of a kind (cluster-wide unless ``namespace``), page by page
        (``limit``/``continue``). Items get ``apiVersion`` and ``kind`` filled in (list items
        of built-in kinds omit them). A kind the server does not serve lists as empty."""
        return list(self.iter_list(info, namespace=namespace, label_selector=label_selector,
                                   page_size=page_size))

    def iter_list(self, info: KindInfo, *, namespace: str | None = None,
                  label_selector: str | None = None, page_size: int = 500
                  ) -> Iterator[dict[str, Any]]:
        token: str | None = None
        while True:
            try:
                page = self.request("GET", info.collection_path(namespace), query={
                    "labelSelector": label_selector, "limit": page_size, "continue": token})
            except KubeError as err:
                if err.not_found:  # the CRD is not installed: nothing of that kind exists
                    return
                raise
            for item in page.get("items") or []:
                item.setdefault("apiVersion", info.api_version)
                item.setdefault("kind", info.kind)
                yield item
            token = (page.get("metadata") or {}).get("continue")
            if not token:
                return

    def apply(self, obj: dict[str, Any], *, field_manager: str = FIELD_MANAGER,
              force: bool = True, dry_run: bool = False) -> dict[str, Any]:
        """Server-side apply ``obj`` (creates or updates it) as ``field_manager``; ``force``
        takes over fields other managers own. Returns the object as stored.

        Field validation is ``Strict``: a field the kind's schema does not know (or a
        duplicated one) is a 422 ``Invalid`` error instead of being dropped silently, so a
        rendered object that would lose part of itself is never half-applied
        (https://kubernetes.io/docs/reference/using-api/api-concepts/#field-validation)."""
        info = self.kinds.of(obj)
        meta = obj["metadata"]
        return self.request(
            "PATCH", info.item_path(meta.get("namespace"), meta["name"]),
            query={"fieldManager": field_manager, "force": "true" if force else None,
                   "fieldValidation": "Strict", "dryRun": "All" if dry_run else None},
            body=obj, content_type=APPLY_PATCH)

    def patch(self, info: KindInfo, namespace: str | None, name: str, body: Any, *,
              content_type: str = MERGE_PATCH, subresource: str | None = None,
              field_manager: str = FIELD_MANAGER) -> dict[str, Any]:
        """A merge (default) or JSON patch, optionally of a subresource (``status``)."""
        path = info.item_path(namespace, name) + (f"/{subresource}" if subresource else "")
        return self.request("PATCH", path, query={"fieldManager": field_manager}, body=body,
                            content_type=content_type)

    def delete(self, info: KindInfo, namespace: str | None, name: str, *,
               propagation: str = "Background", uid: str | None = None,
               dry_run: bool = False) -> bool:
        """Delete one object (``propagationPolicy``; ``uid`` as a precondition so a newer
        object of the same name is never deleted). Returns ``False`` if it was already gone."""
        body: dict[str, Any] = {"apiVersion": "v1", "kind": "DeleteOptions",
                                "propagationPolicy": propagation}
        if uid:
            body["preconditions"] = {"uid": uid}
        try:
            self.request("DELETE", info.item_path(namespace, name), body=body,
                         query={"dryRun": "All" if dry_run else None})
        except KubeError as err:
            if err.not_found:
                return False
            raise
        return True

    def discover(self, api_version: str) -> None:
        """Learn the kinds of ``api_version`` from the server's discovery document. Raises
        :class:`KubeError` (404 when the group/version is not served)."""
        path = f"/apis/{api_version}" if "/" in api_version else f"/api/{api_version}"
        self.kinds.learn(self.request("GET", path), api_version)


def _error(status: int, data: bytes, retry_after: str | None) -> KubeError:
    reason, message = "", data.decode("utf-8", "replace")[:2000]
    try:
        body = json.loads(data)
    except ValueError:
        body = None
    if isinstance(body, dict):
        reason = body.get("reason") or ""
        message = body.get("message") or message
    try:
        after = float(retry_after) if retry_after else None
    except ValueError:
        after = None
    return KubeError(status, reason or "Error", message, after)
