"""Day-2 commands: ``konfig promote`` and ``konfig break-glass request|list|revoke``.

Thin shell: parse options, build a kubernetes client, call :mod:`konfig.kube.promote` or
:mod:`konfig.kube.breakglass`, print. Exit status 0 when done (or nothing to do), 1 when Konfig
refuses (the reason is printed) or the cluster cannot answer.
"""

from __future__ import annotations

import json
import os
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Iterator, NoReturn

import kubernetes.client
import kubernetes.config
import typer
from rich.console import Console
from rich.table import Table

from konfig.breakglass import BreakGlassRefused, Grant
from konfig.compile.state import SYSTEM_NAMESPACE
from konfig.kube import breakglass as kube_breakglass
from konfig.kube import promote as kube_promote
from konfig.kube.promote import ClusterStateError
from konfig.promotion import PromotionRefused

Kubeconfig = Annotated[
    Path | None,
    typer.Option("--kubeconfig", help="Kubeconfig file (default: $KUBECONFIG, then ~/.kube/config)."),
]
Context = Annotated[str | None, typer.Option("--context", help="Kubeconfig context (default: current).")]
SystemNamespace = Annotated[
    str,
    typer.Option("--system-namespace", help="Namespace of the ControlPlane, Platforms and Domains."),
]
Actor = Annotated[
    str | None,
    typer.Option(
        "--actor",
        help="Who is doing this, for the records (default: $GITLAB_USER_LOGIN, else $USER).",
    ),
]
DryRun = Annotated[bool, typer.Option("--dry-run", help="Decide and print; change nothing.")]


def _actor(actor: str | None) -> str:
    who = actor or os.environ.get("GITLAB_USER_LOGIN") or os.environ.get("USER")
    if not who:
        raise typer.BadParameter("nobody to record: pass --actor", param_hint="--actor")
    return who


def _client(kubeconfig: Path | None, context: str | None) -> kubernetes.client.ApiClient:
    try:
        return kube_promote.api_client_from(str(kubeconfig) if kubeconfig else None, context)
    except kubernetes.config.ConfigException as exc:
        _fail(f"cannot reach the cluster: {exc}")


def _fail(message: str) -> NoReturn:
    Console(stderr=True).print(f"[bold red]error:[/] {message}", highlight=False)
    raise typer.Exit(1)


def _refused(exc: PromotionRefused | BreakGlassRefused) -> NoReturn:
    Console(stderr=True).print(f"[bold red]refused[/] ({exc.code}): {exc.reason}", highlight=False)
    raise typer.Exit(1)


def _warn(warnings: list[str]) -> None:
    for warning in warnings:
        Console(stderr=True).print(f"[yellow]warning:[/] {warning}", highlight=False)


@contextmanager
def _cluster(kubeconfig, context) -> Iterator[kubernetes.client.ApiClient]:
    """A client for the command's cluster call; refusals, cluster-state problems and API
    errors become a clear message and exit 1, and the client is closed in every case."""
    client = _client(kubeconfig, context)
    try:
        yield client
    except (PromotionRefused, BreakGlassRefused) as exc:
        _refused(exc)
    except ClusterStateError as exc:
        _fail(str(exc))
    except kubernetes.client.ApiException as exc:
        _api_error(exc)
    finally:
        client.close()


def _api_error(exc: kubernetes.client.ApiException) -> NoReturn:
    _fail(f"the Kubernetes API answered {exc.status} {exc.reason}: {_api_message(exc)}")


def _api_message(exc: kubernetes.client.ApiException) -> str:
    try:
        return json.loads(exc.body or "{}").get("message", "") or ""
    except (ValueError, AttributeError):
        return str(exc.body or "")


# --------------------------------------------------------------------------- promote


def promote_command(
    workload: Annotated[str, typer.Argument(help="Workload name (metadata.name).")],
    to: Annotated[str, typer.Option("--to", help="Environment to promote into.")],
    from_: Annotated[
        str | None,
        typer.Option("--from", help="Environment to promote from; must be the one right before --to."),
    ] = None,
    domain: Annotated[
        str | None,
        typer.Option(
            "--domain",
            envvar="KONFIG_DOMAIN",
            help="The workload's domain (default: $KONFIG_DOMAIN, else inferred when the name is "
            "unique in the cluster).",
        ),
    ] = None,
    actor: Actor = None,
    dry_run: DryRun = False,
    kubeconfig: Kubeconfig = None,
    context: Context = None,
    namespace_system: SystemNamespace = SYSTEM_NAMESPACE,
    commit: Annotated[str | None, typer.Option(
        "--commit",
        help="Release mode: promote this commit's build and workload.yaml (a tag pipeline "
        "passes $CI_COMMIT_SHA).")] = None,
    tag: Annotated[str | None, typer.Option(
        "--tag", help="The release tag, for the records (default: $CI_COMMIT_TAG).")] = None,
    repository: Annotated[str | None, typer.Option(
        "--repository", help="Release mode: the image repository (default: $KONFIG_IMAGE_NAME).")
    ] = None,
    workload_file: Annotated[Path, typer.Option(
        "--workload-file", help="Release mode: the commit's Workload; ${KONFIG_WORKLOAD}, "
        "${KONFIG_PLATFORM} and ${KONFIG_DOMAIN} are filled from the environment.")
    ] = Path("workload.yaml"),
    image: Annotated[str | None, typer.Option(
        "--image", help="Release mode: the image@sha256:... expected; refused unless it is the "
        "commit's build.")] = None,
    dotenv: Annotated[Path | None, typer.Option(
        "--dotenv", help="Write IMAGE_REF and IMAGE_DIGEST of the promoted image here (a "
        "GitLab dotenv report for the release job).")] = None,
) -> None:
    """Promote to the next environment: the image digest running in the previous one, or,
    with --commit (release tags), that commit's own build and workload.yaml.

    Default mode reads the digest from the Workload's status in the previous environment (it
    must be Ready for its current generation), sets it as spec.image of the Workload in --to
    (creating that Workload from the source's spec if there is none). Release mode looks up
    the digest the default-branch build recorded for the commit (<repository>:git-<commit>,
    registry token from $KONFIG_REGISTRY_TOKEN), refuses a commit never built or another
    digest, requires the previous environment (past the first) to run it, and applies the
    commit's Workload with that digest. Both record who, what and when in annotations and a
    Promoted Event.
    """
    who = _actor(actor)
    if commit:
        release = _release(commit, tag, repository, workload_file, image)
        with _cluster(kubeconfig, context) as client:
            report = kube_promote.promote_release(
                client, workload=workload, to_environment=to, release=release, actor=who,
                now=datetime.now(UTC), domain=domain, system_namespace=namespace_system,
                dry_run=dry_run)
    else:
        with _cluster(kubeconfig, context) as client:
            report = kube_promote.promote(
                client, workload=workload, to_environment=to, from_environment=from_,
                domain=domain, actor=who, now=datetime.now(UTC),
                system_namespace=namespace_system, dry_run=dry_run,
            )
    promotion = report.promotion
    if dotenv is not None:
        dotenv.write_text(f"IMAGE_REF={promotion.image}\nIMAGE_DIGEST={promotion.digest}\n",
                          encoding="utf-8")
    out = Console(highlight=False)
    where = f"{promotion.workload} in {promotion.target_namespace}"
    if not promotion.changed:
        out.print(f"{where} already runs {promotion.digest}: nothing to promote.")
    elif dry_run:
        action = "create" if promotion.create else "update"
        out.print(f"dry run: would {action} {where}: {promotion.previous_image or '(none)'} -> {promotion.image}")
    else:
        out.print(
            f"Promoted {promotion.digest} from {promotion.source_environment} to "
            f"{promotion.target_environment}: {where} {'created' if promotion.create else 'updated'}"
            f" (by {promotion.actor} at {promotion.annotations()['konfig.dev/promoted-at']})."
        )
        out.print("The operator rolls it out; watch its Ready condition.")
    _warn(report.warnings)


def _release(commit: str, tag: str | None, repository: str | None, workload_file: Path,
             image: str | None):
    """The :class:`~konfig.promotion.Release` of ``commit``: its build record from the
    registry and its workload.yaml. Exits 1 with the reason when either cannot be read."""
    import yaml

    from konfig.gcp.registry import RegistryError, tag_digest
    from konfig.promotion import BUILD_TAG_PREFIX, DIGEST_RE, Release

    repository = repository or os.environ.get("KONFIG_IMAGE_NAME")
    if not repository:
        _fail("release mode needs --repository (or $KONFIG_IMAGE_NAME): where the build "
              "pushed the image")
    requested = None
    if image:
        match = DIGEST_RE.match(image)
        if match is None or match.group("repository") != repository:
            _fail(f"--image {image!r} is not {repository}@sha256:<digest>")
        requested = match.group("digest")
    try:
        text = workload_file.read_text(encoding="utf-8")
    except OSError as e:
        _fail(f"cannot read {workload_file}: {e.strerror or e}")
    for key in ("KONFIG_WORKLOAD", "KONFIG_PLATFORM", "KONFIG_DOMAIN"):
        if os.environ.get(key):
            text = text.replace("${" + key + "}", os.environ[key])
    try:
        document = yaml.safe_load(text)
    except yaml.YAMLError as e:
        _fail(f"{workload_file} is not YAML: {e}")
    try:
        recorded = tag_digest(repository, f"{BUILD_TAG_PREFIX}{commit}",
                              token=os.environ.get("KONFIG_REGISTRY_TOKEN"))
    except RegistryError as e:
        _fail(f"cannot read the build record of {commit[:12]}: {e}")
    return Release(commit=commit, tag=tag or os.environ.get("CI_COMMIT_TAG") or None,
                   repository=repository, recorded=recorded, workload=document or {},
                   requested=requested)


# --------------------------------------------------------------------------- break-glass


def request_command(
    domain: Annotated[
        str | None, typer.Argument(help="Domain whose environment's project gets the grant (with --env).")
    ] = None,
    env: Annotated[str | None, typer.Option("--env", help="Environment whose project gets the grant.")] = None,
    platform: Annotated[
        str | None, typer.Option("--platform", help="Grant on this platform's folder instead.")
    ] = None,
    control_plane: Annotated[
        bool, typer.Option("--control-plane", help="Grant on the control-plane project instead.")
    ] = False,
    reason: Annotated[str, typer.Option("--reason", help="Why (incident, ticket); recorded everywhere.")] = "",
    duration: Annotated[
        str, typer.Option("--duration", help="How long, e.g. 30m, 1h; at most spec.breakGlass.maxDuration.")
    ] = "1h",
    group: Annotated[
        list[str] | None,
        typer.Option("--group", help="Grant to this owner group only (repeatable; default: every owner group)."),
    ] = None,
    actor: Actor = None,
    dry_run: DryRun = False,
    kubeconfig: Kubeconfig = None,
    context: Context = None,
    namespace_system: SystemNamespace = SYSTEM_NAMESPACE,
) -> None:
    """Grant the break-glass roles to the owner groups of one level, until an expiry enforced
    by IAM itself (a condition on request.time): a domain environment's project (DOMAIN
    --env ENV), a platform's folder (--platform NAME) or the control-plane project
    (--control-plane). Owner groups declared at that level or above get it."""
    level = _level(domain, env, platform, control_plane)
    if not reason.strip():
        raise typer.BadParameter("a reason is required: it is the audit trail", param_hint="--reason")
    who = _actor(actor)
    with _cluster(kubeconfig, context) as client:
        report = kube_breakglass.request_grant(
            client, domain=domain, environment=env, platform=platform, level=level,
            duration=duration, reason=reason, actor=who, now=datetime.now(UTC), groups=group or None,
            system_namespace=namespace_system, dry_run=dry_run,
        )
    g = report.grant
    out = Console(highlight=False)
    prefix = "dry run: would grant" if dry_run else "Granted"
    out.print(f"{prefix} break-glass [bold]{g.id}[/bold] on {g.where}")
    out.print(f"  roles:   {', '.join(g.roles)}")
    out.print(f"  groups:  {', '.join(g.groups)}")
    out.print(f"  expires: {_time(g.expires_at)} ({duration})")
    if not dry_run:
        out.print(f"Config Connector applies it shortly. Revoke early: konfig break-glass revoke {g.id}")
    _warn(report.warnings)


def _level(domain: str | None, env: str | None, platform: str | None, control_plane: bool) -> str:
    """Which level a request names; exactly one of DOMAIN --env, --platform, --control-plane."""
    chosen = [name for name, given in (("domain", domain is not None), ("platform", platform is not None),
                                       ("controlplane", control_plane)) if given]
    if len(chosen) != 1:
        raise typer.BadParameter("name one level: DOMAIN --env ENV, --platform NAME or --control-plane")
    if chosen[0] == "domain" and not env:
        raise typer.BadParameter("a domain grant needs --env", param_hint="--env")
    if chosen[0] != "domain" and env:
        raise typer.BadParameter("--env goes with a DOMAIN only", param_hint="--env")
    return chosen[0]


def list_command(
    domain: Annotated[str | None, typer.Argument(help="Only this domain's grants.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
    kubeconfig: Kubeconfig = None,
    context: Context = None,
    namespace_system: SystemNamespace = SYSTEM_NAMESPACE,
) -> None:
    """List break-glass grants, active and expired (expired ones last until the operator's next
    resync or a revoke)."""
    with _cluster(kubeconfig, context) as client:
        grants = kube_breakglass.list_grants(client, domain=domain, system_namespace=namespace_system)
    now = datetime.now(UTC)
    out = Console(highlight=False)
    if as_json:
        out.print_json(data=[_grant_json(g, now) for g in grants])
        return
    if not grants:
        out.print("No break-glass grants.")
        return
    table = Table(title="Break-glass grants")
    for header in ("ID", "LEVEL", "DOMAIN", "ENV", "ON"):
        table.add_column(header, no_wrap=True)
    table.add_column("GROUPS", overflow="fold")
    table.add_column("ROLES", overflow="fold")
    table.add_column("REQUESTED BY")
    for header in ("EXPIRES", "STATE", "APPLIED"):
        table.add_column(header, no_wrap=True)
    table.add_column("REASON", min_width=12)
    for g in grants:
        state = g.state(now)
        table.add_row(
            g.id, g.level, g.domain or g.platform or g.control_plane, g.environment,
            g.project_id or f"folder of {g.platform}", "\n".join(g.groups), "\n".join(g.roles),
            g.requested_by, _time(g.expires_at),
            f"[green]{state}[/green]" if state == "active" else f"[dim]{state}[/dim]",
            f"{g.ready}/{len(g.objects)}", g.reason,
        )
    out.print(table)


def revoke_command(
    grant_id: Annotated[str | None, typer.Argument(help="Grant id (bg-...), from `konfig break-glass list`.")] = None,
    expired: Annotated[
        bool, typer.Option("--expired", help="Instead of one grant, remove every expired grant.")
    ] = False,
    actor: Actor = None,
    kubeconfig: Kubeconfig = None,
    context: Context = None,
    namespace_system: SystemNamespace = SYSTEM_NAMESPACE,
) -> None:
    """Revoke a break-glass grant now (delete its IAM bindings) and record it."""
    if (grant_id is None) == (not expired):
        raise typer.BadParameter("give a grant id or --expired (not both)")
    who = _actor(actor)
    now = datetime.now(UTC)
    with _cluster(kubeconfig, context) as client:
        if expired:
            reports = kube_breakglass.remove_expired_grants(
                client, system_namespace=namespace_system, now=now, actor=who,
                controller=kube_breakglass.CLI_CONTROLLER,
            )
        else:
            assert grant_id is not None
            reports = [kube_breakglass.revoke_grant(client, grant_id, actor=who, now=now,
                                                    system_namespace=namespace_system)]
    out = Console(highlight=False)
    if not reports:
        out.print("No expired grants.")
    for report in reports:
        g = report.grant
        verb = "Revoked" if report.state == "revoked" else "Removed expired"
        out.print(f"{verb} break-glass {g.id} ({g.where}, {len(report.objects)} bindings).")
        _warn(report.warnings)


def _time(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%d %H:%M:%SZ")


def _grant_json(g: Grant, now: datetime) -> dict:
    return {
        "id": g.id, "level": g.level, "platform": g.platform, "domain": g.domain,
        "environment": g.environment, "project": g.project_id,
        "groups": list(g.groups), "roles": list(g.roles), "requestedBy": g.requested_by,
        "requestedAt": g.requested_at.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "expiresAt": g.expires_at.strftime("%Y-%m-%dT%H:%M:%SZ"), "reason": g.reason,
        "state": g.state(now), "objects": list(g.objects), "ready": g.ready,
    }


def register(app: typer.Typer) -> None:
    """Add ``promote`` and the ``break-glass`` group to the root ``konfig`` app."""
    app.command("promote")(promote_command)
    break_glass = typer.Typer(
        name="break-glass",
        help="Time-bound owner access to a domain environment, a platform or the control plane, "
        "for incidents.",
        no_args_is_help=True,
    )
    break_glass.command("request")(request_command)
    break_glass.command("list")(list_command)
    break_glass.command("revoke")(revoke_command)
    app.add_typer(break_glass, name="break-glass")
