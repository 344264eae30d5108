"""The GKE and Dataflow runtimes as compiled: autoscaling, disruption budgets, probes and
network policy for GKE; Flex Template jobs, buckets and grants for Dataflow; and the errors
of bad runtime input."""

from __future__ import annotations

import pytest

from konfig.compile import compile_definitions
from konfig.compile.state import LABEL_KEYS
from konfig.errors import DefinitionError
from konfig.kcc_schema import validate_objects
from konfig.load import load_definitions

from .orgs import CONTROL_PLANE, write_org

DIGEST = "sha256:" + "c" * 64
IMAGE = f"us-docker.pkg.dev/acme-cp/ecommerce/job@{DIGEST}"
CP = CONTROL_PLANE.replace("pubsub.googleapis.com]", "pubsub.googleapis.com, dataflow.googleapis.com, container.googleapis.com]")

GKE = f"""\
apiVersion: konfig.dev/v1alpha1
kind: Workload
metadata: {{name: checkout}}
spec:
  platform: retail
  domain: ecommerce
  runtime: gke
  image: {IMAGE}
  container: {{port: 9000, cpu: 250m, memory: 256Mi, healthPath: /healthz}}
  scaling: {{min: 0, max: 4, cpuTarget: 65}}
  environments:
    prod: {{scaling: {{min: 3, max: 3}}}}
"""

DATAFLOW = f"""\
apiVersion: konfig.dev/v1alpha1
kind: Workload
metadata: {{name: checkout}}
spec:
  platform: retail
  domain: ecommerce
  runtime: dataflow
  image: {IMAGE}
  scaling: {{max: 4}}
  dataflow:
    mode: streaming
    parameters: {{output: "$(RECEIPTS_BUCKET_URL)/out", window: "5"}}
  resources:
    - {{name: receipts, template: storage-bucket, access: write}}
  environments:
    prod: {{dataflow: {{machineType: n2-standard-4, maxWorkers: 12}}}}
"""


def _state(tmp_path, workload, cp=CP):
    return compile_definitions(load_definitions(write_org(tmp_path, **{
        "control-plane.yaml": cp, "workload.yaml": workload})))


def _objects(state, kind, env):
    return [o for o in state.kubernetes if o["kind"] == kind
            and o["metadata"].get("namespace") == f"ecommerce-{env}"]


def _problems(tmp_path, workload, cp=CP):
    with pytest.raises(DefinitionError) as err:
        _state(tmp_path, workload, cp)
    return [(p.location.field, p.message) for p in err.value.problems]


def test_gke_autoscaler_from_scaling_and_the_deployment_leaves_replicas_to_it(tmp_path):
    state = _state(tmp_path, GKE)
    [hpa] = _objects(state, "HorizontalPodAutoscaler", "dev")
    assert hpa["spec"]["minReplicas"] == 1 and hpa["spec"]["maxReplicas"] == 4  # never below one pod
    assert hpa["spec"]["metrics"][0]["resource"]["target"] == {"type": "Utilization", "averageUtilization": 65}
    assert hpa["spec"]["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment", "name": "checkout"}
    [deployment] = _objects(state, "Deployment", "dev")
    assert "replicas" not in deployment["spec"]
    # prod: fixed at three, no autoscaler, a disruption budget.
    assert not _objects(state, "HorizontalPodAutoscaler", "prod")
    [prod] = _objects(state, "Deployment", "prod")
    assert prod["spec"]["replicas"] == 3
    [pdb] = _objects(state, "PodDisruptionBudget", "prod")
    assert pdb["spec"] == {"maxUnavailable": 1, "selector": {"matchLabels": {"app.kubernetes.io/name": "checkout"}}}
    assert not _objects(state, "PodDisruptionBudget", "dev")


def test_gke_container_resources_probes_and_labels(tmp_path):
    state = _state(tmp_path, GKE)
    [deployment] = _objects(state, "Deployment", "stage")
    pod = deployment["spec"]["template"]
    [container] = pod["spec"]["containers"]
    assert container["resources"] == {"requests": {"cpu": "250m", "memory": "256Mi"},
                                      "limits": {"cpu": "250m", "memory": "256Mi"}}
    assert container["readinessProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
    assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
    assert container["ports"] == [{"containerPort": 9000, "name": "http"}]
    # Cost attribution: the pods and the namespace carry every konfig label.
    assert set(LABEL_KEYS) <= set(pod["metadata"]["labels"])
    [namespace] = [o for o in state.kubernetes if o["kind"] == "Namespace" and o["metadata"]["name"] == "ecommerce-stage"]
    assert {"konfig-platform", "konfig-domain", "konfig-environment"} <= set(namespace["metadata"]["labels"])
    without_path = _state(tmp_path / "tcp", GKE.replace(", healthPath: /healthz", ""))
    [tcp] = _objects(without_path, "Deployment", "dev")[0]["spec"]["template"]["spec"]["containers"]
    assert tcp["readinessProbe"]["tcpSocket"] == {"port": "http"}


def test_gke_network_policy_admits_only_its_domain_environment(tmp_path):
    [policy] = _objects(_state(tmp_path, GKE), "NetworkPolicy", "dev")
    assert policy["spec"]["policyTypes"] == ["Ingress"]
    assert policy["spec"]["ingress"] == [{
        "from": [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "ecommerce-dev"}}}],
        "ports": [{"protocol": "TCP", "port": 9000}]}]


def test_dataflow_job_per_environment_on_the_shared_network_as_the_workload(tmp_path):
    state = _state(tmp_path, DATAFLOW)
    assert validate_objects(state.kubernetes) == []
    [job] = _objects(state, "DataflowFlexTemplateJob", "dev")
    spec = job["spec"]
    assert spec["containerSpecGcsPath"] == (
        f"gs://acme-ecommerce-dev-checkout-df-staging/templates/checkout/{'c' * 64}.json")
    assert spec["parameters"] == {"output": "gs://acme-ecommerce-dev-checkout-receipts/out", "window": "5"}
    assert spec["serviceAccountEmailRef"] == {"name": "wl-checkout"}
    assert spec["tempLocation"] == "gs://acme-ecommerce-dev-checkout-df-temp/tmp"
    assert spec["ipConfiguration"] == "WORKER_IP_PRIVATE"
    assert spec["subnetworkRef"]["external"].endswith("/subnetworks/konfig-dev-us-central1")
    assert spec["maxWorkers"] == 4 and spec["enableStreamingEngine"] is True
    assert "kmsKeyNameRef" not in spec
    assert job["metadata"]["annotations"]["cnrm.cloud.google.com/on-delete"] == "drain"
    [prod] = _objects(state, "DataflowFlexTemplateJob", "prod")
    assert prod["spec"]["machineType"] == "n2-standard-4" and prod["spec"]["maxWorkers"] == 12
    assert "kmsKeyNameRef" not in prod["spec"]  # see docs/runtimes.md, "CMEK in production"
    # Promotion by digest: every environment names the same image's template spec.
    assert {o["spec"]["containerSpecGcsPath"].rsplit("/", 1)[1]
            for e in ("dev", "stage", "prod") for o in _objects(state, "DataflowFlexTemplateJob", e)} == {
        f"{'c' * 64}.json"}


def test_dataflow_buckets_and_grants(tmp_path):
    state = _state(tmp_path, DATAFLOW)
    buckets = {o["spec"]["resourceID"]: o for o in _objects(state, "StorageBucket", "dev")}
    assert {"acme-ecommerce-dev-checkout-df-temp", "acme-ecommerce-dev-checkout-df-staging"} <= set(buckets)
    assert buckets["acme-ecommerce-dev-checkout-df-temp"]["spec"]["lifecycleRule"][0]["condition"] == {"age": 7}
    members = _objects(state, "IAMPolicyMember", "dev")
    ci = "serviceAccount:ci-ecommerce-dev@acme-acme-cp.iam.gserviceaccount.com"  # dev's own CI identity
    ci_grants = {(m["spec"]["resourceRef"]["kind"], m["spec"]["resourceRef"]["name"], m["spec"]["role"])
                 for m in members if m["spec"].get("member") == ci}
    assert ci_grants == {("IAMServiceAccount", "wl-checkout", "roles/iam.serviceAccountUser"),
                         ("StorageBucket", "checkout-df-staging", "roles/storage.objectCreator")}
    worker = {(m["spec"]["resourceRef"].get("name"), m["spec"]["role"]) for m in members
              if m["spec"].get("memberFrom") == {"serviceAccountRef": {"name": "wl-checkout"}}}
    assert {("checkout-df-temp", "roles/storage.objectAdmin"), ("checkout-df-staging", "roles/storage.objectAdmin"),
            (None, "roles/dataflow.worker")} <= worker
    subnet_users = [o["spec"] for o in state.kubernetes if o["kind"] == "IAMPolicyMember"
                    and o["spec"]["role"] == "roles/compute.networkUser"
                    and o["metadata"]["labels"].get("konfig-domain") == "ecommerce"
                    and o["metadata"]["labels"].get("konfig-environment") == "dev"
                    and o["spec"]["resourceRef"]["kind"] == "ComputeSubnetwork"]
    # The worker account and, once per domain environment, the Dataflow service agent.
    assert {"serviceAccount:wl-checkout@acme-ecommerce-dev.iam.gserviceaccount.com"} <= {
        s.get("member") for s in subnet_users}
    assert {"serviceIdentityRef": {"name": "dataflow-service-agent", "namespace": "ecommerce-dev"}} in [
        s.get("memberFrom") for s in subnet_users]


def test_two_dataflow_workloads_share_one_service_agent_per_environment(tmp_path):
    second = DATAFLOW.replace("name: checkout}", "name: checkout}").replace(
        "metadata: {name: checkout}", "metadata: {name: billing}")
    domain = ("apiVersion: konfig.dev/v1alpha1\nkind: Domain\nmetadata: {name: ecommerce}\n"
              "spec: {platform: retail, workloads: [checkout, billing]}\n")
    state = compile_definitions(load_definitions(write_org(tmp_path, **{
        "control-plane.yaml": CP, "workload.yaml": DATAFLOW, "billing.yaml": second,
        "domain.yaml": domain})))
    agents = [o for o in _objects(state, "ServiceIdentity", "dev") if o["metadata"]["name"] == "dataflow-service-agent"]
    assert len(agents) == 1
    assert len(_objects(state, "DataflowFlexTemplateJob", "dev")) == 2


def test_dataflow_without_image_keeps_buckets_and_waits_for_the_job(tmp_path):
    state = _state(tmp_path, DATAFLOW.replace(f"  image: {IMAGE}\n", ""))
    assert not [o for o in state.kubernetes if o["kind"] == "DataflowFlexTemplateJob"]
    assert _objects(state, "StorageBucket", "dev")
    assert any("no template image yet" in n for n in state.notes)


def test_dataflow_without_its_template_is_an_error_with_its_line(tmp_path):
    bare = DATAFLOW.split("  dataflow:")[0] + "  resources:\n    - {name: receipts, template: storage-bucket, access: write}\n"
    found = _problems(tmp_path, bare)
    assert [f for f, m in found if "declares its Flex Template" in m] == ["spec.runtime"]


def test_bad_dataflow_input_is_reported_all_at_once(tmp_path):
    wrong = DATAFLOW.replace("$(RECEIPTS_BUCKET_URL)", "$(NO_SUCH_VAR)")
    wrong = wrong.replace("dataflow.googleapis.com, ", "")
    found = _problems(tmp_path, wrong, cp=CONTROL_PLANE)
    fields = {f for f, _ in found}
    assert "spec.dataflow.parameters.output" in fields
    assert "spec.runtime" in fields  # dataflow.googleapis.com is not enabled
    cloud_run = GKE.replace("runtime: gke", "runtime: cloudrun") + "  dataflow: {mode: batch}\n"
    assert [f for f, _ in _problems(tmp_path / "b", cloud_run)] == ["spec.dataflow"]


def test_dataflow_resource_names_of_its_own_buckets_are_refused(tmp_path):
    clash = DATAFLOW.replace("{name: receipts, template: storage-bucket, access: write}",
                             "{name: receipts, template: storage-bucket, access: write}\n"
                             "    - {name: df-temp, template: storage-bucket, access: write}")
    assert [f for f, m in _problems(tmp_path, clash) if "Dataflow job's own" in m] == ["spec.resources[1].name"]
