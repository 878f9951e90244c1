"""CN-8: a collection notice states the institution's contact details; a creditor without them gets its
letters refused with a clear bilingual reason, not printed with a blank. SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date
from pathlib import Path

import pytest
from channels_db_builders import make_debt, make_portfolio, queue_message, savepoint_factory, sh
from sqlalchemy import Engine

from arrears.channels import delivery
from arrears.compliance import service as compliance_service
from arrears.compliance.lint import lint_text
from arrears.compliance.schemas import TemplateKind
from arrears.enums import Channel
from arrears.models import ContactAttempt, Creditor


@pytest.fixture
def tx(engine: Engine) -> Iterator[tuple]:
    with savepoint_factory(engine) as (session, factory):
        yield session, factory


def test_a_letter_for_a_creditor_without_contact_details_is_refused_not_printed_blank(
    tx: tuple, tmp_path: Path
) -> None:
    session, _ = tx
    portfolio = make_portfolio(session)
    creditor = session.get(Creditor, portfolio.creditor_id)
    assert creditor is not None
    creditor.phone = None
    debt = make_debt(session, portfolio)
    row = queue_message(
        session, debt, channel="letter", planned_for=sh(2026, 3, 5, 9), template="formal_notice"
    )
    batch = delivery.letters_batch(
        session,
        batch_date=date(2026, 3, 5),
        now=sh(2026, 3, 5, 9, 30),
        portfolio_id=portfolio.id,
        document_dir=tmp_path,
    )
    assert batch.pdf is None and row.status == "blocked" and "CN-8" in row.rule_ids
    assert "creditor has none on file" in (row.last_reason or "")
    attempt = session.get(ContactAttempt, row.contact_attempt_id)
    assert attempt is not None and not attempt.allowed and "CN-8" in attempt.rule_ids.split(",")
    reasons = [r for r in (attempt.decision or {}).get("reasons", []) if r["code"] == "lint_fact_missing"]
    assert reasons and "机构联系方式" in reasons[0]["zh"] and "contact details" in reasons[0]["en"]

    # With the contact details on file the same letter prints.
    creditor.phone = "400-800-1234"
    again = queue_message(
        session, debt, channel="letter", planned_for=sh(2026, 3, 6, 9), template="formal_notice"
    )
    printed = delivery.letters_batch(
        session,
        batch_date=date(2026, 3, 6),
        now=sh(2026, 3, 6, 9, 30),
        portfolio_id=portfolio.id,
        document_dir=tmp_path,
    )
    assert printed.pdf is not None and again.status == "sent"


def test_the_gate_refuses_a_rendered_notice_whose_contact_line_is_blank(tx: tuple) -> None:
    session, _ = tx
    portfolio = make_portfolio(session)
    debt = make_debt(session, portfolio)
    creditor = session.get(Creditor, portfolio.creditor_id)
    assert creditor is not None
    text = (
        f"{creditor.name} 催收通知书\n王小明：您的欠款余额 ¥1,000.00 逾期未还。依据《中华人民共和国民法典》及合同约定，"
        "请尽快还款。如有异议请申诉。联系电话：\n"
    )
    kw = {
        "case_id": debt.case.id,
        "contact_point_id": None,
        "channel": Channel.LETTER,
        "at": sh(2026, 3, 5, 10),
        "collector": "in_house",
        "text": text,
        "template_kind": TemplateKind.COLLECTION_NOTICE,
        "locale": "zh_CN",
    }
    assert compliance_service.check_contact(session, **kw).allowed  # type: ignore[arg-type]
    creditor.phone = None
    d = compliance_service.check_contact(session, **kw)  # type: ignore[arg-type]
    assert not d.allowed and d.rule_ids == ("CN-8",) and d.reasons[0].code == "lint_fact_missing"
    # A template (no case yet) is still satisfied by its placeholder: the check is at rendering time.
    pack = compliance_service.rule_pack("cn")
    source = text.replace("王小明", "{debtor_name}") + "{institution_phone}"
    assert lint_text(source, pack=pack, kind=TemplateKind.COLLECTION_NOTICE, locale="zh_CN").ok
