"""The control-plane GKE cluster, for ``konfig bootstrap``: create or adopt it, wait for it,
and say how to install Konfig on it. Same adapter shape as :mod:`konfig.gcp.bootstrap`:
observe() -> diff() -> plan -> apply() -> report.

What the cluster is (:class:`ClusterTarget`), and why:

- **regional Standard cluster** ``konfig`` in the control plane's default region: the Config
  Connector add-on is a GKE Standard feature
  (https://cloud.google.com/config-connector/docs/how-to/install-upgrade-uninstall#addon);
- **Workload Identity** (pool ``<project>.svc.id.goog``): Config Connector and the operator
  act as Google service accounts without keys;
- **the Config Connector add-on**, then a ``ConfigConnector`` object in namespaced mode (one
  ``ConfigConnectorContext`` and Google identity per domain-environment namespace; the compiler
  writes those);
- **private nodes** (no public node IPs) on VPC-native networking, on the Shared VPC network
  when the definitions declare one (``--network``/``--subnetwork`` otherwise), with a
  dedicated least-privilege node service account: the Compute Engine default account, which
  nodes would otherwise use, is disabled by Konfig. Node roles:
  https://cloud.google.com/kubernetes-engine/docs/how-to/hardening-your-cluster#use_least_privilege_sa

Idempotent and additive: an existing cluster is adopted only if it carries
``konfig-control-plane=<name>`` (any other cluster of that name blocks the run), and only
what is missing is turned on (Workload Identity, the add-on); nothing is deleted, and
settings GKE cannot change in place (private nodes, the network) are reported as notes.
"""

from __future__ import annotations

import shlex
import time
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path

from google.api_core import exceptions as api_exceptions
from google.cloud import container_v1, iam_admin_v1

from konfig.compile.naming import CLUSTER_NODE_SERVICE_ACCOUNT_ID
from konfig.compile.state import LABEL_CONTROL_PLANE, SYSTEM_NAMESPACE
from konfig.gcp import lookups
from konfig.gcp.clients import GcpClients
from konfig.gcp.policy import ensure_member, missing_roles, unconditional_bindings

CLUSTER_NAME = "konfig"  # also KONFIG_CLUSTER, the CI variable (konfig/compile/gitlab.py)
#: The node account; the compiler grants it image pulls on the repositories of domains that run
#: GKE workloads only (konfig/compile/network.py), so nothing wider is granted here.
NODE_SERVICE_ACCOUNT_ID = CLUSTER_NODE_SERVICE_ACCOUNT_ID
#: Least-privilege node roles (the hardening guide above).
NODE_ROLES = (
    "roles/autoscaling.metricsWriter",
    "roles/logging.logWriter",
    "roles/monitoring.metricWriter",
    "roles/monitoring.viewer",
    "roles/stackdriver.resourceMetadata.writer",
)
#: The control plane's endpoint range for private nodes: GKE wants a /28 outside the network's
#: ranges (https://cloud.google.com/kubernetes-engine/docs/how-to/legacy/network-isolation).
MASTER_CIDR = "172.16.0.0/28"

_Status = container_v1.Cluster.Status


@dataclass(frozen=True)
class ClusterTarget:
    """The cluster ``konfig bootstrap`` wants. ``location`` is a region; ``network`` and
    ``subnetwork`` are full resource names or ``None`` for the project's default network;
    ``pods_range`` and ``services_range`` name the subnetwork's secondary ranges (needed on a
    Shared VPC subnet, where GKE cannot create them; ``None``: GKE creates its own)."""

    control_plane: str
    project_id: str
    location: str
    name: str = CLUSTER_NAME
    network: str | None = None
    subnetwork: str | None = None
    pods_range: str | None = None
    services_range: str | None = None
    node_service_account_id: str = NODE_SERVICE_ACCOUNT_ID
    node_roles: tuple[str, ...] = NODE_ROLES
    machine_type: str = "e2-standard-4"
    min_nodes: int = 1
    max_nodes: int = 3

    @property
    def parent(self) -> str:
        return f"projects/{self.project_id}/locations/{self.location}"

    @property
    def full_name(self) -> str:
        return f"{self.parent}/clusters/{self.name}"

    @property
    def workload_pool(self) -> str:
        """Source: https://cloud.google.com/kubernetes-engine/docs/how-to/workload-identity"""
        return f"{self.project_id}.svc.id.goog"

    @property
    def labels(self) -> dict[str, str]:
        return {LABEL_CONTROL_PLANE: self.control_plane}

    @property
    def node_service_account_email(self) -> str:
        return f"{self.node_service_account_id}@{self.project_id}.iam.gserviceaccount.com"

    def cluster(self) -> container_v1.Cluster:
        """The cluster to create."""
        return container_v1.Cluster(
            name=self.name,
            description=f"Konfig control plane {self.control_plane}: Config Connector and the operator",
            resource_labels=self.labels,
            network=self.network or "",
            subnetwork=self.subnetwork or "",
            release_channel=container_v1.ReleaseChannel(channel=container_v1.ReleaseChannel.Channel.REGULAR),
            workload_identity_config=container_v1.WorkloadIdentityConfig(workload_pool=self.workload_pool),
            addons_config=_addons(),
            ip_allocation_policy=container_v1.IPAllocationPolicy(
                use_ip_aliases=True,
                cluster_secondary_range_name=self.pods_range or "",
                services_secondary_range_name=self.services_range or ""),
            private_cluster_config=container_v1.PrivateClusterConfig(
                enable_private_nodes=True, master_ipv4_cidr_block=MASTER_CIDR),
            shielded_nodes=container_v1.ShieldedNodes(enabled=True),
            node_pools=[container_v1.NodePool(
                name="system",
                initial_node_count=self.min_nodes,
                autoscaling=container_v1.NodePoolAutoscaling(
                    enabled=True, min_node_count=self.min_nodes, max_node_count=self.max_nodes),
                management=container_v1.NodeManagement(auto_upgrade=True, auto_repair=True),
                config=container_v1.NodeConfig(
                    machine_type=self.machine_type,
                    service_account=self.node_service_account_email,
                    oauth_scopes=["https://www.googleapis.com/auth/cloud-platform"],
                    workload_metadata_config=container_v1.WorkloadMetadataConfig(
                        mode=container_v1.WorkloadMetadataConfig.Mode.GKE_METADATA),
                    shielded_instance_config=container_v1.ShieldedInstanceConfig(
                        enable_secure_boot=True, enable_integrity_monitoring=True),
                    resource_labels=self.labels,
                ),
            )],
        )


def _addons() -> container_v1.AddonsConfig:
    return container_v1.AddonsConfig(
        config_connector_config=container_v1.ConfigConnectorConfig(enabled=True))


# ----------------------------------------------------------------------------- observe / diff


@dataclass(frozen=True)
class ObservedCluster:
    """What exists: the cluster (None when absent), whether the node account exists, and the
    control-plane project's unconditional bindings (None when unreadable or no project)."""

    cluster: container_v1.Cluster | None = None
    node_account_exists: bool = False
    project_bindings: dict[str, frozenset[str]] | None = None
    project_name: str | None = None


def observe(clients: GcpClients, target: ClusterTarget) -> ObservedCluster:
    """Read the cluster, the node account and the project's policy. Raises
    ``GoogleAPICallError`` for errors other than absence."""
    project = lookups.get_project(clients, target.project_id)
    if project is None:
        return ObservedCluster()
    try:
        cluster = clients.container.get_cluster(name=target.full_name)
    except api_exceptions.NotFound:
        cluster = None
    bindings = unconditional_bindings(clients.projects.get_iam_policy(
        request={"resource": project.name, "options": {"requested_policy_version": 3}}))
    exists = lookups.get_service_account(clients, target.node_service_account_email) is not None
    return ObservedCluster(cluster, exists, bindings, project.name)


class Action(str, Enum):
    CREATE_NODE_SA = "create node service account"
    GRANT_NODE_ROLES = "grant node roles"
    CREATE_CLUSTER = "create cluster"
    ENABLE_WORKLOAD_IDENTITY = "enable Workload Identity"
    ENABLE_CONFIG_CONNECTOR = "enable Config Connector add-on"
    WAIT = "wait for cluster"


@dataclass(frozen=True)
class Step:
    action: Action
    target: str
    detail: str = ""
    items: tuple[str, ...] = ()


@dataclass(frozen=True)
class ClusterPlan:
    """Steps in order, ``blockers`` (reasons to run nothing) and ``notes``."""

    target: ClusterTarget
    observed: ObservedCluster
    steps: tuple[Step, ...] = ()
    blockers: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()


def diff(target: ClusterTarget, observed: ObservedCluster) -> ClusterPlan:
    """The steps from ``observed`` to ``target``. Pure."""
    cluster = observed.cluster
    blockers: list[str] = []
    notes: list[str] = []
    steps: list[Step] = []
    member = f"serviceAccount:{target.node_service_account_email}"
    if cluster is not None:
        owner = dict(cluster.resource_labels).get(LABEL_CONTROL_PLANE)
        if owner != target.control_plane:
            why = "carries no Konfig label" if owner is None else f"belongs to control plane {owner!r}"
            blockers.append(
                f"cluster {target.full_name} exists and {why} ({LABEL_CONTROL_PLANE}); Konfig "
                f"never touches a cluster it does not own: label it "
                f"`{LABEL_CONTROL_PLANE}={target.control_plane}` to adopt it, or remove it")
            return ClusterPlan(target, observed, (), tuple(blockers), ())
        return ClusterPlan(target, observed, tuple(_adopt_steps(target, cluster, notes)), (), tuple(notes))
    if not observed.node_account_exists:
        steps.append(Step(Action.CREATE_NODE_SA, target.node_service_account_email))
    roles = missing_roles(observed.project_bindings or {}, member, target.node_roles)
    if roles:
        steps.append(Step(Action.GRANT_NODE_ROLES, f"projects/{target.project_id}",
                          f"{', '.join(roles)} to {member}", roles))
    where = f"network {target.network}" if target.network else "the project's default network"
    if not target.network:
        notes.append("the cluster goes on the control-plane project's default network; for an "
                     "environment's shared network pass --network, --subnetwork, --pods-range and "
                     "--services-range (docs/runtimes.md); a cluster cannot move networks later")
    steps.append(Step(Action.CREATE_CLUSTER, target.full_name,
                      f"Workload Identity, Config Connector add-on, private nodes on {where}"))
    steps.append(Step(Action.WAIT, target.full_name, "until RUNNING"))
    return ClusterPlan(target, observed, tuple(steps), (), tuple(notes))


def _adopt_steps(target: ClusterTarget, cluster: container_v1.Cluster, notes: list[str]) -> list[Step]:
    steps = []
    if cluster.status in (_Status.PROVISIONING, _Status.RECONCILING):
        steps.append(Step(Action.WAIT, target.full_name, f"it is {cluster.status.name}"))
    if cluster.workload_identity_config.workload_pool != target.workload_pool:
        steps.append(Step(Action.ENABLE_WORKLOAD_IDENTITY, target.full_name, target.workload_pool))
    if not cluster.addons_config.config_connector_config.enabled:
        steps.append(Step(Action.ENABLE_CONFIG_CONNECTOR, target.full_name))
    if steps and steps[-1].action is not Action.WAIT:
        steps.append(Step(Action.WAIT, target.full_name, "until RUNNING"))
    if not cluster.private_cluster_config.enable_private_nodes:
        notes.append(f"cluster {target.name} has public nodes; bootstrap does not recreate it "
                     "(private nodes are chosen at creation)")
    if target.network and cluster.network and not target.network.endswith(f"/{cluster.network}") \
            and cluster.network != target.network:
        notes.append(f"cluster {target.name} is on network {cluster.network}, not {target.network}; "
                     "a cluster cannot move networks")
    return steps


# ----------------------------------------------------------------------------- apply


@dataclass
class ClusterReport:
    """``results``: ``(step, "done" | "skipped" | "failed" | "not run", message)``."""

    results: list[tuple[Step, str, str]] = field(default_factory=list)
    blocked: bool = False
    endpoint: str = ""

    @property
    def ok(self) -> bool:
        return not self.blocked and all(outcome != "failed" for _, outcome, _ in self.results)


def apply(clients: GcpClients, plan: ClusterPlan, *, timeout: float = 1800.0) -> ClusterReport:
    """Run the steps in order; the first failure stops the rest (``not run``). Operations are
    polled until DONE, and the wait step until the cluster is RUNNING, at most ``timeout``
    seconds each. Never raises for API errors."""
    report = ClusterReport(blocked=bool(plan.blockers))
    if plan.blockers:
        return report
    failed = False
    for step in plan.steps:
        if failed:
            report.results.append((step, "not run", ""))
            continue
        try:
            outcome, message = _RUNNERS[step.action](clients, plan.target, step, timeout)
        except (api_exceptions.GoogleAPICallError, TimeoutError) as error:
            outcome, message, failed = "failed", getattr(error, "message", None) or str(error), True
        report.results.append((step, outcome, message))
    if not failed:
        try:
            report.endpoint = clients.container.get_cluster(name=plan.target.full_name).endpoint
        except api_exceptions.GoogleAPICallError:
            pass
    return report


def _create_node_sa(clients: GcpClients, target: ClusterTarget, step: Step, timeout: float):
    try:
        clients.iam.create_service_account(request=iam_admin_v1.CreateServiceAccountRequest(
            name=f"projects/{target.project_id}", account_id=target.node_service_account_id,
            service_account=iam_admin_v1.ServiceAccount(
                display_name="Konfig control-plane nodes",
                description="Least-privilege node identity of the control-plane GKE cluster")))
    except api_exceptions.AlreadyExists:
        return "skipped", "already exists"
    return "done", target.node_service_account_email


def _grant_node_roles(clients: GcpClients, target: ClusterTarget, step: Step, timeout: float):
    project = lookups.get_project(clients, target.project_id)
    assert project is not None
    added = ensure_member(
        lambda: clients.projects.get_iam_policy(
            request={"resource": project.name, "options": {"requested_policy_version": 3}}),
        lambda policy: clients.projects.set_iam_policy(request={"resource": project.name, "policy": policy}),
        f"serviceAccount:{target.node_service_account_email}", step.items,
        backoff_seconds=clients.backoff_seconds,
    )
    return ("done", ", ".join(added)) if added else ("skipped", "already granted")


def _create_cluster(clients: GcpClients, target: ClusterTarget, step: Step, timeout: float):
    try:
        operation = clients.container.create_cluster(parent=target.parent, cluster=target.cluster())
    except api_exceptions.Conflict:
        return "skipped", "appeared meanwhile; the next run adopts it"
    _wait_operation(clients, target, operation, timeout)
    return "done", target.full_name


def _enable_workload_identity(clients: GcpClients, target: ClusterTarget, step: Step, timeout: float):
    operation = clients.container.update_cluster(request=container_v1.UpdateClusterRequest(
        name=target.full_name, update=container_v1.ClusterUpdate(
            desired_workload_identity_config=container_v1.WorkloadIdentityConfig(
                workload_pool=target.workload_pool))))
    _wait_operation(clients, target, operation, timeout)
    return "done", target.workload_pool


def _enable_config_connector(clients: GcpClients, target: ClusterTarget, step: Step, timeout: float):
    current = clients.container.get_cluster(name=target.full_name).addons_config
    addons = container_v1.AddonsConfig(current)
    addons.config_connector_config = container_v1.ConfigConnectorConfig(enabled=True)
    operation = clients.container.set_addons_config(request=container_v1.SetAddonsConfigRequest(
        name=target.full_name, addons_config=addons))
    _wait_operation(clients, target, operation, timeout)
    return "done", "configConnectorConfig.enabled"


def _wait_cluster(clients: GcpClients, target: ClusterTarget, step: Step, timeout: float):
    deadline = time.monotonic() + timeout
    delay = clients.backoff_seconds
    while True:
        status = clients.container.get_cluster(name=target.full_name).status
        if status == _Status.RUNNING:
            return "done", "RUNNING"
        if status in (_Status.ERROR, _Status.DEGRADED, _Status.STOPPING):
            raise TimeoutError(f"cluster is {status.name}; see the GKE console")
        if time.monotonic() > deadline:
            raise TimeoutError(f"cluster still {status.name} after {timeout:.0f}s; rerun bootstrap")
        time.sleep(delay)
        delay = min(delay * 1.5, clients.backoff_seconds * 20)


def _wait_operation(clients: GcpClients, target: ClusterTarget, operation: container_v1.Operation,
                    timeout: float) -> None:
    """Poll a GKE operation (``projects/P/locations/L/operations/ID``) until DONE."""
    name = f"{target.parent}/operations/{operation.name.rsplit('/', 1)[-1]}"
    deadline = time.monotonic() + timeout
    delay = clients.backoff_seconds
    while operation.status != container_v1.Operation.Status.DONE:
        if time.monotonic() > deadline:
            raise TimeoutError(f"operation {name} did not finish in {timeout:.0f}s; rerun bootstrap")
        time.sleep(delay)
        delay = min(delay * 1.5, clients.backoff_seconds * 20)
        operation = clients.container.get_operation(name=name)
    if operation.error.message:
        raise api_exceptions.GoogleAPICallError(operation.error.message)


_RUNNERS = {
    Action.CREATE_NODE_SA: _create_node_sa,
    Action.GRANT_NODE_ROLES: _grant_node_roles,
    Action.CREATE_CLUSTER: _create_cluster,
    Action.ENABLE_WORKLOAD_IDENTITY: _enable_workload_identity,
    Action.ENABLE_CONFIG_CONNECTOR: _enable_config_connector,
    Action.WAIT: _wait_cluster,
}


# ----------------------------------------------------------------------------- install


CONFIG_CONNECTOR_MANIFEST = """\
apiVersion: core.cnrm.cloud.google.com/v1beta1
kind: ConfigConnector
metadata:
  name: configconnector.core.cnrm.cloud.google.com
spec:
  mode: namespaced
"""


def install_commands(target: ClusterTarget, *, chart: Path, gitlab_url: str, image: str | None,
                     controller_email: str) -> list[list[str]]:
    """The commands that install Konfig on the cluster, in order: credentials for kubectl and
    helm, Config Connector in namespaced mode (the add-on's ``ConfigConnector`` object, read
    from stdin: :data:`CONFIG_CONNECTOR_MANIFEST`), and the chart. ``image`` None leaves a
    placeholder for the operator image. Source:
    https://cloud.google.com/config-connector/docs/how-to/install-namespaced"""
    repository, _, tag = (image or "REGISTRY/konfig").partition(":")
    helm = ["helm", "upgrade", "--install", "konfig", str(chart), "--namespace", SYSTEM_NAMESPACE,
            "--create-namespace", "--wait", "--set", f"image.repository={repository}",
            "--set", f"gitlab.url={gitlab_url}",
            "--set", f"serviceAccount.gcpServiceAccount={controller_email}"]
    if tag:
        helm += ["--set", f"image.tag={tag}"]
    return [
        ["gcloud", "container", "clusters", "get-credentials", target.name,
         f"--location={target.location}", f"--project={target.project_id}"],
        ["kubectl", "apply", "-f", "-"],
        helm,
    ]


def shell_line(command: list[str]) -> str:
    """One command as a copy-pasteable shell line (the ConfigConnector manifest as a here-doc)."""
    line = shlex.join(command)
    if command[:3] == ["kubectl", "apply", "-f"]:
        return f"{line} <<'EOF'\n{CONFIG_CONNECTOR_MANIFEST}EOF"
    return line
