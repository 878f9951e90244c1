"""Promises to pay and repayment arrangements, stored: record, quote, create, approve, and the daily
evaluation of promises and plans against payments.

Payments come in as a Polars frame ``account_id, received_on, amount_minor`` (net of reversals), so the
daily run can pass whatever the ledger holds. The pure rules live in ``promises.py``, ``quote.py`` and
``breach.py``; this module loads rows, calls them set-based and writes the results back in bulk.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

import polars as pl
from pydantic import TypeAdapter, ValidationError
from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from arrears import clock
from arrears.arrangements import breach, promises
from arrears.arrangements.policy import ArrangementPolicy, load_policy
from arrears.arrangements.quote import ArrangementRequest, Balances, Quote, quote
from arrears.arrangements.schemas import Arrangement as PlanValue
from arrears.arrangements.schemas import ArrangementKind, InstalmentKind, ScheduledInstalment
from arrears.enums import Channel, Component, Role
from arrears.errors import Conflict, NotFound, ValidationFailed
from arrears.holds.authority import get_user, require_role
from arrears.models import (
    Account,
    Approval,
    Arrangement,
    ArrangementAccount,
    ArrangementInstalment,
    ArrangementWaiver,
    Case,
    Promise,
)

PAYMENT_SCHEMA = {"account_id": pl.Int64, "received_on": pl.Date, "amount_minor": pl.Int64}


class PromiseStatus:
    """Stored promise states: the pure `PromiseState` values plus ``superseded`` (a newer promise replaced
    it before its deadline)."""

    PENDING = promises.PromiseState.PENDING.value
    SUPERSEDED = "superseded"


class ArrangementStatus:
    PROPOSED = "proposed"
    PENDING_APPROVAL = "pending_approval"
    ACTIVE = "active"
    REJECTED = "rejected"
    BREACHED = "breached"
    COMPLETED = "completed"


LIVE_STATUSES = (ArrangementStatus.PENDING_APPROVAL, ArrangementStatus.ACTIVE)


def _ledger_payments(session: Session, *, portfolio_id: int, through: date) -> pl.DataFrame:
    from arrears.ledger import service as ledger_service

    return ledger_service.received_by_account(session, portfolio_id=portfolio_id, through=through)


def empty_payments() -> pl.DataFrame:
    """A payments frame with no rows (the shape `refresh_promises` and friends take)."""
    return pl.DataFrame(schema=PAYMENT_SCHEMA)


def _payments(frame: pl.DataFrame) -> pl.DataFrame:
    missing = set(PAYMENT_SCHEMA) - set(frame.columns)
    if missing:
        raise ValidationFailed(
            f"payments frame lacks columns {sorted(missing)}",
            code="bad_payments_frame",
            details=sorted(missing),
        )
    return frame.select(pl.col(name).cast(dtype) for name, dtype in PAYMENT_SCHEMA.items())


def _expire_loaded(session: Session, *models: type) -> None:
    """Bulk UPDATEs by primary key bypass the identity map: reload those rows on next access."""
    for obj in list(session.identity_map.values()):
        if isinstance(obj, models):
            session.expire(obj)


def _account(session: Session, account_id: int) -> Account:
    account = session.get(Account, account_id)
    if account is None:
        raise NotFound(f"账户不存在：{account_id} / account {account_id} not found", code="account_not_found")
    return account


# --- promises ------------------------------------------------------------------------------------------


def record_promise(
    session: Session,
    *,
    account_id: int,
    amount_minor: int,
    promised_on: date,
    made_on: date,
    channel: Channel | str,
    taken_by_id: int | None = None,
    policy: ArrangementPolicy | None = None,
) -> Promise:
    """Record a promise to pay; a still pending promise on the same account is superseded by it.

    The promise counts as an acknowledgment of the debt on ``made_on`` (CN-26).
    """
    account = _account(session, account_id)
    policy = policy or load_policy()
    if taken_by_id is not None:
        get_user(session, taken_by_id)
    value = promises.Promise(
        amount_minor=amount_minor,
        currency=account.currency,
        promised_on=promised_on,
        made_on=made_on,
        channel=Channel(channel),
        taken_by=str(taken_by_id or ""),
    )
    session.execute(
        update(Promise)
        .where(Promise.account_id == account_id, Promise.status == PromiseStatus.PENDING)
        .values(status=PromiseStatus.SUPERSEDED, evaluated_on=made_on)
    )
    row = Promise(
        account_id=account.id,
        case_id=account.case_id,
        amount_minor=value.amount_minor,
        currency=value.currency,
        promised_on=value.promised_on,
        made_on=value.made_on,
        channel=value.channel.value,
        taken_by_id=taken_by_id,
        status=PromiseStatus.PENDING,
        paid_minor=0,
        deadline_on=value.promised_on + timedelta(days=policy.promise_grace_days),
    )
    session.add(row)
    session.flush()
    return row


@dataclass(frozen=True, slots=True)
class RefreshResult:
    """How many rows a refresh looked at and how many ended in each state."""

    evaluated: int
    by_status: dict[str, int]


def refresh_promises(
    session: Session,
    *,
    portfolio_id: int,
    as_of: date,
    payments: pl.DataFrame | None = None,
    policy: ArrangementPolicy | None = None,
) -> RefreshResult:
    """Evaluate every pending promise of a portfolio on ``as_of`` against ``payments``, set-based.

    Kept, partly kept and broken are final; pending promises stay pending. Re-running for the same date
    changes nothing.

    ``payments`` defaults to the money the ledger received per account through ``as_of``.
    """
    if payments is None:
        payments = _ledger_payments(session, portfolio_id=portfolio_id, through=as_of)
    policy = policy or load_policy()
    rows = session.execute(
        select(Promise.id, Promise.account_id, Promise.amount_minor, Promise.promised_on, Promise.made_on)
        .join(Account, Account.id == Promise.account_id)
        .where(Account.portfolio_id == portfolio_id, Promise.status == PromiseStatus.PENDING)
    ).all()
    if not rows:
        return RefreshResult(0, {})
    open_promises = pl.DataFrame(
        [tuple(r) for r in rows],
        schema={
            "promise_id": pl.Int64,
            "account_id": pl.Int64,
            "amount_minor": pl.Int64,
            "promised_on": pl.Date,
            "made_on": pl.Date,
        },
        orient="row",
    )
    # One pending promise per account (a new one supersedes the old), so account payments map onto it.
    paid = _payments(payments).join(open_promises.select("promise_id", "account_id"), on="account_id")
    result = promises.promise_status_frame(
        open_promises.drop("account_id"),
        paid.select("promise_id", "received_on", "amount_minor"),
        as_of=as_of,
        grace_days=policy.promise_grace_days,
    )
    updates = [
        {
            "id": r["promise_id"],
            "status": r["status"],
            "paid_minor": r["paid_minor"],
            "deadline_on": r["deadline_on"],
            "kept_on": r["kept_on"],
            "broken_on": r["broken_on"],
            "evaluated_on": as_of,
        }
        for r in result.iter_rows(named=True)
    ]
    session.execute(update(Promise), updates)
    _expire_loaded(session, Promise)
    counts = result.group_by("status").len()
    return RefreshResult(len(updates), {s: int(n) for s, n in counts.iter_rows()})


def list_promises(
    session: Session, *, account_id: int | None = None, case_id: int | None = None
) -> list[Promise]:
    """Promises of an account or a case, oldest first."""
    query = select(Promise)
    if account_id is not None:
        query = query.where(Promise.account_id == account_id)
    if case_id is not None:
        query = query.where(Promise.case_id == case_id)
    return list(session.scalars(query.order_by(Promise.id)))


def acknowledgments(session: Session, *, account_id: int) -> tuple[promises.AcknowledgmentEvent, ...]:
    """The debtor's acknowledgments of an account's debt from promises and agreed plans (CN-26).

    Payments are the ledger's; it adds them with `promises.acknowledgment_events(payments=...)`.
    """
    promise_rows = session.scalars(
        select(Promise).where(Promise.account_id == account_id).order_by(Promise.id)
    ).all()
    plan_rows = session.scalars(
        select(Arrangement)
        .join(ArrangementAccount, ArrangementAccount.arrangement_id == Arrangement.id)
        .where(
            ArrangementAccount.account_id == account_id,
            Arrangement.status.not_in((ArrangementStatus.REJECTED, ArrangementStatus.PROPOSED)),
        )
        .order_by(Arrangement.id)
    ).all()
    return promises.acknowledgment_events(
        promises=[
            promises.Promise(
                amount_minor=p.amount_minor,
                currency=p.currency,
                promised_on=p.promised_on,
                made_on=p.made_on,
                channel=Channel(p.channel),
                taken_by=str(p.taken_by_id or ""),
                ref=str(p.id),
            )
            for p in promise_rows
        ],
        arrangements=[_plan_value(plan) for plan in plan_rows],
    )


def _plan_value(plan: Arrangement) -> PlanValue:
    return PlanValue(
        ref=str(plan.id),
        kind=ArrangementKind(plan.kind),
        agreed_on=plan.agreed_on,
        currency=plan.currency,
        schedule=tuple(
            ScheduledInstalment(i.seq, i.due_on, i.amount_minor, InstalmentKind(i.kind))
            for i in plan.instalments
        ),
        accrual_paused=plan.accrual_paused,
    )


# --- arrangements --------------------------------------------------------------------------------------

_REQUEST = TypeAdapter(ArrangementRequest)


def parse_request(data: dict[str, Any]) -> Any:
    """An arrangement request from JSON-like data (``kind`` picks the shape); bad input -> ValidationFailed."""
    try:
        return _REQUEST.validate_python(data)
    except ValidationError as exc:
        raise ValidationFailed(
            "方案参数无效 / invalid arrangement request",
            code="bad_arrangement_request",
            details=exc.errors(include_url=False, include_context=False),
        ) from exc


def _accounts(session: Session, account_ids: Sequence[int]) -> list[Account]:
    ids = list(dict.fromkeys(account_ids))
    if not ids:
        raise ValidationFailed("至少需要一个账户 / at least one account is needed", code="no_accounts")
    accounts = list(session.scalars(select(Account).where(Account.id.in_(ids)).order_by(Account.id)))
    missing = set(ids) - {a.id for a in accounts}
    if missing:
        raise NotFound(f"账户不存在 / accounts not found: {sorted(missing)}", code="account_not_found")
    if len({a.case_id for a in accounts}) > 1:
        raise ValidationFailed(
            "一个方案只能包含同一案件的账户 / a plan covers accounts of one case only",
            code="accounts_in_several_cases",
        )
    if len({a.currency for a in accounts}) > 1:
        raise ValidationFailed("账户币种不一致 / accounts in several currencies", code="currency_mismatch")
    return accounts


def _component_balances(account: Account) -> dict[Component, int]:
    return {
        Component.PRINCIPAL: account.principal_minor,
        Component.INTEREST: account.interest_minor,
        Component.PENALTY: account.penalty_minor,
        Component.FEES: account.fees_minor,
        Component.COSTS: account.costs_minor,
    }


def balances_of(accounts: Sequence[Account]) -> Balances:
    """The combined balance of some accounts by component, with the earliest unpaid due date."""
    totals = dict.fromkeys(Component, 0)
    for account in accounts:
        for component, amount in _component_balances(account).items():
            totals[component] += amount
    return Balances(
        currency=accounts[0].currency, by_component=totals, due_on=min(a.due_date for a in accounts)
    )


def quote_arrangement(
    session: Session,
    *,
    account_ids: Sequence[int],
    request: Any,
    as_of: date,
    policy: ArrangementPolicy | None = None,
) -> Quote:
    """Preview a plan over some accounts of one case on ``as_of``; nothing is saved."""
    accounts = _accounts(session, account_ids)
    return quote(request, balances_of(accounts), policy or load_policy(), as_of)


def _split_by_weight(total: int, weights: Sequence[int]) -> list[int]:
    """``total`` in parts proportional to ``weights`` (largest remainders), summing exactly."""
    whole = sum(weights)
    if whole == 0:
        return [0] * len(weights)
    shares = [total * w // whole for w in weights]
    left = total - sum(shares)
    order = sorted(range(len(weights)), key=lambda i: (-(total * weights[i] % whole), i))
    for i in order[:left]:
        shares[i] += 1
    return shares


def create_arrangement(
    session: Session,
    *,
    account_ids: Sequence[int],
    request: Any,
    as_of: date,
    created_by_id: int | None = None,
    agreed_on: date | None = None,
    policy: ArrangementPolicy | None = None,
) -> Arrangement:
    """Store an agreed plan. Within policy and below every approval threshold it is ``active``; otherwise
    ``pending_approval`` until a supervisor decides. Waivers are split over the accounts per component.

    An account can be in one live plan at a time; a new plan on a case clears its re-negotiation marker.
    """
    policy = policy or load_policy()
    accounts = _accounts(session, account_ids)
    if created_by_id is not None:
        get_user(session, created_by_id)
    ids = [a.id for a in accounts]
    busy = session.scalar(
        select(Arrangement.id)
        .join(ArrangementAccount, ArrangementAccount.arrangement_id == Arrangement.id)
        .where(ArrangementAccount.account_id.in_(ids), Arrangement.status.in_(LIVE_STATUSES))
    )
    if busy is not None:
        raise Conflict(
            f"账户已在方案 {busy} 中 / an account is already in live plan {busy}",
            code="account_in_live_plan",
            details={"arrangement_id": busy},
        )
    q = quote(request, balances_of(accounts), policy, as_of)
    case_id = accounts[0].case_id
    plan = Arrangement(
        portfolio_id=accounts[0].portfolio_id,
        case_id=case_id,
        kind=q.kind.value,
        status=ArrangementStatus.PROPOSED,
        currency=q.currency,
        quoted_on=as_of,
        agreed_on=agreed_on or as_of,
        request=request.model_dump(mode="json"),
        policy_name=q.policy_name,
        policy_version=q.policy_version,
        balance_minor=q.balance_minor,
        waived_minor=q.waived_minor,
        payable_minor=q.payable_minor,
        remaining_minor=q.remaining_minor,
        discount_bps=q.discount_bps,
        within_policy=q.within_policy,
        requires_approval=q.requires_approval,
        approval_reasons=[
            {"code": r.code, "message_zh": r.message_zh, "message_en": r.message_en}
            for r in q.approval_reasons
        ],
        accrual_paused=q.accrual_paused,
        asset_description=q.asset_description,
        asset_value_minor=q.asset_value_minor,
        created_by_id=created_by_id,
        paid_minor=0,
    )
    plan.accounts = [ArrangementAccount(account_id=a.id) for a in accounts]
    plan.instalments = [
        ArrangementInstalment(seq=s.seq, due_on=s.due_on, amount_minor=s.amount_minor, kind=s.kind.value)
        for s in q.schedule
    ]
    waivers: list[ArrangementWaiver] = []
    for component, amount in q.waiver_by_component.items():
        if amount <= 0:
            continue
        weights = [_component_balances(a)[component] for a in accounts]
        for account, share in zip(accounts, _split_by_weight(amount, weights), strict=True):
            if share > 0:
                waivers.append(
                    ArrangementWaiver(account_id=account.id, component=component.value, amount_minor=share)
                )
    plan.waivers = waivers
    session.add(plan)
    session.flush()
    # proposed -> active within policy, -> pending_approval beyond it
    plan.status = ArrangementStatus.PENDING_APPROVAL if q.requires_approval else ArrangementStatus.ACTIVE
    case = session.get(Case, case_id)
    assert case is not None
    case.needs_renegotiation_since = None
    session.flush()
    return plan


def get_arrangement(session: Session, *, arrangement_id: int) -> Arrangement:
    """A stored plan, or NotFound."""
    plan = session.get(Arrangement, arrangement_id)
    if plan is None:
        raise NotFound(
            f"还款方案不存在：{arrangement_id} / arrangement {arrangement_id} not found",
            code="arrangement_not_found",
        )
    return plan


def _decide(
    session: Session, *, arrangement_id: int, user_id: int, reason: str | None, at: datetime, approve: bool
) -> Arrangement:
    plan = get_arrangement(session, arrangement_id=arrangement_id)
    policy = load_policy(plan.policy_name)
    roles = {policy.approval.approver_role, Role.ADMIN}
    require_role(session, user_id=user_id, roles=roles, action="审批还款方案 / decide on an arrangement")
    if plan.status != ArrangementStatus.PENDING_APPROVAL:
        raise Conflict(
            f"方案状态为 {plan.status}，无需审批 / arrangement is {plan.status}, not pending approval",
            code="not_pending_approval",
        )
    if not approve and not (reason and reason.strip()):
        raise ValidationFailed("驳回须说明原因 / a rejection needs a reason", code="reason_required")
    session.add(
        Approval(
            subject_kind="arrangement",
            subject_id=plan.id,
            user_id=user_id,
            decided_at=clock.as_utc(at),
            decision="approved" if approve else "rejected",
            reason=reason,
        )
    )
    plan.status = ArrangementStatus.ACTIVE if approve else ArrangementStatus.REJECTED
    session.flush()
    return plan


def approve_arrangement(
    session: Session, *, arrangement_id: int, user_id: int, at: datetime, reason: str | None = None
) -> Arrangement:
    """A supervisor (the policy's approver role, or admin) approves a pending plan; it becomes active."""
    return _decide(
        session, arrangement_id=arrangement_id, user_id=user_id, reason=reason, at=at, approve=True
    )


def reject_arrangement(
    session: Session, *, arrangement_id: int, user_id: int, reason: str, at: datetime
) -> Arrangement:
    """A supervisor rejects a pending plan, with a reason."""
    return _decide(
        session, arrangement_id=arrangement_id, user_id=user_id, reason=reason, at=at, approve=False
    )


def approvals(session: Session, *, subject_kind: str, subject_id: int) -> list[Approval]:
    """Decisions taken on one subject, oldest first."""
    return list(
        session.scalars(
            select(Approval)
            .where(Approval.subject_kind == subject_kind, Approval.subject_id == subject_id)
            .order_by(Approval.id)
        )
    )


@dataclass(frozen=True, slots=True)
class PlanRefresh:
    """Outcome of `refresh_arrangements`: plans evaluated, and the ids newly breached or completed."""

    evaluated: int
    breached: tuple[int, ...]
    completed: tuple[int, ...]


def refresh_arrangements(
    session: Session,
    *,
    portfolio_id: int,
    as_of: date,
    payments: pl.DataFrame | None = None,
    policy: ArrangementPolicy | None = None,
) -> PlanRefresh:
    """Evaluate every active plan of a portfolio on ``as_of`` against ``payments``, set-based.

    Payments on a plan's accounts from its agreement date count towards it. A breached plan is marked
    ``breached`` and its case gets ``needs_renegotiation_since`` (the breach date) so the daily run re-opens
    negotiation; a fully paid plan is ``completed``. Re-running for the same date changes nothing.

    ``payments`` defaults to the money the ledger received per account through ``as_of``.
    """
    if payments is None:
        payments = _ledger_payments(session, portfolio_id=portfolio_id, through=as_of)
    policy = policy or load_policy()
    plan_rows = session.execute(
        select(Arrangement.id, Arrangement.case_id, Arrangement.agreed_on).where(
            Arrangement.portfolio_id == portfolio_id, Arrangement.status == ArrangementStatus.ACTIVE
        )
    ).all()
    if not plan_rows:
        return PlanRefresh(0, (), ())
    plans = pl.DataFrame(
        [tuple(r) for r in plan_rows],
        schema={"plan_id": pl.Int64, "case_id": pl.Int64, "agreed_on": pl.Date},
        orient="row",
    )
    plan_ids = plans["plan_id"].to_list()
    schedule = pl.DataFrame(
        [
            tuple(r)
            for r in session.execute(
                select(
                    ArrangementInstalment.arrangement_id,
                    ArrangementInstalment.seq,
                    ArrangementInstalment.due_on,
                    ArrangementInstalment.amount_minor,
                ).where(ArrangementInstalment.arrangement_id.in_(plan_ids))
            )
        ],
        schema={"plan_id": pl.Int64, "seq": pl.Int64, "due_on": pl.Date, "amount_minor": pl.Int64},
        orient="row",
    )
    links = pl.DataFrame(
        [
            tuple(r)
            for r in session.execute(
                select(ArrangementAccount.arrangement_id, ArrangementAccount.account_id).where(
                    ArrangementAccount.arrangement_id.in_(plan_ids)
                )
            )
        ],
        schema={"plan_id": pl.Int64, "account_id": pl.Int64},
        orient="row",
    )
    plan_payments = (
        _payments(payments)
        .join(links, on="account_id")
        .join(plans.select("plan_id", "agreed_on"), on="plan_id")
        .filter(pl.col("received_on") >= pl.col("agreed_on"))
        .select("plan_id", "received_on", "amount_minor")
    )
    lines = breach.instalment_status_frame(
        schedule, plan_payments, as_of=as_of, breach_days=policy.breach_days
    )
    status = breach.plan_status_frame(schedule, plan_payments, as_of=as_of, breach_days=policy.breach_days)
    instalment_ids = {
        (plan_id, seq): iid
        for iid, plan_id, seq in session.execute(
            select(
                ArrangementInstalment.id, ArrangementInstalment.arrangement_id, ArrangementInstalment.seq
            ).where(ArrangementInstalment.arrangement_id.in_(plan_ids))
        )
    }
    session.execute(
        update(ArrangementInstalment),
        [
            {
                "id": instalment_ids[(r["plan_id"], r["seq"])],
                "status": r["status"],
                "paid_minor": r["paid_minor"],
                "paid_on": r["paid_on"],
            }
            for r in lines.iter_rows(named=True)
        ],
    )
    rows = []
    breached: list[int] = []
    completed: list[int] = []
    for r in status.iter_rows(named=True):
        rows.append(
            {
                "id": r["plan_id"],
                "status": r["status"],
                "paid_minor": r["paid_minor"],
                "breach_on": r["breach_on"],
                "breached_seq": r["breached_seq"],
                "completed_on": r["completed_on"],
                "evaluated_on": as_of,
            }
        )
        if r["status"] == breach.PlanState.BREACHED.value:
            breached.append(r["plan_id"])
        elif r["status"] == breach.PlanState.COMPLETED.value:
            completed.append(r["plan_id"])
    session.execute(update(Arrangement), rows)
    breach_days = status.filter(pl.col("status") == breach.PlanState.BREACHED.value).join(
        plans.select("plan_id", "case_id"), on="plan_id"
    )
    by_case = breach_days.group_by("case_id").agg(pl.col("breach_on").min())
    for case_id, breach_on in by_case.iter_rows():
        session.execute(
            update(Case)
            .where(Case.id == case_id, Case.needs_renegotiation_since.is_(None))
            .values(needs_renegotiation_since=breach_on)
        )
    _expire_loaded(session, Arrangement, ArrangementInstalment)
    return PlanRefresh(len(rows), tuple(sorted(breached)), tuple(sorted(completed)))


def settlement_waivers(session: Session, *, arrangement_id: int) -> dict[int, dict[Component, int]]:
    """What a plan waives, per account and component, not yet posted: the ledger posts these when a
    settlement is kept (and then stamps ``arrangement_waiver.posted_at``)."""
    out: dict[int, dict[Component, int]] = {}
    for waiver in session.scalars(
        select(ArrangementWaiver)
        .where(ArrangementWaiver.arrangement_id == arrangement_id, ArrangementWaiver.posted_at.is_(None))
        .order_by(ArrangementWaiver.id)
    ):
        out.setdefault(waiver.account_id, {})[Component(waiver.component)] = waiver.amount_minor
    return out


WAIVER_RULE = "settlement"
ACCRUAL_WAIVER_RULE = "settlement_accrual"


@dataclass(frozen=True, slots=True)
class KeptSettlement:
    """One kept plan whose waiver was posted: how much, and what the accounts still owe afterwards."""

    arrangement_id: int
    agreed_minor: int
    accrued_minor: int
    postings: int
    closed_account_ids: tuple[int, ...]
    residue_minor: dict[int, int]


def post_kept_settlements(
    session: Session, *, portfolio_id: int, now: datetime, policy: ArrangementPolicy | None = None
) -> list[KeptSettlement]:
    """Post the waivers of every completed plan whose waivers are not yet posted (a kept settlement).

    Component by component (`settlement.kept_settlement_waiver`), as ``waiver`` postings dated the day the
    plan was completed, rule id ``settlement:<plan id>`` (accrual after the agreement:
    ``settlement_accrual:<plan id>``). An account the waiver takes to zero is ``settled``. Each waiver row
    is stamped ``posted_at`` and ``posted_minor``, so running again posts nothing (invariant 4).
    """
    from arrears.arrangements.settlement import kept_settlement_waiver
    from arrears.ledger import postings as core
    from arrears.ledger import service as ledger_service
    from arrears.models import Posting

    plan_ids = list(
        session.scalars(
            select(Arrangement.id)
            .where(
                Arrangement.portfolio_id == portfolio_id,
                Arrangement.status == ArrangementStatus.COMPLETED,
                Arrangement.id.in_(
                    select(ArrangementWaiver.arrangement_id).where(ArrangementWaiver.posted_at.is_(None))
                ),
            )
            .order_by(Arrangement.id)
        )
    )
    out: list[KeptSettlement] = []
    for plan_id in plan_ids:
        plan = get_arrangement(session, arrangement_id=plan_id)
        plan_policy = policy or load_policy(plan.policy_name)
        accounts = _accounts(session, account_ids_of(plan))
        ids = [a.id for a in accounts]
        unopened = sorted({a.debtor_id for a in accounts if a.ledger_opened_on is None})
        if unopened:
            ledger_service.ensure_opening_postings(session, portfolio_id=portfolio_id, debtor_ids=unopened)
        for account in accounts:  # bulk ledger writes bypass the identity map
            session.refresh(account)
        planned: dict[int, dict[Component, int]] = {}
        for waiver in plan.waivers:
            if waiver.posted_at is None:
                planned.setdefault(waiver.account_id, {})[Component(waiver.component)] = waiver.amount_minor
        accrued: dict[int, dict[Component, int]] = {}
        for account_id, component, amount in session.execute(
            select(Posting.account_id, Posting.component, func.sum(Posting.amount_minor))
            .where(
                Posting.account_id.in_(ids),
                Posting.kind == core.PostingKind.ACCRUAL.value,
                Posting.effective_date > plan.agreed_on,
            )
            .group_by(Posting.account_id, Posting.component)
        ):
            if component is not None:
                accrued.setdefault(int(account_id), {})[Component(component)] = int(amount or 0)
        result = kept_settlement_waiver(
            planned,
            {a.id: balances_of([a]).by_component for a in accounts},
            accrued,
            plan_policy.waiver_order,
        )
        day = plan.completed_on or plan.agreed_on
        entries = [
            core.Posting(
                account_id=account_id,
                component=component,
                amount_minor=-amount,
                kind=core.PostingKind.WAIVER,
                effective_date=day,
                rule_id=f"{rule}:{plan.id}",
            )
            for part, rule in ((result.agreed, WAIVER_RULE), (result.accrued, ACCRUAL_WAIVER_RULE))
            for account_id, by in sorted(part.items())
            for component in Component
            if (amount := by.get(component, 0)) > 0
        ]
        rows = ledger_service.post_adjustments(session, portfolio_id=portfolio_id, postings=entries)
        posted: dict[tuple[int, str], int] = {}
        for entry in entries:
            key = (entry.account_id, str(entry.component))
            posted[key] = posted.get(key, 0) - entry.amount_minor
        by_key = {(w.account_id, w.component): w for w in plan.waivers}
        for key in posted:
            if key not in by_key:  # moved here from a component payments had already paid down
                by_key[key] = ArrangementWaiver(account_id=key[0], component=key[1], amount_minor=0)
                plan.waivers.append(by_key[key])
        moment = clock.as_utc(now)
        for key, waiver in by_key.items():
            if waiver.posted_at is None:
                waiver.posted_at, waiver.posted_minor = moment, posted.get(key, 0)
        session.flush()
        closed = tuple(a.id for a in accounts if _settled(session, a.id))
        out.append(
            KeptSettlement(
                arrangement_id=plan.id,
                agreed_minor=result.agreed_minor,
                accrued_minor=result.accrued_minor,
                postings=len(rows),
                closed_account_ids=closed,
                residue_minor=result.residue_minor,
            )
        )
    return out


def _settled(session: Session, account_id: int) -> bool:
    status = session.scalar(select(Account.status).where(Account.id == account_id))
    return status == "settled"


def cases_needing_renegotiation(session: Session, *, portfolio_id: int) -> list[tuple[int, date]]:
    """Cases whose plan was breached and not yet re-negotiated, with the breach date."""
    rows = session.execute(
        select(Case.id, Case.needs_renegotiation_since)
        .where(Case.portfolio_id == portfolio_id, Case.needs_renegotiation_since.is_not(None))
        .order_by(Case.id)
    ).all()
    return [(cid, since) for cid, since in rows if since is not None]


def list_arrangements(session: Session, *, case_id: int) -> list[Arrangement]:
    """Plans of a case, newest first."""
    return list(
        session.scalars(
            select(Arrangement).where(Arrangement.case_id == case_id).order_by(Arrangement.id.desc())
        )
    )


def account_ids_of(plan: Arrangement) -> list[int]:
    """The accounts a plan covers."""
    return [link.account_id for link in plan.accounts]


def payments_frame(rows: Iterable[tuple[int, date, int]]) -> pl.DataFrame:
    """``(account_id, received_on, amount_minor)`` tuples as the payments frame the refreshes take."""
    return pl.DataFrame(list(rows), schema=PAYMENT_SCHEMA, orient="row")
