"""Retry policy: exponential backoff, deterministic jitter, dead-letter decision."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from arrears.channels.retry import (
    RetryAction,
    RetryPolicy,
    SendOutcome,
    backoff_delay,
    decide_retry,
    default_policy,
)
from arrears.errors import ValidationFailed

AT = datetime(2025, 3, 5, 9, 0, tzinfo=UTC)
NO_JITTER = RetryPolicy(max_attempts=5, base_delay_s=60, multiplier=2, max_delay_s=600, jitter=0)


def test_delay_doubles_each_attempt_until_the_cap() -> None:
    delays = [backoff_delay(NO_JITTER, n, "k").total_seconds() for n in range(1, 7)]
    assert delays == [60, 120, 240, 480, 600, 600]


def test_jitter_is_deterministic_for_a_seed_and_differs_between_seeds() -> None:
    policy = default_policy()
    assert backoff_delay(policy, 3, "msg-1") == backoff_delay(policy, 3, "msg-1")
    assert len({backoff_delay(policy, 3, f"msg-{i}") for i in range(20)}) > 1


@given(st.integers(min_value=1, max_value=40), st.text(max_size=20))
def test_delay_stays_within_the_jitter_band_around_the_capped_exponential(attempt: int, seed: str) -> None:
    policy = default_policy()
    nominal = min(policy.max_delay_s, policy.base_delay_s * policy.multiplier ** (attempt - 1))
    delay = backoff_delay(policy, attempt, seed).total_seconds()
    assert nominal * (1 - policy.jitter) - 1e-6 <= delay <= nominal * (1 + policy.jitter) + 1e-6


def test_sent_message_is_done() -> None:
    decision = decide_retry(NO_JITTER, outcome="sent", attempts_made=1, failed_at=AT, seed="k")
    assert decision.action is RetryAction.DONE


def test_permanent_failure_goes_to_dead_letter_at_once() -> None:
    decision = decide_retry(NO_JITTER, outcome=SendOutcome.FAILED, attempts_made=1, failed_at=AT, seed="k")
    assert decision.action is RetryAction.DEAD_LETTER
    assert decision.reason == "permanent_failure"


def test_transient_failure_is_retried_after_the_backoff() -> None:
    decision = decide_retry(NO_JITTER, outcome="retryable", attempts_made=2, failed_at=AT, seed="k")
    assert decision.action is RetryAction.RETRY
    assert decision.retry_at == AT + timedelta(seconds=120)


def test_transient_failure_after_max_attempts_goes_to_dead_letter() -> None:
    decision = decide_retry(NO_JITTER, outcome="retryable", attempts_made=5, failed_at=AT, seed="k")
    assert decision.action is RetryAction.DEAD_LETTER
    assert decision.reason == "max_attempts_reached"


@given(st.integers(min_value=1, max_value=30))
def test_retry_is_always_later_and_never_past_max_attempts(attempts: int) -> None:
    policy = default_policy()
    decision = decide_retry(policy, outcome="retryable", attempts_made=attempts, failed_at=AT, seed="x")
    if attempts >= policy.max_attempts:
        assert decision.action is RetryAction.DEAD_LETTER
    else:
        assert decision.action is RetryAction.RETRY
        assert decision.retry_at is not None and decision.retry_at > AT


def test_naive_failure_time_is_refused() -> None:
    with pytest.raises(ValidationFailed):
        decide_retry(
            NO_JITTER, outcome="retryable", attempts_made=1, failed_at=datetime(2025, 1, 1), seed="k"
        )


def test_invalid_policies_are_refused() -> None:
    with pytest.raises(ValidationFailed):
        RetryPolicy(max_attempts=0, base_delay_s=1, multiplier=2, max_delay_s=10, jitter=0)
    with pytest.raises(ValidationFailed):
        RetryPolicy(max_attempts=3, base_delay_s=1, multiplier=2, max_delay_s=10, jitter=1.5)
