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
