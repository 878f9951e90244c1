"""Anchors: a newest attempt rewritten and re-hashed keeps its chain intact, but not the anchored head."""

from __future__ import annotations

import json
import sqlite3
from datetime import timedelta
from pathlib import Path

from compliance_db_builders import make_case, sh
from sqlalchemy import delete, update
from sqlalchemy.orm import Session
from test_compliance_doors import run_cli

from arrears import db
from arrears.compliance.schemas import Outcome
from arrears.contacts import service as contacts
from arrears.contacts.chain import CHAINED_FIELDS, attempt_hash
from arrears.enums import Channel
from arrears.models import ChainAnchorHead, ContactAttempt


def _calls(session: Session, n: int) -> tuple[int, list[int]]:
    b = make_case(session)
    ids = [
        contacts.record_attempt(
            session,
            case_id=b.case.id,
            contact_point_id=b.phone.id,
            channel=Channel.CALL,
            started_at=sh(2026, 3, 2, 10) + timedelta(hours=i),
            outcome=Outcome.NO_ANSWER,
            collector="bank",
            notes=f"第 {i + 1} 次拨打",
        ).attempt.id
        for i in range(n)
    ]
    return b.case.id, ids


def _rewrite(session: Session, attempt_id: int, notes: str) -> None:
    """What someone with database access would do: change a field and recompute the row's own hash."""
    row = session.get(ContactAttempt, attempt_id)
    assert row is not None
    fields = {name: getattr(row, name) for name in CHAINED_FIELDS}
    fields["notes"] = notes
    session.execute(
        update(ContactAttempt)
        .where(ContactAttempt.id == attempt_id)
        .values(notes=notes, hash=attempt_hash(fields))
    )
    session.expire_all()


def test_a_rewritten_and_rehashed_newest_attempt_passes_the_chain_but_not_the_anchor(
    session: Session,
) -> None:
    case_id, ids = _calls(session, 3)
    other_case, _ = _calls(session, 2)
    anchor = contacts.anchor_chains(session, at=sh(2026, 3, 2, 18))
    assert anchor.cases >= 2 and anchor.attempts >= 5 and len(anchor.digest) == 64
    assert contacts.verify_anchor(session, digest=anchor.digest) == []

    _rewrite(session, ids[-1], "已接通，债务人同意还款")
    assert contacts.verify_chain(session, case_id=case_id).ok  # the chain alone cannot see it
    problems = contacts.verify_anchor(session, digest=anchor.digest)
    assert [(p.case_id, p.seq, p.attempt_id, p.problem) for p in problems] == [
        (case_id, 3, ids[-1], "head_rewritten")
    ]
    assert "rewritten and re-hashed" in problems[0].en and "重新计算了哈希" in problems[0].zh
    assert other_case not in {p.case_id for p in problems}


def test_anchor_rows_changed_to_match_are_caught_by_the_digest_kept_outside(session: Session) -> None:
    case_id, ids = _calls(session, 2)
    anchor = contacts.anchor_chains(session, at=sh(2026, 3, 2, 18))
    _rewrite(session, ids[-1], "改写")
    forged = session.get(ContactAttempt, ids[-1])
    assert forged is not None
    session.execute(
        update(ChainAnchorHead)
        .where(ChainAnchorHead.anchor_id == anchor.anchor_id, ChainAnchorHead.case_id == case_id)
        .values(hash=forged.hash)
    )
    assert [p.problem for p in contacts.verify_anchor(session, digest=anchor.digest)] == ["anchor_changed"]
    by_id = contacts.verify_anchor(session, digest=anchor.digest, anchor_id=anchor.anchor_id)
    assert [p.problem for p in by_id] == ["anchor_changed"]
    assert [p.problem for p in contacts.verify_anchor(session, digest="0" * 64)] == ["anchor_not_found"]


def test_attempts_after_the_anchor_are_fine_and_a_deleted_head_is_reported(session: Session) -> None:
    case_id, ids = _calls(session, 2)
    anchor = contacts.anchor_chains(session, at=sh(2026, 3, 2, 18))
    first = session.get(ContactAttempt, ids[0])
    assert first is not None
    later = contacts.record_attempt(
        session,
        case_id=case_id,
        contact_point_id=first.contact_point_id,
        channel=Channel.CALL,
        started_at=sh(2026, 3, 3, 10),
        outcome=Outcome.RIGHT_PARTY,
        collector="bank",
    ).attempt.id
    assert contacts.verify_anchor(session, digest=anchor.digest) == []
    assert contacts.verify_chain(session, case_id=case_id).ok
    # Deleting the newest attempts back to before the anchor leaves a chain that holds, but not the head.
    session.execute(delete(ContactAttempt).where(ContactAttempt.id.in_([later, ids[-1]])))
    session.expire_all()
    assert contacts.verify_chain(session, case_id=case_id).ok
    problems = contacts.verify_anchor(session, digest=anchor.digest)
    assert [(p.case_id, p.seq, p.problem) for p in problems] == [(case_id, 2, "head_missing")]


def test_cli_anchor_file_then_verify_finds_the_rewritten_head(tmp_path: Path) -> None:
    path = tmp_path / "cli.db"
    engine = db.make_engine(f"sqlite:///{path}")
    db.upgrade(engine)
    with Session(engine) as s:
        case_id, ids = _calls(s, 3)
        s.commit()
    anchor_file = tmp_path / "anchor.json"
    made = run_cli(
        ["audit", "anchor", "--at", "2026-03-02T18:00:00+08:00", "--out", str(anchor_file)], tmp_path
    )
    assert made.returncode == 0, made.stderr
    kept = json.loads(anchor_file.read_text(encoding="utf-8"))
    assert kept == json.loads(made.stdout) and kept["cases"] == 1 and kept["attempts"] == 3
    ok = run_cli(["audit", "verify", "--anchor", str(anchor_file)], tmp_path)
    assert ok.returncode == 0 and "every anchored head is unchanged" in ok.stdout, ok.stdout + ok.stderr

    with Session(engine) as s:
        _rewrite(s, ids[-1], "已接通，债务人同意还款")
        s.commit()
    engine.dispose()
    plain = run_cli(["audit", "verify"], tmp_path)
    assert plain.returncode == 0  # the chain holds: the row was re-hashed
    caught = run_cli(["audit", "verify", "--anchor", str(anchor_file)], tmp_path)
    assert caught.returncode == 1 and "Traceback" not in caught.stderr
    assert f"case {case_id} attempt #3 (id {ids[-1]}) [head_rewritten]" in caught.stderr
    by_digest = run_cli(["audit", "verify", "--anchor", kept["digest"]], tmp_path)
    assert by_digest.returncode == 1 and "[head_rewritten]" in by_digest.stderr

    with sqlite3.connect(path) as raw:  # a changed note without re-hashing is caught by the chain itself
        raw.execute("UPDATE contact_attempt SET notes = 'x' WHERE id = ?", (ids[0],))
    broken = run_cli(["audit", "verify"], tmp_path)
    assert broken.returncode == 1 and "[content_changed]" in broken.stderr
    bad = run_cli(["audit", "verify", "--anchor", "not-a-digest"], tmp_path)
    assert bad.returncode == 2 and "bad_anchor" in bad.stderr and "Traceback" not in bad.stderr
