"""Resource types served by the Kubernetes API emulator, its errors, and its discovery documents.

Shapes follow the real API server:
- ``Status`` (https://kubernetes.io/docs/reference/kubernetes-api/common-definitions/status/):
  ``{kind: Status, apiVersion: v1, metadata: {}, status: Failure, message, reason, details, code}``
  with the reasons of k8s.io/apimachinery/pkg/apis/meta/v1 (``NotFound``, ``AlreadyExists``,
  ``Conflict``, ``Invalid``, ``BadRequest``, ``Forbidden``, ``MethodNotAllowed``, ``Expired``...).
- Discovery: ``APIVersions`` (/api), ``APIGroupList`` (/apis), ``APIGroup`` (/apis/{group}) and
  ``APIResourceList`` (/api/v1, /apis/{group}/{version}), where subresources are listed as
  ``{plural}/{subresource}`` entries
  (https://kubernetes.io/docs/reference/using-api/api-concepts/#discovery-api).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

ALL_VERBS = ("create", "delete", "deletecollection", "get", "list", "patch", "update", "watch")
SUBRESOURCE_VERBS = ("get", "patch", "update")


class StatusError(Exception):
    """An API failure rendered as a ``Status`` object with an HTTP code.

    ``details`` follows StatusDetails: name, group, kind (the resource plural for most
    errors, as the real server does), causes [{reason, message, field}]."""

    def __init__(self, code: int, reason: str, message: str, details: dict[str, Any] | None = None):
        super().__init__(message)
        self.code = code
        self.reason = reason
        self.message = message
        self.details = details

    def to_status(self) -> dict[str, Any]:
        """The ``Status`` object dict sent as the response body."""
        status: dict[str, Any] = {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "code": self.code,
        }
        if self.details is not None:
            status["details"] = self.details
        return status

    @staticmethod
    def _details(rtype: ResourceType | None, name: str | None, **extra: Any) -> dict[str, Any]:
        details: dict[str, Any] = {}
        if name is not None:
            details["name"] = name
        if rtype is not None:
            if rtype.group:
                details["group"] = rtype.group
            details["kind"] = rtype.plural
        details.update(extra)
        return details

    @classmethod
    def not_found(cls, rtype: ResourceType, name: str) -> StatusError:
        """404 NotFound for a named object: ``configmaps "x" not found``."""
        return cls(404, "NotFound", f'{rtype.qualified_plural} "{name}" not found',
                   cls._details(rtype, name))

    @classmethod
    def namespace_not_found(cls, namespace: str) -> StatusError:
        """404 NotFound when writing into a namespace that does not exist."""
        return cls(404, "NotFound", f'namespaces "{namespace}" not found',
                   {"name": namespace, "kind": "namespaces"})

    @classmethod
    def no_route(cls) -> StatusError:
        """404 for an unknown path or resource type (what kube-apiserver answers)."""
        return cls(404, "NotFound", "the server could not find the requested resource",
                   {"causes": [{"reason": "UnexpectedServerResponse", "message": "404 page not found"}]})

    @classmethod
    def already_exists(cls, rtype: ResourceType, name: str) -> StatusError:
        """409 AlreadyExists on create."""
        return cls(409, "AlreadyExists", f'{rtype.qualified_plural} "{name}" already exists',
                   cls._details(rtype, name))

    @classmethod
    def conflict(cls, rtype: ResourceType, name: str, why: str) -> StatusError:
        """409 Conflict (stale resourceVersion, failed precondition, apply conflicts)."""
        return cls(409, "Conflict", f'Operation cannot be fulfilled on {rtype.qualified_plural} "{name}": {why}',
                   cls._details(rtype, name))

    @classmethod
    def invalid(cls, rtype: ResourceType, name: str, causes: list[tuple[str, str, str]]) -> StatusError:
        """422 Invalid; causes are (field, cause reason, message) like
        ``("metadata.name", "FieldValueInvalid", 'Invalid value: "X": ...')``."""
        text = ", ".join(f"{fld}: {msg}" for fld, _, msg in causes)
        return cls(422, "Invalid", f'{rtype.kind} "{name}" is invalid: {text}', {
            **cls._details(rtype, name, kind=rtype.kind),
            "causes": [{"reason": reason, "message": msg, "field": fld} for fld, reason, msg in causes],
        })

    @classmethod
    def bad_request(cls, message: str) -> StatusError:
        """400 BadRequest (malformed body, selector or query)."""
        return cls(400, "BadRequest", message)

    @classmethod
    def forbidden(cls, rtype: ResourceType, name: str, why: str) -> StatusError:
        """403 Forbidden (e.g. creating in a terminating namespace)."""
        return cls(403, "Forbidden", f'{rtype.qualified_plural} "{name}" is forbidden: {why}',
                   cls._details(rtype, name))

    @classmethod
    def method_not_allowed(cls) -> StatusError:
        """405 MethodNotAllowed for a verb the resource does not support."""
        return cls(405, "MethodNotAllowed", "the server does not allow this method on the requested resource")

    @classmethod
    def unsupported_media_type(cls, content_type: str) -> StatusError:
        """415 UnsupportedMediaType (e.g. strategic merge patch on a custom resource)."""
        return cls(415, "UnsupportedMediaType", f"the body of the request was in an unknown format - "
                   f"accepted media types include: application/json-patch+json, application/merge-patch+json,"
                   f" application/apply-patch+yaml (got {content_type})")

    @classmethod
    def gone(cls, resource_version: str) -> StatusError:
        """410 Expired: a watch asked for a resourceVersion older than the kept history."""
        return cls(410, "Expired", f"too old resource version: {resource_version}")


@dataclass(frozen=True)
class ResourceType:
    """One served resource: a (group, version, plural) triple and what discovery says of it."""

    group: str  # "" for the core group
    version: str
    kind: str
    plural: str
    singular: str
    namespaced: bool
    short_names: tuple[str, ...] = ()
    categories: tuple[str, ...] = ()
    subresources: frozenset[str] = frozenset()
    verbs: tuple[str, ...] = ALL_VERBS
    # Only for custom resources: the version's openAPIV3Schema (pruning, defaults, validation).
    schema: dict[str, Any] | None = field(default=None, compare=False, hash=False)
    custom: bool = False

    @property
    def api_version(self) -> str:
        """``v1`` for the core group, ``group/version`` otherwise."""
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def storage_key(self) -> tuple[str, str]:
        """All versions of one resource share one storage: (group, plural)."""
        return (self.group, self.plural)

    @property
    def qualified_plural(self) -> str:
        """``configmaps`` or ``deployments.apps``, as used in error messages."""
        return f"{self.plural}.{self.group}" if self.group else self.plural

    @property
    def has_status(self) -> bool:
        """Whether /status is a subresource (status then changes only through it)."""
        return "status" in self.subresources

    def discovery_entries(self) -> list[dict[str, Any]]:
        """APIResource entries: the resource itself and one per subresource."""
        entry: dict[str, Any] = {
            "name": self.plural,
            "singularName": self.singular,
            "namespaced": self.namespaced,
            "kind": self.kind,
            "verbs": list(self.verbs),
        }
        if self.short_names:
            entry["shortNames"] = list(self.short_names)
        if self.categories:
            entry["categories"] = list(self.categories)
        entries = [entry]
        for sub in sorted(self.subresources):
            entries.append({
                "name": f"{self.plural}/{sub}",
                "singularName": "",
                "namespaced": self.namespaced,
                "kind": self.kind,
                "verbs": list(SUBRESOURCE_VERBS),
            })
        return entries


def _builtin(group: str, version: str, kind: str, plural: str, namespaced: bool,
             short: tuple[str, ...] = (), subresources: tuple[str, ...] = (),
             categories: tuple[str, ...] = ()) -> ResourceType:
    return ResourceType(group=group, version=version, kind=kind, plural=plural,
                        singular=kind.lower(), namespaced=namespaced, short_names=short,
                        categories=categories, subresources=frozenset(subresources))


BUILTIN_TYPES: tuple[ResourceType, ...] = (
    _builtin("", "v1", "Namespace", "namespaces", False, ("ns",), ("status",)),
    _builtin("", "v1", "ConfigMap", "configmaps", True, ("cm",)),
    _builtin("", "v1", "Secret", "secrets", True),
    _builtin("", "v1", "ServiceAccount", "serviceaccounts", True, ("sa",)),
    _builtin("", "v1", "Service", "services", True, ("svc",), ("status",), ("all",)),
    _builtin("", "v1", "Event", "events", True, ("ev",)),
    _builtin("events.k8s.io", "v1", "Event", "events", True, ("ev",)),
    _builtin("apps", "v1", "Deployment", "deployments", True, ("deploy",), ("status",), ("all",)),
    _builtin("autoscaling", "v2", "HorizontalPodAutoscaler", "horizontalpodautoscalers", True,
             ("hpa",), ("status",), ("all",)),
    _builtin("policy", "v1", "PodDisruptionBudget", "poddisruptionbudgets", True, ("pdb",),
             ("status",)),
    _builtin("networking.k8s.io", "v1", "NetworkPolicy", "networkpolicies", True, ("netpol",)),
    _builtin("rbac.authorization.k8s.io", "v1", "Role", "roles", True),
    _builtin("rbac.authorization.k8s.io", "v1", "RoleBinding", "rolebindings", True),
    _builtin("rbac.authorization.k8s.io", "v1", "ClusterRole", "clusterroles", False),
    _builtin("rbac.authorization.k8s.io", "v1", "ClusterRoleBinding", "clusterrolebindings", False),
    _builtin("coordination.k8s.io", "v1", "Lease", "leases", True),
    _builtin("apiextensions.k8s.io", "v1", "CustomResourceDefinition", "customresourcedefinitions",
             False, ("crd", "crds"), ("status",), ("api-extensions",)),
)

CRD_GROUP = "apiextensions.k8s.io"
CRD_CLEANUP_FINALIZER = "customresourcecleanup.apiextensions.k8s.io"
NAMESPACE_FINALIZER = "kubernetes"
FOREGROUND_FINALIZER = "foregroundDeletion"

_VERSION = re.compile(r"^v(\d+)(?:(alpha|beta)(\d+))?$")


def version_priority(version: str) -> tuple[int, int, int, str]:
    """Sort key giving Kubernetes version priority: GA > beta > alpha, then higher numbers, then
    non-conforming names alphabetically (https://kubernetes.io/docs/tasks/extend-kubernetes/
    custom-resources/custom-resource-definition-versioning/#version-priority). Lower sorts first."""
    match = _VERSION.match(version)
    if not match:
        return (3, 0, 0, version)
    major, stage, minor = int(match[1]), match[2], int(match[3] or 0)
    rank = {None: 0, "beta": 1, "alpha": 2}[stage]
    return (rank, -major, -minor, "")


def types_from_crd(crd: dict[str, Any]) -> list[ResourceType]:
    """The resource types a CustomResourceDefinition (apiextensions.k8s.io/v1) serves: one per
    version with ``served: true``; status subresource, shortNames, categories and scope as
    declared."""
    spec = crd.get("spec") or {}
    names = spec.get("names") or {}
    types = []
    for version in spec.get("versions") or []:
        if not version.get("served", True):
            continue
        subresources = set((version.get("subresources") or {}).keys()) & {"status", "scale"}
        schema = (version.get("schema") or {}).get("openAPIV3Schema")
        types.append(ResourceType(
            group=spec["group"],
            version=version["name"],
            kind=names["kind"],
            plural=names["plural"],
            singular=names.get("singular") or names["kind"].lower(),
            namespaced=spec.get("scope", "Namespaced") == "Namespaced",
            short_names=tuple(names.get("shortNames") or ()),
            categories=tuple(names.get("categories") or ()),
            subresources=frozenset(subresources),
            schema=schema,
            custom=True,
        ))
    return types


class TypeRegistry:
    """The served resource types, indexed for routing and discovery (not thread-safe on its own:
    the store guards it with its lock)."""

    def __init__(self) -> None:
        # (group, version) -> plural -> ResourceType
        self._by_group_version: dict[tuple[str, str], dict[str, ResourceType]] = {}
        for rtype in BUILTIN_TYPES:
            self.add(rtype)

    def add(self, rtype: ResourceType) -> None:
        """Serve (or re-serve with new properties) a resource type."""
        self._by_group_version.setdefault((rtype.group, rtype.version), {})[rtype.plural] = rtype

    def remove_resource(self, group: str, plural: str) -> None:
        """Stop serving every version of a resource (its CRD is gone)."""
        for key in list(self._by_group_version):
            if key[0] == group:
                self._by_group_version[key].pop(plural, None)
                if not self._by_group_version[key]:
                    del self._by_group_version[key]

    def lookup(self, group: str, version: str, plural: str) -> ResourceType | None:
        """The type served at /apis/{group}/{version}/{plural}, or None."""
        return self._by_group_version.get((group, version), {}).get(plural)

    def by_kind(self, api_version: str, kind: str) -> ResourceType | None:
        """The type for an ``apiVersion`` and ``kind`` pair, or None."""
        group, _, version = api_version.rpartition("/")
        for rtype in self._by_group_version.get((group, version), {}).values():
            if rtype.kind == kind:
                return rtype
        return None

    def versions_of(self, group: str, plural: str) -> list[ResourceType]:
        """All served versions of one resource."""
        return [types[plural] for (g, _), types in self._by_group_version.items()
                if g == group and plural in types]

    def storage_types(self) -> list[ResourceType]:
        """One served type per stored resource (its highest-priority version)."""
        chosen: dict[tuple[str, str], ResourceType] = {}
        for types in self._by_group_version.values():
            for rtype in types.values():
                best = chosen.get(rtype.storage_key)
                if best is None or version_priority(rtype.version) < version_priority(best.version):
                    chosen[rtype.storage_key] = rtype
        return [chosen[key] for key in sorted(chosen)]

    def groups(self) -> dict[str, list[str]]:
        """Non-core group name -> served versions, highest priority first."""
        groups: dict[str, list[str]] = {}
        for group, version in self._by_group_version:
            if group:
                groups.setdefault(group, []).append(version)
        return {g: sorted(vs, key=version_priority) for g, vs in sorted(groups.items())}

    def resources(self, group: str, version: str) -> list[ResourceType] | None:
        """The types of one group version, or None if that group version is not served."""
        types = self._by_group_version.get((group, version))
        return None if types is None else sorted(types.values(), key=lambda t: t.plural)

    # -- discovery documents ---------------------------------------------------------------

    def api_group(self, group: str) -> dict[str, Any] | None:
        """The ``APIGroup`` document of a group, or None if it is not served."""
        versions = self.groups().get(group)
        if not versions:
            return None
        entries = [{"groupVersion": f"{group}/{v}", "version": v} for v in versions]
        return {"kind": "APIGroup", "apiVersion": "v1", "name": group,
                "versions": entries, "preferredVersion": entries[0]}

    def api_group_list(self) -> dict[str, Any]:
        """The ``APIGroupList`` document of /apis."""
        groups = [self.api_group(group) for group in self.groups()]
        for group in groups:
            assert group is not None
            del group["kind"], group["apiVersion"]
        return {"kind": "APIGroupList", "apiVersion": "v1", "groups": groups}

    def api_resource_list(self, group: str, version: str) -> dict[str, Any] | None:
        """The ``APIResourceList`` of one group version, or None if it is not served."""
        types = self.resources(group, version)
        if types is None:
            return None
        return {
            "kind": "APIResourceList",
            "apiVersion": "v1",
            "groupVersion": f"{group}/{version}" if group else version,
            "resources": [entry for rtype in types for entry in rtype.discovery_entries()],
        }


# -- names -------------------------------------------------------------------------------------

_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_DNS_1035_LABEL = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")
_DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")
_QUALIFIED_NAME = re.compile(r"^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$")


def name_problem(rtype: ResourceType, name: str) -> str | None:
    """Why ``name`` is not a valid object name for this kind, or None.

    Rules from k8s.io/apimachinery validation (https://kubernetes.io/docs/concepts/overview/
    working-with-objects/names/): namespaces are RFC 1123 labels, services RFC 1035 labels,
    RBAC objects path segments (they allow ``:``), everything else RFC 1123 subdomains."""
    if rtype.kind == "Namespace":
        if len(name) > 63 or not _DNS_LABEL.match(name):
            return ("a lowercase RFC 1123 label must consist of lower case alphanumeric characters or"
                    " '-', and must start and end with an alphanumeric character")
        return None
    if rtype.kind == "Service" and not rtype.group:
        if len(name) > 63 or not _DNS_1035_LABEL.match(name):
            return ("a DNS-1035 label must consist of lower case alphanumeric characters or '-', start"
                    " with an alphabetic character, and end with an alphanumeric character")
        return None
    if rtype.group == "rbac.authorization.k8s.io":
        if name in (".", "..") or "/" in name or "%" in name:
            return "may not contain '/' or '%' and may not be '.' or '..'"
        return None
    if len(name) > 253 or not _DNS_SUBDOMAIN.match(name):
        return ("a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters,"
                " '-' or '.', and must start and end with an alphanumeric character")
    return None


def qualified_name_problem(key: str) -> str | None:
    """Why ``key`` is not a valid label/annotation key (``[prefix/]name``), or None."""
    prefix, _, name = key.rpartition("/")
    if prefix and (len(prefix) > 253 or not _DNS_SUBDOMAIN.match(prefix)):
        return "prefix part must be a lowercase RFC 1123 subdomain"
    if not name or len(name) > 63 or not _QUALIFIED_NAME.match(name):
        return ("name part must consist of alphanumeric characters, '-', '_' or '.', and must start"
                " and end with an alphanumeric character (at most 63 characters)")
    return None


def label_value_problem(value: Any) -> str | None:
    """Why ``value`` is not a valid label value, or None."""
    if not isinstance(value, str):
        return "label values must be strings"
    if len(value) > 63 or not _LABEL_VALUE.match(value):
        return ("a valid label must be an empty string or consist of alphanumeric characters, '-',"
                " '_' or '.', and must start and end with an alphanumeric character (at most 63)")
    return None
