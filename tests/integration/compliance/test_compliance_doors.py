"""The doors onto the gate and the record: the REST API and the `arrears` command in a real process."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from datetime import timedelta
from pathlib import Path
from typing import Any

from api_clients import api_client
from compliance_db_builders import make_case, sh
from sqlalchemy import Engine

import arrears
from arrears import clock, db
from arrears.compliance.schemas import Outcome
from arrears.contacts import service as contacts
from arrears.enums import Channel

ARREARS = [sys.executable, "-m", "arrears.cli"]

QUIET_HOURS_CHECK: dict[str, Any] = {
    "pack": "cn",
    "attempt": {
        "at": "2026-03-02T23:30:00+08:00",
        "channel": "call",
        "contact_point": {"value": "+8613800138000", "time_zones": ["Asia/Shanghai"]},
        "account_ids": [1],
        "collector": "bank",
    },
    "history": [],
    "context": {},
}


def run_cli(args: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    # The child imports the same arrears as this test (a relative PYTHONPATH would not survive the cwd).
    src = str(Path(arrears.__file__).resolve().parents[1])
    path = os.pathsep.join(p for p in (src, os.environ.get("PYTHONPATH", "")) if p)
    env = {
        **os.environ,
        "ARREARS_DATABASE_URL": f"sqlite:///{cwd / 'cli.db'}",
        "COLUMNS": "240",
        "PYTHONPATH": path,
    }
    return subprocess.run([*ARREARS, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=300)


def test_api_what_if_check_stores_nothing_and_accepts_pack_overrides(engine: Engine) -> None:
    client = api_client(engine)
    r = client.post("/api/v1/compliance/check", json=QUIET_HOURS_CHECK)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["allowed"] is False and body["rule_ids"] == ["CN-1"]
    assert body["next_allowed_at"].startswith("2026-03-03T00:00:00")  # 08:00 in Shanghai
    assert body["reasons"][0]["zh"] and body["reasons"][0]["en"]

    at = "2026-03-02T15:00:00+08:00"
    calls = [{"at": f"2026-03-02T{9 + i:02d}:00:00+08:00", "outcome": "no_answer"} for i in range(4)]
    request = {**QUIET_HOURS_CHECK, "attempt": {**QUIET_HOURS_CHECK["attempt"], "at": at}, "history": calls}
    assert client.post("/api/v1/compliance/check", json=request).json()["allowed"] is True
    request["pack"] = {"base": "cn", "overrides": {"daily_call_cap": {"max_attempts": 4}}}
    body = client.post("/api/v1/compliance/check", json=request).json()
    assert body["allowed"] is False and body["rule_ids"] == ["CN-2"]

    request["pack"] = {"base": "cn", "overrides": {"daily_call_cap": {"max_atempts": 4}}}
    bad = client.post("/api/v1/compliance/check", json=request)
    assert bad.status_code == 422 and "max_atempts" in bad.json()["message"]


def test_api_records_attempts_and_answers_409_for_a_blocked_one_that_is_still_stored(engine: Engine) -> None:
    with db.session_scope(engine) as s:
        b = make_case(s)
        case_id, phone_id, account_id = b.case.id, b.phone.id, b.accounts[0].id
    client = api_client(engine)
    url = f"/api/v1/cases/{case_id}/contact-attempts"
    ok = client.post(
        url,
        json={
            "contact_point_id": phone_id,
            "channel": "call",
            "collector": "bank",
            "started_at": "2026-03-02T10:00:00+08:00",
            "ended_at": "2026-03-02T10:04:00+08:00",
            "outcome": "promise",
            "notes": "承诺 3 月 10 日还款",
            "recording_ref": "rec://2026/03/02/0001",
        },
    )
    assert ok.status_code == 201, ok.text
    assert ok.json()["attempt"]["seq"] == 1 and ok.json()["decision"]["allowed"] is True
    # a record says what happened: an attempt starting after the request is refused, and not stored
    future = (clock.now() + timedelta(hours=1)).isoformat()
    early = client.post(
        url,
        json={
            "contact_point_id": phone_id,
            "channel": "call",
            "collector": "bank",
            "started_at": future,
            "outcome": "no_answer",
        },
    )
    assert early.status_code == 422 and early.json()["code"] == "attempt_in_future"
    blocked = client.post(
        url,
        json={
            "contact_point_id": phone_id,
            "channel": "call",
            "collector": "bank",
            "started_at": "2026-03-02T22:30:00+08:00",
            "outcome": "no_answer",
        },
    )
    assert blocked.status_code == 409
    err = blocked.json()
    assert err["code"] == "compliance_blocked" and "CN-1" in err["message"]
    assert err["details"]["decision"]["rule_ids"] == ["CN-1"]
    assert err["details"]["attempt"]["outcome"] == "blocked"
    record = client.get(url).json()
    assert [(a["seq"], a["outcome"], a["allowed"]) for a in record] == [
        (1, "promise", True),
        (2, "blocked", False),
    ]
    assert record[1]["prev_hash"] == record[0]["hash"]

    fix = client.post(
        f"/api/v1/contact-attempts/{record[0]['id']}/corrections", json={"notes": "承诺 3 月 12 日还款"}
    )
    assert fix.status_code == 201 and fix.json()["corrects_id"] == record[0]["id"]

    lim = client.get(f"/api/v1/accounts/{account_id}/limitation", params={"as_of": "2026-03-02"})
    assert lim.status_code == 200, lim.text
    body = lim.json()
    assert body["limitation_on"] == "2029-03-02" and body["rule_id"] == "CN-26"
    assert body["set_by"]["kind"] == "promise" and body["explanation"]["en"]
    assert client.get("/api/v1/accounts/987654321/limitation").status_code == 404
    bad = client.post(url, json={"channel": "fax", "started_at": "2026-03-02T10:00:00+08:00", "outcome": "x"})
    assert bad.status_code == 422
    with db.session_scope(engine) as s:
        assert contacts.verify_chain(s, case_id=case_id).ok


def test_cli_audit_verify_reports_a_note_changed_with_raw_sql(tmp_path: Path) -> None:
    path = tmp_path / "cli.db"
    engine = db.make_engine(f"sqlite:///{path}")
    db.upgrade(engine)
    with db.session_scope(engine) as s:
        b = make_case(s)
        ids = [
            contacts.record_attempt(
                s,
                case_id=b.case.id,
                contact_point_id=b.phone.id,
                channel=Channel.CALL,
                started_at=sh(2026, 3, 2, 9 + i),
                outcome=Outcome.NO_ANSWER,
                collector="bank",
                notes=f"第 {i + 1} 次拨打",
            ).attempt.id
            for i in range(3)
        ]
        case_id = b.case.id
    engine.dispose()

    ok = run_cli(["audit", "verify"], tmp_path)
    assert ok.returncode == 0, ok.stderr
    assert "1 cases, 3 contact attempts" in ok.stdout

    with sqlite3.connect(path) as raw:
        raw.execute("UPDATE contact_attempt SET notes = '已接通，债务人同意还款' WHERE id = ?", (ids[1],))
    broken = run_cli(["audit", "verify"], tmp_path)
    assert broken.returncode == 1
    assert "Traceback" not in broken.stderr
    assert f"case {case_id} attempt #2 (id {ids[1]}) [content_changed]" in broken.stderr

    explain = run_cli(["compliance", "explain", str(case_id), "--at", "2026-03-02T23:00:00+08:00"], tmp_path)
    assert explain.returncode == 0, explain.stderr
    assert "CN-1" in explain.stdout and "hash chain broken" in explain.stdout
    assert "2028-01-10" in explain.stdout  # limitation date of the 2025-01-10 due date


def test_cli_compliance_check_reads_a_json_file(tmp_path: Path) -> None:
    file = tmp_path / "check.json"
    file.write_text(json.dumps(QUIET_HOURS_CHECK), encoding="utf-8")
    r = run_cli(["compliance", "check", str(file)], tmp_path)
    assert r.returncode == 1, r.stderr
    assert "blocked" in r.stdout and "CN-1" in r.stdout and "2026-03-03 08:00" in r.stdout
    r = run_cli(["compliance", "check", str(file), "--json"], tmp_path)
    assert json.loads(r.stdout)["rule_ids"] == ["CN-1"]
    allowed = {
        **QUIET_HOURS_CHECK,
        "attempt": {**QUIET_HOURS_CHECK["attempt"], "at": "2026-03-02T10:00:00+08:00"},
    }
    file.write_text(json.dumps(allowed), encoding="utf-8")
    assert run_cli(["compliance", "check", str(file)], tmp_path).returncode == 0
    file.write_text('{"attempt": {"channel": "fax"}}', encoding="utf-8")
    bad = run_cli(["compliance", "check", str(file)], tmp_path)
    assert bad.returncode == 2 and "Traceback" not in bad.stderr and "attempt.channel" in bad.stderr


def test_readme_what_if_example_gives_the_documented_decision() -> None:
    import re

    from arrears.compliance.whatif import CheckRequest, run_check

    readme = (Path(__file__).resolve().parents[3] / "README.md").read_text(encoding="utf-8")
    section = readme[readme.index("## Compliance gate and contact record") :]
    request, decision = re.findall(r"```json\n(.*?)```", section, re.S)[:2]
    assert run_check(CheckRequest.model_validate_json(request)).to_dict() == json.loads(decision)
