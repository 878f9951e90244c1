"""Templates in the database, a case's data for rendering, and each portfolio's senders.

Templates are stored per (portfolio or every portfolio, code, channel, locale), with a kind (debtor, third
party, legal: CN-4) and a version: saving never changes a row, it adds the next version, and the newest
version is the one in use. Saving lints the template twice and refuses it with the offending phrase:

- ``channels.templates.validate_parts``: syntax, placeholders allowed for the kind (CN-4), required
  placeholders (CN-5, CN-8);
- ``compliance.lint.lint_text`` against the portfolio's rule pack: forbidden phrases (CN-5, CN-6),
  third-party disclosure (CN-4), required content (CN-8, US-11, US-13).

A message is rendered with `message_context` (the case's debtor, accounts, creditor and the portfolio's
texts). The strategy names templates by code; `resolve_template` finds the newest stored version for the
portfolio, then for every portfolio, then a shipped default with that id and channel.

Sender settings: a JSON document in the ``ARREARS_CHANNELS`` environment variable applies to every
portfolio; a portfolio's ``channel_setting`` row overrides it field by field. Secrets never live in the
database: settings name the environment variables that hold them (``password_env``, ``secrets_env``,
``webhook_secret_env``). Services flush and never commit.
"""

from __future__ import annotations

import json
import os
from collections.abc import Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from functools import cache, lru_cache
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from sqlalchemy import Select, select
from sqlalchemy.orm import Session

from arrears.channels import _data
from arrears.channels import templates as tpl
from arrears.channels.gateways import GatewaySpec, load_preset
from arrears.channels.senders import HttpSmsSender, Sender, SmtpConfig, SmtpSender
from arrears.compliance import batch as gate_batch
from arrears.compliance import service as compliance_service
from arrears.compliance.lint import Finding, lint_text
from arrears.compliance.pack import RulePack
from arrears.compliance.schemas import TemplateKind as LintKind
from arrears.config import get_settings
from arrears.enums import Channel
from arrears.errors import ArrearsError, ComplianceBlocked, ConfigurationError, NotFound, ValidationFailed
from arrears.models import (
    Account,
    Case,
    ChannelSetting,
    ContactPoint,
    Creditor,
    Debtor,
    MessageTemplate,
    Portfolio,
)
from arrears.money import format_minor

ENV_CHANNELS = "ARREARS_CHANNELS"

# Locale formatting (Babel parses the locale on every call): amounts and dates repeat across messages.
_money = lru_cache(maxsize=16384)(format_minor)


_day = lru_cache(maxsize=4096)(tpl.format_letter_date)


def dispatch_settings() -> dict[str, Any]:
    """The ``[dispatch]``, ``[webhook]``, ``[letters]`` and ``[context]`` tables of ``data/dispatch.toml``."""
    return _data.load_toml("dispatch.toml")


# --- linting ---------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class TemplateIssue:
    """One reason a template is refused: code, rule ids, the part and the offending phrase when known."""

    code: str
    message: str
    message_zh: str
    rule_ids: tuple[str, ...] = ()
    part: str | None = None
    match: str | None = None
    highlighted: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """A JSON-friendly form for the API and the error details."""
        return {
            "code": self.code,
            "message": self.message,
            "message_zh": self.message_zh,
            "rule_ids": list(self.rule_ids),
            "part": self.part,
            "match": self.match,
            "highlighted": self.highlighted,
        }


def lint_kind(kind: tpl.TemplateKind, channel: Channel) -> LintKind:
    """The compliance linter's kind for a template kind on a channel (a debtor letter is a CN-8 notice)."""
    if kind is tpl.TemplateKind.THIRD_PARTY:
        return LintKind.THIRD_PARTY
    if kind is tpl.TemplateKind.LEGAL:
        return LintKind.LAWYER_LETTER
    if channel in (Channel.LETTER, Channel.LAWYER_LETTER):
        return LintKind.COLLECTION_NOTICE
    return LintKind.DEBTOR


def _placeholder_name(match: str | None) -> str | None:
    if not match:
        return None
    inner = match.strip().strip("{}").split("|", 1)[0].strip()
    return inner or None


def lint_template(
    *,
    parts: Mapping[str, str],
    channel: Channel,
    kind: tpl.TemplateKind,
    locale: str,
    pack: RulePack,
) -> list[TemplateIssue]:
    """Everything wrong with a template: placeholder rules, then the rule pack's content rules.

    Forbidden phrases are searched part by part (so the finding names its part); required content is
    looked for across all parts together. Templates may serve a first contact, so CN-5 applies.
    """
    issues = [
        TemplateIssue(p.code, p.message, p.message_zh, p.rule_ids, p.part)
        for p in tpl.validate_parts(parts, channel, kind)
    ]
    if any(i.code == "syntax_error" for i in issues):
        return issues
    linted_kind = lint_kind(kind, channel)
    # CN-5 makes a third-party message name the institution (a required placeholder), while the pack's
    # CN-4 list counts that placeholder as a disclosure; the required identification wins for it alone.
    required = {
        name
        for req in tpl.placeholder_rules().required
        if req.kind is kind and req.channel in (None, channel)
        for name in req.placeholders
    }

    def wanted(f: Finding) -> bool:
        return not (f.code == "lint_third_party" and _placeholder_name(f.match) in required)

    for part, source in parts.items():
        result = lint_text(
            source, pack=pack, kind=linted_kind, locale=locale, channel=channel, first_contact=True
        )
        issues += [
            TemplateIssue(f.code, f.en, f.zh, (f.rule_id,), part, f.match, f.highlighted)
            for f in result.findings
            if f.start is not None and wanted(f)
        ]
    joined = "\n".join(parts.values())
    whole = lint_text(joined, pack=pack, kind=linted_kind, locale=locale, channel=channel, first_contact=True)
    issues += [TemplateIssue(f.code, f.en, f.zh, (f.rule_id,)) for f in whole.findings if f.start is None]
    return issues


def _refusal(issues: list[TemplateIssue]) -> ComplianceBlocked | ValidationFailed:
    first = issues[0]
    phrase = f" 「{first.match}」" if first.match else ""
    rules = sorted({r for i in issues for r in i.rule_ids})
    text_en = "; ".join(f"{i.message}" + (f" [{i.match}]" if i.match else "") for i in issues)
    text_zh = "；".join(i.message_zh for i in issues)
    details = {"rule_ids": rules, "issues": [i.to_dict() for i in issues]}
    message = f"模板未通过检查{phrase}：{text_zh} / the template fails its checks: {text_en}"
    if any(i.code.startswith("lint_") for i in issues):
        return ComplianceBlocked(message, code="template_refused", details=details)
    return ValidationFailed(message, code="template_invalid", details=details)


# --- the store -------------------------------------------------------------------------------------------


def _pack_for(session: Session, portfolio_id: int | None) -> tuple[RulePack, Portfolio | None]:
    if portfolio_id is None:
        return compliance_service.rule_pack(get_settings().default_rule_pack), None
    portfolio = session.get(Portfolio, portfolio_id)
    if portfolio is None:
        raise NotFound(
            f"组合不存在：{portfolio_id} / portfolio {portfolio_id} not found", code="portfolio_not_found"
        )
    return compliance_service.rule_pack(portfolio.rule_pack), portfolio


def _check_parts(channel: Channel, parts: Mapping[str, str]) -> dict[str, str]:
    expected = tpl.channel_parts(channel)
    unknown = sorted(set(parts) - set(expected))
    missing = [p for p in expected if p not in parts and p != "html"]
    if unknown or missing:
        raise ValidationFailed(
            f"{channel} 模板的组成部分应为 {list(expected)} / a {channel} template has the parts {list(expected)}"
            f" (unknown: {unknown}, missing: {missing})",
            code="template_parts",
        )
    return {p: str(parts[p]) for p in expected if p in parts}


def save_template(
    session: Session,
    *,
    code: str,
    channel: Channel | str,
    locale: str,
    kind: tpl.TemplateKind | str,
    parts: Mapping[str, str],
    portfolio_id: int | None = None,
    stage: str | None = None,
    created_by: str | None = None,
) -> MessageTemplate:
    """Lint and store a new version of a template; refuse it (with the offending phrase) if it fails.

    Saving the same parts as the newest version stores nothing and returns that version.
    """
    channel, kind = Channel(channel), tpl.TemplateKind(kind)
    if not code or len(code) > 100:
        raise ValidationFailed(
            "模板代码为 1-100 个字符 / a template code has 1-100 characters", code="bad_code"
        )
    loc = tpl.resolve_locale(locale)
    clean = _check_parts(channel, parts)
    pack, _portfolio = _pack_for(session, portfolio_id)
    issues = lint_template(parts=clean, channel=channel, kind=kind, locale=loc, pack=pack)
    if issues:
        raise _refusal(issues)
    same = _versions_query(portfolio_id, code, channel, loc)
    latest = session.scalars(same.order_by(MessageTemplate.version.desc()).limit(1)).first()
    if latest is not None and latest.parts == clean and latest.kind == kind.value and latest.stage == stage:
        return latest
    row = MessageTemplate(
        portfolio_id=portfolio_id,
        code=code,
        channel=channel.value,
        locale=loc,
        kind=kind.value,
        version=(latest.version + 1) if latest else 1,
        parts=clean,
        stage=stage,
        created_by=created_by,
    )
    session.add(row)
    session.flush()
    return row


def _versions_query(
    portfolio_id: int | None, code: str, channel: Channel, locale: str
) -> Select[MessageTemplate]:
    owner = (
        MessageTemplate.portfolio_id.is_(None)
        if portfolio_id is None
        else MessageTemplate.portfolio_id == portfolio_id
    )
    return select(MessageTemplate).where(
        owner,
        MessageTemplate.code == code,
        MessageTemplate.channel == channel.value,
        MessageTemplate.locale == locale,
    )


def list_templates(
    session: Session,
    *,
    portfolio_id: int | None = None,
    code: str | None = None,
    channel: Channel | str | None = None,
    locale: str | None = None,
    all_versions: bool = False,
) -> list[MessageTemplate]:
    """Stored templates (newest version of each unless ``all_versions``); a portfolio's own and global ones."""
    stmt = select(MessageTemplate)
    if portfolio_id is not None:
        stmt = stmt.where(
            (MessageTemplate.portfolio_id == portfolio_id) | MessageTemplate.portfolio_id.is_(None)
        )
    if code is not None:
        stmt = stmt.where(MessageTemplate.code == code)
    if channel is not None:
        stmt = stmt.where(MessageTemplate.channel == Channel(channel).value)
    if locale is not None:
        stmt = stmt.where(MessageTemplate.locale == tpl.resolve_locale(locale))
    rows = list(
        session.scalars(
            stmt.order_by(
                MessageTemplate.code, MessageTemplate.channel, MessageTemplate.locale, MessageTemplate.version
            )
        )
    )
    if all_versions:
        return rows
    newest: dict[tuple[int | None, str, str, str], MessageTemplate] = {}
    for row in rows:  # ordered by version: the last one of each key wins
        newest[(row.portfolio_id, row.code, row.channel, row.locale)] = row
    return list(newest.values())


def get_template(session: Session, *, template_id: int) -> MessageTemplate:
    """One stored template version by id."""
    row = session.get(MessageTemplate, template_id)
    if row is None:
        raise NotFound(
            f"模板不存在：{template_id} / template {template_id} not found", code="template_not_found"
        )
    return row


def to_core(row: MessageTemplate) -> tpl.MessageTemplate:
    """A stored template as the pure core's `MessageTemplate`."""
    return tpl.MessageTemplate(
        id=row.code,
        channel=Channel(row.channel),
        kind=tpl.TemplateKind(row.kind),
        locale=row.locale,
        parts={k: str(v) for k, v in row.parts.items()},
        stage=row.stage,
    )


@dataclass(frozen=True, slots=True)
class ResolvedTemplate:
    """The template a message uses: the stored row's id and version, or None for a shipped default."""

    template: tpl.MessageTemplate
    template_id: int | None
    version: int | None


def resolve_template(
    session: Session, *, portfolio_id: int, code: str, channel: Channel | str, locale: str | None
) -> ResolvedTemplate:
    """The newest version for the portfolio, else for every portfolio, else the shipped default; locale
    falls back to zh_CN. NotFound (``template_not_found``) when none exists."""
    channel = Channel(channel)
    locales = list(dict.fromkeys([tpl.resolve_locale(locale), tpl.DEFAULT_LOCALE]))
    for loc in locales:
        for owner in (portfolio_id, None):
            row = session.scalars(
                _versions_query(owner, code, channel, loc).order_by(MessageTemplate.version.desc()).limit(1)
            ).first()
            if row is not None:
                return ResolvedTemplate(to_core(row), row.id, row.version)
    for loc in locales:
        try:
            shipped = tpl.default_template(code, loc)
        except NotFound:
            break
        if shipped.channel is channel:
            return ResolvedTemplate(shipped, None, None)
    raise NotFound(
        f"没有可用的模板 {code}（{channel}，{locales[0]}） / no template {code!r} for {channel} in {locales[0]}",
        code="template_not_found",
    )


# --- a case's data ---------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class MessageData:
    """What a message to one contact point of a case is rendered with, and where it goes."""

    context: dict[str, str]
    locale: str
    to: str | None
    to_name: str | None
    recipient_address: str | None
    case_reference: str
    account_ids: tuple[int, ...] = field(default=())


def case_reference(case_id: int) -> str:
    """The reference printed on messages and letters for a case."""
    return f"C-{case_id}"


def message_context(
    session: Session,
    *,
    case_id: int,
    as_of: date,
    locale: str | None = None,
    account_id: int | None = None,
    contact_point_id: int | None = None,
) -> MessageData:
    """The placeholders' values for a case (one account, or all of the case's) on ``as_of``.

    Every placeholder any template kind may use gets a value (empty when the data has none), so a
    template that passed the linter always renders.
    """
    case = session.get(Case, case_id)
    if case is None:
        raise NotFound(f"案件不存在：{case_id} / case {case_id} not found", code="case_not_found")
    portfolio = session.get(Portfolio, case.portfolio_id)
    debtor = session.get(Debtor, case.debtor_id)
    assert portfolio is not None and debtor is not None
    creditor = session.get(Creditor, portfolio.creditor_id)
    assert creditor is not None
    if account_id is not None:
        account = session.get(Account, account_id)
        accounts = [account] if account is not None else []
    else:
        accounts = list(
            session.scalars(select(Account).where(Account.case_id == case_id).order_by(Account.id))
        )
    point = session.get(ContactPoint, contact_point_id) if contact_point_id is not None else None
    return _message_data(
        case=case,
        portfolio=portfolio,
        debtor=debtor,
        creditor=creditor,
        accounts=accounts,
        point=point,
        as_of=as_of,
        locale=locale,
        account_id=account_id,
        contact_point_id=contact_point_id,
    )


def _message_data(
    *,
    case: Any,
    portfolio: Any,
    debtor: Any,
    creditor: Any,
    accounts: Sequence[Any],
    point: Any,
    as_of: date,
    locale: str | None,
    account_id: int | None,
    contact_point_id: int | None,
) -> MessageData:
    """The placeholders' values from loaded rows, ORM objects or plain rows with the same attribute names
    (``accounts``: the one asked for, or all of the case's)."""
    case_id = case.id
    if account_id is not None and (not accounts or accounts[0].case_id != case_id):
        raise ValidationFailed(
            f"账户 {account_id} 不属于案件 {case_id} / account {account_id} is not in case {case_id}",
            code="account_not_in_case",
        )
    if contact_point_id is not None and point is not None and point.debtor_id != case.debtor_id:
        raise ValidationFailed(
            f"联系方式 {contact_point_id} 不属于案件 {case_id} 的债务人 / contact point {contact_point_id} "
            f"does not belong to the debtor of case {case_id}",
            code="contact_point_not_in_case",
        )
    loc = tpl.resolve_locale(locale or debtor.preferred_language or portfolio.locale)
    currency = accounts[0].currency if accounts else portfolio.currency
    due_on = min((a.due_date for a in accounts), default=None)
    separator = "、" if loc == "zh_CN" else ", "
    reference = case_reference(case_id)
    context: dict[str, str] = dict(_base_context(loc))
    context.update(
        {
            "debtor_name": debtor.name,
            "recipient_name": (point.owner_name if point is not None and point.owner_name else debtor.name),
            "creditor_name": creditor.name,
            "institution_name": creditor.name,
            "institution_phone": creditor.phone or "",
            "institution_address": creditor.address or "",
            "case_reference": reference,
            "account_reference": separator.join(a.external_ref for a in accounts),
            "amount_due": _money(sum(a.overdue_amount_minor for a in accounts), currency, loc),
            "balance": _money(sum(a.balance_minor for a in accounts), currency, loc),
            "due_date": _day(due_on, loc) if due_on else "",
            "overdue_days": str(max(0, (as_of - due_on).days)) if due_on else "0",
            "letter_date": _day(as_of, loc),
            "opt_out_text": tpl.opt_out_text(loc),
        }
    )
    return MessageData(
        context=context,
        locale=loc,
        to=point.value if point is not None else None,
        to_name=(point.owner_name or debtor.name) if point is not None else debtor.name,
        recipient_address=(point.value if point is not None and point.kind == "address" else debtor.address),
        case_reference=reference,
        account_ids=tuple(a.id for a in accounts),
    )


@cache
def _base_context(loc: str) -> dict[str, str]:
    """Every placeholder any template kind may use (empty), the locale's defaults and fixed texts."""
    texts = dispatch_settings()["context"][loc]
    context: dict[str, str] = {name: "" for kind in tpl.placeholder_rules().allowed.values() for name in kind}
    context.update(tpl.default_context(loc))
    context.update({k: str(v) for k, v in texts.items()})
    return context


@dataclass(frozen=True, slots=True)
class MessageRequest:
    """One message to render (`message_contexts`); ``key`` is the caller's handle (an outbox row id)."""

    key: Hashable
    case_id: int
    as_of: date
    locale: str | None = None
    account_id: int | None = None
    contact_point_id: int | None = None


#: The columns `_message_data` reads of each row `message_contexts` loads.
_MESSAGE_COLUMNS: dict[type[Any], tuple[str, ...]] = {
    Case: ("id", "debtor_id", "portfolio_id"),
    Portfolio: ("id", "creditor_id", "locale", "currency"),
    Debtor: ("id", "name", "preferred_language", "address"),
    Creditor: ("id", "name", "phone", "address"),
    Account: ("id", "case_id", "currency", "due_date", "external_ref", "overdue_amount_minor"),
    ContactPoint: ("id", "debtor_id", "owner_name", "value", "kind"),
}


def message_contexts(
    session: Session, *, requests: Sequence[MessageRequest]
) -> dict[Hashable, MessageData | ArrearsError]:
    """`message_context` for many messages, with one query per table for the whole batch.

    A message that cannot be rendered gets the error `message_context` would raise.
    """

    def load(model: Any, column: Any, ids: Iterable[int | None]) -> list[Any]:
        # Plain rows of the columns `_message_data` reads: read-only here, and building thousands of ORM
        # instances (or converting columns no placeholder uses) costs more than the query. A row answers
        # the same attribute names (accounts also `balance_minor`, as `Account` does).
        table = model.__table__
        columns = [table.c[name] for name in _MESSAGE_COLUMNS[model]]
        if model is Account:
            columns.append(Account.balance_minor.label("balance_minor"))
        out: list[Any] = []
        for group in gate_batch.id_groups(session, ids):
            out.extend(session.execute(select(*columns).where(gate_batch.id_in(session, column, group))))
        return out

    cases = {c.id: c for c in load(Case, Case.id, (r.case_id for r in requests))}
    portfolios = {p.id: p for p in load(Portfolio, Portfolio.id, (c.portfolio_id for c in cases.values()))}
    debtors = {d.id: d for d in load(Debtor, Debtor.id, (c.debtor_id for c in cases.values()))}
    creditors = {c.id: c for c in load(Creditor, Creditor.id, (p.creditor_id for p in portfolios.values()))}
    whole = {r.case_id for r in requests if r.account_id is None}
    accounts = {a.id: a for a in load(Account, Account.id, (r.account_id for r in requests))}
    by_case: dict[int, list[Any]] = {}
    for account in load(Account, Account.case_id, whole):
        by_case.setdefault(account.case_id, []).append(account)
    points = {p.id: p for p in load(ContactPoint, ContactPoint.id, (r.contact_point_id for r in requests))}
    results: dict[Hashable, MessageData | ArrearsError] = {}
    for r in requests:
        case = cases.get(r.case_id)
        if case is None:
            results[r.key] = NotFound(
                f"案件不存在：{r.case_id} / case {r.case_id} not found", code="case_not_found"
            )
            continue
        portfolio = portfolios[case.portfolio_id]
        if r.account_id is not None:
            one = accounts.get(r.account_id)
            chosen = [one] if one is not None else []
        else:
            chosen = sorted(by_case.get(r.case_id, []), key=lambda a: a.id)
        try:
            results[r.key] = _message_data(
                case=case,
                portfolio=portfolio,
                debtor=debtors[case.debtor_id],
                creditor=creditors[portfolio.creditor_id],
                accounts=chosen,
                point=points.get(r.contact_point_id) if r.contact_point_id is not None else None,
                as_of=r.as_of,
                locale=r.locale,
                account_id=r.account_id,
                contact_point_id=r.contact_point_id,
            )
        except ArrearsError as exc:
            results[r.key] = exc
    return results


@dataclass(frozen=True, slots=True)
class Preview:
    """A template rendered with a real case: its parts, SMS length and segments, and the content check."""

    template_id: int
    code: str
    version: int
    channel: Channel
    locale: str
    parts: dict[str, str]
    sms: tpl.SmsLength | None
    max_segments: int
    issues: list[TemplateIssue]


def preview_template(
    session: Session,
    *,
    template_id: int,
    case_id: int,
    as_of: date,
    account_id: int | None = None,
    contact_point_id: int | None = None,
) -> Preview:
    """Render a stored template with a case's data; for SMS also the encoding, length and segments.

    The rendered text is linted again against the case's rule pack (a value can bring in a phrase).
    """
    row = get_template(session, template_id=template_id)
    core = to_core(row)
    data = message_context(
        session,
        case_id=case_id,
        as_of=as_of,
        locale=row.locale,
        account_id=account_id,
        contact_point_id=contact_point_id,
    )
    case = session.get(Case, case_id)
    assert case is not None
    if row.portfolio_id is not None and case.portfolio_id != row.portfolio_id:
        raise ValidationFailed(
            f"模板 {template_id} 属于另一个组合 / template {template_id} belongs to another portfolio",
            code="template_other_portfolio",
        )
    parts = tpl.render_parts(core, data.context)
    pack, _ = _pack_for(session, case.portfolio_id)
    rendered = "\n".join(parts.values())
    # The case's own values, so a CN-8 notice for a creditor without contact details shows as refused here.
    known = {
        "institution": data.context.get("institution_name", ""),
        "institution_contact": data.context.get("institution_phone", ""),
        "debtor_name": data.context.get("debtor_name", ""),
    }
    findings = lint_text(
        rendered,
        pack=pack,
        kind=lint_kind(core.kind, core.channel),
        locale=row.locale,
        channel=core.channel,
        facts={k: v for k, v in known.items() if v},
    ).findings
    issues = [TemplateIssue(f.code, f.en, f.zh, (f.rule_id,), None, f.match, f.highlighted) for f in findings]
    sms = tpl.sms_length(parts["body"]) if core.channel is Channel.SMS else None
    return Preview(
        template_id=row.id,
        code=row.code,
        version=row.version,
        channel=core.channel,
        locale=row.locale,
        parts=parts,
        sms=sms,
        max_segments=tpl.sms_limits().max_segments,
        issues=issues,
    )


# --- senders ---------------------------------------------------------------------------------------------


class SmtpSettings(BaseModel):
    """A portfolio's SMTP server and sender address; the password comes from ``password_env``."""

    model_config = ConfigDict(extra="forbid")

    host: str
    port: int = 587
    security: Literal["none", "starttls", "tls"] = "starttls"
    username: str | None = None
    password_env: str | None = "ARREARS_SMTP_PASSWORD"
    from_address: str
    from_name: str | None = None
    reply_to: str | None = None
    message_id_domain: str | None = None
    ca_file: str | None = None
    verify_tls: bool = True
    timeout_s: float = 30.0
    opt_out_link: str | None = None


class SmsSettings(BaseModel):
    """A portfolio's SMS gateway: a preset, its URL, and the environment variables holding its secrets.

    ``name`` is the gateway's path in the delivery-receipt webhook (``/api/v1/webhooks/sms/{name}``).
    ``secrets_env`` names a variable holding a JSON object of secrets (``{"app_code": "..."}``).
    """

    model_config = ConfigDict(extra="forbid")

    name: str = "default"
    preset: str
    url: str | None = None
    secrets_env: str = "ARREARS_SMS_SECRETS"
    webhook_secret_env: str = "ARREARS_SMS_WEBHOOK_SECRET"
    overrides: dict[str, Any] = Field(default_factory=dict)
    template_code: str | None = None  # for gateways that send a pre-registered template


class ChannelSettings(BaseModel):
    """Everything needed to build a portfolio's senders (no secrets)."""

    model_config = ConfigDict(extra="forbid")

    smtp: SmtpSettings | None = None
    sms: SmsSettings | None = None


def _env_defaults() -> dict[str, Any]:
    raw = os.environ.get(ENV_CHANNELS)
    if not raw:
        return {}
    try:
        loaded = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise ConfigurationError(f"{ENV_CHANNELS} is not JSON: {exc}", code="channels_misconfigured") from exc
    if not isinstance(loaded, dict):
        raise ConfigurationError(f"{ENV_CHANNELS} must be a JSON object", code="channels_misconfigured")
    return loaded


def _merge(base: Mapping[str, Any] | None, override: Mapping[str, Any] | None) -> dict[str, Any] | None:
    if base is None and override is None:
        return None
    return {**(base or {}), **(override or {})}


def channel_settings(session: Session, *, portfolio_id: int) -> ChannelSettings:
    """The portfolio's sender settings: ``ARREARS_CHANNELS`` overridden by its ``channel_setting`` row."""
    env = _env_defaults()
    row = session.get(ChannelSetting, portfolio_id)
    merged = {
        "smtp": _merge(env.get("smtp"), row.smtp if row else None),
        "sms": _merge(env.get("sms"), row.sms if row else None),
    }
    try:
        return ChannelSettings.model_validate(merged)
    except ValidationError as exc:
        raise ConfigurationError(
            f"组合 {portfolio_id} 的发送设置有误 / portfolio {portfolio_id}'s channel settings are invalid: {exc}",
            code="channels_misconfigured",
        ) from exc


_SECRET_KEYS = frozenset({"password", "secrets", "webhook_secret", "secret", "token"})


def set_channel_settings(
    session: Session,
    *,
    portfolio_id: int,
    smtp: Mapping[str, Any] | None = None,
    sms: Mapping[str, Any] | None = None,
) -> ChannelSetting:
    """Store a portfolio's sender settings (validated; secrets are refused: name their variables)."""
    if session.get(Portfolio, portfolio_id) is None:
        raise NotFound(
            f"组合不存在：{portfolio_id} / portfolio {portfolio_id} not found", code="portfolio_not_found"
        )
    for part in (smtp, sms):
        leaked = sorted(_SECRET_KEYS & set(part or {}))
        if leaked:
            raise ValidationFailed(
                f"密钥不存入数据库，请用环境变量 / secrets are not stored; name their environment variables: {leaked}",
                code="secret_in_settings",
            )
    try:
        if smtp is not None:
            SmtpSettings.model_validate(smtp)
        if sms is not None:
            SmsSettings.model_validate(sms)
            load_preset(str(sms["preset"]))
    except ValidationError as exc:
        raise ValidationFailed(
            f"发送设置有误 / invalid channel settings: {exc}", code="bad_channel_settings"
        ) from exc
    row = session.get(ChannelSetting, portfolio_id)
    if row is None:
        row = ChannelSetting(portfolio_id=portfolio_id)
        session.add(row)
    if smtp is not None:
        row.smtp = dict(smtp)
    if sms is not None:
        row.sms = dict(sms)
    session.flush()
    return row


def _secret_json(variable: str) -> dict[str, str]:
    raw = os.environ.get(variable, "")
    if not raw:
        return {}
    try:
        loaded = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise ConfigurationError(f"{variable} is not a JSON object", code="channels_misconfigured") from exc
    return {str(k): str(v) for k, v in dict(loaded).items()}


def gateway_spec(settings: SmsSettings) -> GatewaySpec:
    """The gateway spec of SMS settings: the preset with its URL and overrides."""
    overrides = dict(settings.overrides)
    if settings.url:
        overrides["url"] = settings.url
    return load_preset(settings.preset, **overrides)


def build_senders(settings: ChannelSettings) -> dict[Channel, Sender]:
    """Senders for the configured channels (e-mail over SMTP, SMS over the HTTP gateway)."""
    senders: dict[Channel, Sender] = {}
    if settings.smtp is not None:
        s = settings.smtp
        config = SmtpConfig(
            host=s.host,
            port=s.port,
            security=s.security,
            username=s.username,
            password=os.environ.get(s.password_env) if s.password_env else None,
            from_address=s.from_address,
            from_name=s.from_name,
            reply_to=s.reply_to,
            message_id_domain=s.message_id_domain,
            ca_file=s.ca_file,
            verify_tls=s.verify_tls,
            timeout_s=s.timeout_s,
        )
        senders[Channel.EMAIL] = SmtpSender(config)
    if settings.sms is not None:
        senders[Channel.SMS] = HttpSmsSender(
            gateway_spec(settings.sms), _secret_json(settings.sms.secrets_env)
        )
    return senders


@dataclass(frozen=True, slots=True)
class WebhookGateway:
    """What the delivery-receipt webhook needs to know about a gateway name."""

    spec: GatewaySpec
    secret: str


def webhook_gateway(session: Session, *, name: str) -> WebhookGateway:
    """The gateway configured under ``name`` (any portfolio, or the environment default) and its secret."""
    candidates: list[dict[str, Any]] = []
    env_sms = _env_defaults().get("sms")
    for row in session.scalars(select(ChannelSetting).where(ChannelSetting.sms.is_not(None))):
        candidates.append(_merge(env_sms, row.sms) or {})
    if env_sms:
        candidates.append(dict(env_sms))
    for raw in candidates:
        if raw.get("name", "default") != name:
            continue
        settings = SmsSettings.model_validate(raw)
        secret = os.environ.get(settings.webhook_secret_env, "")
        if not secret:
            raise ConfigurationError(
                f"网关 {name} 未配置回执密钥 / gateway {name!r} has no webhook secret "
                f"(set {settings.webhook_secret_env})",
                code="webhook_secret_missing",
            )
        return WebhookGateway(gateway_spec(settings), secret)
    raise NotFound(f"未配置的短信网关：{name} / no SMS gateway named {name!r}", code="gateway_not_found")
