"""Guard posts of external workloads: an uptime check on each one's load-balancer URL and, per
domain environment that has any, an alert policy notifying the domain's owner groups.

Everything lives in the domain environment's namespace (its own project, actuated by its own
Config Connector identity): the checks write their metrics there, and an alert policy may only
use notification channels of its own project. Uptime checks get a server-generated ID, so the
alert policy watches every check of the project (only this domain's external workloads) and
groups by check, so that each failing workload is its own incident. Sources:
https://cloud.google.com/monitoring/uptime-checks,
https://cloud.google.com/monitoring/alerts/policies-in-json (uptime check alert).
"""

from __future__ import annotations

from collections import defaultdict

from konfig.compile import naming
from konfig.compile.access import kcc_service_account_object
from konfig.compile.budgets import channel_name
from konfig.compile.context import CompileContext
from konfig.compile.hierarchy import SU, project_object_name
from konfig.compile.objects import konfig_labels, kube_object, object_name, policy_member, role_slug
from konfig.compile.routes import LoadBalancer, Route
from konfig.compile.state import PROJECT_ID_ANNOTATION, SYSTEM_NAMESPACE, KubeObject
from konfig.model import Domain

MONITORING = "monitoring.cnrm.cloud.google.com/v1beta1"
RM = "resourcemanager.cnrm.cloud.google.com/v1beta1"
MONITORING_SERVICE = "monitoring.googleapis.com"
#: Lets the environment's Config Connector identity manage checks, policies and channels on
#: its own project. Source: https://cloud.google.com/monitoring/access-control#roles
KCC_MONITORING_ROLE = "roles/monitoring.editor"
#: How often each check runs and how long it waits (60 s and 10 s: GCP's defaults).
PERIOD, TIMEOUT = "60s", "10s"
#: Alert when checks fail from more than one location for a minute: one failing checker
#: location is a network blip, not an outage (the recipe of the sources above).
FAILING_LOCATIONS = 1
ALERT_POLICY = "konfig-uptime"


def compile_uptime(ctx: CompileContext) -> list[KubeObject]:
    """Uptime checks, their alert policy and channels, and the roles and API they need."""
    by_namespace: dict[tuple[str, str], list[Route]] = defaultdict(list)
    for route in ctx.routes.values():
        if route.load_balancer is LoadBalancer.EXTERNAL:
            by_namespace[(route.domain, route.environment)].append(route)
    objects: list[KubeObject] = []
    for (domain_name, env), routes in sorted(by_namespace.items()):
        domain = ctx.defs.domains[domain_name]
        routes.sort(key=lambda r: r.workload)
        objects += [_check(ctx, domain, route) for route in routes]
        objects += _alerting(ctx, domain, env, routes)
    return objects


def _check(ctx: CompileContext, domain: Domain, route: Route) -> KubeObject:
    project_id = ctx.project_id(domain, route.environment)
    workload = ctx.defs.workload_in(route.domain, route.workload, route.environment)
    health = workload.spec_for(route.environment).container.health_path if workload else None
    path = route.path.rstrip("/") + (health or "") or "/"
    return kube_object(
        MONITORING, "MonitoringUptimeCheckConfig", object_name(route.workload, "uptime"),
        namespace=naming.namespace_name(route.domain, route.environment),
        labels=konfig_labels(ctx.cp_name, domain.spec.platform, domain.name, route.environment,
                             route.workload),
        spec={
            "projectRef": {"external": f"projects/{project_id}"},
            "displayName": f"{route.workload} ({route.environment}) {route.url}"[:100],
            "period": PERIOD, "timeout": TIMEOUT,
            "monitoredResource": {"type": "uptime_url",
                                  "filterLabels": {"host": route.host, "project_id": project_id}},
            "httpCheck": {"path": path, "port": 443, "useSsl": True, "validateSsl": True,
                          "requestMethod": "GET"},
        },
    )


def _owners(ctx: CompileContext, domain: Domain) -> list[str]:
    """The domain's owner groups; else its platform's; else the control plane's."""
    platform = ctx.defs.platforms.get(domain.spec.platform)
    for groups in (domain.spec.groups, platform.spec.groups if platform else [], ctx.cp.spec.groups):
        owners = sorted({g.group for g in groups if g.role == "owner"})
        if owners:
            return owners
    return []


def _alerting(ctx: CompileContext, domain: Domain, env: str, routes: list[Route]) -> list[KubeObject]:
    labels = konfig_labels(ctx.cp_name, domain.spec.platform, domain.name, env)
    namespace = naming.namespace_name(domain.name, env)
    project_id = ctx.project_id(domain, env)
    owners = _owners(ctx, domain)
    if not owners:
        ctx.notes.append(f"{namespace}: no owner group to alert when an external workload is down")
    channels = [kube_object(MONITORING, "MonitoringNotificationChannel", channel_name(g),
                            namespace=namespace, labels=labels,
                            spec={"type": "email", "description": f"Konfig: owner group {g}",
                                  "labels": {"email_address": g}, "enabled": True})
                for g in owners]
    watched = ", ".join(f"{r.workload} ({r.url})" for r in routes)
    policy = kube_object(MONITORING, "MonitoringAlertPolicy", ALERT_POLICY, namespace=namespace,
                         labels=labels, spec={
        "displayName": f"{domain.name} {env}: external workload down"[:100],
        "combiner": "OR",
        "enabled": True,
        "conditions": [{
            "displayName": "uptime check failing",
            "conditionThreshold": {
                "filter": ('metric.type="monitoring.googleapis.com/uptime_check/check_passed" '
                           'AND resource.type="uptime_url"'),
                "comparison": "COMPARISON_GT",
                "thresholdValue": FAILING_LOCATIONS,
                "duration": "60s",
                "trigger": {"count": 1},
                "aggregations": [{"alignmentPeriod": "1200s", "perSeriesAligner": "ALIGN_NEXT_OLDER",
                                  "crossSeriesReducer": "REDUCE_COUNT_FALSE",
                                  "groupByFields": ["metric.label.check_id", "resource.label.host"]}],
            },
        }],
        "notificationChannels": [{"name": channel_name(g)} for g in owners],
        "documentation": {"mimeType": "text/markdown", "content": (
            f"An external workload of domain **{domain.name}** in **{env}** fails its uptime "
            f"check from more than {FAILING_LOCATIONS} location. Watched: {watched}. "
            f"Runbook: docs/day2.md (break-glass: `konfig break-glass request {domain.name} "
            f"--env {env}`).")},
    })
    objects = [*channels, policy]
    sa = kcc_service_account_object(domain.name, env)
    objects.append(policy_member(
        object_name(sa, role_slug(KCC_MONITORING_ROLE)), namespace=SYSTEM_NAMESPACE, labels=labels,
        resource_ref={"apiVersion": RM, "kind": "Project", "name": project_object_name(project_id)},
        role=KCC_MONITORING_ROLE, service_account_ref={"name": sa}))
    if MONITORING_SERVICE not in ctx.services(domain):
        objects.append(kube_object(
            SU, "Service", object_name(project_id, "monitoring"), namespace=SYSTEM_NAMESPACE,
            labels=labels, annotations={PROJECT_ID_ANNOTATION: project_id},
            spec={"resourceID": MONITORING_SERVICE, "projectRef": {"external": project_id}}))
    return objects


__all__ = ["compile_uptime"]
