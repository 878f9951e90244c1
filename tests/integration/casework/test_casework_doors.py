"""The case work doors: REST endpoints and CLI commands as users meet them (JSON errors, one-line CLI
errors), on SQLite and PostgreSQL for the API."""

from __future__ import annotations

import base64
import csv
import os
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest
from api_clients import api_client
from casework_builders import IDS, Book, make_book
from sqlalchemy import Engine
from sqlalchemy.orm import Session

import arrears
from arrears import clock, db
from arrears.config import get_settings
from arrears.models import AppUser

ARREARS = [sys.executable, "-m", "arrears.cli"]


@pytest.fixture
def committed(engine: Engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Book:
    monkeypatch.setenv("ARREARS_DOCUMENT_DIR", str(tmp_path / "documents"))
    get_settings.cache_clear()
    with db.session_scope(engine) as s:
        book = make_book(s, tmp_path)
    yield book
    get_settings.cache_clear()


def test_rest_endpoints_for_holds_promises_plans_legal_and_placements(
    engine: Engine, committed: Book
) -> None:
    book = committed
    api = api_client(engine)
    acc = {ref: a.id for ref, a in book.accounts.items()}
    uid = {role: u.id for role, u in book.users.items()}

    # dispute with evidence -> hold until an authorised user clears it
    evidence = {
        "filename": "receipt.txt",
        "media_type": "text/plain",
        "content_base64": base64.b64encode(b"paid").decode(),
    }
    r = api.post(
        f"/api/v1/accounts/{acc['2']}/disputes",
        json={
            "reason_code": "amount_wrong",
            "received_on": "2025-07-01",
            "written": True,
            "evidence": [evidence],
        },
    )
    assert r.status_code == 201, r.text
    dispute = r.json()
    assert dispute["status"] == "open" and dispute["documents"][0]["size_bytes"] == 4
    holds = api.get(f"/api/v1/accounts/{acc['2']}/holds", params={"as_of": "2025-07-02"}).json()
    assert [h["kind"] for h in holds] == ["dispute"]
    denied = api.post(
        f"/api/v1/holds/{dispute['flag_id']}/clear", json={"user_id": uid["collector"], "reason": "x"}
    )
    assert denied.status_code == 403 and denied.json()["code"] == "role_required"

    # promise
    r = api.post(
        "/api/v1/promises",
        json={
            "account_id": acc["4"],
            "amount_minor": 50000,
            "promised_on": "2025-07-03",
            "made_on": "2025-07-01",
        },
    )
    assert r.status_code == 201 and r.json()["deadline_on"] == "2025-07-05"
    assert len(api.get(f"/api/v1/accounts/{acc['4']}/promises").json()) == 1

    # quote (nothing saved), create, approve
    plan_request = {"kind": "instalments", "count": 6, "first_on": "2025-07-10"}
    q = api.post(
        "/api/v1/arrangements/quote",
        json={"account_ids": [acc["4"]], "as_of": "2025-07-01", "request": plan_request},
    )
    assert q.status_code == 200, q.text
    assert q.json()["payable_minor"] == 315000 and len(q.json()["schedule"]) == 6
    bad = api.post(
        "/api/v1/arrangements/quote",
        json={"account_ids": [acc["4"]], "as_of": "2025-07-01", "request": {"kind": "x"}},
    )
    assert bad.status_code == 422 and bad.json()["code"] == "bad_arrangement_request"
    made = api.post(
        "/api/v1/arrangements",
        json={"account_ids": [acc["4"]], "as_of": "2025-07-01", "request": plan_request},
    )
    assert made.status_code == 201 and made.json()["status"] == "active"
    settlement = {"kind": "settlement", "settle_minor": 1000000, "first_on": "2025-07-15"}
    pending = api.post(
        "/api/v1/arrangements", json={"account_ids": [acc["3"]], "as_of": "2025-07-01", "request": settlement}
    ).json()
    assert pending["status"] == "pending_approval" and pending["waivers"]
    ok = api.post(
        f"/api/v1/arrangements/{pending['id']}/approve", json={"user_id": uid["supervisor"], "reason": "同意"}
    )
    assert ok.json()["status"] == "active"

    # legal: the disputed account is refused, the other goes through and gets its letter
    refused = api.post(
        "/api/v1/legal-cases",
        json={
            "account_ids": [acc["2"]],
            "kind": "lawyer_letter",
            "referred_by_id": uid["collector"],
            "referred_on": "2025-07-01",
            "law_firm_name": "正衡律师事务所",
        },
    )
    assert refused.status_code == 409 and refused.json()["code"] == "referral_refused"
    case = api.post(
        "/api/v1/legal-cases",
        json={
            "account_ids": [acc["1"]],
            "kind": "lawyer_letter",
            "referred_by_id": uid["collector"],
            "referred_on": "2025-07-01",
            "law_firm_name": "正衡律师事务所",
            "lawyer_name": "周明",
        },
    ).json()
    decided = api.post(
        f"/api/v1/legal-cases/{case['id']}/decision", json={"user_id": uid["supervisor"], "approve": True}
    )
    assert decided.json()["milestone"] == "prepared"
    doc = api.post(
        f"/api/v1/legal-cases/{case['id']}/lawyer-letter", json={"letter_date": "2025-07-03"}
    ).json()
    pdf = api.get(f"/api/v1/documents/{doc['id']}/content")
    assert pdf.headers["content-type"] == "application/pdf" and pdf.content.startswith(b"%PDF")
    served_on = (clock.now().date() + timedelta(days=1)).isoformat()  # approval was dated today
    served = api.post(
        f"/api/v1/legal-cases/{case['id']}/milestones",
        json={"milestone": "served", "occurred_on": served_on, "document_id": doc["id"]},
    )
    assert served.status_code == 201, served.text
    assert [m["milestone"] for m in served.json()["milestones"]] == ["prepared", "served"]

    # placements: unlisted agency refused (CN-7)
    unlisted = api.post("/api/v1/agencies", json={"name": f"无名单-{book.tag}", "listed": False}).json()
    r = api.post(
        "/api/v1/placements",
        json={
            "agency_id": unlisted["id"],
            "placed_on": "2025-07-01",
            "expires_on": "2025-10-01",
            "portfolio_id": book.portfolio.id,
        },
    )
    assert r.status_code == 409 and r.json()["code"] == "agency_not_listed"
    listed = api.post(
        "/api/v1/agencies", json={"name": f"合规-{book.tag}", "listed": True, "commission_bps": 1000}
    ).json()
    placed = api.post(
        "/api/v1/placements",
        json={
            "agency_id": listed["id"],
            "placed_on": "2025-07-01",
            "expires_on": "2025-10-01",
            "portfolio_id": book.portfolio.id,
            "rule": {"dpd_min": 30, "max_cases": 5},
        },
    )
    assert placed.status_code == 201 and len(placed.json()) == 1  # 张三's case is disputed, 李四's is placed
    recalled = api.post(
        f"/api/v1/placements/{placed.json()[0]['id']}/recall",
        json={"user_id": uid["supervisor"], "reason": "调整", "recalled_on": "2025-08-01"},
    )
    assert recalled.json()["recalled_on"] == "2025-08-01"


def run_cli(args: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "ARREARS_DATABASE_URL": f"sqlite:///{cwd / 'cli.db'}",
        "ARREARS_DOCUMENT_DIR": str(cwd / "documents"),
        "COLUMNS": "200",
        # the package under test, wherever the run was started from
        "PYTHONPATH": os.pathsep.join(
            [str(Path(arrears.__file__).parents[1]), os.environ.get("PYTHONPATH", "")]
        ),
    }
    return subprocess.run([*ARREARS, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=300)


def test_cli_holds_placements_and_lawyer_letter(tmp_path: Path) -> None:
    assert run_cli(["portfolio", "create", "p", "--creditor", "星辰银行"], tmp_path).returncode == 0
    with (tmp_path / "a.csv").open("w", encoding="utf-8", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(
            [
                "借据号",
                "姓名",
                "身份证号",
                "手机号",
                "产品类型",
                "本金",
                "逾期金额",
                "到期日",
                "放款日期",
                "地址",
            ]
        )
        w.writerow(
            [
                "A1",
                "张三",
                IDS[0],
                "13800138000",
                "信用卡",
                "5000",
                "5000",
                "2025-03-01",
                "2024-03-01",
                "北京市",
            ]
        )
        w.writerow(
            [
                "A2",
                "李四",
                IDS[1],
                "13900001111",
                "信用卡",
                "3000",
                "3000",
                "2025-04-01",
                "2024-04-01",
                "上海市",
            ]
        )
    assert run_cli(["import", "accounts", "a.csv", "--as-of", "2025-07-01"], tmp_path).returncode == 0
    engine = db.make_engine(f"sqlite:///{tmp_path / 'cli.db'}")
    with Session(engine) as s:
        s.add_all(
            [
                AppUser(username="ann", display_name="Ann", role="collector"),
                AppUser(username="sam", display_name="Sam", role="supervisor"),
            ]
        )
        s.commit()
    engine.dispose()

    r = run_cli(["hold", "place", "A1", "--kind", "cease", "--reason-code", "debtor_request"], tmp_path)
    assert r.returncode == 0, r.stderr
    flag_id = r.stdout.split()[1]
    assert "cease" in run_cli(["hold", "list", "A1"], tmp_path).stdout
    denied = run_cli(["hold", "clear", flag_id, "--user", "ann", "--reason", "x"], tmp_path)
    assert denied.returncode == 2 and "role_required" in denied.stderr and "Traceback" not in denied.stderr
    assert (
        run_cli(
            ["hold", "clear", flag_id, "--user", "sam", "--reason", "债务人撤回停催请求"], tmp_path
        ).returncode
        == 0
    )
    assert "cleared" in run_cli(["hold", "events", flag_id], tmp_path).stdout

    assert run_cli(["placement", "agency", "影子催收", "--unlisted"], tmp_path).returncode == 0
    refused = run_cli(
        [
            "placement",
            "place",
            "--agency",
            "影子催收",
            "--expires-on",
            "2025-10-01",
            "--placed-on",
            "2025-07-01",
        ],
        tmp_path,
    )
    assert refused.returncode == 2 and "agency_not_listed" in refused.stderr
    assert (
        run_cli(
            ["placement", "agency", "合规催收", "--listed", "--commission-bps", "1500"], tmp_path
        ).returncode
        == 0
    )
    placed = run_cli(
        [
            "placement",
            "place",
            "--agency",
            "合规催收",
            "--expires-on",
            "2025-10-01",
            "--placed-on",
            "2025-07-01",
            "--dpd-min",
            "100",
        ],
        tmp_path,
    )
    assert placed.returncode == 0 and "1 cases" in placed.stdout, placed.stderr

    r = run_cli(
        [
            "legal",
            "refer",
            "A2",
            "--law-firm",
            "正衡律师事务所",
            "--user",
            "ann",
            "--referred-on",
            "2025-07-01",
        ],
        tmp_path,
    )
    assert r.returncode == 0, r.stderr
    legal_id = r.stdout.split()[2].rstrip(":")
    assert run_cli(["legal", "decide", legal_id, "--user", "sam"], tmp_path).returncode == 0
    letter = run_cli(["legal", "letter", legal_id, "--out", "letter.pdf", "--date", "2025-07-03"], tmp_path)
    assert letter.returncode == 0, letter.stderr
    assert (tmp_path / "letter.pdf").read_bytes().startswith(b"%PDF")
