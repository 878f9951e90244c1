"""Days past due from the ledger (pure, vectorised): `dpd_frame(accounts, instalments, received, as_of)`.

The import gives each account its earliest unpaid due date (``due_date``) and the amount overdue on that
day (``overdue_amount_minor``; the whole balance when the file gives none). Payments recorded in the ledger
since then move the date DPD counts from:

* **Instalment products** (``instalment_loan``, ``bnpl``) with a stored schedule: the instalments due on
  or after the imported due date are unpaid in full at import. Money received since the import covers
  them oldest first; the oldest instalment not fully covered drives DPD (``as_of`` minus its due date,
  negative while it is not due yet). A partial payment of that instalment does not move it. When every
  instalment is covered, nothing is overdue and DPD is 0.
* **Single-due products** (cards, loans, invoices, and instalment products without a schedule): DPD
  counts from the imported due date until the money received since the import reaches the overdue
  amount; from then on nothing is overdue and DPD is 0.

Money received is the ledger's: payments through ``as_of``, net of reversed payments, on the account the
allocation put them on (`ledger.service.received_by_account`). An account with no payment since the import
keeps ``as_of - due_date``.
"""

from __future__ import annotations

from datetime import date

import polars as pl

INSTALMENT_PRODUCTS = ("instalment_loan", "bnpl")

ACCOUNTS_SCHEMA: dict[str, pl.DataType] = {
    "account_id": pl.Int64(),
    "product": pl.String(),
    "due_date": pl.Date(),
    "overdue_amount_minor": pl.Int64(),
}
INSTALMENTS_SCHEMA: dict[str, pl.DataType] = {
    "account_id": pl.Int64(),
    "seq": pl.Int64(),
    "due_date": pl.Date(),
    "amount_minor": pl.Int64(),
}
RECEIVED_SCHEMA: dict[str, pl.DataType] = {"account_id": pl.Int64(), "received_minor": pl.Int64()}


def dpd_frame(
    accounts: pl.DataFrame, instalments: pl.DataFrame, received: pl.DataFrame, *, as_of: date
) -> pl.DataFrame:
    """``account_id``, ``dpd_due_date`` (the date DPD counts from; null when nothing is overdue) and
    ``dpd`` (Int64) of every row of ``accounts``, in its order.

    ``accounts``: `ACCOUNTS_SCHEMA`; ``instalments``: the schedules (`INSTALMENTS_SCHEMA`, any order, only
    those of instalment products are read); ``received``: money received per account since the import
    through ``as_of`` (`RECEIVED_SCHEMA`, at most one row per account).
    """
    paid = accounts.select("account_id", "product", "due_date", "overdue_amount_minor").join(
        received.group_by("account_id").agg(pl.col("received_minor").sum()),
        on="account_id",
        how="left",
        maintain_order="left",
    )
    paid = paid.with_columns(pl.col("received_minor").fill_null(0))
    instalment = pl.col("product").is_in(list(INSTALMENT_PRODUCTS))
    # unpaid instalments at import, oldest first, with the amount due up to and including each
    open_schedule = (
        instalments.join(
            paid.filter(instalment & (pl.col("received_minor") > 0)).select(
                "account_id", pl.col("due_date").alias("_from"), "received_minor"
            ),
            on="account_id",
            how="inner",
        )
        .filter(pl.col("due_date") >= pl.col("_from"))
        .sort("account_id", "seq")
        .with_columns(pl.col("amount_minor").cum_sum().over("account_id").alias("_due_through"))
    )
    scheduled = open_schedule.select("account_id").unique()
    oldest_unpaid = (
        open_schedule.filter(pl.col("_due_through") > pl.col("received_minor"))
        .group_by("account_id")
        .agg(pl.col("due_date").sort_by("seq").first().alias("_instalment_due"))
    )
    out = (
        paid.join(
            scheduled.with_columns(pl.lit(True).alias("_scheduled")),
            on="account_id",
            how="left",
            maintain_order="left",
        )
        .join(oldest_unpaid, on="account_id", how="left", maintain_order="left")
        .with_columns(pl.col("_scheduled").fill_null(False))
    )
    single_cured = (pl.col("received_minor") > 0) & (
        pl.col("received_minor") >= pl.col("overdue_amount_minor")
    )
    due = (
        pl.when(pl.col("_scheduled"))
        .then(pl.col("_instalment_due"))  # null: every instalment covered
        .when(single_cured)
        .then(pl.lit(None, pl.Date()))
        .otherwise(pl.col("due_date"))
    )
    return out.select(
        "account_id",
        due.alias("dpd_due_date"),
    ).with_columns(
        (pl.lit(as_of) - pl.col("dpd_due_date")).dt.total_days().fill_null(0).cast(pl.Int64).alias("dpd")
    )
