"""The supervisor's dashboard, team page (reassignment) and run history over HTTP, on SQLite and
PostgreSQL: the numbers on the page follow the data, the charts are accessible SVG, reassignment is all or
nothing with a reason and recorded in the allocation history."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from desk_builders import AS_OF, Desk, csrf, first_account, make_desk, sign_in
from fastapi.testclient import TestClient
from sqlalchemy import Engine, func, select

from arrears import db
from arrears.api.app import create_app
from arrears.ledger import service as ledger_service
from arrears.models import AllocationEvent, Case, StrategyRun
from arrears.money import format_minor
from arrears.reports import service as reports
from arrears.strategy import queue_service, run

MORNING = "2026-03-02T10:00:00+08:00"


@pytest.fixture
def desk(engine: Engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Desk]:
    monkeypatch.setenv("ARREARS_FROZEN_NOW", MORNING)
    with db.session_scope(engine) as s:
        built = make_desk(s, tmp_path)
    yield built


def _text(html: str) -> str:
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html))


def _boss(engine: Engine, desk: Desk) -> TestClient:
    client = TestClient(create_app(engine))
    sign_in(client, desk.users["supervisor"].username)
    return client


def _kpi(html: str, test_id: str) -> str:
    found = re.search(rf'data-testid="{test_id}">(.*?)</div>', html, re.S)
    assert found, test_id
    return _text(found.group(1)).strip()


def test_the_dashboard_shows_aging_collections_and_charts_for_a_portfolio(engine: Engine, desk: Desk) -> None:
    client = _boss(engine, desk)
    url = f"/supervisor?portfolio={desk.portfolio_id}"
    page = client.get(url)
    assert page.status_code == 200
    assert page.text.count('role="img"') == 2  # aging and collections; no roll chart without two month ends
    assert 'data-testid="roll-empty"' in page.text
    with db.session_scope(engine) as s:
        aging = reports.aging(s, as_of=AS_OF, portfolio_id=desk.portfolio_id)
    assert _kpi(page.text, "kpi-open").startswith(f"在催账户 {aging.accounts} ")
    assert format_minor(aging.balance_minor, "CNY", "zh_CN") in _kpi(page.text, "kpi-open")
    assert "¥0.00" in _kpi(page.text, "kpi-collected-today")

    with db.session_scope(engine) as s:
        account = first_account(s, desk.cases[0])
        ledger_service.post_payment(
            s,
            portfolio_id=desk.portfolio_id,
            amount_minor=123_456,
            received_on=AS_OF,
            reference=f"DASH-{desk.tag}",
            account_id=account.id,
            now=datetime(2026, 3, 2, 2, 0, tzinfo=UTC),
        )
    after = client.get(url)
    assert "¥1,234.56" in _kpi(after.text, "kpi-collected-today")
    assert "¥1,234.56" in _kpi(after.text, "kpi-collected-month")
    chart = re.search(r'data-testid="chart-collected".*?</svg>', after.text, re.S)
    assert chart and "03-02" in chart.group(0) and "<title" in chart.group(0)
    client.cookies.set("arrears_lang", "en")
    english = client.get(url)
    assert "Aging by bucket" in english.text and "Collected today" in english.text


def test_the_dashboard_counts_todays_run_and_the_rules_it_blocked(engine: Engine, desk: Desk) -> None:
    with db.session_scope(engine) as s:
        report = run.run_portfolio(
            s, portfolio=desk.portfolio_id, as_of=AS_OF, now=datetime(2026, 3, 2, 1, 0, tzinfo=UTC)
        )
        run_id = report.run_id
        stored_run = s.get(StrategyRun, run_id)
        assert stored_run is not None
        # a message the run could not address counts beside the rule ids, under its own words
        stored_run.blocked_by_rule = {**report.outcome.blocked_by_rule, "no_contact_point": 2}
        blocked = dict(stored_run.blocked_by_rule)
    client = _boss(engine, desk)
    page = client.get(f"/supervisor?portfolio={desk.portfolio_id}")
    todays = re.search(r'data-testid="todays-run">(.*?)</section>', page.text, re.S)
    assert todays and f"/supervisor/runs/{run_id}" in todays.group(1)
    for rule, n in blocked.items():
        shown = "无可用联系方式（非规则拦截）" if rule == "no_contact_point" else rule
        assert re.search(rf"<td>{re.escape(shown)}</td><td class=\"num\">{n}</td>", page.text)
    assert "<td>no_contact_point</td>" not in page.text

    history = client.get("/supervisor/runs")
    assert history.status_code == 200 and f'href="/supervisor/runs/{run_id}"' in history.text
    detail = client.get(f"/supervisor/runs/{run_id}")
    assert detail.status_code == 200 and "各阶段账户数" in detail.text
    assert '<td>无可用联系方式（非规则拦截）</td><td class="num">2</td>' in detail.text
    with db.session_scope(engine) as s:
        stored = s.get(StrategyRun, run_id)
        assert stored is not None
        for stage, n in stored.stage_counts.items():
            assert f'<td class="num">{n}</td>' in detail.text, stage
    assert client.get("/supervisor/runs/999999999").status_code == 404


def test_reassigning_cases_moves_them_and_records_who_why_and_when(engine: Engine, desk: Desk) -> None:
    case_id = desk.cases[0]
    with db.session_scope(engine) as s:
        queue_service.set_collector(s, user=desk.users["b"].id, queues=[f"team-{desk.tag}"], cap=50)
    client = _boss(engine, desk)
    page = client.get("/supervisor/team")
    assert page.status_code == 200 and desk.users["b"].username in page.text
    r = client.post(
        "/supervisor/team/reassign",
        data={
            "csrf_token": csrf(page.text),
            "case_ids": f"{case_id}",
            "collector": desk.users["b"].username,
            "reason": "休假代班",
        },
    )
    assert r.status_code == 200 and "已重新分配 1 个案件" in r.text
    history = re.search(r'data-testid="allocation-history">(.*?)</table>', r.text, re.S)
    assert history and "休假代班" in history.group(1) and f">{case_id}</a>" in history.group(1)
    with db.session_scope(engine) as s:
        case = s.get(Case, case_id)
        assert case is not None and case.assignee_id == desk.users["b"].id
        (event,) = s.scalars(select(AllocationEvent).where(AllocationEvent.case_id == case_id))
        assert (
            event.from_collector_id == desk.users["a"].id and event.actor == desk.users["supervisor"].username
        )
    # the case left collector a's hands
    a = TestClient(create_app(engine))
    sign_in(a, desk.users["a"].username)
    assert a.get(f"/cases/{case_id}").status_code == 403


@pytest.mark.parametrize(
    ("case_ids", "reason", "collector", "message"),
    [
        ("12x, 13", "调整", "b", "案件号应为数字"),
        ("{case}", "", "b", "请填写原因"),
        ("{case}, 999999999", "调整", "b", "案件不存在"),
        ("{case}", "调整", "a", "不是在岗催收员"),
    ],
)
def test_a_bad_reassignment_says_why_and_moves_nothing(
    engine: Engine, desk: Desk, case_ids: str, reason: str, collector: str, message: str
) -> None:
    with db.session_scope(engine) as s:
        queue_service.set_collector(s, user=desk.users["b"].id, queues=[f"team-{desk.tag}"], cap=50)
        events_before = s.scalar(select(func.count()).select_from(AllocationEvent))
    client = _boss(engine, desk)
    token = csrf(client.get("/supervisor/team").text)
    r = client.post(
        "/supervisor/team/reassign",
        data={
            "csrf_token": token,
            "case_ids": case_ids.format(case=desk.cases[0]),
            "collector": desk.users[collector].username,
            "reason": reason,
        },
    )
    assert r.status_code in (404, 409, 422) and message in _text(r.text)
    assert 'data-testid="error"' in r.text
    with db.session_scope(engine) as s:
        case = s.get(Case, desk.cases[0])
        assert case is not None and case.assignee_id == desk.users["a"].id
        assert s.scalar(select(func.count()).select_from(AllocationEvent)) == events_before


def test_a_collector_cannot_reassign(engine: Engine, desk: Desk) -> None:
    client = TestClient(create_app(engine))
    sign_in(client, desk.users["a"].username)
    token = csrf(client.get("/queue").text)
    r = client.post(
        "/supervisor/team/reassign",
        data={
            "csrf_token": token,
            "case_ids": str(desk.cases[1]),
            "collector": desk.users["a"].username,
            "reason": "x",
        },
    )
    assert r.status_code == 403
    with db.session_scope(engine) as s:
        case = s.get(Case, desk.cases[1])
        assert case is not None and case.assignee_id == desk.users["b"].id


def test_a_run_in_progress_shows_its_phases_and_the_page_refreshes_itself(engine: Engine, desk: Desk) -> None:
    from arrears.models import StrategyRun

    with db.session_scope(engine) as s:
        row = StrategyRun(
            portfolio_id=desk.portfolio_id,
            as_of_date=AS_OF,
            status="running",
            strategy="default",
            strategy_version=1,
            started_at=datetime(2026, 3, 2, 1, 59, tzinfo=UTC),
            phases=[{"name": "lock", "status": "done"}, {"name": "accrue", "status": "done", "seconds": 0.5}],
            requested_by="ops",
        )
        s.add(row)
        s.flush()
        run_id = row.id
    client = _boss(engine, desk)
    history = client.get("/supervisor/runs")
    assert '<meta http-equiv="refresh" content="5">' in history.text
    assert re.search(r'<progress max="14" value="2"', history.text)
    detail = client.get(f"/supervisor/runs/{run_id}")
    assert '<meta http-equiv="refresh" content="5">' in detail.text and "accrue" in detail.text
    with db.session_scope(engine) as s:
        stored = s.get(StrategyRun, run_id)
        assert stored is not None
        stored.status = "succeeded"
    assert "http-equiv" not in client.get(f"/supervisor/runs/{run_id}").text


def test_a_supervisor_starts_the_days_run_from_the_page_and_follows_it(engine: Engine, desk: Desk) -> None:
    client = _boss(engine, desk)
    page = client.get("/supervisor/runs")
    assert 'data-testid="start-run-form"' in page.text and 'value="2026-03-02"' in page.text
    form = {"portfolio_id": str(desk.portfolio_id), "as_of": "2026-03-02", "csrf_token": csrf(page.text)}

    bad = client.post("/supervisor/runs", data={**form, "as_of": "2026-02-30"})
    assert bad.status_code == 422 and "2026-02-30" in bad.text

    dry = client.post("/supervisor/runs", data={**form, "dry_run": "on"}, follow_redirects=False)
    assert dry.status_code == 303
    with db.session_scope(engine) as s:
        assert not s.scalars(select(StrategyRun).where(StrategyRun.portfolio_id == desk.portfolio_id)).all()

    started = client.post("/supervisor/runs", data=form, follow_redirects=False)
    assert started.status_code == 303 and started.headers["location"] == "/supervisor/runs"
    with db.session_scope(engine) as s:
        [stored] = s.scalars(select(StrategyRun).where(StrategyRun.portfolio_id == desk.portfolio_id)).all()
        assert stored.status == "succeeded" and stored.as_of_date == AS_OF
        assert stored.requested_by == desk.users["supervisor"].username
        run_id = stored.id
    history = client.get("/supervisor/runs")
    rows = re.findall(r'<tr data-testid="desk-run">(.*?)</tr>', history.text, re.S)
    mine = [r for r in rows if f'href="/supervisor/runs/{run_id}"' in r]
    assert mine and "成功" in _text(mine[0])
    assert any("试运行" in _text(r) for r in rows)  # the dry run, with what it would have changed

    collector = TestClient(create_app(engine))
    sign_in(collector, desk.users["a"].username)
    token = csrf(collector.get("/queue").text)
    refused = collector.post("/supervisor/runs", data={**form, "csrf_token": token})
    assert refused.status_code == 403


def test_one_portfolios_dashboard_counts_its_own_time_zones_day(engine: Engine, desk: Desk) -> None:
    from arrears.portfolios import service as portfolios

    with db.session_scope(engine) as s:
        ny = portfolios.create_portfolio(
            s, name=f"ny-{desk.tag}", creditor=f"ny-{desk.tag}", currency="USD", timezone="America/New_York"
        ).id
    client = _boss(engine, desk)
    # 10:00 on 2 March in Shanghai is still the evening of 1 March in New York
    assert "2026-03-01 各账龄段余额" in client.get(f"/supervisor?portfolio={ny}").text
    assert "2026-03-02 各账龄段余额" in client.get(f"/supervisor?portfolio={desk.portfolio_id}").text
    assert "2026-03-02 各账龄段余额" in client.get("/supervisor").text
