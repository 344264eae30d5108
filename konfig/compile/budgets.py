"""Cost guard posts: a monthly billing budget per Domain and Platform that declares
``spec.budget``, over that domain's (or every domain of that platform's) projects, alerting the
owner groups by email at 50, 90 and 100 % of actual and of forecasted spend.

Everything lives in ``konfig-system`` and is actuated by the control plane's service account:
budgets belong to the billing account (``konfig bootstrap`` grants the controller
``roles/billing.costsManager`` there), and the e-mail notification channels of the owner groups
live in the control-plane project, where the budget API looks them up.
"""

from __future__ import annotations

import math

from konfig.compile.context import CompileContext
from konfig.compile.hierarchy import SU, project_object_name
from konfig.compile.objects import konfig_labels, kube_object, object_name, policy_member
from konfig.compile.state import PROJECT_ID_ANNOTATION, SYSTEM_NAMESPACE, KubeObject
from konfig.errors import Problems
from konfig.model import Definition, Domain
from konfig.model.common import Budget, GroupBinding

BILLING_BUDGETS = "billingbudgets.cnrm.cloud.google.com/v1beta1"
MONITORING = "monitoring.cnrm.cloud.google.com/v1beta1"
RM = "resourcemanager.cnrm.cloud.google.com/v1beta1"

#: Threshold fractions of the budget; each is set on actual and on forecasted spend.
#: Source: https://cloud.google.com/billing/docs/how-to/budgets#budget-actions
THRESHOLDS = (0.5, 0.9, 1.0)
SPEND_BASES = ("CURRENT_SPEND", "FORECASTED_SPEND")
#: "A maximum of 5 channels are allowed" per budget. Source:
#: https://cloud.google.com/billing/docs/reference/budget/rest/v1/billingAccounts.budgets#NotificationsRule
MAX_CHANNELS = 5
#: Budget display names are at most 60 characters (the CRD's description of displayName).
DISPLAY_NAME_MAX = 60
#: APIs the control-plane project needs for budgets and their e-mail channels.
BUDGET_SERVICES = ("billingbudgets.googleapis.com", "monitoring.googleapis.com")
#: Lets the controller manage the owner groups' channels in the control-plane project.
#: Source: https://cloud.google.com/monitoring/access-control#roles
CHANNEL_ROLE = "roles/monitoring.notificationChannelEditor"


def channel_name(group: str) -> str:
    """Object name of the e-mail notification channel of one owner group (in ``konfig-system``,
    shared by every budget that notifies it)."""
    return object_name("owners", group.replace("@", "-at-"))


def budget_name(level: str, name: str) -> str:
    """Object name of the budget of a ``domain`` or ``platform`` called ``name``."""
    return object_name("budget", level, name)


def compile_budgets(ctx: CompileContext) -> list[KubeObject]:
    """Budgets, their owners' notification channels, the APIs and the controller's channel
    role. Raises :class:`~konfig.errors.DefinitionError` when a budget would notify more owner
    groups than the API allows."""
    problems = Problems()
    objects: list[KubeObject] = []
    channels: dict[str, KubeObject] = {}
    cp_owners = _owners(ctx.cp.spec.groups)
    for platform in sorted(ctx.defs.platforms.values(), key=lambda p: p.name):
        if platform.spec.budget is None:
            continue
        domains = [d for d in ctx.defs.domains.values() if d.spec.platform == platform.name]
        if not domains:  # an empty project filter would cover the whole billing account
            ctx.notes.append(f"platform {platform.name}: no domain yet, so no budget")
            continue
        owners = _owners(platform.spec.groups) or cp_owners
        objects.append(_budget(ctx, platform, "platform", platform.spec.budget,
                               _projects(ctx, domains), owners, channels, problems,
                               konfig_labels(ctx.cp_name, platform.name)))
    for domain in sorted(ctx.defs.domains.values(), key=lambda d: d.name):
        if domain.spec.budget is None:
            continue
        platform = ctx.defs.platforms.get(domain.spec.platform)
        owners = (_owners(domain.spec.groups) or (_owners(platform.spec.groups) if platform else [])
                  or cp_owners)
        objects.append(_budget(ctx, domain, "domain", domain.spec.budget, _projects(ctx, [domain]),
                               owners, channels, problems,
                               konfig_labels(ctx.cp_name, domain.spec.platform, domain.name)))
    problems.raise_if_any()
    if not objects:
        return []
    return [*_control_plane_setup(ctx), *channels.values(), *objects]


def _owners(groups: list[GroupBinding]) -> list[str]:
    return sorted({g.group for g in groups if g.role == "owner"})


def _projects(ctx: CompileContext, domains: list[Domain]) -> list[str]:
    return sorted(ctx.project_id(d, env.name) for d in domains for env in ctx.domain_environments(d))


def _budget(ctx: CompileContext, owner: Definition, level: str, budget: Budget, projects: list[str],
            owners: list[str], channels: dict[str, KubeObject], problems: Problems,
            labels: dict[str, str]) -> KubeObject:
    if len(owners) > MAX_CHANNELS:
        problems.add(owner.locate("spec.budget"),
                     f"{len(owners)} owner groups would be notified ({', '.join(owners)}); a "
                     f"budget notifies at most {MAX_CHANNELS} channels: declare at most "
                     f"{MAX_CHANNELS} owner groups on this {level.capitalize()}")
        owners = owners[:MAX_CHANNELS]
    for group in owners:
        channels.setdefault(group, _channel(ctx, group))
    units, nanos = _money(budget.monthly)
    spec = {
        "billingAccountRef": {"external": ctx.cp.spec.gcp.billing_account},
        "displayName": f"konfig {level} {owner.name} monthly"[:DISPLAY_NAME_MAX],
        "budgetFilter": {
            "projects": [{"name": project_object_name(p)} for p in projects],
            "calendarPeriod": "MONTH",
        },
        "amount": {"specifiedAmount": {"currencyCode": budget.currency, "units": units,
                                       "nanos": nanos}},
        "thresholdRules": [{"thresholdPercent": t, "spendBasis": basis}
                           for basis in SPEND_BASES for t in THRESHOLDS],
        "allUpdatesRule": {
            "monitoringNotificationChannels": [{"name": channel_name(g)} for g in owners],
            "disableDefaultIamRecipients": False,  # billing administrators keep their e-mails
        },
    }
    return kube_object(BILLING_BUDGETS, "BillingBudgetsBudget", budget_name(level, owner.name),
                       namespace=SYSTEM_NAMESPACE, labels=labels, spec=spec)


def _money(amount: float) -> tuple[int, int]:
    """``1234.5`` → ``(1234, 500000000)``: the google.type.Money split of a positive amount."""
    units = math.floor(amount)
    return units, round((amount - units) * 1e9)


def _channel(ctx: CompileContext, group: str) -> KubeObject:
    """An e-mail channel to ``group``. Source:
    https://cloud.google.com/monitoring/support/notification-options#email"""
    return kube_object(
        MONITORING, "MonitoringNotificationChannel", channel_name(group),
        namespace=SYSTEM_NAMESPACE, labels=konfig_labels(ctx.cp_name),
        annotations={PROJECT_ID_ANNOTATION: ctx.cp_project_id},
        spec={"type": "email", "description": f"Konfig: owner group {group}",
              "labels": {"email_address": group}, "enabled": True},
    )


def _control_plane_setup(ctx: CompileContext) -> list[KubeObject]:
    labels = konfig_labels(ctx.cp_name)
    services = [
        kube_object(SU, "Service", object_name(ctx.cp_project_id, service.split(".", 1)[0]),
                    namespace=SYSTEM_NAMESPACE, labels=labels,
                    annotations={PROJECT_ID_ANNOTATION: ctx.cp_project_id},
                    spec={"resourceID": service, "projectRef": {"external": ctx.cp_project_id}})
        for service in BUDGET_SERVICES
    ]
    role = policy_member(
        object_name("controller", ctx.cp_name, "notification-channels"), namespace=SYSTEM_NAMESPACE,
        labels=labels, resource_ref={"apiVersion": RM, "kind": "Project",
                                     "name": project_object_name(ctx.cp_project_id)},
        role=CHANNEL_ROLE, service_account_ref={"name": object_name("controller", ctx.cp_name)},
    )
    return [*services, role]


def budgets_of(objects: list[KubeObject]) -> list[dict[str, str]]:
    """One summary per budget of a desired state, for ``konfig plan``: ``level``, ``name``,
    ``amount`` (``2000 USD``), ``projects`` (count) and ``notify`` (comma-separated groups)."""
    channels = {o["metadata"]["name"]: o["spec"]["labels"]["email_address"] for o in objects
                if o["kind"] == "MonitoringNotificationChannel"}
    rows = []
    for o in objects:
        if o["kind"] != "BillingBudgetsBudget":
            continue
        spec, labels = o["spec"], o["metadata"]["labels"]
        money = spec["amount"]["specifiedAmount"]
        amount = money["units"] + money["nanos"] / 1e9
        level = "domain" if "konfig-domain" in labels else "platform"
        rows.append({
            "level": level,
            "name": labels.get("konfig-domain") or labels.get("konfig-platform", ""),
            "amount": f"{amount:,.2f}".rstrip("0").rstrip(".") + f" {money['currencyCode']}",
            "projects": str(len(spec["budgetFilter"]["projects"])),
            "notify": ", ".join(channels.get(c["name"], c["name"])
                                for c in spec["allUpdatesRule"]["monitoringNotificationChannels"]),
        })
    return rows


__all__ = ["compile_budgets", "budgets_of", "budget_name", "channel_name"]
