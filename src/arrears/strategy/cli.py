"""Command line for the daily run, explanations, work queues and strategies (registered by `arrears.cli`).

arrears run --as-of 2026-03-02 [--portfolio P] [--dry-run] [--partitions 4 --distributed]
arrears explain ACCOUNT_ID --as-of 2026-03-02
arrears queue show --collector zhang [--at 2026-03-02T10:00+08:00]
arrears queue allocate --portfolio P [--as-of D]                       (by rule)
arrears queue allocate --cases 12,13 --to zhang --reason "..." --by li  (by hand)
arrears queue collector zhang --queues early,late --cap 300
arrears strategy assign P default [--challenger other --share-bp 1000]
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

import typer
from rich.table import Table

queue_app = typer.Typer(help="Work queues and allocation / 工作队列与分案", no_args_is_help=True)
strategy_app = typer.Typer(help="Strategies and runs / 催收策略与批次", no_args_is_help=True)


def register(app: typer.Typer) -> None:
    """Add the commands to the main `arrears` app."""
    from arrears.cli import friendly

    app.command("run")(friendly(run_cmd))
    app.command("explain")(friendly(explain_cmd))
    app.add_typer(queue_app, name="queue")
    app.add_typer(strategy_app, name="strategy")


def _console() -> Any:
    from arrears.cli import console

    return console


def _session() -> Any:
    from arrears.cli import _engine
    from arrears.db import session_scope

    return session_scope(_engine())


def _portfolio_name(session: Any, portfolio: str | None) -> str:
    from arrears.cli import _default_portfolio

    return portfolio or _default_portfolio(session)


class _PhaseBars:
    """One rich progress bar per phase of the run."""

    def __init__(self, progress: Any) -> None:
        self.progress = progress
        self.tasks: dict[str, Any] = {}

    def __call__(self, phase: str, done: int, total: int) -> None:
        if phase not in self.tasks:
            self.tasks[phase] = self.progress.add_task(phase, total=total)
        self.progress.update(self.tasks[phase], completed=done, total=total)


def run_cmd(
    as_of: Annotated[str | None, typer.Option("--as-of", help="Run date YYYY-MM-DD (default: today)")] = None,
    portfolio: Annotated[str | None, typer.Option(help="Portfolio name")] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Show what would happen; write nothing")] = False,
    partitions: Annotated[int, typer.Option(help="Split the portfolio's cases into this many parts")] = 1,
    distributed: Annotated[
        bool, typer.Option("--distributed", help="Run the parts on Celery workers")
    ] = False,
    queue: Annotated[str, typer.Option(help="Celery queue of the workers")] = "arrears",
) -> None:
    """The daily run: stages, planned messages and tasks, compliance check, allocation / 每日批处理."""
    from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    from arrears import clock
    from arrears.cli import _engine, err_console
    from arrears.errors import ValidationFailed
    from arrears.strategy import run as daily

    console = _console()
    with _session() as session:
        name = _portfolio_name(session, portfolio)
    as_of_date = clock.parse_as_of(as_of)
    now = clock.now()
    if distributed:
        if dry_run:
            raise ValidationFailed("--dry-run runs in-process only", code="dry_run_distributed")
        from arrears.worker import run_distributed

        with console.status(f"running {name} on workers ({partitions} parts)"):
            report = run_distributed(
                _engine(), portfolio=name, as_of=as_of_date, now=now, partitions=partitions, queue=queue
            )
    else:
        bars = Progress(
            SpinnerColumn(),
            TextColumn("{task.description:<10}"),
            BarColumn(),
            TimeElapsedColumn(),
            console=err_console,
            transient=True,
        )
        with _session() as session, bars:
            report = daily.run_portfolio(
                session,
                portfolio=name,
                as_of=as_of_date,
                now=now,
                dry_run=dry_run,
                partitions=partitions,
                progress=_PhaseBars(bars),
            )
    print_report(report)


def print_report(report: Any) -> None:
    """The run's summary: status, counts by stage and action, blocked by rule, allocation."""
    console = _console()
    o = report.outcome
    status = {
        "succeeded": "[green]完成 succeeded[/green]",
        "dry_run": "[yellow]试运行 dry run: nothing written / 未写入[/yellow]",
    }.get(report.status, report.status)
    run = f"run {report.run_id}" if report.run_id else "no run recorded"
    console.print(f"{report.portfolio} as of {report.as_of}: {status} ({run}, {report.duration_ms} ms)")
    summary = Table("", "count")
    summary.add_row("accounts evaluated 评估账户", str(o.accounts_evaluated))
    summary.add_row("already decided 已处理（跳过）", str(o.accounts_skipped))
    summary.add_row("messages to outbox 待发消息", str(o.outbox))
    summary.add_row("work items 工作项", str(o.work_items))
    summary.add_row("rescheduled 改期", str(o.rescheduled))
    summary.add_row("dropped 取消", str(o.dropped))
    summary.add_row("changes 变更", str(report.changes))
    console.print(summary)
    for title, counts in (
        ("stage 阶段", o.stage_counts),
        ("action 动作", o.action_counts),
        ("blocked by rule 合规拦截", o.blocked_by_rule),
        ("allocation 分案", report.allocation_counts),
        ("arm 实验组", o.arm_counts),
    ):
        if counts:
            table = Table(title, "count")
            for key, n in sorted(counts.items()):
                table.add_row(key, str(n))
            console.print(table)
    for error in o.errors:
        console.print(f"[red]error[/red] {error}")


def explain_cmd(
    account: Annotated[int, typer.Argument(help="Account id")],
    as_of: Annotated[str | None, typer.Option("--as-of", help="Date YYYY-MM-DD (default: today)")] = None,
    json_out: Annotated[bool, typer.Option("--json", help="Print JSON")] = False,
) -> None:
    """Why an account has its stage and actions on a date (PI-7) / 解释决策."""
    from arrears import clock
    from arrears.strategy import service

    console = _console()
    with _session() as session:
        e = service.explain_account(session, account_id=account, as_of=clock.parse_as_of(as_of))
    if json_out:
        console.print_json(e.model_dump_json())
        return
    stage = f"{e.stage_label_zh} / {e.stage_label_en}" if e.stage else (f"exit: {e.exit}" if e.exit else "-")
    console.print(
        f"account {e.account_id} on {e.as_of} ({e.source}): {stage}; DPD {e.dpd}, "
        f"priority {e.priority}, strategy {e.strategy} v{e.strategy_version}"
        + (f" [{e.arm}]" if e.arm else "")
    )
    for r in e.reasons:
        console.print(f"  - {r.zh} / {r.en}")
    for r in e.suppressed:
        console.print(f"  [yellow]suppressed[/yellow] {r.zh} / {r.en}")
    if e.actions:
        table = Table("action 动作", "status 状态", "planned for 计划时间", "rules 规则", "why 原因")
        for a in e.actions:
            table.add_row(
                a.action_key,
                a.status,
                a.planned_for.isoformat() if a.planned_for else "-",
                ", ".join(a.rule_ids),
                a.reason or "",
            )
        console.print(table)


@queue_app.command("show")
def queue_show(
    collector: Annotated[str, typer.Option(help="Collector username or id")],
    at: Annotated[str | None, typer.Option(help="Moment (ISO, with offset); default now")] = None,
) -> None:
    """A collector's calls and visits, highest priority first / 催收员工作队列."""
    from arrears.cli import friendly

    friendly(_queue_show)(collector, at)


def _at(text: str | None) -> datetime:
    from arrears import clock
    from arrears.errors import ValidationFailed

    if text is None:
        return clock.now()
    try:
        return clock.as_utc(datetime.fromisoformat(text))
    except ValueError as exc:
        raise ValidationFailed(f"--at must be ISO with an offset, got {text!r}", code="bad_at") from exc


def _user_ref(text: str) -> str | int:
    return int(text) if text.isdigit() else text


def _queue_show(collector: str, at: str | None) -> None:
    from arrears.strategy import queue_service

    moment = _at(at)
    console = _console()
    with _session() as session:
        user = queue_service.get_user(session, _user_ref(collector))
        items = queue_service.work_queue(session, collector_id=user.id, at=moment)
        following = queue_service.next_case_or_idle(session, collector_id=user.id, at=moment)
        table = Table(
            "id", "case 案件", "kind 类型", "priority 优先级", "window 时间窗口", "now 可联系", "status"
        )
        for item in items:
            window = (
                f"{item.window_start_at:%m-%d %H:%M}-{item.window_end_at:%H:%M} UTC"
                if item.window_start_at and item.window_end_at
                else "-"
            )
            table.add_row(
                str(item.id),
                str(item.case_id),
                item.kind,
                str(item.priority),
                window,
                "yes" if queue_service.in_window(item, moment) else "no",
                item.status,
            )
        console.print(f"{user.username}: {len(items)} items 项")
        console.print(table)
        if not isinstance(following, queue_service.Idle):
            console.print(f"next case 下一个案件: {following.case_id} (item {following.id})")
        elif following.empty:
            console.print("no open calls or visits / 没有待处理的电话或外访任务")
        else:
            console.print("no case may be contacted now / 当前无可联系案件")
            if following.waiting:
                console.print(f"  {following.waiting} wait for their window / 个任务的时间窗口尚未开始")
            for reason, count in following.blocked:
                console.print(f"  {count} blocked by {reason.rule_id}: {reason.zh} / {reason.en}")
            if following.resumes_at is not None:
                console.print(f"  earliest 最早: {following.resumes_at:%Y-%m-%d %H:%M} UTC")


@queue_app.command("allocate")
def queue_allocate(
    portfolio: Annotated[str | None, typer.Option(help="Portfolio (allocation by rule)")] = None,
    cases: Annotated[str | None, typer.Option(help="Case ids, comma-separated (manual allocation)")] = None,
    to: Annotated[str | None, typer.Option(help="Collector username or id (manual allocation)")] = None,
    reason: Annotated[str | None, typer.Option(help="Why (manual allocation)")] = None,
    by: Annotated[str | None, typer.Option(help="Supervisor username (manual allocation)")] = None,
    as_of: Annotated[str | None, typer.Option("--as-of", help="Date YYYY-MM-DD (default: today)")] = None,
) -> None:
    """Allocate cases to collectors: by rule for a portfolio, or by hand with a reason / 分案."""
    from arrears.cli import friendly

    friendly(_queue_allocate)(portfolio, cases, to, reason, by, as_of)


def _queue_allocate(
    portfolio: str | None,
    cases: str | None,
    to: str | None,
    reason: str | None,
    by: str | None,
    as_of: str | None,
) -> None:
    from arrears import clock
    from arrears.errors import ValidationFailed
    from arrears.portfolios import service as portfolios
    from arrears.strategy import queue_service

    console = _console()
    day = clock.parse_as_of(as_of)
    with _session() as session:
        if cases is not None:
            if to is None or reason is None or by is None:
                raise ValidationFailed(
                    "manual allocation needs --to, --reason and --by", code="manual_needs_more"
                )
            try:
                ids = [int(x) for x in cases.split(",") if x.strip()]
            except ValueError as exc:
                raise ValidationFailed(f"--cases must be ids, got {cases!r}", code="bad_cases") from exc
            events = queue_service.assign_cases(
                session, case_ids=ids, collector=_user_ref(to), actor=by, reason=reason, as_of=day
            )
            console.print(f"{len(events)} cases allocated to {to} / 已分配 {len(events)} 个案件")
            return
        name = _portfolio_name(session, portfolio)
        p = portfolios.get_portfolio(session, name=name)
        summary = queue_service.allocate_portfolio(session, portfolio_id=p.id, as_of=day)
        table = Table("outcome 结果", "cases 案件")
        for key, n in sorted(summary.counts.items()):
            table.add_row(key, str(n))
        console.print(table)
        console.print(f"changes 变更: {summary.changes}")


@queue_app.command("collector")
def queue_collector(
    user: Annotated[str, typer.Argument(help="Username or id")],
    queues: Annotated[str, typer.Option(help="Queues, comma-separated")],
    cap: Annotated[int, typer.Option(help="Most cases at once")] = 200,
    languages: Annotated[str, typer.Option(help="Languages covered (empty = any)")] = "",
    regions: Annotated[str, typer.Option(help="Regions covered (empty = any)")] = "",
    products: Annotated[str, typer.Option(help="Products covered (empty = any)")] = "",
    creditors: Annotated[str, typer.Option(help="Creditors covered (empty = any)")] = "",
    inactive: Annotated[bool, typer.Option("--inactive", help="Take the collector off allocation")] = False,
) -> None:
    """Set which queues a collector works and their case cap / 设置催收员队列."""
    from arrears.cli import friendly

    friendly(_queue_collector)(user, queues, cap, languages, regions, products, creditors, inactive)


def _split(text: str) -> list[str]:
    return [x.strip() for x in text.split(",") if x.strip()]


def _queue_collector(
    user: str,
    queues: str,
    cap: int,
    languages: str,
    regions: str,
    products: str,
    creditors: str,
    inactive: bool,
) -> None:
    from arrears.strategy import queue_service

    with _session() as session:
        profile = queue_service.set_collector(
            session,
            user=_user_ref(user),
            queues=_split(queues),
            cap=cap,
            languages=_split(languages),
            regions=_split(regions),
            products=_split(products),
            creditors=_split(creditors),
            active=not inactive,
        )
        _console().print(f"collector {user}: queues {', '.join(profile.queues)}, cap {profile.cap}")


@strategy_app.command("assign")
def strategy_assign(
    portfolio: Annotated[str, typer.Argument(help="Portfolio name")],
    strategy: Annotated[str, typer.Argument(help="Strategy name or file (the champion)")],
    challenger: Annotated[str | None, typer.Option(help="Challenger strategy")] = None,
    share_bp: Annotated[
        int | None, typer.Option(help="Challenger share in basis points (1000 = 10%)")
    ] = None,
    queue_set: Annotated[str | None, typer.Option(help="Queue set name")] = None,
    by: Annotated[str | None, typer.Option(help="Administrator username")] = None,
) -> None:
    """Assign a strategy (and optionally a challenger) to a portfolio / 指定催收策略."""
    from arrears.cli import friendly

    friendly(_strategy_assign)(portfolio, strategy, challenger, share_bp, queue_set, by)


def _strategy_assign(
    portfolio: str,
    strategy: str,
    challenger: str | None,
    share_bp: int | None,
    queue_set: str | None,
    by: str | None,
) -> None:
    from arrears.strategy import service

    with _session() as session:
        p = service.assign_strategy(
            session,
            portfolio=portfolio,
            strategy=strategy,
            challenger=challenger,
            challenger_share_bp=share_bp,
            queue_set=queue_set,
            assigned_by=by,
        )
        extra = (
            f", challenger {challenger} at {share_bp if share_bp is not None else 1000} bp"
            if challenger
            else ""
        )
        _console().print(f"portfolio {p.name}: strategy {p.strategy}{extra}")


@strategy_app.command("list")
def strategy_list() -> None:
    """Every available strategy / 可用策略."""
    from arrears.strategy.loader import list_strategies

    table = Table("name", "version", "label", "source")
    for info in list_strategies():
        table.add_row(info.name, str(info.version), f"{info.label_zh} / {info.label_en}", info.source)
    _console().print(table)


@strategy_app.command("runs")
def strategy_runs(portfolio: Annotated[str | None, typer.Option(help="Portfolio name")] = None) -> None:
    """The latest runs and what they did / 最近的批次."""
    from arrears.cli import friendly

    friendly(_strategy_runs)(portfolio)


def _strategy_runs(portfolio: str | None) -> None:
    from arrears.portfolios import service as portfolios
    from arrears.strategy import service

    with _session() as session:
        pid = portfolios.get_portfolio(session, name=portfolio).id if portfolio else None
        table = Table("id", "as of", "status", "mode", "accounts", "changes", "outbox", "work items", "ms")
        for r in service.list_runs(session, portfolio_id=pid):
            table.add_row(
                str(r.id),
                str(r.as_of_date),
                r.status,
                r.mode,
                str(r.accounts_evaluated),
                str(r.changes),
                str(r.outbox_written),
                str(r.work_items_written),
                str(r.duration_ms or ""),
            )
        _console().print(table)
