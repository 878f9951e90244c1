"""A collector's day in a real browser against the real server.

The server is uvicorn in a subprocess on a free port with a SQLite file built by ``arrears demo --no-serve``;
its clock is frozen at 10:00 Shanghai time (``ARREARS_FROZEN_NOW``) so the queue and the checks are the same
on every run. The browser is the system Chromium. Screenshots go to ``test-artifacts/``.
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

import arrears

CHROMIUM = os.environ.get("ARREARS_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
FROZEN_NOW = "2026-03-02T10:00:00+08:00"
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"

pytestmark = pytest.mark.slow


def _missing(reason: str) -> None:
    if os.environ.get("CI") == "true":
        pytest.fail(reason)
    pytest.skip(reason)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    if not (Path(CHROMIUM).exists() or shutil.which(CHROMIUM)):
        _missing(f"no Chromium at {CHROMIUM} (make system-deps installs Debian's chromium)")
    pytest.importorskip("playwright.sync_api", reason="the playwright package is not installed")
    work = tmp_path_factory.mktemp("e2e")
    env = {
        **os.environ,
        "ARREARS_DATABASE_URL": f"sqlite:///{work / 'desk.db'}",
        "ARREARS_FROZEN_NOW": FROZEN_NOW,
        "PYTHONPATH": str(Path(arrears.__file__).parents[1]),
    }
    demo = subprocess.run(
        [sys.executable, "-m", "arrears.cli", "demo", "--no-serve", "--accounts", "200", "--out", str(work)],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert demo.returncode == 0, demo.stderr[-2000:]
    assert "demo1234" in demo.stdout
    port = _free_port()
    ARTIFACTS.mkdir(exist_ok=True)
    log = (ARTIFACTS / "server.log").open("w")
    proc = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "arrears.api.app:create_app", "--factory", "--port", str(port)],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(150):
            try:
                if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        else:
            pytest.fail("the server did not start")
        yield base
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        log.close()


@pytest.fixture(scope="module")
def browser(server: str) -> Iterator[object]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        instance = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield instance
        instance.close()


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

    # a case not placed with them: the page refuses
    answer = page.goto(f"{server}/cases/{other}")
    assert answer is not None and answer.status == 403
    expect(page.locator("body")).to_contain_text("该案件不在你的名下")
    page.screenshot(path=str(ARTIFACTS / "07-agency-refused.png"), full_page=True)

    # and so does the API, with the same browser session
    assert page.request.get(f"{server}/api/v1/cases/{other}/contact-attempts").status == 403
    assert page.request.get(f"{server}/api/v1/cases/{placed[0]}/contact-attempts").status == 200
    page.close()
