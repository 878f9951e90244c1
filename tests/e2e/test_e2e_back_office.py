"""The back office in a real browser against the real server: an administrator uploads a lender's file with
a bad row and reads the problem report on the page, and a compliance officer finds a night call blocked by
CN-1 among the contacts and checks that case's hash chain. Screenshots go to ``test-artifacts/``."""

from __future__ import annotations

import csv
import re
from datetime import date
from pathlib import Path

import pytest
from e2e_support import ARTIFACTS, sign_in

from arrears import demo

pytestmark = pytest.mark.slow


def test_an_administrator_uploads_a_file_with_a_bad_row_and_reads_the_report_then_imports_the_fix(
    server: str, browser: object, tmp_path: Path
) -> None:
    from playwright.sync_api import Browser, expect

    assert isinstance(browser, Browser)
    path = demo.write_demo_file(tmp_path / "某银行-2026-03.csv", accounts=12, seed=11, as_of=date(2026, 3, 2))
    with path.open(encoding="utf-8", newline="") as fh:
        rows = list(csv.reader(fh))
    good = [list(r) for r in rows]
    rows[5][demo.HEADERS.index("本金")] = "-20"
    bad = tmp_path / "bad.csv"
    with bad.open("w", encoding="utf-8", newline="") as fh:
        csv.writer(fh).writerows(rows)

    page = browser.new_context(viewport={"width": 1280, "height": 900}).new_page()
    sign_in(page, server, "admin")
    page.goto(f"{server}/admin/imports")
    form = page.get_by_test_id("import-form")
    form.locator("input[type=file]").set_input_files(str(bad))
    form.locator("button[type=submit]").click()
    expect(page).to_have_url(re.compile(r"/admin/imports/\d+$"))
    expect(page.get_by_test_id("job-status")).to_contain_text("已拒绝")
    report = page.get_by_test_id("import-report")
    expect(report).to_contain_text("-20")
    expect(report.locator("tr", has_text="-20").locator("td").first).to_have_text("6")
    page.screenshot(path=str(ARTIFACTS / "20-admin-import-rejected.png"), full_page=True)

    fixed = tmp_path / "fixed.csv"
    with fixed.open("w", encoding="utf-8", newline="") as fh:
        csv.writer(fh).writerows(good)
    page.goto(f"{server}/admin/imports")
    form = page.get_by_test_id("import-form")
    form.locator("input[type=file]").set_input_files(str(fixed))
    form.locator("button[type=submit]").click()
    expect(page.get_by_test_id("job-status")).to_contain_text("已导入", timeout=30_000)
    expect(page.get_by_test_id("job-rows")).to_have_text("12")
    page.screenshot(path=str(ARTIFACTS / "21-admin-import-applied.png"), full_page=True)
    page.close()


def test_a_compliance_officer_finds_a_night_call_blocked_by_cn1_and_the_case_chain_holds(
    server: str, browser: object
) -> None:
    from playwright.sync_api import Browser, expect

    assert isinstance(browser, Browser)
    collector = browser.new_context().new_page()
    sign_in(collector, server, "collector1")
    collector.get_by_test_id("next-case").click()
    expect(collector).to_have_url(re.compile(r"/cases/\d+"))
    case_id = re.search(r"/cases/(\d+)", collector.url).group(1)  # type: ignore[union-attr]
    form = collector.get_by_test_id("attempt-form")
    form.locator("input[name=started_at]").fill("2026-03-01T22:30")  # last night
    form.locator("select[name=outcome]").select_option("no_answer")
    form.locator("button[type=submit]").click()
    expect(collector.get_by_test_id("blocked-result")).to_contain_text("CN-1")

    officer = browser.new_context(viewport={"width": 1280, "height": 900}).new_page()
    sign_in(officer, server, "compliance")
    officer.goto(f"{server}/compliance/contacts?decision=blocked&rule=CN-1")
    table = officer.get_by_test_id("contacts")
    row = table.locator("tr", has_text="2026-03-01 22:30").first
    expect(row).to_contain_text("CN-1")
    expect(officer.get_by_test_id("blocked-by-rule")).to_contain_text("CN-1")
    officer.screenshot(path=str(ARTIFACTS / "22-compliance-contacts.png"), full_page=True)
    row.locator(f"a[href='/compliance/cases/{case_id}']").click()
    expect(officer.get_by_test_id("chain-result")).to_contain_text("哈希链完整")
    officer.goto(f"{server}/compliance/access-log?user=collector1")
    expect(officer.get_by_test_id("access-log")).to_contain_text(case_id)
    officer.screenshot(path=str(ARTIFACTS / "23-compliance-access-log.png"), full_page=True)
