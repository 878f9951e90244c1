"""Set-based allocation of a whole batch of payments: the twin of `allocation.allocate`, with Polars.

`allocate_frame` splits every payment of a batch over its debtor's accounts at once: CN-27 across the
accounts (the debtor's designation, then the policy's criteria, accounts equal on all of them sharing pro
rata) and CN-28 within each account (the policy's component steps, a partial step shared pro rata). A
debtor's several payments go in rounds (the first of each debtor, then the second ...), each round against
the balances the previous one left, which is what applying them one by one in order gives. Pro rata shares
use the largest-remainder method with earlier positions winning ties, in integer arithmetic, so every row
gets exactly what `allocate` gives (a property test holds them equal on random data).

`allocate_single_accounts` is the CN-28 step alone, for payments whose account is already known.
"""

from __future__ import annotations

from datetime import date

import polars as pl

from arrears.enums import Component
from arrears.errors import NotFound, ValidationFailed
from arrears.ledger.allocation import (
    DESIGNATION,
    PRO_RATA,
    REMAINING,
    AccountCriterion,
    AllocationPolicy,
)

_I128 = pl.Int128
COMPONENTS: tuple[Component, ...] = tuple(Component)
BALANCE_COLUMNS: tuple[str, ...] = tuple(f"{c.value}_minor" for c in COMPONENTS)

#: Columns of the payments `allocate_frame` takes, in the order they are applied.
PAYMENT_COLUMNS = ("payment_id", "debtor_id", "account_id", "designation", "amount_minor", "received_on")
#: Columns of the accounts it takes (``id`` is the account id), plus one balance column per component.
ACCOUNT_COLUMNS = (
    "id",
    "debtor_id",
    "currency",
    "due_date",
    "is_secured",
    "interest_rate_annual_ppm",
    "penalty_rate_annual_ppm",
)
SPLIT_SCHEMA: dict[str, pl.DataType] = {
    "payment_id": pl.Int64(),
    "account_id": pl.Int64(),
    "component": pl.String(),
    "amount_minor": pl.Int64(),
    "received_on": pl.Date(),
    "rule_id": pl.String(),
}
TOTAL_SCHEMA: dict[str, pl.DataType] = {
    "payment_id": pl.Int64(),
    "allocated_minor": pl.Int64(),
    "credit_minor": pl.Int64(),
    "credit_account_id": pl.Int64(),
}
_NO_DUE = (date.max - date(1970, 1, 1)).days + 1  # sorts after every due date


def _component_splits(frame: pl.DataFrame, policy: AllocationPolicy, keep: list[str]) -> pl.DataFrame:
    """CN-28 inside one account: ``amount_minor`` of each row over its balance columns, step by step.

    Returns one row per non-zero share with the ``keep`` columns, ``component``, ``amount_minor``,
    ``_cstep`` (the component's place in the policy) and ``_left`` (what the account could not take).
    """
    work = frame.with_columns(_left=pl.col("amount_minor").cast(_I128))
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
                    *keep,
                    component=pl.lit(c.value),
                    amount_minor=shares[i].cast(pl.Int64),
                    _cstep=pl.lit(step_no * 10 + i, dtype=pl.Int32),
                )
            )
        work = work.with_columns(_left=pl.col("_left") - pl.col("_take"))
    return pl.concat(parts).filter(pl.col("amount_minor") > 0)


def allocate_single_accounts(
    frame: pl.DataFrame, policy: AllocationPolicy
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Split each payment of ``frame`` over its one account's components by ``policy`` (CN-28 steps).

    ``frame``: ``payment_id``, ``account_id``, ``amount_minor``, ``received_on`` and the balance columns.
    Returns ``(splits, totals)``: the splits in step order within each payment (``payment_id``,
    ``account_id``, ``component``, ``amount_minor``, ``received_on``, ``rule_id``), and per payment the
    allocated amount and the credit left over.
    """
    keep = ["payment_id", "account_id", "received_on"]
    splits = (
        _component_splits(frame, policy, keep)
        .sort("payment_id", "_cstep")
        .select(
            *keep[:2], "component", "amount_minor", "received_on", rule_id=pl.lit(policy.component_rule_id)
        )
    )
    paid = splits.group_by("payment_id").agg(allocated_minor=pl.col("amount_minor").sum())
    totals = (
        frame.select("payment_id", "account_id", "amount_minor")
        .join(paid, on="payment_id", how="left")
        .select(
            "payment_id",
            "account_id",
            allocated_minor=pl.col("allocated_minor").fill_null(0),
            credit_minor=pl.col("amount_minor") - pl.col("allocated_minor").fill_null(0),
        )
    )
    return splits, totals


def _criterion_key(criterion: AccountCriterion) -> pl.Expr:
    """The same key as `allocation._criterion_key` (smaller sorts first), for every row at once."""
    due = pl.col("due_date")
    if criterion is AccountCriterion.DUE_FIRST:
        return pl.when(due.is_not_null() & (due <= pl.col("received_on"))).then(0).otherwise(1)
    if criterion is AccountCriterion.LEAST_SECURED:
        return pl.col("is_secured").fill_null(False).cast(pl.Int64)
    if criterion is AccountCriterion.MOST_BURDENSOME:
        return -pl.max_horizontal(
            pl.col("interest_rate_annual_ppm").fill_null(0), pl.col("penalty_rate_annual_ppm").fill_null(0)
        )
    return pl.when(due.is_null()).then(_NO_DUE).otherwise(due.cast(pl.Int64))


def _designations(payments: pl.DataFrame, policy: AllocationPolicy) -> pl.DataFrame:
    """Per payment the accounts it designates, in order (the named account first), each once."""
    schema = {"payment_id": pl.Int64(), "account_id": pl.Int64(), "_dpos": pl.Int64()}
    if not policy.honour_designation:
        return pl.DataFrame(schema=schema)
    # Most payments name one account and list nothing: that account is their whole designation.
    plain = payments.filter(pl.col("designation").is_null())
    named_only = plain.filter(pl.col("account_id").is_not_null()).select(
        "payment_id", "account_id", _dpos=pl.lit(0, dtype=pl.Int64)
    )
    payments = payments.filter(pl.col("designation").is_not_null())
    if payments.height == 0:
        return named_only.cast(pl.Schema(schema))
    listed = (
        payments.select(
            "payment_id",
            ids=pl.concat_list(
                pl.col("account_id").cast(pl.String).fill_null(""),
                pl.col("designation").fill_null("").str.split(","),
            ),
        )
        .explode("ids")
        .with_columns(pl.col("ids").str.strip_chars())
        .filter(pl.col("ids") != "")
        .with_columns(_pos=pl.int_range(pl.len()).over("payment_id"))
    )
    # The named account leads unless the designation lists it already (then its listed place counts).
    named_also_listed = (
        listed.filter(pl.col("_pos") > 0)
        .join(payments.select("payment_id", named=pl.col("account_id").cast(pl.String)), on="payment_id")
        .filter(pl.col("ids") == pl.col("named"))
        .select("payment_id")
        .unique()
    )
    listed = listed.join(
        named_also_listed.with_columns(_drop_first=pl.lit(True)), on="payment_id", how="left"
    ).filter(~((pl.col("_pos") == 0) & pl.col("_drop_first").fill_null(False)))
    listed = (
        listed.with_columns(account_id=pl.col("ids").cast(pl.Int64))
        .sort("payment_id", "_pos")
        .unique(["payment_id", "account_id"], keep="first", maintain_order=True)
        .select("payment_id", "account_id", _dpos=pl.int_range(pl.len()).over("payment_id").cast(pl.Int64))
    )
    return pl.concat([named_only.cast(pl.Schema(schema)), listed.cast(pl.Schema(schema))])


def _rounds(payments: pl.DataFrame) -> int:
    return int(payments.select(pl.col("_round").max()).item()) + 1 if payments.height else 0


def _subtract(state: pl.DataFrame, splits: pl.DataFrame) -> pl.DataFrame:
    """``state`` (one row per account) less what ``splits`` took from each component."""
    taken = splits.group_by("account_id").agg(
        *[
            pl.col("amount_minor").filter(pl.col("component") == c.value).sum().alias(f"_paid_{c.value}")
            for c in COMPONENTS
        ]
    )
    return (
        state.join(taken, on="account_id", how="left")
        .with_columns(
            *[pl.col(f"{c.value}_minor") - pl.col(f"_paid_{c.value}").fill_null(0) for c in COMPONENTS]
        )
        .select(state.columns)
    )


def _set_aside(state: pl.DataFrame, payments: pl.DataFrame, r: int, done: list[pl.DataFrame]) -> pl.DataFrame:
    """The accounts of ``state`` whose debtors still pay in round ``r`` or later; the others are final.

    Each round then joins and subtracts against the debtors it concerns, not the whole batch's accounts
    (with a million payments most debtors pay once and later rounds are small).
    """
    later = payments.filter(pl.col("_round") >= r).select("debtor_id").unique()
    done.append(state.join(later, on="debtor_id", how="anti"))
    return state.join(later, on="debtor_id", how="semi")


def allocate_frame(
    payments: pl.DataFrame, accounts: pl.DataFrame, policy: AllocationPolicy
) -> tuple[pl.DataFrame, pl.DataFrame, pl.DataFrame]:
    """Allocate every payment of ``payments`` (applied in the frame's order) over its debtor's ``accounts``.

    ``payments``: `PAYMENT_COLUMNS` (``account_id`` the account the payer named, ``designation`` the ids to
    pay first, comma separated; both nullable). ``accounts``: `ACCOUNT_COLUMNS` and the balance columns,
    every account of every paying debtor. Returns ``(splits, totals, balances)``:

    * splits: ``payment_id``, ``account_id``, ``component``, ``amount_minor`` (> 0), ``received_on``,
      ``rule_id``, in the order `allocate` lists them;
    * totals per payment: ``payment_id``, ``allocated_minor``, ``credit_minor``, ``credit_account_id``
      (the named account, else the first account the policy reached);
    * balances: ``account_id`` and the balance columns of every account after every payment.

    Refuses, as `allocate` does, a designated account that is not the debtor's and a debtor whose accounts
    are in several currencies.
    """
    comp = list(BALANCE_COLUMNS)
    state = accounts.select(
        pl.col("id").alias("account_id"), *[c for c in ACCOUNT_COLUMNS if c != "id"], *comp
    )
    mixed = state.group_by("debtor_id").agg(pl.col("currency").n_unique().alias("n")).filter(pl.col("n") > 1)
    if mixed.height and payments.join(mixed, on="debtor_id", how="semi").height:
        raise ValidationFailed("one payment cannot pay debts in several currencies", code="mixed_currency")
    n_accounts = state.group_by("debtor_id").agg(_n_accounts=pl.len())
    designated = _designations(payments, policy)
    stray = designated.join(payments.select("payment_id", "debtor_id"), on="payment_id").join(
        state.select("account_id", "debtor_id"), on=["account_id", "debtor_id"], how="anti"
    )
    if stray.height:
        raise NotFound(
            f"designated account {stray['account_id'][0]} is not the debtor's", code="designation_unknown"
        )
    rule = policy.across_rule_id
    keys = [f"_k{i}" for i in range(len(policy.account_order))]
    ordered = payments.select(*PAYMENT_COLUMNS, _round=pl.int_range(pl.len()).over("debtor_id")).join(
        n_accounts, on="debtor_id", how="left", maintain_order="left"
    )
    split_parts: list[pl.DataFrame] = []
    total_parts: list[pl.DataFrame] = []

    # A debtor with one account (most of them): CN-28 alone, no ordering of accounts to do. Whatever it
    # designated can only be that account (anything else was refused above), which also holds any credit.
    single_debtors = n_accounts.filter(pl.col("_n_accounts") == 1).select("debtor_id")
    single = ordered.join(single_debtors, on="debtor_id", how="semi", maintain_order="left")
    ordered = ordered.join(single_debtors, on="debtor_id", how="anti", maintain_order="left")
    only = state.join(single_debtors, on="debtor_id", how="semi")
    state = state.join(single_debtors, on="debtor_id", how="anti")
    # payments of debtors with several accounts, with their designations
    designated = designated.join(ordered.select("payment_id"), on="payment_id", how="semi")
    done: list[pl.DataFrame] = []
    for r in range(_rounds(single)):
        only = _set_aside(only, single, r, done)
        batch = (
            single.filter(pl.col("_round") == r)
            .select("payment_id", "debtor_id", "amount_minor", "received_on")
            .join(only.select("debtor_id", "account_id", *comp), on="debtor_id")
        )
        splits = _component_splits(batch, policy, ["payment_id", "account_id", "received_on"])
        split_parts.append(
            splits.select(
                "payment_id",
                "account_id",
                "component",
                "amount_minor",
                "received_on",
                rule_id=pl.lit(policy.component_rule_id),
                _pos=pl.lit(0, dtype=pl.Int64),
                _cstep="_cstep",
            )
        )
        paid = splits.group_by("payment_id").agg(allocated_minor=pl.col("amount_minor").sum())
        total_parts.append(
            batch.select("payment_id", "amount_minor", "account_id")
            .join(paid, on="payment_id", how="left")
            .select(
                "payment_id",
                allocated_minor=pl.col("allocated_minor").fill_null(0),
                credit_minor=pl.col("amount_minor") - pl.col("allocated_minor").fill_null(0),
                credit_account_id="account_id",
            )
        )
        only = _subtract(only, splits)

    # Debtors with several accounts: CN-27 orders them (designation, criteria, pro rata), then CN-28.
    rounds = _rounds(ordered)
    for r in range(rounds):
        state = _set_aside(state, ordered, r, done)
        batch = ordered.filter(pl.col("_round") == r).drop("account_id", "designation", "_round")
        named = ordered.filter(pl.col("_round") == r).select("payment_id", named_id="account_id")
        rows = (
            batch.join(state, on="debtor_id")
            .join(designated, on=["payment_id", "account_id"], how="left")
            .with_columns(
                _rest=pl.col("_dpos").is_null(),
                _owed=pl.sum_horizontal([pl.col(c).clip(lower_bound=0) for c in comp]).cast(_I128),
                **{k: _criterion_key(c) for k, c in zip(keys, policy.account_order, strict=True)},
            )
            .with_columns([pl.when(pl.col("_rest")).then(pl.col(k)).otherwise(0).alias(k) for k in keys])
            .sort("payment_id", "_rest", "_dpos", *keys, "account_id", nulls_last=True)
        )
        # a group: one designated account, or the accounts equal on every criterion
        same_as_before = pl.col("_rest") & pl.col("_rest").shift(1).fill_null(False)
        for k in keys:
            same_as_before = same_as_before & (pl.col(k) == pl.col(k).shift(1))
        first_of_payment = pl.col("payment_id") != pl.col("payment_id").shift(1)
        rows = rows.with_columns(
            _g=(first_of_payment.fill_null(True) | ~same_as_before.fill_null(False)).cast(pl.Int64)
        ).with_columns(
            _g=pl.col("_g").cum_sum().over("payment_id"), _pos=pl.int_range(pl.len()).over("payment_id")
        )
        groups = (
            rows.group_by("payment_id", "_g", maintain_order=True)
            .agg(
                pl.col("amount_minor").first(),
                pl.col("_rest").first(),
                pl.col("_owed").sum().alias("_gtotal"),
                pl.len().alias("_members"),
                *[pl.col(k).first() for k in keys],
            )
            .sort("payment_id", "_g")
        )
        rest = groups.filter(pl.col("_rest"))  # sorted by payment and group
        n_rest = rest.group_by("payment_id").agg(_n_rest=pl.len())
        pay = pl.col("payment_id")
        nxt = [pl.when(pay.shift(-1) == pay).then(pl.col(k).shift(-1)) for k in keys]
        prv = [pl.when(pay.shift(1) == pay).then(pl.col(k).shift(1)) for k in keys]
        is_last = (pay.shift(-1) != pay).fill_null(True)
        neighbour = [pl.when(is_last).then(p).otherwise(n) for n, p in zip(nxt, prv, strict=True)]
        deciding = pl.lit(None, dtype=pl.String)
        for i in reversed(range(len(keys))):
            deciding = (
                pl.when(pl.col(keys[i]) != neighbour[i])
                .then(pl.lit(str(policy.account_order[i])))
                .otherwise(deciding)
            )
        rest = (
            rest.with_columns(_deciding=deciding)
            .join(n_rest, on="payment_id")
            .with_columns(
                _label=pl.when(pl.col("_n_rest") == 1)
                .then(pl.when(pl.col("_members") > 1).then(pl.lit(PRO_RATA)).otherwise(pl.lit(REMAINING)))
                .otherwise(pl.col("_deciding"))
            )
        )
        groups = (
            groups.join(rest.select("payment_id", "_g", "_label"), on=["payment_id", "_g"], how="left")
            .with_columns(_label=pl.col("_label").fill_null(DESIGNATION))
            .with_columns(
                _before=(pl.col("_gtotal").cum_sum().over("payment_id") - pl.col("_gtotal")),
            )
            .with_columns(
                _take=(pl.col("amount_minor").cast(_I128) - pl.col("_before")).clip(
                    lower_bound=0, upper_bound=pl.col("_gtotal")
                )
            )
            .with_columns(
                _label=pl.when((pl.col("_take") < pl.col("_gtotal")) & (pl.col("_members") > 1))
                .then(pl.lit(PRO_RATA))
                .otherwise(pl.col("_label"))
            )
        )
        members = rows.join(
            groups.select("payment_id", "_g", "_gtotal", "_take", "_label"), on=["payment_id", "_g"]
        )
        # largest remainder within a group, earlier members first on ties
        members = members.with_columns(
            _floor=pl.when(pl.col("_gtotal") > 0)
            .then(pl.col("_take") * pl.col("_owed") // pl.col("_gtotal"))
            .otherwise(0),
            _rem=pl.when(pl.col("_gtotal") > 0)
            .then(pl.col("_take") * pl.col("_owed") % pl.col("_gtotal"))
            .otherwise(0),
        ).with_columns(_spare=pl.col("_take") - pl.col("_floor").sum().over("payment_id", "_g"))
        members = (
            members.sort("payment_id", "_g", pl.col("_rem"), "_pos", descending=[False, False, True, False])
            .with_columns(_rank=pl.int_range(pl.len()).over("payment_id", "_g"))
            .with_columns(
                _part=(
                    pl.col("_floor") + pl.when(pl.col("_rank") < pl.col("_spare")).then(1).otherwise(0)
                ).cast(pl.Int64)
            )
            .sort("payment_id", "_pos")
        )
        shares = members.filter(pl.col("_part") > 0).select(
            "payment_id",
            "account_id",
            "received_on",
            "_pos",
            "_label",
            "_n_accounts",
            *comp,
            amount_minor="_part",
        )
        splits = _component_splits(
            shares, policy, ["payment_id", "account_id", "received_on", "_pos", "_label", "_n_accounts"]
        )
        split_parts.append(
            splits.select(
                "payment_id",
                "account_id",
                "component",
                "amount_minor",
                "received_on",
                rule_id=pl.when(pl.col("_n_accounts") == 1)
                .then(pl.lit(policy.component_rule_id))
                .otherwise(pl.lit(f"{rule}:") + pl.col("_label") + pl.lit(f";{policy.component_rule_id}")),
                _pos=pl.col("_pos").cast(pl.Int64),
                _cstep="_cstep",
            )
        )
        first_account = rows.filter(pl.col("_pos") == 0).select("payment_id", first_id="account_id")
        paid = members.group_by("payment_id").agg(allocated_minor=pl.col("_part").sum())
        total_parts.append(
            batch.select("payment_id", "amount_minor")
            .join(paid, on="payment_id", how="left")
            .join(named, on="payment_id", how="left")
            .join(first_account, on="payment_id", how="left")
            .select(
                "payment_id",
                allocated_minor=pl.col("allocated_minor").fill_null(0),
                credit_minor=pl.col("amount_minor") - pl.col("allocated_minor").fill_null(0),
                credit_account_id=pl.coalesce("named_id", "first_id"),
            )
        )
        state = _subtract(state, splits)
    state = pl.concat([*done, only, state])
    if split_parts:
        splits = pl.concat(split_parts).sort("payment_id", "_pos", "_cstep").drop("_pos", "_cstep")
    else:
        splits = pl.DataFrame(schema=SPLIT_SCHEMA)
    totals = pl.concat(total_parts).sort("payment_id") if total_parts else pl.DataFrame(schema=TOTAL_SCHEMA)
    balances = state.select("account_id", *comp)
    return splits.cast(pl.Schema(SPLIT_SCHEMA)), totals.cast(pl.Schema(TOTAL_SCHEMA)), balances
