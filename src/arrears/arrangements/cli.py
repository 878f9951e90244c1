"""Case work on the command line: ``arrears hold``, ``promise``, ``plan``, ``legal`` and ``placement``.

Accounts are named by their external reference in a portfolio (``--portfolio``, needed when there are
several), users by username. Each command is one transaction.
"""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.table import Table
from sqlalchemy import select
from sqlalchemy.orm import Session

from arrears import clock
from arrears.errors import NotFound, ValidationFailed

if TYPE_CHECKING:  # polars is imported by the commands that read a file, not by every `arrears` command
    import polars as pl

hold_app = typer.Typer(help="Holds and disputes / 停催标记与异议", no_args_is_help=True)
promise_app = typer.Typer(help="Promises to pay / 承诺还款", no_args_is_help=True)
plan_app = typer.Typer(help="Repayment arrangements / 还款方案", no_args_is_help=True)
legal_app = typer.Typer(help="Legal cases and lawyer's letters / 法务案件与律师函", no_args_is_help=True)
placement_app = typer.Typer(help="Agencies and placements / 委外机构与委案", no_args_is_help=True)

PortfolioOpt = Annotated[str | None, typer.Option("--portfolio", help="Portfolio name / 资产包")]
UserOpt = Annotated[str, typer.Option("--user", help="Acting user's username / 操作人用户名")]


def _console() -> Any:
    from arrears.cli import console

    return console


def _friendly(fn: Any) -> Any:
    from arrears.cli import friendly

    return friendly(fn)


def _scope() -> Any:
    from arrears.cli import _engine
    from arrears.db import session_scope

    return session_scope(_engine())


def _day(text: str | None) -> date:
    return clock.parse_as_of(text)


def _portfolio_id(session: Session, name: str | None) -> int:
    from arrears.cli import _default_portfolio
    from arrears.portfolios import service

    return service.get_portfolio(session, name=name or _default_portfolio(session)).id


def _account_id(session: Session, portfolio: str | None, ref: str) -> int:
    from arrears.models import Account

    pid = _portfolio_id(session, portfolio)
    found = session.scalar(select(Account.id).where(Account.portfolio_id == pid, Account.external_ref == ref))
    if found is None:
        raise NotFound(f"账户不存在：{ref} / account {ref!r} not found", code="account_not_found")
    return int(found)


def _user_id(session: Session, username: str | None) -> int | None:
    from arrears.models import AppUser

    if username is None:
        return None
    found = session.scalar(select(AppUser.id).where(AppUser.username == username))
    if found is None:
        raise NotFound(f"用户不存在：{username} / user {username!r} not found", code="user_not_found")
    return int(found)


def _required_user(session: Session, username: str) -> int:
    uid = _user_id(session, username)
    assert uid is not None
    return uid


def _payments(session: Session, portfolio: str | None, path: Path | None) -> pl.DataFrame:
    """A payments CSV (``account_ref, received_on, amount``; amount in major units) as the service frame."""
    from arrears.arrangements.service import empty_payments, payments_frame
    from arrears.models import Account, Portfolio
    from arrears.money import parse_minor

    if path is None:
        return empty_payments()
    pid = _portfolio_id(session, portfolio)
    currency = session.scalar(select(Portfolio.currency).where(Portfolio.id == pid)) or "CNY"
    refs = dict(
        session.execute(select(Account.external_ref, Account.id).where(Account.portfolio_id == pid))
        .tuples()
        .all()
    )
    import polars as pl

    frame = pl.read_csv(path, infer_schema=False)
    rows = []
    for r in frame.iter_rows(named=True):
        if r["account_ref"] not in refs:
            raise NotFound(
                f"账户不存在：{r['account_ref']} / account {r['account_ref']!r} not found",
                code="account_not_found",
            )
        rows.append(
            (refs[r["account_ref"]], date.fromisoformat(r["received_on"]), parse_minor(r["amount"], currency))
        )
    return payments_frame(rows)


# --- holds ---------------------------------------------------------------------------------------------


@hold_app.command("place")
def hold_place(
    account: Annotated[str, typer.Argument(help="Account reference / 借据号")],
    kind: Annotated[str, typer.Option(help="dispute, cease, deceased, bankruptcy, complaint, legal_hold")],
    reason_code: Annotated[str, typer.Option(help="Reason code / 原因代码")],
    reason: Annotated[str | None, typer.Option(help="Free text / 说明")] = None,
    expires_on: Annotated[str | None, typer.Option(help="First day the hold no longer applies")] = None,
    user: Annotated[str | None, typer.Option(help="Username")] = None,
    portfolio: PortfolioOpt = None,
) -> None:
    """Put a hold on an account: collection contact stops until it is cleared."""

    @_friendly
    def run() -> None:
        from arrears.holds import service

        with _scope() as session:
            flag = service.place_hold(
                session,
                account_id=_account_id(session, portfolio, account),
                kind=kind,
                reason_code=reason_code,
                reason=reason,
                expires_on=date.fromisoformat(expires_on) if expires_on else None,
                user_id=_user_id(session, user),
                at=clock.now(),
            )
            _console().print(f"hold {flag.id} placed 已添加标记: {flag.kind} on {account}")

    run()


@hold_app.command("list")
def hold_list(
    account: Annotated[str, typer.Argument(help="Account reference / 借据号")],
    as_of: Annotated[str | None, typer.Option("--as-of")] = None,
    portfolio: PortfolioOpt = None,
) -> None:
    """Holds in force on an account."""

    @_friendly
    def run() -> None:
        from arrears.holds import service

        with _scope() as session:
            table = Table("id", "kind", "reason code", "reason", "expires", "since")
            for f in service.active_holds(
                session, as_of=_day(as_of), account_ids=[_account_id(session, portfolio, account)]
            ):
                table.add_row(
                    str(f.id),
                    f.kind,
                    f.reason_code or "",
                    f.reason or "",
                    str(f.expires_on or ""),
                    f.created_at.isoformat(),
                )
            _console().print(table)

    run()


@hold_app.command("clear")
def hold_clear(
    flag_id: int,
    user: UserOpt,
    reason: Annotated[str, typer.Option(help="Why the hold is cleared / 解除原因")],
) -> None:
    """Clear a hold (supervisor, compliance or admin; logged)."""

    @_friendly
    def run() -> None:
        from arrears.holds import service

        with _scope() as session:
            service.clear_hold(
                session, flag_id=flag_id, user_id=_required_user(session, user), reason=reason, at=clock.now()
            )
            _console().print(f"hold {flag_id} cleared 已解除")

    run()


@hold_app.command("release-expired")
def hold_release_expired(as_of: Annotated[str | None, typer.Option("--as-of")] = None) -> None:
    """Release every hold whose expiry date has come (logged)."""

    @_friendly
    def run() -> None:
        from arrears.holds import service

        with _scope() as session:
            released = service.release_expired_holds(session, as_of=_day(as_of), at=clock.now())
            _console().print(f"released 已到期解除: {len(released)}")

    run()


@hold_app.command("dispute")
def hold_dispute(
    account: Annotated[str, typer.Argument(help="Account reference / 借据号")],
    reason_code: Annotated[str, typer.Option(help="Reason code / 异议原因代码")],
    received_on: Annotated[str | None, typer.Option(help="Day the dispute was received")] = None,
    written: Annotated[bool, typer.Option("--written/--oral", help="Written dispute (US-7)")] = False,
    description: Annotated[str | None, typer.Option(help="What the debtor says")] = None,
    evidence: Annotated[list[Path] | None, typer.Option(help="Evidence file (repeatable)")] = None,
    user: Annotated[str | None, typer.Option(help="Username")] = None,
    portfolio: PortfolioOpt = None,
) -> None:
    """Record a dispute with evidence files: a dispute hold until it is resolved or cleared."""

    @_friendly
    def run() -> None:
        from arrears.holds import service

        files = []
        for path in evidence or []:
            if not path.is_file():
                raise ValidationFailed(f"文件不存在：{path} / no such file {path}", code="file_not_found")
            files.append(service.Evidence(path.name, path.read_bytes()))
        with _scope() as session:
            dispute = service.open_dispute(
                session,
                account_id=_account_id(session, portfolio, account),
                reason_code=reason_code,
                received_on=_day(received_on),
                written=written,
                description=description,
                evidence=files,
                user_id=_user_id(session, user),
                at=clock.now(),
            )
            note = " (US-7 validation period)" if dispute.within_validation_period else ""
            _console().print(f"dispute {dispute.id} opened 已登记异议, hold {dispute.flag_id}{note}")

    run()


@hold_app.command("resolve")
def hold_resolve(
    dispute_id: int,
    outcome: Annotated[str, typer.Option(help="upheld or rejected")],
    resolution: Annotated[str, typer.Option(help="Written resolution / 处理结果")],
    user: UserOpt,
) -> None:
    """Decide a dispute; a rejected dispute's hold is cleared."""

    @_friendly
    def run() -> None:
        from arrears.holds import service

        with _scope() as session:
            d = service.resolve_dispute(
                session,
                dispute_id=dispute_id,
                outcome=outcome,
                resolution=resolution,
                user_id=_required_user(session, user),
                at=clock.now(),
            )
            _console().print(f"dispute {d.id}: {d.status}")

    run()


@hold_app.command("events")
def hold_events(flag_id: int) -> None:
    """The log of one hold."""

    @_friendly
    def run() -> None:
        from arrears.holds import service

        with _scope() as session:
            table = Table("at", "event", "user", "reason")
            for e in service.hold_events(session, flag_id=flag_id):
                table.add_row(e.occurred_at.isoformat(), e.event, str(e.user_id or ""), e.reason or "")
            _console().print(table)

    run()


# --- promises ------------------------------------------------------------------------------------------


@promise_app.command("add")
def promise_add(
    account: Annotated[str, typer.Argument(help="Account reference / 借据号")],
    amount: Annotated[str, typer.Option(help="Amount in major units, e.g. 500.00")],
    promised_on: Annotated[str, typer.Option(help="Date promised / 承诺还款日")],
    made_on: Annotated[str | None, typer.Option(help="Day the promise was made (default today)")] = None,
    channel: str = "call",
    user: Annotated[str | None, typer.Option(help="Username")] = None,
    portfolio: PortfolioOpt = None,
) -> None:
    """Record a promise to pay."""

    @_friendly
    def run() -> None:
        from arrears.arrangements import service
        from arrears.models import Account
        from arrears.money import parse_minor

        with _scope() as session:
            account_id = _account_id(session, portfolio, account)
            acc = session.get(Account, account_id)
            assert acc is not None
            p = service.record_promise(
                session,
                account_id=account_id,
                amount_minor=parse_minor(amount, acc.currency),
                promised_on=date.fromisoformat(promised_on),
                made_on=_day(made_on),
                channel=channel,
                taken_by_id=_user_id(session, user),
            )
            _console().print(f"promise {p.id} recorded 已登记承诺还款, deadline {p.deadline_on}")

    run()


@promise_app.command("refresh")
def promise_refresh(
    as_of: Annotated[str | None, typer.Option("--as-of")] = None,
    payments: Annotated[Path | None, typer.Option(help="CSV: account_ref, received_on, amount")] = None,
    portfolio: PortfolioOpt = None,
) -> None:
    """Evaluate pending promises on a date against payments."""

    @_friendly
    def run() -> None:
        from arrears.arrangements import service

        with _scope() as session:
            result = service.refresh_promises(
                session,
                portfolio_id=_portfolio_id(session, portfolio),
                as_of=_day(as_of),
                payments=_payments(session, portfolio, payments),
            )
            _console().print(f"evaluated {result.evaluated}: {json.dumps(result.by_status)}")

    run()


# --- plans ---------------------------------------------------------------------------------------------


@plan_app.command("quote")
def plan_quote(
    accounts: Annotated[list[str], typer.Argument(help="Account references / 借据号")],
    request: Annotated[
        str, typer.Option(help='JSON, e.g. {"kind": "instalments", "count": 6, "first_on": "2025-07-10"}')
    ],
    as_of: Annotated[str | None, typer.Option("--as-of")] = None,
    portfolio: PortfolioOpt = None,
) -> None:
    """Preview a plan (nothing saved) and print it as JSON."""

    @_friendly
    def run() -> None:
        from arrears.arrangements import service

        with _scope() as session:
            q = service.quote_arrangement(
                session,
                account_ids=[_account_id(session, portfolio, a) for a in accounts],
                request=service.parse_request(_json(request)),
                as_of=_day(as_of),
            )
            _console().print_json(q.model_dump_json())

    run()


@plan_app.command("create")
def plan_create(
    accounts: Annotated[list[str], typer.Argument(help="Account references / 借据号")],
    request: Annotated[str, typer.Option(help="JSON request, as for `plan quote`")],
    as_of: Annotated[str | None, typer.Option("--as-of")] = None,
    user: Annotated[str | None, typer.Option(help="Username")] = None,
    portfolio: PortfolioOpt = None,
) -> None:
    """Store an agreed plan: active within policy, pending approval beyond it."""

    @_friendly
    def run() -> None:
        from arrears.arrangements import service

        with _scope() as session:
            plan = service.create_arrangement(
                session,
                account_ids=[_account_id(session, portfolio, a) for a in accounts],
                request=service.parse_request(_json(request)),
                as_of=_day(as_of),
                created_by_id=_user_id(session, user),
            )
            _console().print(f"arrangement {plan.id}: {plan.status}")
            for reason in plan.approval_reasons:
                _console().print(f"  {reason['message_zh']} / {reason['message_en']}")

    run()


@plan_app.command("approve")
def plan_approve(
    arrangement_id: int,
    user: UserOpt,
    reason: Annotated[str | None, typer.Option(help="Reason / 审批意见")] = None,
    reject: Annotated[bool, typer.Option("--reject", help="Reject instead of approve")] = False,
) -> None:
    """Approve (or --reject) a plan pending approval (supervisor or admin)."""

    @_friendly
    def run() -> None:
        from arrears.arrangements import service

        with _scope() as session:
            uid = _required_user(session, user)
            if reject:
                plan = service.reject_arrangement(
                    session, arrangement_id=arrangement_id, user_id=uid, reason=reason or "", at=clock.now()
                )
            else:
                plan = service.approve_arrangement(
                    session, arrangement_id=arrangement_id, user_id=uid, reason=reason, at=clock.now()
                )
            _console().print(f"arrangement {plan.id}: {plan.status}")

    run()


@plan_app.command("refresh")
def plan_refresh(
    as_of: Annotated[str | None, typer.Option("--as-of")] = None,
    payments: Annotated[Path | None, typer.Option(help="CSV: account_ref, received_on, amount")] = None,
    portfolio: PortfolioOpt = None,
) -> None:
    """Evaluate active plans on a date: breaches mark their case for re-negotiation."""

    @_friendly
    def run() -> None:
        from arrears.arrangements import service

        with _scope() as session:
            r = service.refresh_arrangements(
                session,
                portfolio_id=_portfolio_id(session, portfolio),
                as_of=_day(as_of),
                payments=_payments(session, portfolio, payments),
            )
            _console().print(
                f"evaluated {r.evaluated}, breached {list(r.breached)}, completed {list(r.completed)}"
            )

    run()


def _json(text: str) -> dict[str, Any]:
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValidationFailed(
            f"--request 不是有效的 JSON / --request is not JSON: {exc}", code="bad_json"
        ) from exc
    if not isinstance(value, dict):
        raise ValidationFailed("--request 须为 JSON 对象 / --request must be a JSON object", code="bad_json")
    return value


# --- legal ---------------------------------------------------------------------------------------------


@legal_app.command("refer")
def legal_refer(
    accounts: Annotated[list[str], typer.Argument(help="Account references / 借据号")],
    law_firm: Annotated[str, typer.Option(help="Law firm instructed / 受托律师事务所")],
    user: UserOpt,
    kind: str = "lawyer_letter",
    law_firm_address: str | None = None,
    law_firm_phone: str | None = None,
    lawyer: Annotated[str | None, typer.Option(help="Lawyer in charge / 经办律师")] = None,
    referred_on: Annotated[str | None, typer.Option(help="Referral date")] = None,
    time_barred: Annotated[
        list[str] | None, typer.Option(help="Account known to be time-barred (repeatable)")
    ] = None,
    portfolio: PortfolioOpt = None,
) -> None:
    """Propose legal action (refused for disputed or time-barred accounts); waits for approval."""

    @_friendly
    def run() -> None:
        from arrears.legal import service

        with _scope() as session:
            case = service.refer_to_legal(
                session,
                account_ids=[_account_id(session, portfolio, a) for a in accounts],
                kind=kind,
                referred_by_id=_required_user(session, user),
                referred_on=_day(referred_on),
                law_firm_name=law_firm,
                law_firm_address=law_firm_address,
                law_firm_phone=law_firm_phone,
                lawyer_name=lawyer,
                time_barred_account_ids=frozenset(
                    _account_id(session, portfolio, a) for a in time_barred or []
                ),
            )
            _console().print(f"legal case {case.id}: {case.status}")

    run()


@legal_app.command("decide")
def legal_decide(
    legal_case_id: int,
    user: UserOpt,
    approve: Annotated[bool, typer.Option("--approve/--reject")] = True,
    reason: str | None = None,
) -> None:
    """Approve or reject a referral (supervisor or admin)."""

    @_friendly
    def run() -> None:
        from arrears.legal import service

        with _scope() as session:
            case = service.decide_referral(
                session,
                legal_case_id=legal_case_id,
                user_id=_required_user(session, user),
                approve=approve,
                reason=reason,
                at=clock.now(),
            )
            _console().print(f"legal case {case.id}: {case.status}")

    run()


@legal_app.command("milestone")
def legal_milestone(
    legal_case_id: int,
    milestone: str,
    on: Annotated[str | None, typer.Option("--on", help="Date reached")] = None,
    document: Annotated[int | None, typer.Option(help="Document id proving it")] = None,
    note: str | None = None,
    case_number: str | None = None,
    user: Annotated[str | None, typer.Option(help="Username")] = None,
) -> None:
    """Record the next milestone of a legal case."""

    @_friendly
    def run() -> None:
        from arrears.legal import service

        with _scope() as session:
            service.record_milestone(
                session,
                legal_case_id=legal_case_id,
                milestone=milestone,
                occurred_on=_day(on),
                document_id=document,
                note=note,
                case_number=case_number,
                user_id=_user_id(session, user),
            )
            _console().print(f"legal case {legal_case_id}: {milestone}")

    run()


@legal_app.command("letter")
def legal_letter(
    legal_case_id: int,
    out: Annotated[Path, typer.Option(help="Where to write the PDF")],
    letter_date: Annotated[str | None, typer.Option("--date", help="Letter date")] = None,
    locale: str | None = None,
    user: Annotated[str | None, typer.Option(help="Username")] = None,
) -> None:
    """Generate the lawyer's letter PDF of an approved legal case (stored as a document too)."""

    @_friendly
    def run() -> None:
        from arrears.legal import service

        with _scope() as session:
            letter = service.lawyer_letter(
                session,
                legal_case_id=legal_case_id,
                letter_date=_day(letter_date),
                locale=locale,
                user_id=_user_id(session, user),
            )
            out.write_bytes(letter.pdf)
            _console().print(f"{out} (document {letter.document.id}, sha256 {letter.document.sha256})")

    run()


@legal_app.command("cost")
def legal_cost(
    legal_case_id: int,
    account: Annotated[str, typer.Option(help="Account reference / 借据号")],
    amount: Annotated[str, typer.Option(help="Amount in major units, e.g. 800.00")],
    description: Annotated[str, typer.Option(help="What the cost is, e.g. 诉讼费, 律师费")],
    incurred_on: Annotated[str | None, typer.Option("--date", help="Date incurred (default today)")] = None,
    portfolio: PortfolioOpt = None,
    user: Annotated[str | None, typer.Option(help="Username")] = None,
) -> None:
    """Record a legal cost (court fee, lawyer's fee); it is posted to the ledger as ``costs`` at once."""

    @_friendly
    def run() -> None:
        from arrears.legal import service
        from arrears.models import Account
        from arrears.money import parse_minor

        with _scope() as session:
            account_id = _account_id(session, portfolio, account)
            acc = session.get(Account, account_id)
            assert acc is not None
            cost = service.add_cost(
                session,
                legal_case_id=legal_case_id,
                account_id=account_id,
                description=description,
                costs_minor=parse_minor(amount, acc.currency),
                incurred_on=_day(incurred_on),
                user_id=_user_id(session, user),
            )
            _console().print(f"legal cost {cost.id}: posted as costs (posting {cost.posting_id})")

    run()


@legal_app.command("cost-reverse")
def legal_cost_reverse(
    cost_id: int,
    reason: Annotated[str, typer.Option(help="Why the cost is undone / 冲正原因")],
    reversed_on: Annotated[str | None, typer.Option("--date", help="Reversal date (default today)")] = None,
    user: Annotated[str | None, typer.Option(help="Username")] = None,
) -> None:
    """Reverse a legal cost recorded in error (its ``costs`` posting is reversed)."""

    @_friendly
    def run() -> None:
        from arrears.legal import service

        with _scope() as session:
            cost = service.reverse_cost(
                session,
                cost_id=cost_id,
                reversed_on=_day(reversed_on),
                reason=reason,
                user_id=_user_id(session, user),
            )
            _console().print(f"legal cost {cost.id}: reversed on {cost.reversed_on}")

    run()


@legal_app.command("bundle")
def legal_bundle(
    case_id: Annotated[int, typer.Argument(help="Case id / 案件编号")],
    out: Annotated[Path, typer.Option(help="Where to write the ZIP")],
    as_of: Annotated[str | None, typer.Option("--as-of", help="Balances as of (default today)")] = None,
    locale: Annotated[str | None, typer.Option(help="zh_CN (default) or en")] = None,
    user: Annotated[str | None, typer.Option(help="Username of who generates it")] = None,
) -> None:
    """Build a case's evidence bundle (ZIP: summary PDF, contact record with its hash-chain check, promises,
    plans, payments, statements, letters with delivery evidence, legal steps, manifest of SHA-256)."""

    @_friendly
    def run() -> None:
        from arrears.legal import bundle
        from arrears.models import Case, Portfolio

        with _scope() as session:
            case = session.get(Case, case_id)
            if case is None:
                raise NotFound(f"案件不存在：{case_id} / case {case_id} not found", code="case_not_found")
            portfolio = session.get(Portfolio, case.portfolio_id)
            assert portfolio is not None
            built = bundle.build_bundle(
                session,
                case_id=case_id,
                as_of=clock.parse_as_of(as_of, portfolio.timezone),
                generated_at=clock.now(),
                generated_by_id=_user_id(session, user),
                locale=locale,
            )
            out.write_bytes(built.zip_bytes)
            chain = "ok 完整" if built.chain.ok else "BROKEN 断裂"
            _console().print(
                f"{out}: {len(built.manifest['files']) + 1} files, sha256 {built.sha256}; "
                f"contact record hash chain {chain}"
            )
            for b in built.chain.broken:
                _console().print(f"  attempt #{b.seq} (id {b.attempt_id}) [{b.problem}]: {b.en} / {b.zh}")

    run()


@legal_app.command("bundle-check")
def legal_bundle_check(
    path: Annotated[Path, typer.Argument(help="An evidence bundle ZIP")],
) -> None:
    """Check an evidence bundle against its manifest (every file's SHA-256). Exit 1 if anything differs."""

    @_friendly
    def run() -> None:
        from arrears.legal import bundle

        if not path.is_file():
            raise NotFound(f"文件不存在：{path} / no such file: {path}", code="file_not_found")
        check = bundle.check_bundle(path.read_bytes())
        chain = {True: "ok", False: "broken", None: "unknown"}[check.chain_ok]
        if check.ok:
            _console().print(f"ok 完整: {check.files} files match the manifest; contact record chain {chain}")
            return
        for label, names in (
            ("changed", check.mismatched),
            ("missing", check.missing),
            ("unlisted", check.unlisted),
        ):
            for name in names:
                _console().print(f"{label}: {name}")
        raise typer.Exit(1)

    run()


# --- placements ----------------------------------------------------------------------------------------


def _agency_id(session: Session, name: str) -> int:
    from arrears.models import Agency

    found = session.scalar(select(Agency.id).where(Agency.name == name))
    if found is None:
        raise NotFound(f"机构不存在：{name} / agency {name!r} not found", code="agency_not_found")
    return int(found)


@placement_app.command("agency")
def placement_agency(
    name: str,
    listed: Annotated[
        bool, typer.Option("--listed/--unlisted", help="On the published partner list (CN-7)")
    ] = False,
    active: Annotated[bool, typer.Option("--active/--inactive")] = True,
    commission_bps: Annotated[int, typer.Option(help="Commission in basis points (1500 = 15%)")] = 0,
) -> None:
    """Register an agency, or update it when the name exists."""

    @_friendly
    def run() -> None:
        from arrears.agencies import service
        from arrears.models import Agency

        with _scope() as session:
            existing = session.scalar(select(Agency).where(Agency.name == name))
            if existing is None:
                agency = service.create_agency(
                    session, name=name, listed=listed, active=active, commission_bps=commission_bps
                )
            else:
                agency = service.update_agency(
                    session,
                    agency_id=existing.id,
                    listed=listed,
                    active=active,
                    commission_bps=commission_bps,
                )
            _console().print(
                f"agency {agency.id} {agency.name}: listed={agency.listed} active={agency.active}"
            )

    run()


@placement_app.command("place")
def placement_place(
    agency: Annotated[str, typer.Option(help="Agency name")],
    expires_on: Annotated[str, typer.Option(help="End of the placement term")],
    placed_on: Annotated[str | None, typer.Option(help="Placement date")] = None,
    dpd_min: int | None = None,
    dpd_max: int | None = None,
    balance_min: Annotated[str | None, typer.Option(help="Minimum case balance, major units")] = None,
    balance_max: Annotated[str | None, typer.Option(help="Maximum case balance, major units")] = None,
    product: str | None = None,
    max_cases: int | None = None,
    user: Annotated[str | None, typer.Option(help="Username")] = None,
    portfolio: PortfolioOpt = None,
) -> None:
    """Place the cases that match a rule with an agency (refused for an unlisted agency, CN-7)."""

    @_friendly
    def run() -> None:
        from arrears.agencies import service
        from arrears.enums import Product
        from arrears.models import Portfolio
        from arrears.money import parse_minor

        with _scope() as session:
            pid = _portfolio_id(session, portfolio)
            currency = session.scalar(select(Portfolio.currency).where(Portfolio.id == pid)) or "CNY"
            rule = service.PlacementRule(
                dpd_min=dpd_min,
                dpd_max=dpd_max,
                balance_min_minor=parse_minor(balance_min, currency) if balance_min else None,
                balance_max_minor=parse_minor(balance_max, currency) if balance_max else None,
                product=Product(product) if product else None,
                max_cases=max_cases,
            )
            placed = service.place_batch(
                session,
                portfolio_id=pid,
                agency_id=_agency_id(session, agency),
                rule=rule,
                placed_on=_day(placed_on),
                expires_on=date.fromisoformat(expires_on),
                placed_by_id=_user_id(session, user),
            )
            _console().print(f"placed 已委案: {len(placed)} cases {[p.case_id for p in placed]}")

    run()


@placement_app.command("recall")
def placement_recall(
    placement_id: int,
    user: UserOpt,
    reason: Annotated[str, typer.Option(help="Why / 撤案原因")],
    on: Annotated[str | None, typer.Option("--on", help="Recall date")] = None,
) -> None:
    """Recall a placement by hand (supervisor or admin)."""

    @_friendly
    def run() -> None:
        from arrears.agencies import service

        with _scope() as session:
            service.recall_placement(
                session,
                placement_id=placement_id,
                recalled_on=_day(on),
                user_id=_required_user(session, user),
                reason=reason,
            )
            _console().print(f"placement {placement_id} recalled 已撤案")

    run()


@placement_app.command("recall-expired")
def placement_recall_expired(as_of: Annotated[str | None, typer.Option("--as-of")] = None) -> None:
    """Recall every placement whose term has ended."""

    @_friendly
    def run() -> None:
        from arrears.agencies import service

        with _scope() as session:
            recalled = service.recall_expired_placements(session, as_of=_day(as_of))
            _console().print(f"recalled 到期撤案: {len(recalled)}")

    run()


@placement_app.command("list")
def placement_list(agency: Annotated[str, typer.Option(help="Agency name")]) -> None:
    """Placements of an agency."""

    @_friendly
    def run() -> None:
        from arrears.agencies import service

        with _scope() as session:
            table = Table("id", "case", "placed", "expires", "recalled", "reason")
            for p in service.list_placements(session, agency_id=_agency_id(session, agency)):
                table.add_row(
                    str(p.id),
                    str(p.case_id),
                    str(p.placed_on),
                    str(p.expires_on),
                    str(p.recalled_on or ""),
                    p.recall_reason or "",
                )
            _console().print(table)

    run()


def register(app: typer.Typer) -> None:
    """Add the case work command groups to the main ``arrears`` app."""
    app.add_typer(hold_app, name="hold")
    app.add_typer(promise_app, name="promise")
    app.add_typer(plan_app, name="plan")
    app.add_typer(legal_app, name="legal")
    app.add_typer(placement_app, name="placement")
