"""Run etcd, kube-apiserver and kube-controller-manager as child processes on 127.0.0.1.

The API server serves TLS with a generated CA, authenticates bearer tokens from a static token
file (the admin and named identities), client certificates signed by the CA (any identity,
minted on demand) and ServiceAccount tokens (its own signing key), and authorises with RBAC
only. The controller manager runs the controllers a control-plane cluster needs for
Konfig's objects: namespace lifecycle, garbage collection, service accounts and their tokens,
the root CA publisher and ClusterRole aggregation. No scheduler, no kubelet: Pods are never run.

Flags: https://kubernetes.io/docs/reference/command-line-tools-reference/kube-apiserver/ and
.../kube-controller-manager/; the controller names are kube-controller-manager's
``--controllers`` list (``kube-controller-manager --help``).
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import secrets
import shutil
import signal
import socket
import ssl
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

import yaml

from tests.cluster.build import Binaries, ensure_built
from tests.cluster.pki import CertificateAuthority, write_service_account_key

HOST = "127.0.0.1"
ADMIN = "konfig-test-admin"
#: Controllers of kube-controller-manager that act on objects Konfig writes (and fill the
#: aggregated ClusterRoles such as ``view`` and ``edit``).
CONTROLLERS = ("namespace-controller", "garbage-collector-controller", "serviceaccount-controller",
               "serviceaccount-token-controller", "root-ca-certificate-publisher-controller",
               "clusterrole-aggregation-controller")
SERVICE_ACCOUNT_ISSUER = "https://kubernetes.default.svc.cluster.local"
#: Requests of ServiceAccounts (the operator running as the chart's) are audited with their
#: verb, resource and decision, so tests can see what an identity used; others are not.
#: https://kubernetes.io/docs/tasks/debug/debug-cluster/audit/
AUDIT_POLICY = {"apiVersion": "audit.k8s.io/v1", "kind": "Policy", "omitStages": ["RequestReceived"],
                "rules": [{"level": "Metadata", "userGroups": ["system:serviceaccounts"]},
                          {"level": "None"}]}


class ClusterError(RuntimeError):
    """The cluster could not start: a port taken, a process that exited, a timeout. The
    message names the cause and ends with the tail of the failing process's log."""


@dataclass(frozen=True)
class Identity:
    """A named identity of the token file: Kubernetes user ``name`` in ``groups``."""

    name: str
    groups: tuple[str, ...] = ()
    token: str = field(default_factory=lambda: secrets.token_urlsafe(24), repr=False)


def _b64(text: str) -> str:
    import base64

    return base64.b64encode(text.encode()).decode()


def free_port() -> int:
    """A TCP port on 127.0.0.1 nobody listens on now (the kernel's ephemeral choice)."""
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return sock.getsockname()[1]


def check_port(port: int) -> None:
    """Raise :class:`ClusterError` if ``port`` on 127.0.0.1 is taken."""
    with socket.socket() as sock:
        try:
            sock.bind((HOST, port))
        except OSError as err:
            raise ClusterError(f"port {port} on {HOST} is taken ({err.strerror}): "
                               "choose another or stop what listens there") from err


def _die_with_parent() -> None:  # pragma: no cover - runs in the child before exec
    """Children get SIGTERM when the process that started them dies, even by SIGKILL, so a
    killed test run leaves no API server behind (Linux prctl PR_SET_PDEATHSIG)."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)
    os.setpgrp()  # a Ctrl-C in the terminal reaches the runner, which stops children in order


@dataclass
class _Child:
    name: str
    process: subprocess.Popen
    log: Path
    url: str = ""  # where it serves, when the runner talks to it (etcd)

    def tail(self, lines: int = 25) -> str:
        try:
            text = self.log.read_text(errors="replace").splitlines()
        except OSError:
            return ""
        return "\n".join(text[-lines:])


class Cluster:
    """A real control plane: etcd + kube-apiserver + kube-controller-manager.

    ``with Cluster() as cluster:`` starts it (building the binaries first if needed) and stops
    it, removing its data, at exit. ``port`` fixes the API server's port (default: a free
    one); ``identities`` are the token file's named users besides the admin;
    ``crds`` are installed before the controller manager starts, so its garbage collector
    watches their kinds from the start; ``config_connector`` runs the stand-in of
    :mod:`tests.cluster.kcc` for the Config Connector kinds among them. Attributes once started: :attr:`server` (URL),
    :attr:`kubeconfig` (admin), :attr:`ca_path`, :attr:`workdir`.
    """

    def __init__(self, *, port: int | None = None, identities: Iterable[Identity] = (),
                 crds: Iterable[dict[str, Any]] = (), binaries: Binaries | None = None,
                 workdir: Path | None = None, start_timeout: float = 120.0,
                 config_connector: bool = False) -> None:
        self.port = port
        self.config_connector = config_connector
        self.stand_in: Any = None
        self.identities = {i.name: i for i in identities}
        self.crds = list(crds)
        self._binaries = binaries
        self._given_workdir = workdir
        self.start_timeout = start_timeout
        self.admin = Identity(ADMIN, ("system:masters",))
        self.workdir: Path | None = None
        self.server = ""
        self.ca: CertificateAuthority | None = None
        self._children: list[_Child] = []
        self._etcd_url = ""

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self) -> "Cluster":
        """Start etcd, the API server (waits for ``/readyz``), install :attr:`crds` (waits
        until Established), start the controller manager (waits until it created the
        ``default`` ServiceAccount). Raises :class:`ClusterError` or
        :class:`~tests.cluster.build.ToolchainError`; on failure everything started is
        stopped."""
        binaries = self._binaries or ensure_built()
        if self.port is not None:
            check_port(self.port)
        self.workdir = self._given_workdir or Path(tempfile.mkdtemp(
            prefix="konfig-cluster-", dir="/dev/shm" if os.access("/dev/shm", os.W_OK) else None))
        self.workdir.mkdir(parents=True, exist_ok=True)
        try:
            self._write_credentials()
            deadline = time.monotonic() + self.start_timeout
            etcd = self._start_etcd(binaries)
            self._etcd_url = etcd.url
            self._wait(etcd, deadline, lambda: self._etcd_healthy(etcd.url), "etcd /health")
            self._start_apiserver(binaries, etcd.url)
            apiserver = self._children[-1]
            self._wait(apiserver, deadline, self._apiserver_ready, "kube-apiserver /readyz")
            if self.crds:
                self.install_crds(self.crds, timeout=max(deadline - time.monotonic(), 1.0))
            self._start_controller_manager(binaries)
            self._wait(self._children[-1], deadline, self._default_service_account,
                       "kube-controller-manager (the default ServiceAccount)")
            if self.config_connector:
                from tests.cluster.kcc import ConfigConnectorStandIn, config_connector_kinds

                self.stand_in = ConfigConnectorStandIn(
                    self.server, self.admin.token, str(self.ca_path),
                    config_connector_kinds(self.crds)).start(max(deadline - time.monotonic(), 5.0))
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        """Stop the children (newest first: SIGTERM, then SIGKILL after 3 s: the data is
        thrown away, so a graceful shutdown buys nothing) and remove the data directory.
        Idempotent."""
        if self.stand_in is not None:
            self.stand_in.stop()
            self.stand_in = None
        for child in reversed(self._children):
            if child.process.poll() is None:
                child.process.terminate()
        for child in reversed(self._children):
            try:
                child.process.wait(3)
            except subprocess.TimeoutExpired:
                child.process.kill()
                child.process.wait(5)
        self._children.clear()
        if self.workdir is not None and self._given_workdir is None:
            shutil.rmtree(self.workdir, ignore_errors=True)
        self.workdir = None

    def __enter__(self) -> "Cluster":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def exited(self) -> list[str]:
        """Names of children that exited (empty while the cluster is healthy)."""
        return [c.name for c in self._children if c.process.poll() is not None]

    # -- credentials -------------------------------------------------------------------------

    @property
    def ca_path(self) -> Path:
        assert self.workdir is not None
        return self.workdir / "ca.crt"

    @property
    def kubeconfig(self) -> Path:
        """The admin kubeconfig (token of user ``konfig-test-admin`` in ``system:masters``)."""
        assert self.workdir is not None
        return self.workdir / "admin.kubeconfig"

    def token(self, name: str) -> str:
        """The bearer token of a token-file identity (``ADMIN`` or one of :attr:`identities`).
        Raises ``KeyError`` for an unknown name."""
        return self.admin.token if name == ADMIN else self.identities[name].token

    def write_kubeconfig(self, path: Path | str, *, token: str | None = None,
                         cert: bytes | None = None, key: bytes | None = None,
                         user: str = "user") -> Path:
        """A kubeconfig for this cluster with a bearer ``token`` or a client ``cert``/``key``
        (PEM), embedded; ``path``'s folder must exist."""
        import base64

        def b64(data: bytes) -> str:
            return base64.b64encode(data).decode()

        credentials: dict[str, str] = {}
        if token:
            credentials["token"] = token
        if cert and key:
            credentials |= {"client-certificate-data": b64(cert), "client-key-data": b64(key)}
        config = {
            "apiVersion": "v1", "kind": "Config", "current-context": "konfig-test",
            "clusters": [{"name": "konfig-test", "cluster": {
                "server": self.server, "certificate-authority-data": b64(self.ca_path.read_bytes())}}],
            "users": [{"name": user, "user": credentials}],
            "contexts": [{"name": "konfig-test", "context": {"cluster": "konfig-test", "user": user}}],
        }
        path = Path(path)
        path.write_text(yaml.safe_dump(config, sort_keys=False))
        path.chmod(0o600)
        return path

    def kubeconfig_for(self, user: str, groups: Iterable[str] = (), *, path: Path | str | None = None
                       ) -> Path:
        """A kubeconfig authenticating as ``user`` in ``groups`` with a client certificate
        minted now by the cluster's CA (no restart: any identity, e.g. a CI service
        account's email). Written to ``path`` or into the cluster's data folder."""
        assert self.ca is not None and self.workdir is not None
        cert, key = self.ca.issue(user, organizations=tuple(groups))
        target = Path(path) if path else self.workdir / f"user-{secrets.token_hex(4)}.kubeconfig"
        return self.write_kubeconfig(target, cert=cert, key=key, user=user)

    def service_account_token(self, namespace: str, name: str, *, seconds: int = 3600) -> str:
        """A token of ServiceAccount ``namespace/name`` from the TokenRequest API (the one a
        Pod's projected volume would get). Raises :class:`ClusterError` on an API error."""
        body = {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest",
                "spec": {"expirationSeconds": seconds}}
        reply = self.request("POST", f"/api/v1/namespaces/{namespace}/serviceaccounts/{name}/token",
                             body)
        return reply["status"]["token"]

    def audit_events(self, user: str | None = None) -> list[dict[str, Any]]:
        """Audit events (``audit.k8s.io/v1`` Event dicts; watches at ResponseStarted) of the
        audited identities (ServiceAccounts), of ``user`` only if given, oldest first."""
        assert self.workdir is not None
        path = self.workdir / "audit.log"
        if not path.exists():
            return []
        events = []
        for line in path.read_text().splitlines():
            with contextlib.suppress(ValueError):
                event = json.loads(line)
                if event.get("stage") in ("ResponseStarted", "ResponseComplete") and (
                        user is None or event.get("user", {}).get("username") == user):
                    events.append(event)
        return events

    def wipe_namespaces(self, names: Iterable[str]) -> int:
        """Remove namespaces and everything in them straight from etcd (finalizers, the
        namespace controller's 5 s grace period and its sweep of every resource type are
        skipped); the API server's watch caches see the deletions as usual. For resetting test
        state between tests only. Returns the number of keys deleted."""
        doomed = set(names)
        keys = []
        for key in self._etcd_keys("/registry/"):
            parts = key.split("/")[2:]  # '', 'registry', resource or group, ...
            if (parts[:1] == ["namespaces"] and parts[-1] in doomed) or (
                    len(parts) >= 3 and parts[-2] in doomed):
                keys.append(key)
        for start in range(0, len(keys), 100):  # etcd's --max-txn-ops defaults to 128
            self._etcd("/v3/kv/txn", {"success": [
                {"requestDeleteRange": {"key": _b64(k)}} for k in keys[start:start + 100]]})
        return len(keys)

    def _etcd_keys(self, prefix: str) -> list[str]:
        import base64

        end = prefix[:-1] + chr(ord(prefix[-1]) + 1)
        reply = self._etcd("/v3/kv/range", {"key": _b64(prefix), "range_end": _b64(end), "keys_only": True})
        return [base64.b64decode(kv["key"]).decode() for kv in reply.get("kvs") or []]

    def _etcd(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        """One call of etcd's JSON gateway (https://etcd.io/docs/v3.5/dev-guide/api_grpc_gateway/)."""
        request = urllib.request.Request(self._etcd_url + path, data=json.dumps(body).encode(),
                                         method="POST", headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=30) as reply:
            return json.loads(reply.read())

    # -- admin HTTP ----------------------------------------------------------------------------

    def request(self, method: str, path: str, body: Any = None, *, token: str | None = None,
                content_type: str = "application/json", timeout: float = 30.0) -> Any:
        """One request as the admin (or ``token``); returns parsed JSON. Raises
        :class:`ClusterError` with the server's status message on a non-2xx answer."""
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(self.server + path, data=data, method=method, headers={
            "Authorization": f"Bearer {token or self.admin.token}", "Accept": "application/json",
            **({"Content-Type": content_type} if data is not None else {})})
        try:
            with urllib.request.urlopen(request, timeout=timeout, context=self._ssl()) as reply:
                raw = reply.read()
        except urllib.error.HTTPError as err:
            message = err.read().decode(errors="replace")
            with contextlib.suppress(ValueError):
                message = json.loads(message).get("message", message)
            raise ClusterError(f"{method} {path}: {err.code} {message}") from err
        return json.loads(raw) if raw else None

    def install_crds(self, crds: Iterable[dict[str, Any]], *, timeout: float = 60.0) -> None:
        """Server-side apply each CRD, then wait until every one is Established."""
        names = []
        for crd in crds:
            name = crd["metadata"]["name"]
            self.request("PATCH", f"/apis/apiextensions.k8s.io/v1/customresourcedefinitions/{name}"
                         "?fieldManager=konfig-test-cluster&force=true", crd,
                         content_type="application/apply-patch+yaml")
            names.append(name)
        deadline = time.monotonic() + timeout
        pending = set(names)
        while pending:
            items = self.request("GET", "/apis/apiextensions.k8s.io/v1/customresourcedefinitions")["items"]
            for item in items:
                if any(c["type"] == "Established" and c["status"] == "True"
                       for c in (item.get("status") or {}).get("conditions") or []):
                    pending.discard(item["metadata"]["name"])
            if pending and time.monotonic() > deadline:
                raise ClusterError(f"CRDs not Established after {timeout:.0f}s: {sorted(pending)[:5]}")
            if pending:
                time.sleep(0.2)

    def _ssl(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=str(self.ca_path))

    # -- children ------------------------------------------------------------------------------

    def _write_credentials(self) -> None:
        assert self.workdir is not None
        self.ca = CertificateAuthority.create()
        self.ca_path.write_bytes(self.ca.cert_pem)
        cert, key = self.ca.issue("kube-apiserver", server=True,
                                  hosts=(HOST, "localhost", "kubernetes", "kubernetes.default",
                                         "kubernetes.default.svc", "10.0.0.1"))
        (self.workdir / "apiserver.crt").write_bytes(cert)
        (self.workdir / "apiserver.key").write_bytes(key)
        write_service_account_key(self.workdir / "sa.key", self.workdir / "sa.pub")
        lines = [f'{i.token},{i.name},{i.name},"{",".join(i.groups)}"'
                 for i in (self.admin, *self.identities.values())]
        (self.workdir / "tokens.csv").write_text("\n".join(lines) + "\n")
        (self.workdir / "tokens.csv").chmod(0o600)
        (self.workdir / "audit-policy.yaml").write_text(yaml.safe_dump(AUDIT_POLICY))

    def _spawn(self, name: str, argv: list[str]) -> _Child:
        assert self.workdir is not None
        log = self.workdir / f"{name}.log"
        with open(log, "wb") as out:
            process = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT,
                                       stdin=subprocess.DEVNULL, preexec_fn=_die_with_parent)
        child = _Child(name, process, log)
        self._children.append(child)
        return child

    def _start_etcd(self, binaries: Binaries) -> _Child:
        assert self.workdir is not None
        client, peer = free_port(), free_port()
        child = self._spawn("etcd", [
            str(binaries.path("etcd")), "--name=konfig-test", f"--data-dir={self.workdir / 'etcd'}",
            f"--listen-client-urls=http://{HOST}:{client}", f"--advertise-client-urls=http://{HOST}:{client}",
            f"--listen-peer-urls=http://{HOST}:{peer}", f"--initial-advertise-peer-urls=http://{HOST}:{peer}",
            f"--initial-cluster=konfig-test=http://{HOST}:{peer}",
            # Test data, thrown away at the end: no fsync (etcd's own integration tests do so).
            "--unsafe-no-fsync", "--log-level=warn", "--quota-backend-bytes=2147483648"])
        child.url = f"http://{HOST}:{client}"
        return child

    def _start_apiserver(self, binaries: Binaries, etcd_url: str) -> None:
        assert self.workdir is not None
        port = self.port or free_port()
        self.server = f"https://{HOST}:{port}"
        w = self.workdir
        self._spawn("kube-apiserver", [
            str(binaries.path("kube-apiserver")), f"--etcd-servers={etcd_url}",
            f"--bind-address={HOST}", f"--advertise-address={HOST}", f"--secure-port={port}",
            f"--tls-cert-file={w / 'apiserver.crt'}", f"--tls-private-key-file={w / 'apiserver.key'}",
            f"--client-ca-file={self.ca_path}", f"--token-auth-file={w / 'tokens.csv'}",
            "--authorization-mode=RBAC",
            f"--service-account-issuer={SERVICE_ACCOUNT_ISSUER}",
            f"--service-account-key-file={w / 'sa.pub'}",
            f"--service-account-signing-key-file={w / 'sa.key'}",
            "--service-cluster-ip-range=10.0.0.0/24",
            # No kubelets or Pods: the default/kubernetes Endpoints would need a routable IP.
            "--endpoint-reconciler-type=none",
            f"--cert-dir={w / 'apiserver-certs'}", "--profiling=false", "--v=0",
            "--shutdown-delay-duration=0s", "--shutdown-watch-termination-grace-period=0s",
            f"--audit-policy-file={w / 'audit-policy.yaml'}", f"--audit-log-path={w / 'audit.log'}",
            "--audit-log-format=json", "--audit-log-mode=blocking"])

    def _start_controller_manager(self, binaries: Binaries) -> None:
        assert self.workdir is not None
        w = self.workdir
        config = self.write_kubeconfig(w / "controller-manager.kubeconfig", token=self.admin.token,
                                       user=ADMIN)
        self._spawn("kube-controller-manager", [
            str(binaries.path("kube-controller-manager")), f"--kubeconfig={config}",
            f"--controllers={','.join(CONTROLLERS)}", "--leader-elect=false", "--secure-port=0",
            f"--service-account-private-key-file={w / 'sa.key'}", f"--root-ca-file={self.ca_path}",
            # Deleting a namespace costs two requests per served resource (about 300 with the
            # Config Connector CRDs); the default client limit of 20 per second would make each
            # take seconds.
            "--kube-api-qps=1000", "--kube-api-burst=2000", "--concurrent-namespace-syncs=20",
            "--v=0"])
        self.write_kubeconfig(self.kubeconfig, token=self.admin.token, user=ADMIN)

    # -- readiness -------------------------------------------------------------------------

    def _wait(self, child: _Child, deadline: float, ready, what: str) -> None:
        while True:
            if child.process.poll() is not None:
                raise ClusterError(f"{child.name} exited with {child.process.returncode} before "
                                   f"{what} answered:\n{child.tail()}")
            with contextlib.suppress(OSError, ClusterError, ValueError, KeyError):
                if ready():
                    return
            if time.monotonic() > deadline:
                raise ClusterError(f"{what} did not answer within {self.start_timeout:.0f}s:\n"
                                   f"{child.tail()}")
            time.sleep(0.1)

    @staticmethod
    def _etcd_healthy(url: str) -> bool:
        with urllib.request.urlopen(f"{url}/health", timeout=2) as reply:
            return json.loads(reply.read()).get("health") == "true"

    def _apiserver_ready(self) -> bool:
        request = urllib.request.Request(self.server + "/readyz",
                                         headers={"Authorization": f"Bearer {self.admin.token}"})
        try:
            with urllib.request.urlopen(request, timeout=2, context=self._ssl()) as reply:
                return reply.status == 200
        except urllib.error.HTTPError:
            return False

    def _default_service_account(self) -> bool:
        return bool(self.request("GET", "/api/v1/namespaces/default/serviceaccounts/default",
                                 timeout=2))
