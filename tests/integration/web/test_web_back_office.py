"""The back-office pages over HTTP, on SQLite and PostgreSQL: imports with their problem report, users,
agencies, templates linted on save, rule packs and strategies validated before saving, and the compliance
officer's views of contacts, holds, the access log and a case's hash chain."""

from __future__ import annotations

import csv
import re
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from desk_builders import PASSWORD, Desk, csrf, make_desk, own_phone, sign_in
from fastapi.testclient import TestClient
from sqlalchemy import Engine, func, select, text

from arrears import db, demo
from arrears.api.app import create_app
from arrears.compliance import pack as packs
from arrears.compliance import service as compliance
from arrears.compliance.schemas import Outcome
from arrears.contacts import service as contacts_service
from arrears.enums import Channel
from arrears.models import (
    AccessLog,
    Account,
    Agency,
    AppUser,
    ConfigChange,
    ContactAttempt,
    ImportJob,
    MessageTemplate,
    Placement,
    Portfolio,
)
from arrears.strategy import loader
from arrears.users import service as users

MORNING = "2026-03-02T10:00:00+08:00"


@pytest.fixture
def office(
    engine: Engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[Desk, dict[str, AppUser]]]:
    monkeypatch.setenv("ARREARS_FROZEN_NOW", MORNING)
    monkeypatch.setenv("ARREARS_DOCUMENT_DIR", str(tmp_path / "documents"))
    monkeypatch.setenv(packs.PACK_DIR_ENV, str(tmp_path / "rule-packs"))
    monkeypatch.setenv(loader.STRATEGY_DIR_ENV, str(tmp_path / "strategies"))
    from arrears.config import get_settings

    get_settings.cache_clear()
    with db.session_scope(engine) as s:
        built = make_desk(s, tmp_path)
        extra = {
            role: users.add_user(s, username=f"{role}-{built.tag}", role=role, password=PASSWORD)
            for role in ("admin", "compliance")
        }
    yield built, extra
    get_settings.cache_clear()
    compliance.forget_rule_packs()


def _client(engine: Engine, username: str) -> TestClient:
    client = TestClient(create_app(engine))
    assert sign_in(client, username).status_code == 303
    return client


def _text(html: str) -> str:
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html))


def _demo_csv(path: Path, *, accounts: int, bad_row: int | None = None) -> Path:
    """A demo-style lender file; ``bad_row`` (1-based data row) gets a principal that is not an amount."""
    demo.write_demo_file(path, accounts=accounts, seed=7, as_of=datetime(2026, 3, 2).date())
    if bad_row is None:
        return path
    with path.open(encoding="utf-8", newline="") as fh:
        rows = list(csv.reader(fh))
    rows[bad_row][demo.HEADERS.index("本金")] = "一百元"
    with path.open("w", encoding="utf-8", newline="") as fh:
        csv.writer(fh).writerows(rows)
    return path


def test_back_office_pages_are_refused_to_roles_that_do_not_need_them(
    engine: Engine, office: tuple[Desk, dict[str, AppUser]]
) -> None:
    desk, extra = office
    collector = _client(engine, desk.users["a"].username)
    for path in ("/admin/imports", "/admin/users", "/admin/rule-packs", "/compliance/contacts"):
        r = collector.get(path)
        assert r.status_code == 403, path
        assert "你的角色不能打开此页面" in r.text
    token = csrf(collector.get("/queue").text)
    for path in ("/admin/placements/1/recall", "/admin/agencies/1", "/admin/users", "/admin/rule-packs"):
        r = collector.post(path, data={"csrf_token": token, "reason": "x", "text": "x"})
        assert r.status_code == 403, path
        assert 'data-testid="placements"' not in r.text and 'data-testid="users"' not in r.text, path
    officer = _client(engine, extra["compliance"].username)
    assert officer.get("/admin/users").status_code == 403
    assert officer.get("/compliance/contacts").status_code == 200
    assert officer.get("/compliance/holds").status_code == 200
    admin = _client(engine, extra["admin"].username)
    for path in (
        "/admin/imports",
        "/admin/users",
        "/admin/agencies",
        "/admin/templates",
        "/admin/strategies",
    ):
        assert admin.get(path).status_code == 200, path
    nav = admin.get("/queue").text
    assert 'href="/admin/imports"' in nav and 'href="/compliance/contacts"' in nav
    assert 'href="/admin/imports"' not in collector.get("/queue").text


def test_an_upload_with_a_bad_row_imports_nothing_and_the_page_names_the_row_then_the_fixed_file_imports(
    engine: Engine, office: tuple[Desk, dict[str, AppUser]], tmp_path: Path
) -> None:
    desk, extra = office
    admin = _client(engine, extra["admin"].username)
    with db.session_scope(engine) as s:
        target = Portfolio(
            name=f"upload-{desk.tag}", creditor_id=s.get(Portfolio, desk.portfolio_id).creditor_id
        )  # type: ignore[union-attr]
        s.add(target)
        s.flush()
        target_id = target.id
    bad = _demo_csv(tmp_path / "lender.csv", accounts=8, bad_row=3)
    token = csrf(admin.get("/admin/imports").text)
    r = admin.post(
        "/admin/imports",
        data={"portfolio_id": str(target_id), "csrf_token": token},
        files={"file": ("lender.csv", bad.read_bytes(), "text/csv")},
    )
    assert r.status_code == 200  # followed to the job page; the import ran after the response
    page = _text(r.text)
    assert "已拒绝" in page and "一百元" in page
    rows = re.findall(r'<td class="num">(\d+)</td><td>本金', r.text)
    assert rows == ["4"], rows  # the sheet's row 4: header + three rows before it
    with db.session_scope(engine) as s:
        assert (
            s.scalar(select(func.count()).select_from(Account).where(Account.portfolio_id == target_id)) == 0
        )
        job = s.scalars(select(ImportJob).order_by(ImportJob.id.desc())).first()
        assert job is not None and job.status == "rejected" and job.errors_count >= 1
    report = admin.get(f"/admin/imports/{job.id}/report")
    assert report.status_code == 200 and "一百元" in report.content.decode("utf-8-sig")

    good = _demo_csv(tmp_path / "lender-fixed.csv", accounts=8)
    r = admin.post(
        "/admin/imports",
        data={"portfolio_id": str(target_id), "csrf_token": token},
        files={"file": ("lender-fixed.csv", good.read_bytes(), "text/csv")},
    )
    assert "已导入" in r.text
    with db.session_scope(engine) as s:
        assert (
            s.scalar(select(func.count()).select_from(Account).where(Account.portfolio_id == target_id)) == 8
        )
    assert "lender-fixed.csv" in admin.get("/admin/imports").text


def test_a_rejected_uploads_stored_problem_report_names_row_and_column_with_id_and_bank_numbers_masked(
    engine: Engine, office: tuple[Desk, dict[str, AppUser]], tmp_path: Path
) -> None:
    desk, extra = office
    admin = _client(engine, extra["admin"].username)
    path = _demo_csv(tmp_path / "lender-ids.csv", accounts=4)
    with path.open(encoding="utf-8", newline="") as fh:
        rows = list(csv.reader(fh))
    bad_id, bad_bank = "110105194912310021", "62220212345678901234567890123456789"  # check digit; 35 digits
    rows[2][demo.HEADERS.index("身份证号")] = bad_id
    rows[3][demo.HEADERS.index("还款账号")] = bad_bank
    with path.open("w", encoding="utf-8", newline="") as fh:
        csv.writer(fh).writerows(rows)
    token = csrf(admin.get("/admin/imports").text)
    r = admin.post(
        "/admin/imports",
        data={"portfolio_id": str(desk.portfolio_id), "csrf_token": token},
        files={"file": ("lender-ids.csv", path.read_bytes(), "text/csv")},
    )
    assert r.status_code == 200 and "已拒绝" in _text(r.text)
    with db.session_scope(engine) as s:
        job = s.scalars(select(ImportJob).order_by(ImportJob.id.desc())).first()
        assert job is not None and job.status == "rejected" and job.report_path
    stored = Path(job.report_path).read_text(encoding="utf-8-sig")  # the report kept at rest
    downloaded = admin.get(f"/admin/imports/{job.id}/report").content.decode("utf-8-sig")
    for content in (stored, downloaded, r.text):
        assert bad_id not in content and bad_bank not in content
    found = {
        (row["行号 row"], row["列 column"], row["值 value"], row["代码 code"])
        for row in csv.DictReader(downloaded.splitlines())
    }
    assert ("3", "身份证号", "110105********0021", "id_check_digit") in found
    assert ("4", "还款账号", "**** **** **** 6789", "bad_bank_account") in found
    assert "110105********0021" in r.text and "**** **** **** 6789" in r.text  # the job's page


def test_an_upload_that_is_not_a_spreadsheet_is_refused_on_the_page_and_queues_nothing(
    engine: Engine, office: tuple[Desk, dict[str, AppUser]]
) -> None:
    desk, extra = office
    admin = _client(engine, extra["admin"].username)
    token = csrf(admin.get("/admin/imports").text)
    with db.session_scope(engine) as s:
        before = s.scalar(select(func.count()).select_from(ImportJob))
    r = admin.post(
        "/admin/imports",
        data={"portfolio_id": str(desk.portfolio_id), "csrf_token": token},
        files={"file": ("notes.pdf", b"%PDF-1.4", "application/pdf")},
    )
    assert r.status_code == 422 and "不是 CSV 或 XLSX" in r.text
    forged = admin.post(
        "/admin/imports",
        data={"portfolio_id": str(desk.portfolio_id), "csrf_token": "forged"},
        files={"file": ("a.csv", b"x\n", "text/csv")},
    )
    assert forged.status_code == 403
    with db.session_scope(engine) as s:
        assert s.scalar(select(func.count()).select_from(ImportJob)) == before


def test_an_admin_adds_a_user_changes_a_role_and_a_deactivated_user_is_signed_out(
    engine: Engine, office: tuple[Desk, dict[str, AppUser]]
) -> None:
    desk, extra = office
    admin = _client(engine, extra["admin"].username)
    token = csrf(admin.get("/admin/users").text)
    weak = admin.post(
        "/admin/users",
        data={"username": f"new-{desk.tag}", "role": "collector", "password": "x", "csrf_token": token},
    )
    assert weak.status_code == 422
    r = admin.post(
        "/admin/users",
        data={
            "username": f"new-{desk.tag}",
            "display_name": "新同事",
            "role": "collector",
            "password": PASSWORD,
            "csrf_token": token,
        },
    )
    assert r.status_code == 200 and f"new-{desk.tag}" in r.text
    newcomer = _client(engine, f"new-{desk.tag}")
    assert newcomer.get("/queue").status_code == 200
    with db.session_scope(engine) as s:
        user = s.scalars(select(AppUser).where(AppUser.username == f"new-{desk.tag}")).one()
    r = admin.post(f"/admin/users/{user.id}", data={"role": "supervisor", "csrf_token": token})  # no "active"
    assert r.status_code == 200
    with db.session_scope(engine) as s:
        changed = s.get(AppUser, user.id)
        assert changed is not None and changed.role == "supervisor" and not changed.active
    assert newcomer.get("/queue", follow_redirects=False).status_code == 303  # signed out
    me = extra["admin"].id
    refused = admin.post(f"/admin/users/{me}", data={"role": "admin", "csrf_token": token})
    assert refused.status_code == 409 and "不能停用自己" in refused.text


def test_agencies_are_added_with_a_commission_and_a_placement_is_recalled_with_a_reason(
    engine: Engine, office: tuple[Desk, dict[str, AppUser]]
) -> None:
    desk, extra = office
    admin = _client(engine, extra["admin"].username)
    token = csrf(admin.get("/admin/agencies").text)
    bad = admin.post(
        "/admin/agencies",
        data={"name": f"机构-{desk.tag}", "commission_percent": "12.345", "csrf_token": token},
    )
    assert bad.status_code == 422 and "12.345" in bad.text
    r = admin.post(
        "/admin/agencies",
        data={"name": f"机构-{desk.tag}", "listed": "on", "commission_percent": "12.5", "csrf_token": token},
    )
    assert r.status_code == 200
    with db.session_scope(engine) as s:
        agency = s.scalars(select(Agency).where(Agency.name == f"机构-{desk.tag}")).one()
        assert agency.commission_bps == 1250 and agency.listed
        placement = Placement(
            case_id=desk.cases[0],
            agency_id=agency.id,
            placed_on=datetime(2026, 3, 1).date(),
            expires_on=datetime(2026, 6, 1).date(),
        )
        s.add(placement)
        s.flush()
        placement_id = placement.id
    page = admin.get("/admin/agencies").text
    assert f"/admin/placements/{placement_id}/recall" in page
    no_reason = admin.post(
        f"/admin/placements/{placement_id}/recall", data={"reason": "", "csrf_token": token}
    )
    assert no_reason.status_code == 422
    r = admin.post(
        f"/admin/placements/{placement_id}/recall", data={"reason": "到期前收回", "csrf_token": token}
    )
    assert r.status_code == 200
    with db.session_scope(engine) as s:
        recalled = s.get(Placement, placement_id)
        assert recalled is not None and recalled.recalled_on == datetime(2026, 3, 2).date()


def test_a_template_with_a_threat_is_refused_with_the_phrase_and_a_clean_one_is_versioned_and_previewed(
    engine: Engine, office: tuple[Desk, dict[str, AppUser]]
) -> None:
    desk, extra = office
    admin = _client(engine, extra["admin"].username)
    token = csrf(admin.get("/admin/templates/new?channel=sms").text)
    code = f"reminder_{desk.tag}"
    threat = "【{{ institution_name }}】{{ debtor_name }}您好，再不还款就上门让你全家知道。"
    r = admin.post(
        "/admin/templates",
        data={
            "csrf_token": token,
            "channel": "sms",
            "code": code,
            "kind": "debtor",
            "locale": "zh_CN",
            "part_body": threat,
        },
    )
    assert r.status_code in (409, 422)
    assert "CN-6" in r.text and "template-issues" in r.text
    with db.session_scope(engine) as s:
        assert (
            s.scalar(select(func.count()).select_from(MessageTemplate).where(MessageTemplate.code == code))
            == 0
        )
    body = "【{{ institution_name }}】{{ debtor_name }}您好，您的账单应还 {{ amount_due }}，请于 {{ due_date }} 前还款。"
    for version in (1, 2):
        r = admin.post(
            "/admin/templates",
            data={
                "csrf_token": token,
                "channel": "sms",
                "code": code,
                "kind": "debtor",
                "locale": "zh_CN",
                "part_body": body + ("" if version == 1 else "如已还款请忽略。"),
            },
        )
        assert r.status_code == 200 and f"第 {version} 版" in r.text
    with db.session_scope(engine) as s:
        newest = s.scalars(
            select(MessageTemplate)
            .where(MessageTemplate.code == code)
            .order_by(MessageTemplate.version.desc())
        ).first()
        assert newest is not None and newest.version == 2
    preview = admin.get(f"/admin/templates/{newest.id}?case_id={desk.cases[0]}")
    assert preview.status_code == 200 and "template-preview" in preview.text
    assert "{{" not in preview.text.split('data-testid="template-preview"')[1].split("</section>")[0]
    assert "bad_case_id" not in preview.text and "条短信" in preview.text


def test_a_copied_rule_pack_with_later_hours_is_saved_and_used_by_the_gate_and_a_bad_key_is_refused(
    engine: Engine, office: tuple[Desk, dict[str, AppUser]], tmp_path: Path
) -> None:
    _desk, extra = office
    admin = _client(engine, extra["admin"].username)
    original = admin.get("/admin/rule-packs/cn")
    assert original.status_code == 200
    token = csrf(original.text)
    source = (packs.builtin_dir() / "cn.toml").read_text(encoding="utf-8")
    assert 'name = "cn"' in source
    copied = source.replace('name = "cn"', 'name = "cn-late"', 1)
    broken = copied + "\n[nonsense]\nvalue = 1\n"
    r = admin.post("/admin/rule-packs", data={"text": broken, "csrf_token": token})
    assert r.status_code == 422 and "nonsense" in r.text and "unknown key" in r.text
    assert not (tmp_path / "rule-packs" / "cn-late.toml").exists()
    r = admin.post("/admin/rule-packs", data={"text": copied, "csrf_token": token})
    assert r.status_code == 200 and "cn-late" in r.text
    assert (tmp_path / "rule-packs" / "cn-late.toml").read_text(encoding="utf-8") == copied
    assert packs.load_pack("cn-late").name == "cn-late"
    assert "cn-late" in admin.get("/admin/rule-packs").text
    with db.session_scope(engine) as s:
        change = s.scalars(select(ConfigChange).where(ConfigChange.name == "cn-late")).one()
        assert change.changed_by_id == extra["admin"].id and change.content == copied
    assert (packs.builtin_dir() / "cn.toml").read_text(encoding="utf-8") == source  # shipped file untouched


def test_a_strategy_change_must_raise_its_version_and_every_saved_version_is_kept(
    engine: Engine, office: tuple[Desk, dict[str, AppUser]]
) -> None:
    _desk, extra = office
    admin = _client(engine, extra["admin"].username)
    page = admin.get("/admin/strategies/default")
    token = csrf(page.text)
    source = loader.packaged_dir("strategies").joinpath("default.toml").read_text(encoding="utf-8")
    version = int(re.search(r"^version = (\d+)", source, re.M).group(1))  # type: ignore[union-attr]
    changed = source.replace('label_en = "', 'label_en = "Revised ', 1)
    same_version = admin.post("/admin/strategies", data={"text": changed, "csrf_token": token})
    assert same_version.status_code == 422 and "version" in same_version.text
    bumped = changed.replace(f"version = {version}", f"version = {version + 1}", 1)
    r = admin.post("/admin/strategies", data={"text": bumped, "csrf_token": token})
    assert r.status_code == 200
    assert loader.load_strategy("default").version == version + 1
    history = admin.get("/admin/strategies/default")
    assert 'data-testid="history"' in history.text


def test_the_compliance_officer_sees_a_night_call_blocked_by_cn1_the_access_log_and_a_tampered_chain(
    engine: Engine, office: tuple[Desk, dict[str, AppUser]]
) -> None:
    desk, extra = office
    case_id = desk.cases[0]
    with db.session_scope(engine) as s:
        contacts_service.record_attempt(
            s,
            case_id=case_id,
            contact_point_id=own_phone(s, case_id),
            channel=Channel.CALL,
            started_at=datetime(2026, 3, 2, 15, 0, tzinfo=UTC),  # 23:00 in Shanghai
            outcome=Outcome.NO_ANSWER,
            collector="in_house",
        )
    collector = _client(engine, desk.users["a"].username)
    collector.get(f"/cases/{case_id}")
    officer = _client(engine, extra["compliance"].username)
    page = officer.get("/compliance/contacts?decision=blocked&rule=CN-1")
    assert page.status_code == 200
    text_ = _text(page.text)
    assert "CN-1" in text_ and "2026-03-02 23:00" in text_
    assert 'data-testid="blocked-by-rule"' in page.text
    bad = officer.get("/compliance/contacts?start=2026-13-01")
    assert bad.status_code == 200 and "bad date" in bad.text
    log = officer.get(f"/compliance/access-log?user={desk.users['a'].username}")
    assert "查看案件" in log.text and f">{case_id}<" in log.text
    record = officer.get(f"/compliance/cases/{case_id}")
    assert "哈希链完整" in record.text
    with db.session_scope(engine) as s:
        s.execute(text("UPDATE contact_attempt SET notes = 'rewritten' WHERE case_id = :c"), {"c": case_id})
    record = officer.get(f"/compliance/cases/{case_id}")
    assert "哈希链在第 1 条处断开" in record.text
    with db.session_scope(engine) as s:
        actions = s.scalars(
            select(AccessLog.action).where(
                AccessLog.user_id == extra["compliance"].id, AccessLog.case_id == case_id
            )
        ).all()
        assert "view_record" in actions
        assert s.scalar(
            select(func.count()).select_from(ContactAttempt).where(ContactAttempt.case_id == case_id)
        )


def test_a_compliance_officer_builds_and_downloads_a_case_evidence_bundle_whose_manifest_checks(
    engine: Engine, office: tuple[Desk, dict[str, AppUser]]
) -> None:
    from arrears.legal import bundle as bundle_service

    desk, extra = office
    case_id = desk.cases[0]
    officer = _client(engine, extra["compliance"].username)
    page = officer.get(f"/compliance/cases/{case_id}")
    assert 'data-testid="build-bundle"' in page.text
    built = officer.post(f"/compliance/cases/{case_id}/bundle", data={"csrf_token": csrf(page.text)})
    assert built.status_code == 200 and built.headers["content-type"] == "application/zip"
    check = bundle_service.check_bundle(built.content)
    assert check.ok, check
    again = officer.get(f"/compliance/cases/{case_id}")
    link = re.search(r'href="(/compliance/bundles/\d+)"', again.text)
    assert link
    stored = officer.get(link.group(1))
    assert stored.status_code == 200 and stored.content == built.content
    auditor = _client(engine, desk.users["auditor"].username)
    refused = auditor.post(
        f"/compliance/cases/{case_id}/bundle", data={"csrf_token": csrf(auditor.get("/queue").text)}
    )
    assert refused.status_code == 403
    collector = _client(engine, desk.users["a"].username)
    assert collector.get(link.group(1)).status_code == 403
