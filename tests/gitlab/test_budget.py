"""The GitLab transport's request budget and Retry-After, against the fake GitLab over HTTP."""

from __future__ import annotations

import threading
import time

from konfig.gitlab.settings import RetryPolicy
from konfig.gitlab.transport import KonfigSession

from tests.gitlab.conftest import TOKEN


def get(session: KonfigSession, fake, path: str = "/api/v4/groups/acme") -> int:
    return session.get(fake.url + path, headers={"PRIVATE-TOKEN": TOKEN}).status_code


def test_requests_beyond_the_budget_wait_for_it_to_refill(fake):
    session = KonfigSession(4, RetryPolicy(attempts=2, initial=0.01), 5, budget_period=1.0)
    started = time.monotonic()
    statuses = [get(session, fake) for _ in range(12)]
    elapsed = time.monotonic() - started
    assert statuses == [200] * 12
    # 5 per second: the 6th and 11th requests wait for the window, so at least 2 s
    assert elapsed >= 1.9, elapsed
    assert session.waited >= 1.5
    assert session.stats.reads == 12


def test_no_budget_means_no_waiting(fake):
    session = KonfigSession(4, RetryPolicy(attempts=2, initial=0.01), 0)
    started = time.monotonic()
    assert [get(session, fake) for _ in range(20)] == [200] * 20
    assert time.monotonic() - started < 2 and session.waited == 0


def test_a_retry_after_pauses_every_request_of_the_session(fake):
    fake.inject_fault(429, method="GET", times=1, retry_after=1)
    session = KonfigSession(4, RetryPolicy(attempts=3, initial=0.01, max_wait=5), 0)
    done: dict[str, float] = {}
    started = time.monotonic()

    def first() -> None:
        assert get(session, fake) == 200
        done["first"] = time.monotonic() - started

    def second() -> None:
        time.sleep(0.2)  # after the 429 arrived
        assert get(session, fake, "/api/v4/groups") == 200
        done["second"] = time.monotonic() - started

    threads = [threading.Thread(target=first), threading.Thread(target=second)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert done["first"] >= 0.95
    assert done["second"] >= 0.95, "the other request waited for the Retry-After too"
    assert session.stats.throttled == 1
