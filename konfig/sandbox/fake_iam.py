"""A stateful fake of the IAM admin API (``google.iam.admin.v1.IAM``), served over gRPC on
127.0.0.1 for the real :class:`google.cloud.iam_admin_v1.IAMClient`.

The client library has only a gRPC transport for this API, so the fake is a local gRPC server:
:func:`grpc.method_handlers_generic_handler` over the client's own request and response types
(``iam_admin_v1.types``), reached through ``grpc.insecure_channel("127.0.0.1:PORT")``.

Methods (https://cloud.google.com/iam/docs/reference/rpc/google.iam.admin.v1):
``GetServiceAccount``, ``ListServiceAccounts``, ``CreateServiceAccount``, ``DisableServiceAccount``,
``EnableServiceAccount``. Behaviour copied from IAM:

* names are ``projects/{PROJECT_ID or -}/serviceAccounts/{EMAIL or UNIQUE_ID}``;
* account IDs are 6-30 characters, ``[a-z]([-a-z0-9]*[a-z0-9])``; a second create answers
  ``ALREADY_EXISTS``; unknown accounts answer ``NOT_FOUND``;
* :meth:`FakeIam.add_default_compute_service_account` creates
  ``<number>-compute@developer.gserviceaccount.com``, as enabling Compute Engine does.

Faults are injectable (:meth:`FakeIam.fail_next`) and every call is recorded in :attr:`calls`.
"""

from __future__ import annotations

import re
import threading
from concurrent import futures
from dataclasses import dataclass
from typing import Any, Callable

import grpc
from google.cloud.iam_admin_v1.types import iam
from google.protobuf import empty_pb2

SERVICE = "google.iam.admin.v1.IAM"
_ACCOUNT_ID = re.compile(r"^[a-z]([-a-z0-9]{4,28}[a-z0-9])$")
_SA_NAME = re.compile(r"^projects/([^/]+)/serviceAccounts/([^/]+)$")


@dataclass
class _Fault:
    code: grpc.StatusCode
    message: str
    times: int


class FakeIam:
    """The fake server. ``start()`` binds an ephemeral port on 127.0.0.1; :attr:`target` is the
    ``host:port`` for ``grpc.insecure_channel``; ``stop()`` shuts down."""

    def __init__(self) -> None:
        self.calls: list[str] = []
        self._lock = threading.RLock()
        self._accounts: dict[str, iam.ServiceAccount] = {}  # by email
        self._faults: dict[str, list[_Fault]] = {}
        self._counter = 100000000000000000000
        self._server: grpc.Server | None = None
        self._port = 0

    # ----------------------------------------------------------------- lifecycle

    def start(self) -> "FakeIam":
        """Serve on an ephemeral port of 127.0.0.1; returns ``self``."""
        server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
        server.add_generic_rpc_handlers(
            (grpc.method_handlers_generic_handler(SERVICE, self._handlers()),)
        )
        self._port = server.add_insecure_port("127.0.0.1:0")
        server.start()
        self._server = server
        return self

    def stop(self) -> None:
        """Stop serving at once and release the port."""
        if self._server is not None:
            self._server.stop(grace=None).wait()
            self._server = None

    def __enter__(self) -> "FakeIam":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def target(self) -> str:
        """``127.0.0.1:PORT``: the address for ``grpc.insecure_channel``."""
        assert self._server is not None, "call start() first"
        return f"127.0.0.1:{self._port}"

    # ----------------------------------------------------------------- seeding and inspection

    def add_service_account(
        self, project_id: str, email: str, display_name: str = "", disabled: bool = False
    ) -> iam.ServiceAccount:
        """Create an account with a given email at once (no validation of the account ID)."""
        with self._lock:
            account = iam.ServiceAccount(
                name=f"projects/{project_id}/serviceAccounts/{email}",
                project_id=project_id,
                unique_id=self._next_id(),
                email=email,
                display_name=display_name,
                etag=b"MDEwMjE5MjA=",
                disabled=disabled,
            )
            self._accounts[email] = account
            return account

    def add_default_compute_service_account(self, project_id: str, project_number: str) -> None:
        """Create the Compute Engine default service account of a project, if absent
        (``<number>-compute@developer.gserviceaccount.com``; source:
        https://cloud.google.com/compute/docs/access/service-accounts#default_service_account)."""
        email = f"{project_number}-compute@developer.gserviceaccount.com"
        with self._lock:
            if email not in self._accounts:
                self.add_service_account(
                    project_id, email, "Compute Engine default service account"
                )

    def on_service_enabled(self, project_id: str, project_number: str, service: str) -> None:
        """Hook for :class:`~konfig.sandbox.fake_resourcemanager.FakeResourceManager`'s
        ``on_service_enabled``: enabling Compute Engine creates its default service account."""
        if service == "compute.googleapis.com":
            self.add_default_compute_service_account(project_id, project_number)

    def account(self, email: str) -> iam.ServiceAccount | None:
        """The account with this email, or None."""
        with self._lock:
            return self._accounts.get(email)

    def accounts(self) -> list[iam.ServiceAccount]:
        """Every account, in creation order."""
        with self._lock:
            return list(self._accounts.values())

    def fail_next(
        self, method: str, code: grpc.StatusCode, message: str = "injected", times: int = 1
    ) -> None:
        """Answer the next ``times`` calls of ``method`` (``CreateServiceAccount``, ...) with
        this status."""
        with self._lock:
            self._faults.setdefault(method, []).append(_Fault(code, message, times))

    # ----------------------------------------------------------------- handlers

    def _handlers(self) -> dict[str, grpc.RpcMethodHandler]:
        def unary(
            method: str, fn: Callable[[Any], Any], request_type: Any, response_serializer: Any
        ):
            def handle(request: Any, context: grpc.ServicerContext) -> Any:
                with self._lock:
                    self.calls.append(method)
                    fault = self._take_fault(method)
                    if fault is not None:
                        context.abort(fault.code, fault.message)
                    try:
                        return fn(request)
                    except _RpcError as err:
                        context.abort(err.code, err.message)

            return grpc.unary_unary_rpc_method_handler(
                handle,
                request_deserializer=request_type.deserialize,
                response_serializer=response_serializer,
            )

        empty = empty_pb2.Empty.SerializeToString
        return {
            "GetServiceAccount": unary(
                "GetServiceAccount",
                self._get,
                iam.GetServiceAccountRequest,
                iam.ServiceAccount.serialize,
            ),
            "ListServiceAccounts": unary(
                "ListServiceAccounts",
                self._list,
                iam.ListServiceAccountsRequest,
                iam.ListServiceAccountsResponse.serialize,
            ),
            "CreateServiceAccount": unary(
                "CreateServiceAccount",
                self._create,
                iam.CreateServiceAccountRequest,
                iam.ServiceAccount.serialize,
            ),
            "DisableServiceAccount": unary(
                "DisableServiceAccount", self._disable, iam.DisableServiceAccountRequest, empty
            ),
            "EnableServiceAccount": unary(
                "EnableServiceAccount", self._enable, iam.EnableServiceAccountRequest, empty
            ),
        }

    def _take_fault(self, method: str) -> _Fault | None:
        queue = self._faults.get(method)
        if not queue:
            return None
        fault = queue[0]
        fault.times -= 1
        if fault.times <= 0:
            queue.pop(0)
        return fault

    def _get(self, request: iam.GetServiceAccountRequest) -> iam.ServiceAccount:
        return self._find(request.name)

    def _list(self, request: iam.ListServiceAccountsRequest) -> iam.ListServiceAccountsResponse:
        project = request.name.removeprefix("projects/")
        accounts = [a for a in self._accounts.values() if a.project_id == project]
        return iam.ListServiceAccountsResponse(accounts=accounts)

    def _create(self, request: iam.CreateServiceAccountRequest) -> iam.ServiceAccount:
        if not request.name.startswith("projects/") or request.name.count("/") != 1:
            raise _RpcError(
                grpc.StatusCode.INVALID_ARGUMENT, f"invalid project name {request.name!r}"
            )
        project_id = request.name.split("/")[1]
        if not _ACCOUNT_ID.match(request.account_id):
            raise _RpcError(
                grpc.StatusCode.INVALID_ARGUMENT,
                f"Account ID {request.account_id!r} must be 6-30 characters of [a-z0-9-], "
                "starting with a letter",
            )
        email = f"{request.account_id}@{project_id}.iam.gserviceaccount.com"
        if email in self._accounts:
            raise _RpcError(
                grpc.StatusCode.ALREADY_EXISTS,
                f"Service account {request.account_id} already exists within project "
                f"{request.name}.",
            )
        account = self.add_service_account(project_id, email, request.service_account.display_name)
        account.description = request.service_account.description
        return account

    def _disable(self, request: iam.DisableServiceAccountRequest) -> empty_pb2.Empty:
        self._find(request.name).disabled = True
        return empty_pb2.Empty()

    def _enable(self, request: iam.EnableServiceAccountRequest) -> empty_pb2.Empty:
        self._find(request.name).disabled = False
        return empty_pb2.Empty()

    def _find(self, name: str) -> iam.ServiceAccount:
        match = _SA_NAME.match(name)
        if not match:
            raise _RpcError(
                grpc.StatusCode.INVALID_ARGUMENT, f"invalid service account name {name!r}"
            )
        project, key = match.groups()
        for account in self._accounts.values():
            if key in (account.email, account.unique_id) and project in ("-", account.project_id):
                return account
        raise _RpcError(grpc.StatusCode.NOT_FOUND, f"Service account {name} does not exist.")

    def _next_id(self) -> str:
        self._counter += 1
        return str(self._counter)


class _RpcError(Exception):
    def __init__(self, code: grpc.StatusCode, message: str) -> None:
        super().__init__(message)
        self.code, self.message = code, message
