"""Which REST resource serves each kind: ``(apiVersion, kind) -> plural, namespaced``.

The Kubernetes API addresses objects by resource (plural) and scope, not by kind; this registry
maps the kinds Konfig writes to their resources. It starts from what Konfig ships (the core
kinds the compiler emits, the Config Connector CRDs in ``konfig/data/kcc/crds`` and Konfig's own
CRDs) and can learn more from the cluster's discovery documents
(https://kubernetes.io/docs/reference/using-api/api-concepts/#resource-uris), for kinds a
ResourceTemplate renders that Konfig does not ship a CRD for.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, Iterable

import yaml

from konfig.resources import data_path

try:  # the C loader is ~10x faster on the 40-odd large CRD files
    from yaml import CSafeLoader as _Loader
except ImportError:  # pragma: no cover - libyaml missing
    from yaml import SafeLoader as _Loader  # type: ignore[assignment]

KCC_CRD_DIR = data_path("kcc", "crds")


@dataclass(frozen=True)
class KindInfo:
    """One served kind: ``group`` ("" for the core group), ``version``, ``kind``, ``plural``
    resource name and whether objects are ``namespaced``."""

    group: str
    version: str
    kind: str
    plural: str
    namespaced: bool

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    def collection_path(self, namespace: str | None = None) -> str:
        """REST path of the collection: namespaced when ``namespace`` is given (and the kind
        is namespaced), cluster-wide otherwise (``GET`` across all namespaces)."""
        base = f"/apis/{self.group}/{self.version}" if self.group else f"/api/{self.version}"
        if self.namespaced and namespace:
            return f"{base}/namespaces/{namespace}/{self.plural}"
        return f"{base}/{self.plural}"

    def item_path(self, namespace: str | None, name: str) -> str:
        """REST path of one object. Raises ``ValueError`` for a namespaced kind without a
        namespace."""
        if self.namespaced and not namespace:
            raise ValueError(f"{self.kind} {name!r} is namespaced but has no namespace")
        return f"{self.collection_path(namespace if self.namespaced else None)}/{name}"


#: Built-in kinds the compiler emits or the operator touches, with their resources. Source:
#: https://kubernetes.io/docs/reference/kubernetes-api/
CORE_KINDS: tuple[KindInfo, ...] = (
    KindInfo("", "v1", "Namespace", "namespaces", False),
    KindInfo("", "v1", "ServiceAccount", "serviceaccounts", True),
    KindInfo("", "v1", "Service", "services", True),
    KindInfo("", "v1", "ConfigMap", "configmaps", True),
    KindInfo("", "v1", "Secret", "secrets", True),
    KindInfo("", "v1", "Event", "events", True),
    KindInfo("apps", "v1", "Deployment", "deployments", True),
    KindInfo("autoscaling", "v2", "HorizontalPodAutoscaler", "horizontalpodautoscalers", True),
    KindInfo("policy", "v1", "PodDisruptionBudget", "poddisruptionbudgets", True),
    KindInfo("networking.k8s.io", "v1", "NetworkPolicy", "networkpolicies", True),
    KindInfo("rbac.authorization.k8s.io", "v1", "Role", "roles", True),
    KindInfo("rbac.authorization.k8s.io", "v1", "RoleBinding", "rolebindings", True),
    KindInfo("rbac.authorization.k8s.io", "v1", "ClusterRole", "clusterroles", False),
    KindInfo("rbac.authorization.k8s.io", "v1", "ClusterRoleBinding", "clusterrolebindings", False),
    KindInfo("apiextensions.k8s.io", "v1", "CustomResourceDefinition",
             "customresourcedefinitions", False),
)


def kinds_of_crd(crd: dict[str, Any]) -> list[KindInfo]:
    """Every served version of a CustomResourceDefinition as :class:`KindInfo`."""
    spec = crd["spec"]
    names = spec["names"]
    return [
        KindInfo(spec["group"], version["name"], names["kind"], names["plural"],
                 spec.get("scope", "Namespaced") == "Namespaced")
        for version in spec.get("versions", [])
        if version.get("served", True)
    ]


def storage_kind_of_crd(crd: dict[str, Any]) -> KindInfo:
    """The version of a CRD that objects are stored in (the one to list them by)."""
    kinds = kinds_of_crd(crd)
    stored = [v["name"] for v in crd["spec"].get("versions", []) if v.get("storage")]
    return next((k for k in kinds if k.version in stored), kinds[0])


@lru_cache(maxsize=1)
def shipped_kcc_crds() -> tuple[dict[str, Any], ...]:
    """The Config Connector CRDs Konfig ships (``konfig/data/kcc/crds``), parsed once.
    Raises ``OSError``/``yaml.YAMLError`` if the package data is damaged."""
    crds = []
    for path in sorted(Path(KCC_CRD_DIR).glob("*.yaml")):
        for doc in yaml.load_all(path.read_text(encoding="utf-8"), Loader=_Loader):
            if isinstance(doc, dict) and doc.get("kind") == "CustomResourceDefinition":
                crds.append(doc)
    return tuple(crds)


class UnknownKind(LookupError):
    """No served resource is known for an ``(apiVersion, kind)``."""


class KindRegistry:
    """Maps ``(apiVersion, kind)`` to :class:`KindInfo`. Not thread-safe for writes; build it
    fully before sharing it between threads."""

    def __init__(self, kinds: Iterable[KindInfo] = ()) -> None:
        self._kinds: dict[tuple[str, str], KindInfo] = {}
        for info in kinds:
            self.add(info)

    @classmethod
    def shipped(cls) -> "KindRegistry":
        """Core kinds, Config Connector's shipped CRDs and Konfig's own CRDs."""
        from konfig.kube import crds as konfig_crds  # generated from the models

        registry = cls(CORE_KINDS)
        for crd in (*shipped_kcc_crds(), *konfig_crds.all_crds()):
            for info in kinds_of_crd(crd):
                registry.add(info)
        return registry

    def add(self, info: KindInfo) -> None:
        self._kinds[(info.api_version, info.kind)] = info

    def learn(self, discovery: dict[str, Any], api_version: str) -> None:
        """Add the kinds of one discovery document (``APIResourceList`` of ``api_version``),
        skipping subresources (``deployments/status``)."""
        group, _, version = api_version.rpartition("/")
        for resource in discovery.get("resources", []):
            if "/" in resource.get("name", "/"):
                continue
            self.add(KindInfo(group, version, resource["kind"], resource["name"],
                              bool(resource.get("namespaced"))))

    def get(self, api_version: str, kind: str) -> KindInfo:
        """Raises :class:`UnknownKind`."""
        try:
            return self._kinds[(api_version, kind)]
        except KeyError:
            raise UnknownKind(f"no served resource known for {kind} ({api_version})") from None

    def knows(self, api_version: str, kind: str) -> bool:
        return (api_version, kind) in self._kinds

    def of(self, obj: dict[str, Any]) -> KindInfo:
        """The kind of an object dict. Raises :class:`UnknownKind`."""
        return self.get(obj["apiVersion"], obj["kind"])

    def __iter__(self):
        return iter(self._kinds.values())

    def __len__(self) -> int:
        return len(self._kinds)
