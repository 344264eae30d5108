"""The Helm chart, rendered by Helm's own engine (Helm v4's Go SDK through helm-python-sdk,
offline: no cluster, no network) and checked object by object."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import helm_python as helm
import pytest
from ruamel.yaml import YAML

from konfig.kube import crds

CHART = Path(__file__).resolve().parents[2] / "charts" / "konfig"
NAMESPACE = "konfig-system"
GSA = "konfig-controller@acme-cp.iam.gserviceaccount.com"
VALUES = {
    "image": {"repository": "europe-docker.pkg.dev/acme-cp/konfig/konfig"},
    "gitlab": {"url": "https://gitlab.example.com"},
    "serviceAccount": {"gcpServiceAccount": GSA},
}
WILDCARD = "*"


@pytest.fixture(scope="module")
def chart():
    with helm.Chart.load(CHART) as loaded:
        yield loaded


def _merge(base: dict[str, Any], patch: dict[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(base)
    for key, value in patch.items():
        out[key] = (
            _merge(out[key], value)
            if isinstance(value, dict) and isinstance(out.get(key), dict)
            else value
        )
    return out


def render(chart: helm.Chart, **overrides: Any) -> list[dict[str, Any]]:
    """Every object the chart renders with VALUES and ``overrides`` merged over them."""
    manifests = chart.render(values=_merge(VALUES, overrides), name="konfig", namespace=NAMESPACE)
    yaml = YAML(typ="safe")
    return [
        doc
        for path, text in sorted(manifests.items())
        if path.endswith(".yaml")
        for doc in yaml.load_all(text)
        if doc
    ]


def one(objects: list[dict[str, Any]], kind: str, name: str | None = None) -> dict[str, Any]:
    found = [
        o for o in objects if o["kind"] == kind and (name is None or o["metadata"]["name"] == name)
    ]
    assert len(found) == 1, f"expected one {kind} {name or ''}, found {len(found)}"
    return found[0]


def container(objects: list[dict[str, Any]]) -> dict[str, Any]:
    (operator,) = one(objects, "Deployment")["spec"]["template"]["spec"]["containers"]
    return operator


def rules(objects: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [r for o in objects if o["kind"] in ("ClusterRole", "Role") for r in o["rules"]]


def operator_rules(objects: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return one(objects, "ClusterRole", "konfig-operator")["rules"]


def allowed(rule_list: list[dict[str, Any]], group: str, resource: str, verb: str) -> bool:
    return any(
        group in r.get("apiGroups", [])
        and resource in r.get("resources", [])
        and verb in r["verbs"]
        for r in rule_list
    )


# --------------------------------------------------------------------------- the operator


def test_deployment_runs_the_operator_with_values(chart):
    operator = container(render(chart))
    assert operator["image"] == "europe-docker.pkg.dev/acme-cp/konfig/konfig:0.1.0"  # appVersion
    assert operator["command"] == ["konfig"]
    assert operator["args"] == [
        "operator",
        "--gitlab-url=https://gitlab.example.com",
        f"--system-namespace={NAMESPACE}",
        "--resync-interval=10m",
        "--log-level=info",
        "--health-port=8081",
        "--metrics-port=9090",
        "--standalone",
    ]


def test_values_change_the_arguments(chart):
    operator = container(
        render(
            chart,
            gitlab={"url": "https://git.acme.io/gitlab"},
            resyncInterval="90s",
            logLevel="debug",
            systemNamespace="acme-system",
            health={"port": 9440},
            metrics={"port": 9441},
        )
    )
    args = operator["args"]
    for expected in (
        "--gitlab-url=https://git.acme.io/gitlab",
        "--resync-interval=90s",
        "--log-level=debug",
        "--system-namespace=acme-system",
        "--health-port=9440",
        "--metrics-port=9441",
    ):
        assert expected in args
    assert {p["name"]: p["containerPort"] for p in operator["ports"]} == {
        "health": 9440,
        "metrics": 9441,
    }


def test_probes_use_the_health_port_and_metrics_has_its_own(chart):
    objects = render(chart)
    operator = container(objects)
    ports = {p["name"]: p["containerPort"] for p in operator["ports"]}
    assert ports == {"health": 8081, "metrics": 9090}
    assert operator["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "health"}
    assert operator["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "health"}
    service = one(objects, "Service")
    assert service["spec"]["ports"] == [
        {"name": "metrics", "port": 9090, "targetPort": "metrics", "protocol": "TCP"}
    ]
    pod_labels = one(objects, "Deployment")["spec"]["template"]["metadata"]["labels"]
    assert service["spec"]["selector"].items() <= pod_labels.items()
    assert not any(
        o["kind"] == "Service" for o in render(chart, metrics={"service": {"enabled": False}})
    )


def test_one_operator_at_a_time_unless_peering(chart):
    deployment = one(render(chart, replicaCount=3), "Deployment")
    assert deployment["spec"]["replicas"] == 1
    assert deployment["spec"]["strategy"] == {"type": "Recreate"}

    objects = render(chart, replicaCount=2, peering={"enabled": True, "name": "acme"})
    deployment = one(objects, "Deployment")
    assert deployment["spec"]["replicas"] == 2
    assert (
        "--peering=acme" in container(objects)["args"]
        and "--standalone" not in container(objects)["args"]
    )
    assert allowed(operator_rules(objects), "kopf.dev", "clusterkopfpeerings", "patch")
    assert not allowed(operator_rules(render(chart)), "kopf.dev", "clusterkopfpeerings", "patch")


def test_image_digest_wins_over_tag(chart):
    digest = "sha256:" + "ab" * 32
    operator = container(render(chart, image={"tag": "v9", "digest": digest}))
    assert operator["image"] == f"europe-docker.pkg.dev/acme-cp/konfig/konfig@{digest}"
    assert container(render(chart, image={"tag": "v9"}))["image"].endswith(":v9")


def test_pod_is_locked_down(chart):
    pod = one(render(chart), "Deployment")["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    security = pod["containers"][0]["securityContext"]
    assert security["allowPrivilegeEscalation"] is False
    assert security["readOnlyRootFilesystem"] is True
    assert security["capabilities"]["drop"] == ["ALL"]


# --------------------------------------------------------------------------- identity and secrets


def test_service_account_carries_the_workload_identity_annotation(chart):
    objects = render(chart, serviceAccount={"annotations": {"team": "platform"}})
    account = one(objects, "ServiceAccount")
    assert account["metadata"]["annotations"] == {
        "iam.gke.io/gcp-service-account": GSA,
        "team": "platform",
    }
    assert (
        one(objects, "Deployment")["spec"]["template"]["spec"]["serviceAccountName"]
        == account["metadata"]["name"]
    )
    binding = one(objects, "ClusterRoleBinding")
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": account["metadata"]["name"], "namespace": NAMESPACE}
    ]

    other = "konfig-ops@other-cp.iam.gserviceaccount.com"
    account = one(render(chart, serviceAccount={"gcpServiceAccount": other}), "ServiceAccount")
    assert account["metadata"]["annotations"] == {"iam.gke.io/gcp-service-account": other}
    account = one(render(chart, serviceAccount={"gcpServiceAccount": ""}), "ServiceAccount")
    assert "annotations" not in account["metadata"]


def test_gitlab_token_is_referenced_never_inlined(chart):
    objects = render(chart, gitlab={"tokenSecret": {"name": "gitlab-admin", "key": "api-token"}})
    assert not any(o["kind"] == "Secret" for o in objects)
    env = {e["name"]: e for e in container(objects)["env"]}
    assert env["GITLAB_TOKEN"] == {
        "name": "GITLAB_TOKEN",
        "valueFrom": {"secretKeyRef": {"name": "gitlab-admin", "key": "api-token"}},
    }
    assert all("value" not in e for e in env.values())
    # The operator never reads Secrets through the API either.
    assert not any("secrets" in r.get("resources", []) for r in rules(objects))


def test_required_values_fail_the_render(chart):
    with pytest.raises(helm.HelmRenderError, match="gitlab.url is required"):
        render(chart, gitlab={"url": ""})
    with pytest.raises(helm.HelmRenderError, match="image.repository is required"):
        render(chart, image={"repository": ""})


@pytest.mark.parametrize(
    "overrides",
    [
        {"logLevel": "loud"},
        {"resyncInterval": "10 minutes"},
        {"gitlab": {"url": "gitlab.example.com"}},
        {"serviceAccount": {"gcpServiceAccount": "someone@gmail.com"}},
        {"rbac": {"extraBindableClusterRoles": ["cluster-admin"]}},
        {"rbac": {"configConnector": {"sql": ["*"]}}},
    ],
    ids=lambda o: next(iter(o)),
)
def test_values_schema_rejects_bad_values(chart, overrides):
    with pytest.raises(helm.HelmValuesError):
        render(chart, **overrides)


# --------------------------------------------------------------------------- RBAC


def test_rbac_has_no_wildcards_and_no_dangerous_verbs(chart):
    everything = render(chart, peering={"enabled": True}, rbac={"deleteNamespaces": True})
    all_rules = rules(everything)
    assert all_rules
    for rule in all_rules:
        for field in ("apiGroups", "resources", "verbs", "resourceNames"):
            assert WILDCARD not in rule.get(field, []), rule
        assert "nonResourceURLs" not in rule
        assert not {"escalate", "impersonate", "deletecollection"} & set(rule["verbs"]), rule
        if "bind" in rule["verbs"]:
            assert rule["resources"] == ["clusterroles"] and rule["resourceNames"], rule
    roles = [o for o in everything if o["kind"] in ("ClusterRoleBinding", "RoleBinding")]
    assert all(b["roleRef"]["name"] not in ("cluster-admin", "admin", "edit") for b in roles)


def test_operator_watches_every_konfig_kind_and_writes_status(chart):
    operator = operator_rules(render(chart))
    plurals = [d["spec"]["names"]["plural"] for d in crds.all_crds()]
    konfig_rules = [r for r in operator if r["apiGroups"] == ["konfig.dev"]]
    main = next(r for r in konfig_rules if "/" not in r["resources"][0])
    assert sorted(main["resources"]) == sorted(plurals)
    assert set(main["verbs"]) == {
        "get",
        "list",
        "watch",
        "patch",
    }  # never creates or deletes definitions
    status = next(r for r in konfig_rules if "/" in r["resources"][0])
    assert sorted(status["resources"]) == sorted(f"{p}/status" for p in plurals)
    assert "patch" in status["verbs"]


def test_operator_manages_namespaces_contexts_events_and_bindings(chart):
    operator = operator_rules(render(chart))
    for group, resource, verb in [
        ("", "namespaces", "create"),
        ("", "namespaces", "patch"),
        ("", "events", "create"),
        ("core.cnrm.cloud.google.com", "configconnectorcontexts", "patch"),
        ("rbac.authorization.k8s.io", "rolebindings", "create"),
        ("apiextensions.k8s.io", "customresourcedefinitions", "watch"),
    ]:
        assert allowed(operator, group, resource, verb), (group, resource, verb)
    # Deleting a namespace would delete every Config Connector object in it: off by default.
    assert not allowed(operator, "", "namespaces", "delete")
    assert allowed(
        operator_rules(render(chart, rbac={"deleteNamespaces": True})), "", "namespaces", "delete"
    )
    # No Roles are ever written, so no `escalate` is needed.
    assert not allowed(operator, "rbac.authorization.k8s.io", "roles", "create")


def test_operator_binds_only_the_charts_cluster_roles(chart):
    objects = render(chart, rbac={"extraBindableClusterRoles": ["acme-auditor"]})
    (bind,) = [r for r in operator_rules(objects) if "bind" in r["verbs"]]
    assert bind["verbs"] == ["bind"]
    assert sorted(bind["resourceNames"]) == [
        "acme-auditor",
        "konfig-definitions-reader",
        "konfig-viewer",
        "konfig-workload-deployer",
    ]
    defined = {o["metadata"]["name"] for o in objects if o["kind"] == "ClusterRole"}
    assert {"konfig-viewer", "konfig-workload-deployer", "konfig-definitions-reader"} <= defined
    deployer = one(objects, "ClusterRole", "konfig-workload-deployer")["rules"]
    assert allowed(deployer, "konfig.dev", "workloads", "patch")
    assert allowed(deployer, "events.k8s.io", "events", "create")
    assert not any(set(r["resources"]) - {"workloads", "workloads/status", "events"} for r in deployer)
    assert not any("delete" in r["verbs"] for r in deployer)
    reader = one(objects, "ClusterRole", "konfig-definitions-reader")["rules"]
    assert not any(set(r["verbs"]) - {"get", "list"} for r in reader)
    assert not any(set(r["resources"]) & {"workloads", "resourcetemplates"} for r in reader)
    assert not any(
        set(r["verbs"]) - {"get", "list", "watch"}
        for r in one(objects, "ClusterRole", "konfig-viewer")["rules"]
    )


def test_config_connector_rules_follow_values(chart):
    default = operator_rules(render(chart))
    for group in (
        "resourcemanager",
        "serviceusage",
        "iam",
        "sql",
        "storage",
        "pubsub",
        "redis",
        "secretmanager",
        "firestore",
        "run",
        "orgpolicy",
    ):
        assert any(r["apiGroups"] == [f"{group}.cnrm.cloud.google.com"] for r in default), group
    assert allowed(default, "sql.cnrm.cloud.google.com", "sqlinstances", "delete")
    # IAMPolicy is authoritative (it would drop bindings Konfig does not own): never granted.
    assert not allowed(default, "iam.cnrm.cloud.google.com", "iampolicies", "create")

    custom = operator_rules(
        render(chart, rbac={"configConnector": {"bigquery": ["bigquerydatasets"]}})
    )
    assert allowed(custom, "bigquery.cnrm.cloud.google.com", "bigquerydatasets", "create")
    assert allowed(custom, "sql.cnrm.cloud.google.com", "sqlinstances", "create")  # maps merge


def test_rbac_can_be_left_to_the_cluster_admin(chart):
    objects = render(chart, rbac={"create": False})
    assert not any(o["kind"].startswith("ClusterRole") for o in objects)


# --------------------------------------------------------------------------- the chart as a whole


def test_every_object_is_well_formed_and_namespaced_in_the_release(chart):
    cluster_scoped = {"ClusterRole", "ClusterRoleBinding"}
    for obj in render(chart):
        assert obj["apiVersion"] and obj["kind"] and obj["metadata"]["name"]
        assert obj["metadata"]["labels"]["app.kubernetes.io/managed-by"] == "Helm"
        if obj["kind"] not in cluster_scoped:
            assert obj["metadata"]["namespace"] == NAMESPACE, obj["kind"]


def test_helm_lint_passes():
    report = helm.lint(CHART, VALUES, strict=True, namespace=NAMESPACE)
    assert report["errors"] == []
    assert not [m for m in report["messages"] if m["severity"] >= 2], report["messages"]


def test_operator_may_apply_and_prune_every_kind_the_compiler_renders(chart, example_state):
    """Every kind of the example organisation's desired state can be created, patched and
    pruned by the operator's ClusterRole (a real API server would answer 403 otherwise)."""
    from konfig.kube.kinds import KindRegistry

    rules = operator_rules(render(chart))
    registry = KindRegistry.shipped()
    missing = set()
    for obj in example_state.kubernetes:
        info = registry.of(obj)
        group = obj["apiVersion"].rpartition("/")[0]
        verbs = ("create", "patch") if obj["kind"] == "Namespace" else ("create", "patch", "delete")
        for verb in verbs:
            if not allowed(rules, group, info.plural, verb):
                missing.add(f"{verb} {group or 'core'}/{info.plural}")
    assert not missing, sorted(missing)


APPLIER = "konfig-ci@acme-cp.iam.gserviceaccount.com"
PLANNER = "konfig-planner@acme-cp.iam.gserviceaccount.com"


def test_definitions_pipeline_rbac_is_off_until_its_identities_are_named(chart):
    names = {(o["kind"], o["metadata"]["name"]) for o in render(chart)}
    assert ("Role", "konfig-definitions-applier") not in names
    assert ("ClusterRole", "konfig-planner") not in names


def test_definitions_applier_writes_konfigs_own_kinds_in_the_system_namespace_only(chart):
    objects = render(chart, controlPlaneCI={"applier": APPLIER, "planner": PLANNER})
    [role] = [o for o in objects if o["kind"] == "Role"
              and o["metadata"]["name"] == "konfig-definitions-applier"]
    [binding] = [o for o in objects if o["kind"] == "RoleBinding"
                 and o["metadata"]["name"] == "konfig-definitions-applier"]
    assert role["metadata"]["namespace"] == binding["metadata"]["namespace"] == NAMESPACE
    assert role["rules"] == [{"apiGroups": ["konfig.dev"],
                              "resources": ["controlplanes", "platforms", "domains",
                                            "resourcetemplates"],
                              "verbs": ["get", "list", "watch", "create", "patch", "update",
                                        "delete"]}]
    assert binding["subjects"] == [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User",
                                    "name": APPLIER}]
    # No cluster-wide grant names the applier.
    for o in objects:
        if o["kind"] == "ClusterRoleBinding":
            assert all(s.get("name") != APPLIER for s in o["subjects"])


def test_definitions_planner_only_reads(chart):
    objects = render(chart, controlPlaneCI={"planner": PLANNER})
    [role] = [o for o in objects if o["kind"] == "ClusterRole"
              and o["metadata"]["name"] == "konfig-planner"]
    assert all(set(rule["verbs"]) == {"get", "list"} for rule in role["rules"])
    assert not any("secrets" in rule["resources"] for rule in role["rules"])
    [binding] = [o for o in objects if o["kind"] == "ClusterRoleBinding"
                 and o["metadata"]["name"] == "konfig-planner"]
    assert binding["subjects"][0]["name"] == PLANNER
    assert not [o for o in objects if o["kind"] == "Role"]


def test_definitions_identities_must_be_service_account_emails(chart):
    with pytest.raises(Exception):
        render(chart, controlPlaneCI={"applier": "system:masters"})
