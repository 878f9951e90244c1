"""The template store: linting against the portfolio's rule pack, versions, preview with a real case, and
the API and CLI doors. Runs on SQLite and PostgreSQL."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Iterator
from datetime import date
from pathlib import Path

import pytest
from api_clients import make_user_token
from channels_db_builders import SMS_BODY, make_debt, make_portfolio, savepoint_factory
from fastapi.testclient import TestClient
from sqlalchemy import Engine
from sqlalchemy.orm import Session

from arrears import db
from arrears.api.app import create_app
from arrears.api.deps import get_session
from arrears.channels import service
from arrears.errors import ComplianceBlocked, ValidationFailed

SRC = Path(__file__).resolve().parents[3] / "src"


@pytest.fixture
def tx(engine: Engine) -> Iterator[tuple[Session, object]]:
    with savepoint_factory(engine) as (session, factory):
        yield session, factory


def test_cn5_template_impersonating_a_court_is_refused_with_the_offending_phrase(tx: tuple) -> None:
    session, _ = tx
    portfolio = make_portfolio(session)
    body = "【{{ institution_name }}】{{ debtor_name }}，法院传票已发出，请立即还款 {{ amount_due }}。"
    with pytest.raises(ComplianceBlocked) as caught:
        service.save_template(
            session, code="threat", channel="sms", locale="zh_CN", kind="debtor", parts={"body": body},
            portfolio_id=portfolio.id,
        )  # fmt: skip
    assert caught.value.code == "template_refused" and "法院传票" in caught.value.message
    assert "CN-5" in caught.value.details["rule_ids"]
    assert any(i["match"] == "法院传票" and i["part"] == "body" for i in caught.value.details["issues"])
    assert service.list_templates(session, portfolio_id=portfolio.id, code="threat") == []


def test_cn4_third_party_template_naming_the_debt_is_refused(tx: tuple) -> None:
    session, _ = tx
    portfolio = make_portfolio(session)
    body = (
        "【{{ institution_name }}】{{ recipient_name }}您好，请转告{{ debtor_name }}尽快归还{{ balance }}。"
    )
    with pytest.raises(ComplianceBlocked) as caught:
        service.save_template(
            session, code="tp", channel="sms", locale="zh_CN", kind="third_party", parts={"body": body},
            portfolio_id=portfolio.id,
        )  # fmt: skip
    assert caught.value.details["rule_ids"] == ["CN-4"] and "{{ balance }}" in caught.value.message
    # asking to pass on a message, naming the institution (CN-5), is fine
    fine = "【{{ institution_name }}】{{ recipient_name }}您好，请转告{{ debtor_name }}回电：{{ institution_phone }}。"
    saved = service.save_template(
        session, code="tp", channel="sms", locale="zh_CN", kind="third_party", parts={"body": fine},
        portfolio_id=portfolio.id,
    )  # fmt: skip
    assert saved.version == 1


def test_a_template_with_a_syntax_error_is_refused_as_invalid(tx: tuple) -> None:
    session, _ = tx
    with pytest.raises(ValidationFailed) as caught:
        service.save_template(
            session, code="broken", channel="sms", locale="zh_CN", kind="debtor",
            parts={"body": "{{ institution_name }} {{ debtor_name "},
        )  # fmt: skip
    assert caught.value.code == "template_invalid"


def test_saving_makes_versions_and_the_newest_is_used(tx: tuple) -> None:
    session, _ = tx
    portfolio = make_portfolio(session)
    save = dict(code="reminder", channel="sms", locale="zh_CN", kind="debtor", portfolio_id=portfolio.id)
    v1 = service.save_template(session, parts={"body": SMS_BODY}, **save)
    assert (
        service.save_template(session, parts={"body": SMS_BODY}, **save).id == v1.id
    )  # unchanged: no version
    v2 = service.save_template(session, parts={"body": SMS_BODY + "谢谢。"}, **save)
    assert (v1.version, v2.version) == (1, 2)
    assert [r.id for r in service.list_templates(session, portfolio_id=portfolio.id, code="reminder")] == [
        v2.id
    ]
    every = service.list_templates(session, portfolio_id=portfolio.id, code="reminder", all_versions=True)
    assert [r.version for r in every] == [1, 2]
    resolved = service.resolve_template(
        session, portfolio_id=portfolio.id, code="reminder", channel="sms", locale="zh_CN"
    )
    assert resolved.template_id == v2.id and resolved.template.parts["body"].endswith("谢谢。")
    shipped = service.resolve_template(
        session, portfolio_id=portfolio.id, code="formal_notice", channel="letter", locale="en"
    )
    assert shipped.template_id is None and shipped.template.locale == "en"


def test_preview_renders_a_real_case_and_counts_sms_segments(tx: tuple) -> None:
    session, _ = tx
    portfolio = make_portfolio(session)
    debt = make_debt(session, portfolio)
    row = service.save_template(
        session, code="reminder", channel="sms", locale="zh_CN", kind="debtor", parts={"body": SMS_BODY},
        portfolio_id=portfolio.id,
    )  # fmt: skip
    preview = service.preview_template(
        session, template_id=row.id, case_id=debt.case.id, as_of=date(2026, 3, 5)
    )
    text = preview.parts["body"]
    assert "王小明" in text and "500.00" in text and "400-800-1234" in text and "{{" not in text
    assert preview.sms is not None and preview.sms.encoding.value == "ucs2"
    assert preview.sms.characters == len(text) and preview.sms.segments == (
        1 if len(text) <= 70 else -(-len(text) // 67)
    )
    assert preview.issues == []


def test_api_lists_saves_refuses_and_previews_templates(tx: tuple, engine: Engine) -> None:
    session, factory = tx
    portfolio = make_portfolio(session)
    debt = make_debt(session, portfolio)
    admin = make_user_token(engine, "admin", session=session)
    session.commit()
    app = create_app(engine)

    def override() -> Iterator[Session]:
        s = factory()
        try:
            yield s
            s.commit()
        finally:
            s.close()

    app.dependency_overrides[get_session] = override
    client = TestClient(app, headers={"Authorization": f"Bearer {admin[1]}"})
    ok = client.post(
        "/api/v1/templates",
        json={
            "code": "reminder",
            "channel": "sms",
            "kind": "debtor",
            "parts": {"body": SMS_BODY},
            "portfolio_id": portfolio.id,
        },
    )
    assert ok.status_code == 201, ok.text
    template = ok.json()
    assert template["version"] == 1
    bad = client.post(
        "/api/v1/templates",
        json={
            "code": "x",
            "channel": "sms",
            "parts": {"body": "{{ institution_name }}：老赖，还钱"},
            "portfolio_id": portfolio.id,
        },
    )
    assert (
        bad.status_code == 409
        and bad.json()["code"] == "template_refused"
        and "老赖" in bad.json()["message"]
    )
    listed = client.get("/api/v1/templates", params={"portfolio_id": portfolio.id}).json()
    assert [t["id"] for t in listed if t["portfolio_id"] == portfolio.id] == [template["id"]]
    preview = client.post(
        f"/api/v1/templates/{template['id']}/preview", json={"case_id": debt.case.id, "as_of": "2026-03-05"}
    )
    assert preview.status_code == 200, preview.text
    body = preview.json()
    assert (
        "王小明" in body["parts"]["body"]
        and body["sms"]["encoding"] == "ucs2"
        and body["sms"]["segments"] >= 1
    )


def test_cli_template_save_list_and_preview(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'cli.db'}"
    engine = db.make_engine(url)
    db.upgrade(engine)
    with db.session_scope(engine) as s:
        portfolio = make_portfolio(s)
        debt = make_debt(s, portfolio)
        name, case_id = portfolio.name, debt.case.id
    engine.dispose()
    env = {
        **os.environ,
        "ARREARS_DATABASE_URL": url,
        "COLUMNS": "200",
        "PYTHONPATH": f"{SRC}{os.pathsep}{os.environ.get('PYTHONPATH', '')}",
    }
    (tmp_path / "body.txt").write_text(SMS_BODY, encoding="utf-8")
    (tmp_path / "bad.txt").write_text("{{ institution_name }} 警察 会来找你", encoding="utf-8")

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "arrears.cli", *args], env=env, capture_output=True, text=True, timeout=120
        )

    saved = cli(
        "template",
        "save",
        "reminder",
        "--channel",
        "sms",
        "--body",
        str(tmp_path / "body.txt"),
        "--portfolio",
        name,
    )
    assert saved.returncode == 0, saved.stderr
    assert "v1" in saved.stdout
    refused = cli("template", "save", "bad", "--channel", "sms", "--body", str(tmp_path / "bad.txt"))
    assert refused.returncode == 2 and "警察" in refused.stderr and "template_refused" in refused.stderr
    listed = cli("template", "list", "--portfolio", name)
    assert listed.returncode == 0 and "reminder" in listed.stdout
    template_id = re.search(r"template (\d+) reminder", saved.stdout).group(1)  # type: ignore[union-attr]
    shown = cli("template", "preview", template_id, "--case", str(case_id), "--as-of", "2026-03-05")
    assert shown.returncode == 0, shown.stderr
    assert "王小明" in shown.stdout and "segment" in shown.stdout
