"""Retry policy for outbound messages: exponential backoff with jitter, and the dead-letter decision.

Pure functions. The jitter is deterministic for a given seed (use the message's idempotency key), so a
replayed outbox run computes the same next-attempt times. Parameters come from ``data/channels.toml``.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from arrears.channels import _data
from arrears.clock import as_utc
from arrears.errors import ValidationFailed


class SendOutcome(StrEnum):
    """How one send attempt ended (the ``status`` of a sender's result)."""

    SENT = "sent"
    FAILED = "failed"  # permanent: retrying cannot help (rejected number, bad address, 4xx)
    RETRYABLE = "retryable"  # transient: timeout, connection error, 5xx, 429


class RetryAction(StrEnum):
    DONE = "done"
    RETRY = "retry"
    DEAD_LETTER = "dead_letter"


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Backoff parameters: delay = min(max_delay_s, base_delay_s * multiplier ** (n - 1)) +/- jitter."""

    max_attempts: int
    base_delay_s: float
    multiplier: float
    max_delay_s: float
    jitter: float

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValidationFailed("max_attempts must be at least 1", code="bad_retry_policy")
        if self.base_delay_s < 0 or self.max_delay_s < self.base_delay_s or self.multiplier < 1:
            raise ValidationFailed("retry delays must be non-negative and growing", code="bad_retry_policy")
        if not 0 <= self.jitter < 1:
            raise ValidationFailed("jitter must be in [0, 1)", code="bad_retry_policy")


@dataclass(frozen=True, slots=True)
class RetryDecision:
    """What to do with a message after an attempt, and why."""

    action: RetryAction
    reason: str
    attempts_made: int
    retry_at: datetime | None = None


def default_policy() -> RetryPolicy:
    """The policy shipped in ``data/channels.toml`` ``[retry]``."""
    raw = _data.load_toml("channels.toml")["retry"]
    return RetryPolicy(
        max_attempts=int(raw["max_attempts"]),
        base_delay_s=float(raw["base_delay_s"]),
        multiplier=float(raw["multiplier"]),
        max_delay_s=float(raw["max_delay_s"]),
        jitter=float(raw["jitter"]),
    )


def backoff_delay(policy: RetryPolicy, attempt: int, seed: str) -> timedelta:
    """Delay before the attempt after attempt number ``attempt`` (1-based) failed.

    The exponential delay is capped at ``max_delay_s`` and then spread uniformly by +/- ``jitter`` of
    itself, drawn from a generator seeded by ``(seed, attempt)``: the same inputs give the same delay.
    """
    if attempt < 1:
        raise ValidationFailed("attempt numbers start at 1", code="bad_attempt")
    exponential = policy.base_delay_s * policy.multiplier ** (attempt - 1)
    capped = min(policy.max_delay_s, exponential)
    spread = random.Random(f"{seed}:{attempt}").uniform(-policy.jitter, policy.jitter)
    return timedelta(seconds=capped * (1 + spread))


def decide_retry(
    policy: RetryPolicy, *, outcome: SendOutcome | str, attempts_made: int, failed_at: datetime, seed: str
) -> RetryDecision:
    """Done, retry or dead-letter, after ``attempts_made`` attempts, the last ending with ``outcome``.

    A sent message is done; a permanent failure is dead-lettered at once; a transient one is retried
    after ``backoff_delay`` until ``max_attempts`` attempts have been made, then dead-lettered.
    """
    outcome = SendOutcome(outcome)
    if outcome is SendOutcome.SENT:
        return RetryDecision(RetryAction.DONE, "sent", attempts_made)
    if outcome is SendOutcome.FAILED:
        return RetryDecision(RetryAction.DEAD_LETTER, "permanent_failure", attempts_made)
    if attempts_made >= policy.max_attempts:
        return RetryDecision(RetryAction.DEAD_LETTER, "max_attempts_reached", attempts_made)
    retry_at = as_utc(failed_at) + backoff_delay(policy, attempts_made, seed)
    return RetryDecision(RetryAction.RETRY, "transient_failure", attempts_made, retry_at=retry_at)
