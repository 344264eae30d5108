"""``konfig doctor``: check, read-only, that GCP is ready for (or matches) ``konfig bootstrap``.

Each check is data: a :class:`CheckResult` with a status, what was found, and the fix. A check
that cannot be made (the API refused to answer) is ``UNKNOWN``, not ``MISSING``: it says so and
why. Nothing is ever changed.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import Enum
from typing import Callable

from google.api_core import exceptions as api_exceptions
from google.cloud import resourcemanager_v3

from konfig.compile.state import LABEL_CONTROL_PLANE
from konfig.gcp import lookups
from konfig.gcp.clients import GcpClients
from konfig.gcp.policy import missing_roles, unconditional_bindings
from konfig.gcp.target import BootstrapTarget, compute_default_service_account
from konfig.model.names import BILLING_ACCOUNT_RE


class Status(str, Enum):
    OK = "OK"
    MISSING = "MISSING"
    UNKNOWN = "UNKNOWN"  # could not be checked (see the detail)


@dataclass(frozen=True)
class CheckResult:
    """One line of the doctor's table. ``check``: stable id (``parent``, ``services``, ...);
    ``detail``: what was found; ``fix``: what to do when not OK."""

    check: str
    title: str
    status: Status
    detail: str = ""
    fix: str = ""


#: Permissions ``konfig bootstrap`` uses, by the resource they are tested on with
#: ``testIamPermissions``. Source: https://cloud.google.com/iam/docs/permissions-reference
PARENT_PERMISSIONS = ("resourcemanager.folders.list", "resourcemanager.folders.create")
FOLDER_PERMISSIONS = (
    "resourcemanager.projects.create",
    "resourcemanager.folders.getIamPolicy",
    "resourcemanager.folders.setIamPolicy",
)
PROJECT_PERMISSIONS = (
    "resourcemanager.projects.get",
    "resourcemanager.projects.update",
    "resourcemanager.projects.createBillingAssignment",
    "serviceusage.services.get",
    "serviceusage.services.enable",
    "iam.serviceAccounts.get",
    "iam.serviceAccounts.create",
    "iam.serviceAccounts.disable",
)
BILLING_PERMISSIONS = (
    "billing.resourceAssociations.create",
    "billing.accounts.getIamPolicy",
    "billing.accounts.setIamPolicy",
)


@dataclass
class _Facts:
    """What earlier checks found, for the later ones."""

    parent_visible: bool = False
    folder: str | None = None
    project: resourcemanager_v3.Project | None = None


def run_checks(clients: GcpClients, target: BootstrapTarget) -> list[CheckResult]:
    """Run every check, in a fixed order; never raises for API errors."""
    facts = _Facts()
    checks: list[Callable[[GcpClients, BootstrapTarget, _Facts], CheckResult]] = [
        _check_parent,
        _check_billing_account,
        _check_folder,
        _check_project,
        _check_project_number,
        _check_project_billing,
        _check_services,
        _check_service_account,
        _check_folder_roles,
        _check_billing_roles,
        _check_compute_default_sa,
        _check_domain_default_sas,
        _check_cluster,
        _check_parent_permissions,
        _check_folder_permissions,
        _check_project_permissions,
        _check_billing_permissions,
    ]
    results = []
    for check in checks:
        try:
            results.append(check(clients, target, facts))
        except api_exceptions.GoogleAPICallError as error:
            name = check.__name__.removeprefix("_check_").replace("_", "-")
            results.append(
                CheckResult(
                    name,
                    name.replace("-", " "),
                    Status.UNKNOWN,
                    f"API error: {error.message or error}",
                    "rerun when the API answers",
                )
            )
    return results


def missing(results: list[CheckResult]) -> list[CheckResult]:
    """The results that are MISSING (the doctor exits 1 when there is any)."""
    return [r for r in results if r.status is Status.MISSING]


def _ok(check: str, title: str, detail: str = "") -> CheckResult:
    return CheckResult(check, title, Status.OK, detail)


def _bootstrap_fix(target: BootstrapTarget) -> str:
    return "run `konfig bootstrap DIR`"


def _check_parent(clients: GcpClients, target: BootstrapTarget, facts: _Facts) -> CheckResult:
    title = f"parent {target.parent} exists and is visible"
    facts.parent_visible = lookups.container_exists(clients, target.parent)
    if facts.parent_visible:
        return _ok("parent", title)
    return CheckResult(
        "parent",
        title,
        Status.MISSING,
        "not found or not visible to you",
        "check spec.gcp.parent; you need resourcemanager.folders.get / organizations.get on it "
        "(roles/browser)",
    )


def _check_billing_account(
    clients: GcpClients, target: BootstrapTarget, facts: _Facts
) -> CheckResult:
    title = f"billing account {target.billing_account} is open"
    if not re.match(BILLING_ACCOUNT_RE, target.billing_account):
        return CheckResult(
            "billing-account",
            title,
            Status.MISSING,
            "malformed",
            "spec.gcp.billingAccount must look like 012345-6789AB-CDEF01",
        )
    try:
        account = clients.billing.get_billing_account(name=target.billing_account_name)
    except (api_exceptions.Forbidden, api_exceptions.NotFound):
        return CheckResult(
            "billing-account",
            title,
            Status.UNKNOWN,
            "format OK; account not readable by you",
            f"ask for roles/billing.viewer on {target.billing_account_name} to check its state",
        )
    if account.open_:
        return _ok("billing-account", title, account.display_name)
    return CheckResult(
        "billing-account",
        title,
        Status.MISSING,
        "closed",
        "reopen the billing account or set spec.gcp.billingAccount to an open one",
    )


def _check_folder(clients: GcpClients, target: BootstrapTarget, facts: _Facts) -> CheckResult:
    title = f"control-plane folder {target.folder_display_name!r} under {target.parent}"
    if not facts.parent_visible:
        return CheckResult("folder", title, Status.UNKNOWN, "parent not visible")
    folder = lookups.find_folder(clients, target.parent, target.folder_display_name)
    facts.folder = folder.name if folder else None
    if folder:
        return _ok("folder", title, folder.name)
    return CheckResult("folder", title, Status.MISSING, "absent", _bootstrap_fix(target))


def _check_project(clients: GcpClients, target: BootstrapTarget, facts: _Facts) -> CheckResult:
    title = f"control-plane project {target.project_id}"
    facts.project = lookups.get_project(clients, target.project_id)
    project = facts.project
    if project is None:
        return CheckResult(
            "project", title, Status.MISSING, "absent or not visible to you", _bootstrap_fix(target)
        )
    owner = project.labels.get(LABEL_CONTROL_PLANE)
    if owner not in (None, target.control_plane):
        return CheckResult(
            "project",
            title,
            Status.MISSING,
            f"labelled {LABEL_CONTROL_PLANE}={owner}",
            "this project belongs to another control plane; set spec.gcp.projectId",
        )
    if owner is None:
        return CheckResult(
            "project",
            title,
            Status.MISSING,
            f"{project.name}, not labelled",
            _bootstrap_fix(target) + " (adds the label)",
        )
    return _ok("project", title, f"{project.name} in {project.parent}")


def _check_project_number(
    clients: GcpClients, target: BootstrapTarget, facts: _Facts
) -> CheckResult:
    title = "spec.gcp.projectNumber matches the project"
    if facts.project is None:
        return CheckResult("project-number", title, Status.UNKNOWN, "no project yet")
    number = facts.project.name.split("/", 1)[1]
    if target.project_number == number:
        return _ok("project-number", title, number)
    found = target.project_number or "unset"
    return CheckResult(
        "project-number",
        title,
        Status.MISSING,
        f"{found}; project has {number}",
        f'set spec.gcp.projectNumber: "{number}"',
    )


def _check_project_billing(
    clients: GcpClients, target: BootstrapTarget, facts: _Facts
) -> CheckResult:
    title = f"project billed to {target.billing_account_name}"
    if facts.project is None:
        return CheckResult("project-billing", title, Status.UNKNOWN, "no project yet")
    current = lookups.project_billing_account(clients, target.project_id)
    if current == target.billing_account_name:
        return _ok("project-billing", title)
    return CheckResult(
        "project-billing",
        title,
        Status.MISSING,
        current or "billing not enabled",
        f"gcloud billing projects link {target.project_id} --billing-account="
        f"{target.billing_account}" + ("" if current else f", or {_bootstrap_fix(target)}"),
    )


def _check_services(clients: GcpClients, target: BootstrapTarget, facts: _Facts) -> CheckResult:
    title = "required APIs enabled"
    if facts.project is None:
        return CheckResult("services", title, Status.UNKNOWN, "no project yet")
    enabled = lookups.enabled_services(clients, facts.project.name, target.services)
    absent = [s for s in target.services if s not in enabled]
    if not absent:
        return _ok("services", title, f"{len(target.services)} APIs")
    return CheckResult(
        "services",
        title,
        Status.MISSING,
        "missing: " + ", ".join(absent),
        f"gcloud services enable {' '.join(absent)} --project {target.project_id}",
    )


def _check_service_account(
    clients: GcpClients, target: BootstrapTarget, facts: _Facts
) -> CheckResult:
    title = f"controller service account {target.service_account_email}"
    account = lookups.get_service_account(clients, target.service_account_email)
    if account is None:
        return CheckResult(
            "service-account", title, Status.MISSING, "absent", _bootstrap_fix(target)
        )
    if account.disabled:
        return CheckResult(
            "service-account",
            title,
            Status.MISSING,
            "disabled",
            f"gcloud iam service-accounts enable {target.service_account_email}",
        )
    return _ok("service-account", title)


def _check_folder_roles(clients: GcpClients, target: BootstrapTarget, facts: _Facts) -> CheckResult:
    title = "controller roles on the control-plane folder"
    if facts.folder is None:
        return CheckResult("folder-roles", title, Status.UNKNOWN, "no folder yet")
    bindings = unconditional_bindings(lookups.folder_policy(clients, facts.folder))
    absent = missing_roles(bindings, target.service_account_member, target.folder_roles)
    if not absent:
        return _ok("folder-roles", title, ", ".join(target.folder_roles))
    return CheckResult(
        "folder-roles",
        title,
        Status.MISSING,
        "missing: " + ", ".join(absent),
        _bootstrap_fix(target) + f" (or gcloud resource-manager folders add-iam-policy-binding "
        f"{facts.folder.split('/')[1]} --member={target.service_account_member} --role=ROLE)",
    )


def _check_billing_roles(
    clients: GcpClients, target: BootstrapTarget, facts: _Facts
) -> CheckResult:
    title = f"controller roles on {target.billing_account_name}"
    try:
        policy = lookups.billing_policy(clients, target.billing_account_name)
    except (api_exceptions.Forbidden, api_exceptions.NotFound):
        return CheckResult(
            "billing-roles",
            title,
            Status.UNKNOWN,
            "policy not readable by you",
            "ask a billing administrator to check roles/billing.user",
        )
    absent = missing_roles(
        unconditional_bindings(policy), target.service_account_member, target.billing_roles
    )
    if not absent:
        return _ok("billing-roles", title, ", ".join(target.billing_roles))
    return CheckResult(
        "billing-roles",
        title,
        Status.MISSING,
        "missing: " + ", ".join(absent),
        f"gcloud billing accounts add-iam-policy-binding {target.billing_account} "
        f"--member={target.service_account_member} --role=roles/billing.user "
        "(needs a billing account administrator)",
    )


def _check_compute_default_sa(
    clients: GcpClients, target: BootstrapTarget, facts: _Facts
) -> CheckResult:
    title = "Compute Engine default service account disabled"
    if facts.project is None:
        return CheckResult("compute-default-sa", title, Status.UNKNOWN, "no project yet")
    email = compute_default_service_account(facts.project.name.split("/", 1)[1])
    account = lookups.get_service_account(clients, email)
    if account is None:
        return _ok("compute-default-sa", title, "absent")
    if account.disabled:
        return _ok("compute-default-sa", title, f"{email} disabled")
    return CheckResult(
        "compute-default-sa",
        title,
        Status.MISSING,
        f"{email} enabled",
        f"gcloud iam service-accounts disable {email}, or {_bootstrap_fix(target)}",
    )


def _check_cluster(clients: GcpClients, target: BootstrapTarget, facts: _Facts) -> CheckResult:
    """The control-plane GKE cluster: Konfig's label, Workload Identity, Config Connector."""
    from konfig.gcp.cluster import CLUSTER_NAME

    name = f"projects/{target.project_id}/locations/{target.region}/clusters/{CLUSTER_NAME}"
    title = f"control-plane cluster {CLUSTER_NAME} in {target.region}"
    if facts.project is None or not target.region:
        return CheckResult("cluster", title, Status.UNKNOWN, "no project yet")
    try:
        cluster = clients.container.get_cluster(name=name)
    except api_exceptions.NotFound:
        return CheckResult("cluster", title, Status.MISSING, "absent", _bootstrap_fix(target))
    owner = dict(cluster.resource_labels).get(LABEL_CONTROL_PLANE)
    wrong = []
    if owner != target.control_plane:
        wrong.append(f"labelled {LABEL_CONTROL_PLANE}={owner}" if owner else "no Konfig label")
    if cluster.workload_identity_config.workload_pool != f"{target.project_id}.svc.id.goog":
        wrong.append("Workload Identity off")
    if not cluster.addons_config.config_connector_config.enabled:
        wrong.append("Config Connector add-on off")
    if wrong:
        fix = (f"label it {LABEL_CONTROL_PLANE}={target.control_plane} to let bootstrap adopt it"
               if owner != target.control_plane else _bootstrap_fix(target))
        return CheckResult("cluster", title, Status.MISSING, "; ".join(wrong), fix)
    return _ok("cluster", title, f"{cluster.status.name}, endpoint {cluster.endpoint}")


def _check_domain_default_sas(
    clients: GcpClients, target: BootstrapTarget, facts: _Facts
) -> CheckResult:
    """Projects of the domain environments whose Compute Engine default account is enabled or
    still holds roles/editor (konfig/gcp/default_sa.py)."""
    from konfig.gcp import default_sa

    title = "Compute Engine default service account disabled in domain projects"
    if not target.domain_projects:
        return _ok("domain-default-sa", title, "no domain projects")
    accounts = default_sa.observe(clients, target.control_plane, list(target.domain_projects))
    active = [a for a in accounts if a.active]
    hidden = [a.project_id for a in accounts if not a.visible]
    if active:
        detail = "; ".join(
            f"{a.project_id}: {a.email} "
            + " and ".join(w for w, on in (("enabled", a.enabled), ("holds roles/editor", a.editor)) if on)
            for a in active)
        return CheckResult("domain-default-sa", title, Status.MISSING, detail,
                           _bootstrap_fix(target) + " (disables it and removes its Editor grant)")
    unknown = [a.project_id for a in accounts if a.visible and a.editor is None]
    if unknown:
        return CheckResult("domain-default-sa", title, Status.UNKNOWN,
                           "IAM policy not readable: " + ", ".join(unknown),
                           "ask for roles/iam.securityReviewer on those projects")
    seen = len(accounts) - len(hidden)
    detail = f"{seen} of {len(accounts)} projects checked" + (
        f"; not visible yet: {', '.join(hidden)}" if hidden else "")
    return _ok("domain-default-sa", title, detail)


def _permissions_result(
    check: str, title: str, granted: set[str], wanted: tuple[str, ...], fix: str, where: str
) -> CheckResult:
    absent = [p for p in wanted if p not in granted]
    if not absent:
        return _ok(check, title, where)
    return CheckResult(check, title, Status.MISSING, "missing: " + ", ".join(absent), fix)


def _check_parent_permissions(
    clients: GcpClients, target: BootstrapTarget, facts: _Facts
) -> CheckResult:
    title = f"your permissions on {target.parent}"
    if not facts.parent_visible:
        return CheckResult("parent-permissions", title, Status.UNKNOWN, "parent not visible")
    client = (
        clients.organizations if target.parent.startswith("organizations/") else clients.folders
    )
    granted = set(
        client.test_iam_permissions(
            resource=target.parent, permissions=list(PARENT_PERMISSIONS)
        ).permissions
    )
    return _permissions_result(
        "parent-permissions",
        title,
        granted,
        PARENT_PERMISSIONS,
        "grant yourself roles/resourcemanager.folderCreator and "
        f"roles/resourcemanager.folderViewer on {target.parent}",
        target.parent,
    )


def _check_folder_permissions(
    clients: GcpClients, target: BootstrapTarget, facts: _Facts
) -> CheckResult:
    where = facts.folder or target.parent
    title = "your permissions on the control-plane folder"
    if not facts.parent_visible:
        return CheckResult("folder-permissions", title, Status.UNKNOWN, "parent not visible")
    # Before the folder exists, what its creator will hold there is inherited from the parent.
    client = clients.folders if where.startswith("folders/") else clients.organizations
    granted = set(
        client.test_iam_permissions(
            resource=where, permissions=list(FOLDER_PERMISSIONS)
        ).permissions
    )
    return _permissions_result(
        "folder-permissions",
        title,
        granted,
        FOLDER_PERMISSIONS,
        f"grant yourself roles/resourcemanager.projectCreator and "
        f"roles/resourcemanager.folderIamAdmin on {where}",
        where,
    )


def _check_project_permissions(
    clients: GcpClients, target: BootstrapTarget, facts: _Facts
) -> CheckResult:
    title = f"your permissions on project {target.project_id}"
    if facts.project is None:
        # GCP makes a project's creator its owner, so there is nothing to check beforehand.
        return _ok("project-permissions", title, "no project yet: its creator becomes owner")
    granted = set(
        clients.projects.test_iam_permissions(
            resource=facts.project.name, permissions=list(PROJECT_PERMISSIONS)
        ).permissions
    )
    return _permissions_result(
        "project-permissions",
        title,
        granted,
        PROJECT_PERMISSIONS,
        f"grant yourself roles/owner on {target.project_id} for the bootstrap (or "
        "serviceusage.serviceUsageAdmin, iam.serviceAccountAdmin, billing.projectManager and "
        "resourcemanager.projectIamAdmin)",
        facts.project.name,
    )


def _check_billing_permissions(
    clients: GcpClients, target: BootstrapTarget, facts: _Facts
) -> CheckResult:
    title = f"your permissions on {target.billing_account_name}"
    try:
        response = clients.billing.test_iam_permissions(
            resource=target.billing_account_name, permissions=list(BILLING_PERMISSIONS)
        )
    except (api_exceptions.Forbidden, api_exceptions.NotFound):
        response = None
    granted = set(response.permissions) if response else set()
    return _permissions_result(
        "billing-permissions",
        title,
        granted,
        BILLING_PERMISSIONS,
        f"ask for roles/billing.admin on {target.billing_account_name} (or have an administrator "
        "link the project and grant roles/billing.user to the controller)",
        target.billing_account_name,
    )
