"""The compliance gate: `decide(attempt, history, context, pack) -> Decision` (RULEBOOK.md).

Pure and deterministic: no I/O, no wall clock; the same inputs give the same decision whatever order the
history is in (every use of the history is a count, a minimum / maximum or a sorted list).

Two families of checks:

* **standing** checks (flags without an end, third-party gate, content rules, time-barred and lawful-cap
  accounts, opt-outs): only a person or new facts lift them, so a block by one of them has no
  ``next_allowed_at``;
* **timed** checks (quiet hours and named inconvenient times, the daily call cap, the 7-in-7 frequency
  rule, flags with an end): each says, when it blocks at time ``u``, a time before which it certainly
  still blocks. ``next_allowed_at`` is the fixed point of "jump to the latest of those times and check
  again", which is the earliest time every timed check allows, with the same history.

Speed: the history is cut once to the window the timed checks can see (`lookback`); the only full
passes are the third-party gate (CN-3) and first-contact detection for linting, and only when needed.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

from arrears.compliance import messages
from arrears.compliance.lint import lint_text
from arrears.compliance.pack import CallFrequency, QuietHours, RulePack
from arrears.compliance.schemas import (
    Attempt,
    ConsentScope,
    Context,
    Decision,
    Direction,
    InconvenientWindow,
    Outcome,
    PriorAttempt,
    Reason,
    TemplateKind,
)
from arrears.compliance.zones import candidate_zones, local_instant, local_midnight, next_local_midnight, zone
from arrears.enums import Channel, FlagKind

_DAY = timedelta(days=1)
_SEARCH_DAYS = 9  # quiet-hours release search horizon (a week of named times, plus a day each side)
_MAX_ROUNDS = 64  # fixed-point rounds for next_allowed_at; more means the rules never agree
_HORIZON = timedelta(days=400)

# Outcomes that show the debtor was reached (first-contact detection for CN-5 / US-11).
_REACHED = frozenset(
    {
        Outcome.RIGHT_PARTY,
        Outcome.PROMISE,
        Outcome.REFUSED,
        Outcome.DISPUTE_RAISED,
        Outcome.CALLBACK_REQUESTED,
        Outcome.DELIVERED,
    }
)


@dataclass(frozen=True, slots=True)
class _Block:
    reason: Reason
    release: datetime | None  # still blocked before this time; None = no time lifts it


_Timed = Callable[[datetime], _Block | None]


def _fmt(moment: datetime, zone_name: str) -> str:
    return moment.astimezone(zone(zone_name)).strftime("%Y-%m-%d %H:%M")


def _accounts_text(ids: int | Iterable[int]) -> str:
    if isinstance(ids, int):
        return str(ids)
    return ", ".join(str(i) for i in sorted(ids))


def lookback(pack: RulePack) -> timedelta:
    """How far back the timed checks can see (plus a day each side for time-zone slack)."""
    cache = pack.cached("rules")
    found = cache.get("lookback")
    if isinstance(found, timedelta):
        return found
    days = 1
    cf = pack.call_frequency
    if cf is not None:
        days = max(days, cf.window_days + cf.consent_days, cf.conversation_window_days + cf.consent_days)
    window = timedelta(days=days + 2)
    cache["lookback"] = window
    return window


# --- time of day: CN-1 / US-1 -------------------------------------------------------------------------


def _in_allowed(qh: QuietHours, local: datetime) -> bool:
    tod = local.time()
    start, until = qh.allowed_from, qh.allowed_until
    before_until = tod < until or (qh.until_inclusive and tod == until)
    if start <= until:
        return start <= tod and before_until
    return start <= tod or before_until  # an allowed window that spans midnight


def _in_window(window: InconvenientWindow, local: datetime) -> bool:
    tod, days = local.time(), window.weekdays
    if window.start == window.end:  # a whole day
        return not days or local.weekday() in days
    if window.start < window.end:
        return window.start <= tod < window.end and (not days or local.weekday() in days)
    if tod >= window.start:
        return not days or local.weekday() in days
    if tod < window.end:
        return not days or (local.weekday() - 1) % 7 in days
    return False


def _time_of_day_check(
    qh: QuietHours, attempt: Attempt, context: Context, pack: RulePack, zones: tuple[str, ...]
) -> _Timed:
    cp = attempt.contact_point
    consents = (
        [
            c
            for c in context.consents
            if c.scope == ConsentScope.QUIET_HOURS
            and ConsentScope.QUIET_HOURS in pack.consent_scopes
            and c.covers(cp.value, attempt.account_ids)
        ]
        if qh.consent_lifts
        else []
    )
    windows = context.inconvenient_times if qh.honour_stated_inconvenient_times else ()
    named_rule = qh.inconvenient_rule_id or qh.id

    def reason_at(u: datetime) -> Reason | None:
        # CN-1 / US-1: a recorded request of the debtor lifts quiet hours.
        for c in consents:
            if c.granted_at <= u and (c.expires_at is None or u < c.expires_at):
                return None
        for z in zones:  # US-1: the time must be allowed in every candidate zone
            local = u.astimezone(zone(z))
            if not _in_allowed(qh, local):
                return messages.reason(
                    "quiet_hours",
                    qh.id,
                    zone=z,
                    local=local.strftime("%Y-%m-%d %H:%M"),
                    start=qh.allowed_from.strftime("%H:%M"),
                    end=qh.allowed_until.strftime("%H:%M"),
                )
            for w in windows:
                if _in_window(w, local):
                    return messages.reason(
                        "inconvenient_time",
                        named_rule,
                        zone=z,
                        local=local.strftime("%Y-%m-%d %H:%M"),
                        start=w.start.strftime("%H:%M"),
                        end=w.end.strftime("%H:%M"),
                    )
        return None

    def check(u: datetime) -> _Block | None:
        why = reason_at(u)
        if why is None:
            return None
        # The status can only turn to allowed where a window opens in some zone, a named window ends, or
        # a consent starts: try those instants in order.
        candidates: set[datetime] = {c.granted_at.astimezone(UTC) for c in consents if c.granted_at > u}
        for z in zones:
            first = u.astimezone(zone(z)).date()
            for k in range(_SEARCH_DAYS):
                day = first + timedelta(days=k)
                candidates.add(local_instant(day, qh.allowed_from, z))
                candidates.update(local_instant(day, w.end, z) for w in windows)
        for moment in sorted(c for c in candidates if c > u):
            if reason_at(moment) is None:
                return _Block(why, moment)
        if len(zones) > 1:
            why = messages.reason("no_common_window", qh.id, zones=", ".join(zones))
        return _Block(why, None)

    return check


# --- CN-2: daily call cap per contact point -----------------------------------------------------------


def _daily_cap_check(
    attempt: Attempt, context: Context, pack: RulePack, zones: tuple[str, ...], recent: list[PriorAttempt]
) -> _Timed:
    cap = pack.daily_call_cap
    assert cap is not None
    value = attempt.contact_point.value
    times = sorted(
        h.at.astimezone(UTC)
        for h in recent
        if h.contact_point.value == value
        and h.channel in cap.channels
        and h.direction == Direction.OUTBOUND
        and h.outcome != Outcome.BLOCKED
    )
    consents = (
        [
            c
            for c in context.consents
            if c.scope == ConsentScope.CALL_CAP
            and ConsentScope.CALL_CAP in pack.consent_scopes
            and c.covers(value, attempt.account_ids)
        ]
        if cap.consent_lifts
        else []
    )

    def check(u: datetime) -> _Block | None:
        for c in consents:
            if c.granted_at <= u and (c.expires_at is None or u < c.expires_at):
                return None
        for z in zones:
            start = local_midnight(u.astimezone(zone(z)).date(), z)
            count = sum(1 for a in times if start <= a <= u)
            if count >= cap.max_attempts:
                why = messages.reason(
                    "daily_call_cap", cap.id, zone=z, contact=value, count=count, limit=cap.max_attempts
                )
                return _Block(why, next_local_midnight(u, z))
        return None

    return check


# --- US-2..US-4: 7-in-7 per person x debt x collector -----------------------------------------------------


def _frequency_check(
    cf: CallFrequency,
    attempt: Attempt,
    context: Context,
    pack: RulePack,
    zones: tuple[str, ...],
    recent: list[PriorAttempt],
) -> _Timed:
    person = attempt.contact_point.person_key
    accounts = attempt.account_ids
    # US-3: per person, per debt, per collector.
    related = [
        h
        for h in recent
        if h.channel in cf.channels
        and h.collector_id == attempt.collector_id
        and h.contact_point.person_key == person
        and not h.account_ids.isdisjoint(accounts)
    ]
    conversations = sorted(
        (h.at.astimezone(UTC), h.account_ids) for h in related if h.outcome in cf.conversation_outcomes
    )
    # US-4: direct prior consent covers calls for consent_days, and ends at the next conversation.
    intervals: list[tuple[datetime, datetime, frozenset[int] | None, str | None]] = []
    if ConsentScope.CALL_FREQUENCY in pack.consent_scopes:
        span = timedelta(days=cf.consent_days)
        for c in context.consents:
            if c.scope != ConsentScope.CALL_FREQUENCY:
                continue
            start = c.granted_at.astimezone(UTC)
            end = start + span
            if c.expires_at is not None:
                end = min(end, c.expires_at.astimezone(UTC))
            for at, _ids in conversations:
                if at > start:
                    end = min(end, at)
                    break
            intervals.append((start, end, c.account_ids, c.contact_value))

    def consented(at: datetime, account: int, value: str) -> bool:
        return any(
            s <= at < e and (ids is None or account in ids) and (cv is None or cv == value)
            for s, e, ids, cv in intervals
        )

    # US-4: calls that never connect do not count; unanswered calls and voicemail do.
    counted = [
        (h.at.astimezone(UTC), h.account_ids, h.contact_point.value)
        for h in related
        if h.direction == Direction.OUTBOUND
        and h.outcome not in cf.not_counted_outcomes
        and h.outcome != Outcome.BLOCKED
    ]
    per_zone: dict[str, list[tuple[date, frozenset[int], datetime, str]]] = {
        z: [(at.astimezone(zone(z)).date(), ids, at, v) for at, ids, v in counted] for z in zones
    }
    conv_zone: dict[str, list[tuple[date, frozenset[int]]]] = {
        z: [(at.astimezone(zone(z)).date(), ids) for at, ids in conversations] for z in zones
    }
    window = timedelta(days=cf.window_days - 1)
    conv_window = timedelta(days=cf.conversation_window_days - 1)
    value = attempt.contact_point.value

    def check(u: datetime) -> _Block | None:
        for account in sorted(accounts):
            if consented(u, account, value):
                continue  # US-4: a call with direct prior consent is outside the presumption
            for z in zones:
                today = u.astimezone(zone(z)).date()
                days = sorted(
                    d
                    for d, ids, at, v in per_zone[z]
                    if account in ids and today - window <= d <= today and not consented(at, account, v)
                )
                if len(days) >= cf.max_calls:
                    first = days[len(days) - cf.max_calls]
                    release = local_midnight(first + timedelta(days=cf.window_days), z)
                    why = messages.reason(
                        "call_frequency_count",
                        cf.id,
                        account=account,
                        count=len(days),
                        limit=cf.max_calls,
                        days=cf.window_days,
                        window_start=first.isoformat(),
                        next=_fmt(release, z),
                    )
                    return _Block(why, release)
                talks = [d for d, ids in conv_zone[z] if account in ids and today - conv_window <= d <= today]
                if talks:
                    last = max(talks)
                    release = local_midnight(last + timedelta(days=cf.conversation_window_days), z)
                    why = messages.reason(
                        "call_frequency_conversation",
                        cf.id,
                        account=account,
                        conversation_on=last.isoformat(),
                        days=cf.conversation_window_days,
                        last_day=(last + conv_window).isoformat(),
                    )
                    return _Block(why, release)
        return None

    return check


# --- standing checks ----------------------------------------------------------------------------------


def _consecutive_failures(attempt: Attempt, history: Sequence[PriorAttempt], pack: RulePack) -> int:
    """CN-3: failed attempts to the debtor since the debtor was last reached (ties: reached wins)."""
    gate = pack.third_party_gate
    assert gate is not None
    t = attempt.at
    own = [h for h in history if not h.contact_point.is_third_party and h.at <= t]
    reached = [h.at for h in own if h.outcome in gate.reached_outcomes]
    last = max(reached) if reached else None
    return sum(
        1
        for h in own
        if h.direction == Direction.OUTBOUND
        and h.channel in gate.channels
        and h.outcome in gate.failed_outcomes
        and (last is None or h.at > last)
    )


def _is_first_contact(attempt: Attempt, history: Sequence[PriorAttempt]) -> bool:
    person, t = attempt.contact_point.person_key, attempt.at
    return not any(
        h.contact_point.person_key == person and h.outcome in _REACHED and h.at <= t for h in history
    )


def _template_kind(attempt: Attempt) -> TemplateKind:
    if attempt.template_kind is not None:
        return attempt.template_kind
    cp = attempt.contact_point
    if cp.is_third_party and not cp.debt_related and not cp.volunteered_to_pay:
        return TemplateKind.THIRD_PARTY
    if attempt.channel == Channel.LAWYER_LETTER:
        return TemplateKind.LAWYER_LETTER
    if attempt.channel == Channel.LETTER:
        return TemplateKind.COLLECTION_NOTICE
    return TemplateKind.DEBTOR


class _Collector:
    """Collects checked rule ids, reasons and warnings in evaluation order."""

    def __init__(self) -> None:
        self.checked: dict[str, None] = {}
        self.standing: list[Reason] = []
        self.timed: list[_Timed] = []
        self.warnings: list[Reason] = []

    def check(self, *rule_ids: str) -> None:
        for rule_id in rule_ids:
            self.checked.setdefault(rule_id)


def _until(why: Reason, until: datetime) -> _Timed:
    def check(u: datetime) -> _Block | None:
        return _Block(why, until) if u < until else None

    return check


def _standing_checks(
    out: _Collector, attempt: Attempt, history: Sequence[PriorAttempt], context: Context, pack: RulePack
) -> None:
    cp, accounts, outbound = (
        attempt.contact_point,
        attempt.account_ids,
        attempt.direction == Direction.OUTBOUND,
    )
    states = {a: context.account(a) for a in accounts}

    # Shared guarantee (ALL-1; cease is US-10 in us-regf): flagged accounts get no collection contact.
    if outbound:
        flags = pack.flags
        out.check(flags.id, *flags.rule_ids.values())
        for flag in sorted(context.flags, key=lambda f: (f.kind.value, f.account_id or 0)):
            if flag.kind not in flags.kinds:
                continue
            if flag.account_id is not None and flag.account_id not in accounts:
                continue
            if attempt.purpose in flags.allowed_purposes.get(flag.kind, frozenset()):
                continue
            if flag.expires_at is not None and flag.expires_at <= attempt.at:
                continue
            rule_id = flags.rule_ids.get(flag.kind, flags.id)
            shown = _accounts_text(accounts if flag.account_id is None else flag.account_id)
            if flag.kind == FlagKind.CEASE and rule_id != flags.id:
                why = messages.reason("cease", rule_id)
            elif flag.expires_at is None:
                why = messages.reason("flag", rule_id, {"flag": flag.kind.value}, accounts=shown)
            else:
                until = flag.expires_at.astimezone(UTC)
                why = messages.reason(
                    "flag_until", rule_id, {"flag": flag.kind.value}, accounts=shown, until=until.isoformat()
                )
                out.timed.append(_until(why, until))
                continue
            out.standing.append(why)

        # Shared guarantee (ALL-2): opt-outs of a channel or a contact point are honoured.
        out.check(pack.opt_out.id)
        if attempt.channel in context.opted_out_channels:
            out.standing.append(
                messages.reason("opt_out_channel", pack.opt_out.id, channel=attempt.channel.value)
            )
        if cp.opted_out:
            out.standing.append(messages.reason("opt_out_contact", pack.opt_out.id, contact=cp.value))

    # CN-3: third parties only when the debtor is out of contact.
    gate = pack.third_party_gate
    if gate is not None and outbound and cp.is_third_party and cp.owner_relation not in gate.exempt_relations:
        out.check(gate.id)
        if not context.debtor_numbers_invalid:
            failed = _consecutive_failures(attempt, history, pack)
            if failed < gate.consecutive_failed_attempts:
                out.standing.append(
                    messages.reason(
                        "third_party_gate", gate.id, failed=failed, limit=gate.consecutive_failed_attempts
                    )
                )

    # CN-4: an unrelated third party hears message-passing content only.
    tpc = pack.third_party_content
    if tpc is not None and cp.is_third_party:
        out.check(tpc.id)
        exempt = cp.debt_related or (tpc.volunteer_exempt and cp.volunteered_to_pay)
        if not exempt and attempt.purpose not in tpc.allowed_purposes:
            out.standing.append(messages.reason("third_party_content", tpc.id, purpose=attempt.purpose.value))

    # CN-7: only listed, active agencies.
    agencies = pack.agency_list
    if agencies is not None and attempt.agency_id is not None and context.listed_agency_ids is not None:
        out.check(agencies.id)
        if attempt.agency_id not in context.listed_agency_ids:
            out.standing.append(messages.reason("agency_not_listed", agencies.id, agency=attempt.agency_id))

    # CN-8: credit cards are collected only from the cardholder and the guarantor.
    card = pack.cardholder_only
    if card is not None:
        out.check(card.id)
        if (
            attempt.purpose in card.collecting_purposes
            and cp.owner_relation not in card.relations
            and any(s.product in card.products for s in states.values())
        ):
            out.standing.append(messages.reason("cardholder_only", card.id, relation=cp.owner_relation.value))

    # CN-10: no visits or legal action on amounts above the lawful cap.
    cap = pack.lawful_cap
    if cap is not None:
        out.check(cap.id)
        above = [a for a, s in states.items() if s.above_lawful_cap]
        if above and (attempt.channel in cap.blocked_channels or attempt.purpose in cap.blocked_purposes):
            out.standing.append(messages.reason("lawful_cap", cap.id, accounts=_accounts_text(above)))

    # CN-22 / US-8: time-barred debts: no legal action, no threat of it.
    barred_rule = pack.time_barred
    barred = [a for a, s in states.items() if s.time_barred]
    if barred_rule is not None:
        out.check(barred_rule.id)
        if barred and (
            attempt.channel in barred_rule.blocked_channels or attempt.purpose in barred_rule.blocked_purposes
        ):
            out.standing.append(
                messages.reason("time_barred", barred_rule.id, accounts=_accounts_text(barred))
            )

    # US-7: a written dispute in the validation period stops collection until verification is sent.
    val = pack.validation
    if val is not None and outbound:
        out.check(val.id)
        if attempt.purpose not in val.allowed_purposes and any(
            s.validation_dispute_pending for s in states.values()
        ):
            out.standing.append(messages.reason("validation_dispute", val.id))
        due = timedelta(days=val.notice_within_days)
        for s in states.values():
            initial = s.initial_communication_at
            if initial is not None and s.validation_notice_sent_at is None and attempt.at > initial + due:
                out.warnings.append(
                    messages.reason(
                        "warn_validation_notice",
                        val.id,
                        initial=initial.isoformat(),
                        days=val.notice_within_days,
                    )
                )
                break

    # CN-5 / CN-6 / CN-4 / US-11 / US-13 / CN-22 / US-8: the text itself.
    if attempt.text is not None:
        first = attempt.first_contact
        if first is None:
            first = _is_first_contact(attempt, history)
        result = lint_text(
            attempt.text,
            pack=pack,
            kind=_template_kind(attempt),
            locale=attempt.locale,
            channel=attempt.channel,
            first_contact=first,
            time_barred=bool(barred),
            facts=dict(attempt.facts) if attempt.facts else None,
        )
        for finding in result.findings:
            out.check(finding.rule_id)
            out.standing.append(
                Reason(rule_id=finding.rule_id, code=finding.code, zh=finding.zh, en=finding.en)
            )


def _warning_signs(
    out: _Collector,
    attempt: Attempt,
    context: Context,
    pack: RulePack,
    zones: tuple[str, ...],
    recent: list[PriorAttempt],
) -> None:
    """US-5: warnings, never blocks."""
    ws = pack.warning_signs
    if ws is None or attempt.direction != Direction.OUTBOUND or attempt.channel != Channel.CALL:
        return
    out.check(ws.id)
    t = attempt.at.astimezone(UTC)
    value = attempt.contact_point.value
    same = [
        h
        for h in recent
        if h.contact_point.value == value
        and h.channel == Channel.CALL
        and h.direction == Direction.OUTBOUND
        and h.outcome != Outcome.BLOCKED
    ]
    gap = timedelta(minutes=ws.unanswered_gap_minutes)
    if any(h.outcome in ws.unanswered_outcomes and t - h.at < gap for h in same):
        out.warnings.append(messages.reason("warn_unanswered_gap", ws.id, minutes=ws.unanswered_gap_minutes))
    most = 0
    for z in zones:
        start = local_midnight(t.astimezone(zone(z)).date(), z)
        most = max(most, sum(1 for h in same if start <= h.at))
    if most + 1 >= ws.calls_per_number_per_day:
        out.warnings.append(
            messages.reason("warn_calls_per_day", ws.id, count=most + 1, limit=ws.calls_per_number_per_day)
        )
    for z in zones:
        day = t.astimezone(zone(z)).date()
        if day.weekday() in ws.weekend_days or (ws.warn_on_holidays and day in context.holidays):
            out.warnings.append(messages.reason("warn_sunday_holiday", ws.id, day=day.isoformat()))
            break


def history_since(attempt: Attempt, pack: RulePack) -> datetime | None:
    """The earliest history entry `decide` can read for ``attempt``; None when it may read all of it.

    The timed checks (CN-1, CN-2, US-1..US-5) only look back a few days (`lookback`); only the
    third-party gate (CN-3) and first-contact detection for a text to lint (CN-5, US-11) read the whole
    record. A caller that loads the history from ``since`` on gets the same decision as with all of it,
    and the gate's history query reads days, not years.
    """
    if attempt.text is not None and attempt.first_contact is None:
        return None
    if (
        pack.third_party_gate is not None
        and attempt.direction == Direction.OUTBOUND
        and attempt.contact_point.is_third_party
    ):
        return None
    return attempt.at.astimezone(UTC) - lookback(pack)


def decide(attempt: Attempt, history: Sequence[PriorAttempt], context: Context, pack: RulePack) -> Decision:
    """Whether ``attempt`` may happen now under ``pack``, why not, and from when it could.

    ``history`` is the contact record of the debtor's case (any order; entries after ``attempt.at`` are
    ignored). Inbound contacts (the debtor calls in) skip the timing, frequency, flag and opt-out rules but
    not the content rules. Raises `ValidationFailed` for an unknown time zone.
    """
    t = attempt.at.astimezone(UTC)
    zones = candidate_zones(attempt.contact_point, context, pack.default_time_zone)
    for z in zones:
        zone(z)  # validates every zone name up front
    lo = t - lookback(pack)
    recent = [h for h in history if lo <= h.at <= t]
    out = _Collector()
    outbound = attempt.direction == Direction.OUTBOUND

    _standing_checks(out, attempt, history, context, pack)

    qh = pack.quiet_hours
    if qh is not None and outbound and attempt.channel in qh.channels:
        out.check(qh.id, qh.inconvenient_rule_id or qh.id)
        out.timed.append(_time_of_day_check(qh, attempt, context, pack, zones))
    cap = pack.daily_call_cap
    if cap is not None and outbound and attempt.channel in cap.channels:
        out.check(cap.id)
        out.timed.append(_daily_cap_check(attempt, context, pack, zones, recent))
    cf = pack.call_frequency
    if cf is not None and outbound and attempt.channel in cf.channels:
        out.check(cf.id, cf.per_rule_id, cf.exclusion_rule_id)
        out.timed.append(_frequency_check(cf, attempt, context, pack, zones, recent))
    _warning_signs(out, attempt, context, pack, zones, recent)

    blocks = [b for b in (chk(t) for chk in out.timed) if b is not None]
    reasons = _unique([*out.standing, *(b.reason for b in blocks)])
    allowed = not reasons
    next_at: datetime | None = t if allowed else None
    if not allowed and not out.standing:
        next_at = _next_allowed(t, out.timed, blocks)
    return Decision(
        allowed=allowed,
        rule_ids=tuple(dict.fromkeys(r.rule_id for r in reasons)),
        reasons=tuple(reasons),
        warnings=tuple(_unique(out.warnings)),
        next_allowed_at=next_at,
        checked_rule_ids=tuple(out.checked),
        pack=pack.name,
        at=t,
    )


def _unique(reasons: list[Reason]) -> list[Reason]:
    return list(dict.fromkeys(reasons))


def _next_allowed(t: datetime, timed: list[_Timed], blocks: list[_Block]) -> datetime | None:
    """Earliest time >= t at which every timed check allows (see the module docstring)."""
    u = t
    for _ in range(_MAX_ROUNDS):
        if any(b.release is None for b in blocks):
            return None
        later = max(b.release for b in blocks if b.release is not None)
        if later <= u:  # a check must move time forward; anything else is a bug in that check
            raise AssertionError("compliance check did not advance time")
        u = later
        if u - t > _HORIZON:
            return None
        blocks = [b for b in (chk(u) for chk in timed) if b is not None]
        if not blocks:
            return u
    return None
