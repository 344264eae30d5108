"""``konfig operator`` (the kopf operator, as the Helm chart runs it) and ``konfig sandbox``
(the operator against an emulated cluster and a fake GitLab, in-process)."""

from __future__ import annotations

import enum
import logging
import os
import time
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console, Group
from rich.table import Table
from rich.tree import Tree

LOG_LEVELS = ("debug", "info", "warning", "error")


def _seconds(text: str) -> float:
    from konfig.model import parse_duration

    try:
        return float(parse_duration(text))
    except ValueError as e:
        raise typer.BadParameter(str(e)) from None


def operator_command(
    gitlab_url: Annotated[str | None, typer.Option(
        "--gitlab-url", help="Base URL of the GitLab instance (token from $GITLAB_TOKEN). "
        "Without it, GitLab is not synced.")] = None,
    system_namespace: Annotated[str, typer.Option(
        "--system-namespace", help="Namespace of ControlPlane, Platform, Domain and "
        "ResourceTemplate resources.")] = "konfig-system",
    resync_interval: Annotated[str, typer.Option(
        "--resync-interval", help="Reconcile everything this often even without changes "
        "(drift repair), jittered by 10%: a whole number and s, m, h or d.")] = "10m",
    log_level: Annotated[str, typer.Option(
        "--log-level", help="debug | info | warning | error (JSON lines on stderr).")] = "info",
    health_port: Annotated[int, typer.Option(
        "--health-port", help="Port of /healthz and /readyz.")] = 8081,
    metrics_port: Annotated[int, typer.Option(
        "--metrics-port", help="Port of /metrics (Prometheus).")] = 9090,
    standalone: Annotated[bool, typer.Option(
        "--standalone", help="Run without kopf peering (exactly one operator).")] = False,
    peering: Annotated[str | None, typer.Option(
        "--peering", help="kopf peering name: one active operator among replicas.")] = None,
    leases: Annotated[bool, typer.Option(
        "--leases", help="Share the reconcile units with other replicas, one Lease "
        "(coordination.k8s.io) per unit.")] = False,
    lease_duration: Annotated[str, typer.Option(
        "--lease-duration", help="How long a unit's Lease lasts without renewal: a replica "
        "that dies loses its units after this.")] = "15s",
    gitlab_requests_per_minute: Annotated[int, typer.Option(
        "--gitlab-requests-per-minute", min=0, help="GitLab request budget (0: none); "
        "GitLab.com allows 2,000 per minute per user.")] = 2000,
    workers: Annotated[int, typer.Option(
        "--workers", min=1, max=64, help="Units reconciled in parallel (and parallel "
        "requests of one unit).")] = 8,
) -> None:
    """Run the Konfig operator: reconcile the Konfig resources of the cluster into Config
    Connector objects, namespaces, RBAC and the GitLab tree, and correct drift."""
    import asyncio

    import kopf

    from konfig.operator.app import Operator
    from konfig.operator.config import OperatorConfig

    level = log_level.lower()
    if level not in LOG_LEVELS:
        raise typer.BadParameter(f"must be one of {', '.join(LOG_LEVELS)}", param_hint="--log-level")
    if standalone and peering:
        raise typer.BadParameter("--standalone and --peering exclude each other")
    if leases and peering:
        raise typer.BadParameter("--leases and --peering exclude each other: with leases every "
                                 "replica is active on its own units")
    kopf.configure(debug=level == "debug", log_format=kopf.LogFormat.JSON, log_refkey="object")
    logging.getLogger().setLevel(level.upper())
    config = OperatorConfig(
        gitlab_url=gitlab_url, gitlab_token=os.environ.get("GITLAB_TOKEN"),
        system_namespace=system_namespace, resync_interval=_seconds(resync_interval),
        log_level=level, health_port=health_port, metrics_port=metrics_port,
        standalone=not peering, peering=peering, leases=leases,
        lease_duration=_seconds(lease_duration), workers=workers,
        gitlab_requests_per_minute=gitlab_requests_per_minute,
    )
    if gitlab_url and not config.gitlab_token:
        logging.getLogger("konfig.operator").warning(
            "GITLAB_TOKEN is not set: GitLab requests will be refused")
    asyncio.run(Operator(config).run())


class SandboxCluster(str, enum.Enum):
    """The cluster ``konfig sandbox`` runs the operator against."""

    emulator = "emulator"
    real = "real"


def sandbox_command(
    path: Annotated[Path, typer.Argument(help="Folder (or file) of definitions.",
                                         show_default=False)],
    timeout: Annotated[float, typer.Option(
        "--timeout", help="Seconds to wait for convergence.")] = 50.0,
    cluster: Annotated[SandboxCluster, typer.Option(
        "--cluster",
        help="emulator: the in-process Kubernetes API emulator (no setup); real: etcd, "
             "kube-apiserver and kube-controller-manager built by a clone's "
             "`python -m tests.cluster build`.")] = SandboxCluster.emulator,
) -> None:
    """Start an emulated control-plane cluster and a fake GitLab in-process, run the real
    operator against them, apply the definitions, wait until everything is Ready and print
    the resulting trees. Nothing outside this process is touched (``--cluster real``: child
    processes on 127.0.0.1, stopped and removed at the end)."""
    from konfig.commands.core import load_or_exit
    from konfig.operator.sandbox import RealClusterUnavailable, Sandbox, real_cluster_kube

    console = Console()
    logging.getLogger("kopf").setLevel(logging.ERROR)
    defs = load_or_exit(path)
    started = time.monotonic()
    try:
        kube = real_cluster_kube() if cluster is SandboxCluster.real else None
    except RealClusterUnavailable as err:
        console.print(f"[red]error:[/] {err}")
        raise typer.Exit(2) from None
    with console.status(f"starting the {'real' if kube else 'emulated'} cluster, fake GitLab "
                        "and the operator..."):
        sandbox = Sandbox(defs, kube=kube).start()
    try:
        with console.status("konfig apply, then waiting for the operator to converge..."):
            applied = sandbox.apply(defs)
            converged = sandbox.wait_converged(timeout)
        console.print(sandbox_report(sandbox, converged, applied,
                                     time.monotonic() - started))
    finally:
        sandbox.stop()
    if not converged.ready:
        raise typer.Exit(1)


def sandbox_report(sandbox, converged, applied, elapsed: float):
    """The sandbox's outcome as rich renderables: the cluster tree (namespaces -> kinds with
    Ready counts), the GitLab tree, and a summary."""
    cluster = Tree(f"[bold]cluster[/] ({sandbox.kube.url})")
    total = ready = 0
    for namespace, kinds in sandbox.namespace_tree().items():
        n = sum(c for c, _ in kinds.values())
        r = sum(c for _, c in kinds.values())
        total, ready = total + n, ready + r
        branch = cluster.add(f"[cyan]{namespace}[/]  {r}/{n} ready")
        for kind, (count, ok) in kinds.items():
            style = "green" if ok == count else "yellow"
            branch.add(f"[{style}]{kind}[/] {ok}/{count}")
    gitlab = Tree(f"[bold]GitLab[/] ({sandbox.gitlab.url})")
    nodes = {}
    for group, projects in sandbox.gitlab_tree().items():
        parent = nodes.get(group.rsplit("/", 1)[0], gitlab)
        nodes[group] = node = parent.add(f"[magenta]{group}[/]")
        for project in projects:
            node.add(f"{project}")
    summary = Table.grid(padding=(0, 2))
    summary.add_row("custom resources", f"{len(converged.resources)} "
                    f"({len(converged.resources) - len(converged.not_ready) - len(converged.stalled)}"
                    " Ready)")
    summary.add_row("cluster objects", f"{total} ({ready} Ready)")
    summary.add_row("GitLab", f"{len(sandbox.gitlab_tree())} groups, "
                    f"{sum(len(p) for p in sandbox.gitlab_tree().values())} projects")
    operator = sandbox.operator
    if operator is not None:
        passes = operator.loop.passes
        summary.add_row("reconcile passes", ", ".join(
            f"{p.trigger} {p.duration:.1f}s" for p in passes[:6]) + (" ..." if len(passes) > 6 else ""))
    summary.add_row("converged" if converged.ready else "[red]NOT converged[/]",
                    f"{converged.seconds:.1f}s after apply, {elapsed:.1f}s in all")
    problems = [f"[red]stalled[/] {s}" for s in converged.stalled[:10]] + [
        f"[yellow]not ready[/] {s}" for s in converged.not_ready[:10]]
    failures = [f"[red]{r.describe()}[/]" for r in applied.results if r.action in ("failed", "conflict")]
    return Group(cluster, gitlab, summary, *problems, *failures)


def register(app: typer.Typer) -> None:
    """Add ``operator`` and ``sandbox`` to the root app."""
    app.command("operator")(operator_command)
    app.command("sandbox")(sandbox_command)
