"""Agencies and placements on SQLite and PostgreSQL: CN-7 refusal, rule-based batch selection, recall by
hand or at expiry, commission on payments received during the placement."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest
from casework_builders import Book
from sqlalchemy.orm import Session

from arrears.agencies import service as agencies
from arrears.arrangements.service import payments_frame
from arrears.enums import Product
from arrears.errors import ComplianceBlocked, Conflict, Forbidden
from arrears.holds import service as holds

PLACED = date(2025, 7, 1)
EXPIRES = date(2025, 10, 1)
AT = datetime(2025, 7, 1, 1, 0, tzinfo=UTC)


def test_unlisted_or_inactive_agency_is_refused_cn7(session: Session, book: Book) -> None:
    unlisted = agencies.create_agency(
        session, name=f"未入名单催收公司-{book.tag}", listed=False, commission_bps=1500
    )
    with pytest.raises(ComplianceBlocked) as refused:
        agencies.place_cases(
            session,
            agency_id=unlisted.id,
            case_ids=[book.account("4").case_id],
            placed_on=PLACED,
            expires_on=EXPIRES,
        )
    assert refused.value.code == "agency_not_listed" and refused.value.details["rule_ids"] == ["CN-7"]
    listed = agencies.create_agency(session, name=f"合规催收公司-{book.tag}", listed=True)
    agencies.update_agency(session, agency_id=listed.id, active=False)
    with pytest.raises(ComplianceBlocked):
        agencies.place_batch(
            session,
            portfolio_id=book.portfolio.id,
            agency_id=listed.id,
            rule=agencies.PlacementRule(),
            placed_on=PLACED,
            expires_on=EXPIRES,
        )
    assert agencies.list_placements(session, agency_id=listed.id) == []


def test_batch_placement_selects_by_dpd_balance_product_and_count(session: Session, book: Book) -> None:
    agency = agencies.create_agency(
        session, name=f"合规催收公司-{book.tag}", listed=True, commission_bps=1200
    )
    pid = book.portfolio.id
    case_of = {ref: book.account(ref).case_id for ref in ("1", "3", "4")}
    # DPD on 1 July: 张三 122 (earliest due 1 March), 李四 42, 王五 21
    assert agencies.select_cases(
        session, portfolio_id=pid, rule=agencies.PlacementRule(dpd_min=30), as_of=PLACED
    ) == [
        case_of["3"],  # largest balance first
        case_of["1"],
    ]
    rule = agencies.PlacementRule(dpd_min=30, dpd_max=100, product=Product.CREDIT_CARD)
    assert agencies.select_cases(session, portfolio_id=pid, rule=rule, as_of=PLACED) == [case_of["3"]]
    small = agencies.PlacementRule(balance_max_minor=400000)
    assert agencies.select_cases(session, portfolio_id=pid, rule=small, as_of=PLACED) == [case_of["4"]]
    holds.place_hold(
        session, account_id=book.account("4").id, kind="cease", reason_code="debtor_request", at=AT
    )
    assert (
        agencies.select_cases(session, portfolio_id=pid, rule=small, as_of=PLACED) == []
    )  # held cases stay home

    placed = agencies.place_batch(
        session,
        portfolio_id=pid,
        agency_id=agency.id,
        rule=agencies.PlacementRule(max_cases=1),
        placed_on=PLACED,
        expires_on=EXPIRES,
        placed_by_id=book.users["supervisor"].id,
    )
    assert [p.case_id for p in placed] == [case_of["3"]]
    assert agencies.active_placement(session, case_id=case_of["3"], as_of=PLACED) is not None
    with pytest.raises(Conflict):
        agencies.place_cases(
            session, agency_id=agency.id, case_ids=[case_of["3"]], placed_on=PLACED, expires_on=EXPIRES
        )
    # already placed cases are not selected again
    again = agencies.select_cases(session, portfolio_id=pid, rule=agencies.PlacementRule(), as_of=PLACED)
    assert case_of["3"] not in again


def test_recall_by_hand_needs_a_supervisor_and_expired_placements_are_recalled_once(
    session: Session, book: Book
) -> None:
    agency = agencies.create_agency(session, name=f"合规催收公司-{book.tag}", listed=True)
    first, second = agencies.place_cases(
        session,
        agency_id=agency.id,
        case_ids=[book.account("1").case_id, book.account("3").case_id],
        placed_on=PLACED,
        expires_on=EXPIRES,
    )
    with pytest.raises(Forbidden):
        agencies.recall_placement(
            session,
            placement_id=first.id,
            recalled_on=date(2025, 8, 1),
            user_id=book.users["agency"].id,
            reason="x",
        )
    agencies.recall_placement(
        session,
        placement_id=first.id,
        recalled_on=date(2025, 8, 1),
        user_id=book.users["supervisor"].id,
        reason="投诉",
    )
    assert (first.recalled_on, first.recalled_by_id) == (date(2025, 8, 1), book.users["supervisor"].id)
    assert agencies.active_placement(session, case_id=first.case_id, as_of=date(2025, 8, 1)) is None
    assert agencies.recall_expired_placements(session, as_of=date(2025, 9, 30)) == []
    assert [p.id for p in agencies.recall_expired_placements(session, as_of=date(2025, 10, 1))] == [second.id]
    assert (
        second.recalled_on == EXPIRES
        and agencies.recall_expired_placements(session, as_of=date(2025, 10, 2)) == []
    )


def test_commission_counts_only_payments_received_during_the_placement(session: Session, book: Book) -> None:
    agency = agencies.create_agency(
        session, name=f"合规催收公司-{book.tag}", listed=True, commission_bps=1250
    )
    [placement] = agencies.place_cases(
        session,
        agency_id=agency.id,
        case_ids=[book.account("1").case_id],
        placed_on=PLACED,
        expires_on=EXPIRES,
    )
    agencies.recall_placement(
        session,
        placement_id=placement.id,
        recalled_on=date(2025, 9, 1),
        user_id=book.users["admin"].id,
        reason="调整",
    )
    payments = payments_frame(
        [
            (book.account("1").id, date(2025, 6, 30), 100000),  # before placement
            (book.account("1").id, date(2025, 7, 1), 33333),
            (book.account("2").id, date(2025, 8, 31), 10001),  # another account of the same case
            (book.account("1").id, date(2025, 9, 1), 50000),  # recalled that day
            (book.account("3").id, date(2025, 7, 15), 70000),  # another case
        ]
    )
    [row] = agencies.commissions(session, agency_id=agency.id, payments=payments)
    assert row.collected_minor == 43334
    assert row.commission_minor == 5417  # 43334 x 12.5% = 5416.75, half up
