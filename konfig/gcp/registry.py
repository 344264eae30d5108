"""Which digest a registry tag points at, over the OCI distribution API (Docker Registry v2).

Release promotion reads the build record of a commit (``<image>:git-<sha>``, docs/gitops.md)
with one ``HEAD /v2/<name>/manifests/<tag>``: the digest is the ``Docker-Content-Digest``
header. Artifact Registry accepts an OAuth access token as the password of user
``oauth2accesstoken`` (https://cloud.google.com/artifact-registry/docs/docker/authentication#token);
CI passes ``gcloud auth print-access-token``. Transient failures (429, 5xx, dropped
connections) are retried with backoff (tenacity). Spec:
https://github.com/opencontainers/distribution-spec/blob/main/spec.md#checking-if-content-exists-in-the-registry
"""

from __future__ import annotations

import base64
import re

import urllib3
from tenacity import Retrying, retry_if_exception, stop_after_attempt, wait_exponential

#: Manifest media types a lookup accepts (an image index first: multi-platform builds).
ACCEPT = ", ".join((
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.docker.distribution.manifest.v2+json",
))
_DIGEST = re.compile(r"^sha256:[0-9a-f]{64}$")
_LOCAL = ("127.0.0.1", "localhost", "[::1]")


class RegistryError(Exception):
    """The registry could not answer (unreachable, unauthorised, a malformed answer)."""


def _transient(error: BaseException) -> bool:
    return isinstance(error, _Transient)


class _Transient(RegistryError):
    pass


def tag_digest(repository: str, tag: str, *, token: str | None = None,
               timeout: float = 10.0, attempts: int = 4) -> str | None:
    """The digest (``sha256:...``) that ``repository:tag`` points at, ``None`` when the tag
    does not exist (HTTP 404). ``repository`` is ``host/path`` (``europe-docker.pkg.dev/p/r/img``);
    HTTPS, except plain HTTP for a registry on localhost (as Docker does). Raises
    :class:`RegistryError` for any other failure, after retrying transient ones."""
    host, _, path = repository.partition("/")
    if not host or not path:
        raise RegistryError(f"not a repository reference: {repository!r}")
    scheme = "http" if host.split(":")[0] in _LOCAL or host.startswith("[::1]") else "https"
    url = f"{scheme}://{host}/v2/{path}/manifests/{tag}"
    headers = {"Accept": ACCEPT}
    if token:
        basic = base64.b64encode(f"oauth2accesstoken:{token}".encode()).decode()
        headers["Authorization"] = f"Basic {basic}"
    http = urllib3.PoolManager(timeout=urllib3.Timeout(total=timeout), retries=False)

    def once() -> str | None:
        try:
            response = http.request("HEAD", url, headers=headers)
        except urllib3.exceptions.HTTPError as err:
            raise _Transient(f"cannot reach {host}: {err}") from err
        if response.status == 404:
            return None
        if response.status == 429 or response.status >= 500:
            raise _Transient(f"{host} answered {response.status}")
        if response.status in (401, 403):
            raise RegistryError(f"{host} refused the credentials ({response.status}) for "
                                f"{path}: set KONFIG_REGISTRY_TOKEN")
        if response.status != 200:
            raise RegistryError(f"{host} answered {response.status} for {path}:{tag}")
        digest = response.headers.get("Docker-Content-Digest", "")
        if not _DIGEST.match(digest):
            raise RegistryError(f"{host} gave no sha256 digest for {path}:{tag} ({digest!r})")
        return digest

    try:
        return Retrying(stop=stop_after_attempt(attempts), reraise=True,
                        wait=wait_exponential(multiplier=0.2, max=2.0),
                        retry=retry_if_exception(_transient))(once)
    finally:
        http.clear()
