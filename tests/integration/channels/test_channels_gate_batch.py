"""The outbox's batch gate gives the same decisions as the one-contact gate, and the batch dispatch keeps the
contact record's hash chain. Runs on SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date, time

import pytest
from channel_servers import GatewayServer, SmtpServer
from channels_db_builders import (
    Debt,
    make_debt,
    make_portfolio,
    queue_message,
    save_reminders,
    savepoint_factory,
    sh,
)
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session
from test_channels_outbox import sms_sender, smtp_sender

from arrears.channels import outbox
from arrears.compliance import batch as gate_batch
from arrears.compliance import service as compliance_service
from arrears.compliance.rules import decide
from arrears.compliance.schemas import ConsentScope, Outcome, Purpose
from arrears.contacts import service as contacts_service
from arrears.enums import Channel
from arrears.models import (
    AccountFlag,
    AccountLimitation,
    ContactAttempt,
    ContactPoint,
    Creditor,
    Debtor,
    OutboxMessage,
)


@pytest.fixture
def world(engine: Engine) -> Iterator[tuple]:
    with savepoint_factory(engine) as (session, factory):
        portfolio = make_portfolio(session)
        save_reminders(session, portfolio)
        session.commit()
        yield session, factory, portfolio


def _debts(session: Session, portfolio) -> dict[str, Debt]:  # type: ignore[no-untyped-def]
    """Debtors in every situation the gate reads from the database."""
    d = {name: make_debt(session, portfolio, n=i) for i, name in enumerate(
        ["plain", "hold", "expired_hold", "opted_out", "third_party", "consented", "inconvenient", "history",
         "time_barred", "unrefreshed", "numbers_invalid", "own_zone"]
    )}  # fmt: skip
    session.add(AccountFlag(account_id=d["hold"].account.id, case_id=d["hold"].case.id, kind="complaint",
                            reason="投诉处理中"))  # fmt: skip
    session.add(AccountFlag(account_id=d["expired_hold"].account.id, case_id=d["expired_hold"].case.id,
                            kind="dispute", expires_on=date(2026, 3, 1)))  # fmt: skip
    contacts_service.opt_out_channel(
        session, debtor_id=d["opted_out"].case.debtor_id, channel=Channel.SMS, at=sh(2026, 3, 1)
    )
    friend = ContactPoint(debtor_id=d["third_party"].case.debtor_id, kind="mobile", value="+8613700001111",
                          owner_relation="friend", owner_name="李四")  # fmt: skip
    session.add(friend)
    session.flush()
    contacts_service.add_consent(
        session, debtor_id=d["consented"].case.debtor_id, scope=ConsentScope.QUIET_HOURS,
        granted_at=sh(2026, 3, 1), contact_point_id=d["consented"].mobile.id,
    )  # fmt: skip
    contacts_service.add_inconvenient_time(
        session, debtor_id=d["inconvenient"].case.debtor_id, starts=time(9, 0), ends=time(12, 0)
    )
    h = d["history"]
    for hour in (9, 11, 14):
        contacts_service.record_attempt(
            session, case_id=h.case.id, contact_point_id=h.mobile.id, channel=Channel.CALL,
            started_at=sh(2026, 3, 4, hour), outcome=Outcome.NOT_CONNECTED, collector="in_house",
        )  # fmt: skip
    sent = contacts_service.record_attempt(
        session, case_id=h.case.id, contact_point_id=h.mobile.id, channel=Channel.SMS,
        started_at=sh(2026, 3, 4, 16), outcome=Outcome.SENT, collector="in_house",
    )  # fmt: skip
    contacts_service.correct_attempt(session, attempt_id=sent.attempt.id, changes={"outcome": Outcome.FAILED})
    for name, debt in d.items():
        if name == "unrefreshed":
            continue  # no stored limitation date: the gate computes it
        barred = name == "time_barred"
        session.add(AccountLimitation(
            account_id=debt.account.id, portfolio_id=portfolio.id, as_of=date(2026, 3, 4),
            limitation_on=date(2026, 1, 1) if barred else date(2029, 3, 1), time_barred=barred, rule_id="CN-20",
            explanation_zh="测试", explanation_en="test",
        ))  # fmt: skip
    d["numbers_invalid"].mobile.is_valid = False
    own = session.get(Debtor, d["own_zone"].case.debtor_id)
    assert own is not None
    own.timezone = "Asia/Urumqi"
    session.flush()
    return d


def test_gate_batch_matches_single_check(world: tuple) -> None:
    session, _, portfolio = world
    debts = _debts(session, portfolio)
    other = make_debt(session, portfolio, n=99)
    creditor = session.get(Creditor, portfolio.creditor_id)
    assert creditor is not None
    text = f"【{creditor.name}】王小明您好，您的欠款尚未到账，请尽快还款。咨询：{creditor.phone}"
    requests = []
    for name, debt in debts.items():
        for channel, point in ((Channel.SMS, debt.mobile.id), (Channel.EMAIL, debt.email.id),
                               (Channel.CALL, debt.mobile.id)):  # fmt: skip
            requests.append(gate_batch.ContactRequest(
                key=(name, channel), case_id=debt.case.id, contact_point_id=point, channel=channel,
                collector="in_house", account_ids=(debt.account.id,),
                text=text,
            ))  # fmt: skip
    third = debts["third_party"]
    friend_id = session.scalar(
        select(ContactPoint.id).where(
            ContactPoint.debtor_id == third.case.debtor_id, ContactPoint.owner_relation == "friend"
        )
    )
    requests.append(gate_batch.ContactRequest(
        key="friend", case_id=third.case.id, contact_point_id=friend_id, channel=Channel.SMS,
        collector="in_house", purpose=Purpose.MESSAGE_PASSING, text="请转告王小明回电 400-800-1234",
    ))  # fmt: skip
    stray = gate_batch.ContactRequest(
        key="stray", case_id=debts["plain"].case.id, contact_point_id=other.mobile.id, channel=Channel.SMS,
        collector="in_house",
    )  # fmt: skip
    requests.append(stray)
    compared = 0
    for at in (sh(2026, 3, 5, 10, 30), sh(2026, 3, 5, 22, 1), sh(2026, 3, 5, 7, 59)):
        batch = gate_batch.gate_inputs_many(session, requests=requests, at=at)
        assert batch.errors["stray"].code == "contact_point_not_in_case"
        for request in requests:
            if request.key == "stray":
                continue
            inputs = batch.for_key(request.key)
            single = compliance_service.gate_inputs(
                session, case_id=request.case_id, contact_point_id=request.contact_point_id,
                channel=request.channel, at=at, collector=request.collector, account_ids=request.account_ids,
                purpose=request.purpose, text=request.text,
            )  # fmt: skip
            assert inputs.context == single.context, request.key
            assert inputs.attempt == single.attempt, request.key
            assert sorted(inputs.history, key=repr) == sorted(single.history, key=repr), request.key
            assert decide(inputs.attempt, inputs.history, inputs.context, inputs.pack) == decide(
                single.attempt, single.history, single.context, single.pack
            ), request.key
            compared += 1
    assert compared == 3 * (3 * len(debts) + 1)
    # the situations do reach different answers (the comparison is not between empty contexts)
    batch = gate_batch.gate_inputs_many(session, requests=requests, at=sh(2026, 3, 5, 10, 30))
    outcomes = {
        key: decide(i.attempt, i.history, i.context, i.pack).rule_ids for key, i in batch.inputs.items()
    }
    assert outcomes[("plain", Channel.SMS)] == outcomes[("expired_hold", Channel.SMS)] == ()
    assert outcomes[("hold", Channel.EMAIL)] == ("ALL-1",)
    assert outcomes[("opted_out", Channel.SMS)] == ("ALL-2",) and outcomes[("opted_out", Channel.EMAIL)] == ()
    assert outcomes[("inconvenient", Channel.SMS)] == ("CN-1",)


def test_batch_dispatch_appends_each_case_in_order_and_the_chain_holds(
    world: tuple, smtp_server: SmtpServer, sms_gateway: GatewayServer
) -> None:
    session, factory, portfolio = world
    debts = [make_debt(session, portfolio, n=i) for i in range(12)]
    earlier = contacts_service.record_attempt(
        session, case_id=debts[0].case.id, contact_point_id=debts[0].mobile.id, channel=Channel.CALL,
        started_at=sh(2026, 3, 4, 10), outcome=Outcome.NOT_CONNECTED, collector="in_house",
    )  # fmt: skip
    rows = [
        queue_message(session, debt, channel=channel, planned_for=sh(2026, 3, 5, 10))
        for debt in debts
        for channel in ("sms", "email")
    ]
    session.commit()
    senders = {Channel.SMS: sms_sender(sms_gateway), Channel.EMAIL: smtp_sender(smtp_server)}
    report = outbox.dispatch(factory, now=sh(2026, 3, 5, 10, 5), senders=senders, portfolio_id=portfolio.id)
    assert report.claimed == report.sent == len(rows)
    assert contacts_service.verify_chain(session, case_ids=[d.case.id for d in debts]).ok
    for debt in debts:
        attempts = list(
            session.scalars(
                select(ContactAttempt)
                .where(ContactAttempt.case_id == debt.case.id)
                .order_by(ContactAttempt.seq)
            )
        )
        offset = 1 if debt is debts[0] else 0
        assert [a.seq for a in attempts] == list(range(1, 3 + offset))
        assert [a.channel for a in attempts[offset:]] == ["sms", "email"]  # outbox order within the case
        assert attempts[offset].prev_hash == (earlier.attempt.hash if offset else "0" * 64)
    linked = session.execute(
        select(OutboxMessage.contact_attempt_id, ContactAttempt.case_id, OutboxMessage.case_id)
        .join(ContactAttempt, ContactAttempt.id == OutboxMessage.contact_attempt_id)
        .where(OutboxMessage.portfolio_id == portfolio.id)
    ).all()
    assert len(linked) == len(rows) and all(a == b for _, a, b in linked)
    # a quiet-hours pass over the same kind of batch blocks everything, each with its one attempt
    late = [queue_message(session, debt, channel="sms", planned_for=sh(2026, 3, 5, 21, 50)) for debt in debts]
    session.commit()
    blocked = outbox.dispatch(factory, now=sh(2026, 3, 5, 22, 1), senders=senders, portfolio_id=portfolio.id)
    assert blocked.blocked == len(late) and blocked.sent == 0
    for row in late:
        session.refresh(row)
        assert row.status == "blocked" and "CN-1" in row.rule_ids
    assert contacts_service.verify_chain(session, case_ids=[d.case.id for d in debts]).ok
