"""The daily run over the rest of the system: the ledger, promises and plans, limitation, holds, placements.

Accounts come in through the account import; promises, plans and payments through their own services; the
run then brings the portfolio up to the date (holds, placements, accrual, commitments, limitation) and
decides with what those left behind.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from sqlalchemy import func, select
from sqlalchemy.orm import Session
from strategy_builders import DAY0, Portfolio, Row, days, import_portfolio, make_collectors

from arrears.agencies import service as agencies
from arrears.arrangements import service as arrangements
from arrears.arrangements.quote import InstalmentRequest
from arrears.compliance.service import refresh_limitations
from arrears.holds import service as holds
from arrears.ledger import service as ledger
from arrears.models import (
    Account,
    AccountFlag,
    AccountLimitation,
    AccountStrategyState,
    AllocationEvent,
    Arrangement,
    Case,
    HoldEvent,
    OutboxMessage,
    Placement,
    Posting,
    Promise,
    StrategyDecision,
    StrategyRun,
    WorkItem,
)
from arrears.strategy import run as daily

ZONE = ZoneInfo("Asia/Shanghai")


def _now(as_of: date) -> datetime:
    """Local midnight of the date, in UTC (when the nightly run starts)."""
    return datetime.combine(as_of, time(0), tzinfo=ZONE).astimezone(UTC)


def _run(session: Session, p: Portfolio, as_of: date) -> daily.RunReport:
    report = daily.run_portfolio(session, portfolio=p.name, as_of=as_of, now=_now(as_of))
    assert report.status == "succeeded", report.outcome.errors
    return report


def _decision(session: Session, account_id: int, as_of: date) -> StrategyDecision | None:
    return session.scalars(
        select(StrategyDecision).where(
            StrategyDecision.account_id == account_id, StrategyDecision.as_of_date == as_of
        )
    ).one_or_none()


def _case(session: Session, account_id: int) -> Case:
    account = session.get(Account, account_id)
    assert account is not None
    case = session.get(Case, account.case_id)
    assert case is not None
    session.refresh(case)
    return case


def _portfolio_id(session: Session, p: Portfolio) -> int:
    account = session.get(Account, next(iter(p.ids.values())))
    assert account is not None
    return account.portfolio_id


def test_a_promise_broken_on_day_6_re_escalates_in_that_nights_run(session: Session, tmp_path: Path) -> None:
    p = import_portfolio(session, tmp_path, [Row("b", DAY0 - timedelta(days=1))], as_of=DAY0)
    make_collectors(session, 1)
    account_id = p.ids["b"]
    d = days(DAY0, 8)
    stages: list[str | None] = []
    for k, as_of in enumerate(d):
        if k == 3:  # the debtor promises on the phone to pay today (deadline: two days' grace)
            arrangements.record_promise(
                session,
                account_id=account_id,
                amount_minor=50_000,
                promised_on=as_of,
                made_on=as_of,
                channel="call",
            )
        _run(session, p, as_of)
        decision = _decision(session, account_id, as_of)
        assert decision is not None
        stages.append(decision.stage)
        if k == 6:
            assert decision.previous_stage == "promised" and decision.stage == "broken_promise"
            assert decision.actions == ["broken_promise.missed_sms"]
            assert _case(session, account_id).stage == "broken_promise"
    assert stages == [
        "gentle",
        "gentle",
        "gentle",
        "promised",
        "promised",
        "promised",
        "broken_promise",
        "broken_promise",
    ]
    promise = session.scalars(select(Promise).where(Promise.account_id == account_id)).one()
    assert promise.status == "broken" and promise.broken_on == d[6]
    run = session.scalars(
        select(StrategyRun).where(
            StrategyRun.portfolio_id == _portfolio_id(session, p), StrategyRun.as_of_date == d[6]
        )
    ).one()
    commitments = next(ph for ph in run.phases if ph["name"] == "commitments")
    assert commitments["counts"]["promises_broken"] == 1 and commitments["changes"] == 1


def test_a_missed_third_instalment_breaches_the_plan_and_the_run_plans_renegotiation(
    session: Session, tmp_path: Path
) -> None:
    p = import_portfolio(
        session, tmp_path, [Row("plan", DAY0 - timedelta(days=30), amount="6000.00")], as_of=DAY0
    )
    make_collectors(session, 1)
    account_id = p.ids["plan"]
    pid = _portfolio_id(session, p)
    plan = arrangements.create_arrangement(
        session,
        account_ids=[account_id],
        request=InstalmentRequest(count=6, frequency="weekly", first_on=DAY0 + timedelta(days=7)),
        as_of=DAY0,
    )
    assert plan.status == "active"
    due = [i.due_on for i in sorted(plan.instalments, key=lambda i: i.seq)]
    amounts = [i.amount_minor for i in sorted(plan.instalments, key=lambda i: i.seq)]
    assert len(due) == 6 and sum(amounts) == 600_000
    report = _run(session, p, DAY0)
    assert _decision(session, account_id, DAY0).stage == "arrangement"  # type: ignore[union-attr]
    assert report.outcome.action_counts == {"arrangement.confirmation_sms": 1}
    for seq in (0, 1):  # the first two instalments are paid on their due dates, through the ledger
        ledger.post_payment(
            session,
            portfolio_id=pid,
            account_id=account_id,
            amount_minor=amounts[seq],
            received_on=due[seq],
            reference=f"plan-{account_id}-{seq + 1}",
            now=_now(due[seq]),
        )
        _run(session, p, due[seq])
        assert _decision(session, account_id, due[seq]).stage == "arrangement"  # type: ignore[union-attr]
    # the third is never paid: the plan breaches once it is five days late (policy breach_days)
    breached_on = None
    for as_of in days(due[2], 7):
        _run(session, p, as_of)
        decision = _decision(session, account_id, as_of)
        assert decision is not None
        session.refresh(plan)
        if plan.status == "breached":
            breached_on = as_of
            assert decision.previous_stage == "arrangement" and decision.stage == "broken_promise"
            assert "broken_promise.renegotiation_call" in decision.actions
            break
        assert decision.stage == "arrangement"
    assert breached_on == due[2] + timedelta(days=5)  # policy breach_days
    assert _case(session, account_id).needs_renegotiation_since == breached_on
    call = session.scalars(
        select(WorkItem).where(
            WorkItem.account_id == account_id, WorkItem.action_key == "broken_promise.renegotiation_call"
        )
    ).one()
    assert call.kind == "call" and call.status == "open" and call.as_of_date == breached_on


def test_a_payment_in_full_exits_the_account_paid_and_ends_its_actions(
    session: Session, tmp_path: Path
) -> None:
    p = import_portfolio(
        session,
        tmp_path,
        [Row("paid", DAY0 - timedelta(days=10)), Row("other", DAY0 - timedelta(days=10))],
        as_of=DAY0,
    )
    make_collectors(session, 1)
    account_id = p.ids["paid"]
    pid = _portfolio_id(session, p)
    _run(session, p, DAY0)
    assert _decision(session, account_id, DAY0).stage == "intensive"  # type: ignore[union-attr]
    assert (
        session.scalar(select(func.count()).select_from(WorkItem).where(WorkItem.account_id == account_id))
        == 3  # call, field visit, third-party call
    )
    d1, d2, d3 = days(DAY0 + timedelta(days=1), 3)
    ledger.post_payment(
        session,
        portfolio_id=pid,
        account_id=account_id,
        amount_minor=100_000,
        received_on=d1,
        reference=f"full-{account_id}",
        now=_now(d1),
    )
    account = session.get(Account, account_id)
    assert account is not None and account.status == "settled"
    report = _run(session, p, d1)
    decision = _decision(session, account_id, d1)
    assert decision is not None
    assert decision.exit == "paid" and decision.stage is None and decision.actions == []
    assert decision.balance_minor == 0 and decision.previous_stage == "intensive"
    assert report.outcome.stage_counts.get("exit:paid") == 1
    case = _case(session, account_id)
    assert case.stage is None and case.assignee_id is None
    for as_of in (d2, d3):
        report = _run(session, p, as_of)
        assert report.outcome.accounts_evaluated == 1  # the other account only
        assert _decision(session, account_id, as_of) is None
    later = select(func.count()).where(
        OutboxMessage.account_id == account_id, OutboxMessage.as_of_date > DAY0
    )
    assert session.scalar(later.select_from(OutboxMessage)) == 0
    assert (
        session.scalar(
            select(func.count())
            .select_from(WorkItem)
            .where(WorkItem.account_id == account_id, WorkItem.as_of_date > DAY0)
        )
        == 0
    )
    # the day-0 tasks were cancelled by the next day's run, saying the account was paid
    open_items = (
        select(func.count())
        .select_from(WorkItem)
        .where(WorkItem.account_id == account_id, WorkItem.status == "open")
    )
    assert session.scalar(open_items) == 0
    calls = session.scalars(
        select(WorkItem).where(WorkItem.account_id == account_id, WorkItem.kind.in_(("call", "visit")))
    ).all()
    opened = [w for w in calls if w.rule_ids == []]  # the third-party call was blocked (CN-3)
    assert opened and all(w.status == "cancelled" for w in opened)
    assert all("left the strategy (paid)" in (w.last_reason or "") for w in opened)
    # the other account's day-0 call, still in its stage, simply expired
    other_calls = session.scalars(
        select(WorkItem.status).where(
            WorkItem.account_id == p.ids["other"], WorkItem.as_of_date == DAY0, WorkItem.kind == "call"
        )
    ).all()
    assert sorted(other_calls) == ["blocked", "expired"]  # its third-party call was blocked (CN-3)


def test_a_time_barred_account_gets_no_legal_referral_cn_22(session: Session, tmp_path: Path) -> None:
    p = import_portfolio(
        session,
        tmp_path,
        [
            Row(
                "barred", DAY0 - timedelta(days=4 * 365), amount="6000.00"
            ),  # three years passed, no interruption
            Row("live", DAY0 - timedelta(days=200), amount="6000.00"),
        ],
        as_of=DAY0,
    )
    make_collectors(session, 1)
    report = _run(session, p, DAY0)
    limitation = {
        row.account_id: row.time_barred
        for row in session.scalars(
            select(AccountLimitation).where(AccountLimitation.account_id.in_(p.ids.values()))
        )
    }
    assert limitation == {p.ids["barred"]: True, p.ids["live"]: False}
    barred = _decision(session, p.ids["barred"], DAY0)
    live = _decision(session, p.ids["live"], DAY0)
    assert barred is not None and live is not None
    assert live.stage == "legal" and live.actions == ["legal.referral"]
    assert barred.stage == "intensive" and not any(a.startswith("legal.") for a in barred.actions)
    assert report.outcome.action_counts["legal.referral"] == 1
    referrals = select(WorkItem.account_id).where(
        WorkItem.action_key == "legal.referral", WorkItem.account_id.in_(p.ids.values())
    )
    assert list(session.scalars(referrals)) == [p.ids["live"]]
    phase = next(ph for ph in session.get(StrategyRun, report.run_id).phases if ph["name"] == "limitation")  # type: ignore[union-attr]
    assert phase["status"] == "done" and phase["counts"]["time_barred"] == 1
    # the run takes the statuses from the refresh instead of reading them back: they are the stored ones
    pid = _portfolio_id(session, p)
    refreshed = refresh_limitations(session, portfolio_id=pid, as_of=DAY0 + timedelta(days=1))
    assert refreshed.statuses is not None
    stored = daily.load_limitations(session, f"a.portfolio_id = {pid}")
    assert refreshed.statuses.sort("account_id").equals(stored.sort("account_id"))
    assert dict(stored.iter_rows()) == {p.ids["barred"]: True, p.ids["live"]: False}


def _accrual_postings(session: Session, account_id: int) -> list[tuple[date, str]]:
    return [
        (d, c)
        for d, c in session.execute(
            select(Posting.effective_date, Posting.component)
            .where(Posting.account_id == account_id, Posting.kind == "accrual")
            .order_by(Posting.effective_date, Posting.component)
        )
    ]


def test_accrual_postings_appear_once_per_day_even_when_the_run_is_repeated(
    session: Session, tmp_path: Path
) -> None:
    p = import_portfolio(
        session,
        tmp_path,
        [Row("loan", DAY0 - timedelta(days=20), originated=DAY0 - timedelta(days=400), rate="18%")],
        as_of=DAY0,
    )
    make_collectors(session, 1)
    account_id = p.ids["loan"]
    d0, d1, d2, d3 = days(DAY0, 4)
    _run(session, p, d0)
    assert _accrual_postings(session, account_id) == []  # imported today: the file's balances hold today
    opened = session.scalar(
        select(func.count())
        .select_from(Posting)
        .where(Posting.account_id == account_id, Posting.rule_id == "opening")
    )
    assert opened == 1
    for as_of in (d1, d1, d3, d3):  # repeated, and a day skipped (caught up)
        _run(session, p, as_of)
    got = _accrual_postings(session, account_id)
    assert got == [(d, c) for d in (d1, d2, d3) for c in ("interest", "penalty")]
    # the decision's balance is the ledger's cached balance, postings included
    account = session.get(Account, account_id)
    assert account is not None
    session.refresh(account)
    total = sum(session.scalars(select(Posting.amount_minor).where(Posting.account_id == account_id)))
    cached = (
        account.principal_minor
        + account.interest_minor
        + account.penalty_minor
        + account.fees_minor
        + account.costs_minor
    )
    assert cached == total and cached > 100_000
    assert _decision(session, account_id, d3).balance_minor == cached  # type: ignore[union-attr]


def test_running_the_same_date_twice_writes_nothing_the_second_time(session: Session, tmp_path: Path) -> None:
    """Invariant 4, over every phase: a hold and a placement expire, a promise breaks, a plan breaches,
    interest accrues, limitation is refreshed -- and the second run of the date changes no row."""
    rows = [
        Row("promise", DAY0 - timedelta(days=5)),
        Row("plan", DAY0 - timedelta(days=40), amount="6000.00"),
        Row("hold", DAY0 - timedelta(days=5)),
        Row("placed", DAY0 - timedelta(days=60)),
        Row("loan", DAY0 - timedelta(days=20), originated=DAY0 - timedelta(days=400), rate="18%"),
    ]
    p = import_portfolio(session, tmp_path, rows, as_of=DAY0)
    make_collectors(session, 1)
    ids = p.ids
    arrangements.record_promise(
        session,
        account_id=ids["promise"],
        amount_minor=50_000,
        promised_on=DAY0,
        made_on=DAY0,
        channel="call",
    )
    arrangements.create_arrangement(
        session,
        account_ids=[ids["plan"]],
        request=InstalmentRequest(count=6, frequency="weekly", first_on=DAY0 + timedelta(days=1)),
        as_of=DAY0,
    )
    holds.place_hold(
        session,
        account_id=ids["hold"],
        kind="complaint",
        reason_code="complaint_review",
        at=_now(DAY0),
        expires_on=DAY0 + timedelta(days=3),
    )
    agency = agencies.create_agency(session, name=f"催收公司-{p.name}", listed=True)
    agencies.place_cases(
        session,
        agency_id=agency.id,
        case_ids=[_case(session, ids["placed"]).id],
        placed_on=DAY0,
        expires_on=DAY0 + timedelta(days=5),
    )
    _run(session, p, DAY0)
    placed_case = _case(session, ids["placed"])
    assert placed_case.assignee_id is None and placed_case.stage == "intensive"  # the agency works it (PI-4)
    target = DAY0 + timedelta(days=8)  # promise broken, plan breached, hold expired, placement ended
    scope = list(ids.values())
    case_ids = [_case(session, a).id for a in scope]

    def state() -> dict[str, object]:
        session.expire_all()
        return {
            "postings": session.execute(
                select(Posting.account_id, Posting.effective_date, Posting.component, Posting.amount_minor)
                .where(Posting.account_id.in_(scope))
                .order_by(Posting.id)
            ).all(),
            "promises": session.execute(
                select(Promise.id, Promise.status, Promise.evaluated_on, Promise.updated_at).where(
                    Promise.account_id.in_(scope)
                )
            ).all(),
            "plans": session.execute(
                select(Arrangement.id, Arrangement.status, Arrangement.evaluated_on).where(
                    Arrangement.case_id.in_(case_ids)
                )
            ).all(),
            "limitation": session.execute(
                select(
                    AccountLimitation.account_id, AccountLimitation.as_of, AccountLimitation.created_at
                ).where(AccountLimitation.account_id.in_(scope))
            ).all(),
            "flags": session.execute(
                select(AccountFlag.id, AccountFlag.cleared_at).where(AccountFlag.account_id.in_(scope))
            ).all(),
            "hold_events": session.scalar(
                select(func.count()).select_from(HoldEvent).where(HoldEvent.account_id.in_(scope))
            ),
            "placements": session.execute(
                select(Placement.id, Placement.recalled_on).where(Placement.case_id.in_(case_ids))
            ).all(),
            "accounts": session.execute(
                select(Account.id, Account.interest_minor, Account.penalty_minor, Account.status).where(
                    Account.id.in_(scope)
                )
            ).all(),
            "cases": session.execute(
                select(Case.id, Case.stage, Case.assignee_id, Case.needs_renegotiation_since).where(
                    Case.id.in_(case_ids)
                )
            ).all(),
            **{
                t.__tablename__: session.scalar(
                    select(func.count()).select_from(t).where(t.case_id.in_(case_ids))
                )
                for t in (StrategyDecision, OutboxMessage, WorkItem, AllocationEvent)
            },
        }

    first = _run(session, p, target)
    phases = {ph["name"]: ph for ph in session.get(StrategyRun, first.run_id).phases}  # type: ignore[union-attr]
    assert phases["release_holds"]["counts"] == {"released": 1}
    assert phases["recall_placements"]["counts"] == {"recalled": 1}
    assert phases["accrue"]["counts"]["postings"] > 0
    assert phases["commitments"]["counts"]["promises_broken"] == 1
    assert phases["commitments"]["counts"]["plans_breached"] == 1
    # no limitation event since the first date and no date passed: the limitation rows stay as they are
    assert phases["limitation"]["changes"] == 0
    assert all(phases[name]["changes"] > 0 for name in daily.PREPARE_PHASES if name != "limitation")
    assert _case(session, ids["placed"]).assignee_id is not None  # recalled: allocated again
    before = state()
    second = _run(session, p, target)
    assert second.changes == 0 and second.prepared_changes == 0
    assert state() == before
    phases = {ph["name"]: ph for ph in session.get(StrategyRun, second.run_id).phases}  # type: ignore[union-attr]
    assert all(phases[name]["changes"] == 0 for name in daily.PREPARE_PHASES)


def test_a_dry_run_skips_the_preparation_phases_and_writes_nothing(session: Session, tmp_path: Path) -> None:
    p = import_portfolio(
        session,
        tmp_path,
        [Row("loan", DAY0 - timedelta(days=20), originated=DAY0 - timedelta(days=400), rate="18%")],
        as_of=DAY0,
    )
    _run(session, p, DAY0)
    account_id = p.ids["loan"]
    postings = session.scalar(
        select(func.count()).select_from(Posting).where(Posting.account_id == account_id)
    )
    settings = daily.resolve_settings(session, portfolio=p.name)
    phases = daily.prepare_portfolio(
        session, settings, as_of=DAY0 + timedelta(days=3), now=_now(DAY0), dry_run=True
    )
    assert [ph["status"] for ph in phases] == ["skipped"] * len(daily.PREPARE_PHASES)
    report = daily.run_portfolio(
        session, portfolio=p.name, as_of=DAY0 + timedelta(days=3), now=_now(DAY0), dry_run=True
    )
    assert report.status == "dry_run" and report.prepared_changes == 0
    assert (
        session.scalar(select(func.count()).select_from(Posting).where(Posting.account_id == account_id))
        == postings
    )


def test_a_recent_right_party_contact_holds_back_the_field_visit_cn_10(
    session: Session, tmp_path: Path
) -> None:
    from arrears.compliance.schemas import Outcome
    from arrears.contacts import service as contacts
    from arrears.enums import Channel
    from arrears.models import ContactPoint

    p = import_portfolio(
        session,
        tmp_path,
        [Row("reached", DAY0 - timedelta(days=10)), Row("unreached", DAY0 - timedelta(days=10))],
        as_of=DAY0 - timedelta(days=1),
    )
    make_collectors(session, 1)
    reached = session.get(Account, p.ids["reached"])
    assert reached is not None
    phone = session.scalars(
        select(ContactPoint).where(
            ContactPoint.debtor_id == reached.debtor_id,
            ContactPoint.kind == "mobile",
            ContactPoint.owner_relation == "self",
        )
    ).one()
    # yesterday at 10:00 the debtor answered and talked
    recorded = contacts.record_attempt(
        session,
        case_id=reached.case_id,
        contact_point_id=phone.id,
        channel=Channel.CALL,
        started_at=datetime.combine(DAY0 - timedelta(days=1), time(10), tzinfo=ZONE),
        outcome=Outcome.RIGHT_PARTY,
        collector="bank",
    )
    assert not recorded.blocked
    settings = daily.resolve_settings(session, portfolio=p.name)
    snapshot, _history = daily.load_snapshot(session, settings, as_of=DAY0)
    since = dict(zip(snapshot["account_id"], snapshot["days_since_rpc"], strict=True))
    assert since == {p.ids["reached"]: 1, p.ids["unreached"]: None}
    _run(session, p, DAY0)
    got = {ref: _decision(session, i, DAY0) for ref, i in p.ids.items()}
    assert got["reached"].actions == ["intensive.call"]  # type: ignore[union-attr]
    assert got["unreached"].actions == [  # type: ignore[union-attr]
        "intensive.call",
        "intensive.field_visit",
        "intensive.third_party_call",
    ]


def test_a_state_row_is_written_only_when_the_accounts_place_moves(session: Session, tmp_path: Path) -> None:
    rows = [Row(f"d{k}", DAY0 - timedelta(days=k)) for k in (1, 2, 3, 4, 5, 6, 30, 45)]
    p = import_portfolio(session, tmp_path, rows, as_of=DAY0)
    make_collectors(session, 1)
    first = _run(session, p, DAY0)
    second = _run(session, p, DAY0 + timedelta(days=1))
    moved, stayed = 0, 0
    for account_id in p.ids.values():
        before = _decision(session, account_id, DAY0)
        after = _decision(session, account_id, DAY0 + timedelta(days=1))
        state = session.get(AccountStrategyState, account_id)
        assert before is not None and after is not None and state is not None
        session.refresh(state)
        assert (state.stage, state.stage_entered_on) == (after.stage, after.stage_entered_on)
        if (after.stage, after.stage_entered_on) == (before.stage, before.stage_entered_on):
            stayed += 1
            assert (state.changed_on, state.run_id) == (DAY0, first.run_id)
        else:
            moved += 1
            assert (state.changed_on, state.run_id) == (DAY0 + timedelta(days=1), second.run_id)
    assert moved and stayed
    # the accounts decided for the date are told by their decisions: a third run of it decides none
    assert _run(session, p, DAY0 + timedelta(days=1)).outcome.accounts_evaluated == 0
