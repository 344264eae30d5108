"""The GKE and Dataflow runtimes of a workload environment (Cloud Run stays in
:mod:`konfig.compile.workloads`, beside its load-balancer wiring).

**GKE** workloads run in the control-plane cluster, in their domain-environment namespace
(docs/runtimes.md says why): a Workload Identity ServiceAccount acting as the workload's own
Google service account; a Deployment with requests and limits from ``container``, readiness
and liveness probes on the port (HTTP on ``container.healthPath``, else TCP), locked-down
containers; a ClusterIP Service; a HorizontalPodAutoscaler from ``scaling`` (CPU target
``scaling.cpuTarget``); a PodDisruptionBudget when at least two replicas must run; and a
NetworkPolicy admitting only its own domain environment (GKE workloads are ``domain``
visible). Every object, and every pod,
carries the ``konfig-*`` labels, and so does the namespace: GKE cost allocation splits the
cluster's bill by namespace and by pod label
(https://cloud.google.com/kubernetes-engine/docs/how-to/cost-allocations).

**Dataflow** workloads get, per environment, a ``DataflowFlexTemplateJob`` launched by the
namespace's Config Connector identity and running as the workload's own service account on
the environment's shared network with private worker IPs; a temp and a staging bucket; the
worker's roles on them and on the network (and, once per domain environment, the Dataflow
service agent's); and, for the domain's CI identity, ``actAs`` on
that one service account (to launch ad-hoc batch runs) plus write access to the staging
bucket, where the pipeline publishes the template spec of each digest it promotes.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from konfig.compile import naming
from konfig.compile.access import ci_service_account_email
from konfig.compile.context import CompileContext
from konfig.compile.network import subnet_object_name
from konfig.compile.objects import konfig_labels, kube_object, object_name, policy_member
from konfig.compile.state import SYSTEM_NAMESPACE, KubeObject
from konfig.errors import Problems
from konfig.model import names

if TYPE_CHECKING:
    from konfig.compile.workloads import Target

IAM = "iam.cnrm.cloud.google.com/v1beta1"
STORAGE = "storage.cnrm.cloud.google.com/v1beta1"
DATAFLOW = "dataflow.cnrm.cloud.google.com/v1beta1"
SERVICE_USAGE = "serviceusage.cnrm.cloud.google.com/v1beta1"
COMPUTE = "compute.cnrm.cloud.google.com/v1beta1"
#: Label selecting a workload's pods (recommended label:
#: https://kubernetes.io/docs/concepts/overview/working-with-objects/common-labels/).
APP_LABEL = "app.kubernetes.io/name"
#: Days temp files of a Dataflow job are kept (they only matter while a job runs).
TEMP_RETENTION_DAYS = 7
#: Object name of the Dataflow service agent in a domain-environment namespace.
DATAFLOW_AGENT = "dataflow-service-agent"
_REFERENCE = re.compile(r"\$\(([A-Za-z_][A-Za-z0-9_]*)\)")


# ----------------------------------------------------------------------------------- GKE


def gke(ctx: CompileContext, t: "Target", env: dict[str, str], labels: dict[str, str]) -> list[KubeObject]:
    """Every object of a GKE workload environment, in its namespace of the control-plane
    cluster."""
    spec = t.spec
    name = t.workload.name
    selector = {APP_LABEL: name}
    replicas = max(spec.scaling.min, 1)  # the autoscaler never goes below one pod
    autoscaled = spec.scaling.max > replicas
    deployment: dict[str, Any] = {
        "selector": {"matchLabels": selector},
        "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1}},
        "template": {
            "metadata": {"labels": {**labels, **selector}},
            "spec": {
                "serviceAccountName": name,
                "securityContext": {"runAsNonRoot": True, "seccompProfile": {"type": "RuntimeDefault"}},
                "containers": [_container(t, env)],
            },
        },
    }
    if not autoscaled:
        deployment["replicas"] = replicas  # with an autoscaler, it owns the count
    objects = [
        kube_object("v1", "ServiceAccount", name, namespace=t.namespace, labels=labels,
                    annotations={"iam.gke.io/gcp-service-account": t.service_account_email}),
        policy_member(
            object_name(name, "workload-identity"), namespace=t.namespace, labels=labels,
            resource_ref={"apiVersion": IAM, "kind": "IAMServiceAccount", "name": t.service_account_id},
            role="roles/iam.workloadIdentityUser",
            member=f"serviceAccount:{ctx.cp_project_id}.svc.id.goog[{t.namespace}/{name}]"),
        kube_object("apps/v1", "Deployment", name, namespace=t.namespace, labels=labels, spec=deployment),
        kube_object("v1", "Service", name, namespace=t.namespace, labels=labels,
                    spec={"selector": selector,
                          "ports": [{"name": "http", "port": 80, "targetPort": "http"}]}),
        _network_policy(ctx, t, labels, selector),
    ]
    if autoscaled:
        objects.append(_autoscaler(t, labels, replicas))
    if spec.scaling.min >= 2:
        # Voluntary disruptions (node upgrades, drains) take one pod at a time.
        objects.append(kube_object("policy/v1", "PodDisruptionBudget", name, namespace=t.namespace,
                                   labels=labels,
                                   spec={"maxUnavailable": 1, "selector": {"matchLabels": selector}}))
    return objects


def _container(t: "Target", env: dict[str, str]) -> dict[str, Any]:
    spec = t.spec
    resources = {"cpu": spec.container.cpu, "memory": spec.container.memory}
    container: dict[str, Any] = {
        "name": t.workload.name, "image": spec.image,
        "ports": [{"containerPort": spec.container.port, "name": "http"}],
        "env": [{"name": k, "value": v} for k, v in sorted(env.items())],
        # Requests equal limits: Guaranteed QoS, and what the autoscaler's percentage refers to.
        "resources": {"requests": dict(resources), "limits": dict(resources)},
        "readinessProbe": {**_probe(spec.container.health_path), "periodSeconds": 10,
                           "failureThreshold": 3},
        "livenessProbe": {**_probe(spec.container.health_path), "initialDelaySeconds": 10,
                          "periodSeconds": 20, "failureThreshold": 3},
        "securityContext": {"allowPrivilegeEscalation": False, "readOnlyRootFilesystem": True,
                            "capabilities": {"drop": ["ALL"]}},
    }
    if spec.container.command:
        container["command"] = list(spec.container.command)
    if spec.container.args:
        container["args"] = list(spec.container.args)
    return container


def _probe(path: str | None) -> dict[str, Any]:
    if path:
        return {"httpGet": {"path": path, "port": "http"}}
    return {"tcpSocket": {"port": "http"}}


def _autoscaler(t: "Target", labels: dict[str, str], replicas: int) -> KubeObject:
    """``autoscaling/v2``: CPU utilisation relative to the requests. Source:
    https://kubernetes.io/docs/tasks/run-application/horizontal-pod-autoscale/"""
    name = t.workload.name
    return kube_object("autoscaling/v2", "HorizontalPodAutoscaler", name, namespace=t.namespace,
                       labels=labels, spec={
                           "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": name},
                           "minReplicas": replicas, "maxReplicas": t.spec.scaling.max,
                           "metrics": [{"type": "Resource", "resource": {
                               "name": "cpu", "target": {"type": "Utilization",
                                                         "averageUtilization": t.spec.scaling.cpu_target}}}],
                       })


def _network_policy(ctx: CompileContext, t: "Target", labels: dict[str, str],
                    selector: dict[str, str]) -> KubeObject:
    """Ingress to the workload's pods only from its own namespace (its domain, in this
    environment), on its port: a GKE workload is ``domain`` visible (validation refuses the
    wider visibilities, which need the environment's load balancers). Egress stays open
    (Google APIs, the metadata server)."""
    return kube_object(
        "networking.k8s.io/v1", "NetworkPolicy", t.workload.name, namespace=t.namespace, labels=labels,
        spec={"podSelector": {"matchLabels": selector}, "policyTypes": ["Ingress"],
              "ingress": [{"from": [{"namespaceSelector": {"matchLabels": {
                              "kubernetes.io/metadata.name": t.namespace}}}],
                           "ports": [{"protocol": "TCP", "port": t.spec.container.port}]}]},
    )


# ------------------------------------------------------------------------------- Dataflow


def dataflow_bucket(project_id: str, workload: str, purpose: str) -> str:
    """Name of a Dataflow workload's ``temp`` or ``staging`` bucket: global, so prefixed by the
    project ID, and at most 63 characters (fitted with a stable hash). Source:
    https://cloud.google.com/storage/docs/buckets#naming"""
    text = f"{project_id}-{workload}-df-{purpose}"
    if len(text) <= 63:
        return text
    return f"{text[:58].rstrip('-')}-{names.short_hash(text)}"


def template_spec_path(staging_bucket: str, workload: str, image: str) -> str:
    """Where CI publishes the Flex Template spec of ``image``: ``gs://<staging>/templates/
    <workload>/<digest hex or tag>.json``, one file per promoted digest, so the job always names
    exactly the image that was tested. Source:
    https://cloud.google.com/dataflow/docs/guides/templates/using-flex-templates"""
    if "@sha256:" in image:
        version = image.rsplit("@sha256:", 1)[1]
    else:
        last = image.rsplit("/", 1)[-1]
        version = last.split(":", 1)[1] if ":" in last else "latest"
    return f"gs://{staging_bucket}/templates/{workload}/{version}.json"


def dataflow(ctx: CompileContext, t: "Target", env: dict[str, str], labels: dict[str, str]) -> list[KubeObject]:
    """Buckets, grants and the Flex Template job of a Dataflow workload environment. Raises
    :class:`DefinitionError` when a parameter names a variable the workload lacks."""
    spec = t.spec
    assert spec.dataflow is not None, "validation requires spec.dataflow for runtime dataflow"
    temp = dataflow_bucket(t.project_id, t.workload.name, "temp")
    staging = dataflow_bucket(t.project_id, t.workload.name, "staging")
    worker = {"name": t.service_account_id}
    objects = [
        _bucket(t, "temp", temp, ctx.region, labels, delete_after_days=TEMP_RETENTION_DAYS),
        _bucket(t, "staging", staging, ctx.region, labels),
    ]
    for purpose in ("temp", "staging"):
        objects.append(policy_member(
            object_name(t.workload.name, "df", purpose, "objectadmin"),
            namespace=t.namespace, labels=labels,
            resource_ref={"apiVersion": STORAGE, "kind": "StorageBucket",
                          "name": _bucket_object(t, purpose)},
            role="roles/storage.objectAdmin", service_account_ref=worker))
    # This environment's own CI identity (one per domain environment, docs/gitops.md).
    ci = f"serviceAccount:{ci_service_account_email(ctx, t.domain.name, t.environment.name)}"
    objects += [
        # CI publishes template specs (written once per digest, never overwritten).
        policy_member(object_name(t.workload.name, "df-staging-ci"), namespace=t.namespace,
                      labels=labels,
                      resource_ref={"apiVersion": STORAGE, "kind": "StorageBucket",
                                    "name": _bucket_object(t, "staging")},
                      role="roles/storage.objectCreator", member=ci),
        # CI may launch as the worker account, and as no other.
        policy_member(object_name(t.workload.name, "ci-actas"), namespace=t.namespace, labels=labels,
                      resource_ref={"apiVersion": IAM, "kind": "IAMServiceAccount",
                                    "name": t.service_account_id},
                      role="roles/iam.serviceAccountUser", member=ci),
        *_network_grants(ctx, t, labels),
    ]
    if not spec.image:
        ctx.notes.append(f"{t.namespace}/{t.workload.name}: no template image yet, Dataflow job not rendered")
        return objects
    objects.append(_job(ctx, t, env, labels, temp, staging))
    return objects


def _bucket_object(t: "Target", purpose: str) -> str:
    """Object name of a Dataflow bucket in the namespace: ``<workload>-df-<purpose>``."""
    return object_name(t.workload.name, "df", purpose)


def _bucket(t: "Target", purpose: str, name: str, location: str, labels: dict[str, str],
            delete_after_days: int | None = None) -> KubeObject:
    """A private bucket in the job's region (workers read and write it constantly)."""
    spec: dict[str, Any] = {"resourceID": name, "location": location,
                            "uniformBucketLevelAccess": True, "publicAccessPrevention": "enforced"}
    if delete_after_days:
        spec["lifecycleRule"] = [{"action": {"type": "Delete"}, "condition": {"age": delete_after_days}}]
    return kube_object(STORAGE, "StorageBucket", _bucket_object(t, purpose), namespace=t.namespace,
                       labels=labels, spec=spec)


def _network_grants(ctx: CompileContext, t: "Target", labels: dict[str, str]) -> list[KubeObject]:
    """The worker account may use the environment's shared subnet (Shared VPC); the project's
    Dataflow service agent gets the same once per domain environment
    (:func:`compile_dataflow_agents`). Source:
    https://cloud.google.com/dataflow/docs/guides/specifying-networks#shared"""
    subnet = subnet_object_name(t.environment.name, ctx.region)
    return [policy_member(
        object_name(subnet, "networkuser", "df", t.domain.name, t.workload.name),
        namespace=SYSTEM_NAMESPACE, labels=labels,
        resource_ref={"apiVersion": COMPUTE, "kind": "ComputeSubnetwork", "name": subnet},
        role="roles/compute.networkUser", member=f"serviceAccount:{t.service_account_email}")]


def compile_dataflow_agents(ctx: CompileContext) -> list[KubeObject]:
    """Per domain environment running a Dataflow workload: the project's Dataflow service
    agent (``ServiceIdentity``) and its ``roles/compute.networkUser`` on the shared subnet, which
    Dataflow needs to place workers on a Shared VPC."""
    running: set[tuple[str, str]] = set()  # (domain, environment) with a Dataflow workload
    for (domain_name, name) in ctx.defs.workloads:
        domain = ctx.defs.domains.get(domain_name)
        for env in ctx.domain_environments(domain) if domain else []:
            workload = ctx.defs.workload_in(domain_name, name, env.name)
            if workload is not None and workload.spec.runtime == "dataflow":
                running.add((domain_name, env.name))
    objects: list[KubeObject] = []
    for domain in sorted(ctx.defs.domains.values(), key=lambda d: d.name):
        for env in ctx.domain_environments(domain):
            if (domain.name, env.name) not in running:
                continue
            namespace = naming.namespace_name(domain.name, env.name)
            labels = konfig_labels(ctx.cp_name, domain.spec.platform, domain.name, env.name)
            subnet = subnet_object_name(env.name, ctx.region)
            objects += [
                kube_object(SERVICE_USAGE, "ServiceIdentity", DATAFLOW_AGENT, namespace=namespace,
                            labels=labels,
                            spec={"resourceID": "dataflow.googleapis.com",
                                  "projectRef": {"external": f"projects/{ctx.project_id(domain, env.name)}"}}),
                policy_member(
                    object_name(subnet, "networkuser", "dataflow", domain.name),
                    namespace=SYSTEM_NAMESPACE, labels=labels,
                    resource_ref={"apiVersion": COMPUTE, "kind": "ComputeSubnetwork", "name": subnet},
                    role="roles/compute.networkUser",
                    service_identity_ref={"name": DATAFLOW_AGENT, "namespace": namespace}),
            ]
    return objects


def _job(ctx: CompileContext, t: "Target", env: dict[str, str], labels: dict[str, str],
         temp: str, staging: str) -> KubeObject:
    flow = t.spec.dataflow
    assert flow is not None and t.spec.image
    e = t.environment.name
    spec: dict[str, Any] = {
        "region": ctx.region,
        "containerSpecGcsPath": template_spec_path(staging, t.workload.name, t.spec.image),
        "parameters": _parameters(t, flow.parameters, env),
        "serviceAccountEmailRef": {"name": t.service_account_id},
        "tempLocation": f"gs://{temp}/tmp",
        "stagingLocation": f"gs://{staging}/staging",
        "networkRef": {"external": ctx.network_link(e)},
        # Dataflow wants the subnetwork as a full URL for Shared VPC.
        "subnetworkRef": {"external": f"https://www.googleapis.com/compute/v1/{ctx.subnet_link(e, ctx.region)}"},
        "ipConfiguration": "WORKER_IP_PRIVATE",
        "maxWorkers": flow.max_workers or t.spec.scaling.max,
    }
    if flow.machine_type:
        spec["machineType"] = flow.machine_type
    if flow.mode == "streaming":
        spec["enableStreamingEngine"] = True
    # Streaming jobs are drained (in-flight data finishes) rather than cancelled when removed.
    # Source: https://cloud.google.com/config-connector/docs/reference/resource-docs/dataflow/dataflowflextemplatejob
    annotations = {"cnrm.cloud.google.com/on-delete": "drain" if flow.mode == "streaming" else "cancel"}
    return kube_object(DATAFLOW, "DataflowFlexTemplateJob", t.workload.name, namespace=t.namespace,
                       labels=labels, annotations=annotations, spec=spec)


def _parameters(t: "Target", parameters: dict[str, str], env: dict[str, str]) -> dict[str, str]:
    """The job's parameters with ``$(NAME)`` replaced by the workload's variables."""
    problems = Problems()
    resolved = {}
    for key, value in sorted(parameters.items()):
        missing = [n for n in _REFERENCE.findall(value) if n not in env]
        for name in missing:
            problems.add(t.workload.locate(f"spec.dataflow.parameters.{key}"),
                         f"$({name}) is not a variable of this workload in {t.environment.name!r}")
        resolved[key] = _REFERENCE.sub(lambda m: env.get(m.group(1), m.group(0)), value)
    problems.raise_if_any()
    return resolved


__all__ = ["compile_dataflow_agents", "dataflow", "dataflow_bucket", "gke", "template_spec_path"]
