"""Set-based accrual of one day for a whole portfolio, with Polars expressions.

The twin of `accrual.accrue` for a single day: the same integer arithmetic, column by column, so that each
row gets exactly the amounts the scalar function would give (a property test holds them equal).

Input columns (one row per account; names follow the ``account`` table and `AccountTerms`/`AccrualState`):

=========================  ========  ============================================================
account_id                 Int64
origination_date           Date
original_principal_minor   Int64
interest_rate_annual_ppm   Int64     margin over the LPR when ``rate_basis`` is ``lpr_1y``
penalty_rate_annual_ppm    Int64
product                    String    `Product` value (licensed lenders' caps)
rate_basis                 String    `RateBasis` value
interest_base              String    `AccrualBase` value
penalty_base               String    `AccrualBase` value
licensed_lender            Boolean
status                     String    `AccountStatus` value
accrual_stop_date          Date      nullable
accrual_stop_reason        String    nullable
principal_minor            Int64
overdue_principal_minor    Int64
accrued_through_date       Date      nullable
interest_carry_sub         Int64
penalty_carry_sub          Int64
charged_minor              Int64
=========================  ========  ============================================================

Output: ``account_id``, ``interest_accrued_minor``, ``penalty_accrued_minor``, the new
``accrued_through_date``, ``interest_carry_sub``, ``penalty_carry_sub``, ``charged_minor``,
``interest_rule_id`` and ``penalty_rule_id`` (the cap's rule id when the cap cut that component), and
``needs_catch_up``: rows whose last accrued day is before the day before ``as_of`` are left unchanged
and flagged, for the scalar `accrue` to catch up over several days.
"""

from __future__ import annotations

from datetime import date, timedelta

import polars as pl

from arrears.errors import NotFound
from arrears.ledger.accrual import (
    STOPPED_STATUSES,
    SUB_UNITS_PER_MINOR,
    AccrualBase,
    DayCount,
    RateBasis,
    Rounding,
    day_units,
)
from arrears.ledger.caps import DAYS_PER_YEAR_FOR_CAPS, PPM, CapTable, LprTable

_I128 = pl.Int128


def _base(which: str) -> pl.Expr:
    return (
        pl.when(pl.col(which) == str(AccrualBase.PRINCIPAL))
        .then(pl.col("principal_minor"))
        .when(pl.col(which) == str(AccrualBase.OVERDUE_PRINCIPAL))
        .then(pl.col("overdue_principal_minor"))
        .otherwise(0)
        .clip(lower_bound=0)
        .cast(_I128)
    )


def _cap_ppm(df: pl.DataFrame, lpr_table: LprTable, caps: CapTable | None, active: pl.Series) -> pl.Series:
    """Annual cap per row (null: uncapped), as `CapTable.annual_cap` would give it."""
    n = df.height
    if caps is None:
        return pl.Series("cap_ppm", [None] * n, dtype=pl.Int64)
    dates = pl.Series([r.effective_date for r in lpr_table.rates], dtype=pl.Date)
    rates = pl.Series([r.one_year_ppm for r in lpr_table.rates], dtype=pl.Int64)
    index = dates.search_sorted(df["origination_date"], side="right").cast(pl.Int64) - 1
    private = ~df["licensed_lender"]
    missing = active & private & (index < 0)
    if missing.any():
        first = df.filter(missing)["origination_date"].min()
        raise NotFound(f"no LPR published on or before {first!s} (该日期前无LPR报价)", code="lpr_unknown")
    lpr_at_origination = rates.gather(index.clip(lower_bound=0))
    licensed = df["product"].replace_strict(
        dict(caps.licensed_product_ppm), default=caps.licensed_default_ppm, return_dtype=pl.Int64
    )
    private_cap = lpr_at_origination * caps.lpr_multiplier
    out = pl.select(
        pl.when(pl.lit(private)).then(pl.lit(private_cap)).otherwise(pl.lit(licensed)).alias("cap_ppm")
    ).to_series()
    return out


def accrue_frame(
    df: pl.DataFrame,
    as_of: date,
    *,
    lpr_table: LprTable,
    caps: CapTable | None,
    day_count: DayCount,
    rounding: Rounding,
) -> pl.DataFrame:
    """Accrue the single day ``as_of`` for every row of ``df`` (columns in the module docstring)."""
    sub = SUB_UNITS_PER_MINOR
    half = sub // 2 if rounding is Rounding.HALF_UP else 0
    units = day_units(as_of, day_count)
    yesterday = as_of - timedelta(days=1)
    through = pl.col("accrued_through_date")
    stopped = [str(s) for s in STOPPED_STATUSES]

    flags = df.select(
        (through.is_null() | (through == yesterday)).alias("todo"),
        (through.is_not_null() & (through < yesterday)).alias("needs_catch_up"),
        (
            ~pl.col("status").is_in(stopped)
            & (pl.col("accrual_stop_date").is_null() | (pl.col("accrual_stop_date") > as_of))
            & (pl.col("origination_date") <= as_of)
        ).alias("running"),
    )
    todo, running = flags["todo"], flags["running"]
    active = todo & running

    floating = df["rate_basis"] == str(RateBasis.LPR_1Y)
    lpr_today = lpr_table.one_year_ppm(as_of) if (active & floating).any() else 0
    cap_ppm = _cap_ppm(df, lpr_table, caps, active)

    days = (pl.lit(as_of) - pl.col("origination_date")).dt.total_days() + 1
    per_year = pl.col("original_principal_minor").cast(_I128) * pl.col("cap_ppm").cast(_I128)
    year_sub = DAYS_PER_YEAR_FOR_CAPS * PPM
    cap_total = (per_year // year_sub) * days + ((per_year % year_sub) * days) // year_sub
    room = (
        pl.when(pl.col("original_principal_minor") > 0)
        .then(cap_total)
        .otherwise(0)
        .sub(pl.col("charged_minor"))
        .clip(lower_bound=0)
    )

    def rate(column: str) -> pl.Expr:
        r = pl.col(column) + pl.when(pl.col("rate_basis") == str(RateBasis.LPR_1Y)).then(lpr_today).otherwise(
            0
        )
        return r.clip(lower_bound=0).cast(_I128)

    work = (
        df.with_columns(
            cap_ppm=cap_ppm,
            _active=active,
            exact_i=pl.col("interest_carry_sub").cast(_I128)
            + _base("interest_base") * rate("interest_rate_annual_ppm") * units,
            exact_p=pl.col("penalty_carry_sub").cast(_I128)
            + _base("penalty_base") * rate("penalty_rate_annual_ppm") * units,
        )
        .with_columns(
            due_i=(pl.col("exact_i") + half) // sub,
            due_p=(pl.col("exact_p") + half) // sub,
            room=pl.when(pl.col("cap_ppm").is_null()).then(None).otherwise(room),
        )
        .with_columns(
            post_i=pl.when(pl.col("room").is_null())
            .then(pl.col("due_i"))
            .otherwise(pl.min_horizontal("due_i", "room")),
        )
        .with_columns(
            post_p=pl.when(pl.col("room").is_null())
            .then(pl.col("due_p"))
            .otherwise(pl.min_horizontal(pl.col("due_p"), pl.col("room") - pl.col("post_i"))),
        )
    )
    cap_rule = (
        pl.when(pl.col("licensed_lender"))
        .then(pl.lit(caps.licensed_rule_id))
        .otherwise(pl.lit(caps.private_rule_id))
        if caps is not None
        else pl.lit(None, dtype=pl.String)
    )
    act = pl.col("_active")
    out = work.select(
        "account_id",
        pl.when(act).then(pl.col("post_i")).otherwise(0).cast(pl.Int64).alias("interest_accrued_minor"),
        pl.when(act).then(pl.col("post_p")).otherwise(0).cast(pl.Int64).alias("penalty_accrued_minor"),
        pl.when(pl.lit(todo)).then(pl.lit(as_of)).otherwise(through).alias("accrued_through_date"),
        pl.when(act)
        .then(pl.col("exact_i") - pl.col("due_i") * sub)
        .otherwise(pl.col("interest_carry_sub"))
        .cast(pl.Int64)
        .alias("interest_carry_sub"),
        pl.when(act)
        .then(pl.col("exact_p") - pl.col("due_p") * sub)
        .otherwise(pl.col("penalty_carry_sub"))
        .cast(pl.Int64)
        .alias("penalty_carry_sub"),
        pl.when(act)
        .then(pl.col("charged_minor") + pl.col("post_i") + pl.col("post_p"))
        .otherwise(pl.col("charged_minor"))
        .cast(pl.Int64)
        .alias("charged_minor"),
        pl.when(act & (pl.col("post_i") < pl.col("due_i"))).then(cap_rule).alias("interest_rule_id"),
        pl.when(act & (pl.col("post_p") < pl.col("due_p"))).then(cap_rule).alias("penalty_rule_id"),
        pl.lit(flags["needs_catch_up"]).alias("needs_catch_up"),
    )
    return out
