"""The Kubernetes API emulator, exercised through the real kubernetes client and real kopf."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import subprocess
import sys
import textwrap
import threading
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import kopf
import kubernetes.client
import kubernetes.config
import kubernetes.dynamic
import kubernetes.watch
import pytest
from kubernetes.client import ApiException

from konfig.sandbox.kube_api import FAIL_ANNOTATION, KubeEmulator, minimal_crd

GROUP = "example.konfig.dev"
APPLY = "application/apply-patch+yaml"


def widget_crd(scope: str = "Namespaced", plural: str = "widgets", kind: str = "Widget") -> dict[str, Any]:
    """A CRD with a structural schema: spec.size (integer, required), spec.color (default
    "blue"), spec.tags, spec.owner; status preserved; status subresource; short name ``wd``."""
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"{plural}.{GROUP}"},
        "spec": {
            "group": GROUP,
            "scope": scope,
            "names": {"kind": kind, "plural": plural, "singular": kind.lower(), "shortNames": ["wd"],
                      "listKind": f"{kind}List", "categories": ["konfig"]},
            "versions": [{
                "name": "v1", "served": True, "storage": True,
                "subresources": {"status": {}},
                "schema": {"openAPIV3Schema": {
                    "type": "object",
                    "properties": {
                        "spec": {
                            "type": "object",
                            "required": ["size"],
                            "properties": {
                                "size": {"type": "integer"},
                                "color": {"type": "string", "default": "blue"},
                                "tags": {"type": "array", "items": {"type": "string"}},
                                "owner": {"type": "string"},
                            },
                        },
                        "status": {"type": "object", "x-kubernetes-preserve-unknown-fields": True},
                    },
                }},
            }],
        },
    }


def widget(name: str, size: int = 1, **spec: Any) -> dict[str, Any]:
    return {"apiVersion": f"{GROUP}/v1", "kind": "Widget", "metadata": {"name": name},
            "spec": {"size": size, **spec}}


def status_of(exc: ApiException) -> dict[str, Any]:
    return json.loads(exc.body)


def configmap(name: str, labels: dict[str, str] | None = None, **meta: Any) -> dict[str, Any]:
    return {"metadata": {"name": name, "labels": labels or {}, **meta}, "data": {"k": "v"}}


def deployment(name: str, containers: list[dict[str, Any]]) -> dict[str, Any]:
    return {"metadata": {"name": name}, "spec": {
        "selector": {"matchLabels": {"app": name}},
        "template": {"metadata": {"labels": {"app": name}}, "spec": {"containers": containers}}}}


@pytest.fixture
def widgets(kube: KubeEmulator) -> str:
    kube.install_crds([widget_crd()])
    return GROUP


@pytest.fixture
def dyn(api_client: kubernetes.client.ApiClient) -> kubernetes.dynamic.DynamicClient:
    return kubernetes.dynamic.DynamicClient(api_client)


def watch_in_thread(kube: KubeEmulator, func: Callable[..., Any], *args: Any, count: int,
                    **kwargs: Any) -> tuple[threading.Thread, list[dict[str, Any]]]:
    """Start a kubernetes.watch stream in a thread collecting ``count`` non-bookmark events;
    returns once the emulator has received the watch request."""
    events: list[dict[str, Any]] = []
    before = sum(1 for r in kube.requests if r.query.get("watch"))
    watcher = kubernetes.watch.Watch()

    def run() -> None:
        for event in watcher.stream(func, *args, **kwargs):
            if event["type"] != "BOOKMARK":
                events.append(event)
            if len(events) >= count:
                watcher.stop()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    kube.wait(lambda: sum(1 for r in kube.requests if r.query.get("watch")) > before, timeout=5)
    return thread, events


# -- discovery ---------------------------------------------------------------------------------

def test_version_and_core_discovery(api_client: kubernetes.client.ApiClient) -> None:
    assert kubernetes.client.VersionApi(api_client).get_code().major == "1"
    assert kubernetes.client.CoreApi(api_client).get_api_versions().versions == ["v1"]
    resources = {r.name: r for r in kubernetes.client.CoreV1Api(api_client).get_api_resources().resources}
    assert {"namespaces", "configmaps", "secrets", "serviceaccounts", "services", "events"} <= set(resources)
    assert resources["configmaps"].namespaced and resources["configmaps"].short_names == ["cm"]
    assert not resources["namespaces"].namespaced
    assert "namespaces/status" in resources and "configmaps/status" not in resources
    assert "watch" in resources["configmaps"].verbs and "patch" in resources["configmaps"].verbs


def test_group_discovery_with_trailing_slashes(api_client: kubernetes.client.ApiClient,
                                               dyn: kubernetes.dynamic.DynamicClient) -> None:
    groups = {g.name: g for g in kubernetes.client.ApisApi(api_client).get_api_versions().groups}
    assert {"apps", "rbac.authorization.k8s.io", "coordination.k8s.io", "apiextensions.k8s.io",
            "events.k8s.io"} <= set(groups)
    assert kubernetes.client.AppsApi(api_client).get_api_group().preferred_version.group_version == "apps/v1"
    rbac = kubernetes.client.RbacAuthorizationV1Api(api_client).get_api_resources()
    scopes = {r.name: r.namespaced for r in rbac.resources}
    assert scopes == {"roles": True, "rolebindings": True, "clusterroles": False, "clusterrolebindings": False}
    for path in ("/apis/", "/apis/apps/", "/apis/apps/v1/", "/api/", "/api/v1/"):
        assert dyn.request("GET", path).kind in ("APIGroupList", "APIGroup", "APIResourceList", "APIVersions")
    apps = dyn.request("GET", "/apis/apps/v1/")
    assert {"deployments", "deployments/status"} <= {r.name for r in apps.resources}
    leases = dyn.request("GET", "/apis/coordination.k8s.io/v1")
    assert [r.kind for r in leases.resources] == ["Lease"]


def test_unknown_group_and_resource_are_404_status(dyn: kubernetes.dynamic.DynamicClient,
                                                   api_client: kubernetes.client.ApiClient) -> None:
    with pytest.raises(kubernetes.dynamic.exceptions.NotFoundError):
        dyn.request("GET", "/apis/nothing.example.com/v1")
    with pytest.raises(ApiException) as caught:
        kubernetes.client.CustomObjectsApi(api_client).list_cluster_custom_object("nothing.example.com", "v1", "x")
    assert caught.value.status == 404
    assert status_of(caught.value)["kind"] == "Status"


def test_creating_a_crd_serves_its_resource_at_once(api_client: kubernetes.client.ApiClient,
                                                    custom: kubernetes.client.CustomObjectsApi,
                                                    dyn: kubernetes.dynamic.DynamicClient) -> None:
    ext = kubernetes.client.ApiextensionsV1Api(api_client)
    ext.create_custom_resource_definition(widget_crd())
    ext.create_custom_resource_definition(widget_crd(scope="Cluster", plural="gadgets", kind="Gadget"))
    crd = ext.read_custom_resource_definition(f"widgets.{GROUP}")
    assert {c.type: c.status for c in crd.status.conditions}["Established"] == "True"
    assert crd.status.accepted_names.plural == "widgets"

    listing = dyn.request("GET", f"/apis/{GROUP}/v1")
    entries = {r.name: r for r in listing.resources}
    assert entries["widgets"].namespaced is True and entries["widgets"].shortNames == ["wd"]
    assert entries["gadgets"].namespaced is False
    assert "widgets/status" in entries
    assert dyn.resources.get(api_version=f"{GROUP}/v1", kind="Gadget").namespaced is False

    made = custom.create_namespaced_custom_object(GROUP, "v1", "default", "widgets", widget("w1"))
    assert made["metadata"]["namespace"] == "default"
    gadget = {"apiVersion": f"{GROUP}/v1", "kind": "Gadget", "metadata": {"name": "g1"}, "spec": {"size": 2}}
    made = custom.create_cluster_custom_object(GROUP, "v1", "gadgets", gadget)
    assert "namespace" not in made["metadata"]


def test_preferred_version_follows_kubernetes_version_priority(kube: KubeEmulator,
                                                               api_client: kubernetes.client.ApiClient) -> None:
    crd = minimal_crd(GROUP, "Thing", version="v1beta1")
    beta = crd["spec"]["versions"][0]
    crd["spec"]["versions"] = [
        {**beta, "name": "v1alpha1", "storage": False},
        {**beta, "name": "v1beta1", "storage": True},
        {**beta, "name": "v1", "storage": False},
    ]
    kube.install_crds([crd])
    group = {g.name: g for g in kubernetes.client.ApisApi(api_client).get_api_versions().groups}[GROUP]
    assert group.preferred_version.version == "v1"
    assert [v.version for v in group.versions] == ["v1", "v1beta1", "v1alpha1"]
    made = kube.create({"apiVersion": f"{GROUP}/v1alpha1", "kind": "Thing", "metadata": {"name": "t"}})
    # One storage, served in every version (the None conversion strategy rewrites apiVersion).
    assert made["apiVersion"] == f"{GROUP}/v1alpha1"
    assert kube.get(f"{GROUP}/v1", "Thing", "default", "t")["apiVersion"] == f"{GROUP}/v1"


# -- CRUD and server-set metadata -----------------------------------------------------------------

def test_create_sets_server_metadata(core: kubernetes.client.CoreV1Api,
                                     api_client: kubernetes.client.ApiClient) -> None:
    data, code, _ = core.create_namespaced_config_map_with_http_info("default", configmap("a"))
    assert code == 201
    first = data.metadata
    uuid.UUID(first.uid)
    assert first.generation == 1 and first.creation_timestamp is not None
    secret = core.create_namespaced_secret("default", {"metadata": {"name": "s"}, "stringData": {"pw": "x"}})
    role = kubernetes.client.RbacAuthorizationV1Api(api_client).create_cluster_role(
        {"metadata": {"name": "system:reader"}, "rules": []})
    versions = [int(first.resource_version), int(secret.metadata.resource_version),
                int(role.metadata.resource_version)]
    assert versions == sorted(versions) and len(set(versions)) == 3  # monotonic, cluster-wide
    assert secret.data == {"pw": "eA=="} and secret.type == "Opaque"  # stringData folded into data
    assert core.read_namespaced_config_map("a", "default").metadata.uid == first.uid


def test_generate_name(core: kubernetes.client.CoreV1Api) -> None:
    made = core.create_namespaced_config_map("default", {"metadata": {"generateName": "cfg-"}})
    assert made.metadata.name.startswith("cfg-") and len(made.metadata.name) == len("cfg-") + 5


def test_generation_bumps_on_spec_changes_only(widgets: str, custom: kubernetes.client.CustomObjectsApi) -> None:
    made = custom.create_namespaced_custom_object(GROUP, "v1", "default", "widgets", widget("w"))
    labelled = custom.patch_namespaced_custom_object(GROUP, "v1", "default", "widgets", "w",
                                                     {"metadata": {"labels": {"a": "b"}}})
    assert labelled["metadata"]["generation"] == 1
    assert int(labelled["metadata"]["resourceVersion"]) > int(made["metadata"]["resourceVersion"])
    with_status = custom.patch_namespaced_custom_object_status(GROUP, "v1", "default", "widgets", "w",
                                                               {"status": {"phase": "Ok"}})
    assert with_status["metadata"]["generation"] == 1
    resized = custom.patch_namespaced_custom_object(GROUP, "v1", "default", "widgets", "w", {"spec": {"size": 5}})
    assert resized["metadata"]["generation"] == 2
    same = custom.patch_namespaced_custom_object(GROUP, "v1", "default", "widgets", "w", {"spec": {"size": 5}})
    assert same["metadata"]["resourceVersion"] == resized["metadata"]["resourceVersion"]  # no-op write


def test_already_exists_and_not_found_are_status_objects(core: kubernetes.client.CoreV1Api) -> None:
    core.create_namespaced_config_map("default", configmap("dup"))
    with pytest.raises(ApiException) as caught:
        core.create_namespaced_config_map("default", configmap("dup"))
    assert caught.value.status == 409
    assert status_of(caught.value) == {
        "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
        "message": 'configmaps "dup" already exists', "reason": "AlreadyExists", "code": 409,
        "details": {"name": "dup", "kind": "configmaps"},
    }
    with pytest.raises(ApiException) as caught:
        core.read_namespaced_config_map("missing", "default")
    status = status_of(caught.value)
    assert (caught.value.status, status["reason"], status["code"]) == (404, "NotFound", 404)
    assert status["details"] == {"name": "missing", "kind": "configmaps"}
    with pytest.raises(ApiException) as caught:
        core.delete_namespaced_config_map("missing", "default")
    assert caught.value.status == 404


def test_invalid_names_and_missing_fields_are_422(widgets: str, core: kubernetes.client.CoreV1Api,
                                                  dyn: kubernetes.dynamic.DynamicClient,
                                                  custom: kubernetes.client.CustomObjectsApi) -> None:
    with pytest.raises(ApiException) as caught:
        core.create_namespaced_config_map("default", configmap("Bad_Name"))
    status = status_of(caught.value)
    assert (caught.value.status, status["reason"]) == (422, "Invalid")
    assert status["details"]["causes"][0]["field"] == "metadata.name"
    with pytest.raises(ApiException) as caught:
        core.create_namespace({"metadata": {"name": "a.b"}})  # namespaces are DNS labels, not subdomains
    assert caught.value.status == 422
    with pytest.raises(ApiException) as caught:
        core.create_namespaced_config_map("default", configmap("ok", labels={"bad key!": "v"}))
    assert caught.value.status == 422
    with pytest.raises(ApiException) as caught:
        core.create_namespaced_config_map("default", {"metadata": {}})
    assert status_of(caught.value)["details"]["causes"][0]["reason"] == "FieldValueRequired"

    with pytest.raises(kubernetes.dynamic.exceptions.UnprocessibleEntityError) as invalid:
        # The typed client refuses this body before sending it; the dynamic client does not.
        dyn.request("POST", "/apis/apps/v1/namespaces/default/deployments",
                    body={"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "d"},
                          "spec": {"replicas": 1}})
    fields = {c["field"] for c in json.loads(invalid.value.body)["details"]["causes"]}
    assert fields == {"spec.selector", "spec.template"}

    with pytest.raises(ApiException) as caught:
        custom.create_namespaced_custom_object(GROUP, "v1", "default", "widgets",
                                               {**widget("w"), "spec": {"color": "red"}})
    assert caught.value.status == 422
    assert status_of(caught.value)["details"]["causes"][0]["field"] == "spec.size"
    with pytest.raises(ApiException) as caught:
        custom.create_namespaced_custom_object(GROUP, "v1", "default", "widgets", widget("w", size="big"))
    assert status_of(caught.value)["details"]["causes"][0]["field"] == "spec.size"


def test_custom_resources_are_pruned_and_defaulted(widgets: str, custom: kubernetes.client.CustomObjectsApi) -> None:
    body = widget("w", size=2, unknown="dropped")
    body["extra"] = "dropped too"
    made = custom.create_namespaced_custom_object(GROUP, "v1", "default", "widgets", body)
    assert made["spec"] == {"size": 2, "color": "blue"}
    assert "extra" not in made


BUILTIN_OBJECTS = [
    ("v1", "Namespace", {"metadata": {"name": "ns-x"}}),
    ("v1", "ConfigMap", {"metadata": {"name": "x"}, "data": {"a": "b"}}),
    ("v1", "Secret", {"metadata": {"name": "x"}, "data": {"a": "Yg=="}}),
    ("v1", "ServiceAccount", {"metadata": {"name": "x"}}),
    ("v1", "Service", {"metadata": {"name": "x"}, "spec": {"ports": [{"port": 80}]}}),
    ("v1", "Event", {"metadata": {"name": "x"}, "involvedObject": {"kind": "ConfigMap", "name": "x"},
                     "reason": "Test", "message": "m"}),
    ("events.k8s.io/v1", "Event", {"metadata": {"name": "x"}, "eventTime": "2024-01-01T00:00:00.000000Z",
                                   "reason": "Test", "action": "Do", "reportingController": "konfig",
                                   "reportingInstance": "konfig-0"}),
    ("apps/v1", "Deployment", deployment("x", [{"name": "app", "image": "app:1"}])),
    ("rbac.authorization.k8s.io/v1", "Role", {"metadata": {"name": "x"}, "rules": []}),
    ("rbac.authorization.k8s.io/v1", "RoleBinding", {"metadata": {"name": "x"}, "roleRef": {
        "apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "x"}, "subjects": []}),
    ("rbac.authorization.k8s.io/v1", "ClusterRole", {"metadata": {"name": "x"}, "rules": []}),
    ("rbac.authorization.k8s.io/v1", "ClusterRoleBinding", {"metadata": {"name": "x"}, "roleRef": {
        "apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "x"}}),
    ("coordination.k8s.io/v1", "Lease", {"metadata": {"name": "x"}, "spec": {"holderIdentity": "me"}}),
    ("apiextensions.k8s.io/v1", "CustomResourceDefinition", widget_crd()),
]


@pytest.mark.parametrize(("api_version", "kind", "body"), BUILTIN_OBJECTS,
                         ids=[f"{a}/{k}" for a, k, _ in BUILTIN_OBJECTS])
def test_every_builtin_kind_round_trips(dyn: kubernetes.dynamic.DynamicClient, api_version: str, kind: str,
                                        body: dict[str, Any]) -> None:
    resource = dyn.resources.get(api_version=api_version, kind=kind)
    namespace = "default" if resource.namespaced else None
    name = body["metadata"]["name"]
    made = resource.create(body={"apiVersion": api_version, "kind": kind, **body}, namespace=namespace)
    assert (made.apiVersion, made.kind, made.metadata.name) == (api_version, kind, name)
    resource.patch(name=name, namespace=namespace, body={"metadata": {"labels": {"patched": "yes"}}},
                   content_type="application/merge-patch+json")
    listed = resource.get(namespace=namespace, label_selector="patched=yes")
    assert [item.metadata.name for item in listed.items] == [name]
    resource.delete(name=name, namespace=namespace)
    with pytest.raises(kubernetes.dynamic.exceptions.NotFoundError):  # an empty namespace goes at once
        resource.get(name=name, namespace=namespace)


def test_dynamic_client_apply_shares_list_items_between_managers(dyn: kubernetes.dynamic.DynamicClient) -> None:
    deployments = dyn.resources.get(api_version="apps/v1", kind="Deployment")

    def apply(manager: str, containers: list[dict[str, Any]]) -> Any:
        body = {"apiVersion": "apps/v1", "kind": "Deployment", **deployment("d", containers)}
        return deployments.server_side_apply(body=body, name="d", namespace="default", field_manager=manager)

    apply("konfig", [{"name": "app", "image": "app:1"}])
    both = apply("mesh", [{"name": "proxy", "image": "proxy:1"}])
    assert [c.name for c in both.spec.template.spec.containers] == ["app", "proxy"]
    owned = {e.manager: e.fieldsV1.to_dict() for e in both.metadata.managedFields}
    containers = owned["mesh"]["f:spec"]["f:template"]["f:spec"]["f:containers"]
    assert list(containers) == ['k:{"name":"proxy"}']
    # konfig stops applying its container: it goes; mesh's container stays.
    with pytest.raises(kubernetes.dynamic.exceptions.ConflictError):
        apply("konfig", [{"name": "proxy", "image": "proxy:2"}])
    after = apply("konfig", [{"name": "proxy", "image": "proxy:1"}])
    assert [(c.name, c.image) for c in after.spec.template.spec.containers] == [("proxy", "proxy:1")]


def test_delete_collection_with_a_label_selector(core: kubernetes.client.CoreV1Api) -> None:
    core.create_namespaced_config_map("default", configmap("a", {"konfig.dev/managed": "true"}))
    core.create_namespaced_config_map("default", configmap("b", {"konfig.dev/managed": "true"}))
    core.create_namespaced_config_map("default", configmap("keep"))
    core.delete_collection_namespaced_config_map("default", label_selector="konfig.dev/managed=true")
    assert [c.metadata.name for c in core.list_namespaced_config_map("default").items] == ["keep"]


# -- namespaces -----------------------------------------------------------------------------------

def test_namespaced_and_cluster_wide_routes(widgets: str, core: kubernetes.client.CoreV1Api,
                                            custom: kubernetes.client.CustomObjectsApi) -> None:
    for ns in ("team-a", "team-b"):
        core.create_namespace({"metadata": {"name": ns}})
        core.create_namespaced_config_map(ns, configmap("shared"))
        custom.create_namespaced_custom_object(GROUP, "v1", ns, "widgets", widget("w"))
    assert [c.metadata.name for c in core.list_namespaced_config_map("team-a").items] == ["shared"]
    everywhere = core.list_config_map_for_all_namespaces()
    assert sorted(c.metadata.namespace for c in everywhere.items) == ["team-a", "team-b"]
    assert everywhere.kind == "ConfigMapList"
    all_widgets = custom.list_cluster_custom_object(GROUP, "v1", "widgets")
    assert sorted(w["metadata"]["namespace"] for w in all_widgets["items"]) == ["team-a", "team-b"]
    namespace = core.read_namespace("team-a")
    assert namespace.status.phase == "Active"
    assert namespace.metadata.labels == {"kubernetes.io/metadata.name": "team-a"}


def test_creating_into_a_missing_namespace_is_404(core: kubernetes.client.CoreV1Api) -> None:
    with pytest.raises(ApiException) as caught:
        core.create_namespaced_config_map("nowhere", configmap("a"))
    status = status_of(caught.value)
    assert caught.value.status == 404
    assert status["message"] == 'namespaces "nowhere" not found'
    assert status["details"] == {"name": "nowhere", "kind": "namespaces"}


def test_list_pagination(core: kubernetes.client.CoreV1Api) -> None:
    for index in range(5):
        core.create_namespaced_config_map("default", configmap(f"cm-{index}"))
    first = core.list_namespaced_config_map("default", limit=2)
    assert [c.metadata.name for c in first.items] == ["cm-0", "cm-1"]
    assert first.metadata.remaining_item_count == 3
    rest = core.list_namespaced_config_map("default", limit=10, _continue=first.metadata._continue)
    assert [c.metadata.name for c in rest.items] == ["cm-2", "cm-3", "cm-4"]
    assert not rest.metadata._continue
    assert rest.metadata.resource_version == first.metadata.resource_version


# -- selectors ------------------------------------------------------------------------------------

@pytest.mark.parametrize(("selector", "expected"), [
    ("app=web", {"web-1", "web-2"}),
    ("app==web", {"web-1", "web-2"}),
    ("app!=web", {"db", "plain"}),
    ("app in (web, db)", {"web-1", "web-2", "db"}),
    ("app notin (web)", {"db", "plain"}),
    ("tier", {"web-2", "db"}),
    ("!tier", {"web-1", "plain"}),
    ("app=web,tier", {"web-2"}),
    ("app=web,tier=back", set()),
])
def test_label_selectors(core: kubernetes.client.CoreV1Api, selector: str, expected: set[str]) -> None:
    core.create_namespaced_config_map("default", configmap("web-1", {"app": "web"}))
    core.create_namespaced_config_map("default", configmap("web-2", {"app": "web", "tier": "front"}))
    core.create_namespaced_config_map("default", configmap("db", {"app": "db", "tier": "back"}))
    core.create_namespaced_config_map("default", configmap("plain"))
    found = core.list_namespaced_config_map("default", label_selector=selector)
    assert {c.metadata.name for c in found.items} == expected


def test_field_selectors(core: kubernetes.client.CoreV1Api) -> None:
    core.create_namespace({"metadata": {"name": "other"}})
    for ns in ("default", "other"):
        core.create_namespaced_config_map(ns, configmap("a"))
        core.create_namespaced_config_map(ns, configmap("b"))

    def names(**kwargs: Any) -> set[str]:
        items = core.list_config_map_for_all_namespaces(**kwargs).items
        return {f"{c.metadata.namespace}/{c.metadata.name}" for c in items}

    assert names(field_selector="metadata.name=a") == {"default/a", "other/a"}
    assert names(field_selector="metadata.namespace==other") == {"other/a", "other/b"}
    assert names(field_selector="metadata.namespace=other,metadata.name!=a") == {"other/b"}
    with pytest.raises(ApiException) as caught:
        core.list_config_map_for_all_namespaces(label_selector="app in (web")
    assert caught.value.status == 400


# -- optimistic concurrency -----------------------------------------------------------------------

def test_stale_resource_version_conflicts(core: kubernetes.client.CoreV1Api) -> None:
    made = core.create_namespaced_config_map("default", configmap("a"))
    stale = made.metadata.resource_version
    core.patch_namespaced_config_map("a", "default", {"data": {"k": "newer"}})
    body = configmap("a")
    body["metadata"]["resourceVersion"] = stale
    with pytest.raises(ApiException) as caught:
        core.replace_namespaced_config_map("a", "default", body)
    status = status_of(caught.value)
    assert (caught.value.status, status["reason"]) == (409, "Conflict")
    assert "the object has been modified" in status["message"]
    with pytest.raises(ApiException) as caught:
        core.patch_namespaced_config_map("a", "default", {"metadata": {"resourceVersion": stale}, "data": {}},
                                         _content_type="application/merge-patch+json")
    assert caught.value.status == 409
    # Without a resourceVersion, PUT is unconditional.
    replaced = core.replace_namespaced_config_map("a", "default", configmap("a"))
    assert replaced.data == {"k": "v"}


def test_json_patch_failed_test_operation_is_422(core: kubernetes.client.CoreV1Api) -> None:
    core.create_namespaced_config_map("default", configmap("a"))
    with pytest.raises(ApiException) as caught:
        core.patch_namespaced_config_map("a", "default", [
            {"op": "test", "path": "/metadata/resourceVersion", "value": "1"},
            {"op": "replace", "path": "/data/k", "value": "x"},
        ])
    assert caught.value.status == 422
    assert core.read_namespaced_config_map("a", "default").data == {"k": "v"}


# -- patches --------------------------------------------------------------------------------------

def test_merge_patch(widgets: str, custom: kubernetes.client.CustomObjectsApi) -> None:
    custom.create_namespaced_custom_object(GROUP, "v1", "default", "widgets",
                                           widget("w", tags=["a", "b"], owner="me"))
    patched = custom.patch_namespaced_custom_object(GROUP, "v1", "default", "widgets", "w",
                                                    {"spec": {"owner": None, "tags": ["c"]}})
    assert patched["spec"] == {"size": 1, "color": "blue", "tags": ["c"]}


def test_json_patch_operations(core: kubernetes.client.CoreV1Api) -> None:
    core.create_namespaced_config_map("default", {"metadata": {"name": "a"}, "data": {"x": "1", "y": "2"}})
    patched = core.patch_namespaced_config_map("a", "default", [
        {"op": "add", "path": "/data/z", "value": "3"},
        {"op": "remove", "path": "/data/x"},
        {"op": "replace", "path": "/data/y", "value": "two"},
        {"op": "copy", "from": "/data/z", "path": "/data/w"},
        {"op": "move", "from": "/data/w", "path": "/data/v"},
        {"op": "add", "path": "/metadata/annotations", "value": {"a/b": "c"}},
    ])
    assert patched.data == {"y": "two", "z": "3", "v": "3"}
    assert patched.metadata.annotations == {"a/b": "c"}


def test_strategic_merge_patch_merges_named_list_items(api_client: kubernetes.client.ApiClient) -> None:
    apps = kubernetes.client.AppsV1Api(api_client)
    apps.create_namespaced_deployment("default", deployment("d", [
        {"name": "app", "image": "app:1"}, {"name": "sidecar", "image": "side:1"}]))
    patched = apps.patch_namespaced_deployment("d", "default", {"spec": {"template": {"spec": {"containers": [
        {"name": "app", "image": "app:2"}, {"name": "extra", "image": "extra:1"}]}}}})
    containers = {c.name: c.image for c in patched.spec.template.spec.containers}
    assert containers == {"app": "app:2", "sidecar": "side:1", "extra": "extra:1"}
    deleted = apps.patch_namespaced_deployment("d", "default", {"spec": {"template": {"spec": {"containers": [
        {"name": "sidecar", "$patch": "delete"}]}}}})
    assert [c.name for c in deleted.spec.template.spec.containers] == ["app", "extra"]


def test_strategic_merge_patch_on_custom_resources_is_415(widgets: str,
                                                          custom: kubernetes.client.CustomObjectsApi) -> None:
    custom.create_namespaced_custom_object(GROUP, "v1", "default", "widgets", widget("w"))
    with pytest.raises(ApiException) as caught:
        custom.patch_namespaced_custom_object(GROUP, "v1", "default", "widgets", "w", {"spec": {"size": 2}},
                                              _content_type="application/strategic-merge-patch+json")
    assert caught.value.status == 415


# -- server-side apply ----------------------------------------------------------------------------

def managers(obj: dict[str, Any]) -> dict[tuple[str, str], dict[str, Any]]:
    return {(e["manager"], e["operation"]): e["fieldsV1"] for e in obj["metadata"].get("managedFields", [])}


def test_apply_creates_then_updates_and_records_managed_fields(
        widgets: str, custom: kubernetes.client.CustomObjectsApi) -> None:
    # The real server answers 201 when apply creates; this client's typed method maps only 200,
    # so the body is read raw.
    response = custom.patch_namespaced_custom_object(
        GROUP, "v1", "default", "widgets", "w", widget("w", size=3, tags=["a"]),
        field_manager="konfig", _content_type=APPLY, _preload_content=False)
    assert response.status == 201
    created = json.loads(response.data)
    fields = managers(created)[("konfig", "Apply")]
    assert fields == {"f:spec": {"f:size": {}, "f:tags": {}}}
    updated = custom.patch_namespaced_custom_object(GROUP, "v1", "default", "widgets", "w",
                                                    widget("w", size=4), field_manager="konfig",
                                                    _content_type=APPLY)
    # tags was applied before and is omitted now: apply removes it. color (defaulted) stays.
    assert updated["spec"] == {"size": 4, "color": "blue"}
    assert updated["metadata"]["generation"] == 2
    edited = custom.patch_namespaced_custom_object(GROUP, "v1", "default", "widgets", "w",
                                                   {"spec": {"owner": "ops"}}, field_manager="editor")
    assert managers(edited)[("editor", "Update")] == {"f:spec": {"f:owner": {}}}


def test_apply_conflicts_between_managers_and_force(widgets: str, custom: kubernetes.client.CustomObjectsApi) -> None:
    def apply(manager: str, body: dict[str, Any], force: bool | None = None) -> dict[str, Any]:
        return custom.patch_namespaced_custom_object(GROUP, "v1", "default", "widgets", "w", body,
                                                     field_manager=manager, force=force, _content_type=APPLY)

    apply("konfig", widget("w", size=3, owner="platform"))
    # Same value: co-owned, no conflict.
    shared = apply("other", widget("w", size=3))
    assert ("other", "Apply") in managers(shared)
    with pytest.raises(ApiException) as caught:
        apply("other", widget("w", size=5))
    status = status_of(caught.value)
    assert (caught.value.status, status["reason"]) == (409, "Conflict")
    assert status["details"]["causes"] == [{"type": "FieldManagerConflict", "reason": "FieldManagerConflict",
                                            "message": 'conflict with "konfig"', "field": ".spec.size"}]
    forced = apply("other", widget("w", size=5), force=True)
    assert forced["spec"]["size"] == 5
    assert managers(forced)[("konfig", "Apply")] == {"f:spec": {"f:owner": {}}}
    # konfig drops owner: nobody else owns it, so it is removed; size stays (owned by other).
    after = apply("konfig", {**widget("w"), "spec": {}})
    assert after["spec"] == {"size": 5, "color": "blue"}


def test_apply_conflicts_with_an_update_manager(core: kubernetes.client.CoreV1Api) -> None:
    core.create_namespaced_config_map("default", {"metadata": {"name": "a"}, "data": {"k": "v"}},
                                      field_manager="kubectl-edit")
    body = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "a"}, "data": {"k": "mine"}}
    with pytest.raises(ApiException) as caught:
        core.patch_namespaced_config_map("a", "default", body, field_manager="konfig", _content_type=APPLY)
    assert caught.value.status == 409
    assert 'conflict with "kubectl-edit"' in status_of(caught.value)["message"]


def test_apply_requires_field_manager_and_type_meta(widgets: str,
                                                    custom: kubernetes.client.CustomObjectsApi) -> None:
    with pytest.raises(ApiException) as caught:
        custom.patch_namespaced_custom_object(GROUP, "v1", "default", "widgets", "w", widget("w"),
                                              _content_type=APPLY)
    assert caught.value.status == 422
    with pytest.raises(ApiException) as caught:
        custom.patch_namespaced_custom_object(GROUP, "v1", "default", "widgets", "w", {"spec": {"size": 1}},
                                              field_manager="konfig", _content_type=APPLY)
    assert caught.value.status == 400


def test_dry_run_does_not_persist(widgets: str, custom: kubernetes.client.CustomObjectsApi,
                                  kube: KubeEmulator) -> None:
    response = custom.patch_namespaced_custom_object(GROUP, "v1", "default", "widgets", "w", widget("w", size=2),
                                                     field_manager="konfig", dry_run="All", _content_type=APPLY,
                                                     _preload_content=False)
    assert json.loads(response.data)["spec"] == {"size": 2, "color": "blue"}
    assert kube.get(f"{GROUP}/v1", "Widget", "default", "w") is None


# -- status subresource ---------------------------------------------------------------------------

def test_status_subresource_separates_spec_and_status(widgets: str,
                                                      custom: kubernetes.client.CustomObjectsApi) -> None:
    made = custom.create_namespaced_custom_object(GROUP, "v1", "default", "widgets",
                                                  {**widget("w"), "status": {"phase": "ignored"}})
    assert "status" not in made
    via_status = custom.patch_namespaced_custom_object_status(
        GROUP, "v1", "default", "widgets", "w", {"spec": {"size": 9}, "status": {"phase": "Ready"},
                                                 "metadata": {"labels": {"ignored": "yes"}}})
    assert via_status["status"] == {"phase": "Ready"}
    assert via_status["spec"]["size"] == 1 and "labels" not in via_status["metadata"]
    via_main = custom.patch_namespaced_custom_object(GROUP, "v1", "default", "widgets", "w",
                                                     {"spec": {"size": 2}, "status": {"phase": "Hacked"}})
    assert via_main["status"] == {"phase": "Ready"} and via_main["spec"]["size"] == 2
    current = custom.get_namespaced_custom_object_status(GROUP, "v1", "default", "widgets", "w")
    current["status"] = {"phase": "Replaced"}
    replaced = custom.replace_namespaced_custom_object_status(GROUP, "v1", "default", "widgets", "w", current)
    assert replaced["status"] == {"phase": "Replaced"}
    assert managers(replaced)[("OpenAPI-Generator", "Update")] is not None


def test_status_of_kinds_without_the_subresource(core: kubernetes.client.CoreV1Api,
                                                 dyn: kubernetes.dynamic.DynamicClient) -> None:
    core.create_namespaced_config_map("default", configmap("a"))
    with pytest.raises(kubernetes.dynamic.exceptions.NotFoundError):
        dyn.request("GET", "/api/v1/namespaces/default/configmaps/a/status")
    namespace = core.read_namespace_status("default")
    assert namespace.status.phase == "Active"


# -- watch ----------------------------------------------------------------------------------------

def test_watch_streams_added_modified_deleted(kube: KubeEmulator, core: kubernetes.client.CoreV1Api) -> None:
    thread, events = watch_in_thread(kube, core.list_namespaced_config_map, "default", count=3,
                                     timeout_seconds=10)
    core.create_namespaced_config_map("default", configmap("a"))
    core.patch_namespaced_config_map("a", "default", {"data": {"k": "w"}})
    core.delete_namespaced_config_map("a", "default")
    thread.join(timeout=10)
    assert [(e["type"], e["object"].metadata.name) for e in events] == [
        ("ADDED", "a"), ("MODIFIED", "a"), ("DELETED", "a")]
    assert events[1]["object"].data == {"k": "w"}
    versions = [int(e["object"].metadata.resource_version) for e in events]
    assert versions == sorted(versions)


def test_watch_resumes_from_resource_version(core: kubernetes.client.CoreV1Api) -> None:
    core.create_namespaced_config_map("default", configmap("before"))
    since = core.list_namespaced_config_map("default").metadata.resource_version
    core.create_namespaced_config_map("default", configmap("after"))
    core.delete_namespaced_config_map("before", "default")
    watcher = kubernetes.watch.Watch()
    seen = []
    for event in watcher.stream(core.list_namespaced_config_map, "default", resource_version=since,
                                timeout_seconds=1):
        seen.append((event["type"], event["object"].metadata.name))
        if len(seen) == 2:
            watcher.stop()
    assert seen == [("ADDED", "after"), ("DELETED", "before")]
    # Without a resourceVersion the watch starts with the current state as ADDED events.
    initial = [e["object"].metadata.name for e in kubernetes.watch.Watch().stream(
        core.list_namespaced_config_map, "default", timeout_seconds=1)]
    assert initial == ["after"]
    # The legacy /watch/ path prefix, for one object by name.
    response = core.api_client.call_api("GET", f"{core.api_client.configuration.host}"
                                               "/api/v1/watch/namespaces/default/configmaps/after?timeoutSeconds=1")
    response.read()
    lines = [json.loads(line) for line in response.data.decode().splitlines()]
    assert [(e["type"], e["object"]["metadata"]["name"]) for e in lines] == [("ADDED", "after")]


def test_cluster_wide_watch_with_selectors(kube: KubeEmulator, widgets: str,
                                           custom: kubernetes.client.CustomObjectsApi,
                                           core: kubernetes.client.CoreV1Api) -> None:
    core.create_namespace({"metadata": {"name": "team"}})
    thread, events = watch_in_thread(kube, custom.list_cluster_custom_object, GROUP, "v1", "widgets",
                                     count=3, label_selector="watched=yes", timeout_seconds=10)
    custom.create_namespaced_custom_object(GROUP, "v1", "default", "widgets", widget("ignored"))
    body = widget("w")
    body["metadata"]["labels"] = {"watched": "yes"}
    custom.create_namespaced_custom_object(GROUP, "v1", "team", "widgets", body)
    # Leaving the selection is a DELETED event for this watcher; entering it an ADDED one.
    custom.patch_namespaced_custom_object(GROUP, "v1", "team", "widgets", "w",
                                          {"metadata": {"labels": {"watched": "no"}}})
    custom.patch_namespaced_custom_object(GROUP, "v1", "default", "widgets", "ignored",
                                          {"metadata": {"labels": {"watched": "yes"}}})
    thread.join(timeout=10)
    assert [(e["type"], e["object"]["metadata"]["namespace"], e["object"]["metadata"]["name"]) for e in events] == [
        ("ADDED", "team", "w"), ("DELETED", "team", "w"), ("ADDED", "default", "ignored")]
    field_events = list(kubernetes.watch.Watch().stream(
        custom.list_cluster_custom_object, GROUP, "v1", "widgets", field_selector="metadata.namespace=team",
        timeout_seconds=1))
    assert [e["object"]["metadata"]["name"] for e in field_events] == ["w"]


def test_watch_bookmarks_and_timeout(kube: KubeEmulator, core: kubernetes.client.CoreV1Api) -> None:
    core.create_namespaced_config_map("default", configmap("a"))
    latest = core.list_namespaced_config_map("default").metadata.resource_version
    response = core.list_namespaced_config_map("default", watch=True, allow_watch_bookmarks=True,
                                               resource_version=latest, timeout_seconds=1,
                                               _preload_content=False)
    lines = [json.loads(line) for line in response.read().decode().splitlines() if line]
    assert lines, "the stream must carry bookmarks while idle"
    assert {line["type"] for line in lines} == {"BOOKMARK"}
    assert lines[0]["object"]["metadata"]["resourceVersion"] == latest
    assert lines[0]["object"]["kind"] == "ConfigMap"


def test_watch_with_expired_resource_version_gets_410() -> None:
    with KubeEmulator(history_size=2) as kube:
        core = kubernetes.client.CoreV1Api(kubernetes.client.ApiClient(kube.client_configuration()))
        for index in range(4):
            core.create_namespaced_config_map("default", configmap(f"cm-{index}"))
        with pytest.raises(ApiException) as caught:
            list(kubernetes.watch.Watch().stream(core.list_namespaced_config_map, "default",
                                                 resource_version="1", timeout_seconds=1))
        assert caught.value.status == 410


# -- deletion -------------------------------------------------------------------------------------

def test_finalizers_delay_deletion(kube: KubeEmulator, core: kubernetes.client.CoreV1Api) -> None:
    core.create_namespaced_config_map("default", configmap("a", finalizers=["konfig.dev/cleanup"]))
    thread, events = watch_in_thread(kube, core.list_namespaced_config_map, "default", count=2,
                                     timeout_seconds=10, resource_version=str(kube.store.resource_version))
    core.delete_namespaced_config_map("a", "default")
    pending = core.read_namespaced_config_map("a", "default")
    assert pending.metadata.deletion_timestamp is not None
    with pytest.raises(ApiException) as caught:
        core.patch_namespaced_config_map("a", "default", {"metadata": {"finalizers": ["konfig.dev/cleanup", "x/y"]}},
                                         _content_type="application/merge-patch+json")
    assert caught.value.status == 422
    core.patch_namespaced_config_map("a", "default", {"metadata": {"finalizers": None}},
                                     _content_type="application/merge-patch+json")
    thread.join(timeout=10)
    with pytest.raises(ApiException) as caught:
        core.read_namespaced_config_map("a", "default")
    assert caught.value.status == 404
    # Removing the last finalizer deletes within the same write: no MODIFIED in between.
    assert [e["type"] for e in events] == ["MODIFIED", "DELETED"]
    assert events[0]["object"].metadata.deletion_timestamp is not None


def test_namespace_deletion_removes_its_objects(widgets: str, core: kubernetes.client.CoreV1Api,
                                                custom: kubernetes.client.CustomObjectsApi) -> None:
    core.create_namespace({"metadata": {"name": "doomed"}})
    core.create_namespaced_config_map("doomed", configmap("plain"))
    core.create_namespaced_config_map("doomed", configmap("held", finalizers=["konfig.dev/hold"]))
    custom.create_namespaced_custom_object(GROUP, "v1", "doomed", "widgets", widget("w"))
    core.delete_namespace("doomed")
    terminating = core.read_namespace("doomed")
    assert terminating.status.phase == "Terminating"
    assert [c.metadata.name for c in core.list_namespaced_config_map("doomed").items] == ["held"]
    assert custom.list_namespaced_custom_object(GROUP, "v1", "doomed", "widgets")["items"] == []
    with pytest.raises(ApiException) as caught:
        core.create_namespaced_config_map("doomed", configmap("late"))
    assert caught.value.status == 403
    core.patch_namespaced_config_map("held", "doomed", {"metadata": {"finalizers": None}},
                                     _content_type="application/merge-patch+json")
    with pytest.raises(ApiException) as caught:
        core.read_namespace("doomed")
    assert caught.value.status == 404


def test_system_namespaces_cannot_be_deleted(core: kubernetes.client.CoreV1Api) -> None:
    with pytest.raises(ApiException) as caught:
        core.delete_namespace("default")
    assert (caught.value.status, status_of(caught.value)["reason"]) == (403, "Forbidden")


def owner_ref(obj: Any, kind: str = "ConfigMap") -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": kind, "name": obj.metadata.name, "uid": obj.metadata.uid}


def test_garbage_collection_by_owner_references(widgets: str, core: kubernetes.client.CoreV1Api,
                                                custom: kubernetes.client.CustomObjectsApi) -> None:
    owner = core.create_namespaced_config_map("default", configmap("owner"))
    other = core.create_namespaced_config_map("default", configmap("other-owner"))
    core.create_namespaced_config_map("default", configmap("child", ownerReferences=[owner_ref(owner)]))
    grandchild_owner = core.read_namespaced_config_map("child", "default")
    core.create_namespaced_config_map("default", configmap("grandchild",
                                                           ownerReferences=[owner_ref(grandchild_owner)]))
    custom.create_namespaced_custom_object(GROUP, "v1", "default", "widgets", {
        **widget("shared"), "metadata": {"name": "shared", "ownerReferences": [owner_ref(owner), owner_ref(other)]}})
    core.delete_namespaced_config_map("owner", "default")
    remaining = {c.metadata.name for c in core.list_namespaced_config_map("default").items}
    assert remaining == {"other-owner"}
    shared = custom.get_namespaced_custom_object(GROUP, "v1", "default", "widgets", "shared")
    assert [ref["name"] for ref in shared["metadata"]["ownerReferences"]] == ["other-owner"]


def test_orphan_propagation_keeps_dependents(core: kubernetes.client.CoreV1Api) -> None:
    owner = core.create_namespaced_config_map("default", configmap("owner"))
    core.create_namespaced_config_map("default", configmap("child", ownerReferences=[owner_ref(owner)]))
    core.delete_namespaced_config_map("owner", "default", propagation_policy="Orphan")
    child = core.read_namespaced_config_map("child", "default")
    assert child.metadata.owner_references is None


def test_foreground_propagation_waits_for_dependents(core: kubernetes.client.CoreV1Api) -> None:
    owner = core.create_namespaced_config_map("default", configmap("owner"))
    core.create_namespaced_config_map("default", configmap("child", ownerReferences=[owner_ref(owner)],
                                                           finalizers=["konfig.dev/hold"]))
    core.delete_namespaced_config_map("owner", "default", propagation_policy="Foreground")
    waiting = core.read_namespaced_config_map("owner", "default")
    assert waiting.metadata.finalizers == ["foregroundDeletion"]
    assert core.read_namespaced_config_map("child", "default").metadata.deletion_timestamp is not None
    core.patch_namespaced_config_map("child", "default", {"metadata": {"finalizers": None}},
                                     _content_type="application/merge-patch+json")
    assert core.list_namespaced_config_map("default").items == []


def test_deleting_a_crd_deletes_its_objects_and_stops_serving(widgets: str, kube: KubeEmulator,
                                                              api_client: kubernetes.client.ApiClient,
                                                              custom: kubernetes.client.CustomObjectsApi) -> None:
    custom.create_namespaced_custom_object(GROUP, "v1", "default", "widgets", widget("w"))
    kubernetes.client.ApiextensionsV1Api(api_client).delete_custom_resource_definition(f"widgets.{GROUP}")
    assert kube.list("apiextensions.k8s.io/v1", "CustomResourceDefinition") == []
    with pytest.raises(ApiException) as caught:
        custom.list_cluster_custom_object(GROUP, "v1", "widgets")
    assert caught.value.status == 404
    assert GROUP not in {g.name for g in kubernetes.client.ApisApi(api_client).get_api_versions().groups}


def test_delete_responses(widgets: str, core: kubernetes.client.CoreV1Api,
                          custom: kubernetes.client.CustomObjectsApi) -> None:
    core.create_namespaced_config_map("default", configmap("a"))
    status = core.delete_namespaced_config_map("a", "default")
    assert (status["kind"], status["status"], status["details"]["name"]) == ("Status", "Success", "a")
    custom.create_namespaced_custom_object(GROUP, "v1", "default", "widgets", widget("w"))
    deleted = custom.delete_namespaced_custom_object(GROUP, "v1", "default", "widgets", "w")
    assert deleted["kind"] == "Widget" and deleted["metadata"]["name"] == "w"


# -- in-process accessors, kubeconfig, request log -------------------------------------------------

def test_in_process_accessors_and_kubeconfig(kube: KubeEmulator, tmp_path: Path) -> None:
    path = kube.kubeconfig_path(tmp_path)
    loaded = kubernetes.client.Configuration()
    kubernetes.config.load_kube_config(config_file=str(path), client_configuration=loaded)
    assert loaded.host == kube.url
    core = kubernetes.client.CoreV1Api(kubernetes.client.ApiClient(loaded))
    core.create_namespaced_config_map("default", configmap("a", {"app": "x"}))
    assert kube.get("v1", "ConfigMap", "default", "a")["data"] == {"k": "v"}
    assert [o["metadata"]["name"] for o in kube.list("v1", "ConfigMap", label_selector="app=x")] == ["a"]
    assert kube.get("v1", "ConfigMap", "default", "missing") is None
    kube.create({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "b", "namespace": "default"}})
    assert core.read_namespaced_config_map("b", "default").metadata.name == "b"
    posts = [r for r in kube.requests if r.method == "POST"]
    assert posts[0].path == "/api/v1/namespaces/default/configmaps"
    assert posts[0].body["metadata"]["name"] == "a" and posts[0].status == 201


# -- fake Config Connector ------------------------------------------------------------------------

def test_fake_config_connector_marks_cnrm_objects_ready(kube: KubeEmulator,
                                                        custom: kubernetes.client.CustomObjectsApi) -> None:
    cnrm = "iam.cnrm.cloud.google.com"
    kube.install_crds([minimal_crd(cnrm, "IAMServiceAccount", version="v1beta1"), widget_crd()])
    body = {"apiVersion": f"{cnrm}/v1beta1", "kind": "IAMServiceAccount", "metadata": {"name": "sa"},
            "spec": {"displayName": "one"}}
    custom.create_namespaced_custom_object(cnrm, "v1beta1", "default", "iamserviceaccounts", body)
    custom.create_namespaced_custom_object(GROUP, "v1", "default", "widgets", widget("not-cnrm"))
    assert "status" not in kube.get(f"{cnrm}/v1beta1", "IAMServiceAccount", "default", "sa")  # off by default
    kube.fake_config_connector = True  # reconciles what already exists

    def ready(generation: int, status: str = "True") -> Callable[[dict | None], bool]:
        def check(obj: dict | None) -> bool:
            obj_status = (obj or {}).get("status") or {}
            conditions = {c["type"]: c for c in obj_status.get("conditions", [])}
            return (obj_status.get("observedGeneration") == generation
                    and conditions.get("Ready", {}).get("status") == status)
        return check

    obj = kube.wait_for(f"{cnrm}/v1beta1", "IAMServiceAccount", "default", "sa", ready(1))
    assert obj["status"]["conditions"][0]["reason"] == "UpToDate"
    custom.patch_namespaced_custom_object(cnrm, "v1beta1", "default", "iamserviceaccounts", "sa",
                                          {"spec": {"displayName": "two"}})
    kube.wait_for(f"{cnrm}/v1beta1", "IAMServiceAccount", "default", "sa", ready(2))
    custom.patch_namespaced_custom_object(cnrm, "v1beta1", "default", "iamserviceaccounts", "sa",
                                          {"metadata": {"annotations": {FAIL_ANNOTATION: "quota exceeded"}}})
    failed = kube.wait_for(f"{cnrm}/v1beta1", "IAMServiceAccount", "default", "sa", ready(2, "False"))
    assert failed["status"]["conditions"][0]["message"] == "quota exceeded"
    assert "status" not in kube.get(f"{GROUP}/v1", "Widget", "default", "not-cnrm")


# -- kopf ------------------------------------------------------------------------------------------

PEERING_CRD = {
    "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
    "metadata": {"name": "clusterkopfpeerings.kopf.dev"},
    "spec": {"group": "kopf.dev", "scope": "Cluster",
             "names": {"kind": "ClusterKopfPeering", "plural": "clusterkopfpeerings", "singular": "clusterkopfpeering"},
             "versions": [{"name": "v1", "served": True, "storage": True, "schema": {"openAPIV3Schema": {
                 "type": "object",
                 "properties": {"status": {"type": "object", "x-kubernetes-preserve-unknown-fields": True}}}}}]},
}


@pytest.fixture(params=["clusterwide", "namespaced", "peering"])
def kopf_operator(request: pytest.FixtureRequest, kube: KubeEmulator, widgets: str) -> Iterator[str]:
    """A real kopf operator in a thread, handling Widgets: standalone and cluster-wide,
    standalone and watching ``default``, or cluster-wide with peering (kopf's ClusterKopfPeering
    CRD installed). Yields the Widget watch path it is expected to use."""
    registry = kopf.OperatorRegistry()
    peering = request.param == "peering"
    if peering:
        kube.install_crds([PEERING_CRD])
        kube.create({"apiVersion": "kopf.dev/v1", "kind": "ClusterKopfPeering", "metadata": {"name": "default"}})

    @kopf.on.login(registry=registry)
    def login(**_: Any) -> kopf.ConnectionInfo:
        return kopf.ConnectionInfo(server=kube.url, default_namespace="default")

    @kopf.on.startup(registry=registry)
    def configure(settings: kopf.OperatorSettings, **_: Any) -> None:
        settings.watching.server_timeout = 5

    @kopf.on.create(GROUP, "v1", "widgets", registry=registry, id="created")
    def created(body: Any, spec: Any, patch: Any, **_: Any) -> dict[str, Any]:
        kopf.info(body, reason="Created", message="widget created")  # posts a v1 Event
        patch.status["phase"] = "Made"
        return {"size": spec["size"]}

    @kopf.on.delete(GROUP, "v1", "widgets", registry=registry)
    def deleted(**_: Any) -> None:
        pass

    stop = threading.Event()
    ready = threading.Event()

    clusterwide = request.param != "namespaced"

    def run() -> None:
        asyncio.run(kopf.operator(registry=registry, standalone=not peering, clusterwide=clusterwide,
                                  namespaces=() if clusterwide else ["default"],
                                  stop_flag=stop, ready_flag=ready))

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    assert ready.wait(timeout=10)
    yield f"/apis/{GROUP}/v1/widgets" if clusterwide else f"/apis/{GROUP}/v1/namespaces/default/widgets"
    stop.set()
    thread.join(timeout=10)
    assert not thread.is_alive()


def test_kopf_operator_handles_a_custom_resource(kube: KubeEmulator, kopf_operator: str,
                                                 custom: kubernetes.client.CustomObjectsApi) -> None:
    custom.create_namespaced_custom_object(GROUP, "v1", "default", "widgets", widget("w", size=3))
    done = kube.wait_for(f"{GROUP}/v1", "Widget", "default", "w",
                         lambda o: o and (o.get("status") or {}).get("phase") == "Made", timeout=15)
    assert done["status"]["created"] == {"size": 3}
    assert done["metadata"]["finalizers"] == ["kopf.zalando.org/KopfFinalizerMarker"]
    assert "kopf.zalando.org/last-handled-configuration" in done["metadata"]["annotations"]
    events = kube.wait(lambda: [e for e in kube.list("v1", "Event", "default")
                                if e["involvedObject"]["name"] == "w"], timeout=15)
    assert any(e["message"] == "widget created" for e in events)

    custom.delete_namespaced_custom_object(GROUP, "v1", "default", "widgets", "w")
    kube.wait_for(f"{GROUP}/v1", "Widget", "default", "w", lambda o: o is None, timeout=15)
    status_patches = [r for r in kube.requests if r.method == "PATCH" and r.path.endswith("/w/status")]
    assert status_patches and status_patches[0].content_type == "application/merge-patch+json"
    watches = {r.path for r in kube.requests if r.query.get("watch") == "true"}
    assert kopf_operator in watches
    if kube.get("apiextensions.k8s.io/v1", "CustomResourceDefinition", None, PEERING_CRD["metadata"]["name"]):
        peering = kube.get("kopf.dev/v1", "ClusterKopfPeering", None, "default")
        assert [entry["priority"] for entry in peering["status"].values()] == [0]  # this operator's heartbeat


def test_kopf_run_cli_with_the_kubeconfig(kube: KubeEmulator, widgets: str, tmp_path: Path,
                                          custom: kubernetes.client.CustomObjectsApi) -> None:
    script = tmp_path / "widget_operator.py"  # not operator.py: that would shadow the stdlib module
    script.write_text(textwrap.dedent(f"""
        import kopf

        @kopf.on.create("{GROUP}", "v1", "widgets")
        def created(patch, **_):
            patch.status["phase"] = "FromCli"
    """))
    env = {**os.environ, "KUBECONFIG": str(kube.kubeconfig_path(tmp_path))}
    process = subprocess.Popen([sys.executable, "-m", "kopf", "run", "--standalone", "--all-namespaces",
                                str(script)], env=env, cwd=tmp_path,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        custom.create_namespaced_custom_object(GROUP, "v1", "default", "widgets", widget("w"))
        handled = None
        while handled is None and process.poll() is None:  # fail fast if the operator dies
            with contextlib.suppress(TimeoutError):
                handled = kube.wait_for(f"{GROUP}/v1", "Widget", "default", "w",
                                        lambda o: o and (o.get("status") or {}).get("phase") == "FromCli",
                                        timeout=0.5)
    finally:
        process.terminate()
        output, _ = process.communicate(timeout=15)
    assert handled is not None, output.decode()[-3000:]
    assert process.returncode == 0, output.decode()[-3000:]


def test_fake_config_connector_marks_contexts_healthy(tmp_path):
    """Config Connector's operator reports each ConfigConnectorContext healthy (status.healthy
    is required by the CRD); the fake does the same, and a failure annotation makes it unhealthy."""
    from konfig.kube.kinds import shipped_kcc_crds
    from konfig.sandbox.kube_api import FAIL_ANNOTATION, KubeEmulator

    with KubeEmulator(fake_config_connector=True) as kube:
        kube.install_crds(list(shipped_kcc_crds()))
        kube.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "shop-dev"}})
        for name, notes in (("ok", {}), ("broken", {FAIL_ANNOTATION: "no such account"})):
            kube.create({"apiVersion": "core.cnrm.cloud.google.com/v1beta1", "kind": "ConfigConnectorContext",
                         "metadata": {"name": name, "namespace": "shop-dev", "annotations": notes},
                         "spec": {"googleServiceAccount": "kcc@p.iam.gserviceaccount.com"}})
        api = "core.cnrm.cloud.google.com/v1beta1"
        ok = kube.wait_for(api, "ConfigConnectorContext", "shop-dev", "ok",
                           lambda o: o and (o.get("status") or {}).get("healthy") is True)
        broken = kube.wait_for(api, "ConfigConnectorContext", "shop-dev", "broken",
                               lambda o: o and "healthy" in (o.get("status") or {}))
        assert ok["status"]["healthy"] is True
        assert broken["status"]["healthy"] is False
        assert broken["status"]["errors"] == ["no such account"]
