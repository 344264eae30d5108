"""Reads of GCP state shared by bootstrap and doctor. Each returns data, or ``None`` where the
thing is absent; other API errors (``google.api_core.exceptions.GoogleAPICallError``) propagate.
"""

from __future__ import annotations

from google.api_core import exceptions as api_exceptions
from google.cloud import iam_admin_v1, resourcemanager_v3, service_usage_v1
from google.iam.v1 import policy_pb2

from konfig.gcp.clients import GcpClients
from konfig.gcp.policy import POLICY_VERSION

#: Largest ``services:batchGet`` request. Source:
#: https://cloud.google.com/service-usage/docs/reference/rest/v1/services/batchGet
BATCH_GET_MAX = 30


def find_folder(
    clients: GcpClients, parent: str, display_name: str
) -> resourcemanager_v3.Folder | None:
    """The active folder called ``display_name`` directly under ``parent``, or None.

    Uses ``folders.list`` (strongly consistent) rather than ``folders.search`` (eventually
    consistent: a folder created a moment ago may be missing, and a rerun would try to create
    it again). Source: the FoldersClient docstrings,
    https://cloud.google.com/resource-manager/reference/rest/v3/folders/list
    """
    for folder in clients.folders.list_folders(parent=parent):
        if folder.display_name == display_name:
            return folder
    return None


def get_project(clients: GcpClients, project_id: str) -> resourcemanager_v3.Project | None:
    """The project, or None when it does not exist *or* the caller cannot see it: GCP answers
    403 for both, so as not to reveal which project IDs are taken."""
    try:
        return clients.projects.get_project(name=f"projects/{project_id}")
    except (api_exceptions.Forbidden, api_exceptions.NotFound):
        return None


def project_billing_account(clients: GcpClients, project_id: str) -> str:
    """``billingAccounts/X`` the project is linked to, or ``""``."""
    info = clients.billing.get_project_billing_info(name=f"projects/{project_id}")
    return info.billing_account_name if info.billing_enabled else ""


def enabled_services(
    clients: GcpClients, project_name: str, services: tuple[str, ...]
) -> frozenset[str]:
    """Which of ``services`` are enabled in ``project_name`` (``projects/<number>``)."""
    enabled: set[str] = set()
    for start in range(0, len(services), BATCH_GET_MAX):
        names = [f"{project_name}/services/{s}" for s in services[start : start + BATCH_GET_MAX]]
        response = clients.service_usage.batch_get_services(
            request=service_usage_v1.BatchGetServicesRequest(parent=project_name, names=names)
        )
        enabled.update(
            s.name.rsplit("/", 1)[-1]
            for s in response.services
            if s.state == service_usage_v1.State.ENABLED
        )
    return frozenset(enabled)


def get_service_account(clients: GcpClients, email: str) -> iam_admin_v1.ServiceAccount | None:
    """The service account with this email (in any project), or None."""
    try:
        return clients.iam.get_service_account(name=f"projects/-/serviceAccounts/{email}")
    except api_exceptions.NotFound:
        return None


def folder_policy(clients: GcpClients, folder: str) -> policy_pb2.Policy:
    """The folder's IAM policy (version 3, with its etag)."""
    return clients.folders.get_iam_policy(
        request={"resource": folder, "options": {"requested_policy_version": POLICY_VERSION}}
    )


def billing_policy(clients: GcpClients, account_name: str) -> policy_pb2.Policy:
    """The billing account's IAM policy (with its etag)."""
    return clients.billing.get_iam_policy(
        request={"resource": account_name, "options": {"requested_policy_version": POLICY_VERSION}}
    )


def container_exists(clients: GcpClients, name: str) -> bool:
    """Whether an ``organizations/N`` or ``folders/N`` is visible to the caller."""
    try:
        if name.startswith("organizations/"):
            clients.organizations.get_organization(name=name)
        else:
            clients.folders.get_folder(name=name)
        return True
    except (api_exceptions.Forbidden, api_exceptions.NotFound):
        return False
