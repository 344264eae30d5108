"""IAM policy edits that only ever add: binding arithmetic and an etag-guarded read-modify-write.

IAM's ``setIamPolicy`` replaces the whole policy, so a writer must read it, add to it, and
write it back with the ``etag`` it read; if someone else wrote in between, IAM answers
409 ``ABORTED`` and the whole cycle is retried. Source:
https://cloud.google.com/iam/docs/policies#etag
"""

from __future__ import annotations

from typing import Callable, Mapping

from google.api_core import exceptions as api_exceptions
from google.iam.v1 import policy_pb2
from tenacity import Retrying, retry_if_exception, stop_after_attempt, wait_exponential

#: Policy version to request and write: version 3 keeps conditional bindings intact. Source:
#: https://cloud.google.com/iam/docs/policies#versions
POLICY_VERSION = 3

Bindings = Mapping[str, frozenset[str]]


def unconditional_bindings(policy: policy_pb2.Policy) -> dict[str, frozenset[str]]:
    """Role -> members of the policy's bindings without an IAM condition (conditional ones
    never count as a standing grant)."""
    found: dict[str, set[str]] = {}
    for binding in policy.bindings:
        if not binding.HasField("condition"):
            found.setdefault(binding.role, set()).update(binding.members)
    return {role: frozenset(members) for role, members in found.items()}


def missing_roles(bindings: Bindings, member: str, roles: tuple[str, ...]) -> tuple[str, ...]:
    """The roles of ``roles`` that ``member`` does not hold unconditionally, in order."""
    return tuple(role for role in roles if member not in bindings.get(role, frozenset()))


def add_member(policy: policy_pb2.Policy, member: str, roles: tuple[str, ...]) -> tuple[str, ...]:
    """Add ``member`` to each role's unconditional binding in ``policy`` (in place), creating
    bindings as needed; never removes anything. Returns the roles actually added."""
    added = missing_roles(unconditional_bindings(policy), member, roles)
    for role in added:
        binding = next(
            (b for b in policy.bindings if b.role == role and not b.HasField("condition")), None
        )
        if binding is None:
            binding = policy.bindings.add(role=role)
        binding.members.append(member)
    return added


def _retryable(error: BaseException) -> bool:
    """409 (a concurrent change made our etag stale), or 400 for a service account that IAM
    does not know yet: new accounts take a moment to be usable in policies
    (https://cloud.google.com/iam/docs/service-accounts-create#creating)."""
    if isinstance(error, api_exceptions.Conflict):
        return True
    return isinstance(error, api_exceptions.BadRequest) and "does not exist" in str(error)


def ensure_member(
    read: Callable[[], policy_pb2.Policy],
    write: Callable[[policy_pb2.Policy], policy_pb2.Policy],
    member: str,
    roles: tuple[str, ...],
    *,
    backoff_seconds: float = 1.0,
    attempts: int = 6,
) -> tuple[str, ...]:
    """Read-modify-write a policy so that ``member`` holds ``roles``; returns the roles added
    (empty: nothing was written). ``read`` must return a policy with its etag; ``write`` must
    send it back unchanged in shape. Retries the whole cycle on 409 and on an unknown new
    service account, waiting ``backoff_seconds`` growing exponentially; raises the last
    ``google.api_core.exceptions.GoogleAPICallError`` after ``attempts``."""
    for attempt in Retrying(
        retry=retry_if_exception(_retryable),
        stop=stop_after_attempt(attempts),
        wait=wait_exponential(multiplier=backoff_seconds, max=backoff_seconds * 20),
        reraise=True,
    ):
        with attempt:
            policy = read()
            added = add_member(policy, member, roles)
            if not added:
                return ()
            policy.version = max(policy.version, POLICY_VERSION if _has_conditions(policy) else 1)
            write(policy)
            return added
    raise AssertionError("unreachable: tenacity reraises")  # pragma: no cover


def _has_conditions(policy: policy_pb2.Policy) -> bool:
    return any(b.HasField("condition") for b in policy.bindings)
