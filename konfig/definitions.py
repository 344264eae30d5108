"""The validated set of definitions of one control plane, indexed for the compiler."""

from __future__ import annotations

from dataclasses import dataclass, field

from konfig.model import ControlPlane, Domain, Platform, ResourceTemplate, Workload


@dataclass
class Definitions:
    """Every definition of one control plane.

    ``platforms`` and ``domains`` are keyed by name (domain names are unique in a control
    plane: they name namespaces and projects); ``workloads`` by ``(domain, name)``;
    ``templates`` by name, bundled templates overridden by same-named ones from the tree.
    """

    control_plane: ControlPlane
    platforms: dict[str, Platform] = field(default_factory=dict)
    domains: dict[str, Domain] = field(default_factory=dict)
    workloads: dict[tuple[str, str], Workload] = field(default_factory=dict)
    templates: dict[str, ResourceTemplate] = field(default_factory=dict)
    #: Per-environment instances ``(domain, name, environment) -> Workload``, as the cluster
    #: holds them (CI applies a Workload into each domain-environment namespace, with that
    #: environment's image). When ``instances_only`` is set, a workload is rendered only in the
    #: environments that have an instance; otherwise ``workloads`` is used for every
    #: environment not overridden here.
    workload_instances: dict[tuple[str, str, str], Workload] = field(default_factory=dict)
    instances_only: bool = False
    #: Files and folders the loader skipped (hidden ones, symlinked folders), relative to the
    #: definitions folder, for the CLI to list.
    skipped_files: list[str] = field(default_factory=list)

    def domain_environments(self, domain: Domain) -> list[str]:
        """The domain's environments, in the control plane's order."""
        order = self.control_plane.environment_names
        wanted = domain.spec.environments
        return list(order) if wanted is None else [e for e in order if e in wanted]

    def environment(self, name: str):
        """The control plane's :class:`~konfig.model.Environment` called ``name``."""
        return next(e for e in self.control_plane.spec.environments if e.name == name)

    def services(self, domain: Domain) -> list[str]:
        """APIs enabled in the domain's projects: its own list, else its platform's, else the
        control plane's."""
        if domain.spec.services is not None:
            return list(domain.spec.services)
        platform = self.platforms.get(domain.spec.platform)
        if platform is not None and platform.spec.services is not None:
            return list(platform.spec.services)
        return list(self.control_plane.spec.services)

    def workload_in(self, domain: str, name: str, environment: str) -> Workload | None:
        """The workload as it runs in ``environment`` (its instance there, if any)."""
        instance = self.workload_instances.get((domain, name, environment))
        if instance is not None or self.instances_only:
            return instance
        return self.workloads.get((domain, name))

    def workloads_of(self, domain: str) -> list[Workload]:
        """Workloads of one domain, sorted by name."""
        return [w for (d, _), w in sorted(self.workloads.items()) if d == domain]
