"""A minimal OCI distribution (Docker Registry v2) server on 127.0.0.1: tags -> digests, the
``HEAD /v2/<name>/manifests/<tag>`` answer with ``Docker-Content-Digest``, Basic auth with
user ``oauth2accesstoken`` (as Artifact Registry takes an access token), and a request log."""

from __future__ import annotations

import base64
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class FakeRegistry:
    def __init__(self, token: str = "ya29.test-token") -> None:
        self.token = token
        self.tags: dict[tuple[str, str], str] = {}  # (name, tag) -> digest
        self.requests: list[tuple[str, str]] = []
        registry = self

        class Handler(BaseHTTPRequestHandler):
            def do_HEAD(self) -> None:  # noqa: N802 - http.server's naming
                registry.requests.append(("HEAD", self.path))
                expected = "Basic " + base64.b64encode(
                    f"oauth2accesstoken:{registry.token}".encode()).decode()
                if self.headers.get("Authorization") != expected:
                    self.send_response(401)
                    self.end_headers()
                    return
                name, _, tag = self.path.removeprefix("/v2/").rpartition("/manifests/")
                digest = registry.tags.get((name, tag))
                self.send_response(200 if digest else 404)
                if digest:
                    self.send_header("Docker-Content-Digest", digest)
                self.end_headers()

            def log_message(self, *args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.server.server_address[1]}"

    def push(self, name: str, tag: str, digest: str) -> None:
        self.tags[(name, tag)] = digest

    def __enter__(self) -> "FakeRegistry":
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()
