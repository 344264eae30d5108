"""``konfig bootstrap``: create or adopt the control plane's GCP foundation before Config
Connector exists, following the adapter pattern observe() -> diff() -> plan -> apply() -> report.

The foundation (see :class:`~konfig.gcp.target.BootstrapTarget`): the control-plane folder
under ``spec.gcp.parent``; the control-plane project in it, labelled
``konfig-control-plane=<name>``; its billing link; the APIs it needs; the controller's service
account with its roles on the folder and on the billing account; and, as Konfig never uses it,
the Compute Engine default service account disabled.

Idempotent: a second run observes everything in place and plans nothing. Never deletes, never
moves a project, never relinks a project already billed to another account, never removes an
IAM member; an existing project labelled for another control plane blocks the run.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum

from google.api_core import exceptions as api_exceptions
from google.cloud import billing_v1, iam_admin_v1, resourcemanager_v3, service_usage_v1
from google.protobuf import field_mask_pb2

from konfig.compile.state import LABEL_CONTROL_PLANE
from konfig.gcp import lookups
from konfig.gcp.clients import GcpClients
from konfig.gcp.policy import Bindings, ensure_member, missing_roles, unconditional_bindings
from konfig.gcp.target import BootstrapTarget, compute_default_service_account

#: Largest ``services:batchEnable`` request. Source:
#: https://cloud.google.com/service-usage/docs/reference/rest/v1/services/batchEnable
BATCH_ENABLE_MAX = 20

_DELETE_REQUESTED = resourcemanager_v3.Project.State.DELETE_REQUESTED


# ----------------------------------------------------------------------------- observed state


@dataclass(frozen=True)
class ObservedProject:
    """The parts of an existing project bootstrap cares about. ``name`` is
    ``projects/<number>``."""

    name: str
    project_id: str
    parent: str
    labels: dict[str, str]
    pending_deletion: bool = False

    @property
    def number(self) -> str:
        return self.name.split("/", 1)[1]


@dataclass(frozen=True)
class Observed:
    """What exists now. ``None`` means absent (or, for a project, invisible to the caller).

    ``billing_account``: ``billingAccounts/X`` linked to the project, ``""`` when none;
    ``billing_bindings``: None when the caller cannot read the billing account's policy;
    ``compute_sa_enabled``: None when the Compute Engine default account does not exist.
    """

    folder: str | None = None
    project: ObservedProject | None = None
    billing_account: str = ""
    enabled_services: frozenset[str] = frozenset()
    service_account_exists: bool = False
    folder_bindings: Bindings = field(default_factory=dict)
    billing_bindings: Bindings | None = None
    compute_sa_enabled: bool | None = None


def observe(clients: GcpClients, target: BootstrapTarget) -> Observed:
    """Read the current state of everything :class:`BootstrapTarget` describes.

    Raises ``google.api_core.exceptions.GoogleAPICallError`` when a read fails for another
    reason than absence (e.g. the parent is not visible: 403 on ``folders.list``).
    """
    folder = lookups.find_folder(clients, target.parent, target.folder_display_name)
    folder_name = folder.name if folder else None
    folder_bindings = (
        unconditional_bindings(lookups.folder_policy(clients, folder_name)) if folder_name else {}
    )
    billing_bindings = _readable_bindings(clients, target.billing_account_name)
    found = lookups.get_project(clients, target.project_id)
    if found is None:
        return Observed(
            folder=folder_name, folder_bindings=folder_bindings, billing_bindings=billing_bindings
        )
    project = ObservedProject(
        name=found.name,
        project_id=found.project_id,
        parent=found.parent,
        labels=dict(found.labels),
        pending_deletion=found.state == _DELETE_REQUESTED,
    )
    compute_sa = lookups.get_service_account(
        clients, compute_default_service_account(project.number)
    )
    return Observed(
        folder=folder_name,
        project=project,
        billing_account=lookups.project_billing_account(clients, project.project_id),
        enabled_services=lookups.enabled_services(clients, project.name, target.services),
        service_account_exists=lookups.get_service_account(clients, target.service_account_email)
        is not None,
        folder_bindings=folder_bindings,
        billing_bindings=billing_bindings,
        compute_sa_enabled=None if compute_sa is None else not compute_sa.disabled,
    )


def _readable_bindings(clients: GcpClients, account_name: str) -> Bindings | None:
    try:
        return unconditional_bindings(lookups.billing_policy(clients, account_name))
    except (api_exceptions.Forbidden, api_exceptions.NotFound):
        return None


# ----------------------------------------------------------------------------- plan


class Action(str, Enum):
    """What one step does, in the order bootstrap runs them."""

    CREATE_FOLDER = "create folder"
    CREATE_PROJECT = "create project"
    LABEL_PROJECT = "label project"
    LINK_BILLING = "link billing"
    ENABLE_SERVICES = "enable APIs"
    CREATE_SERVICE_ACCOUNT = "create service account"
    GRANT_FOLDER_ROLES = "grant folder roles"
    DISABLE_DEFAULT_COMPUTE_SA = "disable default compute SA"
    GRANT_BILLING_ROLES = "grant billing roles"


@dataclass(frozen=True)
class Step:
    """One change. ``target``: the resource it changes (``<new folder>`` / ``<new project>``
    stand for what an earlier step creates); ``items``: roles or services it adds."""

    action: Action
    target: str
    detail: str = ""
    items: tuple[str, ...] = ()


@dataclass(frozen=True)
class BootstrapPlan:
    """Steps to run in order, plus ``blockers`` (reasons not to run at all) and ``notes``
    (differences bootstrap deliberately leaves alone). Empty ``steps``: nothing to do."""

    target: BootstrapTarget
    observed: Observed
    steps: tuple[Step, ...] = ()
    blockers: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()

    def __len__(self) -> int:
        return len(self.steps)

    @property
    def adopts_project(self) -> bool:
        """True when the project exists already and bootstrap takes it over."""
        return self.observed.project is not None


NEW_FOLDER = "<new folder>"
NEW_PROJECT = "<new project>"


def diff(target: BootstrapTarget, observed: Observed) -> BootstrapPlan:
    """The steps that take ``observed`` to ``target``. Pure: no I/O."""
    notes: list[str] = []
    blockers = _project_blockers(target, observed.project) if observed.project else []
    steps = (
        _hierarchy_steps(target, observed, notes)
        + _project_setup_steps(target, observed, notes)
        + _identity_steps(target, observed)
    )
    return BootstrapPlan(target, observed, tuple(steps), tuple(blockers), tuple(notes))


def _project_ref(target: BootstrapTarget, observed: Observed) -> str:
    return f"projects/{target.project_id}" if observed.project else NEW_PROJECT


def _hierarchy_steps(target: BootstrapTarget, observed: Observed, notes: list[str]) -> list[Step]:
    """Folder and project: create what is absent, label an adopted project, never move it."""
    steps = []
    if observed.folder is None:
        steps.append(
            Step(Action.CREATE_FOLDER, repr(target.folder_display_name), f"under {target.parent}")
        )
    project = observed.project
    if project is None:
        folder = observed.folder or NEW_FOLDER
        detail = f"in {folder}, labels {_labels(target.labels)}"
        return steps + [Step(Action.CREATE_PROJECT, target.project_id, detail)]
    if project.labels.get(LABEL_CONTROL_PLANE) is None:
        steps.append(
            Step(Action.LABEL_PROJECT, _project_ref(target, observed), _labels(target.labels))
        )
    if observed.folder and project.parent != observed.folder:
        notes.append(
            f"project {target.project_id} stays in {project.parent}: bootstrap never moves "
            f"projects (the control-plane folder is {observed.folder})"
        )
    return steps


def _project_setup_steps(
    target: BootstrapTarget, observed: Observed, notes: list[str]
) -> list[Step]:
    """Billing link (only where there is none) and the APIs."""
    steps = []
    ref = _project_ref(target, observed)
    if not observed.billing_account:
        steps.append(Step(Action.LINK_BILLING, ref, target.billing_account_name))
    elif observed.billing_account != target.billing_account_name:
        notes.append(
            f"project {target.project_id} is billed to {observed.billing_account}, not "
            f"{target.billing_account_name}; bootstrap leaves billing links it did not make"
        )
    absent = tuple(s for s in target.services if s not in observed.enabled_services)
    if absent:
        steps.append(Step(Action.ENABLE_SERVICES, ref, ", ".join(absent), absent))
    return steps


def _identity_steps(target: BootstrapTarget, observed: Observed) -> list[Step]:
    """The controller's account and roles; the Compute Engine default account turned off."""
    steps = []
    member = target.service_account_member
    if not observed.service_account_exists:
        steps.append(Step(Action.CREATE_SERVICE_ACCOUNT, target.service_account_email))
    folder_roles = missing_roles(observed.folder_bindings, member, target.folder_roles)
    if folder_roles:
        detail = f"{', '.join(folder_roles)} to {member}"
        folder = observed.folder or NEW_FOLDER
        steps.append(Step(Action.GRANT_FOLDER_ROLES, folder, detail, folder_roles))
    if observed.project is None:
        steps.append(
            Step(
                Action.DISABLE_DEFAULT_COMPUTE_SA,
                f"{NEW_PROJECT} default compute SA",
                "if enabling Compute Engine created it",
            )
        )
    elif observed.compute_sa_enabled:
        steps.append(
            Step(
                Action.DISABLE_DEFAULT_COMPUTE_SA,
                compute_default_service_account(observed.project.number),
                "adopted project: Konfig never uses the default service account",
            )
        )
    billing_roles = missing_roles(observed.billing_bindings or {}, member, target.billing_roles)
    if billing_roles:
        detail = f"{', '.join(billing_roles)} to {member}"
        if observed.billing_bindings is None:
            detail += " (its policy is not readable by you; the grant may fail)"
        steps.append(
            Step(Action.GRANT_BILLING_ROLES, target.billing_account_name, detail, billing_roles)
        )
    return steps


def _project_blockers(target: BootstrapTarget, project: ObservedProject) -> list[str]:
    blockers = []
    owner = project.labels.get(LABEL_CONTROL_PLANE)
    if owner is not None and owner != target.control_plane:
        blockers.append(
            f"project {target.project_id} belongs to control plane {owner!r} "
            f"(label {LABEL_CONTROL_PLANE}); set spec.gcp.projectId to another project"
        )
    if project.pending_deletion:
        blockers.append(
            f"project {target.project_id} is pending deletion; undelete it "
            f"(gcloud projects undelete {target.project_id}) or choose another spec.gcp.projectId"
        )
    if target.project_number and target.project_number != project.number:
        blockers.append(
            f"spec.gcp.projectNumber is {target.project_number} but project {target.project_id} "
            f"has number {project.number}"
        )
    return blockers


def _labels(labels: dict[str, str]) -> str:
    return ", ".join(f"{k}={v}" for k, v in sorted(labels.items()))


# ----------------------------------------------------------------------------- apply


class Outcome(str, Enum):
    DONE = "done"
    SKIPPED = "skipped"  # nothing to do after all (found at apply time)
    FAILED = "failed"
    NOT_RUN = "not run"  # an earlier step failed


@dataclass(frozen=True)
class StepResult:
    step: Step
    outcome: Outcome
    message: str = ""


@dataclass
class BootstrapReport:
    """What apply did. ``project_number`` is known once the project exists (users copy it to
    ``spec.gcp.projectNumber``); ``ok`` is False if a step failed or the plan was blocked."""

    results: list[StepResult] = field(default_factory=list)
    folder: str | None = None
    project_number: str | None = None
    blocked: bool = False

    @property
    def ok(self) -> bool:
        return not self.blocked and all(r.outcome is not Outcome.FAILED for r in self.results)


@dataclass
class _Context:
    """Names resolved while applying (what ``<new folder>`` and ``<new project>`` became)."""

    folder: str | None
    project: ObservedProject | None


def apply(clients: GcpClients, plan: BootstrapPlan) -> BootstrapReport:
    """Run the plan's steps in order; stop at the first failure (later steps depend on earlier
    ones) and mark the rest ``not run``. A blocked plan runs nothing. Never raises for API
    errors: they become ``failed`` results with the API's message."""
    observed = plan.observed
    context = _Context(observed.folder, observed.project)
    report = BootstrapReport(folder=context.folder, blocked=bool(plan.blockers))
    if plan.blockers:
        report.project_number = context.project.number if context.project else None
        return report
    failed = False
    for step in plan.steps:
        if failed:
            report.results.append(StepResult(step, Outcome.NOT_RUN))
            continue
        try:
            outcome, message = _RUNNERS[step.action](clients, plan.target, context, step)
        except (api_exceptions.GoogleAPICallError, TimeoutError) as error:
            outcome, message, failed = Outcome.FAILED, _explain(step, error), True
        report.results.append(StepResult(step, outcome, message))
    report.folder = context.folder
    report.project_number = context.project.number if context.project else None
    return report


def _create_folder(clients: GcpClients, target: BootstrapTarget, ctx: _Context, step: Step):
    folder = resourcemanager_v3.Folder(
        parent=target.parent, display_name=target.folder_display_name
    )
    try:
        operation = clients.folders.create_folder(folder=folder)
        created = operation.result(polling=clients.polling)
    except api_exceptions.BadRequest:
        # FAILED_PRECONDITION (400 over REST) when the display name is taken: someone created
        # it since we looked. Adopt theirs rather than fail or duplicate.
        existing = lookups.find_folder(clients, target.parent, target.folder_display_name)
        if existing is None:
            raise
        ctx.folder = existing.name
        return Outcome.SKIPPED, f"{existing.name} appeared meanwhile; adopted"
    ctx.folder = created.name
    return Outcome.DONE, created.name


def _create_project(clients: GcpClients, target: BootstrapTarget, ctx: _Context, step: Step):
    assert ctx.folder, "the folder step runs first"
    project = resourcemanager_v3.Project(
        project_id=target.project_id, parent=ctx.folder, labels=target.labels
    )
    try:
        created = clients.projects.create_project(project=project).result(polling=clients.polling)
    except api_exceptions.Conflict as error:
        raise api_exceptions.Conflict(
            f"project ID {target.project_id} is taken by a project you cannot see; set "
            "spec.gcp.projectId to a free ID"
        ) from error
    ctx.project = ObservedProject(
        created.name, created.project_id, created.parent, dict(created.labels)
    )
    return Outcome.DONE, f"{created.name} ({created.project_id})"


def _label_project(clients: GcpClients, target: BootstrapTarget, ctx: _Context, step: Step):
    assert ctx.project
    labels = {**ctx.project.labels, **target.labels}
    operation = clients.projects.update_project(
        project=resourcemanager_v3.Project(name=ctx.project.name, labels=labels),
        update_mask=field_mask_pb2.FieldMask(paths=["labels"]),
    )
    operation.result(polling=clients.polling)
    return Outcome.DONE, _labels(target.labels)


def _link_billing(clients: GcpClients, target: BootstrapTarget, ctx: _Context, step: Step):
    assert ctx.project
    current = lookups.project_billing_account(clients, ctx.project.project_id)
    if current:
        return Outcome.SKIPPED, f"already billed to {current}"
    clients.billing.update_project_billing_info(
        name=f"projects/{ctx.project.project_id}",
        project_billing_info=billing_v1.ProjectBillingInfo(
            billing_account_name=target.billing_account_name
        ),
    )
    return Outcome.DONE, target.billing_account_name


def _enable_services(clients: GcpClients, target: BootstrapTarget, ctx: _Context, step: Step):
    assert ctx.project
    for start in range(0, len(step.items), BATCH_ENABLE_MAX):
        operation = clients.service_usage.batch_enable_services(
            request=service_usage_v1.BatchEnableServicesRequest(
                parent=ctx.project.name,
                service_ids=list(step.items[start : start + BATCH_ENABLE_MAX]),
            )
        )
        operation.result(polling=clients.polling)
    return Outcome.DONE, ", ".join(step.items)


def _create_service_account(
    clients: GcpClients, target: BootstrapTarget, ctx: _Context, step: Step
):
    try:
        account = clients.iam.create_service_account(
            request=iam_admin_v1.CreateServiceAccountRequest(
                name=f"projects/{target.project_id}",
                account_id=target.service_account_id,
                service_account=iam_admin_v1.ServiceAccount(
                    display_name="Konfig controller",
                    description=f"Konfig control plane {target.control_plane}: creates folders "
                    "and projects below the control-plane folder",
                ),
            )
        )
    except api_exceptions.AlreadyExists:
        return Outcome.SKIPPED, "already exists"
    return Outcome.DONE, account.email


def _grant_folder_roles(clients: GcpClients, target: BootstrapTarget, ctx: _Context, step: Step):
    assert ctx.folder
    folder = ctx.folder
    added = ensure_member(
        lambda: lookups.folder_policy(clients, folder),
        lambda policy: clients.folders.set_iam_policy(
            request={"resource": folder, "policy": policy}
        ),
        target.service_account_member,
        step.items,
        backoff_seconds=clients.backoff_seconds,
    )
    return (Outcome.DONE, ", ".join(added)) if added else (Outcome.SKIPPED, "already granted")


def _grant_billing_roles(clients: GcpClients, target: BootstrapTarget, ctx: _Context, step: Step):
    account = target.billing_account_name
    added = ensure_member(
        lambda: lookups.billing_policy(clients, account),
        lambda policy: clients.billing.set_iam_policy(
            request={"resource": account, "policy": policy}
        ),
        target.service_account_member,
        step.items,
        backoff_seconds=clients.backoff_seconds,
    )
    return (Outcome.DONE, ", ".join(added)) if added else (Outcome.SKIPPED, "already granted")


def _disable_default_compute_sa(
    clients: GcpClients, target: BootstrapTarget, ctx: _Context, step: Step
):
    assert ctx.project
    email = compute_default_service_account(ctx.project.number)
    account = lookups.get_service_account(clients, email)
    if account is None:
        return Outcome.SKIPPED, f"{email} does not exist"
    if account.disabled:
        return Outcome.SKIPPED, f"{email} already disabled"
    clients.iam.disable_service_account(
        request=iam_admin_v1.DisableServiceAccountRequest(name=account.name)
    )
    return Outcome.DONE, f"{email} disabled (re-enable with EnableServiceAccount if ever needed)"


_RUNNERS = {
    Action.CREATE_FOLDER: _create_folder,
    Action.CREATE_PROJECT: _create_project,
    Action.LABEL_PROJECT: _label_project,
    Action.LINK_BILLING: _link_billing,
    Action.ENABLE_SERVICES: _enable_services,
    Action.CREATE_SERVICE_ACCOUNT: _create_service_account,
    Action.GRANT_FOLDER_ROLES: _grant_folder_roles,
    Action.DISABLE_DEFAULT_COMPUTE_SA: _disable_default_compute_sa,
    Action.GRANT_BILLING_ROLES: _grant_billing_roles,
}


def _explain(step: Step, error: Exception) -> str:
    """The API's message, plus a hint for the usual cause."""
    message = getattr(error, "message", None) or str(error)
    if isinstance(error, api_exceptions.Forbidden):
        return f"{message} (run `konfig doctor` to see which permission is missing)"
    if isinstance(error, TimeoutError):
        return f"operation did not finish in time: {message}; rerun bootstrap to continue"
    return message
