"""``konfig bootstrap`` and ``konfig doctor``: the control plane's GCP foundation.

Both read the ControlPlane definition from DIR. Endpoints of local emulators (the sandbox
fakes) come from ``--*-endpoint`` options or ``KONFIG_GCP_*_ENDPOINT`` variables; without them
the real APIs are called with Application Default Credentials.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console
from rich.table import Table

from konfig.commands.core import DirArg, load_or_exit

_ENDPOINT_HELP = "Emulator endpoint (tests, sandbox); unset: the real API."
ResourceManagerOpt = Annotated[
    Optional[str],
    typer.Option(
        "--resourcemanager-endpoint",
        envvar="KONFIG_GCP_RESOURCEMANAGER_ENDPOINT",
        help=_ENDPOINT_HELP,
        show_default=False,
    ),
]
ServiceUsageOpt = Annotated[
    Optional[str],
    typer.Option(
        "--serviceusage-endpoint",
        envvar="KONFIG_GCP_SERVICEUSAGE_ENDPOINT",
        help=_ENDPOINT_HELP,
        show_default=False,
    ),
]
BillingOpt = Annotated[
    Optional[str],
    typer.Option(
        "--billing-endpoint",
        envvar="KONFIG_GCP_BILLING_ENDPOINT",
        help=_ENDPOINT_HELP,
        show_default=False,
    ),
]
ContainerOpt = Annotated[
    Optional[str],
    typer.Option(
        "--container-endpoint",
        envvar="KONFIG_GCP_CONTAINER_ENDPOINT",
        help=_ENDPOINT_HELP,
        show_default=False,
    ),
]
IamOpt = Annotated[
    Optional[str],
    typer.Option(
        "--iam-endpoint",
        envvar="KONFIG_GCP_IAM_ENDPOINT",
        help="Emulator gRPC host:port for the IAM admin API (no TLS).",
        show_default=False,
    ),
]

_STATUS_STYLE = {"OK": "green", "MISSING": "red", "UNKNOWN": "yellow"}
_OUTCOME_STYLE = {"done": "green", "skipped": "dim", "failed": "red", "not run": "yellow"}


def register(app: typer.Typer) -> None:
    """Add ``bootstrap`` and ``doctor`` to the root ``konfig`` app."""
    app.command("bootstrap")(bootstrap)
    app.command("doctor")(doctor)


def _target_and_clients(
    err: Console, path: Path, rm: str | None, su: str | None, billing: str | None, iam: str | None,
    container: str | None = None,
):
    """Load the ControlPlane from ``path`` and connect; exit 1 on bad definitions or no
    credentials."""
    from google.auth.exceptions import DefaultCredentialsError

    from konfig.gcp.clients import Endpoints, connect
    from konfig.gcp.target import BootstrapTarget

    defs = load_or_exit(path)
    target = BootstrapTarget.from_definitions(defs)
    try:
        clients = connect(
            Endpoints(resource_manager=rm, service_usage=su, billing=billing, iam=iam,
                      container=container)
        )
    except DefaultCredentialsError as error:
        err.print(f"[red]error:[/] no Google credentials: {error}")
        err.print(
            "run `gcloud auth application-default login` or set GOOGLE_APPLICATION_CREDENTIALS"
        )
        raise typer.Exit(1) from None
    return defs, target, clients


def bootstrap(
    path: DirArg,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Print the plan; change nothing.")
    ] = False,
    cluster: Annotated[
        bool, typer.Option("--cluster/--no-cluster",
                           help="Also create or adopt the control-plane GKE cluster.")
    ] = True,
    network: Annotated[
        Optional[str], typer.Option("--network", help="Network of the cluster's nodes "
                                    "(projects/P/global/networks/N); default: the definitions' "
                                    "shared network, else the project's default network.")
    ] = None,
    subnetwork: Annotated[
        Optional[str], typer.Option("--subnetwork", help="Subnetwork of the cluster's nodes "
                                    "(projects/P/regions/R/subnetworks/S).")
    ] = None,
    pods_range: Annotated[
        Optional[str], typer.Option("--pods-range", help="Secondary range of the subnetwork for "
                                    "pods (required on a Shared VPC subnetwork).")
    ] = None,
    services_range: Annotated[
        Optional[str], typer.Option("--services-range", help="Secondary range of the subnetwork "
                                    "for Services (required on a Shared VPC subnetwork).")
    ] = None,
    install: Annotated[
        bool, typer.Option("--install", help="Run the printed install commands (gcloud, kubectl "
                           "and helm must be on PATH) once the cluster is running.")
    ] = False,
    image: Annotated[
        Optional[str], typer.Option("--image", help="Operator image (repository[:tag]); default: "
                                    "spec.gitlab.cliImage.")
    ] = None,
    resourcemanager_endpoint: ResourceManagerOpt = None,
    serviceusage_endpoint: ServiceUsageOpt = None,
    billing_endpoint: BillingOpt = None,
    iam_endpoint: IamOpt = None,
    container_endpoint: ContainerOpt = None,
) -> None:
    """Create or adopt the control plane's GCP foundation (folder, project, APIs, identities),
    disable the default compute service account of the domain projects, and create or adopt the
    control-plane GKE cluster (Workload Identity, Config Connector add-on, private nodes).

    Idempotent and additive: prints the plan, applies it, waits for the cluster, and prints (or
    runs, with --install) the Helm install of Konfig, and the project number to put in
    spec.gcp.projectNumber. Exit 1 if a step failed or the plan is blocked.
    """
    from konfig.gcp import bootstrap as gcp_bootstrap
    from konfig.gcp import cluster as gcp_cluster

    out, err = Console(), Console(stderr=True)  # per run: reads the terminal width now
    defs, target, clients = _target_and_clients(
        err, path, resourcemanager_endpoint, serviceusage_endpoint, billing_endpoint, iam_endpoint,
        container_endpoint,
    )
    cluster_target = gcp_cluster.ClusterTarget(
        control_plane=target.control_plane, project_id=target.project_id,
        location=defs.control_plane.spec.gcp.default_region,
        network=network, subnetwork=subnetwork, pods_range=pods_range,
        services_range=services_range)
    try:
        plan = _plan_or_exit(err, clients, target)
        _print_plan(out, err, plan)
        hardening = _domain_hardening_plan(out, err, clients, target)
        cluster_plan = _cluster_plan(out, err, clients, cluster_target) if cluster else None
        blocked = bool(plan.blockers or (cluster_plan and cluster_plan.blockers))
        if blocked or dry_run:
            if dry_run and not blocked:
                out.print("[yellow]dry run:[/] nothing changed")
            project = plan.observed.project
            _print_project_number(out, defs, target, project.number if project else None)
            raise typer.Exit(1 if blocked else 0)
        report = gcp_bootstrap.apply(clients, plan)
        hardened = _harden(out, err, clients, hardening)
        cluster_ok = True
        if cluster_plan is not None and report.ok:
            if plan.steps:  # the project may be new: observe the cluster side again
                cluster_plan = _cluster_plan(out, err, clients, cluster_target, quiet=True)
            cluster_ok = _apply_cluster(out, err, clients, cluster_plan)
    finally:
        clients.close()
    if plan.steps:
        _print_report(out, err, report)
    _print_project_number(out, defs, target, report.project_number)
    ok = report.ok and not hardened.failed and cluster_ok
    if ok and cluster_plan is not None:
        ok = _install(out, err, defs, target, cluster_target, image=image, run=install)
    raise typer.Exit(0 if ok else 1)


def _cluster_plan(out: Console, err: Console, clients, target, *, quiet: bool = False):
    """Observe and diff the cluster; print the plan (unless ``quiet``); exit 1 on read errors."""
    from google.api_core.exceptions import GoogleAPICallError

    from konfig.gcp import cluster as gcp_cluster

    try:
        plan = gcp_cluster.diff(target, gcp_cluster.observe(clients, target))
    except GoogleAPICallError as error:
        err.print(f"[red]error:[/] cannot read the control-plane cluster: {error.message or error}")
        raise typer.Exit(1) from None
    for blocker in plan.blockers:
        err.print(f"[red]blocked:[/] {blocker}")
    if quiet:
        return plan
    for note in plan.notes:
        out.print(f"[yellow]note:[/] {note}")
    if not plan.steps and not plan.blockers:
        out.print(f"cluster {target.full_name}: [green]up to date[/]")
    for number, step in enumerate(plan.steps, 1):
        out.print(f"cluster step {number}: {step.action.value} {step.target} {step.detail}".rstrip())
    return plan


def _apply_cluster(out: Console, err: Console, clients, plan) -> bool:
    from konfig.gcp import cluster as gcp_cluster

    if plan.blockers:
        return False
    report = gcp_cluster.apply(clients, plan)
    for step, outcome, message in report.results:
        style = _OUTCOME_STYLE[outcome]
        line = f"cluster: {step.action.value} [{style}]{outcome}[/] {message}".rstrip()
        (err if outcome == "failed" else out).print(line, soft_wrap=True)
    return report.ok


def _install(out: Console, err: Console, defs, target, cluster_target, *, image, run: bool) -> bool:
    """Print the install commands, or run them with ``run``; False when a command failed."""
    import subprocess

    from konfig.gcp import cluster as gcp_cluster
    from konfig.resources import bundled_dir

    image = image or defs.control_plane.spec.gitlab.cli_image
    commands = gcp_cluster.install_commands(
        cluster_target, chart=bundled_dir("charts") / "konfig",
        gitlab_url=defs.control_plane.spec.gitlab.url, image=image,
        controller_email=target.service_account_email)
    if not run:
        out.print("Install Konfig on the cluster:")
        for command in commands:
            out.print(gcp_cluster.shell_line(command), soft_wrap=True, highlight=False, markup=False)
        return True
    if image is None:
        err.print("[red]error:[/] --install needs the operator image: --image or spec.gitlab.cliImage")
        return False
    for command in commands:
        out.print(f"$ {gcp_cluster.shell_line(command)}", soft_wrap=True, highlight=False, markup=False)
        stdin = gcp_cluster.CONFIG_CONNECTOR_MANIFEST if command[0] == "kubectl" else None
        try:
            done = subprocess.run(command, input=stdin, text=True, timeout=1800, check=False)
        except FileNotFoundError:
            err.print(f"[red]error:[/] {command[0]} is not on PATH")
            return False
        except subprocess.TimeoutExpired:
            err.print(f"[red]error:[/] {command[0]} did not finish in 30 minutes")
            return False
        if done.returncode != 0:
            err.print(f"[red]error:[/] {command[0]} exited with {done.returncode}")
            return False
    out.print("[green]Konfig is installed[/]: apply the definitions with `konfig apply`.")
    return True


def _domain_hardening_plan(out: Console, err: Console, clients, target):
    """The default compute accounts of domain projects still to disable (printed)."""
    from google.api_core.exceptions import GoogleAPICallError

    from konfig.gcp import default_sa

    try:
        accounts = default_sa.observe(clients, target.control_plane, list(target.domain_projects))
    except GoogleAPICallError as error:
        err.print(f"[yellow]warning:[/] cannot read the domain projects' default compute service "
                  f"accounts: {error.message or error}")
        return []
    changes = default_sa.plan(accounts)
    for change in changes:
        what = " and ".join(w for w, on in (("disable", change.disable),
                                             ("remove its roles/editor grant", change.remove_editor)) if on)
        out.print(f"domain project {change.account.project_id}: {what} "
                  f"({change.account.email})")
    for note in default_sa.notes(accounts):
        out.print(f"[dim]note: {note}[/]")
    return changes


def _harden(out: Console, err: Console, clients, changes):
    from konfig.gcp import default_sa

    report = default_sa.apply(clients, changes)
    for line in report.done:
        out.print(f"[green]done:[/] {line}")
    for line in report.failed:
        err.print(f"[red]error:[/] {line}")
    return report


def _plan_or_exit(err: Console, clients, target):
    """Observe and diff; on an API error print it and exit 1."""
    from google.api_core.exceptions import GoogleAPICallError

    from konfig.gcp import bootstrap as gcp_bootstrap

    try:
        observed = gcp_bootstrap.observe(clients, target)
    except GoogleAPICallError as error:
        err.print(f"[red]error:[/] cannot read the current state: {error.message or error}")
        err.print("run `konfig doctor` for what is missing")
        raise typer.Exit(1) from None
    return gcp_bootstrap.diff(target, observed)


def doctor(
    path: DirArg,
    resourcemanager_endpoint: ResourceManagerOpt = None,
    serviceusage_endpoint: ServiceUsageOpt = None,
    billing_endpoint: BillingOpt = None,
    iam_endpoint: IamOpt = None,
    container_endpoint: ContainerOpt = None,
) -> None:
    """Check, read-only, that GCP is ready for `konfig bootstrap` (or matches it): parent,
    billing account, folder, project, APIs, roles and your permissions. Exit 1 if anything is
    MISSING."""
    from konfig.gcp.doctor import missing, run_checks

    out, err = Console(), Console(stderr=True)
    _, target, clients = _target_and_clients(
        err, path, resourcemanager_endpoint, serviceusage_endpoint, billing_endpoint, iam_endpoint,
        container_endpoint,
    )
    try:
        results = run_checks(clients, target)
    finally:
        clients.close()
    table = Table(title=f"konfig doctor: control plane {target.control_plane}", show_lines=False)
    for column in ("Status", "Check", "Found", "Fix"):
        table.add_column(column, overflow="fold")
    for result in results:
        style = _STATUS_STYLE[result.status.value]
        table.add_row(
            f"[{style}]{result.status.value}[/]",
            result.title,
            result.detail,
            "" if result.status.value == "OK" else result.fix,
        )
    out.print(table)
    absent = missing(results)
    if absent:
        out.print(f"[red]{len(absent)} missing[/] of {len(results)} checks")
        raise typer.Exit(1)
    out.print(f"[green]all {len(results)} checks passed[/] (UNKNOWN ones could not be checked)")


def _print_plan(out: Console, err: Console, plan) -> None:
    target = plan.target
    out.print(
        f"Bootstrap of control plane [bold]{target.control_plane}[/]: folder "
        f"{target.folder_display_name!r} under {target.parent}, project {target.project_id}"
    )
    for blocker in plan.blockers:
        err.print(f"[red]blocked:[/] {blocker}")
    for note in plan.notes:
        out.print(f"[yellow]note:[/] {note}")
    if not plan.steps:
        out.print("[green]up to date[/]: nothing to do")
        return
    table = Table(title=f"plan: {len(plan.steps)} step{'s' if len(plan.steps) != 1 else ''}")
    for column in ("#", "Action", "Target", "Detail"):
        table.add_column(column, overflow="fold")
    for number, step in enumerate(plan.steps, 1):
        table.add_row(str(number), step.action.value, step.target, step.detail)
    out.print(table)


def _print_report(out: Console, err: Console, report) -> None:
    table = Table(title="result")
    for column in ("Action", "Outcome", "Message"):
        table.add_column(column, overflow="fold")
    for result in report.results:
        style = _OUTCOME_STYLE[result.outcome.value]
        table.add_row(
            result.step.action.value, f"[{style}]{result.outcome.value}[/]", result.message
        )
    out.print(table)
    for result in report.results:
        if result.outcome.value == "failed":
            err.print(
                f"[red]error:[/] {result.step.action.value} {result.step.target}: "
                f"{result.message}",
                soft_wrap=True,
            )


def _print_pipeline_settings(out: Console, defs, number: str | None) -> None:
    """What the definitions repository's pipeline needs (docs/gitops.md)."""
    from konfig.compile.gitlab import definitions_pipeline_settings

    settings = definitions_pipeline_settings(defs, number)
    out.print(f"\nDefinitions pipeline ({settings['project']}). `konfig sync gitlab` sets these "
              "CI/CD variables on the control-plane group:")
    for key, (value, protected) in settings["variables"].items():
        out.print(f"  {key}={value}" + (" [dim](protected)[/]" if protected else ""),
                  soft_wrap=True, highlight=False)
    if absent_keys := [k for k in ("KONFIG_WIF_PROVIDER", "KONFIG_CLI_IMAGE")
                          if k not in settings["variables"]]:
        out.print(f"  [yellow]missing:[/] {', '.join(absent_keys)} (set spec.gcp.projectNumber "
                  "and spec.gitlab.cliImage)")
    helm = " ".join(f"--set {k}={v}" for k, v in settings["helm"].items())
    out.print(f"Chart values for its RBAC: helm upgrade konfig charts/konfig {helm}",
              soft_wrap=True, highlight=False)


def _print_project_number(out: Console, defs, target, number: str | None) -> None:
    _print_pipeline_settings(out, defs, number)
    if number is None:
        return
    out.print(f"Project number: [bold]{number}[/]")
    if target.project_number != number:
        where = defs.control_plane.locate("spec.gcp")
        out.print(
            f'set spec.gcp.projectNumber: "{number}" in {where.file}:{where.line} '
            f"(ControlPlane {target.control_plane})"
        )
