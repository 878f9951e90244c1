"""The collection desk over HTTP (FastAPI TestClient), on SQLite and PostgreSQL: sign-in, lockout, CSRF,
who may open which case (PI-9 access log), the call check and the call, promise and payment forms."""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime
from pathlib import Path

import pytest
from desk_builders import Desk, csrf, first_account, make_desk, own_phone, sign_in
from fastapi.testclient import TestClient
from sqlalchemy import Engine, event, func, select

from arrears import db
from arrears.api.app import create_app
from arrears.compliance import service as compliance
from arrears.compliance.schemas import Outcome
from arrears.contacts import service as contacts
from arrears.enums import Channel
from arrears.models import AccessLog, Case, ContactAttempt, Debtor, LoginAttempt, Payment, Promise, WorkItem

MORNING = "2026-03-02T10:00:00+08:00"


@pytest.fixture
def desk(engine: Engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Desk]:
    monkeypatch.setenv("ARREARS_FROZEN_NOW", MORNING)
    with db.session_scope(engine) as s:
        built = make_desk(s, tmp_path)
    yield built


def _text(html: str) -> str:
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html))


def test_pages_need_a_session_and_sign_in_sets_an_httponly_samesite_cookie(
    engine: Engine, desk: Desk
) -> None:
    client = TestClient(create_app(engine))
    r = client.get("/queue", follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"].startswith("/login")
    r = sign_in(client, desk.users["a"].username)
    assert r.status_code == 303
    cookie = r.headers["set-cookie"].lower()
    assert "arrears_session=" in cookie and "httponly" in cookie and "samesite=lax" in cookie
    assert client.get("/queue").status_code == 200


def test_sign_in_without_the_forms_csrf_token_is_refused(engine: Engine, desk: Desk) -> None:
    client = TestClient(create_app(engine))
    client.get("/login")
    r = client.post(
        "/login",
        data={"username": desk.users["a"].username, "password": "correct-horse-9", "csrf_token": "forged"},
        follow_redirects=False,
    )
    assert r.status_code == 403 and "arrears_session" not in r.headers.get("set-cookie", "")


def test_five_failed_sign_ins_lock_the_account_for_fifteen_minutes(
    engine: Engine, desk: Desk, monkeypatch: pytest.MonkeyPatch
) -> None:
    client = TestClient(create_app(engine))
    name = desk.users["b"].username
    for _ in range(5):
        assert sign_in(client, name, "wrong-password").status_code == 401
    locked = sign_in(client, name)  # the right password, but locked
    assert locked.status_code == 429
    monkeypatch.setenv("ARREARS_FROZEN_NOW", "2026-03-02T10:14:00+08:00")
    assert sign_in(client, name).status_code == 429
    monkeypatch.setenv("ARREARS_FROZEN_NOW", "2026-03-02T10:16:00+08:00")
    assert sign_in(client, name).status_code == 303
    with db.session_scope(engine) as s:
        tries = s.scalar(select(func.count()).select_from(LoginAttempt).where(LoginAttempt.username == name))
    assert tries == 8


def test_a_collector_opens_only_their_cases_a_supervisor_every_case_and_each_view_is_logged(
    engine: Engine, desk: Desk
) -> None:
    own, other = desk.cases[0], desk.cases[1]
    collector = TestClient(create_app(engine))
    sign_in(collector, desk.users["a"].username)
    supervisor = TestClient(create_app(engine))
    sign_in(supervisor, desk.users["supervisor"].username)
    with db.session_scope(engine) as s:
        before = s.scalar(select(func.count()).select_from(AccessLog).where(AccessLog.case_id == own))
    page = collector.get(f"/cases/{own}")
    assert page.status_code == 200
    with db.session_scope(engine) as s:
        case = s.get(Case, own)
        debtor = s.get(Debtor, case.debtor_id) if case else None
    assert debtor is not None
    if debtor.national_id:  # the generated portfolio has some debtors without one
        assert debtor.national_id not in page.text, "the ID number is masked (PI-6)"
        if debtor.id_type == "resident_id":
            assert re.search(r"\d{6}\*+\d{3}[\dX]", page.text), "the masked ID number is shown (PI-6)"
    assert collector.get(f"/cases/{other}").status_code == 403
    assert supervisor.get(f"/cases/{other}").status_code == 200
    assert supervisor.get(f"/cases/{own}").status_code == 200
    with db.session_scope(engine) as s:
        rows = s.scalars(select(AccessLog).where(AccessLog.case_id == own).order_by(AccessLog.id)).all()
    assert len(rows) == before + 2
    assert {r.user_id for r in rows[-2:]} == {desk.users["a"].id, desk.users["supervisor"].id}


def test_the_call_panel_blocks_a_call_at_half_past_ten_at_night_with_cn_1(engine: Engine, desk: Desk) -> None:
    client = TestClient(create_app(engine))
    sign_in(client, desk.users["a"].username)
    night = _text(client.get(f"/cases/{desk.cases[0]}", params={"at": "2026-03-02T22:30"}).text)
    assert "CN-1" in night and "22:30" in night and "2026-03-03 08:00" in night
    client.get("/lang/en")
    day = client.get(f"/cases/{desk.cases[0]}").text
    assert "May I call now?" in day and 'href="tel:+86' in day


def test_forms_need_the_sessions_csrf_token_and_a_read_only_user_cannot_post(
    engine: Engine, desk: Desk
) -> None:
    case_id = desk.cases[0]
    client = TestClient(create_app(engine))
    sign_in(client, desk.users["a"].username)
    with db.session_scope(engine) as s:
        account = first_account(s, case_id)
    form = {
        "account_id": account.id,
        "amount": "10.00",
        "reference": f"R-{desk.tag}",
        "received_on": "2026-03-02",
    }
    assert client.post(f"/cases/{case_id}/payments", data={**form, "csrf_token": "x"}).status_code == 403
    auditor = TestClient(create_app(engine))
    sign_in(auditor, desk.users["auditor"].username)
    token = csrf(auditor.get(f"/cases/{case_id}").text)
    assert auditor.post(f"/cases/{case_id}/payments", data={**form, "csrf_token": token}).status_code == 403
    with db.session_scope(engine) as s:
        assert (
            s.scalar(select(func.count()).select_from(Payment).where(Payment.reference == f"R-{desk.tag}"))
            == 0
        )


def test_log_a_call_record_a_promise_and_post_a_payment_change_the_page(engine: Engine, desk: Desk) -> None:
    case_id = desk.cases[0]
    client = TestClient(create_app(engine))
    sign_in(client, desk.users["a"].username)
    with db.session_scope(engine) as s:
        phone = own_phone(s, case_id)
        account = first_account(s, case_id)
        total_before = sum(
            getattr(account, f"{c}_minor") for c in ("principal", "interest", "penalty", "fees", "costs")
        )
    token = csrf(client.get(f"/cases/{case_id}").text)

    blocked = client.post(
        f"/cases/{case_id}/attempts",
        data={
            "csrf_token": token,
            "contact_point_id": phone,
            "outcome": "no_answer",
            "started_at": "2026-03-01T22:30",  # last night, in quiet hours
        },
    )
    assert blocked.status_code == 409 and "CN-1" in _text(blocked.text)
    # an attempt can only be recorded once it has happened: tonight's is refused and nothing is stored
    later = client.post(
        f"/cases/{case_id}/attempts",
        data={
            "csrf_token": token,
            "contact_point_id": phone,
            "outcome": "no_answer",
            "started_at": "2026-03-02T22:30",
        },
    )
    assert later.status_code == 422 and "晚于现在" in _text(later.text)
    ok = client.post(
        f"/cases/{case_id}/attempts",
        data={"csrf_token": token, "contact_point_id": phone, "outcome": "right_party", "notes": "本人接听"},
    )
    assert ok.status_code == 200 and "已记录通话结果" in ok.text
    promise = client.post(
        f"/cases/{case_id}/promises",
        data={"csrf_token": token, "account_id": account.id, "amount": "100.00", "promised_on": "2026-03-09"},
    )
    assert promise.status_code == 200 and "已记录还款承诺" in promise.text
    key = {"payment_key": f"k-{desk.tag}"}
    form = {"csrf_token": token, "account_id": account.id, "amount": "50.00", "received_on": "2026-03-02"}
    # a mistyped amount: the form says so in the page's language and posts nothing
    typo = client.post(
        f"/cases/{case_id}/payments",
        data={**form, "amount": "12,34x", "payment_key": f"typo-{desk.tag}", "reference": f"RX-{desk.tag}"},
    )
    assert typo.status_code == 422 and "不是有效金额" in _text(typo.text)
    paid = client.post(f"/cases/{case_id}/payments", data={**form, **key, "reference": f"RC-{desk.tag}"})
    again = client.post(f"/cases/{case_id}/payments", data={**form, **key, "reference": f"RC-{desk.tag}"})
    assert paid.status_code == 200 and again.status_code == 200
    total_after = total_before - 5000
    shown = f"¥{total_after // 100:,}.{total_after % 100:02d}"
    assert shown in _text(paid.text)
    with db.session_scope(engine) as s:
        attempts = s.scalars(select(ContactAttempt).where(ContactAttempt.case_id == case_id)).all()
        assert sorted(a.outcome for a in attempts) == ["blocked", "right_party"]
        assert s.scalar(select(func.count()).select_from(Promise).where(Promise.case_id == case_id)) == 1
        assert (
            s.scalar(select(func.count()).select_from(Payment).where(Payment.reference == f"RC-{desk.tag}"))
            == 1
        )
    timeline = _text(paid.text)
    assert "被拦截" in timeline and "承诺" in timeline and f"RC-{desk.tag}" in timeline


def test_next_case_claims_the_top_item_of_the_collectors_queue(engine: Engine, desk: Desk) -> None:
    from arrears.strategy import queue_service

    with db.session_scope(engine) as s:
        queue_service.set_collector(s, user=desk.users["a"].id, queues=["early", "late"], cap=0)
    client = TestClient(create_app(engine))
    sign_in(client, desk.users["a"].username)
    page = client.get("/queue")
    r = client.post("/queue/next", data={"csrf_token": csrf(page.text)}, follow_redirects=False)
    # no work items yet for this collector: the queue says so instead of failing
    assert r.status_code == 200 and "你没有待处理的电话或外访任务" in r.text


def _statements(engine: Engine, fetch: Callable[[], object]) -> list[str]:
    seen: list[str] = []

    def record(*args: object) -> None:
        seen.append(str(args[2]))

    event.listen(engine, "before_cursor_execute", record)
    try:
        fetch()
    finally:
        event.remove(engine, "before_cursor_execute", record)
    return seen


def test_queue_and_case_pages_cost_a_few_queries_whatever_the_queue_or_history_holds(
    engine: Engine, desk: Desk
) -> None:
    """No query per row: the work queue and the case page send the same few statements for one item or
    attempt as for many (the desk's latency target rests on it)."""
    case_id = desk.cases[0]
    collector = TestClient(create_app(engine))
    sign_in(collector, desk.users["a"].username)
    with db.session_scope(engine) as s:
        case = s.get(Case, case_id)
        assert case is not None
        account = first_account(s, case_id)
        phone = own_phone(s, case_id)
        # as after a daily run (otherwise the gate works the limitation dates out on every check)
        compliance.refresh_limitations(s, portfolio_id=desk.portfolio_id, as_of=date(2026, 3, 2))
    window = (datetime(2026, 3, 2, 1, tzinfo=UTC), datetime(2026, 3, 2, 13, tzinfo=UTC))

    def add_items(n: int) -> None:
        with db.session_scope(engine) as s:
            for _ in range(n):
                s.add(
                    WorkItem(
                        portfolio_id=desk.portfolio_id,
                        case_id=case_id,
                        account_id=account.id,
                        contact_point_id=phone,
                        as_of_date=date(2026, 3, 2),
                        kind="call",
                        action_key="call",
                        template="call",
                        audience="debtor",
                        priority=10,
                        collector_id=desk.users["a"].id,
                        status="open",
                        window_start_at=window[0],
                        window_end_at=window[1],
                        idempotency_key=f"desk-test:{uuid.uuid4().hex}",
                    )
                )

    def log_call(n: int) -> None:
        with db.session_scope(engine) as s:
            for i in range(n):
                contacts.record_attempt(
                    s,
                    case_id=case_id,
                    contact_point_id=phone,
                    channel=Channel.CALL,
                    started_at=datetime(2026, 2, 1 + i, 2, tzinfo=UTC),
                    outcome=Outcome.NO_ANSWER,
                    collector="in_house",
                )

    add_items(1)
    log_call(1)
    queue_one = _statements(engine, lambda: collector.get("/queue"))
    case_one = _statements(engine, lambda: collector.get(f"/cases/{case_id}"))
    add_items(5)
    log_call(5)
    queue_many = _statements(engine, lambda: collector.get("/queue"))
    case_many = _statements(engine, lambda: collector.get(f"/cases/{case_id}"))
    assert collector.get("/queue").text.count(f'href="/cases/{case_id}?item=') == 6
    assert len(queue_one) == len(queue_many) <= 3
    assert len(case_one) == len(case_many) <= 13


def test_a_tampered_form_gets_the_case_page_with_a_message_and_stores_nothing(
    engine: Engine, desk: Desk
) -> None:
    case_id = desk.cases[0]
    client = TestClient(create_app(engine))
    sign_in(client, desk.users["a"].username)
    with db.session_scope(engine) as s:
        phone = own_phone(s, case_id)
        account = first_account(s, case_id)
    token = csrf(client.get(f"/cases/{case_id}").text)

    def stored() -> tuple[int | None, ...]:
        with db.session_scope(engine) as s:
            count = select(func.count())
            return (
                s.scalar(count.select_from(ContactAttempt).where(ContactAttempt.case_id == case_id)),
                s.scalar(count.select_from(Promise).where(Promise.case_id == case_id)),
                s.scalar(count.select_from(Payment).where(Payment.account_id == account.id)),
            )

    before = stored()
    call = {"csrf_token": token, "contact_point_id": phone, "outcome": "right_party"}
    promise = {"csrf_token": token, "account_id": account.id, "amount": "100.00", "promised_on": "2026-03-09"}
    payment = {
        "csrf_token": token,
        "account_id": account.id,
        "amount": "50.00",
        "reference": f"RT-{desk.tag}",
        "received_on": "2026-03-02",
    }
    unreadable = [
        ("attempts", {**call, "contact_point_id": "abc"}, "contact_point_id"),
        ("attempts", {k: v for k, v in call.items() if k != "outcome"}, "outcome"),
        ("promises", {**promise, "account_id": "1 OR 1=1"}, "account_id"),
        ("payments", {**payment, "account_id": "x"}, "account_id"),
        ("reveal", {"csrf_token": token}, "field"),
    ]
    for form, data, field in unreadable:
        r = client.post(f"/cases/{case_id}/{form}", data=data)
        assert r.status_code == 422 and r.headers["content-type"].startswith("text/html"), form
        text = _text(r.text)
        assert "表单内容无效" in text and field in text and "没有保存任何内容" in text, form
        assert 'data-testid="error"' in r.text and 'name="contact_point_id"' in r.text, "the case page"
    # an id beyond what the database holds: the same page, not the API's JSON
    for form, data in (
        ("attempts", {**call, "contact_point_id": str(2**70)}),
        ("promises", {**promise, "account_id": str(2**70)}),
    ):
        r = client.post(f"/cases/{case_id}/{form}", data=data)
        assert r.status_code == 422 and "数值超出范围" in _text(r.text), form
    # an amount beyond any real debt: refused with the case page, not a server error
    for form, data in (
        ("payments", {**payment, "amount": "99999999999999999999999"}),
        ("promises", {**promise, "amount": "99999999999999999999999"}),
    ):
        r = client.post(f"/cases/{case_id}/{form}", data=data)
        assert r.status_code < 500 and "金额过大" in _text(r.text), form
    client.get("/lang/en")
    r = client.post(f"/cases/{case_id}/attempts", data={**call, "contact_point_id": "abc"})
    assert r.status_code == 422 and "The form could not be read (contact_point_id)" in _text(r.text)
    # a case id that is not a number: the error page
    r = client.post("/cases/abc/attempts", data=call)
    assert r.status_code == 422 and r.headers["content-type"].startswith("text/html")
    assert "The form could not be read (case_id)" in _text(r.text)
    assert stored() == before


def test_every_desk_door_answers_unreadable_input_with_a_page(engine: Engine, desk: Desk) -> None:
    supervisor = TestClient(create_app(engine))
    sign_in(supervisor, desk.users["supervisor"].username)
    token = csrf(supervisor.get("/supervisor/approvals").text)
    for url in ("/supervisor/approvals/arrangements/abc", f"/supervisor/approvals/legal/{2**70}"):
        r = supervisor.post(url, data={"csrf_token": token, "decision": "approve"})
        assert r.status_code == 422 and r.headers["content-type"].startswith("text/html"), url
        assert 'data-testid="error"' in r.text, url
    # the error page leads back to the page the form was on, never to another site
    back = re.compile(r'href="([^"]*)" data-testid="error-back"')
    url = "/supervisor/approvals/arrangements/abc"
    for referer, expected in (
        ("http://testserver/supervisor/approvals?tab=legal", "/supervisor/approvals?tab=legal"),
        ("https://elsewhere.example/phish", "/queue"),
        (f"http://testserver{url}", "/queue"),
        (None, "/queue"),
    ):
        headers = {"referer": referer} if referer else {}
        r = supervisor.post(url, data={"csrf_token": token, "decision": "approve"}, headers=headers)
        found = back.search(r.text)
        assert found is not None and found.group(1) == expected, referer
    r = supervisor.get(f"/cases/{desk.cases[0]}", params={"item": "x"})
    assert r.status_code == 422 and "表单内容无效（item）" in _text(r.text)
    # without a session it is still the sign-in page, as for any page
    anonymous = TestClient(create_app(engine))
    r = anonymous.post(
        f"/cases/{desk.cases[0]}/attempts", data={"contact_point_id": "abc"}, follow_redirects=False
    )
    assert r.status_code == 303 and r.headers["location"].startswith("/login")
    # the API keeps its JSON answer
    r = anonymous.get("/api/v1/cases/abc")
    assert r.headers["content-type"].startswith("application/json")
