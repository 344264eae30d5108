"""Reading the desired Kubernetes objects: identity, Config Connector membership, the
namespace a project comes from, and what marks an object as Konfig's.

Objects are the plain dicts of :attr:`konfig.compile.state.DesiredState.kubernetes`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterable

from konfig.compile.state import LABEL_KEYS, PROJECT_ID_ANNOTATION, KubeObject

#: API group suffix of every Config Connector resource kind.
KCC_GROUP_SUFFIX = ".cnrm.cloud.google.com"
#: Config Connector's own configuration kinds (ConfigConnector, ConfigConnectorContext): they
#: configure the controller and have no cloud resource behind them.
KCC_CORE_GROUP = "core.cnrm.cloud.google.com"
CNRM_ANNOTATION_PREFIX = "cnrm.cloud.google.com/"
#: Container annotations by container type.
#: Source: https://cloud.google.com/config-connector/docs/how-to/organizing-resources/overview
CONTAINER_ANNOTATIONS = {
    "project": PROJECT_ID_ANNOTATION,
    "folder": "cnrm.cloud.google.com/folder-id",
    "organization": "cnrm.cloud.google.com/organization-id",
}
#: Annotation prefixes written by the operator framework or by Konfig itself.
OPERATOR_ANNOTATION_PREFIXES = ("kopf.zalando.org/", "konfig.dev/")
#: Annotation written by ``kubectl apply``; a copy of an old object, never wanted in an export.
LAST_APPLIED = "kubectl.kubernetes.io/last-applied-configuration"
#: API group of Konfig's own definitions (ownerReferences pointing there are Konfig's).
KONFIG_GROUP = "konfig.dev"


@dataclass(frozen=True, order=True)
class ObjectKey:
    """Identity of one object: API ``group``, ``kind``, ``namespace`` ('' when cluster-scoped),
    ``name``."""

    group: str
    kind: str
    namespace: str
    name: str

    def __str__(self) -> str:
        where = f"{self.namespace}/{self.name}" if self.namespace else self.name
        return f"{self.kind} {where}"


def group_of(obj: KubeObject) -> str:
    """API group of ``obj`` ('' for the core group: ``v1``)."""
    api_version = obj.get("apiVersion", "")
    return api_version.rsplit("/", 1)[0] if "/" in api_version else ""


def key_of(obj: KubeObject) -> ObjectKey:
    meta = obj.get("metadata") or {}
    return ObjectKey(group_of(obj), obj.get("kind", ""), meta.get("namespace", ""), meta.get("name", ""))


def is_kcc_resource(obj: KubeObject) -> bool:
    """True for a Config Connector resource kind (one that stands for a cloud resource)."""
    group = group_of(obj)
    return group.endswith(KCC_GROUP_SUFFIX) and group != KCC_CORE_GROUP


def is_konfig_annotation(key: str) -> bool:
    """Annotations of the operator framework (kopf) or of Konfig: anything under
    ``kopf.zalando.org/`` or ``konfig.dev/``, or with ``konfig`` in its prefix."""
    prefix = key.split("/", 1)[0] if "/" in key else ""
    return key.startswith(OPERATOR_ANNOTATION_PREFIXES) or "konfig" in prefix


def is_konfig_owner(ref: dict[str, Any]) -> bool:
    """An ownerReference that points at a Konfig definition (API group ``konfig.dev``)."""
    return group_of(ref) == KONFIG_GROUP or group_of(ref).endswith("." + KONFIG_GROUP)


def annotations(obj: KubeObject) -> dict[str, str]:
    return dict((obj.get("metadata") or {}).get("annotations") or {})


def labels(obj: KubeObject) -> dict[str, str]:
    return dict((obj.get("metadata") or {}).get("labels") or {})


def without_konfig_labels(values: dict[str, str]) -> dict[str, str]:
    """``values`` minus Konfig's label keys (konfig.compile.state.LABEL_KEYS)."""
    return {k: v for k, v in values.items() if k not in LABEL_KEYS}


#: Spec fields that hold Google Cloud labels (Cloud Run ``template.labels``, Cloud SQL
#: ``settings.userLabels``, GKE ``resourceLabels``, Secret Manager ``labels``): Konfig puts
#: its labels there too, so cost reports see them on revisions, instances and nodes.
SPEC_LABEL_FIELDS = ("labels", "userLabels", "resourceLabels")


def spec_without_konfig_labels(node: Any) -> Any:
    """A copy of a spec with Konfig's label keys removed from every label map in it (a map
    left empty is removed)."""
    if isinstance(node, list):
        return [spec_without_konfig_labels(item) for item in node]
    if not isinstance(node, dict):
        return node
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key in SPEC_LABEL_FIELDS and isinstance(value, dict):
            value = without_konfig_labels(value)
            if not value:
                continue
            out[key] = value
        else:
            out[key] = spec_without_konfig_labels(value)
    return out


class Inventory:
    """The objects of one export, indexed for reference lookups.

    ``find(kind, namespace, name, group)`` returns the object a KCC reference names; a
    reference without ``namespace`` means the referring object's namespace.
    """

    def __init__(self, objects: Iterable[KubeObject]) -> None:
        self.objects: list[KubeObject] = list(objects)
        self.namespaces: dict[str, KubeObject] = {}
        self._by_key: dict[tuple[str, str, str], list[KubeObject]] = {}
        for obj in self.objects:
            key = key_of(obj)
            if key.kind == "Namespace" and key.group == "":
                self.namespaces[key.name] = obj
            self._by_key.setdefault((key.kind, key.namespace, key.name), []).append(obj)

    def find(self, kind: str, namespace: str, name: str, group: str = "") -> KubeObject | None:
        for obj in self._by_key.get((kind, namespace, name), []):
            if not group or group_of(obj) == group:
                return obj
        return None

    def container_value(self, obj: KubeObject, container_type: str) -> tuple[str | None, str]:
        """Value of the ``cnrm.cloud.google.com/<type>-id`` container annotation for ``obj``
        and where it came from (``"object"``, ``"namespace"`` or ``"namespace name"``).

        Config Connector's rule: the object's own annotation wins; without one, the
        namespace's annotation applies; for projects, the namespace name itself is the last
        resort. Source: https://cloud.google.com/config-connector/docs/how-to/organizing-resources/project-scoped-resources
        """
        annotation = CONTAINER_ANNOTATIONS[container_type]
        own = annotations(obj)
        if annotation in own:
            return own[annotation], "object"
        if any(a in own for a in CONTAINER_ANNOTATIONS.values()):
            return None, ""  # the object chose another kind of parent
        namespace = key_of(obj).namespace
        ns_obj = self.namespaces.get(namespace)
        if ns_obj is not None and annotation in annotations(ns_obj):
            return annotations(ns_obj)[annotation], "namespace"
        if container_type == "project" and namespace:
            return namespace, "namespace name"
        return None, ""
