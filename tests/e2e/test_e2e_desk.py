"""A collector's day in a real browser against the real server.

The server is uvicorn in a subprocess on a free port with a SQLite file built by ``arrears demo --no-serve``;
its clock is frozen at 10:00 Shanghai time (``ARREARS_FROZEN_NOW``) so the queue and the checks are the same
on every run. The browser is the system Chromium. Screenshots go to ``test-artifacts/``.
"""

from __future__ import annotations

import re

import httpx
import pytest
from e2e_support import ARTIFACTS

pytestmark = pytest.mark.slow


def _amount(text: str) -> int:
    """Minor units of a shown amount such as ``¥87,794.80``."""
    digits = re.sub(r"[^\d.]", "", text)
    whole, _, frac = digits.partition(".")
    return int(whole) * 100 + int((frac + "00")[:2])


def test_a_collectors_journey_sign_in_next_case_blocked_call_outcome_promise_payment(
    server: str, browser: object
) -> None:
    from playwright.sync_api import Browser, expect

    assert isinstance(browser, Browser)
    ARTIFACTS.mkdir(exist_ok=True)
    page = browser.new_page(viewport={"width": 1366, "height": 900})
    page.goto(f"{server}/queue")
    expect(page).to_have_url(re.compile(r"/login"))
    page.screenshot(path=str(ARTIFACTS / "01-login.png"), full_page=True)
    page.fill("input[name=username]", "collector1")
    page.fill("input[name=password]", "demo1234")
    page.click("button[type=submit]")
    expect(page.get_by_test_id("queue")).to_be_visible()
    page.screenshot(path=str(ARTIFACTS / "02-queue.png"), full_page=True)

    page.get_by_test_id("next-case").click()
    expect(page).to_have_url(re.compile(r"/cases/\d+\?item=\d+"))
    case_url = page.url.split("?")[0]
    expect(page.get_by_test_id("call-panel")).to_contain_text("可以拨打")
    expect(page.get_by_test_id("national-id")).to_contain_text("*")
    expect(page.get_by_test_id("dial").first).to_have_attribute("href", re.compile(r"^tel:\+86\d+$"))
    page.screenshot(path=str(ARTIFACTS / "03-case.png"), full_page=True)

    # the call panel at 22:30 Shanghai time: blocked by quiet hours, with the reason and the next time
    page.goto(f"{case_url}?at=2026-03-02T22:30")
    panel = page.get_by_test_id("call-panel")
    expect(panel.get_by_test_id("blocked").first).to_contain_text("CN-1")
    expect(panel).to_contain_text("22:00")
    expect(panel).to_contain_text("2026-03-03 08:00")
    page.screenshot(path=str(ARTIFACTS / "04-call-blocked-2230.png"), full_page=True)

    # a call logged as made at 22:30 last night is refused and recorded as blocked
    page.goto(case_url)
    form = page.get_by_test_id("attempt-form")
    form.locator("input[name=started_at]").fill("2026-03-01T22:30")
    form.locator("select[name=outcome]").select_option("no_answer")
    form.locator("button[type=submit]").click()
    expect(page.get_by_test_id("blocked-result")).to_contain_text("CN-1")

    # a call now: right party
    form = page.get_by_test_id("attempt-form")
    form.locator("select[name=outcome]").select_option("right_party")
    form.locator("textarea[name=notes]").fill("本人接听，同意下周还款")
    form.locator("button[type=submit]").click()
    expect(page.locator(".notice")).to_contain_text("已记录通话结果")
    expect(page.get_by_test_id("timeline")).to_contain_text("本人接听")

    promise = page.get_by_test_id("promise-form")
    promise.locator("input[name=amount]").fill("500.00")
    promise.locator("input[name=promised_on]").fill("2026-03-09")
    promise.locator("button[type=submit]").click()
    expect(page.locator(".notice")).to_contain_text("已记录还款承诺")
    expect(page.get_by_test_id("timeline")).to_contain_text("2026-03-09")

    before = _amount(page.get_by_test_id("case-total").inner_text())
    payment = page.get_by_test_id("payment-form")
    payment.locator("input[name=amount]").fill("300.00")
    payment.locator("input[name=reference]").fill("RCPT-E2E-0001")
    payment.locator("button[type=submit]").click()
    expect(page.locator(".notice")).to_contain_text("已登记还款")
    after = _amount(page.get_by_test_id("case-total").inner_text())
    assert before - after == 30000
    expect(page.get_by_test_id("timeline")).to_contain_text("RCPT-E2E-0001")
    page.screenshot(path=str(ARTIFACTS / "05-case-after-payment.png"), full_page=True)

    # English, and a tablet in portrait
    page.click("a.lang")
    expect(page.get_by_test_id("call-panel")).to_contain_text("May I call now?")
    page.set_viewport_size({"width": 768, "height": 1024})
    page.screenshot(path=str(ARTIFACTS / "06-case-tablet-en.png"), full_page=True)

    # back in Chinese on the laptop: build a plan with the calculator (six monthly instalments)
    page.click("a.lang")
    page.set_viewport_size({"width": 1366, "height": 900})
    page.get_by_test_id("open-calculator").click()
    expect(page.get_by_test_id("calculator")).to_contain_text("方案试算")
    page.get_by_test_id("kind-instalments").click()
    form = page.get_by_test_id("plan-form")
    form.locator("input[name=count]").fill("6")
    form.locator("input[name=first_on]").fill("2026-03-15")
    page.get_by_test_id("preview").click()
    schedule = page.get_by_test_id("schedule")
    expect(schedule.locator("tbody tr")).to_have_count(6)
    expect(schedule).to_contain_text("2026-08-15")
    rows = schedule.locator("tbody tr td:nth-child(3)").all_inner_texts()
    assert sum(_amount(r) for r in rows) == after  # the schedule pays the balance to the cent
    expect(page.get_by_test_id("within-policy")).to_be_visible()
    page.screenshot(path=str(ARTIFACTS / "08-plan-calculator.png"), full_page=True)
    page.set_viewport_size({"width": 768, "height": 1024})
    page.screenshot(path=str(ARTIFACTS / "09-plan-calculator-tablet.png"), full_page=True)
    page.set_viewport_size({"width": 1366, "height": 900})
    page.get_by_test_id("agree").click()
    expect(page.locator(".notice")).to_contain_text("还款方案已生效")
    expect(page.get_by_test_id("plan-status").first).to_contain_text("执行中")
    expect(page.get_by_test_id("timeline")).to_contain_text("分期还款")
    page.close()


def test_a_collector_reads_a_team_case_gets_403_outside_the_team_and_a_supervisor_opens_it(
    server: str, browser: object
) -> None:
    from playwright.sync_api import Browser, expect

    assert isinstance(browser, Browser)
    supervisor = browser.new_context().new_page()
    supervisor.goto(f"{server}/login")
    supervisor.fill("input[name=username]", "supervisor")
    supervisor.fill("input[name=password]", "demo1234")
    supervisor.click("button[type=submit]")
    expect(supervisor.get_by_test_id("queue")).to_be_visible()
    # a case of collector2, found in the supervisor's list of every queue
    row = supervisor.locator("tr", has_text="催收员 李强").first
    href = row.locator("a").get_attribute("href")
    assert href
    case_path = href.split("?")[0]
    response = supervisor.goto(f"{server}{case_path}")
    assert response is not None and response.status == 200
    supervisor.screenshot(path=str(ARTIFACTS / "07-supervisor-case.png"), full_page=True)

    collector = browser.new_context().new_page()
    collector.goto(f"{server}/login")
    collector.fill("input[name=username]", "collector1")
    collector.fill("input[name=password]", "demo1234")
    collector.click("button[type=submit]")
    # collector1 and collector2 share the demo's queues: a team, so collector1 reads the case but cannot work it
    response = collector.goto(f"{server}{case_path}")
    assert response is not None and response.status == 200
    expect(collector.get_by_test_id("attempt-form")).to_have_count(0)
    # a case outside the team (not allocated to either) is refused, by the page and by the API alike
    outside = next(
        i
        for i in range(1, 400)
        if collector.request.get(f"{server}/api/v1/cases/{i}/contact-attempts").status == 403
    )
    response = collector.goto(f"{server}/cases/{outside}")
    assert response is not None and response.status == 403
    expect(collector.get_by_test_id("error")).to_contain_text("不在你的名下")


def _sign_in(browser: object, server: str, username: str) -> object:
    from playwright.sync_api import Browser, expect

    assert isinstance(browser, Browser)
    page = browser.new_context(viewport={"width": 1366, "height": 900}).new_page()
    page.goto(f"{server}/login")
    page.fill("input[name=username]", username)
    page.fill("input[name=password]", "demo1234")
    page.click("button[type=submit]")
    expect(page.get_by_test_id("queue")).to_be_visible()
    return page


def test_a_supervisor_approves_a_discount_a_collector_built_beyond_policy(
    server: str, browser: object
) -> None:
    from playwright.sync_api import Page, expect

    collector = _sign_in(browser, server, "collector1")
    assert isinstance(collector, Page)
    # a case of collector1 without a plan yet
    case_path = None
    for href in (
        collector.get_by_test_id("queue")
        .locator("a")
        .evaluate_all("els => els.map(e => e.getAttribute('href'))")
    ):
        path = href.split("?")[0]
        collector.goto(f"{server}{path}")
        if collector.get_by_test_id("plan").count() == 0:
            case_path = path
            break
    assert case_path, "every case of collector1 has a plan already"
    total = _amount(collector.get_by_test_id("case-total").inner_text())
    half = total // 2
    collector.get_by_test_id("open-calculator").click()
    collector.get_by_test_id("kind-settlement").click()
    form = collector.get_by_test_id("plan-form")
    form.locator("input[name=settle_amount]").fill(f"{half // 100}.{half % 100:02d}")
    form.locator("input[name=payments]").fill("1")
    form.locator("input[name=first_on]").fill("2026-03-20")
    collector.get_by_test_id("preview").click()
    approval = collector.get_by_test_id("needs-approval")
    expect(approval).to_contain_text("超出催收员权限")
    expect(approval).to_contain_text("减免比例")
    expect(collector.get_by_test_id("quote-payable")).to_contain_text(f"{half // 100:,}")
    collector.screenshot(path=str(ARTIFACTS / "10-settlement-beyond-policy.png"), full_page=True)
    collector.get_by_test_id("agree").click()
    expect(collector.locator(".notice")).to_contain_text("已提交组长审批")
    expect(collector.get_by_test_id("plan-status").first).to_contain_text("待审批")

    supervisor = _sign_in(browser, server, "supervisor")
    assert isinstance(supervisor, Page)
    supervisor.get_by_test_id("nav-dashboard").click()
    expect(supervisor.get_by_test_id("chart-aging")).to_be_visible()
    expect(supervisor.get_by_test_id("chart-roll")).to_be_visible()
    expect(supervisor.get_by_test_id("chart-collected")).to_be_visible()
    expect(supervisor.get_by_test_id("kpi-collected-today")).to_contain_text("¥300.00")
    supervisor.screenshot(path=str(ARTIFACTS / "11-dashboard.png"), full_page=True)
    supervisor.set_viewport_size({"width": 768, "height": 1024})
    supervisor.screenshot(path=str(ARTIFACTS / "12-dashboard-tablet.png"), full_page=True)
    supervisor.set_viewport_size({"width": 1366, "height": 900})
    supervisor.click("a.lang")
    expect(supervisor.get_by_test_id("aging")).to_contain_text("Aging by bucket")
    expect(supervisor.get_by_test_id("roll")).to_contain_text("Roll rates month over month")
    supervisor.screenshot(path=str(ARTIFACTS / "12-dashboard-en.png"), full_page=True)
    supervisor.click("a.lang")

    supervisor.get_by_test_id("nav-approvals").click()
    card = supervisor.get_by_test_id("plan-approval").filter(has_text=case_path.rsplit("/", 1)[-1])
    expect(card).to_contain_text("减免和解")
    expect(card).to_contain_text("方案超出政策限制")
    supervisor.screenshot(path=str(ARTIFACTS / "13-approvals.png"), full_page=True)
    supervisor.set_viewport_size({"width": 768, "height": 1024})
    supervisor.screenshot(path=str(ARTIFACTS / "13-approvals-tablet.png"), full_page=True)
    supervisor.set_viewport_size({"width": 1366, "height": 900})
    card.get_by_test_id("approve").click()
    expect(supervisor.locator(".notice")).to_contain_text("已批准")

    collector.goto(f"{server}{case_path}")
    expect(collector.get_by_test_id("plan-status").first).to_contain_text("执行中")
    expect(collector.get_by_test_id("timeline")).to_contain_text("批准了还款方案")
    collector.screenshot(path=str(ARTIFACTS / "14-case-approved-plan.png"), full_page=True)

    supervisor.get_by_test_id("nav-runs").click()
    expect(supervisor.get_by_test_id("run-row")).to_have_count(3)
    supervisor.screenshot(path=str(ARTIFACTS / "15-run-history.png"), full_page=True)
    supervisor.get_by_test_id("run-row").first.locator("a").click()
    expect(supervisor.get_by_test_id("run-stages")).to_be_visible()
    supervisor.screenshot(path=str(ARTIFACTS / "16-run.png"), full_page=True)
    supervisor.get_by_test_id("nav-team").click()
    expect(supervisor.get_by_test_id("team-row").first).to_be_visible()
    supervisor.screenshot(path=str(ARTIFACTS / "17-team.png"), full_page=True)


def _admin_api(server: str) -> httpx.Client:
    """An httpx client signed in to the desk as the demo administrator (the session cookie works on the API)."""
    client = httpx.Client(base_url=server, follow_redirects=False)
    form = client.get("/login").text
    token = re.search(r'name="csrf_token" value="([^"]+)"', form)
    assert token
    done = client.post(
        "/login",
        data={"username": "admin", "password": "demo1234", "csrf_token": token.group(1), "next": "/queue"},
    )
    assert done.status_code == 303
    return client


def test_an_agency_user_opens_only_the_cases_placed_with_their_agency_page_and_api_refuse_the_rest(
    server: str, browser: object
) -> None:
    from playwright.sync_api import Browser, expect

    assert isinstance(browser, Browser)
    admin = _admin_api(server)
    agencies = admin.get("/api/v1/agencies").json()
    (demo_agency,) = [a for a in agencies if a["name"] == "示范外包催收公司"]
    placed = sorted(
        p["case_id"] for p in admin.get(f"/api/v1/agencies/{demo_agency['id']}/placements").json()
    )
    assert placed
    other = next(i for i in range(1, 1000) if i not in placed)

    page = browser.new_context(viewport={"width": 1366, "height": 900}).new_page()
    page.goto(f"{server}/login")
    page.fill("input[name=username]", "agency1")
    page.fill("input[name=password]", "demo1234")
    page.click("button[type=submit]")
    expect(page).to_have_url(re.compile(r"/queue"))

    # a case placed with the agency opens, and a masked field can be revealed with a reason
    answer = page.goto(f"{server}/cases/{placed[0]}")
    assert answer is not None and answer.status == 200
    expect(page.get_by_test_id("national-id")).to_contain_text("*")
    page.locator("details summary", has_text="查看完整信息").click()
    reveal = page.get_by_test_id("reveal-form")
    reveal.locator("select[name=field]").select_option("national_id")
    reveal.locator("input[name=reason]").fill("债务人来电核实身份")
    reveal.locator("button[type=submit]").click()
    expect(page.get_by_test_id("revealed")).to_be_visible()
    assert "*" not in page.get_by_test_id("revealed").inner_text()

    # the accounts table shows the repayment card masked; the reveal form offers it in clear
    with_card = next(
        c for c in placed if 'value="bank_account:' in page.request.get(f"{server}/cases/{c}").text()
    )
    page.goto(f"{server}/cases/{with_card}")
    expect(page.get_by_test_id("bank-account").first).to_contain_text("**** **** ****")
    page.locator("details summary", has_text="查看完整信息").click()
    reveal = page.get_by_test_id("reveal-form")
    card = reveal.locator("option[value^='bank_account:']").first.get_attribute("value")
    assert card
    reveal.locator("select[name=field]").select_option(card)
    reveal.locator("input[name=reason]").fill("核对债务人还款卡号")
    reveal.locator("button[type=submit]").click()
    expect(page.get_by_test_id("revealed")).to_contain_text("还款账号")
    assert re.search(r"\b62\d{14,17}\b", page.get_by_test_id("revealed").inner_text())

    # a case not placed with them: the page refuses
    answer = page.goto(f"{server}/cases/{other}")
    assert answer is not None and answer.status == 403
    expect(page.locator("body")).to_contain_text("该案件不在你的名下")
    page.screenshot(path=str(ARTIFACTS / "18-agency-refused.png"), full_page=True)

    # and so does the API, with the same browser session
    assert page.request.get(f"{server}/api/v1/cases/{other}/contact-attempts").status == 403
    assert page.request.get(f"{server}/api/v1/cases/{placed[0]}/contact-attempts").status == 200
    page.close()
