"""The control-plane GKE cluster: created or adopted by bootstrap through the real
google-cloud-container client against the fake GKE API, and the Konfig install."""

from __future__ import annotations

import os
import stat

from google.cloud import container_v1
from typer.testing import CliRunner

from cli import app
from konfig.gcp import cluster
from konfig.gcp.bootstrap import apply as apply_foundation
from konfig.gcp.bootstrap import diff as diff_foundation
from konfig.gcp.bootstrap import observe as observe_foundation

from .conftest import CONTROL_PLANE_YAML

PROJECT = "acme-acme-cp"
REGION = "us-central1"


def _foundation(clients, target):
    assert apply_foundation(clients, diff_foundation(target, observe_foundation(clients, target))).ok


def _plan(clients, target):
    return cluster.diff(target, cluster.observe(clients, target))


def test_created_with_workload_identity_config_connector_and_private_nodes(fakes, clients, target):
    _foundation(clients, target)
    wanted = cluster.ClusterTarget("acme", PROJECT, REGION)
    plan = _plan(clients, wanted)
    assert [s.action for s in plan.steps] == [
        cluster.Action.CREATE_NODE_SA, cluster.Action.GRANT_NODE_ROLES, cluster.Action.CREATE_CLUSTER,
        cluster.Action.WAIT]

    report = cluster.apply(clients, plan)
    assert report.ok, report.results
    created = fakes.gke.cluster(PROJECT, REGION, "konfig")
    assert created.status == container_v1.Cluster.Status.RUNNING
    assert dict(created.resource_labels) == {"konfig-control-plane": "acme"}
    assert created.workload_identity_config.workload_pool == "acme-acme-cp.svc.id.goog"
    assert created.addons_config.config_connector_config.enabled
    assert created.private_cluster_config.enable_private_nodes
    [pool] = created.node_pools
    node_sa = "konfig-nodes@acme-acme-cp.iam.gserviceaccount.com"
    assert pool.config.service_account == node_sa
    assert pool.config.workload_metadata_config.mode == container_v1.WorkloadMetadataConfig.Mode.GKE_METADATA
    assert fakes.iam.account(node_sa) is not None
    project = next(p for p in fakes.rm.projects() if p.project_id == PROJECT)
    bindings = fakes.rm.bindings(project.name)
    assert all(f"serviceAccount:{node_sa}" in bindings[r] for r in cluster.NODE_ROLES)
    assert "roles/editor" not in bindings
    # Idempotent: a second pass plans nothing and writes nothing.
    writes = len(fakes.writes())
    assert _plan(clients, wanted).steps == ()
    assert len(fakes.writes()) == writes


def test_labelled_cluster_is_adopted_and_completed(fakes, clients, target):
    _foundation(clients, target)
    fakes.gke.add_cluster(PROJECT, REGION, container_v1.Cluster(
        name="konfig", resource_labels={"konfig-control-plane": "acme", "team": "platform"}))
    wanted = cluster.ClusterTarget("acme", PROJECT, REGION)
    plan = _plan(clients, wanted)
    assert [s.action for s in plan.steps] == [
        cluster.Action.ENABLE_WORKLOAD_IDENTITY, cluster.Action.ENABLE_CONFIG_CONNECTOR, cluster.Action.WAIT]
    assert any("public nodes" in n for n in plan.notes)
    assert cluster.apply(clients, plan).ok
    adopted = fakes.gke.cluster(PROJECT, REGION, "konfig")
    assert adopted.workload_identity_config.workload_pool == "acme-acme-cp.svc.id.goog"
    assert adopted.addons_config.config_connector_config.enabled
    assert dict(adopted.resource_labels)["team"] == "platform"  # never rewritten
    assert _plan(clients, wanted).steps == ()


def test_a_cluster_without_the_konfig_label_is_refused(fakes, clients, target):
    _foundation(clients, target)
    fakes.gke.add_cluster(PROJECT, REGION, container_v1.Cluster(name="konfig"))
    fakes.gke.add_cluster(PROJECT, "europe-west1", container_v1.Cluster(
        name="konfig", resource_labels={"konfig-control-plane": "other"}))
    before = len(fakes.writes())
    plan = _plan(clients, cluster.ClusterTarget("acme", PROJECT, REGION))
    assert plan.steps == () and "carries no Konfig label" in plan.blockers[0]
    report = cluster.apply(clients, plan)
    assert not report.ok and report.blocked
    other = _plan(clients, cluster.ClusterTarget("acme", PROJECT, "europe-west1"))
    assert "belongs to control plane 'other'" in other.blockers[0]
    assert len(fakes.writes()) == before


def test_a_failed_create_stops_and_reports(fakes, clients, target):
    _foundation(clients, target)
    wanted = cluster.ClusterTarget("acme", PROJECT, REGION, network="projects/acme-net-prod/global/networks/shared")
    report = cluster.apply(clients, _plan(clients, wanted))
    assert not report.ok
    assert [o for _, o, _ in report.results] == ["done", "done", "failed", "not run"]
    assert "network" in report.results[2][2]
    fakes.gke.networks.add("projects/acme-net-prod/global/networks/shared")
    assert cluster.apply(clients, _plan(clients, wanted)).ok  # a rerun continues


def _fake_tools(directory, log):
    """gcloud, kubectl and helm stand-ins that record their arguments and stdin."""
    directory.mkdir()
    for tool in ("gcloud", "kubectl", "helm"):
        script = directory / tool
        script.write_text(f'#!/bin/sh\necho "{tool} $*" >> {log}\ncat >> {log}\n')
        script.chmod(script.stat().st_mode | stat.S_IEXEC)


def test_bootstrap_command_creates_the_cluster_and_installs_konfig(fakes, tmp_path):
    (tmp_path / "defs").mkdir()
    (tmp_path / "defs" / "control-plane.yaml").write_text(CONTROL_PLANE_YAML)
    log = tmp_path / "tools.log"
    _fake_tools(tmp_path / "bin", log)
    env = {**fakes.env, "COLUMNS": "250", "PATH": f"{tmp_path / 'bin'}{os.pathsep}{os.environ['PATH']}"}

    def run(*args):
        return CliRunner().invoke(app, ["bootstrap", str(tmp_path / "defs"), *args], env=env)

    dry = run("--dry-run")
    assert dry.exit_code == 0, dry.output
    assert "cluster step 3: create cluster" in dry.output and fakes.gke.calls.count("CreateCluster") == 0

    first = run()
    assert first.exit_code == 0, first.output
    assert "helm upgrade --install konfig" in first.output
    assert "mode: namespaced" in first.output and not log.exists()  # printed, not run

    missing_image = run("--install")
    assert missing_image.exit_code == 1 and "needs the operator image" in missing_image.output

    installed = run("--install", "--image", "europe-docker.pkg.dev/acme/tools/konfig:0.2.0")
    assert installed.exit_code == 0, installed.output
    assert "cluster projects/acme-acme-cp/locations/us-central1/clusters/konfig: up to date" in installed.output
    calls = log.read_text()
    assert calls.index("gcloud container clusters get-credentials konfig") < calls.index("kubectl apply") \
        < calls.index("helm upgrade --install konfig")
    assert "kind: ConfigConnector" in calls and "image.tag=0.2.0" in calls
    assert "serviceAccount.gcpServiceAccount=konfig-controller@acme-acme-cp.iam.gserviceaccount.com" in calls
    assert fakes.gke.calls.count("CreateCluster") == 1


def test_fake_gke_keeps_one_operation_at_a_time_and_label_fingerprints(fakes, clients):
    import pytest
    from google.api_core import exceptions

    parent = f"projects/{PROJECT}/locations/{REGION}"
    name = f"{parent}/clusters/c1"
    with pytest.raises(exceptions.BadRequest, match="VPC-native"):
        clients.container.create_cluster(parent=parent, cluster=container_v1.Cluster(
            name="c1", private_cluster_config=container_v1.PrivateClusterConfig(
                enable_private_nodes=True, master_ipv4_cidr_block="172.16.0.0/28")))
    operation = clients.container.create_cluster(parent=parent, cluster=container_v1.Cluster(name="c1"))
    assert operation.status == container_v1.Operation.Status.RUNNING
    assert clients.container.get_cluster(name=name).status == container_v1.Cluster.Status.PROVISIONING
    with pytest.raises(exceptions.BadRequest, match="already in progress"):
        clients.container.set_labels(request=container_v1.SetLabelsRequest(
            name=name, resource_labels={"a": "b"}, label_fingerprint="x"))
    with pytest.raises(exceptions.Conflict):
        clients.container.create_cluster(parent=parent, cluster=container_v1.Cluster(name="c1"))
    op_name = f"{parent}/operations/{operation.name}"
    while clients.container.get_operation(name=op_name).status != container_v1.Operation.Status.DONE:
        pass
    current = clients.container.get_cluster(name=name)
    assert current.status == container_v1.Cluster.Status.RUNNING
    with pytest.raises(exceptions.BadRequest, match="fingerprint"):
        clients.container.set_labels(request=container_v1.SetLabelsRequest(
            name=name, resource_labels={"a": "b"}, label_fingerprint="stale"))
    clients.container.set_labels(request=container_v1.SetLabelsRequest(
        name=name, resource_labels={"a": "b"}, label_fingerprint=current.label_fingerprint))
    with pytest.raises(exceptions.NotFound):
        clients.container.get_cluster(name=f"{parent}/clusters/nope")
