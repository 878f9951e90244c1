"""`arrears template ...`, `arrears letters ...`, `arrears dispatch`, `arrears worker`, `arrears channels ...`."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

template_app = typer.Typer(help="Message templates / 消息模板", no_args_is_help=True)
letters_app = typer.Typer(help="Letters: print batches and delivery evidence / 信函", no_args_is_help=True)
channels_app = typer.Typer(help="Channel senders / 发送渠道", no_args_is_help=True)


def _friendly(fn: Any) -> Any:
    from arrears.cli import friendly

    return friendly(fn)


def _session() -> Any:
    from arrears.cli import _engine
    from arrears.db import session_scope

    return session_scope(_engine())


def _portfolio_id(session: Any, name: str | None) -> int | None:
    if name is None:
        return None
    from arrears.portfolios import service

    return int(service.get_portfolio(session, name=name).id)


def _moment(text: str | None) -> datetime:
    from arrears import clock
    from arrears.errors import ValidationFailed

    if not text:
        return clock.now()
    try:
        moment = datetime.fromisoformat(text)
    except ValueError as exc:
        raise ValidationFailed(
            f"时间格式应为 ISO 8601 / not an ISO 8601 time: {text!r}", code="bad_time"
        ) from exc
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=clock.zone_info(clock.DEFAULT_ZONE))
    return clock.as_utc(moment)


# --- templates -------------------------------------------------------------------------------------------


@template_app.command("list")
def template_list(
    portfolio: Annotated[
        str | None, typer.Option(help="Portfolio name (its own and global templates)")
    ] = None,
    channel: Annotated[str | None, typer.Option(help="sms, email, letter, lawyer_letter")] = None,
    locale: Annotated[str | None, typer.Option(help="zh_CN or en")] = None,
    all_versions: Annotated[
        bool, typer.Option("--all-versions", help="Every version, not only the newest")
    ] = False,
) -> None:
    """Stored templates / 已保存的模板."""

    def body() -> None:
        from arrears.channels import service
        from arrears.cli import console

        with _session() as session:
            rows = service.list_templates(
                session,
                portfolio_id=_portfolio_id(session, portfolio),
                channel=channel,
                locale=locale,
                all_versions=all_versions,
            )
            table = Table(
                "id", "code 代码", "channel 渠道", "locale", "kind 类型", "version 版本", "portfolio"
            )
            for r in rows:
                table.add_row(
                    str(r.id), r.code, r.channel, r.locale, r.kind, str(r.version), str(r.portfolio_id or "*")
                )
            console.print(table)

    _friendly(body)()


@template_app.command("save")
def template_save(
    code: Annotated[str, typer.Argument(help="Template code the strategy uses, e.g. pre_due_reminder")],
    channel: Annotated[str, typer.Option(help="sms, email, letter, lawyer_letter")],
    kind: Annotated[str, typer.Option(help="debtor, third_party or legal")] = "debtor",
    locale: Annotated[str, typer.Option(help="zh_CN or en")] = "zh_CN",
    body: Annotated[Path | None, typer.Option(help="File with the body (SMS, letter)")] = None,
    part: Annotated[
        list[str] | None, typer.Option(help="NAME=FILE for a part (subject, text, html, title)")
    ] = None,
    portfolio: Annotated[str | None, typer.Option(help="Portfolio name (default: every portfolio)")] = None,
    stage: Annotated[str | None, typer.Option(help="Stage the template is written for")] = None,
) -> None:
    """Lint and save a new version of a template; refused with the offending phrase / 保存模板（先检查）."""

    def run() -> None:
        from arrears.channels import service
        from arrears.cli import console
        from arrears.errors import ValidationFailed

        parts: dict[str, str] = {}
        if body is not None:
            parts["body"] = body.read_text(encoding="utf-8")
        for item in part or []:
            name, sep, file = item.partition("=")
            if not sep:
                raise ValidationFailed(
                    f"--part 应为 NAME=FILE / --part takes NAME=FILE: {item!r}", code="bad_part"
                )
            parts[name.strip()] = Path(file).read_text(encoding="utf-8")
        with _session() as session:
            row = service.save_template(
                session,
                code=code,
                channel=channel,
                locale=locale,
                kind=kind,
                parts=parts,
                portfolio_id=_portfolio_id(session, portfolio),
                stage=stage,
                created_by="cli",
            )
            console.print(
                f"saved 已保存: template {row.id} {row.code} ({row.channel}, {row.locale}) v{row.version}"
            )

    _friendly(run)()


@template_app.command("preview")
def template_preview(
    template_id: Annotated[int, typer.Argument(help="Template id")],
    case: Annotated[int, typer.Option("--case", help="Case id whose data fills the template")],
    account: Annotated[int | None, typer.Option(help="One account of the case (default: all)")] = None,
    as_of: Annotated[str | None, typer.Option("--as-of", help="Date YYYY-MM-DD (default: today)")] = None,
) -> None:
    """Render a template with a real case; SMS length and segments / 用真实案件预览模板."""

    def run() -> None:
        from arrears import clock
        from arrears.channels import service
        from arrears.cli import console

        with _session() as session:
            preview = service.preview_template(
                session,
                template_id=template_id,
                case_id=case,
                account_id=account,
                as_of=clock.parse_as_of(as_of),
            )
        for name, text in preview.parts.items():
            console.print(f"[bold]{name}[/bold]", highlight=False)
            console.print(escape(text), highlight=False)
        if preview.sms is not None:
            s = preview.sms
            warn = " [yellow](too long 过长)[/yellow]" if s.segments > preview.max_segments else ""
            console.print(
                f"SMS: {s.characters} characters 字符, {s.encoding.value}, {s.units} units, "
                f"{s.segments} segment(s) 条{warn}"
            )
        for issue in preview.issues:
            console.print(
                f"[red]! {escape(', '.join(issue.rule_ids))}[/red] {escape(issue.message_zh)} / {escape(issue.message)}"
            )

    _friendly(run)()


# --- letters ---------------------------------------------------------------------------------------------


@letters_app.command("batch")
def letters_batch(
    date_text: Annotated[str, typer.Option("--date", help="Batch date YYYY-MM-DD")],
    portfolio: Annotated[str | None, typer.Option(help="Portfolio name (default: all)")] = None,
    out: Annotated[Path | None, typer.Option(help="Where to write the PDF")] = None,
) -> None:
    """Print the day's letters into one PDF; each is recorded as a demand / 生成当日信函打印批次."""

    def run() -> None:
        from arrears import clock
        from arrears.channels import delivery
        from arrears.cli import console

        batch_date = clock.parse_as_of(date_text)
        with _session() as session:
            batch = delivery.letters_batch(
                session,
                batch_date=batch_date,
                now=clock.now(),
                portfolio_id=_portfolio_id(session, portfolio),
            )
        for message_id, rules in batch.blocked:
            console.print(f"[yellow]blocked 拦截[/yellow] message {message_id}: {', '.join(rules)}")
        for message_id, reason in batch.failed:
            console.print(f"[red]failed 失败[/red] message {message_id}: {reason}")
        if batch.pdf is None:
            console.print("no letters to print 无待打印信函")
            return
        target = out or Path(f"print-batch-{batch_date.isoformat()}.pdf")
        target.write_bytes(batch.pdf)
        console.print(f"{len(batch.letters)} letters 封信函 -> {target} (document {batch.document_id})")

    _friendly(run)()


@letters_app.command("delivered")
def letters_delivered(
    message_id: Annotated[int, typer.Argument(help="Outbox message id of the letter")],
    evidence: Annotated[str, typer.Option(help="Delivery evidence: tracking number, signed receipt ...")],
    at: Annotated[str | None, typer.Option(help="When it was delivered (ISO 8601; default: now)")] = None,
) -> None:
    """Record a letter's delivery evidence; the limitation date counts it (CN-25) / 登记送达凭证."""

    def run() -> None:
        from arrears.channels import delivery
        from arrears.cli import console

        with _session() as session:
            attempt = delivery.record_delivery_evidence(
                session, message_id=message_id, delivered_at=_moment(at), evidence_ref=evidence
            )
            console.print(
                f"delivered 已送达: message {message_id}, contact attempt {attempt.id} ({attempt.evidence_ref})"
            )

    _friendly(run)()


# --- dispatch and workers --------------------------------------------------------------------------------


def dispatch_cmd(
    portfolio: Annotated[str | None, typer.Option(help="Portfolio name (default: all)")] = None,
    batch: Annotated[int | None, typer.Option(help="Messages claimed per pass")] = None,
    at: Annotated[
        str | None, typer.Option(help="Time of the dispatch (ISO 8601; default: the clock)")
    ] = None,
    lease_seconds: Annotated[
        float | None, typer.Option(help="Re-queue rows left in sending this long")
    ] = None,
    max_passes: Annotated[int | None, typer.Option(help="Stop after this many passes")] = None,
    concurrency: Annotated[
        int | None, typer.Option(help="Messages in flight at once (default: [dispatch] concurrency)")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON")] = False,
) -> None:
    """Drain the outbox in-process: claim, gate, send, record / 发送待发消息."""

    def run() -> None:
        from datetime import timedelta

        from arrears import clock
        from arrears.channels import outbox
        from arrears.cli import _engine, console, settle
        from arrears.db import session_factory

        engine = _engine()
        settle()  # the senders, the gate and the models are loaded: a long drain need not collect them
        with _session() as session:
            pid = _portfolio_id(session, portfolio)
        senders = outbox.ConfiguredSenders()
        fixed = _moment(at) if at else None
        try:
            report = outbox.drain(
                session_factory(engine),
                now=fixed if fixed is not None else clock.now,
                senders=senders,
                portfolio_id=pid,
                limit=batch,
                lease_for=timedelta(seconds=lease_seconds) if lease_seconds is not None else None,
                max_passes=max_passes,
                concurrency=concurrency,
                overlap=True,  # each session has its own connection here
            )
        finally:
            senders.close()
        if as_json:
            console.print_json(json.dumps(report.to_dict()))
            return
        table = Table(
            "sent 已发", "blocked 拦截", "retry 重试", "dead letter 死信", "requeued 重排", "stuck 滞留"
        )
        table.add_row(
            str(report.sent),
            str(report.blocked),
            str(report.retry_scheduled),
            str(report.dead_lettered),
            str(report.requeued),
            str(report.stuck),
        )
        console.print(table)

    _friendly(run)()


def worker_cmd(
    queue: Annotated[str, typer.Option(help="Celery queue to consume")] = "arrears",
    concurrency: Annotated[int, typer.Option(help="Worker processes")] = 2,
    beat_seconds: Annotated[
        float, typer.Option(help="Also drain the outbox every N seconds (0: only on request)")
    ] = 0,
) -> None:
    """Start a Celery worker (daily-run partitions and outbox dispatch) / 启动 Celery 工作进程."""
    from arrears.worker import celery_app, schedule_dispatch

    if beat_seconds > 0:
        schedule_dispatch(celery_app, every_s=beat_seconds, queue=queue)
    argv = ["worker", "-Q", queue, f"--concurrency={concurrency}", "-l", "info"]
    if beat_seconds > 0:
        argv.append("--beat")
    celery_app.worker_main(argv)


@channels_app.command("configure")
def channels_configure(
    portfolio: Annotated[str, typer.Option(help="Portfolio name")],
    smtp: Annotated[
        str | None, typer.Option(help="SMTP settings as JSON (no password: password_env)")
    ] = None,
    sms: Annotated[
        str | None, typer.Option(help="SMS gateway settings as JSON (preset, url, secrets_env)")
    ] = None,
) -> None:
    """Set a portfolio's sender settings; secrets stay in environment variables / 设置发送渠道."""

    def run() -> None:
        from arrears.channels import service
        from arrears.cli import console
        from arrears.errors import ValidationFailed

        def parse(text: str | None) -> dict[str, Any] | None:
            if text is None:
                return None
            try:
                loaded = json.loads(text)
            except json.JSONDecodeError as exc:
                raise ValidationFailed(f"不是 JSON / not JSON: {exc}", code="bad_json") from exc
            return dict(loaded)

        with _session() as session:
            pid = _portfolio_id(session, portfolio)
            assert pid is not None
            service.set_channel_settings(session, portfolio_id=pid, smtp=parse(smtp), sms=parse(sms))
            console.print(f"channel settings saved 已保存: {portfolio}")

    _friendly(run)()


def register(app: typer.Typer) -> None:
    """Add the channel commands to the main CLI."""
    app.add_typer(template_app, name="template")
    app.add_typer(letters_app, name="letters")
    app.add_typer(channels_app, name="channels")
    app.command("dispatch")(dispatch_cmd)
    app.command("worker")(worker_cmd)
