"""Arrangements stored and tracked (SQLite and PostgreSQL): quote saves nothing, policy decides active or
pending approval, supervisors approve, a missed instalment breaches the plan and marks re-negotiation."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest
from casework_builders import Book
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from arrears.arrangements import service
from arrears.arrangements.promises import AcknowledgmentKind
from arrears.enums import Component
from arrears.errors import Conflict, Forbidden
from arrears.models import Approval, Arrangement, ArrangementInstalment, Case

AS_OF = date(2025, 7, 1)
AT = datetime(2025, 7, 1, 4, 0, tzinfo=UTC)


def six_instalments() -> object:
    return service.parse_request({"kind": "instalments", "count": 6, "first_on": "2025-07-10"})


def count(session: Session, model: type) -> int:
    return int(session.scalar(select(func.count()).select_from(model)) or 0)


def test_quote_saves_nothing(session: Session, book: Book) -> None:
    before = (count(session, Arrangement), count(session, ArrangementInstalment))
    q = service.quote_arrangement(
        session, account_ids=[book.account("4").id], request=six_instalments(), as_of=AS_OF
    )
    assert (
        q.balance_minor == 315000
        and len(q.schedule) == 6
        and sum(s.amount_minor for s in q.schedule) == 315000
    )
    assert (count(session, Arrangement), count(session, ArrangementInstalment)) == before


def test_six_instalments_with_the_third_missed_breach_and_mark_the_case_for_renegotiation(
    session: Session, book: Book
) -> None:
    account = book.account("4")
    plan = service.create_arrangement(
        session,
        account_ids=[account.id],
        request=six_instalments(),
        as_of=AS_OF,
        created_by_id=book.users["collector"].id,
    )
    assert plan.status == "active"  # within policy, below every approval threshold
    amounts = [line.amount_minor for line in plan.instalments]
    assert amounts == [52500] * 6
    assert [line.due_on for line in plan.instalments][:3] == [
        date(2025, 7, 10),
        date(2025, 8, 10),
        date(2025, 9, 10),
    ]
    paid_two = service.payments_frame(
        [(account.id, date(2025, 7, 10), 52500), (account.id, date(2025, 8, 9), 52500)]
    )

    quiet = service.refresh_arrangements(
        session, portfolio_id=book.portfolio.id, as_of=date(2025, 9, 14), payments=paid_two
    )
    assert quiet.breached == () and plan.status == "active"
    case = session.get(Case, account.case_id)
    assert case is not None and case.needs_renegotiation_since is None

    result = service.refresh_arrangements(
        session, portfolio_id=book.portfolio.id, as_of=date(2025, 9, 15), payments=paid_two
    )
    assert result.breached == (plan.id,)
    assert (plan.status, plan.breach_on, plan.breached_seq, plan.paid_minor) == (
        "breached",
        date(2025, 9, 15),
        3,
        105000,
    )
    assert [line.status for line in plan.instalments[:4]] == ["paid", "paid", "missed", "pending"]
    assert case.needs_renegotiation_since == date(2025, 9, 15)
    assert service.cases_needing_renegotiation(session, portfolio_id=book.portfolio.id) == [
        (case.id, date(2025, 9, 15))
    ]
    # breached plans are no longer evaluated: a re-run is a no-op
    assert (
        service.refresh_arrangements(
            session, portfolio_id=book.portfolio.id, as_of=date(2025, 9, 16), payments=paid_two
        ).evaluated
        == 0
    )

    # re-negotiated: a new plan on the case clears the marker
    replacement = service.create_arrangement(
        session,
        account_ids=[account.id],
        request=service.parse_request({"kind": "instalments", "count": 4, "first_on": "2025-09-20"}),
        as_of=date(2025, 9, 16),
    )
    assert replacement.status == "active" and case.needs_renegotiation_since is None
    kinds = [e.kind for e in service.acknowledgments(session, account_id=account.id)]
    assert kinds == [AcknowledgmentKind.REPAYMENT_PLAN, AcknowledgmentKind.REPAYMENT_PLAN]


def test_plan_paid_in_full_completes(session: Session, book: Book) -> None:
    account = book.account("4")
    plan = service.create_arrangement(
        session,
        account_ids=[account.id],
        request=service.parse_request({"kind": "lump_sum", "pay_on": "2025-07-05"}),
        as_of=AS_OF,
    )
    before_agreement = service.payments_frame([(account.id, date(2025, 6, 30), 315000)])
    service.refresh_arrangements(
        session, portfolio_id=book.portfolio.id, as_of=date(2025, 7, 5), payments=before_agreement
    )
    assert plan.status == "active"  # a payment before the plan was agreed does not count
    paid = service.payments_frame([(account.id, date(2025, 7, 4), 315000)])
    result = service.refresh_arrangements(
        session, portfolio_id=book.portfolio.id, as_of=date(2025, 7, 5), payments=paid
    )
    assert result.completed == (plan.id,) and plan.completed_on == date(2025, 7, 4)


def test_settlement_beyond_policy_waits_for_a_supervisor_and_waivers_split_by_account(
    session: Session, book: Book
) -> None:
    ids = [book.account("1").id, book.account("2").id]
    request = service.parse_request({"kind": "settlement", "settle_minor": 1050000, "first_on": "2025-07-15"})
    plan = service.create_arrangement(session, account_ids=ids, request=request, as_of=AS_OF)
    assert plan.status == "pending_approval" and not plan.within_policy
    assert {r["code"] for r in plan.approval_reasons} >= {"outside_policy"}
    with pytest.raises(Conflict):
        service.create_arrangement(session, account_ids=[ids[0]], request=six_instalments(), as_of=AS_OF)

    waivers = service.settlement_waivers(session, arrangement_id=plan.id)
    assert sum(sum(by.values()) for by in waivers.values()) == plan.waived_minor == 450000
    # penalty, fees, interest go first (wholly), then principal; each split 2:1 like the balances
    assert waivers[ids[0]][Component.PENALTY] == 50000 and waivers[ids[1]][Component.PENALTY] == 30000
    assert waivers[ids[0]][Component.PRINCIPAL] + waivers[ids[1]][Component.PRINCIPAL] == 150000

    with pytest.raises(Forbidden):
        service.approve_arrangement(
            session, arrangement_id=plan.id, user_id=book.users["collector"].id, at=AT
        )
    service.approve_arrangement(
        session, arrangement_id=plan.id, user_id=book.users["supervisor"].id, at=AT, reason="一次性结清"
    )
    assert plan.status == "active"
    [decision] = service.approvals(session, subject_kind="arrangement", subject_id=plan.id)
    assert (decision.decision, decision.user_id) == ("approved", book.users["supervisor"].id)
    with pytest.raises(Conflict):
        service.reject_arrangement(
            session, arrangement_id=plan.id, user_id=book.users["supervisor"].id, reason="x", at=AT
        )


def test_rejected_plan_is_recorded_with_its_reason(session: Session, book: Book) -> None:
    request = service.parse_request(
        {"kind": "instalments", "count": 18, "first_on": "2025-07-20"}
    )  # above the 12-instalment approval threshold
    plan = service.create_arrangement(
        session, account_ids=[book.account("3").id], request=request, as_of=AS_OF
    )
    assert plan.status == "pending_approval" and plan.within_policy
    service.reject_arrangement(
        session, arrangement_id=plan.id, user_id=book.users["admin"].id, reason="收入不足以支撑", at=AT
    )
    assert plan.status == "rejected"
    assert (
        session.scalar(
            select(Approval.reason).where(
                Approval.subject_id == plan.id, Approval.subject_kind == "arrangement"
            )
        )
        == "收入不足以支撑"
    )
