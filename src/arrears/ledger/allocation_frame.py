"""Set-based allocation of payments to single accounts: the twin of `allocation.allocate` for the common case.

When a debtor has one account in the portfolio and one payment in the batch, allocation is CN-28 alone:
the policy's component steps in order, a partial step shared pro rata by the largest-remainder method
(earlier components win ties), the rest held as credit on that account. This module does that for every
such payment at once with Polars expressions, giving exactly what `allocate` gives (a property test holds
them equal); everything else goes through `allocate` one payment at a time.

Input columns: ``payment_id``, ``account_id``, ``amount_minor``, ``received_on`` and one balance column per
component named ``<component>_minor``. Output: one row per split (``payment_id``, ``account_id``,
``component``, ``amount_minor`` > 0, ``received_on``, ``rule_id``) and per payment ``allocated_minor`` and
``credit_minor``.
"""

from __future__ import annotations

import polars as pl

from arrears.ledger.allocation import AllocationPolicy

_I128 = pl.Int128


def allocate_single_accounts(
    frame: pl.DataFrame, policy: AllocationPolicy
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Split each payment of ``frame`` over its one account's components by ``policy`` (CN-28 steps).

    Returns ``(splits, totals)``: the splits in step order within each payment, and per payment the
    allocated amount and the credit left over.
    """
    left = pl.col("amount_minor").cast(_I128)
    work = frame.with_columns(_left=left)
    parts: list[pl.DataFrame] = []
    for step_no, step in enumerate(policy.component_steps):
        owed = [pl.col(f"{c.value}_minor").clip(lower_bound=0).cast(_I128) for c in step]
        total = pl.sum_horizontal(owed)
        take = pl.min_horizontal(pl.col("_left"), total)
        work = work.with_columns(_take=take, _total=total)
        if len(step) == 1:
            shares = [pl.col("_take")]
        else:
            floors = [
                pl.when(pl.col("_total") > 0).then(pl.col("_take") * o // pl.col("_total")).otherwise(0)
                for o in owed
            ]
            rems = [
                pl.when(pl.col("_total") > 0).then(pl.col("_take") * o % pl.col("_total")).otherwise(0)
                for o in owed
            ]
            spare = pl.col("_take") - pl.sum_horizontal(floors)
            shares = []
            for i in range(len(step)):
                ahead = [
                    (rems[j] > rems[i]) | ((rems[j] == rems[i]) & pl.lit(j < i))
                    for j in range(len(step))
                    if j != i
                ]
                rank = pl.sum_horizontal([a.cast(pl.Int64) for a in ahead]) if ahead else pl.lit(0)
                shares.append(floors[i] + pl.when(rank < spare).then(1).otherwise(0))
        for i, c in enumerate(step):
            parts.append(
                work.select(
                    "payment_id",
                    "account_id",
                    component=pl.lit(c.value),
                    amount_minor=shares[i].cast(pl.Int64),
                    received_on="received_on",
                    _order=pl.lit(step_no * 10 + i, dtype=pl.Int32),
                )
            )
        work = work.with_columns(_left=pl.col("_left") - pl.col("_take"))
    splits = (
        pl.concat(parts)
        .filter(pl.col("amount_minor") > 0)
        .sort("payment_id", "_order")
        .drop("_order")
        .with_columns(rule_id=pl.lit(policy.component_rule_id))
    )
    totals = work.select(
        "payment_id",
        "account_id",
        allocated_minor=(pl.col("amount_minor") - pl.col("_left")).cast(pl.Int64),
        credit_minor=pl.col("_left").cast(pl.Int64),
    )
    return splits, totals
