"""A collector's day in a real browser against the real server.

The server is uvicorn in a subprocess on a free port with a SQLite file built by ``arrears demo --no-serve``;
its clock is frozen at 10:00 Shanghai time (``ARREARS_FROZEN_NOW``) so the queue and the checks are the same
on every run. The browser is the system Chromium. Screenshots go to ``test-artifacts/``.
"""

from __future__ import annotations

import re

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

    # a call logged at 22:30 is refused and recorded as blocked
    page.goto(case_url)
    form = page.get_by_test_id("attempt-form")
    form.locator("input[name=started_at]").fill("2026-03-02T22:30")
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
    page.close()


def test_a_collector_gets_403_on_another_collectors_case_and_a_supervisor_opens_it(
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
    response = collector.goto(f"{server}{case_path}")
    assert response is not None and response.status == 403
    expect(collector.get_by_test_id("error")).to_contain_text("不在你的名下")
