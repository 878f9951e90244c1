"""The ledger service: opening balances, payments in, reversals, daily accrual and the balance check.

Everything here takes a `Session`, flushes and never commits. Bulk work is set-based: accounts are read as
Polars frames, the pure core (`allocation.allocate`, `accrual_frame.accrue_frame`) computes, and postings
and cached balances are written with COPY (PostgreSQL) or executemany (SQLite), never a row at a time
through the ORM.

Balances: the postings are the truth (DESIGN invariant 2). The balance columns on ``account``
(``principal_minor`` ... ``costs_minor``, ``credit_minor``) are a cache kept in the same transaction as
the postings and checked by `verify_balances`. An imported account enters the ledger through
`ensure_opening_postings`: one ``charge`` posting per non-zero imported component, dated the day of the
import, made once.
"""

from __future__ import annotations

import functools
import hashlib
import json
from collections import defaultdict
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

import polars as pl
from sqlalchemy import bindparam, func, select, text, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from arrears import bulk as table_bulk
from arrears import clock, money
from arrears.enums import AccountStatus, Component, FlagKind, Product
from arrears.errors import Conflict, NotFound, ValidationFailed
from arrears.ledger import bulk
from arrears.ledger import postings as core
from arrears.ledger.accrual import (
    REVERSAL_ACCRUAL_RULE,
    AccountTerms,
    AccrualBase,
    AccrualState,
    DayCount,
    RateBasis,
    Rounding,
    accrue_reversed_principal,
)
from arrears.ledger.accrual_frame import accrue_frame
from arrears.ledger.allocation import (
    OVERPAYMENT_RULE,
    AllocationPolicy,
    load_policy,
)
from arrears.ledger.allocation_frame import allocate_frame
from arrears.ledger.caps import CapTable, LprTable, load_caps, load_lpr_table
from arrears.ledger.schemas import AccrualRun, BalanceMismatch, PaymentOut, SplitOut
from arrears.models import Account, AccountFlag, Creditor, LedgerSetting, Payment, Portfolio, Posting

COMPONENTS: tuple[Component, ...] = core.COMPONENTS
#: Cached balance column on ``account`` per component.
COLUMN: dict[Component, str] = {c: f"{c.value}_minor" for c in COMPONENTS}
OPENING_RULE = "opening"
#: Flags that stop accrual from the day they are raised (a court order, death, insolvency).
ACCRUAL_STOP_FLAGS = (FlagKind.BANKRUPTCY, FlagKind.DECEASED, FlagKind.LEGAL_HOLD)
INSTALMENT_PRODUCTS = ("instalment_loan", "bnpl")


# --- settings -------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class LedgerConfig:
    """A portfolio's ledger settings with the tables they need."""

    portfolio_id: int
    currency: str
    timezone: str
    licensed_lender: bool
    day_count: DayCount
    rounding: Rounding
    policy: AllocationPolicy
    rate_basis: RateBasis
    interest_base: AccrualBase
    penalty_base: AccrualBase
    lpr: LprTable
    caps: CapTable


@functools.cache
def _tables() -> tuple[LprTable, CapTable]:
    return load_lpr_table(), load_caps()


@functools.cache
def _policy(name: str | None) -> AllocationPolicy:
    return load_policy(name)


def _portfolio(session: Session, portfolio_id: int) -> Portfolio:
    portfolio = session.get(Portfolio, portfolio_id)
    if portfolio is None:
        raise NotFound(f"资产包不存在 / portfolio {portfolio_id} not found", code="portfolio_not_found")
    return portfolio


def ledger_config(session: Session, *, portfolio_id: int) -> LedgerConfig:
    """The portfolio's ledger settings (defaults where it has no ``ledger_setting`` row)."""
    portfolio = _portfolio(session, portfolio_id)
    creditor = session.get(Creditor, portfolio.creditor_id)
    row = session.get(LedgerSetting, portfolio_id)
    try:
        return LedgerConfig(
            portfolio_id=portfolio_id,
            currency=portfolio.currency,
            timezone=portfolio.timezone,
            licensed_lender=bool(creditor.licensed_lender) if creditor else True,
            day_count=DayCount(row.day_count if row else DayCount.ACT_365),
            rounding=Rounding(row.rounding if row else Rounding.HALF_UP),
            policy=_policy(row.allocation_policy if row else None),
            rate_basis=RateBasis(row.rate_basis if row else RateBasis.FIXED),
            interest_base=AccrualBase(row.interest_base if row else AccrualBase.PRINCIPAL),
            penalty_base=AccrualBase(row.penalty_base if row else AccrualBase.OVERDUE_PRINCIPAL),
            lpr=_tables()[0],
            caps=_tables()[1],
        )
    except ValueError as exc:
        raise ValidationFailed(f"bad ledger setting: {exc}", code="bad_ledger_setting") from exc


def configure_ledger(
    session: Session,
    *,
    portfolio_id: int,
    day_count: str | None = None,
    rounding: str | None = None,
    allocation_policy: str | None = None,
    rate_basis: str | None = None,
    interest_base: str | None = None,
    penalty_base: str | None = None,
) -> LedgerSetting:
    """Set a portfolio's ledger settings (only the ones given); values are checked before storing."""
    _portfolio(session, portfolio_id)
    row = session.get(LedgerSetting, portfolio_id)
    if row is None:
        row = LedgerSetting(
            portfolio_id=portfolio_id,
            day_count=str(DayCount.ACT_365),
            rounding=str(Rounding.HALF_UP),
            allocation_policy="cn-default",
            rate_basis=str(RateBasis.FIXED),
            interest_base=str(AccrualBase.PRINCIPAL),
            penalty_base=str(AccrualBase.OVERDUE_PRINCIPAL),
        )
        session.add(row)
    try:
        if day_count is not None:
            row.day_count = str(DayCount(day_count))
        if rounding is not None:
            row.rounding = str(Rounding(rounding))
        if rate_basis is not None:
            row.rate_basis = str(RateBasis(rate_basis))
        if interest_base is not None:
            row.interest_base = str(AccrualBase(interest_base))
        if penalty_base is not None:
            row.penalty_base = str(AccrualBase(penalty_base))
    except ValueError as exc:
        raise ValidationFailed(f"bad ledger setting: {exc}", code="bad_ledger_setting") from exc
    if allocation_policy is not None:
        row.allocation_policy = load_policy(allocation_policy).name
    session.flush()
    return row


def _lock_portfolio(session: Session, portfolio_id: int) -> None:
    """One ledger writer per portfolio at a time (SQLite already has a single writer)."""
    if bulk.is_postgres(session):
        session.execute(select(Portfolio.id).where(Portfolio.id == portfolio_id).with_for_update())


# --- opening balances ---------------------------------------------------------------------------------


_OPENING_SCHEMA: dict[str, pl.DataType] = {
    "id": pl.Int64(),
    "created_at": pl.String(),
    **{COLUMN[c]: pl.Int64() for c in COMPONENTS},
}


def _created_column(session: Session) -> str:
    """``account.created_at`` as text both dialects write alike (UTC, to the second)."""
    if bulk.is_postgres(session):
        return "to_char(created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS')"
    return "created_at"


def ensure_opening_postings(
    session: Session, *, portfolio_id: int, debtor_ids: Sequence[int] | None = None
) -> int:
    """Give every account of the portfolio (or of ``debtor_ids``) not yet in the ledger its opening postings.

    One ``charge`` posting per non-zero imported balance component, dated the account's import day in the
    portfolio's time zone, with rule id ``opening``. The account is marked (``ledger_opened_on``) so this
    happens once; contract interest, penalty interest and fees imported count against the cap (CN-30)
    from then on. Returns the number of accounts opened.
    """
    cols = ", ".join(COLUMN[c] for c in COMPONENTS)
    base = (
        f"SELECT id, {_created_column(session)}, {cols} FROM account WHERE portfolio_id = {int(portfolio_id)}"
    )
    base += " AND ledger_opened_on IS NULL"
    if debtor_ids is None:
        frame = bulk.read_frame(session, base, _OPENING_SCHEMA)
    else:
        parts = [
            bulk.read_frame(
                session,
                base + " AND debtor_id IN (" + ", ".join(str(int(d)) for d in chunk) + ")",
                _OPENING_SCHEMA,
            )
            for chunk in bulk.chunked(sorted(set(debtor_ids)))
        ]
        frame = pl.concat(parts) if parts else pl.DataFrame(schema=_OPENING_SCHEMA)
    return _open_accounts(session, _portfolio(session, portfolio_id), frame).height


def _open_accounts(session: Session, portfolio: Portfolio, frame: pl.DataFrame) -> pl.DataFrame:
    """Write the opening postings of the accounts of ``frame`` (columns `_OPENING_SCHEMA`) and mark them.

    Returns the marks as written: ``id``, ``opened_on``, ``charged`` and ``through`` (see
    `ensure_opening_postings`).
    """
    watch = bulk.Stopwatch("open accounts")
    marks_schema = {"id": pl.Int64(), "opened_on": pl.Date(), "charged": pl.Int64(), "through": pl.Date()}
    if frame.height == 0:
        return pl.DataFrame(schema=marks_schema)
    portfolio_id = portfolio.id
    opened = frame.with_columns(
        opened_on=pl.col("created_at")
        .str.slice(0, 19)
        .str.replace("T", " ")
        .str.to_datetime("%Y-%m-%d %H:%M:%S", time_zone="UTC", strict=False)
        .dt.convert_time_zone(portfolio.timezone)
        .dt.date()
    )
    postings = pl.concat(
        [
            opened.filter(pl.col(COLUMN[c]) > 0).select(
                portfolio_id=pl.lit(portfolio_id, dtype=pl.Int64),
                account_id=pl.col("id"),
                component=pl.lit(c.value),
                amount_minor=pl.col(COLUMN[c]),
                kind=pl.lit(core.PostingKind.CHARGE.value),
                effective_date=pl.col("opened_on"),
                rule_id=pl.lit(OPENING_RULE),
            )
            for c in COMPONENTS
        ]
    ).sort("account_id")
    # a portfolio's first run opens every account: into a nearly empty posting table the indexes are
    # built once after the load (`indexes_deferred`)
    with table_bulk.indexes_deferred(
        session, ["posting"], rows=postings.height, ascending={"id"}, constant={"portfolio_id"}
    ):
        bulk.insert_frame(session, "posting", postings)
    watch.lap("postings")
    # An account opened on a day the portfolio's accrual has already passed keeps its own day (the opening
    # day): it has those days still to accrue. The others follow the portfolio (see `Account`).
    watermark = portfolio.ledger_accrued_through
    behind = pl.col("opened_on") < watermark if watermark is not None else pl.lit(False)
    marks = opened.select(
        pl.col("id"),
        pl.col("opened_on"),
        charged=pl.col("interest_minor") + pl.col("penalty_minor") + pl.col("fees_minor"),
        through=pl.when(behind).then(pl.col("opened_on")).otherwise(None),
    ).sort("id")
    bulk.temp_table(session, "ledger_tmp_open", marks_schema, marks)
    session.execute(
        text(
            "UPDATE account SET ledger_opened_on = t.opened_on, charged_minor = t.charged,"
            " accrued_through_date = t.through FROM ledger_tmp_open t WHERE account.id = t.id"
        )
    )
    bulk.drop_temp(session, "ledger_tmp_open")
    watch.lap("mark accounts")
    watch.done()
    return marks


IMPORT_RULE = "import"


def post_import_adjustments(session: Session, *, portfolio_id: int, import_batch_id: int, on: date) -> int:
    """Turn the balance changes a re-import made to accounts already in the ledger into postings.

    The account import sets the balance columns to the creditor's figures and records each change in
    ``import_change`` (old and new value). For an account already opened in the ledger those columns are
    the cache of its postings, so each change becomes one ``adjustment`` posting of ``new - old`` on that
    component, dated ``on`` (the import's as-of day), rule id ``import:<batch>``: the sum of the postings is
    again the balance (DESIGN invariant 2) and the statement shows the correction. Changes to contract
    interest, penalty interest and fees also move what counts against the cap (CN-30), never below zero.
    Accounts not yet opened are left alone (their opening postings will carry the new figures). Returns
    the number of postings written.
    """
    fields = ", ".join(f"'{COLUMN[c]}'" for c in COMPONENTS)
    rows = bulk.read_frame(
        session,
        "SELECT c.entity_id, c.field, c.old_value, c.new_value FROM import_change c"
        " JOIN account a ON a.id = c.entity_id"
        f" WHERE c.import_batch_id = {int(import_batch_id)} AND c.entity = 'account'"
        f" AND c.field IN ({fields}) AND a.portfolio_id = {int(portfolio_id)}"
        " AND a.ledger_opened_on IS NOT NULL",
        {"account_id": pl.Int64(), "field": pl.String(), "old": pl.String(), "new": pl.String()},
    )
    if rows.height == 0:
        return 0
    as_int = [pl.col(c).str.strip_chars().cast(pl.Int64, strict=False).fill_null(0) for c in ("new", "old")]
    changes = rows.with_columns(
        amount_minor=as_int[0] - as_int[1],
        component=pl.col("field").str.strip_suffix("_minor"),
    ).filter(pl.col("amount_minor") != 0)
    postings = changes.sort("account_id", "component").select(
        portfolio_id=pl.lit(portfolio_id, dtype=pl.Int64),
        account_id="account_id",
        component="component",
        amount_minor="amount_minor",
        kind=pl.lit(core.PostingKind.ADJUSTMENT.value),
        effective_date=pl.lit(on, dtype=pl.Date),
        rule_id=pl.lit(f"{IMPORT_RULE}:{int(import_batch_id)}"),
    )
    bulk.insert_frame(session, "posting", postings)
    charged = (
        changes.filter(pl.col("component").is_in(["interest", "penalty", "fees"]))
        .group_by("account_id")
        .agg(delta=pl.col("amount_minor").sum())
    )
    if charged.height:
        bulk.temp_table(
            session, "ledger_tmp_charged", {"account_id": pl.Int64(), "delta": pl.Int64()}, charged
        )
        session.execute(
            text(
                "UPDATE account SET charged_minor = CASE WHEN charged_minor + t.delta > 0"
                " THEN charged_minor + t.delta ELSE 0 END"
                " FROM ledger_tmp_charged t WHERE account.id = t.account_id"
            )
        )
        bulk.drop_temp(session, "ledger_tmp_charged")
    return postings.height


# --- payments -------------------------------------------------------------------------------------------

#: Columns of the frame `apply_payments` takes.
PAYMENT_IN_SCHEMA: dict[str, pl.DataType] = {
    "row": pl.Int64(),
    "reference": pl.String(),
    "amount_minor": pl.Int64(),
    "received_on": pl.Date(),
    "debtor_id": pl.Int64(),
    "account_id": pl.Int64(),
    "designation": pl.String(),
    "idempotency_key": pl.String(),
    "request_sha256": pl.String(),
    "collector": pl.String(),
}

_ACCOUNT_SCHEMA: dict[str, pl.DataType] = {
    "id": pl.Int64(),
    "debtor_id": pl.Int64(),
    "currency": pl.String(),
    "due_date": pl.Date(),
    "is_secured": pl.Boolean(),
    "interest_rate_annual_ppm": pl.Int64(),
    "penalty_rate_annual_ppm": pl.Int64(),
    "ledger_opened_on": pl.Date(),
    **{COLUMN[c]: pl.Int64() for c in COMPONENTS},
}


@dataclass
class PaymentProblem:
    """Why a payment row cannot be posted (the whole batch is then refused)."""

    row: int
    code: str
    detail: str | None = None


@dataclass
class AppliedPayments:
    """Result of `apply_payments`: per row the payment id and its split totals, or the problems."""

    results: pl.DataFrame  # row, payment_id, allocated_minor, credit_minor
    problems: list[PaymentProblem]
    postings: int = 0


def portfolio_accounts(session: Session, *, portfolio_id: int) -> pl.DataFrame:
    """Every account of the portfolio, as `apply_payments` reads them, with its ``external_ref``.

    Takes the portfolio's ledger lock first, so the balances stay as read until the transaction ends: a
    payment file resolves its references against this frame and hands it to `apply_payments`, which then
    does not read the accounts a second time.
    """
    _lock_portfolio(session, portfolio_id)
    schema = {"external_ref": pl.String(), **_ACCOUNT_SCHEMA}
    cols = ", ".join(schema)
    return bulk.read_frame(
        session, f"SELECT {cols} FROM account WHERE portfolio_id = {int(portfolio_id)}", schema
    )


def _accounts_of(session: Session, portfolio_id: int, debtor_ids: list[int]) -> pl.DataFrame:
    cols = ", ".join(_ACCOUNT_SCHEMA)
    base = f"SELECT {cols} FROM account WHERE portfolio_id = {int(portfolio_id)}"
    if len(debtor_ids) > 5000:
        return bulk.read_frame(session, base, _ACCOUNT_SCHEMA).join(
            pl.DataFrame({"debtor_id": debtor_ids}, schema={"debtor_id": pl.Int64}),
            on="debtor_id",
            how="semi",
        )
    parts = [
        bulk.read_frame(
            session, base + " AND debtor_id IN (" + ", ".join(str(d) for d in chunk) + ")", _ACCOUNT_SCHEMA
        )
        for chunk in bulk.chunked(debtor_ids)
    ]
    return pl.concat(parts) if parts else pl.DataFrame(schema=_ACCOUNT_SCHEMA)


_POSTING_SCHEMA: dict[str, pl.DataType] = {
    "account_id": pl.Int64(),
    "component": pl.String(),
    "amount_minor": pl.Int64(),
    "kind": pl.String(),
    "effective_date": pl.Date(),
    "payment_id": pl.Int64(),
    "rule_id": pl.String(),
}


def apply_payments(
    session: Session,
    *,
    portfolio_id: int,
    payments: pl.DataFrame,
    source: str,
    now: datetime,
    import_batch_id: int | None = None,
    accounts: pl.DataFrame | None = None,
) -> AppliedPayments:
    """Post a batch of received payments (columns `PAYMENT_IN_SCHEMA`; debtor resolved), all or none.

    Payments are applied in order of ``received_on`` then ``row``, each against the balances the previous
    ones left, by the portfolio's allocation policy (CN-27 across the debtor's accounts in the portfolio,
    CN-28 within each; a named account is the debtor's designation). What no debt can take becomes a
    credit balance. Writes the payment rows, one posting per split and the cached balances in bulk.
    Returns problems (and writes nothing) when a payment predates an account's opening balances or its
    debtor has no account in the portfolio.

    ``accounts``: the portfolio's accounts as `portfolio_accounts` read them earlier in this transaction
    (under the portfolio's lock), so they are not read again. Used only when every one of them is in the
    ledger already; otherwise the accounts are opened and read here as without it.
    """
    watch = bulk.Stopwatch("apply_payments")
    cfg = ledger_config(session, portfolio_id=portfolio_id)
    _lock_portfolio(session, portfolio_id)
    if payments.height > 10_000:
        bulk.roomy_joins(session)
    payments = (
        payments.select(list(PAYMENT_IN_SCHEMA))
        .cast(pl.Schema(PAYMENT_IN_SCHEMA))
        .sort(["received_on", "row"])
    )
    debtor_ids = payments["debtor_id"].unique().sort().to_list()
    if accounts is not None and accounts["ledger_opened_on"].null_count() == 0:
        # every account is open (nothing for `ensure_opening_postings` to do) and the lock held since
        # the read keeps the balances current
        accounts = accounts.select(list(_ACCOUNT_SCHEMA)).join(
            pl.DataFrame({"debtor_id": debtor_ids}, schema={"debtor_id": pl.Int64}),
            on="debtor_id",
            how="semi",
        )
        watch.lap("accounts as read")
    else:
        ensure_opening_postings(
            session, portfolio_id=portfolio_id, debtor_ids=None if len(debtor_ids) > 5000 else debtor_ids
        )
        watch.lap("open")
        accounts = _accounts_of(session, portfolio_id, debtor_ids)
        watch.lap("read accounts")

    # Checks first, as frames: every debtor has accounts here, no payment predates an opening.
    problems: list[PaymentProblem] = []
    latest_open = accounts.group_by("debtor_id").agg(pl.col("ledger_opened_on").max().alias("opened_on"))
    checked = payments.join(latest_open, on="debtor_id", how="left")
    for row in checked.filter(pl.col("opened_on").is_null())["row"].to_list():
        problems.append(PaymentProblem(row, "no_accounts"))
    for row, opened_on in (
        checked.filter(pl.col("received_on") < pl.col("opened_on")).select("row", "opened_on").iter_rows()
    ):
        problems.append(PaymentProblem(row, "before_opening", str(opened_on)))
    if problems:
        return AppliedPayments(pl.DataFrame(), sorted(problems, key=lambda p: p.row))

    n = payments.height
    payments = payments.with_columns(
        pl.Series("payment_id", bulk.next_ids(session, "payment", n), dtype=pl.Int64)
    )
    policy = cfg.policy
    watch.lap("check, ids")

    # The whole batch at once (CN-27 across the debtor's accounts, CN-28 within each); a named account is
    # the debtor's designation. A debtor's several payments go in rounds, in order.
    splits, totals, _ = allocate_frame(
        payments.select(
            "payment_id", "debtor_id", "account_id", "designation", "amount_minor", "received_on"
        ),
        accounts,
        policy,
    )
    watch.lap("allocate")
    posting_parts = [
        splits.select(
            "account_id",
            "component",
            amount_minor=-pl.col("amount_minor"),
            kind=pl.lit(core.PostingKind.PAYMENT.value),
            effective_date="received_on",
            payment_id="payment_id",
            rule_id="rule_id",
        ),
        totals.filter(pl.col("credit_minor") > 0)
        .join(payments.select("payment_id", "received_on"), on="payment_id")
        .select(
            account_id="credit_account_id",
            component=pl.lit(None, dtype=pl.String),
            amount_minor=-pl.col("credit_minor"),
            kind=pl.lit(core.PostingKind.CREDIT.value),
            effective_date="received_on",
            payment_id="payment_id",
            rule_id=pl.lit(OVERPAYMENT_RULE),
        ),
    ]
    payments = payments.join(
        totals.select("payment_id", "allocated_minor", "credit_minor"),
        on="payment_id",
        how="left",
        maintain_order="left",
    )
    per_payment = payments.select("row", "payment_id", "allocated_minor", "credit_minor")

    payment_rows = payments.select(
        id=pl.col("payment_id"),
        portfolio_id=pl.lit(portfolio_id, dtype=pl.Int64),
        debtor_id=pl.col("debtor_id"),
        account_id=pl.col("account_id"),
        reference=pl.col("reference"),
        idempotency_key=pl.col("idempotency_key"),
        request_sha256=pl.col("request_sha256"),
        amount_minor=pl.col("amount_minor"),
        currency=pl.lit(cfg.currency),
        received_on=pl.col("received_on"),
        source=pl.lit(source),
        status=pl.lit("posted"),
        policy=pl.lit(policy.name),
        designation=pl.col("designation"),
        allocated_minor=pl.col("allocated_minor"),
        credit_minor=pl.col("credit_minor"),
        collector=pl.col("collector"),
        import_batch_id=pl.lit(import_batch_id, dtype=pl.Int64),
        created_at=pl.lit(now.isoformat()),
        updated_at=pl.lit(now.isoformat()),
    )
    if not bulk.is_postgres(session):
        payment_rows = payment_rows.with_columns(
            created_at=pl.lit(_sqlite_ts(now)), updated_at=pl.lit(_sqlite_ts(now))
        )
    watch.lap("frames")
    posting_rows = (
        pl.concat([part.cast(pl.Schema(_POSTING_SCHEMA)) for part in posting_parts])
        # in account order: the (account, day) index then takes its entries page by page
        .sort("account_id", "payment_id", maintain_order=True)
        .select(pl.lit(portfolio_id, dtype=pl.Int64).alias("portfolio_id"), *_POSTING_SCHEMA)
    )
    # Writes in the order that logs least: PostgreSQL logs a page whole the first time it changes after a
    # checkpoint, and a million-row batch writes enough to start one. The account rows were just read
    # (and their pages tidied, logged then), so they are updated before anything else; then the postings,
    # whose (account, day) index pages are old; the payments last, onto new pages. The rows for each COPY
    # are encoded in the background while the database works on the statement before it.
    with ThreadPoolExecutor(max_workers=1) as pool:
        posting_csv = bulk.encode_ahead(session, pool, posting_rows)
        payment_csv = bulk.encode_ahead(session, pool, payment_rows)
        _apply_deltas(session, posting_rows)
        watch.lap("update balances")
        bulk.insert_frame(session, "posting", posting_rows, posting_csv)
        watch.lap("copy postings")
        # The ids are new and a file's references are checked against each other first; a reference
        # stored already fails the unique constraint (rebuilt as a constraint after a deferred load),
        # which refuses the whole batch.
        with table_bulk.indexes_deferred(
            session, ["payment"], rows=n, ascending={"id"}, constant={"portfolio_id"}
        ):
            bulk.insert_frame(session, "payment", payment_rows, payment_csv)
        watch.lap("copy payments")
    results = per_payment.select("row", "payment_id", "allocated_minor", "credit_minor")
    session.expire_all()
    watch.done()
    return AppliedPayments(results, [], posting_rows.height)


def _sqlite_ts(moment: datetime) -> str:
    return clock.as_utc(moment).replace(tzinfo=None).isoformat(sep=" ")


def _apply_deltas(session: Session, posting_rows: pl.DataFrame) -> None:
    """Add posted amounts to the cached balances in one statement, then mark settled / reopened accounts."""
    if posting_rows.height == 0:
        return
    deltas = posting_rows.group_by("account_id").agg(
        *[
            pl.col("amount_minor").filter(pl.col("component") == c.value).sum().alias(c.value)
            for c in COMPONENTS
        ],
        pl.col("amount_minor").filter(pl.col("component").is_null()).sum().alias("credit"),
        pl.col("amount_minor").filter(pl.col("component").is_not_null()).sum().alias("owed"),
    )
    schema = {
        "account_id": pl.Int64(),
        **{c.value: pl.Int64() for c in COMPONENTS},
        "credit": pl.Int64(),
        "owed": pl.Int64(),
    }
    # in account order: the update then walks the account table page by page (see `bulk.temp_table`)
    bulk.temp_table(session, "ledger_tmp_delta", schema, deltas.sort("account_id"), analyze=False)
    sets = ", ".join(f"{COLUMN[c]} = {COLUMN[c]} + d.{c.value}" for c in COMPONENTS)
    total = " + ".join(COLUMN[c] for c in COMPONENTS)  # before the update: SET sees the old row
    # settled when a payment takes the debt to zero; active again when a reversal brings debt back
    status = (
        f"CASE WHEN d.owed < 0 AND status = 'active' AND {total} + d.owed = 0 THEN 'settled'"
        f" WHEN d.owed > 0 AND status = 'settled' AND {total} + d.owed > 0 THEN 'active' ELSE status END"
    )
    session.execute(
        text(
            f"UPDATE account SET {sets}, credit_minor = credit_minor - d.credit, status = {status}"
            " FROM ledger_tmp_delta d WHERE account.id = d.account_id"
        )
    )
    bulk.drop_temp(session, "ledger_tmp_delta")


def request_fingerprint(body: dict[str, Any]) -> str:
    """A stable hash of a payment request, to tell a retry from a different request with the same key."""
    return hashlib.sha256(json.dumps(body, sort_keys=True, default=str).encode()).hexdigest()


def find_account(session: Session, *, portfolio_id: int, external_ref: str) -> Account:
    """The portfolio's account with this reference (借据号)."""
    account = session.scalar(
        select(Account).where(Account.portfolio_id == portfolio_id, Account.external_ref == external_ref)
    )
    if account is None:
        raise NotFound(
            f"账户不存在：{external_ref} / account {external_ref!r} not found", code="account_not_found"
        )
    return account


def post_payment(
    session: Session,
    *,
    portfolio_id: int,
    amount_minor: int,
    received_on: date,
    reference: str,
    account_id: int | None = None,
    debtor_id: int | None = None,
    designation: Sequence[int] | None = None,
    idempotency_key: str | None = None,
    request_sha256: str | None = None,
    source: str = "manual",
    collector: str | None = None,
    now: datetime,
) -> PaymentOut:
    """Post one payment (a collector's receipt or an API call) and return how it was split.

    The payer is named by an account (then its debtor's accounts share the payment, the named one first)
    or by the debtor. With an ``idempotency_key`` a repeated request returns the stored payment unchanged;
    the same key with a different request (``request_sha256``) is refused. A reference already stored in
    the portfolio is refused.
    """
    if idempotency_key is not None:
        stored = session.scalar(select(Payment).where(Payment.idempotency_key == idempotency_key))
        if stored is not None:
            return _replay(session, stored, request_sha256)
    if amount_minor <= 0:
        raise ValidationFailed("还款金额必须大于零 / a payment is a positive amount", code="bad_amount")
    money.check_magnitude(amount_minor, amount_minor)
    reference = reference.strip()
    if not reference:
        raise ValidationFailed("需要流水号或收据号 / a reference is needed", code="reference_required")
    if account_id is not None:
        account = session.get(Account, account_id)
        if account is None or account.portfolio_id != portfolio_id:
            raise NotFound(f"账户不存在 / account {account_id} not found", code="account_not_found")
        if debtor_id is not None and debtor_id != account.debtor_id:
            raise ValidationFailed("账户不属于该债务人 / account is not the debtor's", code="debtor_mismatch")
        debtor_id = account.debtor_id
    if debtor_id is None:
        raise ValidationFailed("需要账户或债务人 / name an account or a debtor", code="payer_required")
    if session.scalar(
        select(Payment.id).where(Payment.portfolio_id == portfolio_id, Payment.reference == reference)
    ):
        raise Conflict(
            f"流水号已入账：{reference} / reference {reference!r} is already posted",
            code="duplicate_reference",
        )
    frame = pl.DataFrame(
        [
            {
                "row": 1,
                "reference": reference,
                "amount_minor": amount_minor,
                "received_on": received_on,
                "debtor_id": debtor_id,
                "account_id": account_id,
                "designation": ",".join(str(int(a)) for a in designation) if designation else None,
                "idempotency_key": idempotency_key,
                "request_sha256": request_sha256,
                "collector": collector,
            }
        ],
        schema=PAYMENT_IN_SCHEMA,
    )
    savepoint = session.begin_nested()
    try:
        applied = apply_payments(session, portfolio_id=portfolio_id, payments=frame, source=source, now=now)
        if applied.problems:
            problem = applied.problems[0]
            raise _problem_error(problem)
        if designation:
            known = {a.id for a in session.scalars(select(Account).where(Account.debtor_id == debtor_id))}
            unknown = [a for a in designation if a not in known]
            if unknown:
                raise NotFound(
                    f"designated account {unknown[0]} is not the debtor's", code="designation_unknown"
                )
        savepoint.commit()
    except IntegrityError:
        savepoint.rollback()
        if idempotency_key is not None:
            stored = session.scalar(select(Payment).where(Payment.idempotency_key == idempotency_key))
            if stored is not None:
                return _replay(session, stored, request_sha256)
        raise Conflict(
            f"流水号已入账：{reference} / reference {reference!r} is already posted",
            code="duplicate_reference",
        ) from None
    except BaseException:
        if savepoint.is_active:
            savepoint.rollback()
        raise
    return payment_view(session, payment_id=int(applied.results["payment_id"][0]))


def _problem_error(problem: PaymentProblem) -> ValidationFailed:
    if problem.code == "before_opening":
        return ValidationFailed(
            f"还款日期早于账户期初余额日期 {problem.detail}（期初余额已含此前还款） / the payment predates the "
            f"account's opening balances of {problem.detail}, which already include earlier payments",
            code="before_opening",
        )
    return ValidationFailed(
        "该债务人在此资产包中没有账户 / the debtor has no account here", code="no_accounts"
    )


def _replay(session: Session, stored: Payment, request_sha256: str | None) -> PaymentOut:
    if request_sha256 is not None and stored.request_sha256 not in (None, request_sha256):
        raise Conflict(
            "幂等键已用于另一笔不同的请求 / this idempotency key was used for a different request",
            code="idempotency_key_reused",
        )
    return payment_view(session, payment_id=stored.id)


def _of_payment(session: Session, payment: Payment) -> list[Any]:
    """Conditions selecting a payment's postings through the index on (account, day).

    A payment only ever posts to its debtor's accounts (and the account it named), on or after the day it
    was received, so the lookup never needs an index on ``payment_id``.
    """
    accounts = set(session.scalars(select(Account.id).where(Account.debtor_id == payment.debtor_id)))
    if payment.account_id is not None:
        accounts.add(payment.account_id)
    return [
        Posting.account_id.in_(sorted(accounts)),
        Posting.effective_date >= payment.received_on,
        Posting.payment_id == payment.id,
    ]


def payment_view(session: Session, *, payment_id: int) -> PaymentOut:
    """A payment with every posting it made (splits) and, if reversed, the reversing postings."""
    payment = session.get(Payment, payment_id)
    if payment is None:
        raise NotFound(f"还款不存在 / payment {payment_id} not found", code="payment_not_found")
    rows = session.execute(
        select(Posting, Account.external_ref)
        .join(Account, Account.id == Posting.account_id)
        .where(*_of_payment(session, payment))
        .order_by(Posting.id)
    ).all()
    splits = [_split(p, ref) for p, ref in rows if p.kind != core.PostingKind.REVERSAL.value]
    reversals = [_split(p, ref) for p, ref in rows if p.kind == core.PostingKind.REVERSAL.value]
    return PaymentOut(
        id=payment.id,
        portfolio_id=payment.portfolio_id,
        debtor_id=payment.debtor_id,
        account_id=payment.account_id,
        reference=payment.reference,
        amount_minor=payment.amount_minor,
        currency=payment.currency,
        received_on=payment.received_on,
        source=payment.source,
        status=payment.status,
        policy=payment.policy,
        allocated_minor=payment.allocated_minor,
        credit_minor=payment.credit_minor,
        collector=payment.collector,
        reversed_on=payment.reversed_on,
        reversal_reason=payment.reversal_reason,
        splits=splits,
        reversals=reversals,
    )


def _split(p: Posting, external_ref: str) -> SplitOut:
    return SplitOut(
        posting_id=p.id,
        account_id=p.account_id,
        external_ref=external_ref,
        component=p.component,
        kind=p.kind,
        amount_minor=p.amount_minor,
        rule_id=p.rule_id,
        effective_date=p.effective_date,
    )


def _to_core(p: Posting) -> core.Posting:
    return core.Posting(
        account_id=p.account_id,
        component=Component(p.component) if p.component else None,
        amount_minor=p.amount_minor,
        kind=core.PostingKind(p.kind),
        effective_date=p.effective_date,
        id=p.id,
        reverses_posting_id=p.reverses_posting_id,
        rule_id=p.rule_id,
        payment_ref=None if p.payment_id is None else str(p.payment_id),
    )


def account_postings(
    session: Session, *, account_ids: Sequence[int], through: date | None = None
) -> list[core.Posting]:
    """The stored postings of some accounts (up to ``through``), as pure-core values, in posting order."""
    query = select(Posting).where(Posting.account_id.in_(list(account_ids)))
    if through is not None:
        query = query.where(Posting.effective_date <= through)
    return [_to_core(p) for p in session.scalars(query.order_by(Posting.id))]


def reverse_payment(
    session: Session, *, payment_id: int, reversed_on: date, reason: str, now: datetime
) -> PaymentOut:
    """Reverse a payment (bounced, posted in error): one reversal posting per posting it made.

    Every balance it touched, and its credit balance, returns exactly to what it would be without it. A
    payment is reversed once; a second request is refused with `Conflict`.
    """
    payment = session.get(Payment, payment_id)
    if payment is None:
        raise NotFound(f"还款不存在 / payment {payment_id} not found", code="payment_not_found")
    _lock_portfolio(session, payment.portfolio_id)
    session.refresh(payment)
    if payment.status == "reversed":
        raise Conflict(f"还款已冲正 / payment {payment_id} is already reversed", code="already_reversed")
    if reversed_on < payment.received_on:
        raise ValidationFailed(
            "冲正日期早于还款日期 / a reversal cannot predate the payment", code="bad_reversal_date"
        )
    touched = sorted(set(session.scalars(select(Posting.account_id).where(*_of_payment(session, payment)))))
    ledger = account_postings(session, account_ids=touched)
    reversals = core.reverse_payment(ledger, str(payment_id), effective_date=reversed_on)
    rows = [
        Posting(
            portfolio_id=payment.portfolio_id,
            account_id=r.account_id,
            component=None if r.component is None else r.component.value,
            amount_minor=r.amount_minor,
            kind=r.kind.value,
            effective_date=r.effective_date,
            payment_id=payment_id,
            reverses_posting_id=r.reverses_posting_id,
            rule_id=f"reversal:{reason}"[:80] if reason else "reversal",
        )
        for r in reversals
    ]
    session.add_all(rows)
    session.flush()
    frame = pl.DataFrame(
        {
            "account_id": [r.account_id for r in rows],
            "component": [r.component for r in rows],
            "amount_minor": [r.amount_minor for r in rows],
        },
        schema={"account_id": pl.Int64, "component": pl.String, "amount_minor": pl.Int64},
    )
    _apply_deltas(session, frame)
    session.flush()
    session.expire_all()
    restored: dict[int, int] = defaultdict(int)
    for r in rows:
        if r.component == Component.PRINCIPAL.value:
            restored[r.account_id] += r.amount_minor
    if restored:
        _accrue_restored_principal(
            session,
            cfg=ledger_config(session, portfolio_id=payment.portfolio_id),
            restored=dict(restored),
            paid_on=payment.received_on,
            correction_date=reversed_on,
            payment_id=payment_id,
        )
    session.execute(
        update(Payment)
        .where(Payment.id == payment_id)
        .values(status="reversed", reversed_on=reversed_on, reversed_at=now, reversal_reason=reason)
    )
    session.flush()
    session.expire_all()
    return payment_view(session, payment_id=payment_id)


# --- adjustments: legal costs, settlement waivers ------------------------------------------------------


def post_adjustments(
    session: Session, *, portfolio_id: int, postings: Sequence[core.Posting]
) -> list[Posting]:
    """Store postings made outside a payment (a legal cost charged, a settlement waived, a reversal of one).

    Accounts not yet in the ledger get their opening postings first. The new postings are checked with the
    accounts' stored ledger (`postings.check_ledger`: nothing negative, reversals mirror their target,
    nothing reversed twice) before anything is written; the cached balances move in the same transaction
    and an account whose debt a waiver takes to zero is ``settled``. Returns the stored rows in order.
    """
    if not postings:
        return []
    _lock_portfolio(session, portfolio_id)
    touched = sorted({p.account_id for p in postings})
    accounts = accounts_by_id(session, touched)
    foreign = [a for a in touched if a not in accounts or accounts[a].portfolio_id != portfolio_id]
    if foreign:
        raise NotFound(f"账户不存在 / account {foreign[0]} not found", code="account_not_found")
    unopened = sorted({a.debtor_id for a in accounts.values() if a.ledger_opened_on is None})
    if unopened:
        ensure_opening_postings(session, portfolio_id=portfolio_id, debtor_ids=unopened)
    ledger = account_postings(session, account_ids=touched)
    core.check_ledger([*ledger, *postings])
    rows = [
        Posting(
            portfolio_id=portfolio_id,
            account_id=p.account_id,
            component=None if p.component is None else p.component.value,
            amount_minor=p.amount_minor,
            kind=p.kind.value,
            effective_date=p.effective_date,
            reverses_posting_id=p.reverses_posting_id,
            rule_id=p.rule_id,
        )
        for p in postings
    ]
    session.add_all(rows)
    session.flush()
    frame = pl.DataFrame(
        {
            "account_id": [r.account_id for r in rows],
            "component": [r.component for r in rows],
            "amount_minor": [r.amount_minor for r in rows],
        },
        schema={"account_id": pl.Int64, "component": pl.String, "amount_minor": pl.Int64},
    )
    _apply_deltas(session, frame)
    session.flush()
    for account in accounts.values():
        session.expire(account)
    return rows


def _accrue_restored_principal(
    session: Session,
    *,
    cfg: LedgerConfig,
    restored: dict[int, int],
    paid_on: date,
    correction_date: date,
    payment_id: int,
) -> None:
    """Back-dated reversal: post the interest the restored principal earns on days already accrued.

    See `accrual.accrue_reversed_principal` for the rule. Stop flags raised on an account count from the
    day they were raised, as in the daily run.
    """
    flags = session.execute(
        select(AccountFlag.account_id, AccountFlag.created_at).where(
            AccountFlag.account_id.in_(sorted(restored)),
            AccountFlag.cleared_at.is_(None),
            AccountFlag.kind.in_([k.value for k in ACCRUAL_STOP_FLAGS]),
        )
    ).all()
    flagged: dict[int, date] = {}
    for account_id, created_at in flags:
        day = clock.to_local(created_at, cfg.timezone).date()
        flagged[account_id] = min(day, flagged.get(account_id, day))
    for account_id, principal in sorted(restored.items()):
        a = session.get(Account, account_id)
        if a is None or a.origination_date is None:
            continue
        stops = [d for d in (a.accrual_stop_date, flagged.get(account_id)) if d is not None]
        try:
            product = Product(a.product)
        except ValueError:
            product = Product.OTHER
        terms = AccountTerms(
            account_id=a.id,
            origination_date=a.origination_date,
            original_principal_minor=a.original_principal_minor or a.principal_minor,
            interest_rate_annual_ppm=a.interest_rate_annual_ppm or 0,
            penalty_rate_annual_ppm=a.penalty_rate_annual_ppm or 0,
            product=product,
            rate_basis=cfg.rate_basis,
            interest_base=cfg.interest_base,
            penalty_base=cfg.penalty_base,
            licensed_lender=cfg.licensed_lender,
            status=AccountStatus(a.status) if a.status in set(AccountStatus) else AccountStatus.ACTIVE,
            accrual_stop_date=min(stops) if stops else None,
        )
        state = AccrualState(
            principal_minor=a.principal_minor,
            accrued_through_date=accrued_through(session, a),
            interest_carry_sub=a.interest_carry_sub,
            penalty_carry_sub=a.penalty_carry_sub,
            charged_minor=a.charged_minor,
        )
        result = accrue_reversed_principal(
            terms,
            state,
            restored_principal_minor=principal,
            overdue_amount_minor=a.overdue_amount_minor or 0,
            due_date=a.due_date,
            paid_on=paid_on,
            correction_date=correction_date,
            lpr_table=cfg.lpr,
            caps=cfg.caps,
            day_count=cfg.day_count,
            rounding=cfg.rounding,
        )
        for posting in result.postings:
            session.add(
                Posting(
                    portfolio_id=a.portfolio_id,
                    account_id=a.id,
                    component=posting.component.value if posting.component else None,
                    amount_minor=posting.amount_minor,
                    kind=posting.kind.value,
                    effective_date=posting.effective_date,
                    # named in the rule id, not as the payment's own posting (the payment's splits stay its own)
                    rule_id=f"{REVERSAL_ACCRUAL_RULE}:{payment_id}"
                    if posting.rule_id == REVERSAL_ACCRUAL_RULE
                    else posting.rule_id,
                )
            )
        a.interest_minor += result.amount(Component.INTEREST)
        a.penalty_minor += result.amount(Component.PENALTY)
        a.interest_carry_sub = result.state.interest_carry_sub
        a.penalty_carry_sub = result.state.penalty_carry_sub
        a.charged_minor = result.state.charged_minor
    session.flush()


# --- verification ---------------------------------------------------------------------------------------


def verify_balances(session: Session, *, portfolio_id: int | None = None) -> list[BalanceMismatch]:
    """Compare every opened account's cached balances with the sum of its postings, component by component.

    Returns each difference, and each negative component or credit balance, as a `BalanceMismatch`; an
    empty list means the ledger reconciles (DESIGN invariant 2). Accounts not yet opened are their own
    opening balances and are skipped.
    """
    sums = ", ".join(
        f"COALESCE(SUM(CASE WHEN p.component = '{c.value}' THEN p.amount_minor END), 0)" for c in COMPONENTS
    )
    cached = ", ".join(f"a.{COLUMN[c]}" for c in COMPONENTS)
    where = "a.ledger_opened_on IS NOT NULL"
    if portfolio_id is not None:
        where += f" AND a.portfolio_id = {int(portfolio_id)}"
    sql = (
        f"SELECT a.id, {cached}, a.credit_minor, {sums},"
        " -COALESCE(SUM(CASE WHEN p.component IS NULL THEN p.amount_minor END), 0)"
        f" FROM account a LEFT JOIN posting p ON p.account_id = a.id WHERE {where}"
        f" GROUP BY a.id, {cached}, a.credit_minor"
    )
    names = [*(c.value for c in COMPONENTS), "credit"]
    out: list[BalanceMismatch] = []
    k = len(names)
    for row in session.execute(text(sql)):
        account_id = int(row[0])
        for i, name in enumerate(names):
            have, want = int(row[1 + i]), int(row[1 + k + i])
            if have != want or want < 0:
                out.append(
                    BalanceMismatch(
                        account_id=account_id, component=name, cached_minor=have, postings_minor=want
                    )
                )
    return out


# --- accrual --------------------------------------------------------------------------------------------

_ACCRUAL_SCHEMA: dict[str, pl.DataType] = {
    "account_id": pl.Int64(),
    "origination_date": pl.Date(),
    "original_principal_minor": pl.Int64(),
    "interest_rate_annual_ppm": pl.Int64(),
    "penalty_rate_annual_ppm": pl.Int64(),
    "product": pl.String(),
    "status": pl.String(),
    "accrual_stop_date": pl.Date(),
    "accrual_stop_reason": pl.String(),
    "principal_minor": pl.Int64(),
    "overdue_amount_minor": pl.Int64(),
    "due_date": pl.Date(),
    "ledger_opened_on": pl.Date(),
    "accrued_through_date": pl.Date(),
    "interest_carry_sub": pl.Int64(),
    "penalty_carry_sub": pl.Int64(),
    "charged_minor": pl.Int64(),
}
_STATE_COLUMNS = ("accrued_through_date", "interest_carry_sub", "penalty_carry_sub", "charged_minor")


def _stop_flags(session: Session, portfolio_id: int, zone: str) -> pl.DataFrame:
    kinds = [k.value for k in ACCRUAL_STOP_FLAGS]
    rows = session.execute(
        select(AccountFlag.account_id, AccountFlag.kind, AccountFlag.created_at)
        .join(Account, Account.id == AccountFlag.account_id)
        .where(
            Account.portfolio_id == portfolio_id,
            AccountFlag.cleared_at.is_(None),
            AccountFlag.kind.in_(kinds),
        )
    ).all()
    first: dict[int, tuple[date, str]] = {}
    for account_id, kind, created_at in rows:
        day = clock.to_local(created_at, zone).date()
        if account_id not in first or day < first[account_id][0]:
            first[account_id] = (day, kind)
    return pl.DataFrame(
        {
            "account_id": list(first),
            "flag_stop_date": [v[0] for v in first.values()],
            "flag_stop_reason": [v[1] for v in first.values()],
        },
        schema={"account_id": pl.Int64, "flag_stop_date": pl.Date, "flag_stop_reason": pl.String},
    )


def accrued_through(session: Session, account: Account) -> date | None:
    """The last day the ledger accrued on ``account``; None while it has not accrued since its opening.

    The account's own ``accrued_through_date`` when filled, else its portfolio's day (see `Account`).
    """
    day = account.accrued_through_date
    if day is None:
        day = _portfolio(session, account.portfolio_id).ledger_accrued_through
    if day is None or account.ledger_opened_on is None or day <= account.ledger_opened_on:
        return None
    return day


def _read_accrual_accounts(session: Session, cfg: LedgerConfig, *, opening: bool = False) -> pl.DataFrame:
    """Every account of the portfolio, opened or not, in the columns of `_ACCRUAL_SCHEMA`; with
    ``opening``, also those of `_OPENING_SCHEMA` but ``id`` (what opening an account reads)."""
    cols = ", ".join("id" if c == "account_id" else c for c in _ACCRUAL_SCHEMA)
    schema = dict(_ACCRUAL_SCHEMA)
    if opening:
        extra = {k: v for k, v in _OPENING_SCHEMA.items() if k not in schema and k != "id"}
        cols += ", " + ", ".join(_created_column(session) if k == "created_at" else k for k in extra)
        schema.update(extra)
    return bulk.read_frame(
        session, f"SELECT {cols} FROM account WHERE portfolio_id = {int(cfg.portfolio_id)}", schema
    )


def _read_opening_accrual(
    session: Session, cfg: LedgerConfig, portfolio: Portfolio
) -> tuple[pl.DataFrame, int]:
    """The portfolio's accounts as `_read_accrual_accounts` reads them, those not yet in the ledger opened
    first (`_open_accounts`) from the same read: one read of the portfolio instead of two. Returns the
    frame as it stands after the opening and the number of accounts opened."""
    raw = _read_accrual_accounts(session, cfg, opening=True)
    unopened = raw.filter(pl.col("ledger_opened_on").is_null())
    marks = _open_accounts(
        session, portfolio, unopened.select(pl.col("account_id").alias("id"), *list(_OPENING_SCHEMA)[1:])
    )
    raw = raw.select(list(_ACCRUAL_SCHEMA))
    if marks.height:
        patch = marks.select(
            account_id="id",
            ledger_opened_on="opened_on",
            charged_minor="charged",
            accrued_through_date="through",
        )
        raw = raw.update(patch, on="account_id", how="left", include_nulls=True)
    return raw, marks.height


def _followed_day(watermark: date | None) -> pl.Expr:
    """The day an account without a day of its own has accrued through: its opening day, or the portfolio's
    day (``watermark``) once that is later."""
    if watermark is None:
        return pl.col("ledger_opened_on")
    return pl.max_horizontal("ledger_opened_on", pl.lit(watermark, dtype=pl.Date))


def accrual_frame_input(
    session: Session, cfg: LedgerConfig, *, raw: pl.DataFrame | None = None, watermark: date | None = None
) -> pl.DataFrame:
    """The portfolio's opened accounts as the input frame of `accrue_frame` (see its module docstring).

    An account never accrued counts as accrued through its opening day: the imported balances already hold
    the interest up to the import. An account without a day of its own is accrued through its portfolio's
    day (``watermark``, read when ``raw`` is not given) or its opening day, whichever is later; its own day
    (or null) stays in ``own_through``. Accounts without a contract date cannot accrue and are left out.
    ``overdue_principal_minor`` is filled per day by `_on_day`.
    """
    if raw is None:
        raw = _read_accrual_accounts(session, cfg)
        watermark = _portfolio(session, cfg.portfolio_id).ledger_accrued_through
    raw = raw.filter(pl.col("origination_date").is_not_null() & pl.col("ledger_opened_on").is_not_null())
    followed = _followed_day(watermark)
    flags = _stop_flags(session, cfg.portfolio_id, cfg.timezone)
    flagged_first = pl.col("flag_stop_date").is_not_null() & (
        pl.col("accrual_stop_date").is_null() | (pl.col("flag_stop_date") < pl.col("accrual_stop_date"))
    )
    return (
        raw.join(flags, on="account_id", how="left")
        .with_columns(
            original_principal_minor=pl.coalesce("original_principal_minor", "principal_minor"),
            interest_rate_annual_ppm=pl.col("interest_rate_annual_ppm").fill_null(0),
            penalty_rate_annual_ppm=pl.col("penalty_rate_annual_ppm").fill_null(0),
            rate_basis=pl.lit(cfg.rate_basis.value),
            interest_base=pl.lit(cfg.interest_base.value),
            penalty_base=pl.lit(cfg.penalty_base.value),
            licensed_lender=pl.lit(cfg.licensed_lender),
            accrual_stop_reason=pl.when(flagged_first)
            .then(pl.col("flag_stop_reason"))
            .otherwise(pl.col("accrual_stop_reason")),
            accrual_stop_date=pl.min_horizontal("accrual_stop_date", "flag_stop_date"),
            accrued_through_date=pl.coalesce("accrued_through_date", followed),
            own_through=pl.col("accrued_through_date"),
        )
        .drop("flag_stop_date", "flag_stop_reason", "ledger_opened_on")
    )


def _on_day(frame: pl.DataFrame, day: date) -> pl.DataFrame:
    """Penalty base for ``day``: the principal once overdue (for instalment products the overdue part)."""
    instalment = pl.col("product").is_in(list(INSTALMENT_PRODUCTS))
    return frame.with_columns(
        overdue_principal_minor=pl.when(pl.col("due_date") < pl.lit(day))
        .then(
            pl.when(instalment)
            .then(pl.min_horizontal("principal_minor", "overdue_amount_minor"))
            .otherwise(pl.col("principal_minor"))
        )
        .otherwise(0)
    )


def accrue_portfolio(session: Session, *, portfolio_id: int, as_of: date) -> AccrualRun:
    """Accrue interest and penalty interest of every account of a portfolio up to ``as_of`` (the daily run).

    Set-based: the accounts are read as one frame and `accrue_frame` computes a day for all of them at once;
    accounts behind by several days (the first run after an import, a missed run) are brought up day by day
    the same way. Accrual postings are bulk-inserted and the cached balances and accrual state updated in
    one statement, for the accounts whose balances or accrual state change; the others (settled, stopped,
    no rate) are not written: they follow the portfolio's day, which moves to ``as_of`` (see `Account`).
    Caps (CN-30 for private lending, the product cap for licensed lenders) cut what would exceed them;
    settled, written-off, closed and flagged accounts accrue nothing. Running it again for the same
    ``as_of`` changes nothing. Accounts not yet in the ledger first get their opening postings
    (`ensure_opening_postings`; counted in ``opened_accounts``).
    """
    watch = bulk.Stopwatch("accrue_portfolio")
    cfg = ledger_config(session, portfolio_id=portfolio_id)
    _lock_portfolio(session, portfolio_id)
    bulk.roomy_joins(session)
    portfolio = _portfolio(session, portfolio_id)
    watermark = portfolio.ledger_accrued_through
    new_watermark = as_of if watermark is None or as_of > watermark else watermark
    # Accounts not yet in the ledger are opened first. A portfolio that never accrued opens them all from
    # its one read (with the columns the opening needs); afterwards the read tells whether any (imported
    # since) are left, and only then is the portfolio read again after opening them.
    opened = 0
    if watermark is None:
        raw, opened = _read_opening_accrual(session, cfg, portfolio)
    else:
        raw = _read_accrual_accounts(session, cfg)
    if raw["ledger_opened_on"].null_count():
        opened += ensure_opening_postings(session, portfolio_id=portfolio_id)
        raw = _read_accrual_accounts(session, cfg)
    frame = accrual_frame_input(session, cfg, raw=raw, watermark=watermark)
    watch.lap("read")
    if new_watermark != watermark:
        _pin_unaccruable(session, raw, watermark)
        portfolio.ledger_accrued_through = new_watermark
        session.flush()
    run = AccrualRun(portfolio_id=portfolio_id, as_of=as_of, accounts=frame.height, opened_accounts=opened)
    behind = frame.filter(pl.col("accrued_through_date") < as_of)
    run.already_done_accounts = frame.height - behind.height
    run.caught_up_accounts = behind.filter(pl.col("accrued_through_date") < as_of - timedelta(days=1)).height
    run.stopped_accounts = frame.filter(
        pl.col("status").is_in(["settled", "written_off", "closed"])
        | (pl.col("accrual_stop_date").is_not_null() & (pl.col("accrual_stop_date") <= as_of))
    ).height
    if behind.height == 0:
        watch.done()
        return run
    first_through = behind["accrued_through_date"].min()
    assert isinstance(first_through, date)
    day = first_through + timedelta(days=1)
    state = behind
    parts: list[pl.DataFrame] = []
    updates: list[pl.DataFrame] = []
    while day <= as_of and state.height:
        todo = state.filter(pl.col("accrued_through_date") == day - timedelta(days=1))
        if todo.height:
            out = accrue_frame(
                _on_day(todo, day),
                day,
                lpr_table=cfg.lpr,
                caps=cfg.caps,
                day_count=cfg.day_count,
                rounding=cfg.rounding,
            )
            for c in ("interest", "penalty"):
                parts.append(
                    out.filter(pl.col(f"{c}_accrued_minor") > 0).select(
                        portfolio_id=pl.lit(portfolio_id, dtype=pl.Int64),
                        account_id="account_id",
                        component=pl.lit(c),
                        amount_minor=pl.col(f"{c}_accrued_minor"),
                        kind=pl.lit(core.PostingKind.ACCRUAL.value),
                        effective_date=pl.lit(day, dtype=pl.Date),
                        rule_id=pl.col(f"{c}_rule_id"),
                    )
                )
            new_state = out.select("account_id", *_STATE_COLUMNS)
            rest = state.join(new_state, on="account_id", how="anti")
            advanced = todo.drop(*_STATE_COLUMNS).join(new_state, on="account_id")
            state = pl.concat([rest, advanced.select(rest.columns)])
            updates.append(new_state)
        day += timedelta(days=1)
    postings_frame = pl.concat(parts).sort("account_id", "effective_date") if parts else pl.DataFrame()
    watch.lap("compute")
    if postings_frame.height:
        bulk.insert_frame(session, "posting", postings_frame)
    watch.lap("copy postings")
    if updates:
        _write_accrual_state(session, behind, pl.concat(updates), postings_frame, new_watermark)
    watch.lap("update accounts")
    if postings_frame.height:
        run.postings = postings_frame.height
        run.accrued_accounts = postings_frame["account_id"].n_unique()
        run.interest_minor = int(
            postings_frame.filter(pl.col("component") == "interest")["amount_minor"].sum()
        )
        run.penalty_minor = int(postings_frame.filter(pl.col("component") == "penalty")["amount_minor"].sum())
        run.capped_accounts = postings_frame.filter(pl.col("rule_id").is_not_null())["account_id"].n_unique()
    session.expire_all()
    watch.done()
    return run


def _pin_unaccruable(session: Session, raw: pl.DataFrame, watermark: date | None) -> None:
    """Accounts that cannot accrue (no contract date) keep the day they had when the portfolio's day moves.

    They follow the portfolio only while the run brings them along; should a contract date come later, they
    accrue from where they really are.
    """
    pinned = raw.filter(
        pl.col("origination_date").is_null()
        & pl.col("accrued_through_date").is_null()
        & pl.col("ledger_opened_on").is_not_null()
    )
    if pinned.height == 0:
        return
    day = _followed_day(watermark)
    schema = {"account_id": pl.Int64(), "through": pl.Date()}
    bulk.temp_table(
        session, "ledger_tmp_pin", schema, pinned.select("account_id", through=day).sort("account_id")
    )
    session.execute(
        text(
            "UPDATE account SET accrued_through_date = t.through FROM ledger_tmp_pin t"
            " WHERE account.id = t.account_id"
        )
    )
    bulk.drop_temp(session, "ledger_tmp_pin")


def _write_accrual_state(
    session: Session, behind: pl.DataFrame, updates: pl.DataFrame, postings: pl.DataFrame, watermark: date
) -> None:
    """Cached balances and accrual state of the accounts the run changed, in one ``UPDATE``.

    An account whose balances, carries and charged amount stay as they were and that follows the portfolio
    (no day of its own, now or after the run) is not written: the portfolio's day moved for it.
    """
    final = updates.group_by("account_id").agg(pl.all().sort_by("accrued_through_date").last())
    sums = (
        postings.group_by("account_id").agg(
            di=pl.col("amount_minor").filter(pl.col("component") == "interest").sum(),
            dp=pl.col("amount_minor").filter(pl.col("component") == "penalty").sum(),
        )
        if postings.height
        else pl.DataFrame(schema={"account_id": pl.Int64, "di": pl.Int64, "dp": pl.Int64})
    )
    was = behind.select(
        "account_id",
        "own_through",
        *[pl.col(c).alias(f"was_{c}") for c in _STATE_COLUMNS if c != "accrued_through_date"],
    )
    final = (
        final.join(sums, on="account_id", how="left")
        .join(was, on="account_id", how="left")
        .with_columns(
            pl.col("di").fill_null(0),
            pl.col("dp").fill_null(0),
            own=pl.when(pl.col("accrued_through_date") == watermark)
            .then(None)
            .otherwise(pl.col("accrued_through_date")),
        )
    )
    changed = final.filter(
        (pl.col("di") != 0)
        | (pl.col("dp") != 0)
        | pl.col("own").ne_missing(pl.col("own_through"))
        | pl.any_horizontal(
            pl.col(c).ne_missing(pl.col(f"was_{c}")) for c in _STATE_COLUMNS if c != "accrued_through_date"
        )
    )
    if changed.height == 0:
        return
    schema = {
        "account_id": pl.Int64(),
        "own": pl.Date(),
        "interest_carry_sub": pl.Int64(),
        "penalty_carry_sub": pl.Int64(),
        "charged_minor": pl.Int64(),
        "di": pl.Int64(),
        "dp": pl.Int64(),
    }
    bulk.temp_table(session, "ledger_tmp_accrual", schema, changed.sort("account_id"), analyze=False)
    session.execute(
        text(
            "UPDATE account SET interest_minor = interest_minor + t.di,"
            " penalty_minor = penalty_minor + t.dp, accrued_through_date = t.own,"
            " interest_carry_sub = t.interest_carry_sub, penalty_carry_sub = t.penalty_carry_sub,"
            " charged_minor = t.charged_minor FROM ledger_tmp_accrual t WHERE account.id = t.account_id"
        )
    )
    bulk.drop_temp(session, "ledger_tmp_accrual")


def accounts_by_id(session: Session, ids: Sequence[int]) -> dict[int, Account]:
    """Accounts by id (for views)."""
    if not ids:
        return {}
    rows = session.scalars(
        select(Account).where(Account.id.in_(bindparam("ids", expanding=True))), {"ids": list(ids)}
    )
    return {a.id: a for a in rows}


def received_by_account(session: Session, *, portfolio_id: int, through: date) -> pl.DataFrame:
    """Money received per account and day, net of reversed payments: ``account_id, received_on, amount_minor``.

    The frame promises, plans and agency commissions are evaluated against. A payment split across a
    debtor's accounts counts on each account for the part allocated to it; an overpayment counts on the
    account that holds the credit.
    """
    rows = session.execute(
        select(Posting.account_id, Posting.effective_date, func.sum(-Posting.amount_minor))
        .join(Payment, Payment.id == Posting.payment_id)
        .where(
            Posting.portfolio_id == portfolio_id,
            Payment.status == "posted",
            Posting.kind.in_(("payment", "credit")),
            Posting.amount_minor < 0,
            Posting.effective_date <= through,
        )
        .group_by(Posting.account_id, Posting.effective_date)
    ).all()
    return pl.DataFrame(
        [(int(a), d, int(m)) for a, d, m in rows],
        schema={"account_id": pl.Int64, "received_on": pl.Date, "amount_minor": pl.Int64},
        orient="row",
    )
