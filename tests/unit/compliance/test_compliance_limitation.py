"""Limitation dates (CN-20..CN-26, US-8), from RULEBOOK.md."""

from __future__ import annotations

from datetime import date

import pytest
from compliance_builders import CN, US
from hypothesis import given
from hypothesis import strategies as st

from arrears.compliance.limitation import LimitationEvent, limitation_date
from arrears.compliance.periods import add_months, add_years, retention_until
from arrears.compliance.schemas import LimitationEventKind as K

DUE = LimitationEvent(K.DUE, date(2020, 1, 10), ref="account-1")


def test_cn20_three_years_from_the_due_date_then_time_barred() -> None:
    r = limitation_date([DUE], CN, as_of=date(2023, 1, 10))
    assert r.limitation_on == date(2023, 1, 10) and not r.time_barred and r.rule_id == "CN-20"
    assert limitation_date([DUE], CN, as_of=date(2023, 1, 11)).time_barred
    assert r.set_by == DUE and "2023-01-10" in r.explanation.zh


def test_cn21_instalment_debt_runs_from_the_last_instalment() -> None:
    events = [LimitationEvent(K.DUE, date(2020, m, 1)) for m in range(1, 7)]
    r = limitation_date(reversed(events), CN, as_of=date(2023, 3, 1))
    assert r.limitation_on == date(2023, 6, 1) and r.rule_id == "CN-21" and not r.time_barred


def test_cn24_lawsuit_restarts_the_full_period() -> None:
    suit = LimitationEvent(K.LAWSUIT, date(2022, 6, 1))
    r = limitation_date([DUE, suit], CN, as_of=date(2024, 1, 1))
    assert r.limitation_on == date(2025, 6, 1) and r.set_by == suit and r.rule_id == "CN-24"


def test_cn25_demand_counts_only_with_delivery_evidence() -> None:
    unproven = LimitationEvent(K.DEMAND, date(2022, 6, 1))
    r = limitation_date([DUE, unproven], CN, as_of=date(2024, 1, 1))
    assert r.limitation_on == date(2023, 1, 10) and r.time_barred
    assert r.ignored and r.ignored[0][1].rule_id == "CN-25"
    delivered = LimitationEvent(K.DEMAND, date(2022, 6, 1), delivered=True)
    r = limitation_date([DUE, delivered], CN, as_of=date(2024, 1, 1))
    assert r.limitation_on == date(2025, 6, 1) and r.rule_id == "CN-25"
    deduction = LimitationEvent(K.DEDUCTION, date(2022, 7, 1))
    assert limitation_date([DUE, deduction], CN, as_of=date(2024, 1, 1)).limitation_on == date(2025, 7, 1)


@pytest.mark.parametrize(
    "kind", [K.PROMISE, K.PARTIAL_PAYMENT, K.ARRANGEMENT, K.EXTENSION_REQUEST, K.WRITTEN_ACKNOWLEDGMENT]
)
def test_cn26_debtor_acknowledgment_interrupts(kind: K) -> None:
    r = limitation_date([DUE, LimitationEvent(kind, date(2021, 3, 3))], CN, as_of=date(2023, 6, 1))
    assert r.limitation_on == date(2024, 3, 3) and r.rule_id == "CN-26" and not r.time_barred


def test_cn22_acknowledgment_after_expiry_does_not_restart_but_is_reported_as_waiver() -> None:
    late = LimitationEvent(K.PROMISE, date(2023, 5, 1))
    r = limitation_date([DUE, late], CN, as_of=date(2023, 6, 1))
    assert r.limitation_on == date(2023, 1, 10) and r.time_barred and r.waived_by == late
    assert r.ignored[0][1].rule_id == "CN-22"


def test_cn23_obstacle_in_last_six_months_suspends_until_six_months_after() -> None:
    obstacle = LimitationEvent(K.OBSTACLE, date(2022, 9, 1), end_on=date(2022, 10, 15))
    r = limitation_date([DUE, obstacle], CN, as_of=date(2023, 2, 1))
    assert r.limitation_on == date(2023, 4, 15) and r.rule_id == "CN-23" and not r.time_barred
    early = LimitationEvent(K.OBSTACLE, date(2021, 1, 1), end_on=date(2021, 2, 1))
    assert limitation_date([DUE, early], CN, as_of=date(2023, 2, 1)).limitation_on == date(2023, 1, 10)
    ongoing = LimitationEvent(K.OBSTACLE, date(2022, 12, 1))
    r = limitation_date([DUE, ongoing], CN, as_of=date(2024, 2, 1))
    assert r.rule_id == "CN-20" and r.limitation_on == date(2040, 1, 10)  # only the 20-year cap remains


def test_cn20_twenty_year_absolute_cap() -> None:
    events = [DUE] + [LimitationEvent(K.PROMISE, date(2020 + 3 * i, 1, 1)) for i in range(1, 8)]
    r = limitation_date(events, CN, as_of=date(2040, 2, 1))
    assert r.limitation_on == date(2040, 1, 10) and r.time_barred and r.set_by == DUE


def test_no_due_date_gives_no_limitation_date() -> None:
    r = limitation_date([], CN, as_of=date(2024, 1, 1))
    assert r.limitation_on is None and not r.time_barred


def test_us8_us_pack_period_and_interruptions_come_from_the_pack() -> None:
    r = limitation_date(
        [DUE, LimitationEvent(K.DEMAND, date(2022, 1, 1), delivered=True)], US, as_of=date(2026, 1, 1)
    )
    assert r.limitation_on == date(2026, 1, 10) and r.rule_id == "US-8"  # a demand does not interrupt here
    assert limitation_date([DUE], US, as_of=date(2026, 1, 11)).time_barred


def test_retention_periods_come_from_the_pack() -> None:
    assert retention_until("credit_card_collection_record", date(2026, 1, 1), CN) == (
        date(2028, 1, 1),
        "CN-8",
    )
    assert retention_until("negative_credit_data", date(2026, 1, 1), CN) == (date(2031, 1, 1), "CN-33")
    assert retention_until("call_recording", date(2026, 1, 1), US) == (date(2029, 1, 1), "US-9")


def test_leap_day_arithmetic() -> None:
    assert add_years(date(2020, 2, 29), 3) == date(2023, 2, 28)
    assert add_months(date(2023, 8, 31), -6) == date(2023, 2, 28)


_kinds = st.sampled_from([K.PROMISE, K.PARTIAL_PAYMENT, K.LAWSUIT, K.DEMAND, K.OBSTACLE, K.ARRANGEMENT])
_events = st.lists(
    st.builds(
        LimitationEvent,
        kind=_kinds,
        on=st.dates(date(2018, 1, 1), date(2045, 1, 1)),
        end_on=st.none(),
        delivered=st.booleans(),
    ),
    max_size=8,
)


@given(_events, st.randoms(use_true_random=False))
def test_limitation_does_not_depend_on_event_order(events: list[LimitationEvent], rnd: object) -> None:
    shuffled = list(events)
    rnd.shuffle(shuffled)  # type: ignore[attr-defined]
    a = limitation_date([DUE, *events], CN, as_of=date(2030, 1, 1))
    b = limitation_date([*shuffled, DUE], CN, as_of=date(2030, 1, 1))
    assert (a.limitation_on, a.rule_id, a.set_by) == (b.limitation_on, b.rule_id, b.set_by)


@given(_events)
def test_limitation_never_before_the_base_period_nor_after_the_cap(events: list[LimitationEvent]) -> None:
    r = limitation_date([DUE, *events], CN, as_of=date(2030, 1, 1))
    assert r.limitation_on is not None
    assert date(2023, 1, 10) <= r.limitation_on <= date(2040, 1, 10)
