"""Routes: which load balancer serves each workload environment, at which path and URL.
Pure: definitions in, routes and problems out; the compiler, ``konfig validate`` and
``konfig plan`` share it.

Per the contract (spec/definitions.md, "Ingress and path routing"): ``external`` workloads are
served by the environment's global external application load balancer at
``https://<external host><path>``; ``platform`` and ``controlplane`` workloads by its regional
internal application load balancer at ``http://internal.<env>.<host><path>``; ``domain``
workloads by no load balancer. The path is ``/<platform>/<domain>/<workload>`` unless
``spec.ingress.path`` names another, and is unique per environment and load balancer.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from konfig.definitions import Definitions
from konfig.errors import Location
from konfig.model import Environment, Workload
from konfig.model.controlplane import ControlPlane


class LoadBalancer(str, Enum):
    """The load balancers of one environment."""

    EXTERNAL = "external"  # global external application load balancer (EXTERNAL_MANAGED)
    INTERNAL = "internal"  # regional internal application load balancer (INTERNAL_MANAGED)


#: The load balancer of each visibility; ``domain`` has none.
LOAD_BALANCER_OF = {
    "external": LoadBalancer.EXTERNAL,
    "platform": LoadBalancer.INTERNAL,
    "controlplane": LoadBalancer.INTERNAL,
}
#: Base domain of the internal host when the control plane names no external host.
INTERNAL_FALLBACK_SUFFIX = "internal"


@dataclass(frozen=True)
class Route:
    """One workload environment on one load balancer. ``url`` is what callers use (scheme,
    host and path, no trailing slash)."""

    domain: str
    workload: str
    environment: str
    load_balancer: LoadBalancer
    path: str
    host: str

    @property
    def url(self) -> str:
        scheme = "https" if self.load_balancer is LoadBalancer.EXTERNAL else "http"
        return f"{scheme}://{self.host}{self.path}"


def external_host(cp: ControlPlane, environment: Environment) -> str | None:
    """The external host of ``environment``: its override, else the control plane's host for
    production environments and ``<env>.<host>`` for the others; ``None`` without a host."""
    override = cp.spec.ingress.environments.get(environment.name)
    if override is not None and override.host:
        return override.host
    host = cp.spec.ingress.host
    if host is None:
        return None
    return host if environment.production else f"{environment.name}.{host}"


def internal_host(cp: ControlPlane, environment: Environment) -> str:
    """``internal.<env>.<host>``, in a private DNS zone on the environment's network; without
    an external host, ``internal.<env>.<control plane>.internal``."""
    base = cp.spec.ingress.host or f"{cp.name}.{INTERNAL_FALLBACK_SUFFIX}"
    return f"internal.{environment.name}.{base}"


def workload_path(workload: Workload) -> str:
    """The workload's path: ``spec.ingress.path`` or ``/<platform>/<domain>/<workload>``."""
    spec = workload.spec
    return spec.ingress.path or f"/{spec.platform}/{spec.domain}/{workload.name}"


@dataclass(frozen=True)
class RouteProblem:
    """A route that cannot be made: where (the workload's field) and why."""

    where: Location
    message: str


def plan_routes(defs: Definitions) -> tuple[dict[tuple[str, str, str], Route], list[RouteProblem]]:
    """Every route, keyed by ``(domain, workload, environment)``, and the problems: an
    external workload without an external host, and two workloads on one path of one load
    balancer (both named). A workload with a problem gets no route there."""
    cp = defs.control_plane
    routes: dict[tuple[str, str, str], Route] = {}
    problems: list[RouteProblem] = []
    claimed: dict[tuple[str, LoadBalancer, str], tuple[str, str]] = {}
    for (domain_name, name) in sorted(defs.workloads):
        domain = defs.domains.get(domain_name)
        if domain is None:
            continue  # reported by the cross-reference checks
        for env_name in defs.domain_environments(domain):
            workload = defs.workload_in(domain_name, name, env_name)
            if workload is None:
                continue
            lb = LOAD_BALANCER_OF.get(workload.spec.ingress.visibility)
            if lb is None:
                continue
            environment = defs.environment(env_name)
            host = (external_host(cp, environment) if lb is LoadBalancer.EXTERNAL
                    else internal_host(cp, environment))
            if host is None:
                problems.append(RouteProblem(
                    workload.locate("spec.ingress.visibility"),
                    "an external workload needs the external host of the load balancer: set "
                    "spec.ingress.host on the ControlPlane (e.g. api.example.com)"))
                continue
            path = workload_path(workload)
            owner = claimed.get((env_name, lb, path))
            if owner is not None:
                problems.append(RouteProblem(
                    workload.locate("spec.ingress.path" if workload.spec.ingress.path
                                    else "metadata.name"),
                    f"path {path} of the {lb.value} load balancer in environment {env_name!r} "
                    f"is already taken by workload {owner[1]!r} of domain {owner[0]!r}"))
                continue
            claimed[(env_name, lb, path)] = (domain_name, name)
            routes[(domain_name, name, env_name)] = Route(domain_name, name, env_name, lb, path, host)
    return routes, _unique(problems)


def _unique(problems: list[RouteProblem]) -> list[RouteProblem]:
    """One problem per place and message (a clash repeats in every environment)."""
    return list({(p.where.file, p.where.line, p.where.field, p.message): p for p in problems}.values())
