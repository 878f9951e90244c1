"""The `arrears` command line: a thin door onto the same services as the API."""

from __future__ import annotations

import functools
import gc
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Table

from arrears import clock
from arrears.config import get_settings
from arrears.errors import ArrearsError

app = typer.Typer(help="arrears: compliance-first debt collection / 合规优先的催收系统", no_args_is_help=True)
db_app = typer.Typer(help="Database schema / 数据库", no_args_is_help=True)
portfolio_app = typer.Typer(help="Portfolios / 资产包", no_args_is_help=True)
import_app = typer.Typer(help="Import files / 导入", no_args_is_help=True)
app.add_typer(db_app, name="db")
app.add_typer(portfolio_app, name="portfolio")
app.add_typer(import_app, name="import")

console = Console()
err_console = Console(stderr=True)
F = TypeVar("F", bound=Callable[..., Any])


def friendly(fn: F) -> F:
    """Print an ArrearsError as one line and exit non-zero; never a traceback for a user mistake."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except ArrearsError as exc:
            err_console.print(
                f"[red]error[/red] {escape(f'[{exc.code}]')} {escape(exc.message)}",
                highlight=False,
                soft_wrap=True,
            )
            raise typer.Exit(2) from None

    return wrapper  # type: ignore[return-value]


def settle() -> None:
    """Freeze what start-up built (modules, mapped classes, compiled rule packs) out of the garbage
    collector: it lives until the process ends, so neither the collections during a long command nor the
    one at exit walk it again (the one at exit alone cost a dispatcher about 0.3 s)."""
    gc.freeze()


def _engine() -> Any:
    from arrears import db

    return db.ensure_schema(db.get_engine())


@db_app.command("upgrade")
@friendly
def db_upgrade() -> None:
    """Create or migrate the schema to the latest version."""
    from arrears import db

    db.upgrade(db.get_engine())
    console.print(f"schema up to date: {get_settings().database_url}")


@portfolio_app.command("create")
@friendly
def portfolio_create(
    name: str,
    creditor: Annotated[str, typer.Option(help="Creditor name / 债权人")],
    currency: str = "CNY",
    timezone: Annotated[str, typer.Option(help="Default time zone of debtors")] = "Asia/Shanghai",
    rule_pack: str = "cn",
    strategy: str = "default",
    locale: str = "zh_CN",
) -> None:
    """Create a portfolio (and its creditor if new)."""
    from arrears.db import session_scope
    from arrears.portfolios import service

    with session_scope(_engine()) as session:
        p = service.create_portfolio(
            session,
            name=name,
            creditor=creditor,
            currency=currency,
            timezone=timezone,
            rule_pack=rule_pack,
            strategy=strategy,
            locale=locale,
        )
        console.print(f"portfolio {p.name} created (id {p.id})")


@portfolio_app.command("list")
@friendly
def portfolio_list() -> None:
    """List portfolios."""
    from arrears.db import session_scope
    from arrears.portfolios import service

    with session_scope(_engine()) as session:
        table = Table("id", "name", "creditor", "currency", "time zone", "rule pack", "strategy")
        for p in service.list_portfolios(session):
            table.add_row(str(p.id), p.name, p.creditor.name, p.currency, p.timezone, p.rule_pack, p.strategy)
        console.print(table)


def _default_portfolio(session: Any) -> str:
    from arrears.errors import ValidationFailed
    from arrears.portfolios import service

    portfolios = service.list_portfolios(session)
    if len(portfolios) == 1:
        return portfolios[0].name
    raise ValidationFailed(
        "请用 --portfolio 指定资产包 / choose a portfolio with --portfolio", code="portfolio_required"
    )


@import_app.command("accounts")
@friendly
def import_accounts(
    file: Annotated[Path, typer.Argument(help="CSV (UTF-8 / GB18030) or XLSX file")],
    mapping: Annotated[Path | None, typer.Option(help="Column mapping file (TOML)")] = None,
    portfolio: Annotated[str | None, typer.Option(help="Portfolio name")] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Validate and count; change nothing")] = False,
    report: Annotated[Path | None, typer.Option(help="Problem report path (.csv or .xlsx)")] = None,
    as_of: Annotated[
        str | None, typer.Option("--as-of", help="Date for days-past-due columns (YYYY-MM-DD)")
    ] = None,
) -> None:
    """Import accounts from a lender's file: all rows or none, with a row-level problem report."""
    from arrears.db import session_scope
    from arrears.portfolios import service

    with session_scope(_engine()) as session:
        name = portfolio or _default_portfolio(session)
        as_of_date = clock.parse_as_of(as_of) if as_of else None
        with _progress() as bar:
            task = bar.add_task(f"import {file.name}", total=None)
            result = service.import_accounts(
                session,
                path=file,
                portfolio_name=name,
                mapping_path=mapping,
                dry_run=dry_run,
                as_of=as_of_date,
                progress=lambda n: bar.advance(task, n),
                phase=_import_phase(bar, task, file.name),
                chunk_rows=get_settings().import_chunk_rows,
            )
        _print_import(result, report)
        if result.status == "rejected":
            session.rollback()
            raise typer.Exit(1)


def _import_phase(bar: Progress, task: Any, name: str) -> Any:
    def phase(step: str, rows: int | None) -> None:
        if step == "validate":
            bar.update(task, description=f"校验 validate {name}", total=rows)
        else:
            bar.update(task, description=f"写入 write {name}")

    return phase


def _progress() -> Progress:
    return Progress(
        SpinnerColumn(),
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("rows"),
        TimeElapsedColumn(),
        console=err_console,
        transient=True,
    )


def _print_import(result: Any, report_path: Path | None) -> None:
    from arrears.portfolios.report import problem_table, write_report

    c = result.counts
    status = {
        "applied": "[green]已导入 applied[/green]",
        "dry_run": "[yellow]试运行 dry run[/yellow]",
        "rejected": "[red]已拒绝 rejected: nothing imported / 未导入任何数据[/red]",
    }[result.status]
    console.print(f"{result.filename} -> {result.portfolio}: {status}")
    summary = Table("", "count")
    summary.add_row("rows 行数", str(result.rows_total))
    if result.status != "rejected":
        summary.add_row("accounts created 新增账户", str(c.accounts_created))
        summary.add_row("accounts updated 更新账户", str(c.accounts_updated))
        summary.add_row("accounts unchanged 未变账户", str(c.accounts_unchanged))
        summary.add_row("debtors created 新增债务人", str(c.debtors_created))
        summary.add_row("contact points added 新增联系方式", str(c.contact_points_created))
        summary.add_row("holds added 新增标记", str(c.flags_created))
        summary.add_row("fields changed 变更字段", str(c.changes))
    summary.add_row("error rows 错误行", str(len(result.error_rows)))
    summary.add_row("warnings 警告", str(result.warnings.height))
    console.print(summary)
    if result.issues.height:
        console.print(problem_table(result.issues))
        path = report_path or Path(f"{Path(result.filename).stem}.problems.csv")
        write_report(result.issues, path)
        console.print(f"problem report 问题报告: {path}")


@app.command("demo")
@friendly
def demo(
    accounts: Annotated[int, typer.Option(help="How many accounts to generate")] = 3000,
    seed: int = 2026,
    as_of: Annotated[str | None, typer.Option("--as-of", help="Date the demo portfolio is aged to")] = None,
    serve: Annotated[bool, typer.Option(help="Start the server afterwards")] = True,
    out: Annotated[Path, typer.Option(help="Where the generated file is written")] = Path("demo-data"),
) -> None:
    """Generate a realistic demo portfolio, import it through the normal import, and serve it."""
    from arrears import demo as demo_mod
    from arrears.db import session_scope
    from arrears.portfolios import service

    as_of_date = clock.parse_as_of(as_of)
    path = demo_mod.write_demo_file(out / "demo-accounts.csv", accounts=accounts, seed=seed, as_of=as_of_date)
    console.print(f"demo file 演示文件: {path} ({accounts} accounts)")
    with session_scope(_engine()) as session:
        demo_mod.ensure_demo_portfolio(session)
    with session_scope(_engine()) as session:
        with _progress() as bar:
            task = bar.add_task("import demo", total=accounts)
            result = service.import_accounts(
                session,
                path=path,
                portfolio_name=demo_mod.DEMO_PORTFOLIO,
                as_of=as_of_date,
                progress=lambda n: bar.advance(task, n),
            )
        _print_import(result, out / "demo-accounts.problems.csv")
        if result.status == "rejected":
            raise typer.Exit(1)
    with session_scope(_engine()) as session:
        demo_mod.set_demo_passwords(session)
        console.print(demo_mod.record_history(session, as_of=as_of_date, seed=seed))
        console.print(demo_mod.prepare_desk(session, as_of=as_of_date, now=clock.now()))
    with session_scope(_engine()) as session:
        placed = demo_mod.place_demo_cases(session, as_of=as_of_date)
        token = demo_mod.demo_api_token(session, now=clock.now())
    console.print(f"cases placed with the demo agency (agency1 sees only these) 委外案件: {placed}")
    console.print(f"database 数据库: {get_settings().database_url}")
    settings = get_settings()
    console.print(
        f"collection desk 催收工作台: http://{settings.host}:{settings.port}/  "
        f"users 用户: {', '.join(u for u, _, _ in demo_mod.DEMO_USERS)}; password 密码: {demo_mod.DEMO_PASSWORD}"
    )
    console.print(
        f"API token of admin 管理员接口令牌 (30 days; /docs → Authorize): [bold]{token}[/bold]",
        soft_wrap=True,
    )
    if serve:
        serve_cmd()


@app.command("serve")
@friendly
def serve_cmd(
    host: Annotated[str | None, typer.Option(help="Bind address")] = None,
    port: Annotated[int | None, typer.Option(help="Port")] = None,
) -> None:
    """Serve the API (and pages) with uvicorn."""
    import uvicorn

    settings = get_settings()
    host = host or settings.host
    port = port or settings.port
    _engine()
    console.print(f"serving on http://{host}:{port}  (API docs: http://{host}:{port}/docs)")
    sys.stdout.flush()
    uvicorn.run("arrears.api.app:create_app", factory=True, host=host, port=port, log_level="info")


from arrears.compliance.cli import app as compliance_app  # noqa: E402
from arrears.compliance.cli import audit_app  # noqa: E402

app.add_typer(compliance_app, name="compliance")
app.add_typer(audit_app, name="audit")
from arrears.arrangements.cli import register as _register_casework  # noqa: E402

_register_casework(app)  # hold, promise, plan, legal, placement
from arrears.ledger.cli import register as _register_ledger  # noqa: E402

_register_ledger(app, import_app)

from arrears.strategy.cli import register as _register_strategy  # noqa: E402

_register_strategy(app)
from arrears.users.cli import app as _user_app  # noqa: E402
from arrears.users.cli import token_app as _token_app  # noqa: E402

app.add_typer(_user_app, name="user")
app.add_typer(_token_app, name="token")
from arrears.channels.cli import register as _register_channels  # noqa: E402

_register_channels(app)  # template, letters, channels, dispatch, worker
settle()

if __name__ == "__main__":  # pragma: no cover
    app()
