"""The desired state: what the compiler produces and every adapter consumes.

Plain, immutable, deterministic data: the same definitions always give an identical
:class:`DesiredState`, with every collection sorted. Adapters (GitLab, Kubernetes, export)
receive these values and never call back into the compiler.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Mapping, Literal

#: Label keys Konfig puts on everything it creates (spec/definitions.md, "Invariants"). They are
#: valid as Kubernetes and as GCP label keys (lowercase, digits, hyphens; no '/' or '.'), so
#: Config Connector copies them onto the cloud resources. An object without
#: ``konfig-control-plane`` is not Konfig's and is never touched.
LABEL_CONTROL_PLANE = "konfig-control-plane"
LABEL_PLATFORM = "konfig-platform"
LABEL_DOMAIN = "konfig-domain"
LABEL_ENVIRONMENT = "konfig-environment"
LABEL_WORKLOAD = "konfig-workload"
LABEL_KEYS = (LABEL_CONTROL_PLANE, LABEL_PLATFORM, LABEL_DOMAIN, LABEL_ENVIRONMENT, LABEL_WORKLOAD)

#: Config Connector deletion policy: abandon keeps the cloud resource when the object goes.
#: Source: https://cloud.google.com/config-connector/docs/how-to/managing-deleting-resources
DELETION_POLICY = "cnrm.cloud.google.com/deletion-policy"
PROJECT_ID_ANNOTATION = "cnrm.cloud.google.com/project-id"

#: The namespace of the control plane's own objects in the control-plane cluster.
SYSTEM_NAMESPACE = "konfig-system"

#: GitLab marker: a project topic (projects) and a description suffix (groups and projects)
#: by which the GitLab adapter recognises objects it manages; unmarked objects are not changed.
GITLAB_MARKER_TOPIC = "konfig-managed"
GITLAB_MARKER_TEXT = "[managed by Konfig]"

#: GitLab access levels of the contract's roles (spec/definitions.md, "Roles").
#: Source: https://docs.gitlab.com/api/members/#roles
ACCESS_LEVELS = {"viewer": 20, "developer": 30, "maintainer": 40, "owner": 50}

KubeObject = dict[str, Any]


@dataclass(frozen=True, order=True)
class SamlGroupLink:
    """A SAML group link on a GitLab group: members of ``saml_group_name`` in the identity
    provider get ``access_level`` here and, by inheritance, below."""

    saml_group_name: str
    access_level: int


@dataclass(frozen=True, order=True)
class GroupVariable:
    """A group CI/CD variable. ``environment_scope`` is a GitLab environment name or ``*``."""

    key: str
    value: str
    environment_scope: str = "*"
    masked: bool = False
    protected: bool = False
    description: str = ""


@dataclass(frozen=True)
class GitLabGroup:
    """A GitLab subgroup Konfig manages. ``parent_full_path`` is the group it lives in (the
    adopted ``parentGroup`` for the control-plane subgroup)."""

    full_path: str
    name: str
    path: str
    parent_full_path: str
    description: str
    kind: Literal["ControlPlane", "Platform", "Domain"]
    visibility: Literal["private", "internal", "public"] = "private"
    saml_group_links: tuple[SamlGroupLink, ...] = ()
    variables: tuple[GroupVariable, ...] = ()


@dataclass(frozen=True)
class GitLabProject:
    """A GitLab project Konfig manages.

    ``kind`` says how it is made: ``control-plane`` (empty, holds the definitions),
    ``workload-template`` (files pushed from ``gitlab-templates/workload``), or ``workload``
    (created from the workload template). ``protected_environments`` lists the production
    environments, deployable only by maintainers.
    """

    path_with_namespace: str
    name: str
    path: str
    namespace_full_path: str
    description: str
    kind: Literal["control-plane", "workload-template", "workload"]
    visibility: Literal["private", "internal", "public"] = "private"
    default_branch: str = "main"
    topics: tuple[str, ...] = (GITLAB_MARKER_TOPIC,)
    protected_branches: tuple[str, ...] = ("main",)
    protected_tags: tuple[str, ...] = ("v*",)
    protected_environments: tuple[str, ...] = ()


@dataclass(frozen=True)
class GitLabTree:
    """The desired GitLab tree under the adopted ``root_full_path`` (never created).

    ``groups`` are sorted parents first (by depth, then path); ``projects`` by path.
    """

    url: str
    root_full_path: str
    groups: tuple[GitLabGroup, ...] = ()
    projects: tuple[GitLabProject, ...] = ()

    def group(self, full_path: str) -> GitLabGroup | None:
        return next((g for g in self.groups if g.full_path == full_path), None)

    def project(self, path_with_namespace: str) -> GitLabProject | None:
        return next((p for p in self.projects if p.path_with_namespace == path_with_namespace), None)


@dataclass(frozen=True)
class RouteView:
    """One workload environment and how callers reach it: ``load_balancer`` is ``external``,
    ``internal`` or ``none`` (the Cloud Run service's own URL, known once it exists)."""

    domain: str
    workload: str
    visibility: str
    load_balancer: str
    path: str | None
    url: str | None


@dataclass(frozen=True)
class SubnetView:
    region: str
    subnet: str
    proxy_only: str


@dataclass(frozen=True)
class NetworkView:
    """The network of one environment, for ``konfig plan``: its host project and ranges, the
    hosts of its load balancers (``None`` where none is rendered) and every workload's route."""

    environment: str
    host_project: str
    network: str
    cidr: str
    subnets: tuple[SubnetView, ...]
    services_range: str
    external_host: str | None
    internal_host: str | None
    routes: tuple[RouteView, ...]


@dataclass(frozen=True)
class DesiredState:
    """Everything Konfig wants to exist for one control plane.

    ``kubernetes`` holds every object the controller applies to the control-plane cluster
    (Namespaces, ConfigConnectorContexts, RBAC and Config Connector objects), sorted in apply
    order (namespaces first). ``notes`` are human-readable remarks for ``konfig plan`` (for
    example features waiting on a value the definitions do not have yet).
    """

    control_plane: str
    kubernetes: tuple[KubeObject, ...]
    gitlab: GitLabTree
    notes: tuple[str, ...] = field(default=())
    networks: tuple[NetworkView, ...] = field(default=())
    #: Where each Kubernetes object comes from, by :func:`object_key`: ``(definition, field,
    #: who)``, the definition (a Workload or ResourceTemplate) and the field path in it whose
    #: YAML produced the object, and who asked (``workload cart, environment dev``), so that
    #: problems found in the rendered objects point back at the YAML.
    origins: Mapping[tuple[str, str, str, str], tuple[Any, str, str]] = field(
        default_factory=dict, compare=False, repr=False
    )

    def to_json(self) -> dict[str, Any]:
        """The shape ``konfig plan --json`` prints: ``kubernetes`` (list of objects) and
        ``gitlab`` with ``groups`` and ``projects``."""
        return {
            "controlPlane": self.control_plane,
            "kubernetes": list(self.kubernetes),
            "gitlab": {
                "url": self.gitlab.url,
                "root_full_path": self.gitlab.root_full_path,
                "groups": [asdict(g) for g in self.gitlab.groups],
                "projects": [asdict(p) for p in self.gitlab.projects],
            },
            "notes": list(self.notes),
            "networks": [asdict(n) for n in self.networks],
        }


def object_key(obj: KubeObject) -> tuple[str, str, str, str]:
    """Identity of a Kubernetes object: ``(apiVersion group, kind, namespace, name)``."""
    group = obj["apiVersion"].rsplit("/", 1)[0] if "/" in obj["apiVersion"] else ""
    meta = obj["metadata"]
    return (group, obj["kind"], meta.get("namespace", ""), meta["name"])
