"""A local sandbox: the emulated control-plane cluster and a fake GitLab, in-process, with the
real operator running against them (``konfig sandbox DIR``, the e2e tests and the benchmark).

Nothing here is faked on Konfig's side: ``konfig apply`` logic writes the custom resources over
HTTP with the real kubernetes client, the kopf operator reconciles them over HTTP, and the GitLab
adapter talks to the fake GitLab with python-gitlab. The emulator's fake Config Connector marks
Config Connector objects Ready and ConfigConnectorContexts healthy.
"""

from __future__ import annotations

import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from konfig.compile import compile_definitions
from konfig.compile.state import DesiredState
from konfig.definitions import Definitions
from konfig.kube import crds as konfig_crds
from konfig.kube.client import KubeClient, RetrySettings
from konfig.kube.custom_resources import ApplyResult, apply_definitions
from konfig.kube.kinds import shipped_kcc_crds
from konfig.load import load_definitions
from konfig.model import API_VERSION
from konfig.operator.app import Operator, OperatorThread
from konfig.operator.cluster import KINDS
from konfig.operator.config import OperatorConfig
from konfig.operator.status import child_readiness

SANDBOX_TOKEN = "konfig-sandbox-token"


@dataclass
class Convergence:
    """Where the control plane stands: resources by readiness, and objects by namespace."""

    ready: bool
    seconds: float
    resources: list[dict[str, Any]] = field(default_factory=list)
    not_ready: list[str] = field(default_factory=list)
    stalled: list[str] = field(default_factory=list)


def _condition(resource: dict[str, Any], kind: str) -> dict[str, Any] | None:
    return next((c for c in (resource.get("status") or {}).get("conditions") or []
                 if c.get("type") == kind), None)


def resource_ready(resource: dict[str, Any]) -> bool:
    """Ready=True for the resource's current generation."""
    ready = _condition(resource, "Ready")
    return bool(ready and ready.get("status") == "True"
                and ready.get("observedGeneration") == resource["metadata"].get("generation"))


class Sandbox:
    """Emulated cluster + fake GitLab + the operator. Use as a context manager::

        with Sandbox(defs) as sandbox:
            sandbox.apply(defs)
            sandbox.wait_converged()

    ``kube`` is the cluster: the in-process emulator (default, with its fake Config
    Connector) or any object with the same interface and a ``connection`` property giving the
    ``OperatorConfig`` fields that reach it (the real test cluster:
    ``tests.cluster.backend.RealKube``, see :func:`real_cluster_kube`).
    """

    def __init__(self, defs: Definitions, *, resync_interval: float = 300.0,
                 operator: bool = True, config: dict[str, Any] | None = None,
                 gitlab_options: dict[str, Any] | None = None, kube: Any = None) -> None:
        from konfig.sandbox.fake_gitlab import FakeGitLab
        from konfig.sandbox.kube_api import KubeEmulator

        self.defs = defs
        self.kube = kube if kube is not None else KubeEmulator(fake_config_connector=True)
        self.gitlab = FakeGitLab(**(gitlab_options or {}))
        self._with_operator = operator
        self._config_overrides = {"resync_interval": resync_interval, "debounce": 0.2,
                                  "health_port": 0, "metrics_port": 0, "health_host": "127.0.0.1",
                                  "gitlab_retry_attempts": 3, **(config or {})}
        self.client: KubeClient | None = None
        self.operator: Operator | None = None
        self.thread: OperatorThread | None = None

    # -- lifecycle -------------------------------------------------------------------------------

    def start(self) -> "Sandbox":
        self.kube.start()
        self.kube.install_crds([*shipped_kcc_crds(), *konfig_crds.all_crds()])
        self.gitlab.start()
        self.gitlab.add_token(SANDBOX_TOKEN)
        parent = self.defs.control_plane.spec.gitlab.parent_group
        for depth in range(1, parent.count("/") + 2):
            path = "/".join(parent.split("/")[:depth])
            if self.gitlab.group(path) is None:
                self.gitlab.seed_group(path)
        self.client = KubeClient.connect(**self._connection(), retry=RetrySettings(attempts=3, initial=0.05))
        if self._with_operator:
            self.start_operator()
        return self

    def _connection(self) -> dict[str, Any]:
        """``server`` (the emulator: a bare URL) or ``kubeconfig`` (a real cluster)."""
        return getattr(self.kube, "connection", None) or {"server": self.kube.url}

    def operator_config(self, **overrides: Any) -> OperatorConfig:
        values = {"gitlab_url": self.gitlab.url, "gitlab_token": SANDBOX_TOKEN,
                  **self._connection(), **self._config_overrides, **overrides}
        return OperatorConfig(**values)

    def start_operator(self, **overrides: Any) -> Operator:
        """Start (or restart) the operator in a thread; returns it."""
        self.operator = Operator(self.operator_config(**overrides))
        self.thread = OperatorThread(self.operator).start()
        return self.operator

    def stop_operator(self) -> None:
        if self.thread is not None:
            self.thread.stop()
            self.thread = None

    def stop(self) -> None:
        self.stop_operator()
        if self.client is not None:
            self.client.close()
        self.gitlab.stop()
        self.kube.stop()

    def __enter__(self) -> "Sandbox":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- actions -------------------------------------------------------------------------------

    def apply(self, defs: Definitions | None = None, *, state: DesiredState | None = None
              ) -> ApplyResult:
        """``konfig apply``: the definitions' Namespaces and custom resources, pruning
        removed ones."""
        assert self.client is not None
        defs = defs or self.defs
        self.defs = defs
        return apply_definitions(self.client, defs, state or compile_definitions(defs))

    def resources(self) -> list[dict[str, Any]]:
        assert self.client is not None
        out: list[dict[str, Any]] = []
        for kind in KINDS:
            out += self.client.list(self.client.kinds.get(API_VERSION, kind))
        return out

    def convergence(self, started: float) -> Convergence:
        resources = self.resources()
        not_ready, stalled = [], []
        for r in resources:
            name = f"{r['kind']} {r['metadata'].get('namespace')}/{r['metadata']['name']}"
            cond = _condition(r, "Stalled")
            if cond and cond.get("status") == "True":
                stalled.append(f"{name}: {cond.get('message')}")
            elif not resource_ready(r):
                ready = _condition(r, "Ready") or {}
                not_ready.append(f"{name}: {ready.get('reason', 'no status yet')}")
        return Convergence(not not_ready and not stalled and bool(resources),
                           time.monotonic() - started, resources, not_ready, stalled)

    def wait_converged(self, timeout: float = 60.0, *, poll: float = 0.1,
                       until: Callable[[Convergence], bool] | None = None) -> Convergence:
        """Poll until every resource is Ready for its generation (or ``until`` holds, or
        resources stay Stalled for a second while the operator is idle and its last pass read
        every resource there is); returns the last
        :class:`Convergence` (``ready`` False on timeout)."""
        started = time.monotonic()
        stalled_since: float | None = None
        while True:
            state = self.convergence(started)
            idle = self.operator is None or self.operator.loop.idle
            # Verdicts count only once a pass has read what the cluster holds now: a pass that
            # read a half-applied set stalls, or reports Ready, for a state already gone.
            current = self._last_pass_saw(state.resources)
            if state.stalled and idle and current:
                stalled_since = stalled_since or time.monotonic()
            else:
                stalled_since = None
            stuck = stalled_since is not None and time.monotonic() - stalled_since > 1.0
            done = until(state) if until else ((state.ready and current) or stuck)
            if done or state.seconds > timeout:
                return state
            time.sleep(poll)

    def _last_pass_saw(self, resources: list[dict[str, Any]]) -> bool:
        return self.operator is None or self.operator.loop.saw(resources)

    # -- what there is -------------------------------------------------------------------------

    def namespace_tree(self) -> dict[str, dict[str, tuple[int, int]]]:
        """``namespace -> kind -> (objects, ready)`` of Konfig's objects in the cluster
        (``(cluster)`` for cluster-scoped ones)."""
        assert self.client is not None
        from konfig.kube.sync import prune_kinds

        cp = self.defs.control_plane.name
        tree: dict[str, dict[str, list[int]]] = defaultdict(lambda: defaultdict(lambda: [0, 0]))
        for info in prune_kinds(self.client):
            for obj in self.client.list(info, label_selector=f"konfig-control-plane={cp}"):
                ns = obj["metadata"].get("namespace") or "(cluster)"
                cell = tree[ns][obj["kind"]]
                cell[0] += 1
                cell[1] += child_readiness(obj)[0]
        return {ns: {k: (v[0], v[1]) for k, v in sorted(kinds.items())}
                for ns, kinds in sorted(tree.items())}

    def gitlab_tree(self) -> dict[str, list[str]]:
        """``group full path -> [project paths]`` under the control-plane group."""
        root = self.defs.control_plane.spec.gitlab.parent_group
        out: dict[str, list[str]] = {}
        for group in self.gitlab.groups_under(root):
            out[group] = []
        for project in self.gitlab.projects_under(root):
            out.setdefault(project.rsplit("/", 1)[0], []).append(project.rsplit("/", 1)[1])
        return out


def object_counts(sandbox: Sandbox) -> Counter[str]:
    """Konfig's objects in the cluster, by kind."""
    counts: Counter[str] = Counter()
    for kinds in sandbox.namespace_tree().values():
        for kind, (n, _) in kinds.items():
            counts[kind] += n
    return counts


class RealClusterUnavailable(RuntimeError):
    """``--cluster real`` cannot run here: no clone's test cluster, or its binaries unbuilt."""


def real_cluster_kube() -> Any:
    """A real control plane (etcd, kube-apiserver, kube-controller-manager with the CRDs
    and a Config Connector stand-in) owned by the sandbox: started with it, removed with it.
    It is the test cluster of a Konfig clone (``tests/cluster``), so it needs a clone
    (an editable install) whose binaries are built (``python -m tests.cluster build``).
    Raises :class:`RealClusterUnavailable` saying which is missing."""
    try:
        from tests.cluster import binaries, konfig_cluster
        from tests.cluster.backend import RealKube
    except ImportError as err:
        raise RealClusterUnavailable(
            "--cluster real runs the test cluster of a Konfig clone: install Konfig from a clone "
            f"with `pip install -e .` ({err})") from err
    if not binaries().complete:
        raise RealClusterUnavailable(
            f"the real cluster's binaries are not built ({binaries().directory}): run "
            "`python -m tests.cluster build` in the clone (several minutes, once per machine)")
    return RealKube(konfig_cluster(), owned=True)


def run_sandbox(path: str | Path, *, timeout: float = 50.0, cluster: str = "emulator"
                ) -> tuple[Sandbox, Convergence, ApplyResult]:
    """Load ``path``, start a sandbox on ``cluster`` (``emulator`` or ``real``), apply,
    wait for convergence. The caller prints and stops the returned sandbox. Raises
    :class:`~konfig.errors.DefinitionError` and :class:`RealClusterUnavailable`."""
    defs = load_definitions(path)
    state = compile_definitions(defs)
    kube = real_cluster_kube() if cluster == "real" else None
    sandbox = Sandbox(defs, kube=kube).start()
    try:
        applied = sandbox.apply(defs, state=state)
        converged = sandbox.wait_converged(timeout)
    except BaseException:
        sandbox.stop()
        raise
    return sandbox, converged, applied
