"""`arrears compliance ...` and `arrears audit ...`: what-if checks, case explanations, chain verification."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

if TYPE_CHECKING:
    from arrears.compliance.schemas import Decision

app = typer.Typer(
    help="Compliance gate, rule packs, limitation dates / 合规检查、规则包、诉讼时效", no_args_is_help=True
)
audit_app = typer.Typer(help="Evidence and audit / 证据与审计", no_args_is_help=True)


def _friendly(fn: Any) -> Any:
    from arrears.cli import friendly

    return friendly(fn)


def _print_decision(decision: Decision, zone: str | None = None) -> None:
    from arrears.cli import console

    if decision.allowed:
        console.print(f"[green]允许 allowed[/green]  (pack {decision.pack}, at {decision.at.isoformat()})")
    else:
        console.print(
            f"[red]拦截 blocked[/red] {escape(', '.join(decision.rule_ids))}  "
            f"(pack {decision.pack}, at {decision.at.isoformat()})"
        )
    for r in decision.reasons:
        console.print(f"  - {escape(r.rule_id)}: {escape(r.zh)}\n    {escape(r.en)}", highlight=False)
    for w in decision.warnings:
        console.print(
            f"  [yellow]! {escape(w.rule_id)}[/yellow]: {escape(w.zh)}\n    {escape(w.en)}", highlight=False
        )
    if not decision.allowed:
        if decision.next_allowed_at is None:
            console.print(
                "  最早允许时间：无（需人工处理或新的事实） / earliest allowed: none (a person or new facts must lift it)"
            )
        else:
            shown = decision.next_allowed_at.isoformat()
            if zone:
                from arrears.clock import to_local

                shown += f" ({to_local(decision.next_allowed_at, zone).strftime('%Y-%m-%d %H:%M')} {zone})"
            console.print(f"  最早允许时间 earliest allowed: {shown}")


@app.command("check")
def check(
    file: Annotated[Path, typer.Argument(help="What-if request (JSON: pack, attempt, history, context)")],
    pack: Annotated[
        str | None, typer.Option(help="Rule pack name or .toml path (replaces the file's pack)")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the decision as JSON")] = False,
) -> None:
    """What if: decide an attempt against a rule pack without touching any data. Exit 1 when blocked."""
    _friendly(_check)(file, pack, as_json)


def _check(file: Path, pack: str | None, as_json: bool) -> None:
    from pydantic import ValidationError

    from arrears.cli import console
    from arrears.compliance.pack import load_pack
    from arrears.compliance.rules import decide
    from arrears.compliance.whatif import CheckRequest, resolve_pack, to_core
    from arrears.errors import NotFound, ValidationFailed

    if not file.is_file():
        raise NotFound(f"文件不存在 / file not found: {file}", code="file_not_found")
    try:
        request = CheckRequest.model_validate_json(file.read_bytes())
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or '(top level)'}: {err['msg']}" for err in exc.errors()
        )
        raise ValidationFailed(f"{file}: {problems}", code="bad_check_request") from None
    rule_pack = load_pack(pack) if pack else resolve_pack(request.pack)
    attempt, history, context = to_core(request)
    decision = decide(attempt, history, context, rule_pack)
    if as_json:
        console.print_json(json.dumps(decision.to_dict(), ensure_ascii=False))
    else:
        _print_decision(decision, context.portfolio_time_zone or rule_pack.default_time_zone)
    if not decision.allowed:
        raise typer.Exit(1)


@app.command("explain")
def explain(
    case_id: Annotated[int, typer.Argument(help="Case id")],
    at: Annotated[
        str | None, typer.Option(help="Moment to check contact at (ISO 8601 with zone; default now)")
    ] = None,
    as_of: Annotated[
        str | None, typer.Option("--as-of", help="Date for limitation dates (YYYY-MM-DD)")
    ] = None,
    collector: Annotated[str, typer.Option(help="Collector the check is for")] = "in_house",
    last: Annotated[int, typer.Option(help="How many recent attempts to show")] = 20,
) -> None:
    """Explain a case: may each contact point be called now, limitation dates and why, flags, the record."""
    _friendly(_explain)(case_id, at, as_of, collector, last)


def _explain(case_id: int, at_text: str | None, as_of_text: str | None, collector: str, last: int) -> None:
    from sqlalchemy import select

    from arrears import clock
    from arrears.cli import _engine, console
    from arrears.compliance import service
    from arrears.compliance.rules import decide
    from arrears.compliance.schemas import Attempt, Direction
    from arrears.contacts import service as contacts
    from arrears.db import session_scope
    from arrears.enums import Channel
    from arrears.errors import NotFound, ValidationFailed
    from arrears.models import Account, Case, ContactPoint, Portfolio

    with session_scope(_engine()) as session:
        case = session.get(Case, case_id)
        if case is None:
            raise NotFound(f"案件不存在：{case_id} / case {case_id} not found", code="case_not_found")
        portfolio = session.get(Portfolio, case.portfolio_id)
        assert portfolio is not None
        zone = portfolio.timezone
        try:
            at = datetime.fromisoformat(at_text) if at_text else clock.now()
        except ValueError:
            raise ValidationFailed(f"--at must be ISO 8601, got {at_text!r}", code="bad_at") from None
        at = clock.as_utc(at)
        as_of = (
            clock.parse_as_of(as_of_text, zone) if as_of_text else at.astimezone(clock.zone_info(zone)).date()
        )
        console.print(
            f"[bold]案件 case {case.id}[/bold]  portfolio {escape(portfolio.name)}  rule pack {portfolio.rule_pack}"
            f"  zone {zone}  at {clock.to_local(at, zone).strftime('%Y-%m-%d %H:%M')}"
        )

        # May each contact point be used now?
        points = session.scalars(
            select(ContactPoint).where(ContactPoint.debtor_id == case.debtor_id).order_by(ContactPoint.id)
        ).all()
        base = service.gate_inputs(
            session,
            case_id=case_id,
            contact_point_id=None,
            channel=Channel.CALL,
            at=at,
            collector=collector,
            full_history=True,  # third-party contact points below need the whole record (CN-3)
        )
        gate = Table(
            "contact point 联系方式",
            "whose 归属",
            "channel 渠道",
            "decision 结论",
            "next allowed 最早允许",
            title="may we contact now? 现在可以联系吗",
        )
        gate.columns[3].overflow = "fold"
        for p in points:
            if not p.is_valid:
                continue
            channels = (
                [Channel.CALL, Channel.SMS]
                if p.kind in ("mobile",)
                else [Channel.CALL]
                if p.kind == "landline"
                else [Channel.EMAIL]
                if p.kind == "email"
                else [Channel.LETTER, Channel.VISIT]
            )
            for ch in channels:
                attempt = Attempt(
                    at=at,
                    channel=ch,
                    contact_point=service._contact_point(p),
                    account_ids=base.attempt.account_ids,
                    collector_id=collector,
                    direction=Direction.OUTBOUND,
                )
                d = decide(attempt, base.history, base.context, base.pack)
                nxt = (
                    clock.to_local(d.next_allowed_at, zone).strftime("%Y-%m-%d %H:%M")
                    if d.next_allowed_at and not d.allowed
                    else ""
                )
                verdict = (
                    "[green]allowed 允许[/green]"
                    if d.allowed
                    else f"[red]blocked {', '.join(d.rule_ids)}[/red]"
                )
                gate.add_row(f"#{p.id} {p.kind}", p.owner_relation, ch.value, verdict, nxt)
                for r in d.reasons:
                    gate.add_row("", "", "", f"  {escape(r.zh)}", "")
        console.print(gate)

        # Flags
        if base.context.flags:
            flags = Table(
                "account 账户", "flag 标记", "until 截止", "reason 原因", title="active flags 生效标记"
            )
            for f in base.context.flags:
                flags.add_row(
                    str(f.account_id or "all"),
                    f.kind.value,
                    f.expires_at.isoformat() if f.expires_at else "",
                    f.reason or "",
                )
            console.print(flags)

        # Limitation dates
        lim = Table(
            "account 账户",
            "ref",
            "limitation date 时效届满",
            "time-barred 已过时效",
            "set by 依据",
            "why 说明",
            title=f"limitation 诉讼时效 (as of {as_of})",
        )
        accounts = session.scalars(
            select(Account).where(Account.case_id == case_id).order_by(Account.id)
        ).all()
        results = (
            service.limitations(
                session, scope=service.AccountScope(account_ids=tuple(a.id for a in accounts)), as_of=as_of
            )
            if accounts
            else {}
        )
        for a in accounts:
            res = results.get(a.id)
            if res is None:
                lim.add_row(str(a.id), a.external_ref, "-", "-", "-", "rule pack has no limitation rule")
                continue
            set_by = f"{res.set_by.kind.value} {res.set_by.on} {res.set_by.ref or ''}" if res.set_by else ""
            lim.add_row(
                str(a.id),
                escape(a.external_ref),
                str(res.limitation_on or "-"),
                "[red]yes 是[/red]" if res.time_barred else "no 否",
                escape(set_by),
                escape(f"{res.explanation.zh}\n{res.explanation.en}"),
            )
            for event, why in res.ignored:
                lim.add_row("", "", "", "", escape(f"ignored {event.kind.value} {event.on}"), escape(why.en))
        console.print(lim)

        # The record
        record = contacts.list_attempts(session, case_id=case_id)
        rec = Table(
            "#",
            "id",
            "started 开始",
            "channel",
            "dir",
            "cp",
            "outcome 结果",
            "gate 检查",
            "corrects",
            title=f"contact record 催收记录 (last {last} of {len(record)})",
        )
        for row in record[-last:]:
            gate_txt = "[green]allowed[/green]" if row.allowed else f"[red]blocked {row.rule_ids}[/red]"
            rec.add_row(
                str(row.seq),
                str(row.id),
                clock.to_local(row.started_at, zone).strftime("%Y-%m-%d %H:%M"),
                row.channel,
                row.direction,
                str(row.contact_point_id or ""),
                row.outcome,
                gate_txt,
                str(row.corrects_id or ""),
            )
        console.print(rec)
        report = contacts.verify_chain(session, case_id=case_id)
        if report.ok:
            console.print(f"[green]hash chain intact 哈希链完整[/green] ({report.attempts} attempts)")
        else:
            for b in report.broken:
                console.print(f"[red]hash chain broken 哈希链断裂[/red] {escape(b.zh)} / {escape(b.en)}")


@app.command("limitations")
def limitations_refresh(
    portfolio: Annotated[str, typer.Argument(help="Portfolio name")],
    as_of: Annotated[str | None, typer.Option("--as-of", help="Date (YYYY-MM-DD; default today)")] = None,
) -> None:
    """Recompute and store limitation dates of a portfolio; flag time-barred accounts (daily run step)."""
    _friendly(_limitations)(portfolio, as_of)


def _limitations(portfolio_name: str, as_of_text: str | None) -> None:
    from arrears import clock
    from arrears.cli import _engine, console
    from arrears.compliance import service
    from arrears.db import session_scope
    from arrears.portfolios import service as portfolios

    with session_scope(_engine()) as session:
        p = portfolios.get_portfolio(session, name=portfolio_name)
        as_of = clock.parse_as_of(as_of_text, p.timezone)
        result = service.refresh_limitations(session, portfolio_id=p.id, as_of=as_of)
        console.print(
            f"{escape(p.name)} as of {as_of}: {result.accounts} accounts, {result.time_barred} time-barred "
            f"已过时效, {len(result.newly_time_barred)} newly time-barred 新增"
        )


@audit_app.command("verify")
def verify(
    case: Annotated[int | None, typer.Option("--case", help="Only this case")] = None,
    anchor: Annotated[
        str | None,
        typer.Option(
            "--anchor",
            help="Also check against an anchor: the JSON file `audit anchor --out` wrote, or its digest",
        ),
    ] = None,
) -> None:
    """Verify every case's contact-record hash chain; report the first broken link. Exit 1 if broken.

    With --anchor, also check that every chain head recorded by that anchor is still there, unchanged: a
    newest attempt rewritten and re-hashed after the anchor is found this way.
    """
    _friendly(_verify)(case, anchor)


def _anchor_ref(text: str) -> tuple[str, int | None]:
    import re

    from arrears.errors import ValidationFailed

    path = Path(text)
    if path.is_file():
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            return str(data["digest"]), int(data["anchor_id"]) if data.get("anchor_id") is not None else None
        except (ValueError, KeyError, TypeError):
            raise ValidationFailed(
                f"{path}: 不是 `arrears audit anchor --out` 写出的锚点文件 / not an anchor file written by "
                "`arrears audit anchor --out` (needs digest and anchor_id)",
                code="bad_anchor_file",
            ) from None
    if re.fullmatch(r"[0-9a-fA-F]{64}", text.strip()):
        return text.strip().lower(), None
    raise ValidationFailed(
        f"--anchor 须为锚点文件或 64 位十六进制摘要 / --anchor must be an anchor file or a 64-hex digest: {text!r}",
        code="bad_anchor",
    )


def _verify(case: int | None, anchor: str | None) -> None:
    from arrears.cli import _engine, console, err_console
    from arrears.contacts import service as contacts
    from arrears.db import session_scope

    ref = _anchor_ref(anchor) if anchor is not None else None
    with session_scope(_engine()) as session:
        report = contacts.verify_chain(session, case_id=case)
        problems = contacts.verify_anchor(session, digest=ref[0], anchor_id=ref[1]) if ref else []
    if case is not None:
        problems = [p for p in problems if p.case_id in (None, case)]
    for b in report.broken:
        err_console.print(
            f"[red]BROKEN 断裂[/red] case {b.case_id} attempt #{b.seq} (id {b.attempt_id}) {escape(f'[{b.problem}]')}: "
            f"{escape(b.en)} / {escape(b.zh)}",
            highlight=False,
            soft_wrap=True,
        )
    for p in problems:
        where = f"case {p.case_id} attempt #{p.seq} (id {p.attempt_id}) " if p.case_id is not None else ""
        err_console.print(
            f"[red]ANCHOR 锚点[/red] {where}{escape(f'[{p.problem}]')}: {escape(p.en)} / {escape(p.zh)}",
            highlight=False,
            soft_wrap=True,
        )
    if report.ok and not problems:
        anchored = " and every anchored head is unchanged 锚定链头未变" if ref else ""
        console.print(
            f"[green]ok 完整[/green]: {report.cases} cases, {report.attempts} contact attempts; every hash chain"
            f" holds{anchored}"
        )
        return
    console.print(
        f"{len(report.broken)} of {report.cases} cases have a broken chain ({report.attempts} attempts checked)"
        + (f"; {len(problems)} anchor problem(s)" if ref else "")
    )
    raise typer.Exit(1)


@audit_app.command("anchor")
def anchor_command(
    at: Annotated[
        str | None, typer.Option("--at", help="Moment recorded (ISO 8601 with zone; default now)")
    ] = None,
    out: Annotated[
        Path | None, typer.Option("--out", help="Also write the anchor (JSON) to this file")
    ] = None,
) -> None:
    """Record every case's chain head and print their digest: keep it outside the database (JSON)."""
    _friendly(_anchor)(at, out)


def _anchor(at: str | None, out: Path | None) -> None:
    from arrears.cli import _engine
    from arrears.contacts import service as contacts
    from arrears.db import session_scope

    with session_scope(_engine()) as session:
        anchor = contacts.anchor_chains(session, at=_moment(at))
    payload = anchor.to_dict()
    if out is not None:
        out.write_text(json.dumps(payload, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
    _print_json(payload)


# --- what the debtor asked for: consents, inconvenient times, opt-outs -------------------------------

consent_app = typer.Typer(help="Debtor consents (CN-1, CN-2, US-1, US-4) / 债务人同意", no_args_is_help=True)
times_app = typer.Typer(
    help="Inconvenient times the debtor named (US-1) / 不便联系时段", no_args_is_help=True
)
opt_out_app = typer.Typer(
    help="Channel and contact-point opt-outs (ALL-2, US-13) / 退订", no_args_is_help=True
)
app.add_typer(consent_app, name="consent")
app.add_typer(times_app, name="inconvenient-time")
app.add_typer(opt_out_app, name="opt-out")

AtOption = Annotated[
    str | None, typer.Option("--at", help="When (ISO 8601 with zone; default now) / 时间（含时区）")
]


def _moment(text: str | None, name: str = "--at") -> datetime:
    from arrears import clock
    from arrears.errors import ValidationFailed

    if text is None:
        return clock.now()
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise ValidationFailed(
            f"{name} 须为 ISO 8601 时间 / {name} must be ISO 8601, got {text!r}", code="bad_time"
        ) from None
    if moment.tzinfo is None:
        raise ValidationFailed(
            f"{name} 须带时区，如 +08:00 / {name} needs a zone offset such as +08:00: {text!r}",
            code="naive_datetime",
        )
    return clock.as_utc(moment)


def _time_of_day(text: str, name: str) -> Any:
    from datetime import time as time_of_day

    from arrears.errors import ValidationFailed

    try:
        return time_of_day.fromisoformat(text)
    except ValueError:
        raise ValidationFailed(
            f"{name} 须为 HH:MM / {name} must be HH:MM, got {text!r}", code="bad_time"
        ) from None


def _print_json(payload: Any) -> None:
    from arrears.cli import console

    console.print_json(json.dumps(payload, ensure_ascii=False, default=str))


def _dump(model: Any) -> Any:
    return model.model_dump(mode="json")


@consent_app.command("add")
def consent_add(
    debtor_id: Annotated[int, typer.Argument(help="Debtor id")],
    scope: Annotated[str, typer.Option(help="quiet_hours | call_cap | call_frequency")],
    granted_at: AtOption = None,
    expires_at: Annotated[str | None, typer.Option("--expires-at", help="Until (ISO 8601 with zone)")] = None,
    contact_point: Annotated[
        int | None, typer.Option("--contact-point", help="Only this contact point")
    ] = None,
    account: Annotated[list[int] | None, typer.Option("--account", help="Only these debts (repeat)")] = None,
) -> None:
    """Record a consent of the debtor; the gate honours it from --at until --expires-at or revocation."""
    _friendly(_consent_add)(debtor_id, scope, granted_at, expires_at, contact_point, account)


def _consent_add(
    debtor_id: int,
    scope: str,
    granted_at: str | None,
    expires_at: str | None,
    contact_point: int | None,
    account: list[int] | None,
) -> None:
    from arrears.api.v1.compliance import _consent_out
    from arrears.cli import _engine
    from arrears.contacts import service as contacts
    from arrears.db import session_scope

    with session_scope(_engine()) as session:
        row = contacts.add_consent(
            session,
            debtor_id=debtor_id,
            scope=scope,
            granted_at=_moment(granted_at),
            expires_at=_moment(expires_at, "--expires-at") if expires_at else None,
            contact_point_id=contact_point,
            account_ids=account or None,
        )
        _print_json(_dump(_consent_out(row)))


@consent_app.command("list")
def consent_list(
    debtor_id: Annotated[int, typer.Argument(help="Debtor id")],
    include_ended: Annotated[bool, typer.Option("--all", help="Also revoked consents")] = False,
) -> None:
    """The debtor's consents (JSON)."""
    _friendly(_consent_list)(debtor_id, include_ended)


def _consent_list(debtor_id: int, include_ended: bool) -> None:
    from arrears.api.v1.compliance import _consent_out
    from arrears.cli import _engine
    from arrears.contacts import service as contacts
    from arrears.db import session_scope

    with session_scope(_engine()) as session:
        rows = contacts.list_consents(session, debtor_id=debtor_id, include_ended=include_ended)
        _print_json([_dump(_consent_out(r)) for r in rows])


@consent_app.command("revoke")
def consent_revoke(
    debtor_id: Annotated[int, typer.Argument(help="Debtor id")],
    consent_id: Annotated[int, typer.Argument(help="Consent id")],
    at: AtOption = None,
) -> None:
    """The debtor withdrew a consent (the record stays, with the time it ended)."""
    _friendly(_consent_revoke)(debtor_id, consent_id, at)


def _consent_revoke(debtor_id: int, consent_id: int, at: str | None) -> None:
    from arrears.api.v1.compliance import _consent_out
    from arrears.cli import _engine
    from arrears.contacts import service as contacts
    from arrears.db import session_scope

    with session_scope(_engine()) as session:
        row = contacts.revoke_consent(session, debtor_id=debtor_id, consent_id=consent_id, at=_moment(at))
        _print_json(_dump(_consent_out(row)))


@times_app.command("add")
def times_add(
    debtor_id: Annotated[int, typer.Argument(help="Debtor id")],
    starts: Annotated[str, typer.Option("--from", help="Start, debtor's local time (HH:MM)")],
    ends: Annotated[
        str, typer.Option("--to", help="End, debtor's local time (HH:MM); before --from wraps midnight")
    ],
    weekday: Annotated[
        list[int] | None,
        typer.Option("--weekday", help="0 = Monday .. 6 = Sunday (repeat); none = every day"),
    ] = None,
) -> None:
    """Record a time the debtor named as inconvenient; the gate blocks contact in it."""
    _friendly(_times_add)(debtor_id, starts, ends, weekday or [])


def _times_add(debtor_id: int, starts: str, ends: str, weekdays: list[int]) -> None:
    from arrears.api.v1.compliance import _window_out
    from arrears.cli import _engine
    from arrears.contacts import service as contacts
    from arrears.db import session_scope

    with session_scope(_engine()) as session:
        row = contacts.add_inconvenient_time(
            session,
            debtor_id=debtor_id,
            starts=_time_of_day(starts, "--from"),
            ends=_time_of_day(ends, "--to"),
            weekdays=weekdays,
        )
        _print_json(_dump(_window_out(row)))


@times_app.command("list")
def times_list(
    debtor_id: Annotated[int, typer.Argument(help="Debtor id")],
    include_ended: Annotated[bool, typer.Option("--all", help="Also removed ones")] = False,
) -> None:
    """The times the debtor named as inconvenient (JSON)."""
    _friendly(_times_list)(debtor_id, include_ended)


def _times_list(debtor_id: int, include_ended: bool) -> None:
    from arrears.api.v1.compliance import _window_out
    from arrears.cli import _engine
    from arrears.contacts import service as contacts
    from arrears.db import session_scope

    with session_scope(_engine()) as session:
        rows = contacts.list_inconvenient_times(session, debtor_id=debtor_id, include_ended=include_ended)
        _print_json([_dump(_window_out(r)) for r in rows])


@times_app.command("remove")
def times_remove(
    debtor_id: Annotated[int, typer.Argument(help="Debtor id")],
    window_id: Annotated[int, typer.Argument(help="Inconvenient time id")],
    at: AtOption = None,
) -> None:
    """The debtor no longer names this time as inconvenient."""
    _friendly(_times_remove)(debtor_id, window_id, at)


def _times_remove(debtor_id: int, window_id: int, at: str | None) -> None:
    from arrears.api.v1.compliance import _window_out
    from arrears.cli import _engine
    from arrears.contacts import service as contacts
    from arrears.db import session_scope

    with session_scope(_engine()) as session:
        row = contacts.remove_inconvenient_time(
            session, debtor_id=debtor_id, window_id=window_id, at=_moment(at)
        )
        _print_json(_dump(_window_out(row)))


@opt_out_app.command("add")
def opt_out_add(
    debtor_id: Annotated[int, typer.Argument(help="Debtor id")],
    channel: Annotated[str | None, typer.Option(help="A whole channel: sms, email, call ...")] = None,
    contact_point: Annotated[int | None, typer.Option("--contact-point", help="Or one contact point")] = None,
    at: AtOption = None,
) -> None:
    """Record an opt-out of a channel or of one contact point."""
    _friendly(_opt_out_add)(debtor_id, channel, contact_point, at)


def _opt_out_add(debtor_id: int, channel: str | None, contact_point: int | None, at: str | None) -> None:
    from arrears.api.v1.compliance import _channel_opt_out, _point_opt_out
    from arrears.cli import _engine
    from arrears.contacts import service as contacts
    from arrears.db import session_scope
    from arrears.errors import ValidationFailed

    if (channel is None) == (contact_point is None):
        raise ValidationFailed(
            "请给出 --channel 或 --contact-point 之一 / give exactly one of --channel and --contact-point",
            code="bad_opt_out",
        )
    with session_scope(_engine()) as session:
        if channel is not None:
            row = contacts.opt_out_channel(
                session,
                debtor_id=debtor_id,
                channel=channel,
                at=_moment(at),
            )
            _print_json(_dump(_channel_opt_out(row)))
        else:
            assert contact_point is not None
            point = contacts.set_contact_point_opt_out(
                session, debtor_id=debtor_id, contact_point_id=contact_point, opted_out=True, at=_moment(at)
            )
            _print_json(_dump(_point_opt_out(point)))


@opt_out_app.command("list")
def opt_out_list(
    debtor_id: Annotated[int, typer.Argument(help="Debtor id")],
    include_ended: Annotated[bool, typer.Option("--all", help="Also withdrawn channel opt-outs")] = False,
) -> None:
    """The debtor's channel opt-outs (JSON)."""
    _friendly(_opt_out_list)(debtor_id, include_ended)


def _opt_out_list(debtor_id: int, include_ended: bool) -> None:
    from arrears.api.v1.compliance import _channel_opt_out
    from arrears.cli import _engine
    from arrears.contacts import service as contacts
    from arrears.db import session_scope

    with session_scope(_engine()) as session:
        rows = contacts.list_opt_outs(session, debtor_id=debtor_id, include_ended=include_ended)
        _print_json([_dump(_channel_opt_out(r)) for r in rows])


@opt_out_app.command("withdraw")
def opt_out_withdraw(
    debtor_id: Annotated[int, typer.Argument(help="Debtor id")],
    opt_out_id: Annotated[int | None, typer.Argument(help="Channel opt-out id")] = None,
    contact_point: Annotated[
        int | None, typer.Option("--contact-point", help="Or opt this contact point back in")
    ] = None,
    at: AtOption = None,
) -> None:
    """The debtor wants to hear on a channel (or a contact point) again."""
    _friendly(_opt_out_withdraw)(debtor_id, opt_out_id, contact_point, at)


def _opt_out_withdraw(
    debtor_id: int, opt_out_id: int | None, contact_point: int | None, at: str | None
) -> None:
    from arrears.api.v1.compliance import _channel_opt_out, _point_opt_out
    from arrears.cli import _engine
    from arrears.contacts import service as contacts
    from arrears.db import session_scope
    from arrears.errors import ValidationFailed

    if (opt_out_id is None) == (contact_point is None):
        raise ValidationFailed(
            "请给出退订编号或 --contact-point 之一 / give exactly one of an opt-out id and --contact-point",
            code="bad_opt_out",
        )
    with session_scope(_engine()) as session:
        if opt_out_id is not None:
            row = contacts.withdraw_opt_out(
                session, debtor_id=debtor_id, opt_out_id=opt_out_id, at=_moment(at)
            )
            _print_json(_dump(_channel_opt_out(row)))
        else:
            assert contact_point is not None
            point = contacts.set_contact_point_opt_out(
                session, debtor_id=debtor_id, contact_point_id=contact_point, opted_out=False, at=_moment(at)
            )
            _print_json(_dump(_point_opt_out(point)))
