"""The Google Cloud clients the GCP adapter uses, built for real GCP or for local fakes.

Real GCP: Application Default Credentials (``google.auth.default()``), default endpoints.
Fakes (``konfig.sandbox``): ``AnonymousCredentials``, ``api_endpoint="http://127.0.0.1:PORT"``
and ``transport="rest"`` for Resource Manager, Service Usage, Cloud Billing and GKE; an insecure
gRPC channel for the IAM admin API, whose client library has only a gRPC transport.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Mapping

import grpc
from google.api_core.client_options import ClientOptions
from google.api_core.future.polling import DEFAULT_POLLING
from google.api_core.retry import Retry
from google.auth.credentials import AnonymousCredentials, Credentials
from google.cloud import billing_v1, container_v1, iam_admin_v1, resourcemanager_v3, service_usage_v1
from google.cloud.iam_admin_v1.services.iam.transports import IAMGrpcTransport

#: Environment variables naming emulator endpoints (unset: the real API).
ENV_RESOURCE_MANAGER = "KONFIG_GCP_RESOURCEMANAGER_ENDPOINT"
ENV_SERVICE_USAGE = "KONFIG_GCP_SERVICEUSAGE_ENDPOINT"
ENV_BILLING = "KONFIG_GCP_BILLING_ENDPOINT"
ENV_IAM = "KONFIG_GCP_IAM_ENDPOINT"
ENV_CONTAINER = "KONFIG_GCP_CONTAINER_ENDPOINT"
#: First wait, in seconds, between polls of a long-running operation and between retries.
ENV_BACKOFF = "KONFIG_GCP_BACKOFF_SECONDS"

CLOUD_PLATFORM_SCOPE = "https://www.googleapis.com/auth/cloud-platform"


@dataclass(frozen=True)
class Endpoints:
    """Emulator endpoints; ``None`` means the real API. REST endpoints are URLs
    (``http://127.0.0.1:8080``; a bare ``host:port`` gets ``http://``), the IAM endpoint is a
    gRPC ``host:port`` reached without TLS."""

    resource_manager: str | None = None
    service_usage: str | None = None
    billing: str | None = None
    iam: str | None = None
    container: str | None = None

    @classmethod
    def from_env(cls, env: Mapping[str, str] = os.environ) -> "Endpoints":
        """Read the ``KONFIG_GCP_*_ENDPOINT`` variables (empty counts as unset)."""
        return cls(
            resource_manager=env.get(ENV_RESOURCE_MANAGER) or None,
            service_usage=env.get(ENV_SERVICE_USAGE) or None,
            billing=env.get(ENV_BILLING) or None,
            iam=env.get(ENV_IAM) or None,
            container=env.get(ENV_CONTAINER) or None,
        )


@dataclass
class GcpClients:
    """One client per API, plus the pacing of polls and retries.

    ``backoff_seconds``: first wait between polls of an operation and between retries of a
    conflicting write (grows 1.5x up to 20x); ``operation_timeout``: seconds to wait for one
    long-running operation before giving up.
    """

    organizations: resourcemanager_v3.OrganizationsClient
    folders: resourcemanager_v3.FoldersClient
    projects: resourcemanager_v3.ProjectsClient
    service_usage: service_usage_v1.ServiceUsageClient
    billing: billing_v1.CloudBillingClient
    iam: iam_admin_v1.IAMClient
    container: container_v1.ClusterManagerClient
    backoff_seconds: float = 1.0
    operation_timeout: float = 600.0

    @property
    def polling(self) -> Retry:
        """How often to poll a long-running operation (``Operation.result(polling=...)``)."""
        return DEFAULT_POLLING.with_delay(
            initial=self.backoff_seconds, maximum=self.backoff_seconds * 20, multiplier=1.5
        ).with_timeout(self.operation_timeout)

    def close(self) -> None:
        """Release transports (HTTP sessions, gRPC channels)."""
        for client in (
            self.organizations,
            self.folders,
            self.projects,
            self.service_usage,
            self.billing,
            self.iam,
            self.container,
        ):
            client.transport.close()


def connect(
    endpoints: Endpoints | None = None,
    *,
    backoff_seconds: float | None = None,
    credentials: Credentials | None = None,
) -> GcpClients:
    """Build the clients. APIs with an endpoint in ``endpoints`` go to that emulator with
    anonymous credentials; the others use ``credentials`` or Application Default Credentials
    (raises ``google.auth.exceptions.DefaultCredentialsError`` when there are none).
    ``backoff_seconds`` defaults to ``$KONFIG_GCP_BACKOFF_SECONDS`` or 1.0."""
    endpoints = endpoints or Endpoints()
    if backoff_seconds is None:
        backoff_seconds = float(os.environ.get(ENV_BACKOFF) or 1.0)
    real: list[Credentials] = [credentials] if credentials else []

    def real_credentials() -> Credentials:
        if not real:
            import google.auth

            found, _project = google.auth.default(scopes=[CLOUD_PLATFORM_SCOPE])
            real.append(found)
        return real[0]

    def rest(client_type: type, endpoint: str | None):
        if endpoint is None:
            return client_type(credentials=real_credentials())
        url = endpoint if "://" in endpoint else f"http://{endpoint}"
        return client_type(
            credentials=AnonymousCredentials(),
            transport="rest",
            client_options=ClientOptions(api_endpoint=url),
        )

    if endpoints.iam is None:
        iam = iam_admin_v1.IAMClient(credentials=real_credentials())
    else:
        iam = iam_admin_v1.IAMClient(
            transport=IAMGrpcTransport(channel=grpc.insecure_channel(endpoints.iam))
        )
    return GcpClients(
        organizations=rest(resourcemanager_v3.OrganizationsClient, endpoints.resource_manager),
        folders=rest(resourcemanager_v3.FoldersClient, endpoints.resource_manager),
        projects=rest(resourcemanager_v3.ProjectsClient, endpoints.resource_manager),
        service_usage=rest(service_usage_v1.ServiceUsageClient, endpoints.service_usage),
        billing=rest(billing_v1.CloudBillingClient, endpoints.billing),
        iam=iam,
        container=rest(container_v1.ClusterManagerClient, endpoints.container),
        backoff_seconds=backoff_seconds,
    )
