"""A first import written straight into the tables leaves the database as the set-based merge does.

Each test imports the same file twice inside one test transaction: once on the direct path and once with
the merge forced (`allow_direct=False`), rolling back in between, and compares everything the import wrote
by natural keys (ids differ: the merge lets the database number the rows).
"""

from __future__ import annotations

import csv
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import polars as pl
import psycopg
import pytest
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from arrears import bulk
from arrears.errors import Conflict
from arrears.portfolios import direct, service

AS_OF = date(2025, 7, 1)
NOW = datetime(2025, 7, 1, 2, 30, tzinfo=UTC)
# IDs and numbers no other test uses: a debtor another test left in the database would send the import
# down the merge (as it should), and then the two paths would not both be tested.
ID_A = "110105197503141230"
ID_B = "440524198809094563"
ID_C = "110105199202117893"
HEADERS = [
    "external_ref",
    "name",
    "national_id",
    "mobile",
    "product",
    "principal",
    "interest",
    "fees",
    "due_date",
    "origination_date",
    "instalment_count",
    "instalment_amount",
    "first_instalment_date",
    "address",
    "email",
    "landline",
    "ec1_name",
    "ec1_relation",
    "ec1_phone",
    "ec2_name",
    "ec2_relation",
    "ec2_phone",
    "hold",
    "hold_reason",
    "bank_account",
    "bank_name",
]


def rows() -> list[list[str]]:
    """Two accounts of one debtor, a row without ID joining a later row's ID by verified mobile, a mobile-only
    debtor, instalment schedules, third parties (one of them a guarantor), a landline extension and a hold."""
    blank = [""] * len(HEADERS)

    def row(**values: str) -> list[str]:
        out = list(blank)
        for k, v in values.items():
            out[HEADERS.index(k)] = v
        return out

    return [
        row(
            external_ref="D001",
            name="张三",
            national_id=ID_A,
            mobile="13812340001",
            product="credit_card",
            principal="1234.50",
            interest="12.00",
            due_date="2025-05-01",
            address="北京市朝阳区建国路1号",
            email="Zhang.Direct@Example.com",
            landline="010-12340008转123",
            ec1_name="张父",
            ec1_relation="relative",
            ec1_phone="13612340005",
            ec2_name="赵保",
            ec2_relation="guarantor",
            ec2_phone="021-87650001",
            hold="dispute",
            hold_reason="客户称已还款",
            bank_account="6222 0212 3456 7890 128",
            bank_name="中国工商银行",
        ),
        row(
            external_ref="D002",
            name="张三丰",
            national_id=ID_A,
            mobile="13812340001",
            product="consumer_loan",
            principal="500",
            due_date="2025-06-01",
            origination_date="2024-01-01",
            ec1_name="张大",
            ec1_relation="relative",
            ec1_phone="13612340005",
        ),
        row(
            external_ref="D003",
            name="李四",
            mobile="13912340002",
            product="credit_card",
            principal="50",
            due_date="2025-06-01",
        ),
        row(
            external_ref="D004",
            name="李四",
            national_id=ID_B,
            mobile="13912340002",
            product="instalment_loan",
            principal="1200",
            fees="30",
            due_date="2025-05-31",
            origination_date="2024-12-01",
            instalment_count="12",
            instalment_amount="100",
            first_instalment_date="2025-01-31",
        ),
        row(
            external_ref="D005",
            name="周七",
            mobile="13712340003",
            product="credit_card",
            principal="80",
            due_date="2025-04-20",
            email="zhou.direct@example.com",
        ),
        row(
            external_ref="D006",
            name="王五",
            national_id=ID_C,
            mobile="+86 137-1234-0004",
            product="bnpl",
            principal="300",
            due_date="2025-04-20",
            instalment_count="3",
            instalment_amount="100",
            first_instalment_date="2025-02-28",
            bank_account="310066123456",
            ec1_name="王妻",
            ec1_relation="spouse",
            ec1_phone="13612340006",
        ),
    ]


def write_csv(path: Path, data: list[list[str]]) -> Path:
    with path.open("w", encoding="utf-8", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(HEADERS)
        w.writerows(data)
    return path


SNAPSHOT = {
    "debtor": "SELECT dedup_key, kind, name, id_type, national_id, date_of_birth, gender, address, employer_name,"
    " employer_address, declared_monthly_income_minor, declared_assets, preferred_language, timezone,"
    " created_at, updated_at FROM debtor",
    "case": 'SELECT p.name, d.dedup_key, c.status, c.stage, c.assignee_id, c.created_at, c.updated_at FROM "case" c'
    " JOIN debtor d ON d.id = c.debtor_id JOIN portfolio p ON p.id = c.portfolio_id",
    "account": "SELECT a.*, d.dedup_key AS debtor_key, cd.dedup_key AS case_debtor_key FROM account a"
    ' JOIN debtor d ON d.id = a.debtor_id JOIN "case" c ON c.id = a.case_id JOIN debtor cd ON cd.id = c.debtor_id'
    " JOIN portfolio p ON p.id = a.portfolio_id WHERE p.name = 'p-direct'",
    # rows of the test's own portfolio: the session's database also holds what other tests committed
    "instalment": "SELECT a.external_ref, i.seq, i.due_date, i.amount_minor, i.created_at FROM instalment i"
    " JOIN account a ON a.id = i.account_id JOIN portfolio p ON p.id = a.portfolio_id WHERE p.name = 'p-direct'",
    "contact_point": "SELECT d.dedup_key, cp.* FROM contact_point cp JOIN debtor d ON d.id = cp.debtor_id",
    "account_flag": "SELECT a.external_ref, f.kind, f.reason, f.source, f.cleared_at, f.created_at,"
    ' c.id = a.case_id AS same_case FROM account_flag f JOIN account a ON a.id = f.account_id JOIN "case" c'
    " ON c.id = f.case_id JOIN portfolio p ON p.id = a.portfolio_id WHERE p.name = 'p-direct'",
    "import_change": "SELECT entity, field, old_value, new_value FROM import_change",
}
IDS = {"id", "debtor_id", "case_id", "account_id", "portfolio_id", "import_batch_id"}


def snapshot(session: Session) -> dict[str, list[tuple[Any, ...]]]:
    out = {}
    for name, sql in SNAPSHOT.items():
        result = session.execute(text(sql))
        keep = [i for i, c in enumerate(result.keys()) if c not in IDS]
        out[name] = sorted(
            (tuple(str(r[i]) for i in keep) for r in result.all()),
        )
    return out


def both_ways(
    session: Session, tmp_path: Path, files: list[list[list[str]]], monkeypatch: pytest.MonkeyPatch
) -> list[dict[str, Any]]:
    """Import `files` in order on each path; return the snapshot and the reports' counts of each.

    The first file must take the direct path when allowed (checked), every later one the merge.
    """
    written: list[int] = []
    real_write = direct.write

    def counting_write(*args: Any, **kwargs: Any) -> Any:
        written.append(1)
        return real_write(*args, **kwargs)

    monkeypatch.setattr(direct, "write", counting_write)
    results = []
    for allow_direct in (True, False):
        nested = session.begin_nested()
        service.create_portfolio(session, name="p-direct", creditor="直写银行")
        counts = []
        for i, data in enumerate(files):
            report = service.import_accounts(
                session,
                path=write_csv(tmp_path / f"f{i}.csv", data),
                portfolio_name="p-direct",
                as_of=AS_OF,
                now=NOW,
                allow_direct=allow_direct,
            )
            assert report.status == "applied", report.errors
            counts.append(report.counts)
        service.verify_references(session)
        results.append({"state": snapshot(session), "counts": counts})
        nested.rollback()
        assert len(written) == 1, "the first import takes the direct path only when allowed"
    return results


def test_first_import_direct_and_merged_leave_the_same_rows(
    session: Session, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fast, merged = both_ways(session, tmp_path, [rows()], monkeypatch)
    assert fast["counts"] == merged["counts"]
    assert fast["counts"][0].accounts_created == 6
    assert fast["counts"][0].debtors_created == 4  # ID_A twice; D003 joins ID_B by its verified mobile
    for table, content in merged["state"].items():
        assert fast["state"][table] == content, table
    assert len(fast["state"]["instalment"]) == 15
    # D003 (no ID, row 4) joins D004's ID by mobile: the debtor still carries the ID number
    li = [d for d in fast["state"]["debtor"] if d[0] == f"id:resident_id:{ID_B}"]
    assert li and li[0][3:5] == ("resident_id", ID_B)
    assert len(fast["state"]["account_flag"]) == 1


def test_reimport_and_update_after_a_direct_first_import_match_the_merge(
    session: Session, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    changed = rows()
    changed[0][HEADERS.index("principal")] = "1000.00"  # balance change
    changed[0][HEADERS.index("bank_account")] = "6228480012345678"  # new repayment card
    changed[3][HEADERS.index("instalment_count")] = "6"  # schedule change
    changed[4][HEADERS.index("ec1_name")] = "周母"  # new third party for a stored debtor
    changed[4][HEADERS.index("ec1_phone")] = "13612340007"
    changed.append(changed[0][:])
    changed[-1][HEADERS.index("external_ref")] = "D007"  # new account of a stored debtor
    fast, merged = both_ways(session, tmp_path, [rows(), rows(), changed], monkeypatch)
    assert fast["counts"] == merged["counts"]
    assert fast["counts"][1].accounts_unchanged == 6 and fast["counts"][1].changes == 0
    assert fast["counts"][2].accounts_updated == 2 and fast["counts"][2].accounts_created == 1
    for table, content in merged["state"].items():
        assert fast["state"][table] == content, table
    changes = fast["state"]["import_change"]
    assert ("account", "bank_account", "**** **** **** 0128", "**** **** **** 5678") in changes
    assert not [c for c in changes if "6222021234567890128" in str(c) or "6228480012345678" in str(c)]


def test_direct_import_rejects_a_repeated_reference_and_writes_nothing(
    session: Session, tmp_path: Path
) -> None:
    data = rows()
    data[4][HEADERS.index("external_ref")] = "D002"
    service.create_portfolio(session, name="p-dup", creditor="直写银行")
    before = snapshot(session)
    report = service.import_accounts(
        session, path=write_csv(tmp_path / "dup.csv", data), portfolio_name="p-dup", as_of=AS_OF
    )
    assert report.status == "rejected"
    assert report.errors.select("row", "code", "detail").rows() == [(6, "duplicate_ref", "3")]
    assert snapshot(session) == before


def test_stored_debtor_in_another_portfolio_takes_the_merge(session: Session, tmp_path: Path) -> None:
    service.create_portfolio(session, name="p-one", creditor="直写银行")
    service.create_portfolio(session, name="p-two", creditor="直写银行")
    path = write_csv(tmp_path / "a.csv", rows())
    first = service.import_accounts(session, path=path, portfolio_name="p-one", as_of=AS_OF)
    second = service.import_accounts(session, path=path, portfolio_name="p-two", as_of=AS_OF)
    assert first.counts.debtors_created == 4
    assert second.counts.debtors_created == 0 and second.counts.accounts_created == 6
    assert second.counts.cases_created == 4
    service.verify_references(session)


def test_broken_reference_is_reported(session: Session, tmp_path: Path) -> None:
    service.create_portfolio(session, name="p-ref", creditor="直写银行")
    service.import_accounts(
        session, path=write_csv(tmp_path / "a.csv", rows()), portfolio_name="p-ref", as_of=AS_OF
    )
    session.execute(text("UPDATE contact_point SET debtor_id = debtor_id + 1000000 WHERE kind = 'email'"))
    with pytest.raises(Conflict, match=r"contact_point\.debtor_id"):
        service.verify_references(session)


def test_a_case_given_to_a_user_that_does_not_exist_is_reported(session: Session, tmp_path: Path) -> None:
    service.create_portfolio(session, name="p-assignee", creditor="直写银行")
    service.import_accounts(
        session, path=write_csv(tmp_path / "a.csv", rows()), portfolio_name="p-assignee", as_of=AS_OF
    )
    service.verify_references(session)  # cases without a collector are fine
    session.execute(text('UPDATE "case" SET assignee_id = 987654321 WHERE id = (SELECT MIN(id) FROM "case")'))
    with pytest.raises(Conflict, match=r"case\.assignee_id -> app_user: 1"):
        service.verify_references(session)


def _index_definitions(session: Session) -> dict[str, list[bulk.Index]]:
    return {t: bulk._secondary_indexes(session, t, primary=True) for t in direct.WRITTEN_TABLES}


def test_a_large_first_import_defers_the_indexes_and_rebuilds_every_one_of_them(
    session: Session, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # this file is small: make it count as a large load into tables it more than doubles
    monkeypatch.setattr(bulk, "DEFER_INDEXES_MIN_ROWS", 1)
    monkeypatch.setattr(bulk, "_has_rows", lambda _s, _t, _n: False)
    deferred: list[list[str]] = []
    real = bulk.indexes_deferred

    @contextmanager
    def spying(*args: Any, **kwargs: Any) -> Iterator[list[str]]:
        with real(*args, **kwargs) as chosen:
            deferred.append(chosen)
            during = {t: bulk._secondary_indexes(session, t, primary=True) for t in chosen}
            yield chosen
        assert not during["debtor"], "the debtor's key and ID number indexes are rebuilt after the load"
        kept = [i.columns for t in chosen for i in during[t]]
        if bulk.is_postgres(session):
            # every index goes, and the primary keys no foreign key refers to (the instalment's)
            assert not kept, kept
        else:
            # only indexes on the ids the import assigns in ascending order remain
            assert kept and all(
                next(c for c in cols if c != "portfolio_id") in {"debtor_id", "case_id", "account_id"}
                for cols in kept
            ), kept

    monkeypatch.setattr(bulk, "indexes_deferred", spying)
    before = _index_definitions(session)
    assert before["debtor"] and before["contact_point"]
    fast, merged = both_ways(session, tmp_path, [rows()], monkeypatch)
    assert deferred == [direct.WRITTEN_TABLES]
    assert fast["counts"] == merged["counts"]
    for table, content in merged["state"].items():
        assert fast["state"][table] == content, table
    nested = session.begin_nested()
    service.create_portfolio(session, name="p-direct", creditor="直写银行")
    service.import_accounts(
        session, path=write_csv(tmp_path / "again.csv", rows()), portfolio_name="p-direct", as_of=AS_OF
    )
    assert _index_definitions(session) == before
    nested.rollback()


def test_a_duplicate_reaching_a_deferred_unique_index_fails_the_load(
    session: Session, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(bulk, "DEFER_INDEXES_MIN_ROWS", 1)
    monkeypatch.setattr(bulk, "_has_rows", lambda _s, _t, _n: False)
    portfolio = service.create_portfolio(session, name="p-dup-index", creditor="直写银行")
    nested = session.begin_nested()
    ids = bulk.reserve_ids(session, "account", 2)
    frame = pl.DataFrame({"id": ids, "case_id": [1, 1], "debtor_id": [1, 1], "external_ref": ["X1", "X1"]})
    # SQLite keeps a UNIQUE constraint's index (the insert fails); PostgreSQL fails at the rebuild
    driver_errors = (IntegrityError, sqlite3.IntegrityError, psycopg.errors.UniqueViolation)
    with (
        pytest.raises(driver_errors, match=r"(?i)unique|duplicate"),
        bulk.indexes_deferred(session, ["account"], rows=2),
    ):
        bulk.write_frame(
            session,
            "account",
            frame,
            constants={
                "portfolio_id": portfolio.id,
                "currency": "CNY",
                "status": "active",
                "product": "credit_card",
                "due_date": "2025-01-01",
                **dict.fromkeys(
                    [f"{c}_minor" for c in ("principal", "interest", "penalty", "fees", "costs")], 0
                ),
                "overdue_amount_minor": 0,
                "is_secured": False,
                "created_at": bulk.timestamp_literal(session, NOW),
                "updated_at": bulk.timestamp_literal(session, NOW),
            },
        )
    nested.rollback()


def test_pipelined_copies_are_all_written_and_a_failed_one_raises(session: Session) -> None:
    session.execute(text("CREATE TEMPORARY TABLE pipe_probe (n INTEGER NOT NULL)"))
    frames = [pl.DataFrame({"n": list(range(i * 1000, (i + 1) * 1000))}) for i in range(5)]
    with bulk.copies_pipelined(session):
        written = sum(bulk.write_frame(session, "pipe_probe", f) for f in frames)
    assert written == 5000
    assert session.execute(text("SELECT COUNT(*), SUM(n) FROM pipe_probe")).one() == (5000, sum(range(5000)))
    nested = session.begin_nested()
    bad = pl.DataFrame({"n": [1, None]}, schema={"n": pl.Int64})
    refused = (IntegrityError, psycopg.errors.NotNullViolation, sqlite3.IntegrityError)
    with pytest.raises(refused), bulk.copies_pipelined(session):
        for f in (frames[0], bad, frames[1]):
            bulk.write_frame(session, "pipe_probe", f)
    nested.rollback()
    assert session.execute(text("SELECT COUNT(*) FROM pipe_probe")).scalar_one() == 5000


def test_a_large_frame_is_copied_in_slices_whole_and_in_order(
    pg_engine: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(bulk, "COPY_SLICE_ROWS", 1000)
    with pg_engine.connect() as conn:
        driver = conn.connection.driver_connection
        conn.exec_driver_sql("CREATE TEMPORARY TABLE slice_probe (k SERIAL, n INTEGER NOT NULL)")
        sql = "COPY slice_probe (n) FROM STDIN WITH (FORMAT csv)"
        encoded: list[int] = []

        def encode(df: pl.DataFrame) -> bytes:
            encoded.append(df.height)
            return df.write_csv(include_header=False, null_value="").encode()

        frame = pl.DataFrame({"n": list(range(5500))}, schema={"n": pl.Int64})
        bulk.copy_frame(driver, sql, frame, encode)
        assert encoded == [1000] * 5 + [500]
        rows = conn.exec_driver_sql("SELECT n FROM slice_probe ORDER BY k").scalars().all()
        assert rows == list(range(5500))
        # a bad row in a later slice refuses the whole COPY: none of the earlier slices stays
        bad = frame.with_columns(pl.when(pl.col("n") == 4321).then(None).otherwise(pl.col("n")).alias("n"))
        conn.exec_driver_sql("SAVEPOINT before_bad")
        with pytest.raises(psycopg.errors.NotNullViolation):
            bulk.copy_frame(driver, sql, bad, encode)
        conn.exec_driver_sql("ROLLBACK TO SAVEPOINT before_bad")
        assert conn.exec_driver_sql("SELECT COUNT(*) FROM slice_probe").scalar_one() == 5500
        conn.rollback()
