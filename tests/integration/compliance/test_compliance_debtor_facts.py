"""Consents, inconvenient times and opt-outs recorded through the API and the CLI, and the gate honouring
them as recorded facts at the moment of each contact (CN-1, CN-2, US-1, ALL-2), on SQLite and PostgreSQL."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from api_clients import api_client
from compliance_db_builders import Built, make_case, sh
from sqlalchemy import Engine
from sqlalchemy.orm import Session
from test_compliance_doors import run_cli

from arrears import db
from arrears.compliance import service
from arrears.compliance.schemas import Decision, Outcome
from arrears.contacts import service as contacts
from arrears.enums import Channel

NEW_YORK = ZoneInfo("America/New_York")


def ny(y: int, mo: int, d: int, h: int, mi: int = 0) -> datetime:
    return datetime(y, mo, d, h, mi, tzinfo=NEW_YORK).astimezone(UTC)


def _built(engine: Engine, **kw: Any) -> tuple[int, int, int, int, int]:
    """A committed case: (case id, debtor id, own phone id, e-mail id, account id)."""
    with Session(engine) as s:
        b: Built = make_case(s, **kw)
        s.commit()
        return b.case.id, b.debtor.id, b.phone.id, b.email.id, b.accounts[0].id


def _check(
    engine: Engine, case_id: int, point: int, at: datetime, channel: Channel = Channel.CALL
) -> Decision:
    with Session(engine) as s:
        return service.check_contact(
            s, case_id=case_id, contact_point_id=point, channel=channel, at=at, collector="bank"
        )


def test_a_consent_recorded_through_the_api_lifts_quiet_hours_until_it_is_revoked(engine: Engine) -> None:
    case_id, debtor_id, phone, _email, account = _built(engine)
    client = api_client(engine)
    night = sh(2026, 3, 2, 23, 0)
    assert _check(engine, case_id, phone, night).rule_ids == ("CN-1",)

    r = client.post(
        f"/api/v1/debtors/{debtor_id}/consents",
        json={
            "scope": "quiet_hours",
            "granted_at": "2026-03-02T20:00:00+08:00",
            "expires_at": "2026-03-09T20:00:00+08:00",
            "contact_point_id": phone,
            "account_ids": [account],
        },
    )
    assert r.status_code == 201, r.text
    consent = r.json()
    assert consent["scope"] == "quiet_hours" and consent["revoked_at"] is None
    assert consent["account_ids"] == [account] and consent["contact_point_id"] == phone
    assert _check(engine, case_id, phone, night).allowed  # CN-1: the debtor asked for it
    assert _check(engine, case_id, phone, sh(2026, 3, 10, 23, 0)).rule_ids == ("CN-1",)  # expired

    listed = client.get(f"/api/v1/debtors/{debtor_id}/consents").json()
    assert [c["id"] for c in listed] == [consent["id"]]
    revoked = client.delete(
        f"/api/v1/debtors/{debtor_id}/consents/{consent['id']}", params={"at": "2026-03-04T12:00:00+08:00"}
    )
    assert revoked.status_code == 200 and revoked.json()["revoked_at"].startswith("2026-03-04T04:00:00")
    assert _check(engine, case_id, phone, sh(2026, 3, 4, 23, 0)).rule_ids == ("CN-1",)
    assert _check(engine, case_id, phone, night).allowed  # before the revocation it was in force
    assert client.get(f"/api/v1/debtors/{debtor_id}/consents").json() == []
    assert (
        len(client.get(f"/api/v1/debtors/{debtor_id}/consents", params={"include_ended": True}).json()) == 1
    )
    again = client.delete(f"/api/v1/debtors/{debtor_id}/consents/{consent['id']}")
    assert again.status_code == 409 and again.json()["code"] == "already_revoked"


def test_a_call_cap_consent_lets_a_seventh_call_through(engine: Engine) -> None:
    case_id, debtor_id, phone, _email, _account = _built(engine)
    with Session(engine) as s:
        for i in range(6):
            contacts.record_attempt(
                s,
                case_id=case_id,
                contact_point_id=phone,
                channel=Channel.CALL,
                started_at=sh(2026, 3, 2, 9) + timedelta(minutes=20 * i),
                outcome=Outcome.NO_ANSWER,
                collector="bank",
            )
        s.commit()
    seventh = sh(2026, 3, 2, 15)
    assert _check(engine, case_id, phone, seventh).rule_ids == ("CN-2",)
    client = api_client(engine)
    r = client.post(
        f"/api/v1/debtors/{debtor_id}/consents",
        json={"scope": "call_cap", "granted_at": "2026-03-02T14:00:00+08:00"},
    )
    assert r.status_code == 201, r.text
    assert _check(engine, case_id, phone, seventh).allowed


def test_an_inconvenient_time_blocks_that_time_on_its_weekdays_until_removed(engine: Engine) -> None:
    case_id, debtor_id, phone, _email, _account = _built(engine, rule_pack="us-regf", zone="America/New_York")
    with Session(engine) as s:  # a New York number, so its zone is certain
        from arrears.models import ContactPoint

        point = s.get(ContactPoint, phone)
        assert point is not None
        point.value, point.timezone = "+12125550142", "America/New_York"
        s.commit()
    client = api_client(engine)
    monday_lunch, tuesday_lunch = ny(2026, 3, 2, 12, 30), ny(2026, 3, 3, 12, 30)
    assert _check(engine, case_id, phone, monday_lunch).allowed
    r = client.post(
        f"/api/v1/debtors/{debtor_id}/inconvenient-times",
        json={"starts": "12:00", "ends": "14:00", "weekdays": [0]},
    )
    assert r.status_code == 201, r.text
    window = r.json()
    assert window["weekdays"] == [0] and window["starts"] == "12:00:00"
    blocked = _check(engine, case_id, phone, monday_lunch)
    assert blocked.rule_ids == ("US-1",) and blocked.next_allowed_at == ny(2026, 3, 2, 14, 0)
    assert _check(engine, case_id, phone, tuesday_lunch).allowed
    r = client.delete(
        f"/api/v1/debtors/{debtor_id}/inconvenient-times/{window['id']}",
        params={"at": "2026-03-05T09:00:00-05:00"},
    )
    assert r.status_code == 200 and r.json()["removed_at"] is not None
    assert _check(engine, case_id, phone, ny(2026, 3, 9, 12, 30)).allowed  # the next Monday
    assert not _check(engine, case_id, phone, monday_lunch).allowed  # it was in force then
    bad = client.post(
        f"/api/v1/debtors/{debtor_id}/inconvenient-times",
        json={"starts": "12:00", "ends": "14:00", "weekdays": [7]},
    )
    assert bad.status_code == 422


def test_channel_and_contact_point_opt_outs_block_until_withdrawn(engine: Engine) -> None:
    case_id, debtor_id, phone, email, _account = _built(engine)
    client = api_client(engine)
    day = sh(2026, 3, 2, 10)
    r = client.post(
        f"/api/v1/debtors/{debtor_id}/opt-outs", json={"channel": "sms", "at": "2026-03-01T10:00:00+08:00"}
    )
    assert r.status_code == 201, r.text
    sms_out = r.json()
    assert sms_out["kind"] == "channel" and sms_out["channel"] == "sms"
    assert _check(engine, case_id, phone, day, Channel.SMS).rule_ids == ("ALL-2",)
    assert _check(engine, case_id, phone, day, Channel.CALL).allowed
    assert _check(engine, case_id, phone, sh(2026, 2, 28, 10), Channel.SMS).allowed  # before it was asked
    twice = client.post(f"/api/v1/debtors/{debtor_id}/opt-outs", json={"channel": "sms"})
    assert twice.status_code == 409 and twice.json()["code"] == "already_opted_out"

    r = client.post(
        f"/api/v1/debtors/{debtor_id}/opt-outs",
        json={"contact_point_id": email, "at": "2026-03-01T10:00:00+08:00"},
    )
    assert r.status_code == 201 and r.json()["kind"] == "contact_point"
    assert _check(engine, case_id, email, day, Channel.EMAIL).rule_ids == ("ALL-2",)
    kinds = [o["kind"] for o in client.get(f"/api/v1/debtors/{debtor_id}/opt-outs").json()]
    assert kinds == ["channel", "contact_point"]

    r = client.delete(
        f"/api/v1/debtors/{debtor_id}/opt-outs/{sms_out['id']}", params={"at": "2026-03-02T09:00:00+08:00"}
    )
    assert r.status_code == 200 and r.json()["withdrawn_at"] is not None
    assert _check(engine, case_id, phone, day, Channel.SMS).allowed
    assert not _check(engine, case_id, phone, sh(2026, 3, 1, 12), Channel.SMS).allowed  # in force then
    r = client.delete(f"/api/v1/debtors/{debtor_id}/contact-points/{email}/opt-out")
    assert r.status_code == 200
    assert _check(engine, case_id, email, day, Channel.EMAIL).allowed


def test_bad_facts_are_refused_with_a_clear_message_and_change_nothing(engine: Engine) -> None:
    _case_a, debtor_a, _phone_a, _email_a, _account_a = _built(engine)
    _case_b, _debtor_b, phone_b, _email_b, account_b = _built(engine)
    client = api_client(engine)
    url = f"/api/v1/debtors/{debtor_a}/consents"
    r = client.post(
        url,
        json={"scope": "quiet_hours", "granted_at": "2026-03-02T20:00:00+08:00", "contact_point_id": phone_b},
    )
    assert r.status_code == 422 and r.json()["code"] == "contact_point_not_of_debtor"
    assert "does not belong" in r.json()["message"] and "不属于" in r.json()["message"]
    r = client.post(
        url,
        json={"scope": "quiet_hours", "granted_at": "2026-03-02T20:00:00+08:00", "account_ids": [account_b]},
    )
    assert r.status_code == 422 and r.json()["code"] == "account_not_of_debtor"
    r = client.post(
        url,
        json={
            "scope": "quiet_hours",
            "granted_at": "2026-03-02T20:00:00+08:00",
            "expires_at": "2026-03-02T19:00:00+08:00",
        },
    )
    assert r.status_code == 422 and r.json()["code"] == "bad_consent_period"
    assert (
        client.post(url, json={"scope": "everything", "granted_at": "2026-03-02T20:00:00+08:00"}).status_code
        == 422
    )
    assert client.get(url).json() == []
    assert client.get("/api/v1/debtors/999999999/consents").status_code == 404
    r = client.post(
        f"/api/v1/debtors/{debtor_a}/opt-outs", json={"channel": "sms", "contact_point_id": phone_b}
    )
    assert r.status_code == 422 and r.json()["code"] == "bad_opt_out"
    assert client.delete(f"/api/v1/debtors/{debtor_a}/opt-outs/999999999").status_code == 404


def test_cli_records_consents_times_and_opt_outs_that_the_gate_then_honours(tmp_path: Path) -> None:
    path = tmp_path / "cli.db"
    engine = db.make_engine(f"sqlite:///{path}")
    db.upgrade(engine)
    case_id, debtor_id, phone, _email, _account = _built(engine)
    night = sh(2026, 3, 2, 23, 0)

    added = run_cli(
        [
            "compliance",
            "consent",
            "add",
            str(debtor_id),
            "--scope",
            "quiet_hours",
            "--at",
            "2026-03-02T20:00:00+08:00",
        ],
        tmp_path,
    )
    assert added.returncode == 0, added.stderr
    consent = json.loads(added.stdout)
    assert _check(engine, case_id, phone, night).allowed
    listed = run_cli(["compliance", "consent", "list", str(debtor_id)], tmp_path)
    assert [c["id"] for c in json.loads(listed.stdout)] == [consent["id"]]
    revoked = run_cli(
        [
            "compliance",
            "consent",
            "revoke",
            str(debtor_id),
            str(consent["id"]),
            "--at",
            "2026-03-02T21:00:00+08:00",
        ],
        tmp_path,
    )
    assert revoked.returncode == 0, revoked.stderr
    assert _check(engine, case_id, phone, night).rule_ids == ("CN-1",)

    added = run_cli(
        ["compliance", "inconvenient-time", "add", str(debtor_id), "--from", "12:00", "--to", "14:00"],
        tmp_path,
    )
    assert added.returncode == 0, added.stderr
    assert _check(engine, case_id, phone, sh(2026, 3, 3, 12, 30)).rule_ids == ("CN-1",)  # cn honours it too

    out = run_cli(
        [
            "compliance",
            "opt-out",
            "add",
            str(debtor_id),
            "--channel",
            "sms",
            "--at",
            "2026-03-01T00:00:00+08:00",
        ],
        tmp_path,
    )
    assert out.returncode == 0, out.stderr
    assert _check(engine, case_id, phone, sh(2026, 3, 3, 10), Channel.SMS).rule_ids == ("ALL-2",)
    withdrawn = run_cli(
        [
            "compliance",
            "opt-out",
            "withdraw",
            str(debtor_id),
            str(json.loads(out.stdout)["id"]),
            "--at",
            "2026-03-02T00:00:00+08:00",
        ],
        tmp_path,
    )
    assert withdrawn.returncode == 0, withdrawn.stderr
    assert _check(engine, case_id, phone, sh(2026, 3, 3, 10), Channel.SMS).allowed

    bad = run_cli(["compliance", "consent", "add", str(debtor_id), "--scope", "everything"], tmp_path)
    assert bad.returncode == 2 and "Traceback" not in bad.stderr and "bad_scope" in bad.stderr
    naive = run_cli(
        ["compliance", "opt-out", "add", str(debtor_id), "--channel", "email", "--at", "2026-03-01T00:00"],
        tmp_path,
    )
    assert naive.returncode == 2 and "naive_datetime" in naive.stderr
    engine.dispose()
