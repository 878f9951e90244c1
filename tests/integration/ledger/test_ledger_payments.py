"""Payments through the service on a real database: CN-27 / CN-28 worked examples, reversals, credit."""

from __future__ import annotations

from datetime import UTC, date, datetime

import ledger_builders as b
import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from arrears.errors import Conflict, ValidationFailed
from arrears.ledger import service
from arrears.models import Account, Posting

NOW = datetime(2025, 6, 1, 8, 0, tzinfo=UTC)
PAID_ON = date(2025, 6, 1)


def _balances(session: Session, *accounts: Account) -> dict[str, tuple[int, ...]]:
    out = {}
    for a in accounts:
        session.refresh(a)
        out[a.external_ref] = (
            a.costs_minor,
            a.interest_minor,
            a.penalty_minor,
            a.fees_minor,
            a.principal_minor,
            a.credit_minor,
        )
    return out


def _by_account(view: service.PaymentOut) -> dict[str, dict[str | None, int]]:
    out: dict[str, dict[str | None, int]] = {}
    for s in view.splits:
        out.setdefault(s.external_ref, {})[s.component] = -s.amount_minor
    return out


def test_cn28_partial_payment_goes_to_costs_then_interest_and_penalty_then_fees_then_principal(
    session: Session,
) -> None:
    p = b.portfolio(session)
    d, c = b.debtor(session, p)
    a = b.account(
        session, p, d, c, ref="A", principal=100_000, interest=3_000, penalty=1_000, fees=500, costs=800
    )
    view = service.post_payment(
        session,
        portfolio_id=p.id,
        account_id=a.id,
        amount_minor=2_800,
        received_on=PAID_ON,
        reference="R1",
        now=NOW,
    )
    # costs 800 first; 2,000 left shared pro rata by interest 3,000 : penalty 1,000 (one CN-28 step)
    assert _by_account(view) == {"A": {"costs": 800, "interest": 1_500, "penalty": 500}}
    assert {s.rule_id for s in view.splits} == {"CN-28"}
    assert view.allocated_minor == 2_800 and view.credit_minor == 0
    assert _balances(session, a)["A"] == (0, 1_500, 500, 500, 100_000, 0)
    assert service.verify_balances(session, portfolio_id=p.id) == []


def test_cn27_due_debts_first_then_least_secured_then_most_burdensome_then_earliest_due(
    session: Session,
) -> None:
    p = b.portfolio(session)
    d, c = b.debtor(session, p)
    not_due = b.account(session, p, d, c, ref="NOT-DUE", principal=10_000, due_date=date(2025, 12, 1))
    secured = b.account(session, p, d, c, ref="SECURED", principal=10_000, secured=True, rate_ppm=300_000)
    cheap = b.account(session, p, d, c, ref="CHEAP", principal=10_000, rate_ppm=100_000)
    dear = b.account(session, p, d, c, ref="DEAR", principal=10_000, rate_ppm=200_000)
    view = service.post_payment(
        session,
        portfolio_id=p.id,
        debtor_id=d.id,
        amount_minor=25_000,
        received_on=PAID_ON,
        reference="R",
        now=NOW,
    )
    assert _by_account(view) == {
        "DEAR": {"principal": 10_000},
        "CHEAP": {"principal": 10_000},
        "SECURED": {"principal": 5_000},
    }
    rules = {s.external_ref: s.rule_id for s in view.splits}
    assert rules["DEAR"] == "CN-27:most_burdensome;CN-28"
    # each label names the criterion that put the account before the next group
    assert rules["CHEAP"] == "CN-27:least_secured;CN-28"
    assert rules["SECURED"] == "CN-27:due_first;CN-28"
    assert _balances(session, not_due)["NOT-DUE"][4] == 10_000
    assert _balances(session, secured)["SECURED"][4] == 5_000
    assert cheap.status == "settled" and dear.status == "settled"


def test_cn27_equal_debts_share_a_partial_payment_pro_rata(session: Session) -> None:
    p = b.portfolio(session)
    d, c = b.debtor(session, p)
    b.account(session, p, d, c, ref="X", principal=30_000)
    b.account(session, p, d, c, ref="Y", principal=10_000)
    view = service.post_payment(
        session,
        portfolio_id=p.id,
        debtor_id=d.id,
        amount_minor=10_001,
        received_on=PAID_ON,
        reference="R",
        now=NOW,
    )
    assert _by_account(view) == {"X": {"principal": 7_501}, "Y": {"principal": 2_500}}
    assert {s.rule_id for s in view.splits} == {"CN-27:pro_rata;CN-28"}


def test_cn27_the_debtors_designation_governs_and_the_rest_follows_the_order(session: Session) -> None:
    p = b.portfolio(session)
    d, c = b.debtor(session, p)
    b.account(session, p, d, c, ref="DEAR", principal=10_000, rate_ppm=240_000)
    cheap = b.account(session, p, d, c, ref="CHEAP", principal=5_000, interest=200, rate_ppm=50_000)
    view = service.post_payment(
        session,
        portfolio_id=p.id,
        account_id=cheap.id,
        amount_minor=8_000,
        received_on=PAID_ON,
        reference="R",
        now=NOW,
    )
    assert _by_account(view) == {"CHEAP": {"interest": 200, "principal": 5_000}, "DEAR": {"principal": 2_800}}
    rules = {(s.external_ref, s.component): s.rule_id for s in view.splits}
    assert rules[("CHEAP", "interest")] == "CN-27:designation;CN-28"
    assert rules[("DEAR", "principal")] == "CN-27:remaining;CN-28"


def test_overpayment_becomes_a_credit_balance_and_total_paid_equals_allocated_plus_credit(
    session: Session,
) -> None:
    p = b.portfolio(session)
    d, c = b.debtor(session, p)
    a = b.account(session, p, d, c, ref="A", principal=1_000, interest=100)
    view = service.post_payment(
        session,
        portfolio_id=p.id,
        account_id=a.id,
        amount_minor=1_500,
        received_on=PAID_ON,
        reference="R",
        now=NOW,
    )
    assert (view.allocated_minor, view.credit_minor) == (1_100, 400)
    credit = [s for s in view.splits if s.component is None]
    assert (
        credit[0].kind == "credit" and credit[0].amount_minor == -400 and credit[0].rule_id == "overpayment"
    )
    assert _balances(session, a)["A"] == (0, 0, 0, 0, 0, 400)
    assert a.status == "settled"
    assert service.verify_balances(session, portfolio_id=p.id) == []


def test_reversal_of_a_bounced_payment_restores_every_balance_and_the_status(session: Session) -> None:
    p = b.portfolio(session)
    d, c = b.debtor(session, p)
    a1 = b.account(session, p, d, c, ref="A1", principal=5_000, interest=300, fees=50)
    a2 = b.account(session, p, d, c, ref="A2", principal=2_000, costs=100, rate_ppm=1)
    view = service.post_payment(
        session,
        portfolio_id=p.id,
        debtor_id=d.id,
        amount_minor=1_000,
        received_on=PAID_ON,
        reference="R",
        now=NOW,
    )
    service.ensure_opening_postings(session, portfolio_id=p.id)
    before = {"A1": (0, 300, 0, 50, 5_000, 0), "A2": (100, 0, 0, 0, 2_000, 0)}
    over = service.post_payment(
        session,
        portfolio_id=p.id,
        debtor_id=d.id,
        amount_minor=99_999,
        received_on=PAID_ON,
        reference="R2",
        now=NOW,
    )
    assert over.credit_minor > 0
    service.reverse_payment(
        session, payment_id=over.id, reversed_on=date(2025, 6, 3), reason="bounced", now=NOW
    )
    undone = service.reverse_payment(
        session, payment_id=view.id, reversed_on=date(2025, 6, 3), reason="bounced", now=NOW
    )
    assert undone.status == "reversed" and len(undone.reversals) == len(undone.splits)
    assert all(r.rule_id == "reversal:bounced" for r in undone.reversals)
    assert _balances(session, a1, a2) == before
    assert a1.status == "active" and a2.status == "active"
    assert service.verify_balances(session, portfolio_id=p.id) == []
    with pytest.raises(Conflict):
        service.reverse_payment(
            session, payment_id=view.id, reversed_on=date(2025, 6, 3), reason="again", now=NOW
        )


def test_the_same_idempotency_key_posts_once_and_a_duplicate_reference_is_refused(session: Session) -> None:
    p = b.portfolio(session)
    d, c = b.debtor(session, p)
    a = b.account(session, p, d, c, ref="A", principal=10_000)
    kwargs = dict(portfolio_id=p.id, account_id=a.id, amount_minor=1_000, received_on=PAID_ON, now=NOW)
    first = service.post_payment(session, reference="R", idempotency_key="k-1", request_sha256="h", **kwargs)  # type: ignore[arg-type]
    again = service.post_payment(session, reference="R", idempotency_key="k-1", request_sha256="h", **kwargs)  # type: ignore[arg-type]
    assert again == first
    count = session.scalar(select(func.count()).select_from(Posting).where(Posting.payment_id == first.id))
    assert count == len(first.splits)
    with pytest.raises(Conflict) as reused:
        service.post_payment(session, reference="R9", idempotency_key="k-1", request_sha256="other", **kwargs)  # type: ignore[arg-type]
    assert reused.value.code == "idempotency_key_reused"
    with pytest.raises(Conflict) as dup:
        service.post_payment(session, reference="R", **kwargs)  # type: ignore[arg-type]
    assert dup.value.code == "duplicate_reference"


def test_opening_postings_are_made_once_from_the_imported_balances(session: Session) -> None:
    p = b.portfolio(session)
    d, c = b.debtor(session, p)
    a = b.account(session, p, d, c, principal=10_000, interest=120, fees=30)
    assert service.ensure_opening_postings(session, portfolio_id=p.id) == 1
    assert service.ensure_opening_postings(session, portfolio_id=p.id) == 0
    rows = session.scalars(select(Posting).where(Posting.account_id == a.id)).all()
    assert sorted((r.component, r.amount_minor, r.kind, r.rule_id) for r in rows) == [
        ("fees", 30, "charge", "opening"),
        ("interest", 120, "charge", "opening"),
        ("principal", 10_000, "charge", "opening"),
    ]
    assert {r.effective_date for r in rows} == {date(2025, 1, 1)}
    session.refresh(a)
    assert a.charged_minor == 150 and a.ledger_opened_on == date(2025, 1, 1)


def test_a_payment_before_the_opening_balances_is_refused(session: Session) -> None:
    p = b.portfolio(session)
    d, c = b.debtor(session, p)
    a = b.account(session, p, d, c, principal=10_000)
    with pytest.raises(ValidationFailed) as err:
        service.post_payment(
            session,
            portfolio_id=p.id,
            account_id=a.id,
            amount_minor=1,
            received_on=date(2024, 12, 31),
            reference="R",
            now=NOW,
        )
    assert err.value.code == "before_opening"


def test_verify_balances_finds_a_cached_balance_that_drifted(session: Session) -> None:
    p = b.portfolio(session)
    d, c = b.debtor(session, p)
    a = b.account(session, p, d, c, principal=10_000)
    service.ensure_opening_postings(session, portfolio_id=p.id)
    assert service.verify_balances(session, portfolio_id=p.id) == []
    a.principal_minor = 9_999
    session.flush()
    [bad] = service.verify_balances(session, portfolio_id=p.id)
    assert (bad.account_id, bad.component, bad.cached_minor, bad.postings_minor) == (
        a.id,
        "principal",
        9_999,
        10_000,
    )
