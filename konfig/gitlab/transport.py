"""HTTP transport under python-gitlab: bounded concurrency, retries, request counts.

python-gitlab takes a ``requests.Session``; :class:`KonfigSession` is one that

* holds at most ``max_in_flight`` requests on the wire at once (a semaphore, released while
  backing off, so a waiting retry never blocks other work);
* retries with tenacity: ``429 Too Many Requests`` after ``Retry-After`` (GitLab's throttles
  send it: https://docs.gitlab.com/administration/settings/user_and_ip_rate_limits/#response-headers),
  5xx answers and connection errors with exponential backoff and jitter; a ``Retry-After``
  pauses *every* request of the session until then, not only the one retried (the limit is
  per user, so the others would be throttled too);
* stays within a request budget per minute (:attr:`GitLabSettings.requests_per_minute`,
  a token bucket from pyrate-limiter): a request over it waits for the bucket to refill;
* counts reads and writes (every attempt), for reports, metrics and benchmarks.

When the retries are exhausted it raises :class:`RetriesExhausted` (not a
``requests.ConnectionError``), so python-gitlab's own retry loop stays out of the way.
A retried write may already have been applied by the server; the adapter's create paths
treat "already exists" answers as success for that reason.
"""

from __future__ import annotations

import email.utils
import threading
import time
from dataclasses import dataclass

import gitlab
import requests
from pyrate_limiter import Limiter, Rate
from requests.adapters import HTTPAdapter
from tenacity import (
    RetryCallState,
    Retrying,
    retry_if_exception_type,
    stop_after_attempt,
    wait_exponential,
    wait_random,
)

from konfig.gitlab.settings import GitLabSettings, RetryPolicy

#: Statuses worth another try: rate limited, or a server/proxy failure (not 501).
RETRY_STATUSES = frozenset({429, 500, 502, 503, 504, 520, 521, 522, 523, 524})
CONNECTION_ERRORS = (requests.ConnectionError, requests.Timeout,
                     requests.exceptions.ChunkedEncodingError)


class RetriesExhausted(requests.RequestException):
    """A request still failed after every retry. ``status`` is the last HTTP status (0 for a
    connection error)."""

    def __init__(self, message: str, status: int = 0) -> None:
        super().__init__(message)
        self.status = status


class _RetryableStatus(Exception):
    def __init__(self, response: requests.Response) -> None:
        super().__init__(f"HTTP {response.status_code}")
        self.response = response


def retry_after_seconds(response: requests.Response) -> float | None:
    """Seconds to wait from ``Retry-After`` (seconds or an HTTP date) or ``RateLimit-Reset``
    (epoch seconds); ``None`` when neither is usable."""
    value = response.headers.get("Retry-After")
    if value:
        try:
            return max(0.0, float(value))
        except ValueError:
            parsed = email.utils.parsedate_to_datetime(value)
            if parsed is not None:
                return max(0.0, parsed.timestamp() - time.time())
    reset = response.headers.get("RateLimit-Reset")
    if reset:
        try:
            return max(0.0, float(reset) - time.time())
        except ValueError:
            return None
    return None


@dataclass
class RequestStats:
    """Requests sent (every attempt counts), split into reads (GET/HEAD) and writes."""

    reads: int = 0
    writes: int = 0
    retries: int = 0
    throttled: int = 0

    @property
    def total(self) -> int:
        return self.reads + self.writes


class KonfigSession(requests.Session):
    """A ``requests.Session`` with Konfig's pacing and retries (see the module docstring)."""

    def __init__(self, max_in_flight: int = 8, retry: RetryPolicy | None = None,
                 requests_per_minute: int = 0, *, budget_period: float = 60.0) -> None:
        """``requests_per_minute`` (0: none) requests per ``budget_period`` seconds (a
        minute; shorter in tests)."""
        super().__init__()
        self.policy = retry or RetryPolicy()
        self._budget = (Limiter(Rate(requests_per_minute, int(budget_period * 1000)))
                        if requests_per_minute > 0 else None)
        self._resume_at = 0.0  # monotonic time before which no request is sent (Retry-After)
        self.waited = 0.0  #: seconds spent waiting for the budget or a Retry-After
        self._slots = threading.BoundedSemaphore(max_in_flight)
        self._stats_lock = threading.Lock()
        self.stats = RequestStats()
        adapter = HTTPAdapter(pool_connections=4, pool_maxsize=max(max_in_flight, 4))
        self.mount("http://", adapter)
        self.mount("https://", adapter)

    def _wait(self, state: RetryCallState) -> float:
        exc = state.outcome.exception() if state.outcome else None
        if isinstance(exc, _RetryableStatus) and exc.response.status_code in (429, 503):
            delay = retry_after_seconds(exc.response)
            if delay is not None:
                delay = min(delay, self.policy.max_wait)
                with self._stats_lock:  # everyone waits: the limit is the user's, not ours
                    self._resume_at = max(self._resume_at, time.monotonic() + delay)
                return delay
        backoff = wait_exponential(multiplier=self.policy.initial, max=self.policy.max_wait) + \
            wait_random(0, self.policy.jitter)
        return min(backoff(state), self.policy.max_wait)

    def _count(self, method: str, response: requests.Response | None) -> None:
        with self._stats_lock:
            if method.upper() in ("GET", "HEAD"):
                self.stats.reads += 1
            else:
                self.stats.writes += 1
            if response is not None and response.status_code == 429:
                self.stats.throttled += 1

    def _pace(self) -> None:
        """Wait for a Retry-After pause to end and for room in the request budget."""
        started = time.monotonic()
        while True:
            with self._stats_lock:
                pause = self._resume_at - time.monotonic()
            if pause <= 0:
                break
            time.sleep(pause)
        if self._budget is not None:
            self._budget.try_acquire("gitlab", blocking=True)
        waited = time.monotonic() - started
        if waited > 0.001:
            with self._stats_lock:
                self.waited += waited

    def _before_sleep(self, state: RetryCallState) -> None:
        with self._stats_lock:
            self.stats.retries += 1

    def request(self, method, url, *args, **kwargs):  # type: ignore[override]
        def attempt() -> requests.Response:
            self._pace()
            response = None
            try:
                with self._slots:
                    response = super(KonfigSession, self).request(method, url, *args, **kwargs)
            finally:
                self._count(method, response)
            if response.status_code in RETRY_STATUSES:
                raise _RetryableStatus(response)
            return response

        retrying = Retrying(
            retry=retry_if_exception_type((_RetryableStatus, *CONNECTION_ERRORS)),
            wait=self._wait,
            stop=stop_after_attempt(self.policy.attempts),
            before_sleep=self._before_sleep,
            reraise=True,
        )
        try:
            return retrying(attempt)
        except _RetryableStatus as exc:
            raise RetriesExhausted(
                f"{method} {url}: HTTP {exc.response.status_code} after "
                f"{self.policy.attempts} attempts", exc.response.status_code) from None
        except CONNECTION_ERRORS as exc:
            raise RetriesExhausted(f"{method} {url}: {exc} after {self.policy.attempts} "
                                   "attempts") from exc


def connect(settings: GitLabSettings) -> gitlab.Gitlab:
    """A python-gitlab client over a :class:`KonfigSession` built from ``settings``.

    The token is sent as ``PRIVATE-TOKEN``; the base URL is kept for pagination links
    (``keep_base_url``) so a proxy rewriting hosts does not break paging.
    """
    session = KonfigSession(settings.max_in_flight, settings.retry,
                            settings.requests_per_minute)
    return gitlab.Gitlab(
        settings.url,
        private_token=settings.token,
        session=session,
        per_page=settings.per_page,
        timeout=settings.timeout,
        ssl_verify=settings.ssl_verify,
        keep_base_url=True,
        user_agent="konfig-gitlab-adapter",
    )


def request_stats(client: gitlab.Gitlab) -> RequestStats | None:
    """The request counters of a client made by :func:`connect` (``None`` for other clients)."""
    session = client.session
    return session.stats if isinstance(session, KonfigSession) else None
