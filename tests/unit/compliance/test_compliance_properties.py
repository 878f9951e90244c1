"""Property tests of the gate: caps hold for any sequence, order does not matter, next_allowed_at is exact."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from compliance_builders import CN, NEW_YORK, SHANGHAI, US
from hypothesis import given, settings
from hypothesis import strategies as st

from arrears.compliance.rules import decide, history_since
from arrears.compliance.schemas import (
    Attempt,
    Consent,
    ConsentScope,
    ContactPoint,
    Context,
    Outcome,
    PriorAttempt,
)
from arrears.enums import Channel, OwnerRelation

START = datetime(2026, 6, 1, 4, 0, tzinfo=UTC)
NUMBERS_US = [
    ContactPoint("+12125550100", time_zones=(NEW_YORK,)),
    ContactPoint("+12125550101", time_zones=(NEW_YORK,)),
]
NUMBERS_CN = [
    ContactPoint("+8613800138000", time_zones=(SHANGHAI,)),
    ContactPoint("+8613800138001", time_zones=(SHANGHAI,)),
]
OUTCOMES = list(Outcome)
NOT_COUNTED = {Outcome.BUSY, Outcome.NOT_CONNECTED, Outcome.BLOCKED}
CONVERSATION = {
    Outcome.RIGHT_PARTY,
    Outcome.PROMISE,
    Outcome.REFUSED,
    Outcome.DISPUTE_RAISED,
    Outcome.CALLBACK_REQUESTED,
}

# what an allowed call can end as: "blocked" is only ever recorded for a call the gate refused
CALL_ENDS = [o for o in OUTCOMES if o is not Outcome.BLOCKED]
_proposal = st.tuples(
    st.integers(0, 14 * 24 * 60),  # minute offset within two weeks
    st.sampled_from(CALL_ENDS),
    st.sampled_from([frozenset({1}), frozenset({2}), frozenset({1, 2})]),
    st.integers(0, 1),  # which number
)


def _simulate(
    pack_numbers: list[ContactPoint], proposals: list[tuple[int, Outcome, frozenset[int], int]], pack, ctx
):  # type: ignore[no-untyped-def]
    history: list[PriorAttempt] = []
    seen: set[int] = set()
    for minute, outcome, accounts, idx in sorted(proposals, key=lambda p: p[0]):
        if minute in seen:
            continue
        seen.add(minute)
        at = START + timedelta(minutes=minute)
        cp = pack_numbers[idx]
        a = Attempt(at=at, channel=Channel.CALL, contact_point=cp, account_ids=accounts, collector_id="c")
        if decide(a, history, ctx, pack).allowed:
            history.append(PriorAttempt(at, Channel.CALL, cp, accounts, "c", outcome))
    return history


@settings(max_examples=60, deadline=None)
@given(st.lists(_proposal, max_size=80))
def test_no_sequence_of_allowed_calls_breaks_7_in_7_or_the_conversation_window(proposals) -> None:  # type: ignore[no-untyped-def]
    history = _simulate(NUMBERS_US, proposals, US, Context())
    ny = ZoneInfo(NEW_YORK)
    for account in (1, 2):
        about = [h for h in history if account in h.account_ids]
        counted = [h.at.astimezone(ny).date() for h in about if h.outcome not in NOT_COUNTED]
        for first in set(counted):
            in_window = [d for d in counted if first <= d <= first + timedelta(days=6)]
            assert len(in_window) <= 7
        for talk in (h for h in about if h.outcome in CONVERSATION):
            c = talk.at.astimezone(ny).date()
            later = [h for h in about if h.at > talk.at and (h.at.astimezone(ny).date() - c).days < 7]
            assert not later, (talk, later)


@settings(max_examples=60, deadline=None)
@given(st.lists(_proposal, max_size=120))
def test_no_sequence_of_allowed_calls_breaks_the_daily_cap(proposals) -> None:  # type: ignore[no-untyped-def]
    history = _simulate(NUMBERS_CN, proposals, CN, Context())
    sh = ZoneInfo(SHANGHAI)
    per_day: dict[tuple[str, object], int] = {}
    for h in history:
        key = (h.contact_point.value, h.at.astimezone(sh).date())
        per_day[key] = per_day.get(key, 0) + 1
    assert all(n <= 6 for n in per_day.values())
    assert all(8 <= h.at.astimezone(sh).hour < 22 for h in history)  # CN-1


_history = st.lists(
    st.builds(
        PriorAttempt,
        at=st.integers(0, 10 * 24 * 60).map(lambda m: START + timedelta(minutes=m)),
        channel=st.sampled_from([Channel.CALL, Channel.SMS]),
        contact_point=st.sampled_from(NUMBERS_US),
        account_ids=st.sampled_from([frozenset({1}), frozenset({2}), frozenset({1, 2})]),
        collector_id=st.sampled_from(["c", "d"]),
        outcome=st.sampled_from(OUTCOMES),
    ),
    max_size=40,
)
_consents = st.lists(
    st.builds(
        Consent,
        scope=st.sampled_from(list(ConsentScope)),
        granted_at=st.integers(0, 10 * 24 * 60).map(lambda m: START + timedelta(minutes=m)),
    ),
    max_size=2,
)


@settings(max_examples=80, deadline=None)
@given(
    _history,
    _consents,
    st.integers(0, 11 * 24 * 60),
    st.sampled_from([US, CN]),
    st.randoms(use_true_random=False),
)
def test_decision_does_not_depend_on_history_order(history, consents, minute, pack, rnd) -> None:  # type: ignore[no-untyped-def]
    a = Attempt(START + timedelta(minutes=minute), Channel.CALL, NUMBERS_US[0], frozenset({1}), "c")
    ctx = Context(consents=tuple(consents))
    shuffled = list(history)
    rnd.shuffle(shuffled)
    assert decide(a, history, ctx, pack).to_dict() == decide(a, shuffled, ctx, pack).to_dict()
    assert decide(a, list(reversed(history)), ctx, pack) == decide(a, history, ctx, pack)


@settings(max_examples=80, deadline=None)
@given(
    _history, _consents, st.integers(10 * 24 * 60, 12 * 24 * 60), st.sampled_from([US, CN]), st.floats(0, 1)
)
def test_next_allowed_at_is_allowed_and_nothing_earlier_is(history, consents, minute, pack, frac) -> None:  # type: ignore[no-untyped-def]
    # The history is the past: every entry is before the attempt.
    a = Attempt(
        START + timedelta(minutes=minute, seconds=30), Channel.CALL, NUMBERS_US[0], frozenset({1}), "c"
    )
    ctx = Context(consents=tuple(consents), debtor_time_zones=("America/Chicago",))
    d = decide(a, history, ctx, pack)
    if d.allowed:
        assert d.next_allowed_at == a.at
        return
    if d.next_allowed_at is None:
        return
    assert d.next_allowed_at > a.at
    assert decide(dataclasses.replace(a, at=d.next_allowed_at), history, ctx, pack).allowed
    between = a.at + (d.next_allowed_at - a.at) * frac
    if between < d.next_allowed_at:
        assert not decide(dataclasses.replace(a, at=between), history, ctx, pack).allowed


_people = [
    *NUMBERS_US,
    ContactPoint("+12125550199", owner_relation=OwnerRelation.EMERGENCY_CONTACT, owner_name="Ann"),
]
_long_history = st.lists(
    st.builds(
        PriorAttempt,
        at=st.integers(0, 60 * 24 * 60).map(lambda m: START + timedelta(minutes=m)),
        channel=st.sampled_from([Channel.CALL, Channel.SMS]),
        contact_point=st.sampled_from(_people),
        account_ids=st.sampled_from([frozenset({1}), frozenset({2}), frozenset({1, 2})]),
        collector_id=st.sampled_from(["c", "d"]),
        outcome=st.sampled_from(OUTCOMES),
    ),
    max_size=60,
)


@settings(max_examples=120, deadline=None)
@given(
    _long_history,
    _consents,
    st.integers(20 * 24 * 60, 61 * 24 * 60),
    st.sampled_from([US, CN]),
    st.sampled_from(_people),
    st.sampled_from([None, "您好，请尽快还款。", "Please pay. This is a debt collector."]),
)
def test_the_history_from_history_since_gives_the_same_decision_as_all_of_it(
    history, consents, minute, pack, point, text
) -> None:  # type: ignore[no-untyped-def]
    # The gate's database query reads only what `history_since` says the decision can see.
    a = Attempt(START + timedelta(minutes=minute), Channel.CALL, point, frozenset({1}), "c", text=text)
    ctx = Context(consents=tuple(consents))
    since = history_since(a, pack)
    cut = history if since is None else [h for h in history if h.at >= since]
    assert decide(a, cut, ctx, pack) == decide(a, history, ctx, pack)
