"""Who may use the API and open which case, on SQLite and PostgreSQL: tokens (401 without, revoked or
expired), the desk's session cookie with CSRF on writes, roles, a collector's own and team cases, an agency
user's placed cases only while placed (PI-4, pages and API alike), logged reveals with a reason (PI-6) and
the per-agency sign-in networks."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from api_clients import api_client, make_user_token
from desk_builders import AS_OF, PASSWORD, Desk, csrf, first_account, make_desk, own_phone, sign_in
from fastapi.testclient import TestClient
from httpx import Response
from sqlalchemy import Engine, select

from arrears import clock, db
from arrears.agencies import service as agencies
from arrears.api.app import create_app
from arrears.models import AccessLog, ApiToken, Case, ContactPoint, Debtor
from arrears.strategy import queue_service
from arrears.users import service as users

MORNING = "2026-03-02T10:00:00+08:00"


@pytest.fixture
def desk(engine: Engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Desk]:
    monkeypatch.setenv("ARREARS_FROZEN_NOW", MORNING)
    with db.session_scope(engine) as s:
        built = make_desk(s, tmp_path)
    yield built


def _agency_with_user(engine: Engine, desk: Desk, *, allowlist: list[str] | None = None) -> tuple[int, str]:
    with db.session_scope(engine) as s:
        agency = agencies.create_agency(s, name=f"机构-{desk.tag}", listed=True)
        if allowlist is not None:
            agencies.update_agency(s, agency_id=agency.id, login_ip_allowlist=allowlist)
        user = users.add_user(
            s, username=f"agency-{desk.tag}", role="agency", password=PASSWORD, agency_id=agency.id
        )
        return agency.id, user.username


def test_every_api_endpoint_refuses_a_request_without_valid_credentials(engine: Engine, desk: Desk) -> None:
    app = create_app(engine)
    anonymous = TestClient(app)
    schema = anonymous.get("/openapi.json").json()
    paths = [p for p in schema["paths"] if p.startswith("/api/v1/") and "/webhooks/" not in p]
    assert len(paths) >= 45
    for path, ops in schema["paths"].items():
        if path not in paths:
            continue
        for method in ops:
            url = path.replace("{", "").replace("}", "")  # any placeholder: auth is checked first
            url = "/".join(
                "1" if part.endswith("_id") or part == "gateway" else part for part in url.split("/")
            )
            r = anonymous.request(method.upper(), url)
            assert r.status_code == 401, (method, path, r.status_code)
            assert r.json()["code"] == "unauthorized" and r.headers["WWW-Authenticate"] == "Bearer"
    bad = TestClient(app, headers={"Authorization": "Bearer arr_not-a-token"})
    assert bad.get("/api/v1/portfolios").status_code == 401
    assert schema["components"]["securitySchemes"]["bearerToken"]["scheme"] == "bearer"


def test_a_revoked_or_expired_token_stops_working_at_once(engine: Engine, desk: Desk) -> None:
    client = api_client(engine, role="supervisor")
    assert client.get("/api/v1/portfolios").status_code == 200
    with db.session_scope(engine) as s:
        row = s.scalars(select(ApiToken).where(ApiToken.user_id == client.user_id)).one()  # type: ignore[attr-defined]
        assert row.last_used_at is not None
        users.revoke_token(s, token_id=row.id, at=clock.now())
    assert client.get("/api/v1/portfolios").status_code == 401
    with db.session_scope(engine) as s:
        made = users.create_token(
            s,
            username=desk.users["supervisor"].username,
            name="short",
            at=clock.now() - timedelta(days=2),
            expires_at=clock.now() - timedelta(days=1) + timedelta(seconds=1),
        )
    expired = TestClient(create_app(engine), headers={"Authorization": f"Bearer {made.token}"})
    assert expired.get("/api/v1/portfolios").status_code == 401


def test_roles_limit_portfolio_wide_operations(engine: Engine, desk: Desk) -> None:
    collector = api_client(engine, role="collector")
    r = collector.post("/api/v1/runs", json={"portfolio": f"desk-{desk.tag}", "as_of": AS_OF.isoformat()})
    assert r.status_code == 403 and r.json()["code"] == "role_forbidden"
    assert (
        collector.post(f"/api/v1/portfolios/{desk.portfolio_id}/accrue?as_of=2026-03-02").status_code == 403
    )
    auditor = api_client(engine, role="read_only")
    with db.session_scope(engine) as s:
        account = first_account(s, desk.cases[0])
    assert auditor.get(f"/api/v1/accounts/{account.id}").status_code == 200
    r = auditor.post(
        "/api/v1/promises",
        json={"account_id": account.id, "amount_minor": 10_000, "promised_on": "2026-03-05", "made_on": "2026-03-02", "channel": "call"},
    )  # fmt: skip
    assert r.status_code == 403 and r.json()["code"] == "not_your_case"


def test_a_collector_reads_own_and_team_cases_works_only_own_and_never_others(
    engine: Engine, desk: Desk
) -> None:
    own, teammate = desk.cases[0], desk.cases[1]
    a, b = desk.users["a"], desk.users["b"]
    user_id, token = make_user_token(engine, "collector")
    client = TestClient(create_app(engine), headers={"Authorization": f"Bearer {token}"})
    with db.session_scope(engine) as s:
        s.get(Case, own).assignee_id = user_id  # type: ignore[union-attr]
        account_own = first_account(s, own).id
        account_mate = first_account(s, teammate).id
    assert client.get(f"/api/v1/cases/{own}/contact-attempts").status_code == 200
    r = client.get(f"/api/v1/cases/{teammate}/contact-attempts")
    assert r.status_code == 403 and r.json()["code"] == "not_your_case"
    assert client.get(f"/api/v1/accounts/{account_mate}").status_code == 403
    # a team: both collectors work the same queue
    tag = desk.tag
    with db.session_scope(engine) as s:
        queue_service.set_collector(s, user=user_id, queues=[f"team-{tag}"], cap=100)
        queue_service.set_collector(s, user=b.id, queues=[f"team-{tag}", "other"], cap=100)
    assert client.get(f"/api/v1/cases/{teammate}/contact-attempts").status_code == 200
    assert client.get(f"/api/v1/accounts/{account_mate}").status_code == 200
    promise = {
        "amount_minor": 10_000,
        "promised_on": "2026-03-05",
        "made_on": "2026-03-02",
        "channel": "call",
    }
    assert client.post("/api/v1/promises", json={**promise, "account_id": account_mate}).status_code == 403
    assert client.post("/api/v1/promises", json={**promise, "account_id": account_own}).status_code == 201
    # acting as someone else is for administrators' integration tokens only
    r = client.post("/api/v1/promises", json={**promise, "account_id": account_own, "taken_by_id": a.id})
    assert r.status_code == 403 and r.json()["code"] == "acting_as_other"


def test_an_agency_user_opens_only_cases_placed_with_their_agency_until_recall_on_page_and_api(
    engine: Engine, desk: Desk
) -> None:
    placed, other = desk.cases[0], desk.cases[1]
    agency_id, username = _agency_with_user(engine, desk)
    with db.session_scope(engine) as s:
        placement = agencies.place_cases(
            s, agency_id=agency_id, case_ids=[placed], placed_on=AS_OF, expires_on=AS_OF + timedelta(days=60)
        )[0]
        agency_user = users.get_user(s, username)
        debtor_other = s.get(Case, other).debtor_id  # type: ignore[union-attr]
        account_other = first_account(s, other).id
        account_placed = first_account(s, placed).id
    _uid, token = make_user_token(engine, "agency", agency_id=agency_id)
    api = TestClient(create_app(engine), headers={"Authorization": f"Bearer {token}"})
    page = TestClient(create_app(engine))
    sign_in(page, username)
    # placed: their list shows it (and nothing else), page and API open it
    listed = page.get("/queue")
    assert re.findall(r'<tr data-testid="placed-case"><td>(\d+)</td>', listed.text) == [str(placed)]
    assert f'href="/cases/{placed}"' in listed.text and f'href="/cases/{other}"' not in listed.text
    assert page.get(f"/cases/{placed}").status_code == 200
    assert api.get(f"/api/v1/cases/{placed}/contact-attempts").status_code == 200
    assert api.get(f"/api/v1/accounts/{account_placed}").status_code == 200
    # not placed with them: both refuse
    refused = page.get(f"/cases/{other}")
    assert refused.status_code == 403
    for url in (
        f"/api/v1/cases/{other}/contact-attempts",
        f"/api/v1/accounts/{account_other}",
        f"/api/v1/debtors/{debtor_other}",
        f"/api/v1/accounts/{account_other}/statement?as_of=2026-03-02",
    ):
        r = api.get(url)
        assert r.status_code == 403 and r.json()["code"] == "not_your_case", url
    assert api.get("/api/v1/portfolios").status_code == 403  # in-house only
    assert api.get(f"/api/v1/agencies/{agency_id}/placements").status_code == 200
    # recall: access ends at once, the same day
    with db.session_scope(engine) as s:
        agencies.recall_placement(
            s,
            placement_id=placement.id,
            recalled_on=AS_OF,
            user_id=desk.users["supervisor"].id,
            reason="撤案",
        )
    assert page.get(f"/cases/{placed}").status_code == 403
    assert api.get(f"/api/v1/cases/{placed}/contact-attempts").status_code == 403
    assert 'data-testid="placed-case"' not in page.get("/queue").text
    assert agency_user.agency_id == agency_id


def test_the_desk_session_cookie_works_on_the_api_and_writes_need_the_csrf_header(
    engine: Engine, desk: Desk
) -> None:
    client = TestClient(create_app(engine))
    sign_in(client, desk.users["a"].username)
    token = csrf(client.get(f"/cases/{desk.cases[0]}").text)
    with db.session_scope(engine) as s:
        account = first_account(s, desk.cases[0])
    assert client.get(f"/api/v1/accounts/{account.id}").status_code == 200
    body = {"account_id": account.id, "amount_minor": 10_000, "promised_on": "2026-03-05", "made_on": "2026-03-02", "channel": "call"}  # fmt: skip
    r = client.post("/api/v1/promises", json=body)
    assert r.status_code == 403 and r.json()["code"] == "csrf_failed"
    assert client.post("/api/v1/promises", json=body, headers={"X-CSRF-Token": token}).status_code == 201


def test_reveal_returns_the_clear_value_and_logs_who_why_and_when(engine: Engine, desk: Desk) -> None:
    with db.session_scope(engine) as s:
        case = s.get(Case, desk.cases[0])
        assert case is not None
        debtor_id = case.debtor_id
    collector = TestClient(create_app(engine))
    sign_in(collector, desk.users["a"].username)
    page = collector.get(f"/cases/{desk.cases[0]}")
    assert 'data-testid="reveal-form"' in page.text
    shown = collector.post(
        f"/cases/{desk.cases[0]}/reveal",
        data={"field": "national_id", "reason": "借款人来电核实身份", "csrf_token": csrf(page.text)},
    )
    assert shown.status_code == 200 and 'data-testid="revealed"' in shown.text
    supervisor = api_client(engine, role="supervisor")
    r = supervisor.post(
        f"/api/v1/debtors/{debtor_id}/reveal", json={"field": "national_id", "reason": "complaint review"}
    )
    assert r.status_code == 200
    value = r.json()["value"]
    assert value and "*" not in value and value in shown.text
    masked = supervisor.get(f"/api/v1/debtors/{debtor_id}").json()["national_id_masked"]
    assert "*" in masked and masked != value
    with db.session_scope(engine) as s:
        rows = s.scalars(
            select(AccessLog).where(
                AccessLog.debtor_id == debtor_id, AccessLog.action == "reveal_national_id"
            )
        ).all()
    assert [(r.user_id, r.reason) for r in rows] == [
        (desk.users["a"].id, "借款人来电核实身份"),
        (supervisor.user_id, "complaint review"),  # type: ignore[attr-defined]
    ]
    auditor = api_client(engine, role="read_only")
    r = auditor.post(
        f"/api/v1/debtors/{debtor_id}/reveal", json={"field": "national_id", "reason": "curious"}
    )
    assert r.status_code == 403 and r.json()["code"] == "reveal_forbidden"
    r = supervisor.post(f"/api/v1/debtors/{debtor_id}/reveal", json={"field": "national_id", "reason": ""})
    assert r.status_code == 422


def test_an_agency_restricted_to_a_network_refuses_sign_in_and_tokens_from_elsewhere(
    engine: Engine, desk: Desk
) -> None:
    agency_id, username = _agency_with_user(engine, desk, allowlist=["10.20.0.0/16"])
    outside = TestClient(create_app(engine), client=("192.0.2.7", 50000))
    r = sign_in(outside, username)
    assert r.status_code == 403  # type: ignore[attr-defined]
    inside = TestClient(create_app(engine), client=("10.20.3.4", 50000))
    assert sign_in(inside, username).status_code == 303  # type: ignore[attr-defined]
    _uid, token = make_user_token(engine, "agency", agency_id=agency_id)
    auth = {"Authorization": f"Bearer {token}"}
    r = TestClient(create_app(engine), client=("192.0.2.7", 50000), headers=auth).get(
        f"/api/v1/agencies/{agency_id}/placements"
    )
    assert r.status_code == 403 and r.json()["code"] == "network_refused"
    r = TestClient(create_app(engine), client=("10.20.9.9", 50000), headers=auth).get(
        f"/api/v1/agencies/{agency_id}/placements"
    )
    assert r.status_code == 200


def test_numbers_beyond_64_bits_are_refused_as_invalid_input_not_a_server_error(
    engine: Engine, desk: Desk
) -> None:
    client = api_client(engine, role="supervisor")
    huge = 2**64
    r = client.get(f"/api/v1/accounts/{huge}")
    assert r.status_code == 422 and r.json()["code"] == "value_out_of_range"
    r = client.post(f"/api/v1/placements/{huge}/recall", json={"user_id": client.user_id, "reason": "x", "recalled_on": "2026-03-02"})  # type: ignore[attr-defined]  # fmt: skip
    assert r.status_code == 422
    with db.session_scope(engine) as s:
        agency = agencies.create_agency(s, name=f"佣金-{desk.tag}", listed=True)
    r = client.post(
        f"/api/v1/agencies/{agency.id}/commission", json={"payments": [[1, "2026-03-02", 10**25]]}
    )
    assert r.status_code == 422 and r.json()["code"] == "validation_failed"


def test_list_endpoints_page_with_limit_and_offset_and_tell_the_total(engine: Engine, desk: Desk) -> None:
    client = api_client(engine, role="supervisor")
    whole = client.get("/api/v1/portfolios", params={"limit": 1000})
    total = int(whole.headers["X-Total-Count"])
    assert total == len(whole.json()) >= 1
    second = client.get("/api/v1/portfolios", params={"limit": 1, "offset": 1})
    assert int(second.headers["X-Total-Count"]) == total
    assert second.json() == whole.json()[1:2]
    with db.session_scope(engine) as s:
        for k in range(3):
            agencies.create_agency(s, name=f"分页-{desk.tag}-{k}", listed=True)
    listed = client.get("/api/v1/agencies", params={"limit": 2, "offset": 0})
    assert len(listed.json()) == 2 and int(listed.headers["X-Total-Count"]) >= 3
    assert client.get("/api/v1/agencies", params={"limit": 0}).status_code == 422
    doc = client.get("/openapi.json").json()
    assert "X-Total-Count" in doc["paths"]["/api/v1/agencies"]["get"]["responses"]["200"]["headers"]


def test_who_did_it_comes_from_the_caller_not_from_free_text_in_the_request(
    engine: Engine, desk: Desk
) -> None:
    own = desk.cases[0]
    user_id, token = make_user_token(engine, "collector")
    collector = TestClient(create_app(engine), headers={"Authorization": f"Bearer {token}"})
    agency_id, _username = _agency_with_user(engine, desk)
    _aid, agency_token = make_user_token(engine, "agency", agency_id=agency_id)
    agency = TestClient(create_app(engine), headers={"Authorization": f"Bearer {agency_token}"})
    with db.session_scope(engine) as s:
        case = s.get(Case, own)
        assert case is not None
        case.assignee_id = user_id
        debtor_id = case.debtor_id
        phone = s.scalars(
            select(ContactPoint.id).where(
                ContactPoint.debtor_id == debtor_id,
                ContactPoint.kind == "mobile",
                ContactPoint.owner_relation == "self",
            )
        ).first()
        account = first_account(s, own)
        portfolio_id, account_id = account.portfolio_id, account.id
        agencies.place_cases(
            s, agency_id=agency_id, case_ids=[own], placed_on=AS_OF, expires_on=AS_OF + timedelta(days=60)
        )
    call = {"contact_point_id": phone, "channel": "call", "started_at": MORNING, "outcome": "no_answer"}
    url = f"/api/v1/cases/{own}/contact-attempts"
    # a collector cannot spread calls over invented collectors (US-3 counts per collector)
    r = collector.post(url, json={**call, "collector": "someone-else"})
    assert r.status_code == 403 and r.json()["code"] == "acting_as_other_collector"
    mine = collector.post(url, json=call)
    assert mine.status_code == 201, mine.text
    assert mine.json()["attempt"]["collector"] == "in_house"
    assert mine.json()["attempt"]["agent_id"] == user_id
    # an agency's people contact as their agency
    theirs = agency.post(url, json={**call, "started_at": "2026-03-02T10:05:00+08:00"})
    assert theirs.status_code == 201, theirs.text
    assert theirs.json()["attempt"]["collector"] == f"agency:{agency_id}"
    # a payment is credited to the caller unless a supervisor names someone
    payment = {"portfolio_id": portfolio_id, "amount_minor": 100, "received_on": "2026-03-02"}
    paid = {**payment, "account_id": account_id, "reference": f"WHO-{desk.tag}-1", "collector": "a-colleague"}
    r = collector.post("/api/v1/payments", json=paid, headers={"Idempotency-Key": f"who-{desk.tag}-1"})
    assert r.status_code == 403 and r.json()["code"] == "crediting_other"
    # an allocation is recorded as the supervisor who made it
    _sid, boss_token = make_user_token(engine, "supervisor", username=f"boss-{desk.tag}")
    boss = TestClient(create_app(engine), headers={"Authorization": f"Bearer {boss_token}"})
    with db.session_scope(engine) as s:
        queue_service.set_collector(s, user=user_id, queues=[f"team-{desk.tag}"], cap=100)
    move = {"case_ids": [desk.cases[1]], "collector": str(user_id), "reason": "休假"}
    r = boss.post("/api/v1/allocations", json={**move, "actor": "the-director"})
    assert r.status_code == 403 and r.json()["code"] == "acting_as_other"
    moved = boss.post("/api/v1/allocations", json=move)
    assert moved.status_code == 201, moved.text
    assert [e["actor"] for e in moved.json()] == [f"boss-{desk.tag}"]


CARD = "6222021234567890128"
OTHER_CARD = "6228480012345678"


def test_bank_accounts_are_masked_on_the_case_page_and_api_and_a_reveal_is_logged(
    engine: Engine, desk: Desk
) -> None:
    with db.session_scope(engine) as s:
        account = first_account(s, desk.cases[0])
        account.bank_account, account.bank_name = CARD, "中国工商银行"
        other = first_account(s, desk.cases[1])
        other.bank_account = OTHER_CARD
        account_id, other_id, debtor_id = account.id, other.id, account.debtor_id
    collector = TestClient(create_app(engine))
    sign_in(collector, desk.users["a"].username)
    page = collector.get(f"/cases/{desk.cases[0]}")
    assert page.status_code == 200
    assert "**** **** **** 0128" in page.text and "中国工商银行" in page.text
    assert CARD not in page.text
    assert f'<option value="bank_account:{account_id}">' in page.text
    # another case's account cannot be revealed from this case's page
    refused = collector.post(
        f"/cases/{desk.cases[0]}/reveal",
        data={"field": f"bank_account:{other_id}", "reason": "核对还款卡", "csrf_token": csrf(page.text)},
    )
    assert refused.status_code == 404 and OTHER_CARD not in refused.text
    shown = collector.post(
        f"/cases/{desk.cases[0]}/reveal",
        data={"field": f"bank_account:{account_id}", "reason": "核对还款卡号", "csrf_token": csrf(page.text)},
    )
    assert shown.status_code == 200 and 'data-testid="revealed"' in shown.text and CARD in shown.text

    supervisor = api_client(engine, role="supervisor")
    r = supervisor.get(f"/api/v1/accounts/{account_id}")
    assert r.status_code == 200
    assert r.json()["bank_account_masked"] == "**** **** **** 0128" and CARD not in r.text
    assert r.json()["bank_name"] == "中国工商银行"
    r = supervisor.post(
        f"/api/v1/debtors/{debtor_id}/reveal",
        json={"field": "bank_account", "account_id": account_id, "reason": "payment trace"},
    )
    assert r.status_code == 200
    assert r.json()["value"] == CARD and r.json()["account_id"] == account_id
    r = supervisor.post(
        f"/api/v1/debtors/{debtor_id}/reveal", json={"field": "bank_account", "reason": "payment trace"}
    )
    assert r.status_code == 422 and r.json()["code"] == "account_required"
    r = supervisor.post(  # an account of another debtor
        f"/api/v1/debtors/{debtor_id}/reveal",
        json={"field": "bank_account", "account_id": other_id, "reason": "payment trace"},
    )
    assert r.status_code == 404 and OTHER_CARD not in r.text
    with db.session_scope(engine) as s:
        rows = s.scalars(
            select(AccessLog)
            .where(AccessLog.debtor_id == debtor_id, AccessLog.action.like("reveal_bank_account%"))
            .order_by(AccessLog.id)
        ).all()
    assert [(r.user_id, r.action, r.case_id, r.reason) for r in rows] == [
        (desk.users["a"].id, f"reveal_bank_account:{account_id}", desk.cases[0], "核对还款卡号"),
        (supervisor.user_id, f"reveal_bank_account:{account_id}", desk.cases[0], "payment trace"),  # type: ignore[attr-defined]
    ]


def test_a_read_only_user_never_reveals_a_bank_account(engine: Engine, desk: Desk) -> None:
    with db.session_scope(engine) as s:
        account = first_account(s, desk.cases[0])
        account.bank_account = CARD
        account_id, debtor_id = account.id, account.debtor_id
    auditor = TestClient(create_app(engine))
    sign_in(auditor, desk.users["auditor"].username)
    page = auditor.get(f"/cases/{desk.cases[0]}")
    assert page.status_code == 200 and "**** **** **** 0128" in page.text
    assert 'data-testid="reveal-form"' not in page.text and CARD not in page.text
    r = auditor.post(
        f"/cases/{desk.cases[0]}/reveal",
        data={"field": f"bank_account:{account_id}", "reason": "curious", "csrf_token": csrf(page.text)},
    )
    assert r.status_code == 403 and CARD not in r.text
    api = api_client(engine, role="read_only")
    r = api.post(
        f"/api/v1/debtors/{debtor_id}/reveal",
        json={"field": "bank_account", "account_id": account_id, "reason": "curious"},
    )
    assert r.status_code == 403 and r.json()["code"] == "reveal_forbidden"
    with db.session_scope(engine) as s:
        logged = s.scalars(
            select(AccessLog).where(
                AccessLog.debtor_id == debtor_id, AccessLog.action.like("reveal_bank_account%")
            )
        ).all()
    assert logged == []


def _error_text(html: str) -> str:
    found = re.search(r'role="alert" data-testid="error">([^<]*)<', html)
    assert found, "no error message on the page"
    return found.group(1)


def _reveals(engine: Engine, debtor_ids: list[int]) -> list[tuple[int, str]]:
    with db.session_scope(engine) as s:
        return [
            (r.debtor_id, r.action)
            for r in s.scalars(
                select(AccessLog).where(
                    AccessLog.debtor_id.in_(debtor_ids), AccessLog.action.like("reveal_%")
                )
            )
        ]


def test_the_reveal_form_names_only_this_cases_records_and_a_refusal_is_localised_and_logs_nothing(
    engine: Engine, desk: Desk
) -> None:
    own, other = desk.cases[0], desk.cases[1]
    with db.session_scope(engine) as s:
        mine, theirs = own_phone(s, own), own_phone(s, other)
        account = first_account(s, own)
        account.bank_account = CARD
        other_account = first_account(s, other)
        other_account.bank_account = OTHER_CARD
        account_id, other_account_id = account.id, other_account.id
        debtors = [account.debtor_id, other_account.debtor_id]
        number = s.get(ContactPoint, mine).value  # type: ignore[union-attr]
    collector = TestClient(create_app(engine))
    sign_in(collector, desk.users["a"].username)
    token = csrf(collector.get(f"/cases/{own}").text)

    def post(case_id: int, **form: str) -> Response:
        return collector.post(
            f"/cases/{case_id}/reveal", data={"reason": "借款人来电核实", "csrf_token": token, **form}
        )

    arabic = str(mine).translate(str.maketrans("0123456789", "٠١٢٣٤٥٦٧٨٩"))
    refused = [
        {"field": f"contact_point:{theirs}"},  # another debtor's phone
        {"field": "contact_point", "contact_point_id": str(theirs)},
        {"field": "contact_point:0"},
        {"field": "contact_point:99999999999999999999"},  # no row can have it
        {"field": "contact_point:²"},  # a digit to str.isdigit, not to int
        {"field": f"contact_point:{arabic}"},  # digits of another script
        {"field": "contact_point:"},
        {"field": f"bank_account:{other_account_id}"},  # another case's account
        {"field": "bank_account:abc"},
    ]
    for form in refused:
        r = post(own, **form)
        assert r.status_code == 404, (form, r.status_code)
        assert _error_text(r.text) == "无法显示：该电话或还款账号不属于本案件，未查看任何信息。", form
        assert 'data-testid="revealed"' not in r.text and OTHER_CARD not in r.text and CARD not in r.text
    r = post(own, field="contact_point:", reason="")
    assert r.status_code == 422 and _error_text(r.text) == "请写明查看原因（至少 3 个字符）。"
    r = post(own, field="password")
    assert r.status_code == 422 and _error_text(r.text) == "该字段不可查看完整信息。"
    collector.cookies.set("arrears_lang", "en")
    r = post(own, field=f"contact_point:{theirs}")
    assert r.status_code == 404
    assert _error_text(r.text).startswith("Nothing to show: that phone or bank account is not on this case.")
    # a case the collector may not open: the page's refusal, in their language, and no reveal
    r = post(other, field=f"contact_point:{theirs}")
    assert r.status_code == 403 and "This case is not assigned to you." in r.text
    assert _reveals(engine, debtors) == []

    # a read-only auditor opens the case but may not reveal
    auditor = TestClient(create_app(engine))
    sign_in(auditor, desk.users["auditor"].username)
    r = auditor.post(
        f"/cases/{own}/reveal",
        data={
            "field": f"contact_point:{mine}",
            "reason": "curious",
            "csrf_token": csrf(auditor.get(f"/cases/{own}").text),
        },
    )
    assert r.status_code == 403 and _error_text(r.text) == "你无权查看该债务人的完整信息，未查看任何信息。"
    assert number not in r.text
    assert _reveals(engine, debtors) == []

    # the form's own choices still work, each logged once
    shown = post(own, field=f"contact_point:{mine}")
    assert shown.status_code == 200 and 'data-testid="revealed"' in shown.text and number in shown.text
    shown = post(own, field=f"bank_account:{account_id}")
    assert shown.status_code == 200 and CARD in shown.text
    assert sorted(_reveals(engine, debtors)) == sorted(
        [(debtors[0], f"reveal_contact_point:{mine}"), (debtors[0], f"reveal_bank_account:{account_id}")]
    )


def test_an_agency_user_reveals_only_on_a_case_placed_with_them_while_it_is_placed(
    engine: Engine, desk: Desk
) -> None:
    placed = desk.cases[0]
    agency_id, username = _agency_with_user(engine, desk)
    with db.session_scope(engine) as s:
        placement = agencies.place_cases(
            s, agency_id=agency_id, case_ids=[placed], placed_on=AS_OF, expires_on=AS_OF + timedelta(days=60)
        )[0]
        phone = own_phone(s, placed)
        debtor_id = s.get(Case, placed).debtor_id  # type: ignore[union-attr]
    page = TestClient(create_app(engine))
    sign_in(page, username)
    token = csrf(page.get(f"/cases/{placed}").text)
    form = {"field": f"contact_point:{phone}", "reason": "核实联系方式", "csrf_token": token}
    assert page.post(f"/cases/{placed}/reveal", data=form).status_code == 200
    with db.session_scope(engine) as s:
        agencies.recall_placement(
            s,
            placement_id=placement.id,
            recalled_on=AS_OF,
            user_id=desk.users["supervisor"].id,
            reason="撤案",
        )
    r = page.post(f"/cases/{placed}/reveal", data=form)
    assert r.status_code == 403 and "该案件不在你的名下。" in r.text
    assert _reveals(engine, [debtor_id]) == [(debtor_id, f"reveal_contact_point:{phone}")]


def test_the_api_reveals_only_the_debtors_own_records_and_logs_no_refusal(engine: Engine, desk: Desk) -> None:
    with db.session_scope(engine) as s:
        mine, theirs = own_phone(s, desk.cases[0]), own_phone(s, desk.cases[1])
        debtors = [s.get(Case, c).debtor_id for c in desk.cases[:2]]  # type: ignore[union-attr]
    supervisor = api_client(engine, role="supervisor")
    url = f"/api/v1/debtors/{debtors[0]}/reveal"
    for point in (theirs, 0, -1, 2**31 - 1):
        r = supervisor.post(
            url, json={"field": "contact_point", "contact_point_id": point, "reason": "trace"}
        )
        assert r.status_code == 404 and r.json()["code"] == "contact_point_not_found", point
    for account in (0, 2**31 - 1):
        r = supervisor.post(url, json={"field": "bank_account", "account_id": account, "reason": "trace"})
        assert r.status_code == 404 and r.json()["code"] == "account_not_found", account
    r = supervisor.post(url, json={"field": "contact_point", "contact_point_id": 2**40, "reason": "trace"})
    assert r.status_code == 422  # beyond the INTEGER keys: invalid input, on SQLite as on PostgreSQL
    assert _reveals(engine, debtors) == []
    r = supervisor.post(url, json={"field": "contact_point", "contact_point_id": mine, "reason": "trace"})
    assert r.status_code == 200 and r.json()["contact_point_id"] == mine
    assert _reveals(engine, debtors) == [(debtors[0], f"reveal_contact_point:{mine}")]


def test_revealing_a_field_that_holds_nothing_is_refused_and_not_logged(engine: Engine, desk: Desk) -> None:
    with db.session_scope(engine) as s:
        case = s.get(Case, desk.cases[0])
        assert case is not None
        debtor = s.get(Debtor, case.debtor_id)
        assert debtor is not None
        debtor.address = None
        debtor_id = debtor.id
    supervisor = api_client(engine, role="supervisor")
    r = supervisor.post(
        f"/api/v1/debtors/{debtor_id}/reveal", json={"field": "address", "reason": "trace the debtor"}
    )
    assert r.status_code == 404 and r.json()["code"] == "nothing_to_reveal"
    assert _reveals(engine, [debtor_id]) == []


def test_a_revealed_contact_point_is_labelled_by_its_kind(engine: Engine, desk: Desk) -> None:
    own = desk.cases[0]
    with db.session_scope(engine) as s:
        case = s.get(Case, own)
        assert case is not None
        point = ContactPoint(
            debtor_id=case.debtor_id, kind="email", value="zhang.san@bank.example", owner_relation="self"
        )
        s.add(point)
        s.flush()
        email_id = point.id
    supervisor = TestClient(create_app(engine))
    sign_in(supervisor, desk.users["supervisor"].username)
    token = csrf(supervisor.get(f"/cases/{own}").text)
    shown = supervisor.post(
        f"/cases/{own}/reveal",
        data={"field": f"contact_point:{email_id}", "reason": "核实邮箱", "csrf_token": token},
    )
    assert shown.status_code == 200
    assert "<dt>邮件</dt><dd>zhang.san@bank.example</dd>" in shown.text
