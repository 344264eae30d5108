"""Settings of the operator, as parsed from ``konfig operator``'s flags (see charts/konfig)."""

from __future__ import annotations

from dataclasses import dataclass, field

from konfig.compile.state import SYSTEM_NAMESPACE


@dataclass(frozen=True)
class OperatorConfig:
    """Everything the operator needs. Times are in seconds.

    * ``gitlab_url``/``gitlab_token``: the GitLab instance (``None`` URL: GitLab sync off);
      ``gitlab_retry_attempts`` bounds the retries of one GitLab request;
      ``gitlab_requests_per_minute`` is the GitLab request budget (0: none).
    * ``resync_interval``: every object is reconciled this often even without changes (drift
      repair), spread by ``resync_jitter`` (a fraction: 0.1 = up to 10% earlier or later);
      every ``gitlab_full_every``-th resync reads GitLab at full depth, the others read its
      shape and a slice of the details.
    * ``debounce``: quiet time after a change before a pass starts, so a burst of changes
      (``konfig apply``) makes one pass.
    * ``requeue_initial``/``requeue_max``: how soon to look again while children are not
      ready yet (doubling); ``retry_initial``/``retry_max``: backoff after a failed pass
      (doubling, with jitter).
    * ``kubeconfig``/``context``/``server``: how to reach the cluster (default: in-cluster
      service account, else the kubeconfig); ``server`` is a bare URL (the sandbox).
    * ``health_port``/``metrics_port``: ``None`` to disable, 0 for an ephemeral port.
    * ``standalone``/``peering``: kopf peering (one active operator among replicas).
    * ``leases``: share the reconcile units with other replicas through one Lease per unit
      (:mod:`konfig.operator.leases`), ``lease_duration`` seconds each; ``identity`` names
      this replica (default: ``$POD_NAME``, else the host name and process id).
    """

    gitlab_url: str | None = None
    gitlab_token: str | None = field(default=None, repr=False)
    gitlab_retry_attempts: int = 8
    gitlab_requests_per_minute: int = 2000
    system_namespace: str = SYSTEM_NAMESPACE
    resync_interval: float = 600.0
    resync_jitter: float = 0.1
    gitlab_full_every: int = 6
    debounce: float = 0.5
    requeue_initial: float = 0.5
    requeue_max: float = 30.0
    retry_initial: float = 2.0
    retry_max: float = 300.0
    workers: int = 8
    log_level: str = "info"
    health_host: str = "0.0.0.0"
    health_port: int | None = 8081
    metrics_port: int | None = 9090
    standalone: bool = True
    peering: str | None = None
    kubeconfig: str | None = None
    context: str | None = None
    server: str | None = None
    leases: bool = False
    lease_duration: float = 15.0
    identity: str | None = None
