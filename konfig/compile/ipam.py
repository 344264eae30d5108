"""IP address management: the stable private range of each environment's network and how it is
split into subnets. Pure: definitions in, plans and problems out.

Layout of an environment's range ``B`` with prefix length ``p`` (8 ≤ p ≤ 19), cut into 16 equal
parts of prefix ``p + 4``:

- parts 0-7: one primary subnet per region in use (region 0 is the control plane's default
  region), with private Google access; Cloud Run Direct VPC egress takes its addresses here;
- parts 8-11: the private services access range (Cloud SQL, Memorystore), prefix
  ``max(p + 2, 16)`` at the start of part 8;
- part 12: one proxy-only subnet per region for the internal application load balancers,
  prefix ``max(p + 7, 23)``;
- parts 13-15: reserved (for example secondary ranges of GKE clusters).

So a /16 gives /20 subnets, a /18 private services range and /23 proxy-only subnets: the sizes
Google recommends. Sources: proxy-only subnets, /23 recommended, /26 minimum
(https://cloud.google.com/load-balancing/docs/proxy-only-subnets); private services access
ranges, /24 minimum, /16 recommended
(https://cloud.google.com/vpc/docs/configure-private-services-access#allocating-range);
Direct VPC egress, /26 minimum (https://cloud.google.com/run/docs/configuring/vpc-direct-vpc).

Defaults are stable: an environment's default range depends on its name only, never on the
other environments or on the domains, so adding either renumbers nothing. Well-known names
have fixed ranges (``dev`` 10.10.0.0/16, ``stage`` 10.20.0.0/16, ``prod`` 10.30.0.0/16, ...);
other names hash into 10.64.0.0/16-10.254.0.0/16. Two environments on one range is a problem
reported with both names, never a silent shift.
"""

from __future__ import annotations

import hashlib
import ipaddress
from dataclasses import dataclass

from konfig.model.controlplane import ControlPlane, parse_ipv4_network

#: Fixed default /16 of well-known environment names: 10.<slot>.0.0/16.
WELL_KNOWN_SLOTS = {
    "dev": 10, "develop": 11, "test": 15, "qa": 16, "stage": 20, "staging": 21,
    "uat": 25, "preprod": 26, "prod": 30, "prd": 31, "live": 32,
}
#: Slots other names hash into (10.64.0.0/16 to 10.254.0.0/16).
HASHED_SLOTS = range(64, 255)
#: Prefix lengths an environment range may have (see the module docstring).
MIN_PREFIX, MAX_PREFIX = 8, 19
#: Regions one environment's range can hold (parts 0-7).
MAX_REGIONS = 8


@dataclass(frozen=True)
class RegionRanges:
    """The subnets of one region: ``subnet`` (primary, private Google access) and ``proxy``
    (proxy-only, for regional internal application load balancers), as CIDR strings."""

    region: str
    subnet: str
    proxy: str


@dataclass(frozen=True)
class EnvironmentRanges:
    """The split of one environment's range: ``cidr``, per-region subnets, and ``services``
    (the private services access range). ``default`` says the range was not given."""

    environment: str
    cidr: str
    default: bool
    regions: tuple[RegionRanges, ...]
    services: str

    @property
    def proxy_ranges(self) -> list[str]:
        return [r.proxy for r in self.regions]


def default_cidr(environment: str) -> str:
    """The default /16 of ``environment``: fixed for well-known names, else from a hash of the
    name (stable across runs and machines)."""
    slot = WELL_KNOWN_SLOTS.get(environment)
    if slot is None:
        digest = int(hashlib.sha256(environment.encode()).hexdigest(), 16)
        slot = HASHED_SLOTS[digest % len(HASHED_SLOTS)]
    return f"10.{slot}.0.0/16"


def split(environment: str, cidr: str, regions: list[str], *, default: bool) -> EnvironmentRanges:
    """Cut ``cidr`` into the layout of the module docstring for ``regions`` (in order).

    Raises ``ValueError`` in plain words when the range is too small or too large, or holds
    fewer regions than given.
    """
    block = parse_ipv4_network(cidr)
    p = block.prefixlen
    if p > MAX_PREFIX:
        raise ValueError(
            f"{cidr} is too small: an environment's range must be /{MAX_PREFIX} or larger to hold "
            f"its subnets, a /24 private services range and /26 proxy-only subnets"
        )
    if p < MIN_PREFIX:
        raise ValueError(f"{cidr} is larger than /{MIN_PREFIX}")
    if len(regions) > MAX_REGIONS:
        raise ValueError(f"one range holds at most {MAX_REGIONS} regions, not {len(regions)}")
    parts = list(block.subnets(new_prefix=p + 4))
    services = next(parts[8].supernet(new_prefix=p + 2).subnets(new_prefix=max(p + 2, 16)))
    proxies = list(parts[12].subnets(new_prefix=max(p + 7, 23)))
    return EnvironmentRanges(
        environment=environment,
        cidr=str(block),
        default=default,
        regions=tuple(
            RegionRanges(region, str(parts[i]), str(proxies[i])) for i, region in enumerate(regions)
        ),
        services=str(services),
    )


def regions_in_use(cp: ControlPlane) -> list[str]:
    """Regions that get a subnet, default region first. Everything Konfig renders runs in the
    control plane's default region today."""
    return [cp.spec.gcp.default_region]


def plan_ranges(cp: ControlPlane) -> tuple[dict[str, EnvironmentRanges], list[tuple[str, str]]]:
    """The ranges of every environment of ``cp``, and the problems found as
    ``(environment, message)``: a range that cannot be split, and two environments whose
    ranges overlap (named both). Environments with a problem are left out of the result."""
    regions = regions_in_use(cp)
    given = cp.spec.network.environments
    result: dict[str, EnvironmentRanges] = {}
    problems: list[tuple[str, str]] = []
    for env in cp.spec.environments:
        explicit = given.get(env.name)
        cidr = explicit.cidr if explicit and explicit.cidr else None
        try:
            result[env.name] = split(env.name, cidr or default_cidr(env.name), regions,
                                     default=cidr is None)
        except ValueError as err:
            problems.append((env.name, str(err)))
    names = list(result)
    for i, a in enumerate(names):
        for b in names[i + 1:]:
            ra, rb = result[a], result[b]
            if ipaddress.IPv4Network(ra.cidr).overlaps(ipaddress.IPv4Network(rb.cidr)):
                how = lambda r: "default " if r.default else ""  # noqa: E731
                problems.append((b, f"range {rb.cidr} of environment {b!r} overlaps the "
                                    f"{how(ra)}range {ra.cidr} of environment {a!r}; give "
                                    f"spec.network.environments.{b}.cidr a range of its own"))
    bad = {env for env, _ in problems}
    return {k: v for k, v in result.items() if k not in bad}, problems
