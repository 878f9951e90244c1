"""The plan calculator and the approvals page over HTTP, on SQLite and PostgreSQL: previews write nothing,
bad input is named on the page and changes nothing, a plan within policy is active at once, a settlement
beyond policy waits for a supervisor, who approves or rejects it on the approvals page; legal referrals
are decided there too. Collectors and readers are refused the supervisor's pages."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from desk_builders import AS_OF, Desk, csrf, first_account, make_desk, sign_in
from fastapi.testclient import TestClient
from sqlalchemy import Engine, func, select

from arrears import db
from arrears.api.app import create_app
from arrears.models import AccessLog, Approval, Arrangement, LegalCase
from arrears.money import format_minor

MORNING = "2026-03-02T10:00:00+08:00"


@pytest.fixture
def desk(engine: Engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Desk]:
    monkeypatch.setenv("ARREARS_FROZEN_NOW", MORNING)
    with db.session_scope(engine) as s:
        built = make_desk(s, tmp_path)
    yield built


def _text(html: str) -> str:
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html))


def _client(engine: Engine, username: str) -> TestClient:
    client = TestClient(create_app(engine))
    assert sign_in(client, username).status_code == 303  # type: ignore[attr-defined]
    return client


def _plans(engine: Engine, case_id: int) -> list[Arrangement]:
    with db.session_scope(engine) as s:
        rows = list(s.scalars(select(Arrangement).where(Arrangement.case_id == case_id)))
        for r in rows:
            s.expunge(r)
        return rows


def _balance(engine: Engine, case_id: int) -> tuple[int, int]:
    with db.session_scope(engine) as s:
        a = first_account(s, case_id)
        return a.id, a.principal_minor + a.interest_minor + a.penalty_minor + a.fees_minor + a.costs_minor


def test_a_preview_shows_the_schedule_and_writes_nothing(engine: Engine, desk: Desk) -> None:
    case_id = desk.cases[0]
    account_id, _ = _balance(engine, case_id)
    client = _client(engine, desk.users["a"].username)
    page = client.get(f"/cases/{case_id}/plan")
    assert (
        page.status_code == 200 and "方案试算" in page.text and 'data-testid="kind-settlement"' in page.text
    )
    r = client.get(
        f"/cases/{case_id}/plan",
        params={
            "kind": "instalments",
            "preview": "1",
            "account_ids": account_id,
            "count": "4",
            "frequency": "monthly",
            "first_on": "2026-03-15",
        },
    )
    assert r.status_code == 200
    schedule = re.search(r'data-testid="schedule">(.*?)</table>', r.text, re.S)
    assert schedule and schedule.group(1).count("<tr>") == 5  # header + four instalments
    for due in ("2026-03-15", "2026-04-15", "2026-05-15", "2026-06-15"):
        assert due in schedule.group(1)
    assert _plans(engine, case_id) == []
    with db.session_scope(engine) as s:
        logged = s.scalar(
            select(func.count())
            .select_from(AccessLog)
            .where(AccessLog.case_id == case_id, AccessLog.action == "view_plan_calculator")
        )
    assert logged == 2  # each opening of the calculator is a read of the debtor's record (PI-9)


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        (
            {"kind": "settlement", "settle_amount": "12,34.5x", "payments": "1", "first_on": "2026-03-10"},
            "不是有效金额",
        ),
        (
            {"kind": "settlement", "settle_amount": "100", "payments": "1", "first_on": "2026-02-30"},
            "不是有效日期",
        ),
        ({"kind": "instalments", "count": "0", "first_on": "2026-03-10"}, "应为正整数"),
        ({"kind": "lump_sum", "pay_on": "2026-03-01"}, "before the quote date"),
    ],
)
def test_bad_terms_are_named_on_the_page_and_nothing_is_written(
    engine: Engine, desk: Desk, fields: dict[str, str], message: str
) -> None:
    case_id = desk.cases[0]
    client = _client(engine, desk.users["a"].username)
    preview = client.get(f"/cases/{case_id}/plan", params={**fields, "preview": "1"})
    assert preview.status_code == 422 and message in _text(preview.text)
    token = csrf(client.get(f"/cases/{case_id}").text)
    agreed = client.post(f"/cases/{case_id}/plan", data={**fields, "csrf_token": token})
    assert agreed.status_code == 422 and message in _text(agreed.text)
    assert 'data-testid="error"' in agreed.text
    assert _plans(engine, case_id) == []


def test_a_plan_within_policy_is_active_at_once_and_shows_on_the_case(engine: Engine, desk: Desk) -> None:
    case_id = desk.cases[0]
    account_id, total = _balance(engine, case_id)
    client = _client(engine, desk.users["a"].username)
    token = csrf(client.get(f"/cases/{case_id}").text)
    r = client.post(
        f"/cases/{case_id}/plan",
        data={
            "csrf_token": token,
            "kind": "lump_sum",
            "account_ids": str(account_id),
            "pay_on": "2026-03-09",
        },
    )
    assert r.status_code == 200 and "还款方案已生效" in r.text
    (plan,) = _plans(engine, case_id)
    assert (
        plan.status == "active" and plan.payable_minor == total and plan.created_by_id == desk.users["a"].id
    )
    text = _text(r.text)
    assert "一次性还清" in text and "执行中" in text and format_minor(total, "CNY", "zh_CN") in text


def test_another_collector_cannot_open_the_calculator_of_a_case_not_theirs(
    engine: Engine, desk: Desk
) -> None:
    client = _client(engine, desk.users["b"].username)
    assert client.get(f"/cases/{desk.cases[0]}/plan").status_code == 403
    reader = _client(engine, desk.users["auditor"].username)
    assert reader.get(f"/cases/{desk.cases[0]}/plan").status_code == 403


def _settle_beyond_policy(engine: Engine, desk: Desk, case_id: int) -> Arrangement:
    account_id, total = _balance(engine, case_id)
    half = total // 2
    client = _client(engine, desk.users["a"].username)
    fields = {
        "kind": "settlement",
        "account_ids": str(account_id),
        "settle_amount": f"{half // 100}.{half % 100:02d}",
        "payments": "1",
        "first_on": "2026-03-20",
    }
    preview = client.get(f"/cases/{case_id}/plan", params={**fields, "preview": "1"})
    assert preview.status_code == 200 and 'data-testid="needs-approval"' in preview.text
    assert "提交审批" in preview.text
    token = csrf(preview.text)
    r = client.post(f"/cases/{case_id}/plan", data={**fields, "csrf_token": token})
    assert r.status_code == 200 and "已提交组长审批" in r.text and "待审批" in _text(r.text)
    (plan,) = _plans(engine, case_id)
    assert plan.status == "pending_approval" and plan.waived_minor == total - half
    return plan


def test_a_settlement_beyond_policy_waits_and_the_supervisor_approves_it(engine: Engine, desk: Desk) -> None:
    case_id = desk.cases[0]
    plan = _settle_beyond_policy(engine, desk, case_id)
    boss = _client(engine, desk.users["supervisor"].username)
    page = boss.get("/supervisor/approvals")
    assert page.status_code == 200
    assert f'data-plan-id="{plan.id}"' in page.text and "减免和解" in page.text
    assert "方案超出政策限制，需主管审批" in page.text  # the reason it waits, from the stored plan
    r = boss.post(
        f"/supervisor/approvals/arrangements/{plan.id}",
        data={"csrf_token": csrf(page.text), "decision": "approve", "reason": ""},
    )
    assert r.status_code == 200 and "已批准" in r.text and f'data-plan-id="{plan.id}"' not in r.text
    (after,) = _plans(engine, case_id)
    assert after.status == "active"
    with db.session_scope(engine) as s:
        (approval,) = s.scalars(
            select(Approval).where(Approval.subject_kind == "arrangement", Approval.subject_id == plan.id)
        )
        assert approval.decision == "approved" and approval.user_id == desk.users["supervisor"].id
    case_page = _client(engine, desk.users["a"].username).get(f"/cases/{case_id}")
    plans_card = re.search(r'data-testid="plans">(.*?)</section>', case_page.text, re.S)
    assert plans_card and "执行中" in plans_card.group(1) and "减免和解" in plans_card.group(1)
    timeline = re.search(r'data-testid="timeline">(.*?)</ol>', case_page.text, re.S)
    assert timeline and f"批准了还款方案 #{plan.id}" in _text(timeline.group(1))


def test_a_rejection_needs_a_reason_and_collectors_cannot_decide(engine: Engine, desk: Desk) -> None:
    case_id = desk.cases[0]
    plan = _settle_beyond_policy(engine, desk, case_id)
    collector = _client(engine, desk.users["a"].username)
    token = csrf(collector.get(f"/cases/{case_id}").text)
    refused = collector.post(
        f"/supervisor/approvals/arrangements/{plan.id}", data={"csrf_token": token, "decision": "approve"}
    )
    assert refused.status_code == 403 and "只有组长和管理员" in refused.text
    boss = _client(engine, desk.users["supervisor"].username)
    token = csrf(boss.get("/supervisor/approvals").text)
    no_reason = boss.post(
        f"/supervisor/approvals/arrangements/{plan.id}", data={"csrf_token": token, "decision": "reject"}
    )
    assert no_reason.status_code == 422 and "请填写原因" in no_reason.text
    assert _plans(engine, case_id)[0].status == "pending_approval"
    rejected = boss.post(
        f"/supervisor/approvals/arrangements/{plan.id}",
        data={"csrf_token": token, "decision": "reject", "reason": "减免过多"},
    )
    assert rejected.status_code == 200 and "已驳回" in rejected.text
    assert _plans(engine, case_id)[0].status == "rejected"


def test_a_legal_referral_is_approved_on_the_approvals_page(engine: Engine, desk: Desk) -> None:
    from arrears.legal import service as legal_service

    case_id = desk.cases[1]
    with db.session_scope(engine) as s:
        account = first_account(s, case_id)
        legal = legal_service.refer_to_legal(
            s,
            account_ids=[account.id],
            kind="lawyer_letter",
            referred_by_id=desk.users["b"].id,
            referred_on=AS_OF,
            law_firm_name="示例律师事务所",
        )
        legal_id = legal.id
    boss = _client(engine, desk.users["supervisor"].username)
    page = boss.get("/supervisor/approvals")
    assert "示例律师事务所" in page.text and "律师函" in page.text
    r = boss.post(
        f"/supervisor/approvals/legal/{legal_id}", data={"csrf_token": csrf(page.text), "decision": "approve"}
    )
    assert r.status_code == 200 and "已批准" in r.text
    with db.session_scope(engine) as s:
        found = s.get(LegalCase, legal_id)
        assert found is not None and found.status == "approved"
        assert found.approved_by_id == desk.users["supervisor"].id


@pytest.mark.parametrize(
    "path", ["/supervisor", "/supervisor/team", "/supervisor/approvals", "/supervisor/runs"]
)
def test_supervisor_pages_refuse_collectors_and_readers(engine: Engine, desk: Desk, path: str) -> None:
    for who in ("a", "auditor"):
        r = _client(engine, desk.users[who].username).get(path)
        assert r.status_code == 403 and "只有组长和管理员" in r.text
    boss = _client(engine, desk.users["supervisor"].username).get(path)
    assert boss.status_code == 200
    assert 'data-testid="nav-approvals"' in boss.text


def test_the_header_shows_each_role_its_own_links(engine: Engine, desk: Desk) -> None:
    collector = _client(engine, desk.users["a"].username).get("/queue").text
    assert 'data-testid="nav-queue"' in collector and 'data-testid="nav-dashboard"' not in collector
    boss = _client(engine, desk.users["supervisor"].username).get("/queue").text
    for link in ("nav-queue", "nav-dashboard", "nav-team", "nav-approvals", "nav-runs"):
        assert f'data-testid="{link}"' in boss


def test_no_plan_is_written_twice_for_one_account(engine: Engine, desk: Desk) -> None:
    case_id = desk.cases[0]
    account_id, _ = _balance(engine, case_id)
    client = _client(engine, desk.users["a"].username)
    token = csrf(client.get(f"/cases/{case_id}").text)
    form = {"csrf_token": token, "kind": "lump_sum", "account_ids": str(account_id), "pay_on": "2026-03-09"}
    assert client.post(f"/cases/{case_id}/plan", data=form).status_code == 200
    second = client.post(f"/cases/{case_id}/plan", data=form)
    assert second.status_code == 409 and "已在方案" in second.text
    with db.session_scope(engine) as s:
        assert (
            s.scalar(select(func.count()).select_from(Arrangement).where(Arrangement.case_id == case_id)) == 1
        )
