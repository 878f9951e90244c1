"""Message templates: linting, rendering and SMS length.

Templates are Jinja2 sources rendered in a sandboxed environment with ``StrictUndefined``, so a template
can neither reach into Python objects nor silently print an empty placeholder. Each template has a
channel (sms, email, letter, lawyer_letter), a locale (zh_CN default, en) and a kind:

- ``debtor``: messages to the debtor; may state the debt.
- ``third_party``: messages to anyone else; CN-4 forbids disclosing the debt, so these templates may only
  use a restricted placeholder set (no amounts, dates, creditor or case details).
- ``legal``: lawyer's letters and other legal-stage documents.

Which placeholders each kind may and must use is data (``data/placeholders.toml``); SMS segment sizes
are data too (``data/channels.toml``). Default templates ship in ``data/templates/<locale>/``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date
from enum import StrEnum
from functools import cache
from typing import Any

from babel.dates import format_date
from jinja2 import StrictUndefined, Template, TemplateSyntaxError, UndefinedError, meta, nodes
from jinja2.exceptions import SecurityError
from jinja2.sandbox import SandboxedEnvironment

from arrears.channels import _data
from arrears.enums import Channel
from arrears.errors import NotFound, ValidationFailed

#: Channels that are sent from templates (calls and visits use scripts, not templates).
TEMPLATE_CHANNELS: tuple[Channel, ...] = (Channel.SMS, Channel.EMAIL, Channel.LETTER, Channel.LAWYER_LETTER)
DEFAULT_LOCALE = "zh_CN"


class TemplateKind(StrEnum):
    """Who a template is written for; decides the placeholders it may use (CN-4)."""

    DEBTOR = "debtor"
    THIRD_PARTY = "third_party"
    LEGAL = "legal"


@dataclass(frozen=True, slots=True)
class TemplateProblem:
    """One thing wrong with a template, in English and Chinese, with the rule it protects if any."""

    code: str
    message: str
    message_zh: str
    rule_ids: tuple[str, ...] = ()
    placeholder: str | None = None
    part: str | None = None
    line: int | None = None


@dataclass(frozen=True, slots=True)
class RequiredPlaceholders:
    """Placeholders a template of ``kind`` (on ``channel``, or any channel when None) must use."""

    kind: TemplateKind
    channel: Channel | None
    rule_id: str
    placeholders: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class PlaceholderRules:
    """The allowed / debt / required placeholder sets, as loaded from ``placeholders.toml``."""

    allowed: Mapping[TemplateKind, frozenset[str]]
    debt: frozenset[str]
    required: tuple[RequiredPlaceholders, ...]


@dataclass(frozen=True, slots=True)
class MessageTemplate:
    """A template with its parts (``body``; or ``subject``/``text``/``html``; or ``title``/``body``)."""

    id: str
    channel: Channel
    kind: TemplateKind
    locale: str
    parts: Mapping[str, str]
    stage: str | None = None


class SmsEncoding(StrEnum):
    GSM7 = "gsm7"
    UCS2 = "ucs2"


@dataclass(frozen=True, slots=True)
class SmsLimits:
    """Units per segment: single message and each part of a concatenated one."""

    gsm7_single: int
    gsm7_multi: int
    ucs2_single: int
    ucs2_multi: int
    max_segments: int


@dataclass(frozen=True, slots=True)
class SmsLength:
    """Length of an SMS text: encoding, units (septets or UTF-16 units) and segment count."""

    encoding: SmsEncoding
    units: int
    segments: int
    characters: int
    segment_units: tuple[int, ...] = field(default=())


# ---------------------------------------------------------------------------------------------------------
# Data


@cache
def placeholder_rules() -> PlaceholderRules:
    """The placeholder sets shipped in ``data/placeholders.toml``."""
    raw = _data.load_toml("placeholders.toml")
    allowed = {TemplateKind(k): frozenset(v["allowed"]) for k, v in raw["kinds"].items()}
    required = tuple(
        RequiredPlaceholders(
            kind=TemplateKind(r["kind"]),
            channel=Channel(r["channel"]) if "channel" in r else None,
            rule_id=str(r["rule_id"]),
            placeholders=tuple(r["placeholders"]),
        )
        for r in raw.get("required", [])
    )
    return PlaceholderRules(allowed=allowed, debt=frozenset(raw["debt"]["placeholders"]), required=required)


@cache
def sms_limits() -> SmsLimits:
    """SMS segment sizes from ``data/channels.toml``."""
    raw = _data.load_toml("channels.toml")["sms"]
    return SmsLimits(
        gsm7_single=int(raw["gsm7_single"]),
        gsm7_multi=int(raw["gsm7_multi"]),
        ucs2_single=int(raw["ucs2_single"]),
        ucs2_multi=int(raw["ucs2_multi"]),
        max_segments=int(raw["max_segments"]),
    )


def supported_locales() -> tuple[str, ...]:
    """Locales the default templates ship in, default first."""
    raw = _data.load_toml("templates.toml")
    return tuple(raw["locales"])


def resolve_locale(locale: str | None) -> str:
    """Map ``zh-CN``, ``zh``, ``en_US`` ... onto a shipped locale; unknown or empty -> zh_CN."""
    if not locale:
        return DEFAULT_LOCALE
    norm = locale.replace("-", "_")
    shipped = supported_locales()
    if norm in shipped:
        return norm
    language = norm.split("_", 1)[0].lower()
    for candidate in shipped:
        if candidate.split("_", 1)[0].lower() == language:
            return candidate
    return DEFAULT_LOCALE


def default_context(locale: str | None = None) -> dict[str, str]:
    """Default texts for placeholders a portfolio may override (legal basis, how to dispute: CN-8)."""
    defaults = _data.load_toml("channels.toml")["defaults"]
    return dict(defaults[resolve_locale(locale)])


def format_letter_date(value: date, locale: str) -> str:
    """A date as people write it in a letter or message (``2025年3月5日``, ``5 March 2025``)."""
    return str(format_date(value, format="long", locale=resolve_locale(locale)))


def opt_out_text(locale: str | None = None, link: str | None = None) -> str:
    """US-13: the opt-out sentence for electronic messages, with a link when one is given."""
    texts = _data.load_toml("channels.toml")["opt_out"][resolve_locale(locale)]
    if link:
        return str(texts["text_with_link"]).replace("{link}", link)
    return str(texts["text"])


def _part_file(template_id: str, part: str) -> str:
    return f"{template_id}.html" if part == "html" else f"{template_id}.{part}.txt"


def channel_parts(channel: Channel) -> tuple[str, ...]:
    """Parts a template of this channel consists of."""
    parts: dict[str, list[str]] = _data.load_toml("templates.toml")["parts"]
    if channel.value not in parts:
        raise ValidationFailed(f"channel {channel} has no templates", code="channel_without_templates")
    return tuple(parts[channel.value])


def default_template(template_id: str, locale: str | None = None) -> MessageTemplate:
    """A shipped default template by id, in the locale (falls back to zh_CN)."""
    loc = resolve_locale(locale)
    for entry in _data.load_toml("templates.toml")["template"]:
        if entry["id"] == template_id:
            channel = Channel(entry["channel"])
            parts = {
                p: _data.read_text("templates", loc, _part_file(template_id, p))
                for p in channel_parts(channel)
            }
            return MessageTemplate(
                id=template_id,
                channel=channel,
                kind=TemplateKind(entry["kind"]),
                locale=loc,
                parts=parts,
                stage=entry.get("stage"),
            )
    raise NotFound(f"no default template {template_id!r}", code="template_not_found")


def default_templates(locale: str | None = None) -> list[MessageTemplate]:
    """Every shipped default template, in one locale or (None) in every shipped locale."""
    locales = supported_locales() if locale is None else (resolve_locale(locale),)
    ids = [entry["id"] for entry in _data.load_toml("templates.toml")["template"]]
    return [default_template(tid, loc) for loc in locales for tid in ids]


# ---------------------------------------------------------------------------------------------------------
# Jinja


@cache
def _environment(autoescape: bool) -> SandboxedEnvironment:
    return SandboxedEnvironment(undefined=StrictUndefined, autoescape=autoescape, keep_trailing_newline=False)


@cache
def _compiled(source: str, autoescape: bool) -> Template:
    return _environment(autoescape).from_string(source)


def placeholders_in(source: str) -> set[str]:
    """Names a template reads from its context. Raises jinja2's TemplateSyntaxError on bad syntax."""
    ast = _environment(False).parse(source)
    return set(meta.find_undeclared_variables(ast))


def _references_other_templates(source: str) -> bool:
    ast = _environment(False).parse(source)
    return any(True for _ in ast.find_all((nodes.Extends, nodes.Include, nodes.Import, nodes.FromImport)))


def validate_template(
    source: str, channel: Channel | str, kind: TemplateKind | str, *, part: str | None = None
) -> list[TemplateProblem]:
    """Lint one template source for a channel and kind; an empty list means it may be used.

    Reports syntax errors, references to other templates, placeholders unknown for the kind, debt
    placeholders in third-party templates (CN-4) and missing required placeholders (CN-5, CN-8).
    """
    return validate_parts({part or "body": source}, channel, kind)


def validate_parts(
    parts: Mapping[str, str], channel: Channel | str, kind: TemplateKind | str
) -> list[TemplateProblem]:
    """Lint a multi-part template (e-mail subject/text/html); required placeholders count across parts."""
    channel = Channel(channel)
    kind = TemplateKind(kind)
    problems: list[TemplateProblem] = []
    if channel not in TEMPLATE_CHANNELS:
        problems.append(
            TemplateProblem(
                code="channel_without_templates",
                message=f"channel {channel} does not use templates",
                message_zh=f"渠道 {channel} 不使用模板",
            )
        )
        return problems
    rules = placeholder_rules()
    allowed = rules.allowed[kind]
    used_anywhere: set[str] = set()
    for part_name, source in parts.items():
        try:
            used = placeholders_in(source)
        except TemplateSyntaxError as exc:
            problems.append(
                TemplateProblem(
                    code="syntax_error",
                    message=f"template syntax error: {exc.message}",
                    message_zh=f"模板语法错误：{exc.message}",
                    part=part_name,
                    line=exc.lineno,
                )
            )
            continue
        if _references_other_templates(source):
            problems.append(
                TemplateProblem(
                    code="template_reference",
                    message="templates may not extend, include or import other templates",
                    message_zh="模板不得继承、包含或导入其他模板",
                    part=part_name,
                )
            )
        used_anywhere |= used
        for name in sorted(used - allowed):
            if kind is TemplateKind.THIRD_PARTY and name in rules.debt:
                # CN-4: a third party must never learn of the debt.
                problems.append(
                    TemplateProblem(
                        code="debt_placeholder_for_third_party",
                        message=f"third-party templates may not disclose the debt: {{{{ {name} }}}}",
                        message_zh=f"第三方模板不得披露债务信息：{{{{ {name} }}}}",
                        rule_ids=("CN-4",),
                        placeholder=name,
                        part=part_name,
                    )
                )
            else:
                problems.append(
                    TemplateProblem(
                        code="unknown_placeholder",
                        message=f"unknown placeholder for a {kind} template: {{{{ {name} }}}}",
                        message_zh=f"{kind} 模板不支持的占位符：{{{{ {name} }}}}",
                        placeholder=name,
                        part=part_name,
                    )
                )
    if any(p.code == "syntax_error" for p in problems):
        return problems
    for req in rules.required:
        if req.kind is not kind or (req.channel is not None and req.channel is not channel):
            continue
        for name in req.placeholders:
            if name not in used_anywhere:
                problems.append(
                    TemplateProblem(
                        code="missing_required_placeholder",
                        message=f"a {kind} {channel} template must include {{{{ {name} }}}} ({req.rule_id})",
                        message_zh=f"{kind} {channel} 模板必须包含 {{{{ {name} }}}}（{req.rule_id}）",
                        rule_ids=(req.rule_id,),
                        placeholder=name,
                    )
                )
    return problems


def render(source: str, context: Mapping[str, Any], *, autoescape: bool = False) -> str:
    """Render a template source with a context; a missing placeholder is an error, never an empty string.

    ``autoescape`` is for HTML parts. Raises ValidationFailed (codes ``template_syntax_error``,
    ``template_undefined``, ``template_forbidden``).
    """
    try:
        return _compiled(source, autoescape).render(dict(context))
    except TemplateSyntaxError as exc:
        raise ValidationFailed(f"template syntax error: {exc.message}", code="template_syntax_error") from exc
    except UndefinedError as exc:
        raise ValidationFailed(
            f"template placeholder missing: {exc.message}", code="template_undefined"
        ) from exc
    except SecurityError as exc:
        raise ValidationFailed(f"template not allowed: {exc}", code="template_forbidden") from exc


def render_parts(template: MessageTemplate, context: Mapping[str, Any]) -> dict[str, str]:
    """Render every part of a template; the ``html`` part is autoescaped, the others are plain text."""
    return {name: render(src, context, autoescape=(name == "html")) for name, src in template.parts.items()}


# ---------------------------------------------------------------------------------------------------------
# SMS length

# GSM 03.38 default alphabet (without the escape character) and its extension table (two septets each).
_GSM7_BASIC = frozenset(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
_GSM7_EXTENDED = frozenset("^{}\\[~]|€\f")


def sms_encoding(text: str) -> SmsEncoding:
    """GSM-7 if every character is in the GSM 03.38 alphabet or its extension table, else UCS-2."""
    if all(ch in _GSM7_BASIC or ch in _GSM7_EXTENDED for ch in text):
        return SmsEncoding.GSM7
    return SmsEncoding.UCS2


def _unit_sizes(text: str, encoding: SmsEncoding) -> list[int]:
    if encoding is SmsEncoding.GSM7:
        return [2 if ch in _GSM7_EXTENDED else 1 for ch in text]
    return [2 if ord(ch) > 0xFFFF else 1 for ch in text]  # UTF-16 surrogate pairs


def _pack(sizes: Iterable[int], capacity: int) -> list[int]:
    """Greedy packing into segments; an escape pair or surrogate pair is never split across two."""
    segments: list[int] = []
    current = 0
    for size in sizes:
        if current + size > capacity:
            segments.append(current)
            current = 0
        current += size
    segments.append(current)
    return segments


def sms_length(text: str, limits: SmsLimits | None = None) -> SmsLength:
    """Encoding, units and segment count of an SMS text.

    GSM-7: 160 septets in one message, 153 per part when concatenated; UCS-2 (any Chinese character):
    70 / 67 UTF-16 units (sizes from ``channels.toml``). An empty text is one (empty) segment.
    """
    lim = limits or sms_limits()
    encoding = sms_encoding(text)
    sizes = _unit_sizes(text, encoding)
    units = sum(sizes)
    single, multi = (
        (lim.gsm7_single, lim.gsm7_multi)
        if encoding is SmsEncoding.GSM7
        else (lim.ucs2_single, lim.ucs2_multi)
    )
    parts = (units,) if units <= single else tuple(_pack(sizes, multi))
    return SmsLength(
        encoding=encoding, units=units, segments=len(parts), characters=len(text), segment_units=parts
    )
