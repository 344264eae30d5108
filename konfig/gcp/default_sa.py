"""The Compute Engine default service account of every domain project: disabled, and its
``roles/editor`` grant on the project removed, where Konfig can see it.

Why here and not in Config Connector: the account's email is
``<number>-compute@developer.gserviceaccount.com``, outside the ``iam.gserviceaccount.com``
domain that an ``IAMServiceAccount`` can acquire (Config Connector only acquires
``{account_id}@{project}.iam.gserviceaccount.com``:
https://github.com/GoogleCloudPlatform/k8s-config-connector/issues/341), and an
``IAMPolicyMember`` can add a binding but never remove one. The org policy
``iam.automaticIamGrantsForDefaultServiceAccounts`` (on the control-plane folder) stops new
Editor grants, but it is not retroactive: a project adopted with ``projectIds`` keeps the grant
it already had. So ``konfig bootstrap`` runs this plan with the caller's credentials, and
``konfig doctor`` reports what is still active.

What Konfig touches: only projects labelled ``konfig-control-plane=<this control plane>``
(Config Connector puts the label on every Project it manages), only the default account, and
only its unconditional ``roles/editor`` binding. Disabling is reversible
(``EnableServiceAccount``); nothing is deleted.
Source: https://cloud.google.com/iam/docs/service-account-types#default
"""

from __future__ import annotations

from dataclasses import dataclass, field

from google.api_core import exceptions as api_exceptions
from google.cloud import iam_admin_v1
from tenacity import Retrying, retry_if_exception_type, stop_after_attempt, wait_exponential

from konfig.compile.state import LABEL_CONTROL_PLANE
from konfig.definitions import Definitions
from konfig.gcp import lookups
from konfig.gcp.clients import GcpClients
from konfig.gcp.policy import POLICY_VERSION, unconditional_bindings
from konfig.gcp.target import compute_default_service_account
from konfig.validate import project_id_for

EDITOR = "roles/editor"


@dataclass(frozen=True)
class DefaultAccount:
    """What was found for one project. ``visible``: the project could be read; ``ours``: it
    carries this control plane's label; ``email`` is None when the account does not exist
    (Compute Engine was never enabled); ``enabled`` and ``editor``: its state, ``editor`` None
    when the project's policy is not readable."""

    project_id: str
    visible: bool = False
    ours: bool = False
    project_name: str = ""
    email: str | None = None
    enabled: bool = False
    editor: bool | None = False

    @property
    def active(self) -> bool:
        """Whether the account can still act (enabled) or still holds Editor."""
        return self.email is not None and (self.enabled or bool(self.editor))


@dataclass(frozen=True)
class Hardening:
    """One project's changes: ``disable`` the account, ``remove_editor`` its grant."""

    account: DefaultAccount
    disable: bool
    remove_editor: bool


@dataclass
class HardeningReport:
    """Per project, what was done (``done``), left (``skipped``, with why) or failed."""

    done: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)


def domain_project_ids(defs: Definitions) -> list[str]:
    """Every domain environment's project ID, sorted."""
    return sorted({project_id_for(defs, d, e) for d in defs.domains.values()
                   for e in defs.domain_environments(d)})


def observe(clients: GcpClients, control_plane: str, project_ids: list[str]) -> list[DefaultAccount]:
    """Read each project's default compute account and Editor grant. Raises
    ``GoogleAPICallError`` for errors other than absence or a refused policy read."""
    found = []
    for project_id in project_ids:
        project = lookups.get_project(clients, project_id)
        if project is None:
            found.append(DefaultAccount(project_id))
            continue
        number = project.name.split("/", 1)[1]
        email = compute_default_service_account(number)
        account = lookups.get_service_account(clients, email)
        ours = project.labels.get(LABEL_CONTROL_PLANE) == control_plane
        editor: bool | None
        try:
            bindings = unconditional_bindings(_project_policy(clients, project.name))
            editor = f"serviceAccount:{email}" in bindings.get(EDITOR, frozenset())
        except api_exceptions.Forbidden:
            editor = None
        found.append(DefaultAccount(
            project_id, visible=True, ours=ours, project_name=project.name,
            email=email if account is not None or editor else None,
            enabled=account is not None and not account.disabled, editor=editor,
        ))
    return found


def plan(accounts: list[DefaultAccount]) -> list[Hardening]:
    """The changes for the projects that are Konfig's and still have an active default
    account. Pure."""
    return [Hardening(a, disable=a.enabled, remove_editor=bool(a.editor))
            for a in accounts if a.ours and a.active]


def notes(accounts: list[DefaultAccount]) -> list[str]:
    """Why some projects are left alone (invisible, or not labelled as Konfig's)."""
    out = []
    for a in accounts:
        if not a.visible:
            out.append(f"{a.project_id}: not visible to you (not created yet, or no access)")
        elif not a.ours and a.active:
            out.append(f"{a.project_id}: not labelled {LABEL_CONTROL_PLANE}; Konfig leaves its "
                       "default compute service account alone")
    return out


def apply(clients: GcpClients, changes: list[Hardening]) -> HardeningReport:
    """Disable the accounts and remove their Editor grants; one project's failure does not
    stop the others. Never raises for API errors."""
    report = HardeningReport()
    for change in changes:
        account = change.account
        try:
            if change.disable and account.email:
                clients.iam.disable_service_account(request=iam_admin_v1.DisableServiceAccountRequest(
                    name=f"projects/-/serviceAccounts/{account.email}"))
                report.done.append(f"{account.project_id}: disabled {account.email}")
            if change.remove_editor and account.email:
                removed = _remove_editor(clients, account.project_name, f"serviceAccount:{account.email}")
                target = report.done if removed else report.skipped
                target.append(f"{account.project_id}: {'removed' if removed else 'no'} {EDITOR} "
                              f"grant of {account.email}")
        except api_exceptions.GoogleAPICallError as error:
            report.failed.append(f"{account.project_id}: {error.message or error}")
    return report


def _project_policy(clients: GcpClients, project_name: str):
    return clients.projects.get_iam_policy(
        request={"resource": project_name, "options": {"requested_policy_version": POLICY_VERSION}})


def _remove_editor(clients: GcpClients, project_name: str, member: str) -> bool:
    """Etag-guarded read-modify-write removing ``member`` from the unconditional Editor
    binding only (conditional bindings and other members stay). Retries on 409. Returns
    whether anything was removed."""
    for attempt in Retrying(retry=retry_if_exception_type(api_exceptions.Conflict),
                            stop=stop_after_attempt(6), reraise=True,
                            wait=wait_exponential(multiplier=clients.backoff_seconds,
                                                  max=clients.backoff_seconds * 20)):
        with attempt:
            policy = _project_policy(clients, project_name)
            binding = next((b for b in policy.bindings
                            if b.role == EDITOR and not b.HasField("condition") and member in b.members),
                           None)
            if binding is None:
                return False
            binding.members.remove(member)
            if not binding.members:
                policy.bindings.remove(binding)
            clients.projects.set_iam_policy(request={"resource": project_name, "policy": policy})
            return True
    raise AssertionError("unreachable: tenacity reraises")  # pragma: no cover
