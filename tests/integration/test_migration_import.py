"""The migration that drops the import's foreign keys keeps a SQLite database's rows and references."""

from __future__ import annotations

from pathlib import Path

from arrears.db import make_engine, upgrade


def test_sqlite_database_with_rows_upgrades_past_the_dropped_foreign_keys(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'old.db'}")
    upgrade(engine, "20261122_channels")
    with engine.begin() as conn:
        x = conn.exec_driver_sql
        x("INSERT INTO creditor (id, name, kind, licensed_lender) VALUES (1, 'c', 'lender', 1)")
        x(
            "INSERT INTO portfolio (id, creditor_id, name, currency, timezone, rule_pack, strategy, locale)"
            " VALUES (1, 1, 'p', 'CNY', 'Asia/Shanghai', 'cn', 'default', 'zh_CN')"
        )
        x("INSERT INTO debtor (id, dedup_key, kind, name) VALUES (1, 'k', 'person', 'n')")
        x(
            "INSERT INTO contact_point (id, debtor_id, kind, value, owner_relation, debt_related, verified,"
            " is_valid, source, consent_to_contact, opted_out) VALUES (1, 1, 'mobile', '+8613812340001', 'self',"
            " 0, 1, 1, 'import', 0, 0)"
        )
        x("INSERT INTO \"case\" (id, portfolio_id, debtor_id, status) VALUES (1, 1, 1, 'open')")
        x(
            "INSERT INTO account (id, portfolio_id, case_id, debtor_id, external_ref, product, currency, due_date,"
            " principal_minor, interest_minor, penalty_minor, fees_minor, costs_minor, overdue_amount_minor,"
            " is_secured, status) VALUES (1, 1, 1, 1, 'A', 'credit_card', 'CNY', '2025-01-01', 0, 0, 0, 0, 0,"
            " 0, 0, 'active')"
        )
        x(
            "INSERT INTO instalment (id, account_id, seq, due_date, amount_minor) VALUES (1, 1, 1, '2025-01-01', 10)"
        )
        # rows of other tables referring to the re-created ones (account_flag keeps its foreign keys)
        x(
            "INSERT INTO account_flag (id, account_id, case_id, kind, source) VALUES (1, 1, 1, 'dispute', 'import')"
        )
    upgrade(engine)
    with engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA foreign_key_check").fetchall() == []
        assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
        counts = [
            conn.exec_driver_sql(f'SELECT COUNT(*) FROM "{t}"').scalar()
            for t in ("contact_point", "case", "account", "instalment", "account_flag")
        ]
        assert counts == [1, 1, 1, 1, 1]
        fks = conn.exec_driver_sql("SELECT * FROM pragma_foreign_key_list('account')").fetchall()
        assert fks == []
    engine.dispose()


def test_the_record_of_changes_written_before_is_masked_by_the_migration(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'changes.db'}")
    upgrade(engine, "20261203_bank")
    with engine.begin() as conn:
        x = conn.exec_driver_sql
        x("INSERT INTO creditor (id, name, kind, licensed_lender) VALUES (1, 'c', 'lender', 1)")
        x(
            "INSERT INTO portfolio (id, creditor_id, name, currency, timezone, rule_pack, strategy, locale)"
            " VALUES (1, 1, 'p', 'CNY', 'Asia/Shanghai', 'cn', 'default', 'zh_CN')"
        )
        x(
            "INSERT INTO import_batch (id, portfolio_id, kind, filename, file_sha256, rows_total,"
            " accounts_created, accounts_updated, accounts_unchanged, debtors_created,"
            " contact_points_created, warnings_count, started_at)"
            " VALUES (1, 1, 'accounts', 'a.csv', 'x', 1, 0, 1, 0, 0, 0, 0, '2026-12-01 00:00:00')"
        )
        for i, (field, old, new) in enumerate(
            [
                ("national_id", None, "11010519491231002X"),
                ("bank_account", "6222021234567890128", "310066123456"),
                ("bank_account", "**** **** **** 0128", "**** **** **** 3456"),  # already masked
                ("principal_minor", "120000", "110000"),
                ("contact_point", None, "mobile:emergency:+8613812340001"),
                ("contact_point", None, "email:self:zhang.san@bank.example"),
                ("contact_point", None, "mobile:self:+86 135****2222"),  # already masked
            ],
            start=1,
        ):
            x(
                "INSERT INTO import_change (id, import_batch_id, entity, entity_id, field, old_value,"
                " new_value) VALUES (?, 1, 'account', 1, ?, ?, ?)",
                (i, field, old, new),
            )
    upgrade(engine)
    with engine.connect() as conn:
        rows = conn.exec_driver_sql(
            "SELECT field, old_value, new_value FROM import_change ORDER BY id"
        ).fetchall()
    assert [tuple(r) for r in rows] == [
        ("national_id", None, "110105********002X"),
        ("bank_account", "**** **** **** 0128", "**** **** **** 3456"),
        ("bank_account", "**** **** **** 0128", "**** **** **** 3456"),
        ("principal_minor", "120000", "110000"),
        ("contact_point", None, "mobile:emergency:+86 138****0001"),
        ("contact_point", None, "email:self:z***@bank.example"),
        ("contact_point", None, "mobile:self:+86 135****2222"),
    ]
    engine.dispose()


def test_cases_take_since_when_they_are_with_their_collector_from_the_allocation_history(
    tmp_path: Path,
) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'assigned.db'}")
    upgrade(engine, "20261209_state_changed_on")
    with engine.begin() as conn:
        x = conn.exec_driver_sql
        for user in (7, 8):
            x(
                "INSERT INTO app_user (id, username, display_name, role, locale, active, password_hash)"
                f" VALUES ({user}, 'u{user}', 'u', 'collector', 'zh_CN', 1, 'x')"
            )
        # case 1: with 7 since 3 May (given to 7, away to 8, back to 7); case 2: nobody; case 3: no history
        for case_id, assignee in ((1, "7"), (2, "NULL"), (3, "8")):
            x(
                f'INSERT INTO "case" (id, portfolio_id, debtor_id, status, assignee_id)'
                f" VALUES ({case_id}, 1, {case_id}, 'open', {assignee})"
            )
        for case_id, to, on in (
            (1, 7, "2026-05-01"),
            (1, 8, "2026-05-02"),
            (1, 7, "2026-05-03"),
            (2, 8, "2026-05-01"),
        ):
            x(
                "INSERT INTO allocation_event (portfolio_id, case_id, to_collector_id, outcome, effective_on)"
                f" VALUES (1, {case_id}, {to}, 'assigned', '{on}')"
            )
    upgrade(engine)
    with engine.connect() as conn:
        rows = conn.exec_driver_sql('SELECT id, assigned_on FROM "case" ORDER BY id').fetchall()
    assert [tuple(r) for r in rows] == [(1, "2026-05-03"), (2, None), (3, None)]
    engine.dispose()
