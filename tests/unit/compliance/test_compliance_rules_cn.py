"""Scenario tests for the `cn` pack, written from RULEBOOK.md (one section per rule id)."""

from __future__ import annotations

from datetime import timedelta

from compliance_builders import CN, DEBTOR_CN, SHANGHAI, attempt, calls, every, prior, sh, third_party

from arrears.compliance.rules import decide
from arrears.compliance.schemas import (
    AccountState,
    ActiveFlag,
    Consent,
    ConsentScope,
    ContactPoint,
    Context,
    Direction,
    InconvenientWindow,
    Outcome,
    Purpose,
)
from arrears.enums import Channel, FlagKind, OwnerRelation, Product

CTX = Context()


# --- CN-1 quiet hours ---------------------------------------------------------------------------------


def test_cn1_2159_allowed_and_2200_blocked_in_shanghai() -> None:
    assert decide(attempt(sh(2026, 3, 2, 21, 59, 59)), [], CTX, CN).allowed
    blocked = decide(attempt(sh(2026, 3, 2, 22, 0)), [], CTX, CN)
    assert not blocked.allowed
    assert blocked.rule_ids == ("CN-1",)
    assert "22:00" in blocked.reasons[0].zh and "Asia/Shanghai" in blocked.reasons[0].en


def test_cn1_0759_blocked_0800_allowed_and_next_allowed_is_0800_local() -> None:
    d = decide(attempt(sh(2026, 3, 3, 7, 59)), [], CTX, CN)
    assert not d.allowed and d.next_allowed_at == sh(2026, 3, 3, 8, 0)
    assert decide(attempt(sh(2026, 3, 3, 8, 0)), [], CTX, CN).allowed
    late = decide(attempt(sh(2026, 3, 2, 23, 30)), [], CTX, CN)
    assert late.next_allowed_at == sh(2026, 3, 3, 8, 0)


def test_cn1_applies_to_sms_and_visits_not_letters() -> None:
    at = sh(2026, 3, 2, 23, 0)
    assert decide(attempt(at, channel=Channel.SMS), [], CTX, CN).rule_ids == ("CN-1",)
    assert decide(attempt(at, channel=Channel.VISIT), [], CTX, CN).rule_ids == ("CN-1",)
    assert decide(attempt(at, channel=Channel.LETTER), [], CTX, CN).allowed


def test_cn1_recorded_consent_lifts_quiet_hours_until_it_expires() -> None:
    consent = Consent(ConsentScope.QUIET_HOURS, granted_at=sh(2026, 3, 2, 12), expires_at=sh(2026, 3, 2, 23))
    ctx = Context(consents=(consent,))
    assert decide(attempt(sh(2026, 3, 2, 22, 30)), [], ctx, CN).allowed
    after = decide(attempt(sh(2026, 3, 2, 23, 0)), [], ctx, CN)
    assert after.rule_ids == ("CN-1",) and after.next_allowed_at == sh(2026, 3, 3, 8)


def test_cn1_consent_for_another_number_does_not_lift() -> None:
    consent = Consent(ConsentScope.QUIET_HOURS, granted_at=sh(2026, 3, 2, 12), contact_value="+8613111111111")
    assert not decide(attempt(sh(2026, 3, 2, 22, 30)), [], Context(consents=(consent,)), CN).allowed


def test_cn1_time_must_be_allowed_in_every_candidate_zone() -> None:
    # 08:30 in Shanghai is 04:30 in Dubai: blocked until 08:00 in Dubai (12:00 Shanghai).
    ctx = Context(debtor_time_zones=("Asia/Dubai",))
    d = decide(attempt(sh(2026, 3, 2, 8, 30)), [], ctx, CN)
    assert not d.allowed and d.next_allowed_at == sh(2026, 3, 2, 12, 0)


def test_cn1_no_time_left_in_every_zone_means_no_next_allowed_time() -> None:
    from datetime import time

    # The debtor named 07:00-21:00 inconvenient: Shanghai leaves 21:00-22:00 local, which is 17:00-18:00 in
    # Dubai, where the debtor may also be and which is inconvenient there: no common time is left.
    ctx = Context(
        debtor_time_zones=("Asia/Dubai",),
        inconvenient_times=(InconvenientWindow(time(7), time(21)),),
    )
    d = decide(attempt(sh(2026, 3, 2, 12)), [], ctx, CN)
    assert not d.allowed and d.next_allowed_at is None
    assert any("confirm where the debtor is" in r.en for r in d.reasons)


def test_cn1_portfolio_zone_is_the_fallback() -> None:
    unknown = ContactPoint("debtor@example.com", kind=ContactPoint.__dataclass_fields__["kind"].default)
    ctx = Context(portfolio_time_zone="Asia/Urumqi")  # two hours behind Shanghai on the wall clock
    assert not decide(attempt(sh(2026, 3, 2, 9), unknown), [], ctx, CN).allowed


def test_cn1_debtor_named_inconvenient_time_is_honoured() -> None:
    from datetime import time

    ctx = Context(inconvenient_times=(InconvenientWindow(time(12), time(14)),))
    d = decide(attempt(sh(2026, 3, 2, 12, 30)), [], ctx, CN)
    assert d.rule_ids == ("CN-1",) and d.next_allowed_at == sh(2026, 3, 2, 14)


# --- CN-2 daily call cap per contact point ------------------------------------------------------------


def test_cn2_sixth_call_allowed_seventh_blocked_until_local_midnight() -> None:
    history = calls(every(sh(2026, 3, 2, 9), 5, timedelta(hours=1)))
    assert decide(attempt(sh(2026, 3, 2, 15)), history, CTX, CN).allowed
    history = calls(every(sh(2026, 3, 2, 9), 6, timedelta(hours=1)))
    d = decide(attempt(sh(2026, 3, 2, 16)), history, CTX, CN)
    assert d.rule_ids == ("CN-2",)
    assert d.next_allowed_at == sh(2026, 3, 3, 8)  # midnight, then CN-1 until 08:00


def test_cn2_busy_signals_count_as_call_attempts_but_blocked_attempts_do_not() -> None:
    history = calls(every(sh(2026, 3, 2, 9), 6, timedelta(minutes=30)), Outcome.BUSY)
    assert decide(attempt(sh(2026, 3, 2, 16)), history, CTX, CN).rule_ids == ("CN-2",)
    history = calls(every(sh(2026, 3, 2, 9), 6, timedelta(minutes=30)), Outcome.BLOCKED)
    assert decide(attempt(sh(2026, 3, 2, 16)), history, CTX, CN).allowed


def test_cn2_counts_per_contact_point() -> None:
    history = calls(every(sh(2026, 3, 2, 9), 6, timedelta(hours=1)))
    other = ContactPoint("+8613700137000", time_zones=(SHANGHAI,))
    assert decide(attempt(sh(2026, 3, 2, 16), other), history, CTX, CN).allowed


def test_cn2_recorded_agreement_lifts_the_cap() -> None:
    history = calls(every(sh(2026, 3, 2, 9), 6, timedelta(hours=1)))
    ctx = Context(consents=(Consent(ConsentScope.CALL_CAP, granted_at=sh(2026, 3, 2, 14)),))
    assert decide(attempt(sh(2026, 3, 2, 16)), history, ctx, CN).allowed


def test_cn2_calls_from_yesterday_do_not_count() -> None:
    history = calls(every(sh(2026, 3, 1, 9), 6, timedelta(hours=1)))
    assert decide(attempt(sh(2026, 3, 2, 9)), history, CTX, CN).allowed


# --- CN-3 third parties only when the debtor is out of contact -------------------------------------------


def test_cn3_third_party_blocked_while_debtor_reachable() -> None:
    d = decide(attempt(sh(2026, 3, 2, 10), third_party(), purpose=Purpose.MESSAGE_PASSING), [], CTX, CN)
    assert d.rule_ids == ("CN-3",) and d.next_allowed_at is None


def test_cn3_three_consecutive_failed_attempts_open_third_party_contact() -> None:
    two = calls([sh(2026, 3, 1, 10), sh(2026, 3, 1, 11)])
    tp = attempt(sh(2026, 3, 2, 10), third_party(), purpose=Purpose.MESSAGE_PASSING)
    assert decide(tp, two, CTX, CN).rule_ids == ("CN-3",)
    three = [*two, prior(sh(2026, 3, 1, 12), Outcome.BUSY)]
    assert decide(tp, three, CTX, CN).allowed


def test_cn3_reaching_the_debtor_resets_the_count() -> None:
    history = [
        *calls([sh(2026, 3, 1, 9), sh(2026, 3, 1, 10), sh(2026, 3, 1, 11)]),
        prior(sh(2026, 3, 1, 12), Outcome.RIGHT_PARTY),
        prior(sh(2026, 3, 1, 13), Outcome.NO_ANSWER),
    ]
    tp = attempt(sh(2026, 3, 2, 10), third_party(), purpose=Purpose.MESSAGE_PASSING)
    assert decide(tp, history, CTX, CN).rule_ids == ("CN-3",)


def test_cn3_debtor_numbers_invalid_opens_third_party_contact() -> None:
    tp = attempt(sh(2026, 3, 2, 10), third_party(), purpose=Purpose.MESSAGE_PASSING)
    assert decide(tp, [], Context(debtor_numbers_invalid=True), CN).allowed


# --- CN-4 unrelated third parties: message passing only ---------------------------------------------------

OUT_OF_CONTACT = Context(debtor_numbers_invalid=True)


def test_cn4_unrelated_third_party_may_not_hear_debt_details() -> None:
    d = decide(attempt(sh(2026, 3, 2, 10), third_party()), [], OUT_OF_CONTACT, CN)
    assert d.rule_ids == ("CN-4",)


def test_cn4_debt_related_third_party_may_discuss_the_debt() -> None:
    tp = third_party(OwnerRelation.SPOUSE, debt_related=True)
    assert decide(attempt(sh(2026, 3, 2, 10), tp), [], OUT_OF_CONTACT, CN).allowed


def test_cn4_volunteer_payer_may_discuss_the_debt() -> None:
    tp = third_party(volunteered_to_pay=True)
    assert decide(attempt(sh(2026, 3, 2, 10), tp), [], OUT_OF_CONTACT, CN).allowed


def test_cn4_third_party_text_with_debt_details_is_blocked_even_for_message_passing() -> None:
    a = attempt(
        sh(2026, 3, 2, 10),
        third_party(),
        channel=Channel.SMS,
        purpose=Purpose.MESSAGE_PASSING,
        text="请转告张三，他欠款{{ amount }}元已逾期。",
    )
    d = decide(a, [], OUT_OF_CONTACT, CN)
    assert d.rule_ids == ("CN-4",) and not d.allowed
    ok = attempt(
        sh(2026, 3, 2, 10),
        third_party(),
        channel=Channel.SMS,
        purpose=Purpose.MESSAGE_PASSING,
        text="您好，请转告张三尽快回电，谢谢。",
    )
    assert decide(ok, [], OUT_OF_CONTACT, CN).allowed


# --- CN-5 / CN-6 content ------------------------------------------------------------------------------


def test_cn5_first_contact_must_identify_the_institution() -> None:
    text = "您好，您的账单已逾期，请尽快还款。"
    d = decide(attempt(sh(2026, 3, 2, 10), channel=Channel.SMS, text=text), [], CTX, CN)
    assert d.rule_ids == ("CN-5",)
    named = "您好，这里是{{ institution_name }}，您的账单已逾期，请尽快还款。"
    assert decide(attempt(sh(2026, 3, 2, 10), channel=Channel.SMS, text=named), [], CTX, CN).allowed
    # Not the first contact any more: the debtor was reached before.
    history = [prior(sh(2026, 2, 20, 10), Outcome.RIGHT_PARTY)]
    assert decide(attempt(sh(2026, 3, 2, 10), channel=Channel.SMS, text=text), history, CTX, CN).allowed


def test_cn5_impersonating_a_court_is_blocked() -> None:
    text = "这里是{{ institution }}。法院传票已发出，请立即还款。"
    d = decide(attempt(sh(2026, 3, 2, 10), channel=Channel.SMS, text=text), [], CTX, CN)
    assert "CN-5" in d.rule_ids and not d.allowed


def test_cn6_threats_and_insults_are_blocked() -> None:
    text = "这里是{{ institution }}。老赖，再不还钱后果自负。"
    d = decide(attempt(sh(2026, 3, 2, 10), channel=Channel.SMS, text=text), [], CTX, CN)
    assert d.rule_ids == ("CN-6",) and len(d.reasons) == 2


# --- CN-7 listed agencies -----------------------------------------------------------------------------


def test_cn7_unlisted_agency_is_blocked() -> None:
    ctx = Context(listed_agency_ids=frozenset({"agency-a"}))
    assert decide(attempt(sh(2026, 3, 2, 10), agency_id="agency-a"), [], ctx, CN).allowed
    assert decide(attempt(sh(2026, 3, 2, 10), agency_id="agency-b"), [], ctx, CN).rule_ids == ("CN-7",)


# --- CN-8 credit cards: cardholder and guarantor only -------------------------------------------------------


CARD = Context(accounts={1: AccountState(product=Product.CREDIT_CARD)}, debtor_numbers_invalid=True)


def test_cn8_credit_card_not_collected_from_a_spouse() -> None:
    spouse = third_party(OwnerRelation.SPOUSE, debt_related=True)
    assert decide(attempt(sh(2026, 3, 2, 10), spouse), [], CARD, CN).rule_ids == ("CN-8",)


def test_cn8_credit_card_collected_from_guarantor_and_message_passing_allowed() -> None:
    guarantor = third_party(OwnerRelation.GUARANTOR, debt_related=True)
    assert decide(attempt(sh(2026, 3, 2, 10), guarantor), [], CARD, CN).allowed
    spouse = third_party(OwnerRelation.SPOUSE, debt_related=True)
    assert decide(attempt(sh(2026, 3, 2, 10), spouse, purpose=Purpose.MESSAGE_PASSING), [], CARD, CN).allowed


# --- CN-10 lawful cap -----------------------------------------------------------------------------------


def test_cn10_no_visit_or_legal_action_above_the_lawful_cap() -> None:
    ctx = Context(accounts={1: AccountState(above_lawful_cap=True)})
    assert decide(attempt(sh(2026, 3, 2, 10), channel=Channel.VISIT), [], ctx, CN).rule_ids == ("CN-10",)
    legal = attempt(sh(2026, 3, 2, 10), channel=Channel.LETTER, purpose=Purpose.LEGAL_ACTION)
    assert decide(legal, [], ctx, CN).rule_ids == ("CN-10",)
    assert decide(attempt(sh(2026, 3, 2, 10)), [], ctx, CN).allowed


# --- CN-22 time-barred ----------------------------------------------------------------------------------


def test_cn22_time_barred_debt_no_legal_threat_but_voluntary_payment_may_be_asked() -> None:
    ctx = Context(accounts={1: AccountState(time_barred=True)})
    threat = attempt(sh(2026, 3, 2, 10), purpose=Purpose.LEGAL_NOTICE)
    assert decide(threat, [], ctx, CN).rule_ids == ("CN-22",)
    lawyer = attempt(sh(2026, 3, 2, 10), channel=Channel.LAWYER_LETTER, purpose=Purpose.DEBT_COLLECTION)
    assert decide(lawyer, [], ctx, CN).rule_ids == ("CN-22",)
    assert decide(attempt(sh(2026, 3, 2, 10)), [], ctx, CN).allowed
    text = "这里是{{ institution }}，如不还款我们将起诉。"
    worded = attempt(sh(2026, 3, 2, 10), channel=Channel.SMS, text=text)
    assert decide(worded, [], ctx, CN).rule_ids == ("CN-22",)


# --- shared guarantees: flags (ALL-1) and opt-outs (ALL-2) ---


def test_all1_every_blocking_flag_stops_contact_until_cleared() -> None:
    for kind in FlagKind:
        d = decide(attempt(sh(2026, 3, 2, 10)), [], Context(flags=(ActiveFlag(kind),)), CN)
        assert d.rule_ids == ("ALL-1",) and d.next_allowed_at is None, kind


def test_all1_flag_on_another_account_does_not_block() -> None:
    ctx = Context(flags=(ActiveFlag(FlagKind.DISPUTE, account_id=2),))
    assert decide(attempt(sh(2026, 3, 2, 10)), [], ctx, CN).allowed


def test_all1_flag_with_an_end_gives_the_next_allowed_time() -> None:
    ctx = Context(flags=(ActiveFlag(FlagKind.COMPLAINT, expires_at=sh(2026, 3, 4, 23)),))
    d = decide(attempt(sh(2026, 3, 2, 10)), [], ctx, CN)
    assert d.rule_ids == ("ALL-1",) and d.next_allowed_at == sh(2026, 3, 5, 8)  # then CN-1 until 08:00


def test_all2_opted_out_channel_and_contact_point_are_not_used() -> None:
    ctx = Context(opted_out_channels=frozenset({Channel.SMS}))
    assert decide(attempt(sh(2026, 3, 2, 10), channel=Channel.SMS), [], ctx, CN).rule_ids == ("ALL-2",)
    assert decide(attempt(sh(2026, 3, 2, 10)), [], ctx, CN).allowed
    gone = ContactPoint(DEBTOR_CN.value, opted_out=True, time_zones=(SHANGHAI,))
    assert decide(attempt(sh(2026, 3, 2, 10), gone), [], CTX, CN).rule_ids == ("ALL-2",)


def test_inbound_call_from_the_debtor_is_not_subject_to_timing_rules() -> None:
    inbound = attempt(sh(2026, 3, 2, 23), direction=Direction.INBOUND)
    assert decide(inbound, [], Context(flags=(ActiveFlag(FlagKind.DISPUTE),)), CN).allowed


def test_decision_lists_checked_rule_ids_and_is_json_friendly() -> None:
    d = decide(attempt(sh(2026, 3, 2, 10)), [], CTX, CN)
    assert {"ALL-1", "ALL-2", "CN-1", "CN-2", "CN-8", "CN-10", "CN-22"} <= set(d.checked_rule_ids)
    assert d.to_dict()["allowed"] is True and d.pack == "cn"
