"""Facts the compiler may use from the live cluster: what Config Connector reports about
objects Konfig made (never anything outside Konfig's labels)."""

from __future__ import annotations

from typing import Iterable

from konfig.compile.context import CompileFacts
from konfig.compile.state import LABEL_CONTROL_PLANE, LABEL_DOMAIN
from konfig.kube.client import KubeClient, KubeError

RUN_API_VERSION = "run.cnrm.cloud.google.com/v1beta1"


def observe_facts(client: KubeClient, control_plane: str, *,
                  domains: Iterable[str] | None = None) -> CompileFacts:
    """The URLs of the control plane's Cloud Run services (``status.uri`` of its RunService
    objects, by ``(namespace, name)``); with ``domains``, of those domains' services only (a
    pass over some reconcile units). A server without the RunService kind, or one that
    refuses the read, gives no URLs: dependency URLs then wait, with a plan note."""
    selector = f"{LABEL_CONTROL_PLANE}={control_plane}"
    if domains is not None:
        domains = list(domains)
        if not domains:
            return CompileFacts()
        selector += f",{LABEL_DOMAIN} in ({','.join(domains)})"
    try:
        services = client.list(client.info(RUN_API_VERSION, "RunService"),
                               label_selector=selector)
    except KubeError:
        return CompileFacts()
    urls = {}
    for svc in services:
        uri = (svc.get("status") or {}).get("uri")
        if isinstance(uri, str) and uri.startswith("https://"):
            urls[(svc["metadata"]["namespace"], svc["metadata"]["name"])] = uri
    return CompileFacts(service_urls=urls)
