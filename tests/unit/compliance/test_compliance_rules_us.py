"""Scenario tests for the `us-regf` pack, written from RULEBOOK.md (one section per rule id)."""

from __future__ import annotations

from datetime import date, time, timedelta

from compliance_builders import DEBTOR_US, NEW_YORK, US, attempt, ny, prior

from arrears.compliance.periods import validation_period_ends_on
from arrears.compliance.rules import decide
from arrears.compliance.schemas import (
    AccountState,
    ActiveFlag,
    Consent,
    ConsentScope,
    ContactPoint,
    Context,
    InconvenientWindow,
    Outcome,
    Purpose,
)
from arrears.enums import Channel, FlagKind, OwnerRelation

CTX = Context()
MON = (2026, 6, 1)  # a Monday (EDT)
DISCLOSED = "This is a debt collector. Reply STOP to opt out."


def day(offset: int, h: int = 10, mi: int = 0) -> object:
    d = date(*MON) + timedelta(days=offset)
    return ny(d.year, d.month, d.day, h, mi)


def call(offset: int, h: int = 10, mi: int = 0, **kw: object):  # type: ignore[no-untyped-def]
    return attempt(day(offset, h, mi), DEBTOR_US, **kw)  # type: ignore[arg-type]


def hist(offsets: list[tuple[int, int]], outcome: Outcome = Outcome.NO_ANSWER, **kw: object):  # type: ignore[no-untyped-def]
    return [prior(day(o, h), outcome, DEBTOR_US, **kw) for o, h in offsets]  # type: ignore[arg-type]


# --- US-1 inconvenient times --------------------------------------------------------------------------


def test_us1_2100_is_convenient_and_a_second_later_is_not() -> None:
    assert decide(call(0, 21, 0), [], CTX, US).allowed
    d = decide(attempt(ny(2026, 6, 1, 21, 0, 1), DEBTOR_US), [], CTX, US)
    assert d.rule_ids == ("US-1",) and d.next_allowed_at == ny(2026, 6, 2, 8)
    assert decide(call(0, 7, 59), [], CTX, US).rule_ids == ("US-1",)
    assert decide(call(0, 8, 0), [], CTX, US).allowed


def test_us1_every_candidate_zone_must_be_convenient() -> None:
    # Address in New York, phone number in Los Angeles: 08:30 New York is 05:30 in Los Angeles.
    la_phone = ContactPoint("+13105550100")
    ctx = Context(debtor_time_zones=(NEW_YORK,))
    d = decide(attempt(ny(2026, 6, 1, 8, 30), la_phone), [], ctx, US)
    assert d.rule_ids == ("US-1",) and d.next_allowed_at == ny(2026, 6, 1, 11)
    # 20:30 New York is fine there and 17:30 in Los Angeles.
    assert decide(attempt(ny(2026, 6, 1, 20, 30), la_phone), [], ctx, US).allowed


def test_us1_times_the_consumer_names_as_inconvenient_are_blocked() -> None:
    ctx = Context(inconvenient_times=(InconvenientWindow(time(9), time(17), frozenset({0, 1, 2, 3, 4})),))
    d = decide(call(0, 12), [], ctx, US)
    assert d.rule_ids == ("US-1",) and d.next_allowed_at == ny(2026, 6, 1, 17)
    assert decide(call(5, 12), [], ctx, US).allowed  # Saturday is not named


def test_us1_consumer_consent_lifts_inconvenient_time() -> None:
    ctx = Context(consents=(Consent(ConsentScope.QUIET_HOURS, granted_at=day(0, 9)),))
    assert decide(call(0, 21, 30), [], ctx, US).allowed


# --- US-2 7-in-7 ----------------------------------------------------------------------------------------


def test_us2_eighth_call_in_seven_consecutive_days_is_blocked() -> None:
    history = hist([(i, 10) for i in range(7)])  # Monday .. Sunday, unanswered
    d = decide(call(6, 15), history, CTX, US)
    assert d.rule_ids == ("US-2",)
    assert d.next_allowed_at == day(7, 8)  # next Monday: Monday's call left the window; US-1 until 08:00
    assert decide(call(7, 10), history, CTX, US).allowed


def test_us2_eighth_call_on_one_day_waits_a_week() -> None:
    history = hist([(0, h) for h in range(9, 16)])
    d = decide(call(0, 17), history, CTX, US)
    assert d.rule_ids == ("US-2",) and d.next_allowed_at == day(7, 8)
    assert not decide(call(6, 12), history, CTX, US).allowed


def test_us2_monday_conversation_blocks_calls_about_that_debt_through_sunday() -> None:
    history = hist([(0, 10)], Outcome.RIGHT_PARTY)
    later_same_day = decide(call(0, 15), history, CTX, US)
    assert later_same_day.rule_ids == ("US-2",) and later_same_day.next_allowed_at == day(7, 8)
    assert not decide(call(6, 20), history, CTX, US).allowed  # Sunday
    assert decide(call(7, 8), history, CTX, US).allowed  # next Monday


def test_us2_does_not_apply_to_messages() -> None:
    history = hist([(0, 10)], Outcome.RIGHT_PARTY)
    sms = call(1, 12, channel=Channel.SMS, text=DISCLOSED)
    assert decide(sms, history, CTX, US).allowed


# --- US-3 per person x debt x collector ------------------------------------------------------------------


def test_us3_counts_are_per_debt() -> None:
    history = hist([(0, h) for h in range(9, 16)], accounts=frozenset({1}))
    assert decide(call(0, 17, accounts=frozenset({2})), history, CTX, US).allowed
    assert not decide(call(0, 17, accounts=frozenset({1, 2})), history, CTX, US).allowed


def test_us3_a_conversation_about_several_debts_counts_for_each() -> None:
    history = hist([(0, 10)], Outcome.PROMISE, accounts=frozenset({1, 2}))
    assert not decide(call(2, accounts=frozenset({1})), history, CTX, US).allowed
    assert not decide(call(2, accounts=frozenset({2})), history, CTX, US).allowed
    assert decide(call(2, accounts=frozenset({3})), history, CTX, US).allowed


def test_us3_counts_are_per_collector_and_per_person() -> None:
    history = hist([(0, 10)], Outcome.RIGHT_PARTY, collector="agency-a")
    assert decide(call(1, collector="agency-b"), history, CTX, US).allowed
    assert not decide(call(1, collector="agency-a"), history, CTX, US).allowed
    # Another number of the same person is the same person.
    second = ContactPoint("+12125550199", time_zones=(NEW_YORK,))
    assert not decide(attempt(day(1), second, collector="agency-a"), history, CTX, US).allowed
    # A different person (the employer) is counted separately.
    boss = ContactPoint("+12125550123", owner_relation=OwnerRelation.EMPLOYER, time_zones=(NEW_YORK,))
    assert decide(attempt(day(1), boss, collector="agency-a"), history, CTX, US).allowed


# --- US-4 what does not count ---------------------------------------------------------------------------


def test_us4_busy_and_not_connected_do_not_count_voicemail_and_no_answer_do() -> None:
    never = hist([(0, h) for h in range(9, 13)], Outcome.BUSY) + hist(
        [(0, h) for h in range(13, 16)], Outcome.NOT_CONNECTED
    )
    assert decide(call(0, 17), never, CTX, US).allowed
    voicemail = hist([(0, h) for h in range(9, 13)], Outcome.VOICEMAIL) + hist(
        [(0, h) for h in range(13, 16)]
    )
    assert decide(call(0, 17), voicemail, CTX, US).rule_ids == ("US-2",)


def test_us4_calls_with_direct_prior_consent_do_not_count() -> None:
    consent = Consent(ConsentScope.CALL_FREQUENCY, granted_at=day(0, 8), expires_at=day(1, 0))
    history = hist([(0, h) for h in range(9, 16)])
    ctx = Context(consents=(consent,))
    assert decide(call(0, 17), history, ctx, US).allowed  # this call is itself consented
    assert decide(call(2), history, ctx, US).allowed  # the consented calls do not count later
    assert not decide(call(2), history, CTX, US).allowed


def test_us4_consent_ends_early_at_a_conversation() -> None:
    consent = Consent(ConsentScope.CALL_FREQUENCY, granted_at=day(0, 8))
    history = hist([(1, 10)], Outcome.RIGHT_PARTY)
    d = decide(call(2), history, Context(consents=(consent,)), US)
    assert d.rule_ids == ("US-2",)


def test_us4_consent_lasts_seven_days() -> None:
    consent = Consent(ConsentScope.CALL_FREQUENCY, granted_at=day(0, 8))
    ctx = Context(consents=(consent,))
    history = hist([(6, h) for h in range(9, 16)])
    assert decide(call(6, 17), history, ctx, US).allowed
    assert decide(call(7, 9), history, ctx, US).allowed  # the consented calls never count
    after = hist([(7, h) for h in range(9, 16)])  # consent ended on day 7 at 08:00
    assert decide(call(7, 17), after, ctx, US).rule_ids == ("US-2",)


# --- US-5 warning signs ------------------------------------------------------------------------------------


def test_us5_two_unanswered_calls_within_five_minutes_warns_but_allows() -> None:
    d = decide(call(0, 10, 4), hist([(0, 10)]), CTX, US)
    assert d.allowed and [w.rule_id for w in d.warnings] == ["US-5"]
    assert not decide(call(0, 10, 6), hist([(0, 10)]), CTX, US).warnings


def test_us5_seventh_call_to_one_number_in_a_day_warns() -> None:
    history = hist([(0, h) for h in range(9, 15)], Outcome.BUSY)
    d = decide(call(0, 16), history, CTX, US)
    assert d.allowed and any(w.code == "warn_calls_per_day" for w in d.warnings)


def test_us5_sunday_and_holiday_calls_warn() -> None:
    assert any(w.code == "warn_sunday_holiday" for w in decide(call(6), [], CTX, US).warnings)
    ctx = Context(holidays=frozenset({date(2026, 6, 2)}))
    assert any(w.code == "warn_sunday_holiday" for w in decide(call(1), [], ctx, US).warnings)
    assert not decide(call(1), [], CTX, US).warnings


# --- US-7 validation ------------------------------------------------------------------------------------


def test_us7_written_dispute_in_validation_period_stops_collection_until_verification() -> None:
    ctx = Context(accounts={1: AccountState(validation_dispute_pending=True)})
    d = decide(call(0), [], ctx, US)
    assert d.rule_ids == ("US-7",) and d.next_allowed_at is None
    letter = call(0, channel=Channel.LETTER, purpose=Purpose.VERIFICATION)
    assert decide(letter, [], ctx, US).allowed


def test_us7_warns_when_the_validation_notice_is_late() -> None:
    ctx = Context(accounts={1: AccountState(initial_communication_at=day(0))})
    assert not decide(call(5), [], ctx, US).warnings
    assert [w.rule_id for w in decide(call(7), [], ctx, US).warnings] == ["US-7"]


def test_us7_validation_period_is_30_days_after_assumed_receipt() -> None:
    # Sent Monday 1 June 2026; receipt assumed 5 business days later (Monday 8 June); ends 8 July.
    assert validation_period_ends_on(date(2026, 6, 1), US) == date(2026, 7, 8)
    assert validation_period_ends_on(date(2026, 6, 1), US, holidays={date(2026, 6, 3)}) == date(2026, 7, 9)


# --- US-8 time-barred -----------------------------------------------------------------------------------


def test_us8_time_barred_debt_no_suit_and_no_threat_of_suit() -> None:
    ctx = Context(accounts={1: AccountState(time_barred=True)})
    assert decide(call(0, purpose=Purpose.LEGAL_ACTION), [], ctx, US).rule_ids == ("US-8",)
    threat = call(
        0, channel=Channel.EMAIL, text=DISCLOSED + " Pay now or we will sue you.", first_contact=False
    )
    assert decide(threat, [], ctx, US).rule_ids == ("US-8",)
    polite = call(0, channel=Channel.EMAIL, text=DISCLOSED, first_contact=False)
    assert decide(polite, [], ctx, US).allowed


# --- US-10 cease communication ------------------------------------------------------------------------------


def test_us10_cease_allows_only_confirmation_or_specific_remedy() -> None:
    ctx = Context(flags=(ActiveFlag(FlagKind.CEASE),))
    d = decide(call(0), [], ctx, US)
    assert d.rule_ids == ("US-10",) and d.next_allowed_at is None
    for purpose in (Purpose.CEASE_CONFIRMATION, Purpose.SPECIFIC_REMEDY):
        assert decide(call(0, channel=Channel.LETTER, purpose=purpose), [], ctx, US).allowed


def test_us_dispute_and_other_flags_block_under_all1() -> None:
    d = decide(call(0), [], Context(flags=(ActiveFlag(FlagKind.BANKRUPTCY),)), US)
    assert d.rule_ids == ("ALL-1",)


# --- US-11 / US-13 content ----------------------------------------------------------------------------------


def test_us11_every_communication_says_it_is_from_a_debt_collector() -> None:
    later = [prior(day(-3), Outcome.RIGHT_PARTY, DEBTOR_US)]
    d = decide(call(0, channel=Channel.EMAIL, text="Please call us. Reply STOP to opt out."), later, CTX, US)
    assert d.rule_ids == ("US-11",)
    assert decide(call(0, channel=Channel.EMAIL, text=DISCLOSED), later, CTX, US).allowed


def test_us11_first_communication_says_information_will_be_used_to_collect() -> None:
    d = decide(call(0, channel=Channel.EMAIL, text=DISCLOSED), [], CTX, US)
    assert d.rule_ids == ("US-11",)
    full = (
        DISCLOSED
        + " This is an attempt to collect a debt and any information obtained will be used for that purpose."
    )
    assert decide(call(0, channel=Channel.EMAIL, text=full), [], CTX, US).allowed


def test_us13_electronic_messages_carry_an_opt_out() -> None:
    later = [prior(day(-3), Outcome.RIGHT_PARTY, DEBTOR_US)]
    text = "This is a debt collector. Please call us."
    assert decide(call(0, channel=Channel.SMS, text=text), later, CTX, US).rule_ids == ("US-13",)
    assert decide(call(0, channel=Channel.LETTER, text=text), later, CTX, US).allowed
