"""A re-import of accounts already in the ledger: balance changes become adjustment postings."""

from __future__ import annotations

import csv
import uuid
from datetime import UTC, date, datetime
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session

from arrears.ledger import service
from arrears.models import Account, Posting
from arrears.portfolios import service as portfolios

HEADERS = [
    "借据号",
    "姓名",
    "身份证号",
    "手机号",
    "产品类型",
    "本金",
    "利息",
    "罚息",
    "费用",
    "逾期金额",
    "到期日",
    "放款日期",
]
ID = "11010519491231002X"


def _write(path: Path, ref: str, principal: str, interest: str, penalty: str, fees: str) -> None:
    with path.open("w", encoding="utf-8", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(HEADERS)
        writer.writerow(
            [
                ref,
                "张三",
                ID,
                "13800138000",
                "消费贷",
                principal,
                interest,
                penalty,
                fees,
                "10000",
                "2025-03-01",
                "2024-03-01",
            ]
        )


def test_a_reimport_that_changes_ledger_balances_posts_adjustments_and_balances_still_reconcile(
    session: Session, tmp_path: Path
) -> None:
    tag = uuid.uuid4().hex[:8]
    p = portfolios.create_portfolio(session, name=f"reimport-{tag}", creditor=f"c-{tag}", currency="CNY")
    first = tmp_path / "first.csv"
    _write(first, f"{tag}-1", "8000", "1200", "500", "300")
    assert (
        portfolios.import_accounts(
            session,
            path=first,
            portfolio_name=p.name,
            as_of=date(2025, 7, 1),
            now=datetime(2025, 7, 1, 2, tzinfo=UTC),
        ).status
        == "applied"
    )
    account = session.scalars(select(Account).where(Account.portfolio_id == p.id)).one()
    service.ensure_opening_postings(session, portfolio_id=p.id)
    paid = service.post_payment(
        session,
        portfolio_id=p.id,
        account_id=account.id,
        amount_minor=100_00,
        received_on=date(2025, 7, 2),
        reference=f"R-{tag}",
        now=datetime(2025, 7, 2, 3, tzinfo=UTC),
    )
    assert paid.allocated_minor == 100_00
    before = session.get(Account, account.id)
    assert before is not None
    # CN-28: interest and penalty interest shared the payment
    held = {c: getattr(before, f"{c}_minor") for c in ("principal", "interest", "penalty", "fees")}
    assert held["interest"] + held["penalty"] == 1700_00 - 100_00
    charged_before = before.charged_minor

    # the creditor's next file: principal corrected down, interest up, fees unchanged
    second = tmp_path / "second.csv"
    _write(second, f"{tag}-1", "7500", "1300", "500", "300")
    report = portfolios.import_accounts(
        session,
        path=second,
        portfolio_name=p.name,
        as_of=date(2025, 7, 3),
        now=datetime(2025, 7, 3, 2, tzinfo=UTC),
    )
    assert report.status == "applied", report.errors
    session.expire_all()

    assert service.verify_balances(session, portfolio_id=p.id) == []
    stored = session.get(Account, account.id)
    assert stored is not None
    assert (stored.principal_minor, stored.interest_minor) == (7500_00, 1300_00)
    adjustments = session.scalars(
        select(Posting)
        .where(Posting.account_id == account.id, Posting.kind == "adjustment")
        .order_by(Posting.component)
    ).all()
    assert [(a.component, a.amount_minor, a.effective_date) for a in adjustments] == [
        ("interest", 1300_00 - held["interest"], date(2025, 7, 3)),
        ("penalty", 500_00 - held["penalty"], date(2025, 7, 3)),
        ("principal", -500_00, date(2025, 7, 3)),
    ]
    assert all(a.rule_id == f"import:{report.batch_id}" for a in adjustments)
    # the extra interest counts against the cap (CN-30)
    assert stored.charged_minor == charged_before + 1800_00 - held["interest"] - held["penalty"]

    # the same file again changes nothing
    again = portfolios.import_accounts(
        session,
        path=second,
        portfolio_name=p.name,
        as_of=date(2025, 7, 3),
        now=datetime(2025, 7, 3, 2, tzinfo=UTC),
    )
    assert again.status == "applied"
    assert session.scalars(
        select(Posting).where(Posting.account_id == account.id, Posting.kind == "adjustment")
    ).all() == list(adjustments)
    assert service.verify_balances(session, portfolio_id=p.id) == []
