"""Rich renderings of problems and of a desired state, for the terminal."""

from __future__ import annotations

from collections import Counter, defaultdict
from typing import Iterable

from rich.console import Group
from rich.table import Table
from rich.text import Text
from rich.tree import Tree

from konfig.compile.state import (
    LABEL_DOMAIN,
    LABEL_ENVIRONMENT,
    LABEL_PLATFORM,
    SYSTEM_NAMESPACE,
    DesiredState,
)
from konfig.errors import Problem

ROLE_NAMES = {20: "Reporter", 30: "Developer", 40: "Maintainer", 50: "Owner"}


def problems_text(problems: Iterable[Problem]) -> Text:
    """One line per problem, ``file:line: field: message`` (the form editors and CI logs link
    to), coloured but never wrapped into columns."""
    text = Text()
    for p in problems:
        text.append(f"{p.location.file}:{p.location.line}", style="cyan")
        text.append(": ")
        if p.location.field:
            text.append(p.location.field, style="yellow")
            text.append(": ")
        text.append(p.message)
        text.append("\n")
    text.rstrip()
    return text


def _counts(kinds: Counter) -> str:
    return ", ".join(f"{n} {k}" for k, n in sorted(kinds.items()))


def plan_tree(state: DesiredState) -> Group:
    """The plan as three trees (GCP, GitLab, cluster) followed by a table of counts."""
    budgets = _budgets(state)
    return Group(_gcp_tree(state), _network_tree(state), _gitlab_tree(state), _cluster_tree(state),
                 *([budgets] if budgets is not None else []), _summary(state),
                 *(f"[yellow]note:[/] {n}" for n in state.notes))


def _budgets(state: DesiredState) -> Table | None:
    """The billing budgets, one row each; None when there is none."""
    from konfig.compile.budgets import THRESHOLDS, budgets_of

    rows = budgets_of(list(state.kubernetes))
    if not rows:
        return None
    marks = "/".join(f"{round(t * 100)}" for t in THRESHOLDS)
    table = Table(title=f"Budgets (monthly; alerts at {marks} % of actual and forecasted spend)",
                  header_style="bold")
    for column in ("level", "name", "amount", "projects", "notifies"):
        table.add_column(column, justify="right" if column in ("amount", "projects") else "left",
                         overflow="fold")
    for row in rows:
        table.add_row(row["level"], row["name"], row["amount"], row["projects"], row["notify"])
    return table


def _gcp_tree(state: DesiredState) -> Tree:
    kcc = [o for o in state.kubernetes if o["apiVersion"].split("/")[0].endswith("cnrm.cloud.google.com")
           and o["kind"] != "ConfigConnectorContext"]
    folders = {o["metadata"]["name"]: o for o in kcc if o["kind"] == "Folder"}
    projects = [o for o in kcc if o["kind"] == "Project"]
    by_env: dict[tuple[str, str], Counter] = defaultdict(Counter)
    for o in kcc:
        labels = o["metadata"]["labels"]
        if o["kind"] not in ("Folder", "Project") and LABEL_ENVIRONMENT in labels:
            by_env[(labels.get(LABEL_DOMAIN), labels[LABEL_ENVIRONMENT])][o["kind"]] += 1
    root = Tree(f"[bold]GCP[/] ({len(folders)} folders, {len(projects)} projects, "
                f"{len(kcc)} Config Connector objects)")
    children: dict[str | None, list[str]] = defaultdict(list)
    for name, folder in folders.items():
        parent = folder["spec"].get("folderRef", {}).get("name")
        children[parent if parent in folders else None].append(name)
    nodes: dict[str, Tree] = {}

    def add(parent_node: Tree, name: str) -> None:
        folder = folders[name]
        external = folder["spec"].get("organizationRef") or folder["spec"].get("folderRef") or {}
        suffix = f" [dim](in {external['external']})[/]" if "external" in external else ""
        nodes[name] = parent_node.add(f"📁 [bold]{folder['spec']['displayName']}[/]{suffix}")
        for child in sorted(children[name], key=lambda c: folders[c]["spec"]["displayName"]):
            add(nodes[name], child)

    for top in sorted(children[None]):
        add(root, top)
    for project in projects:
        labels = project["metadata"]["labels"]
        parent = nodes.get(project["spec"]["folderRef"]["name"], root)
        counts = by_env.get((labels.get(LABEL_DOMAIN), labels.get(LABEL_ENVIRONMENT)))
        detail = f" [dim]{_counts(counts)}[/]" if counts else ""
        parent.add(f"🗂  project [green]{project['spec']['resourceID']}[/]{detail}")
    return root


def _network_tree(state: DesiredState) -> Tree:
    """Per environment: the Shared VPC and its ranges, the load balancers with their paths,
    and every workload with its URL."""
    root = Tree(f"[bold]Network[/] ({len(state.networks)} Shared VPCs, one per environment)")
    for net in state.networks:
        env = root.add(f"🌐 [bold]{net.environment}[/]: network [green]{net.network}[/] {net.cidr} "
                       f"in host project [green]{net.host_project}[/]")
        for s in net.subnets:
            env.add(f"subnet {s.region} {s.subnet} [dim](proxy-only {s.proxy_only}, Cloud NAT)[/]")
        env.add(f"private services access {net.services_range} [dim](Cloud SQL, Memorystore)[/]")
        for kind, host, title in (("external", net.external_host, "external application load balancer"),
                                  ("internal", net.internal_host, "internal application load balancer")):
            if host is None:
                continue
            lb = env.add(f"⚖  {title} [cyan]{host}[/]")
            for r in (r for r in net.routes if r.load_balancer == kind):
                lb.add(f"{r.path} → {r.domain}/{r.workload}")
        workloads = env.add(f"workloads ({len(net.routes)})")
        for r in net.routes:
            url = r.url or "[dim]its Cloud Run URL, once the service exists[/]"
            workloads.add(f"{r.domain}/{r.workload} [dim]({r.visibility})[/] {url}")
    return root


def _gitlab_tree(state: DesiredState) -> Tree:
    tree = state.gitlab
    root = Tree(f"[bold]GitLab[/] {tree.url} ({len(tree.groups)} groups, {len(tree.projects)} projects)"
                f" under [cyan]{tree.root_full_path}[/] (adopted)")
    nodes = {tree.root_full_path: root}
    for g in tree.groups:
        links = ", ".join(f"{l.saml_group_name}→{ROLE_NAMES.get(l.access_level, l.access_level)}"
                          for l in g.saml_group_links)
        extra = f" [dim]SAML: {links}[/]" if links else ""
        if g.variables:
            extra += f" [dim]{len(g.variables)} CI variables[/]"
        nodes[g.full_path] = nodes.get(g.parent_full_path, root).add(f"👥 [bold]{g.path}[/]{extra}")
    for p in tree.projects:
        protected = f" [dim]protected envs: {', '.join(p.protected_environments)}[/]" if p.protected_environments else ""
        node = nodes.get(p.namespace_full_path, root).add(
            f"📦 {p.path} [dim]({p.kind})[/]{protected}")
        if p.kind in _REPOSITORIES:
            node.add(f"[dim]{_REPOSITORIES[p.kind]}[/]")
    return root


#: What the repository of each Konfig-made project holds and runs (docs/gitops.md).
_REPOSITORIES = {
    "control-plane": "repository: the definitions (starter from gitlab-templates/control-plane, "
                     "pushed once); pipeline: validate → plan (konfig diff) on merge requests, "
                     "apply on the protected default branch",
    "workload-template": "repository: gitlab-templates/workload (kept in sync); pipeline: build "
                         "→ deploy on main, promote by commit on v* tags",
}


def _cluster_tree(state: DesiredState) -> Tree:
    by_ns: dict[str, Counter] = defaultdict(Counter)
    annotations = {}
    for o in state.kubernetes:
        if o["kind"] == "Namespace":
            annotations[o["metadata"]["name"]] = o["metadata"].get("annotations", {})
            continue
        by_ns[o["metadata"].get("namespace", "(cluster)")][o["kind"]] += 1
    root = Tree(f"[bold]Cluster[/] ({len(annotations)} namespaces, {len(state.kubernetes)} objects)")
    for ns in sorted(by_ns, key=lambda n: (n != SYSTEM_NAMESPACE, n)):
        project = annotations.get(ns, {}).get("cnrm.cloud.google.com/project-id", "")
        total = sum(by_ns[ns].values())
        root.add(f"[bold]{ns}[/] → {project}: {total} objects [dim]({_counts(by_ns[ns])})[/]")
    return root


def _summary(state: DesiredState) -> Table:
    kinds = Counter(o["kind"] for o in state.kubernetes)
    platforms = {o["metadata"]["labels"].get(LABEL_PLATFORM) for o in state.kubernetes} - {None}
    table = Table(title="Totals", show_header=True, header_style="bold")
    table.add_column("what")
    table.add_column("count", justify="right")
    table.add_row("platforms", str(len(platforms)))
    for kind, n in sorted(kinds.items()):
        table.add_row(kind, str(n))
    table.add_row("GitLab groups", str(len(state.gitlab.groups)))
    table.add_row("GitLab projects", str(len(state.gitlab.projects)))
    table.add_row("[bold]Kubernetes objects[/]", f"[bold]{len(state.kubernetes)}[/]")
    return table
