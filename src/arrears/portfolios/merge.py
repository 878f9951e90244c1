"""Set-based merge of staged rows into debtors, cases, accounts, instalments, contact points and flags.

Plain SQL that runs unchanged on SQLite (3.39+) and PostgreSQL: one statement per step over the whole
file, never a query per row. Each step is idempotent with respect to what is already stored, which is what
makes a re-import of the same file change nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, text
from sqlalchemy.orm import Session

from arrears.models.base import UTCDateTime
from arrears.users.masking import sql_mask_bank_account, sql_mask_contact_value, sql_mask_national_id

DEBTOR_FIELDS = [
    "name",
    "date_of_birth",
    "gender",
    "address",
    "employer_name",
    "employer_address",
    ("declared_monthly_income_minor", "monthly_income_minor"),
    "declared_assets",
    "preferred_language",
]

ACCOUNT_FIELDS = [
    "product",
    "original_principal_minor",
    "interest_rate_annual_ppm",
    "penalty_rate_annual_ppm",
    "origination_date",
    "due_date",
    "last_due_date",
    "instalment_count",
    "instalment_amount_minor",
    "first_instalment_date",
    "principal_minor",
    "interest_minor",
    "penalty_minor",
    "fees_minor",
    "costs_minor",
    "overdue_amount_minor",
    "is_secured",
    "bank_account",
    "bank_name",
]
SCHEDULE_FIELDS = {"instalment_count", "instalment_amount_minor", "first_instalment_date"}
# The record of changes (``import_change``) keeps these fields' old and new values masked, as every view
# shows them (PI-6): it says that the number changed and which one it is (the last 4), not the number.
MASKED_CHANGES = {"national_id": sql_mask_national_id, "bank_account": sql_mask_bank_account}


def _change_value(col: str, expr: str) -> str:
    """A changed value as the record of changes keeps it: as text, masked for a sensitive field."""
    value = f"CAST({expr} AS TEXT)"
    mask = MASKED_CHANGES.get(col)
    return mask(value) if mask else value


@dataclass
class MergeCounts:
    debtors_created: int = 0
    debtors_updated: int = 0
    cases_created: int = 0
    accounts_created: int = 0
    accounts_updated: int = 0
    accounts_unchanged: int = 0
    contact_points_created: int = 0
    flags_created: int = 0
    changes: int = 0


def _pairs(fields: list[Any]) -> list[tuple[str, str]]:
    return [(f, f) if isinstance(f, str) else f for f in fields]


class Merger:
    def __init__(
        self,
        session: Session,
        *,
        portfolio_id: int,
        currency: str,
        batch_id: int,
        now: datetime,
        present: set[str],
    ) -> None:
        self.session = session
        self.conn = session.connection()
        self.pg = self.conn.dialect.name == "postgresql"
        self.params = {"pid": portfolio_id, "bid": batch_id, "now": now, "currency": currency}
        self.present = present
        self.counts = MergeCounts()

    def _x(self, sql: str, **extra: Any) -> int:
        stmt = text(sql)
        params = {**self.params, **extra}
        if ":now" in sql:
            stmt = stmt.bindparams(bindparam("now", type_=UTCDateTime()))
        used = {k: v for k, v in params.items() if f":{k}" in sql}
        result = self.conn.execute(stmt, used)
        return int(result.rowcount or 0)

    def _rows(self, sql: str) -> list[Any]:
        used = {k: v for k, v in self.params.items() if f":{k}" in sql}
        return list(self.conn.execute(text(sql), used))

    def index_stage(self) -> None:
        """Fill the narrow link table from the staged rows, index it, and join both in a view."""
        self._x(
            "INSERT INTO stage_link (row_no, external_ref, id_type, national_id, mobile, mobile_verified, debtor_key)"
            " SELECT row_no, external_ref, id_type, national_id, mobile, mobile_verified, debtor_key FROM stage_account"
        )
        self.conn.exec_driver_sql("CREATE UNIQUE INDEX ix_stage_account_row_no ON stage_account (row_no)")
        for cols in ("external_ref", "national_id", "mobile", "debtor_key"):
            self.conn.exec_driver_sql(f"CREATE INDEX ix_stage_link_{cols} ON stage_link ({cols})")
        self.conn.exec_driver_sql("CREATE INDEX ix_stage_instalment_row_no ON stage_instalment (row_no)")
        if self.pg:
            self.conn.exec_driver_sql("ANALYZE stage_link")
        self.conn.exec_driver_sql(
            "CREATE TEMPORARY VIEW stage_v AS SELECT s.*, l.debtor_id, l.case_id, l.account_id, l.new_debtor,"
            " l.new_account FROM stage_account s JOIN stage_link l ON l.row_no = s.row_no"
        )

    # --- checks across the whole file -------------------------------------------------------------
    def duplicate_refs(self) -> list[tuple[int, str, int]]:
        rows = self._rows(
            "SELECT s.row_no, s.external_ref, d.first_row FROM stage_link s JOIN ("
            " SELECT external_ref, MIN(row_no) AS first_row FROM stage_link"
            " GROUP BY external_ref HAVING COUNT(*) > 1) d ON d.external_ref = s.external_ref"
            " WHERE s.row_no <> d.first_row ORDER BY s.row_no"
        )
        return [(int(r[0]), str(r[1]), int(r[2])) for r in rows]

    # --- debtors ----------------------------------------------------------------------------------
    def resolve_debtors(self) -> list[tuple[int, str]]:
        """Match rows to stored accounts and debtors; returns rows whose ID belongs to another debtor."""
        self._x(
            "UPDATE stage_link SET account_id = a.id, debtor_id = a.debtor_id, case_id = a.case_id,"
            " new_account = FALSE, new_debtor = FALSE"
            " FROM account a WHERE a.portfolio_id = :pid AND a.external_ref = stage_link.external_ref"
        )
        conflicts = self._rows(
            "SELECT s.row_no, s.national_id FROM stage_link s JOIN debtor d"
            " ON d.id_type = s.id_type AND d.national_id = s.national_id"
            " WHERE s.account_id IS NOT NULL AND d.id <> s.debtor_id ORDER BY s.row_no"
        )
        self._x(
            "UPDATE stage_link SET debtor_id = d.id, new_debtor = FALSE FROM debtor d"
            " WHERE stage_link.debtor_id IS NULL AND stage_link.national_id IS NOT NULL"
            " AND d.id_type = stage_link.id_type AND d.national_id = stage_link.national_id"
        )
        # then by the debtor's own verified mobile number
        self._x(
            "UPDATE stage_link SET debtor_id = cp.debtor_id, new_debtor = FALSE FROM ("
            " SELECT value, MIN(debtor_id) AS debtor_id FROM contact_point"
            " WHERE kind = 'mobile' AND owner_relation = 'self' AND verified GROUP BY value) cp"
            " WHERE stage_link.debtor_id IS NULL AND stage_link.mobile_verified"
            " AND cp.value = stage_link.mobile"
        )
        # rows without an ID number join a row of the same file that has one and the same verified mobile
        self._x(
            "UPDATE stage_link SET debtor_key = k.debtor_key FROM ("
            " SELECT mobile, MIN(debtor_key) AS debtor_key FROM stage_link"
            " WHERE national_id IS NOT NULL AND mobile IS NOT NULL AND mobile_verified GROUP BY mobile) k"
            " WHERE stage_link.debtor_id IS NULL AND stage_link.national_id IS NULL"
            " AND stage_link.mobile_verified AND stage_link.mobile = k.mobile"
        )
        self._x(
            "UPDATE stage_link SET debtor_id = d.id, new_debtor = FALSE FROM debtor d"
            " WHERE stage_link.debtor_id IS NULL AND d.dedup_key = stage_link.debtor_key"
        )
        return [(int(r[0]), str(r[1])) for r in conflicts]

    def create_debtors(self) -> None:
        self.counts.debtors_created = self._x(
            "INSERT INTO debtor (dedup_key, kind, name, id_type, national_id, date_of_birth, gender, address,"
            " employer_name, employer_address, declared_monthly_income_minor, declared_assets,"
            " preferred_language, timezone, created_at, updated_at)"
            " SELECT f.debtor_key, s.debtor_kind, s.name, CASE WHEN s.national_id IS NULL THEN NULL"
            " ELSE s.id_type END, s.national_id, s.date_of_birth, s.gender, s.address, s.employer_name,"
            " s.employer_address, s.monthly_income_minor, s.declared_assets, s.preferred_language, NULL,"
            " :now, :now FROM stage_account s JOIN ("
            # the debtor's first row that carries the ID number (a row without one may join it by mobile)
            "  SELECT debtor_key, COALESCE(MIN(CASE WHEN national_id IS NOT NULL THEN row_no END), MIN(row_no))"
            "  AS row_no FROM stage_link WHERE debtor_id IS NULL GROUP BY debtor_key) f ON f.row_no = s.row_no"
        )
        self._x(
            "UPDATE stage_link SET debtor_id = d.id, new_debtor = TRUE FROM debtor d"
            " WHERE stage_link.debtor_id IS NULL AND d.dedup_key = stage_link.debtor_key"
        )

    def update_debtors(self) -> None:
        """Record and apply changes to stored debtors, from the first row of each debtor in the file."""
        fields = [
            (col, src) for col, src in _pairs(DEBTOR_FIELDS) if src in self.present or col in self.present
        ]
        fields += [("national_id", "national_id")] if "national_id" in self.present else []
        if not fields:
            return
        # The representative row of each stored debtor, materialised once for every field below.
        self.conn.exec_driver_sql("DROP TABLE IF EXISTS stage_rep")
        self.conn.exec_driver_sql(
            "CREATE TEMPORARY TABLE stage_rep AS SELECT s.* FROM stage_v s JOIN (SELECT debtor_id,"
            " MIN(row_no) AS row_no FROM stage_v WHERE NOT new_debtor GROUP BY debtor_id) r ON r.row_no = s.row_no"
        )
        self.conn.exec_driver_sql("CREATE UNIQUE INDEX ix_stage_rep_debtor_id ON stage_rep (debtor_id)")
        if self.pg:
            self.conn.exec_driver_sql("ANALYZE stage_rep")
        rep = "SELECT * FROM stage_rep"
        for col, src in fields:
            guard = "d.national_id IS NULL AND " if col == "national_id" else ""
            self.counts.changes += self._x(
                "INSERT INTO import_change (import_batch_id, entity, entity_id, field, old_value, new_value)"
                f" SELECT :bid, 'debtor', d.id, '{col}', {_change_value(col, f'd.{col}')},"
                f" {_change_value(col, f's.{src}')}"
                f" FROM debtor d JOIN ({rep}) s ON s.debtor_id = d.id"
                f" WHERE {guard}s.{src} IS NOT NULL AND d.{col} IS DISTINCT FROM s.{src}"
            )
        sets = ", ".join(
            f"{col} = COALESCE(s.{src}, debtor.{col})" for col, src in fields if col != "national_id"
        )
        if "national_id" in self.present:
            sets += (
                ", national_id = COALESCE(debtor.national_id, s.national_id),"
                " id_type = COALESCE(debtor.id_type, CASE WHEN s.national_id IS NULL THEN NULL"
                " ELSE s.id_type END)"
            )
        self.counts.debtors_updated = self._x(
            f"UPDATE debtor SET {sets}, updated_at = :now FROM ({rep}) s WHERE s.debtor_id = debtor.id"
            " AND debtor.id IN (SELECT entity_id FROM import_change WHERE import_batch_id = :bid"
            " AND entity = 'debtor')"
        )
        self.conn.exec_driver_sql("DROP TABLE stage_rep")

    # --- cases and accounts ----------------------------------------------------------------------
    def create_cases(self) -> None:
        self.counts.cases_created = self._x(
            'INSERT INTO "case" (portfolio_id, debtor_id, status, created_at, updated_at)'
            " SELECT :pid, x.debtor_id, 'open', :now, :now FROM (SELECT DISTINCT debtor_id FROM stage_v"
            ' WHERE account_id IS NULL) x WHERE NOT EXISTS (SELECT 1 FROM "case" c'
            " WHERE c.portfolio_id = :pid AND c.debtor_id = x.debtor_id)"
        )
        self._x(
            'UPDATE stage_link SET case_id = c.id FROM "case" c WHERE stage_link.case_id IS NULL'
            " AND c.portfolio_id = :pid AND c.debtor_id = stage_link.debtor_id"
        )

    def update_accounts(self) -> set[str]:
        """Record and apply changes to stored accounts; returns the changed field names."""
        changed: set[str] = set()
        for col in ACCOUNT_FIELDS:
            # stage column -> file field: principal_minor -> principal, interest_rate_annual_ppm -> interest_rate
            src_field = col.removesuffix("_minor").removesuffix("_annual_ppm")
            if src_field not in self.present and col not in self.present:
                continue
            n = self._x(
                "INSERT INTO import_change (import_batch_id, entity, entity_id, field, old_value, new_value)"
                f" SELECT :bid, 'account', a.id, '{col}', {_change_value(col, f'a.{col}')},"
                f" {_change_value(col, f's.{col}')}"
                " FROM account a JOIN stage_v s ON s.account_id = a.id"
                f" WHERE s.{col} IS NOT NULL AND a.{col} IS DISTINCT FROM s.{col}"
            )
            if n:
                changed.add(col)
                self.counts.changes += n
        if changed:
            sets = ", ".join(f"{c} = COALESCE(s.{c}, account.{c})" for c in sorted(changed))
            self.counts.accounts_updated = self._x(
                f"UPDATE account SET {sets}, updated_at = :now FROM stage_v s"
                " WHERE s.account_id = account.id AND account.id IN (SELECT entity_id FROM import_change"
                " WHERE import_batch_id = :bid AND entity = 'account')"
            )
        return changed

    def create_accounts(self) -> None:
        cols = ACCOUNT_FIELDS
        self.counts.accounts_created = self._x(
            "INSERT INTO account (portfolio_id, case_id, debtor_id, external_ref, currency, status,"
            f" {', '.join(cols)}, created_at, updated_at)"
            " SELECT :pid, case_id, debtor_id, external_ref, :currency, 'active',"
            f" {', '.join(cols)}, :now, :now FROM stage_v WHERE account_id IS NULL"
        )
        self._x(
            "UPDATE stage_link SET account_id = a.id, new_account = TRUE FROM account a"
            " WHERE stage_link.account_id IS NULL AND a.portfolio_id = :pid"
            " AND a.external_ref = stage_link.external_ref"
        )

    def write_instalments(self, schedule_changed: bool) -> None:
        targets = "s.new_account"
        if schedule_changed:
            targets += (
                " OR s.account_id IN (SELECT entity_id FROM import_change WHERE import_batch_id = :bid"
                " AND entity = 'account' AND field IN ('instalment_count', 'instalment_amount_minor',"
                " 'first_instalment_date'))"
            )
            self._x(
                "DELETE FROM instalment WHERE account_id IN (SELECT entity_id FROM import_change"
                " WHERE import_batch_id = :bid AND entity = 'account' AND field IN ('instalment_count',"
                " 'instalment_amount_minor', 'first_instalment_date'))"
            )
        self._x(
            "INSERT INTO instalment (account_id, seq, due_date, amount_minor, created_at, updated_at)"
            " SELECT s.account_id, i.seq, i.due_date, i.amount_minor, :now, :now"
            f" FROM stage_instalment i JOIN stage_v s ON s.row_no = i.row_no WHERE {targets}"
        )

    # --- contact points and flags ----------------------------------------------------------------
    def write_contact_points(self) -> None:
        sources = [
            "SELECT debtor_id, 'mobile', mobile, NULL, 'self', name, FALSE, mobile_verified, new_debtor"
            " FROM stage_v WHERE mobile IS NOT NULL",
            "SELECT debtor_id, landline_kind, landline, landline_ext, 'self', name, FALSE, FALSE, new_debtor"
            " FROM stage_v WHERE landline IS NOT NULL",
            "SELECT debtor_id, 'email', email, NULL, 'self', name, FALSE, FALSE, new_debtor"
            " FROM stage_v WHERE email IS NOT NULL",
            "SELECT debtor_id, 'address', address, NULL, 'self', name, FALSE, FALSE, new_debtor"
            " FROM stage_v WHERE address IS NOT NULL",
        ]
        for p in ("ec1", "ec2"):
            sources.append(
                f"SELECT debtor_id, {p}_kind, {p}_phone, NULL, COALESCE({p}_relation, 'emergency_contact'),"
                f" {p}_name, {p}_debt_related, FALSE, new_debtor FROM stage_v WHERE {p}_phone IS NOT NULL"
            )
        self._x(
            "INSERT INTO stage_contact (debtor_id, kind, value, extension, owner_relation, owner_name,"
            " debt_related, verified, new_debtor) " + " UNION ALL ".join(sources)
        )
        candidates = (
            "SELECT debtor_id, kind, value, owner_relation, MIN(extension) AS extension,"
            " MIN(owner_name) AS owner_name, MAX(CASE WHEN debt_related THEN 1 ELSE 0 END) AS debt_related,"
            " MAX(CASE WHEN verified THEN 1 ELSE 0 END) AS verified,"
            " MIN(CASE WHEN new_debtor THEN 1 ELSE 0 END) AS new_debtor"
            " FROM stage_contact c WHERE NOT EXISTS (SELECT 1 FROM contact_point p"
            " WHERE p.debtor_id = c.debtor_id AND p.kind = c.kind AND p.value = c.value"
            " AND p.owner_relation = c.owner_relation) GROUP BY debtor_id, kind, value, owner_relation"
        )
        self.counts.changes += self._x(
            "INSERT INTO import_change (import_batch_id, entity, entity_id, field, old_value, new_value)"
            " SELECT :bid, 'debtor', debtor_id, 'contact_point', NULL, kind || ':' || owner_relation || ':' ||"
            f" {sql_mask_contact_value('kind', 'value', find='strpos' if self.pg else 'instr')}"
            f" FROM ({candidates}) x WHERE x.new_debtor = 0"
        )
        self.counts.contact_points_created = self._x(
            "INSERT INTO contact_point (debtor_id, kind, value, extension, owner_relation, owner_name,"
            " debt_related, verified, is_valid, source, timezone, consent_to_contact, opted_out,"
            " created_at, updated_at)"
            " SELECT debtor_id, kind, value, extension, owner_relation, owner_name, debt_related = 1,"
            " verified = 1, TRUE, 'import', CASE WHEN value LIKE '+86%' THEN 'Asia/Shanghai' END,"
            f" FALSE, FALSE, :now, :now FROM ({candidates}) x"
        )

    def write_flags(self) -> None:
        new_flags = (
            "SELECT account_id, case_id, hold, hold_reason, new_account FROM stage_v s"
            " WHERE hold IS NOT NULL AND NOT EXISTS (SELECT 1 FROM account_flag f"
            " WHERE f.account_id = s.account_id AND f.kind = s.hold AND f.cleared_at IS NULL)"
        )
        self.counts.changes += self._x(
            "INSERT INTO import_change (import_batch_id, entity, entity_id, field, old_value, new_value)"
            f" SELECT :bid, 'account', account_id, 'flag', NULL, hold FROM ({new_flags}) x"
            " WHERE NOT x.new_account"
        )
        self.counts.flags_created = self._x(
            "INSERT INTO account_flag (account_id, case_id, kind, reason, source, created_at, updated_at)"
            f" SELECT account_id, case_id, hold, hold_reason, 'import', :now, :now FROM ({new_flags}) x"
        )

    def finish_counts(self, total_rows: int) -> None:
        touched = self._rows(
            "SELECT COUNT(DISTINCT entity_id) FROM import_change WHERE import_batch_id = :bid"
            " AND entity = 'account'"
        )[0][0]
        self.counts.accounts_updated = int(touched or 0)
        self.counts.accounts_unchanged = (
            total_rows - self.counts.accounts_created - self.counts.accounts_updated
        )
