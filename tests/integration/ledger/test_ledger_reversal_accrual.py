"""Back-dated reversal: the interest a reversed payment's principal would have earned is posted after all."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import ledger_builders as b
from sqlalchemy import select
from sqlalchemy.orm import Session

from arrears.ledger import service
from arrears.ledger.caps import cap_amount, load_lpr_table
from arrears.models import Account, Posting

IMPORTED = datetime(2025, 2, 28, 2, 0, tzinfo=UTC)  # 2025-02-28 in Shanghai
PAID_ON = date(2025, 3, 1)
NOW = datetime(2025, 3, 10, 2, tzinfo=UTC)


def _state(a: Account) -> tuple[int, int, int, int, int, int]:
    return (
        a.principal_minor,
        a.interest_minor,
        a.penalty_minor,
        a.interest_carry_sub,
        a.penalty_carry_sub,
        a.charged_minor,
    )


def test_a_payment_reversed_after_later_accrual_days_leaves_the_account_as_if_never_paid(
    session: Session,
) -> None:
    p = b.portfolio(session)
    terms = {
        "principal": 1_234_567,
        "rate_ppm": 153_000,
        "penalty_ppm": 71_000,
        "due_date": date(2025, 1, 15),
        "imported_at": IMPORTED,
    }
    d1, c1 = b.debtor(session, p)
    paid = b.account(session, p, d1, c1, **terms)  # type: ignore[arg-type]
    d2, c2 = b.debtor(session, p)
    twin = b.account(session, p, d2, c2, **terms)  # type: ignore[arg-type]
    service.ensure_opening_postings(session, portfolio_id=p.id)
    view = service.post_payment(
        session,
        portfolio_id=p.id,
        account_id=paid.id,
        amount_minor=400_000,
        received_on=PAID_ON,
        reference="BOUNCED",
        now=NOW,
    )
    assert [s.component for s in view.splits] == ["principal"]
    for i in range(8):  # the daily run goes on, on the reduced principal
        service.accrue_portfolio(session, portfolio_id=p.id, as_of=PAID_ON + timedelta(days=i))
    session.refresh(paid)
    session.refresh(twin)
    assert paid.interest_minor < twin.interest_minor

    service.reverse_payment(
        session, payment_id=view.id, reversed_on=PAID_ON + timedelta(days=8), reason="bounced", now=NOW
    )
    paid = session.get(Account, paid.id)  # type: ignore[assignment]
    twin = session.get(Account, twin.id)  # type: ignore[assignment]
    assert paid is not None and twin is not None
    # interest and penalty interest, carries and the charged amount: exactly the twin never paid
    assert _state(paid) == _state(twin)
    catch_up = session.scalars(
        select(Posting).where(Posting.account_id == paid.id, Posting.rule_id == f"reversal_accrual:{view.id}")
    ).all()
    assert {x.component for x in catch_up} == {"interest", "penalty"}
    assert all(x.kind == "accrual" and x.effective_date == PAID_ON + timedelta(days=8) for x in catch_up)
    assert service.verify_balances(session, portfolio_id=p.id) == []

    # the next day accrues as for the twin
    service.accrue_portfolio(session, portfolio_id=p.id, as_of=PAID_ON + timedelta(days=8))
    session.expire_all()
    assert _state(session.get(Account, paid.id)) == _state(session.get(Account, twin.id))  # type: ignore[arg-type]


def test_a_reversal_before_any_day_accrued_on_the_reduced_principal_posts_no_interest(
    session: Session,
) -> None:
    p = b.portfolio(session)
    d, c = b.debtor(session, p)
    a = b.account(session, p, d, c, principal=500_000, rate_ppm=150_000, imported_at=IMPORTED)
    view = service.post_payment(
        session,
        portfolio_id=p.id,
        account_id=a.id,
        amount_minor=100_000,
        received_on=PAID_ON,
        reference="R",
        now=NOW,
    )
    service.reverse_payment(session, payment_id=view.id, reversed_on=PAID_ON, reason="error", now=NOW)
    assert not session.scalars(select(Posting).where(Posting.rule_id.like("reversal_accrual%"))).all()
    assert service.verify_balances(session, portfolio_id=p.id) == []


def test_the_interest_caught_up_by_a_reversal_stays_under_the_cn30_cap(session: Session) -> None:
    p = b.portfolio(session, licensed_lender=False)
    d, c = b.debtor(session, p)
    origination = date(2024, 8, 1)
    cap_ppm = 4 * load_lpr_table().one_year_ppm(origination)
    # all but 50 fen of the cap used by the imported interest
    imported = cap_amount(1_000_000, cap_ppm, origination, PAID_ON) - 50
    a = b.account(
        session,
        p,
        d,
        c,
        principal=1_000_000,
        interest=imported,
        rate_ppm=240_000,  # above the cap, so the cap binds once the principal is back
        origination_date=origination,
        imported_at=IMPORTED,
    )
    view = service.post_payment(
        session,
        portfolio_id=p.id,
        account_id=a.id,
        amount_minor=imported + 900_000,  # interest first (CN-28), then most of the principal
        received_on=PAID_ON,
        reference="R",
        now=NOW,
    )
    last = PAID_ON + timedelta(days=5)
    for i in range(6):
        service.accrue_portfolio(session, portfolio_id=p.id, as_of=PAID_ON + timedelta(days=i))
    service.reverse_payment(session, payment_id=view.id, reversed_on=last, reason="bounced", now=NOW)
    session.refresh(a)
    assert a.charged_minor == cap_amount(1_000_000, cap_ppm, origination, last)
    assert session.scalars(
        select(Posting.rule_id).where(
            Posting.account_id == a.id, Posting.effective_date == last, Posting.rule_id == "CN-30"
        )
    ).all()
    assert service.verify_balances(session, portfolio_id=p.id) == []
