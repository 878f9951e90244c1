"""Ledger commands: `arrears accrue`, `arrears statement`, `arrears import payments`, `arrears payment ...`,
`arrears ledger ...`. Each command is an edge: it opens the transaction and commits on success."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

payment_app = typer.Typer(help="Payments / 还款", no_args_is_help=True)
ledger_app = typer.Typer(help="Ledger / 账务", no_args_is_help=True)


def _portfolio(session: Any, name: str | None) -> Any:
    from arrears.cli import _default_portfolio
    from arrears.portfolios import service as portfolio_service

    return portfolio_service.get_portfolio(session, name=name or _default_portfolio(session))


def _print_payment(view: Any) -> None:
    from arrears import money
    from arrears.cli import console

    console.print(
        f"payment 还款 #{view.id} {view.reference}: {money.format_minor(view.amount_minor, view.currency)}"
        f" on {view.received_on} [{view.status}] policy {view.policy}"
    )
    table = Table("account 借据号", "component 构成", "kind", "amount 金额", "rule 规则")
    for s in [*view.splits, *view.reversals]:
        table.add_row(
            s.external_ref,
            s.component or "credit 溢缴款",
            s.kind,
            money.format_minor(-s.amount_minor, view.currency),
            s.rule_id or "",
        )
    console.print(table)
    console.print(
        f"allocated 已冲抵 {money.format_minor(view.allocated_minor, view.currency)}, "
        f"credit 溢缴款 {money.format_minor(view.credit_minor, view.currency)}"
    )


def accrue_cmd(
    portfolio: Annotated[str | None, typer.Option(help="Portfolio name")] = None,
    as_of: Annotated[str | None, typer.Option("--as-of", help="Accrue up to this day (YYYY-MM-DD)")] = None,
) -> None:
    """Daily accrual of interest and penalty interest for a portfolio (re-running a day adds nothing)."""
    from arrears import clock, money
    from arrears.cli import _engine, console
    from arrears.db import session_scope
    from arrears.ledger import service

    with session_scope(_engine()) as session:
        p = _portfolio(session, portfolio)
        day = clock.parse_as_of(as_of, p.timezone)
        run = service.accrue_portfolio(session, portfolio_id=p.id, as_of=day)
        table = Table("", "count")
        table.add_row("accounts 账户", str(run.accounts))
        table.add_row("accrued 已计息", str(run.accrued_accounts))
        table.add_row("interest 利息", money.format_minor(run.interest_minor, p.currency))
        table.add_row("penalty interest 罚息", money.format_minor(run.penalty_minor, p.currency))
        table.add_row("capped 受上限限制", str(run.capped_accounts))
        table.add_row("stopped 停止计息", str(run.stopped_accounts))
        table.add_row("caught up 补计", str(run.caught_up_accounts))
        table.add_row("already done 已计过", str(run.already_done_accounts))
        console.print(f"accrual 计息 {p.name} as of {day}")
        console.print(table)


def statement_cmd(
    account: Annotated[str, typer.Argument(help="Account reference (借据号) or id")],
    as_of: Annotated[str | None, typer.Option("--as-of", help="Statement date (YYYY-MM-DD)")] = None,
    from_date: Annotated[str | None, typer.Option("--from", help="Start of the period (YYYY-MM-DD)")] = None,
    format: Annotated[str, typer.Option("--format", help="table, json, csv or pdf")] = "table",
    out: Annotated[Path | None, typer.Option(help="Output file (csv / pdf)")] = None,
    portfolio: Annotated[str | None, typer.Option(help="Portfolio name")] = None,
    locale: Annotated[str, typer.Option(help="zh_CN or en")] = "zh_CN",
) -> None:
    """Statement of an account at a date: opening balance, every posting, closing balance by component."""
    from sqlalchemy import select

    from arrears import clock, money
    from arrears.cli import _engine, console
    from arrears.db import session_scope
    from arrears.errors import NotFound, ValidationFailed
    from arrears.ledger import statement
    from arrears.models import Account

    if format not in ("table", "json", "csv", "pdf"):
        raise ValidationFailed("--format must be table, json, csv or pdf", code="bad_format")
    with session_scope(_engine()) as session:
        query = select(Account).where(Account.external_ref == account)
        if portfolio:
            query = query.where(Account.portfolio_id == _portfolio(session, portfolio).id)
        found = list(session.scalars(query))
        if not found and account.isdigit() and (by_id := session.get(Account, int(account))) is not None:
            found = [by_id]
        if not found:
            raise NotFound(f"账户不存在：{account} / account {account!r} not found", code="account_not_found")
        if len(found) > 1:
            raise ValidationFailed(
                "多个资产包有此借据号，请用 --portfolio 指定 / several portfolios have this reference; "
                "choose one with --portfolio",
                code="portfolio_required",
            )
        day = clock.parse_as_of(as_of)
        start = clock.parse_as_of(from_date) if from_date else None
        st = statement.statement(session, account_id=found[0].id, as_of=day, from_date=start)
        if format == "json":
            typer.echo(json.dumps(st.model_dump(mode="json"), ensure_ascii=False, indent=2))
            return
        if format in ("csv", "pdf"):
            path = out or Path(f"statement-{st.external_ref}-{day.isoformat()}.{format}")
            if format == "csv":
                path.write_text(statement.statement_csv(st, locale=locale), encoding="utf-8-sig")
            else:
                path.write_bytes(statement.statement_pdf(st, locale=locale))
            console.print(f"statement 对账单: {path}")
            return
        table = Table(
            "date 日期",
            "kind 类型",
            "component 构成",
            "amount 金额",
            "owed 余额合计",
            "reference 流水号",
            "rule 规则",
        )
        for line in st.lines:
            table.add_row(
                line.effective_date.isoformat(),
                line.kind,
                line.component,
                money.format_minor(line.amount_minor, st.currency),
                money.format_minor(line.total_after_minor, st.currency),
                line.payment_reference or "",
                line.rule_id or "",
            )
        console.print(f"statement 对账单 {st.external_ref} as of {day}")
        console.print(table)
        closing = ", ".join(f"{k} {money.format_minor(v, st.currency)}" for k, v in st.closing.items())
        console.print(f"closing 期末: {closing}")


def import_payments_cmd(
    file: Annotated[Path, typer.Argument(help="CSV (UTF-8 / GB18030) or XLSX payment file")],
    portfolio: Annotated[str | None, typer.Option(help="Portfolio name")] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Validate and allocate; change nothing")] = False,
    report: Annotated[Path | None, typer.Option(help="Problem report path (.csv or .xlsx)")] = None,
) -> None:
    """Post a bank or core-system payment file: every row or none, with a row-level problem report."""
    from arrears import clock, money
    from arrears.cli import _engine, console
    from arrears.db import session_scope
    from arrears.ledger.payments_import import import_payments
    from arrears.portfolios.report import problem_table, write_report

    with session_scope(_engine()) as session:
        p = _portfolio(session, portfolio)
        result = import_payments(session, path=file, portfolio_id=p.id, now=clock.now(), dry_run=dry_run)
        status = {
            "applied": "[green]已入账 posted[/green]",
            "dry_run": "[yellow]试运行 dry run[/yellow]",
            "rejected": "[red]已拒绝 rejected: nothing posted / 未入账任何还款[/red]",
        }[result.status]
        console.print(f"{result.filename} -> {p.name}: {status}")
        summary = Table("", "")
        summary.add_row("rows 行数", str(result.rows_total))
        if result.status != "rejected":
            summary.add_row("amount 金额", money.format_minor(result.amount_minor, p.currency))
            summary.add_row("allocated 已冲抵", money.format_minor(result.allocated_minor, p.currency))
            summary.add_row("credit 溢缴款", money.format_minor(result.credit_minor, p.currency))
            summary.add_row("postings 分录", str(result.postings))
        summary.add_row("error rows 错误行", str(result.errors["row"].n_unique()))
        console.print(summary)
        if result.issues.height:
            console.print(problem_table(result.issues))
            path = report or Path(f"{file.stem}.problems.csv")
            write_report(result.issues, path)
            console.print(f"problem report 问题报告: {path}")
        if result.status == "rejected":
            session.rollback()
            raise typer.Exit(1)


@payment_app.command("post")
def payment_post(
    account: Annotated[str, typer.Option(help="Account reference (借据号)")],
    amount: Annotated[str, typer.Option(help="Amount received, e.g. 1200.50")],
    receipt: Annotated[str, typer.Option(help="Receipt or transaction reference (收据号)")],
    on: Annotated[str | None, typer.Option("--on", help="Date received (YYYY-MM-DD)")] = None,
    collector: Annotated[str | None, typer.Option(help="Collector who took the payment")] = None,
    portfolio: Annotated[str | None, typer.Option(help="Portfolio name")] = None,
) -> None:
    """Post a payment a collector received, with its receipt reference."""
    from arrears import clock, money
    from arrears.cli import _engine
    from arrears.db import session_scope
    from arrears.ledger import service

    with session_scope(_engine()) as session:
        p = _portfolio(session, portfolio)
        acc = service.find_account(session, portfolio_id=p.id, external_ref=account)
        view = service.post_payment(
            session,
            portfolio_id=p.id,
            account_id=acc.id,
            amount_minor=money.parse_minor(amount, p.currency),
            received_on=clock.parse_as_of(on, p.timezone),
            reference=receipt,
            source="manual",
            collector=collector,
            now=clock.now(),
        )
        _print_payment(view)


@payment_app.command("reverse")
def payment_reverse(
    payment_id: Annotated[int, typer.Argument(help="Payment id")],
    reason: Annotated[str, typer.Option(help="Why, e.g. bounced")],
    on: Annotated[str | None, typer.Option("--on", help="Reversal date (YYYY-MM-DD)")] = None,
) -> None:
    """Reverse a payment (bounced, posted in error): every balance it touched is restored."""
    from arrears import clock
    from arrears.cli import _engine
    from arrears.db import session_scope
    from arrears.ledger import service

    with session_scope(_engine()) as session:
        view = service.reverse_payment(
            session, payment_id=payment_id, reversed_on=clock.parse_as_of(on), reason=reason, now=clock.now()
        )
        _print_payment(view)


@payment_app.command("show")
def payment_show(payment_id: Annotated[int, typer.Argument(help="Payment id")]) -> None:
    """How a payment was split, and why."""
    from arrears.cli import _engine
    from arrears.db import session_scope
    from arrears.ledger import service

    with session_scope(_engine()) as session:
        _print_payment(service.payment_view(session, payment_id=payment_id))


@ledger_app.command("verify")
def ledger_verify(portfolio: Annotated[str | None, typer.Option(help="Portfolio name")] = None) -> None:
    """Check that every cached balance equals the sum of its postings; exit 1 when one does not."""
    from arrears.cli import _engine, console
    from arrears.db import session_scope
    from arrears.ledger import service

    with session_scope(_engine()) as session:
        pid = _portfolio(session, portfolio).id if portfolio else None
        bad = service.verify_balances(session, portfolio_id=pid)
        if not bad:
            console.print("[green]balances reconcile 余额与分录一致[/green]")
            return
        table = Table("account", "component", "cached 缓存", "postings 分录合计")
        for m in bad[:50]:
            table.add_row(str(m.account_id), m.component, str(m.cached_minor), str(m.postings_minor))
        console.print(table)
        raise typer.Exit(1)


@ledger_app.command("configure")
def ledger_configure(
    portfolio: Annotated[str | None, typer.Option(help="Portfolio name")] = None,
    day_count: Annotated[str | None, typer.Option(help="ACT/365, ACT/360 or 30/360")] = None,
    rounding: Annotated[str | None, typer.Option(help="half_up or down")] = None,
    allocation_policy: Annotated[str | None, typer.Option(help="cn-default, principal-first ...")] = None,
) -> None:
    """Set a portfolio's day count, rounding and allocation order."""
    from arrears.cli import _engine, console
    from arrears.db import session_scope
    from arrears.ledger import service

    with session_scope(_engine()) as session:
        p = _portfolio(session, portfolio)
        row = service.configure_ledger(
            session,
            portfolio_id=p.id,
            day_count=day_count,
            rounding=rounding,
            allocation_policy=allocation_policy,
        )
        console.print(
            f"{p.name}: day count {row.day_count}, rounding {row.rounding}, allocation {row.allocation_policy}"
        )


def register(app: typer.Typer, import_app: typer.Typer) -> None:
    """Attach the ledger commands to the `arrears` command line."""
    from arrears.cli import friendly

    app.command("accrue")(friendly(accrue_cmd))
    app.command("statement")(friendly(statement_cmd))
    import_app.command("payments")(friendly(import_payments_cmd))
    for sub in (payment_app, ledger_app):
        for command in sub.registered_commands:
            if command.callback is not None:
                command.callback = friendly(command.callback)
    app.add_typer(payment_app, name="payment")
    app.add_typer(ledger_app, name="ledger")
