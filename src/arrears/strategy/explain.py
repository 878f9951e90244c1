"""Conditions and stages in words (zh_CN and English), so a decision can say why (PI-7).

Every clause of a ``when`` block becomes one `Reason`; a block's own label, when given, comes first.
"""

from __future__ import annotations

from dataclasses import dataclass

from arrears.money import format_minor
from arrears.strategy.definition import CommitmentState, Condition

_STATE_ZH = {
    CommitmentState.NONE: "无",
    CommitmentState.ACTIVE: "履行中",
    CommitmentState.KEPT: "已履行",
    CommitmentState.BROKEN: "已违约",
}
_FLAG_ZH = {
    "dispute": "异议",
    "cease": "停催请求",
    "deceased": "债务人死亡",
    "bankruptcy": "破产",
    "complaint": "投诉处理中",
    "legal_hold": "法律冻结",
}


@dataclass(frozen=True, slots=True)
class Reason:
    """One reason in words: a machine code plus Chinese and English text."""

    code: str
    zh: str
    en: str


def _money(minor: int, currency: str | None, locale: str) -> str:
    if currency is None:
        return f"{minor} (minor units)" if locale == "en" else f"{minor}（最小货币单位）"
    return format_minor(minor, currency, locale)


def _range_words(low: int | None, high: int | None, unit_zh: str, unit_en: str) -> tuple[str, str]:
    if low is not None and high is not None:
        if low == high:
            return f" = {low}{unit_zh}", f"= {low}{unit_en}"
        return f"在 {low} 至 {high}{unit_zh}之间", f"between {low} and {high}{unit_en}"
    if low is not None:
        return f" ≥ {low}{unit_zh}", f">= {low}{unit_en}"
    return f" ≤ {high}{unit_zh}", f"<= {high}{unit_en}"


def describe_condition(cond: Condition, currency: str | None = None) -> tuple[Reason, ...]:
    """Every clause of a ``when`` block in words, in a fixed order; an empty block says it always holds."""
    out: list[Reason] = []
    if cond.label_zh or cond.label_en:
        out.append(
            Reason("label", cond.label_zh or cond.label_en or "", cond.label_en or cond.label_zh or "")
        )
    if cond.dpd_min is not None or cond.dpd_max is not None:
        zh, en = _range_words(cond.dpd_min, cond.dpd_max, " 天", " days")
        before_due = min(v for v in (cond.dpd_min, cond.dpd_max) if v is not None) < 0
        note_zh, note_en = (
            ("（负数为到期前天数）", " (negative: days before the due date)") if before_due else ("", "")
        )
        out.append(Reason("dpd", f"逾期天数{zh}{note_zh}", f"days past due {en}{note_en}"))
    if cond.balance_min_minor is not None or cond.balance_max_minor is not None:
        lo, hi = cond.balance_min_minor, cond.balance_max_minor
        if lo is not None and hi is not None:
            zh = f"余额在 {_money(lo, currency, 'zh_CN')} 至 {_money(hi, currency, 'zh_CN')} 之间"
            en = f"balance between {_money(lo, currency, 'en')} and {_money(hi, currency, 'en')}"
        elif lo is not None:
            zh, en = f"余额 ≥ {_money(lo, currency, 'zh_CN')}", f"balance >= {_money(lo, currency, 'en')}"
        else:
            assert hi is not None
            zh, en = f"余额 ≤ {_money(hi, currency, 'zh_CN')}", f"balance <= {_money(hi, currency, 'en')}"
        out.append(Reason("balance", zh, en))
    if cond.products is not None:
        names = ", ".join(p.value for p in cond.products)
        out.append(Reason("product", f"产品属于：{names}", f"product is one of: {names}"))
    if cond.grades is not None:
        names = ", ".join(cond.grades)
        out.append(Reason("grade", f"风险等级属于：{names}", f"risk grade is one of: {names}"))
    if cond.score_min is not None or cond.score_max is not None:
        zh, en = _range_words(cond.score_min, cond.score_max, "", "")
        out.append(Reason("score", f"风险评分{zh}", f"risk score {en}"))
    if cond.flagged is True:
        out.append(Reason("flagged", "账户有停催标记", "the account carries a flag that stops collection"))
    elif cond.flagged is False:
        out.append(
            Reason("not_flagged", "账户无停催标记（无异议、停催等）", "no flag (no dispute, cease ...)")
        )
    if cond.flags_any is not None:
        zh_names = "、".join(_FLAG_ZH.get(f.value, f.value) for f in cond.flags_any)
        en_names = ", ".join(f.value for f in cond.flags_any)
        out.append(Reason("flags_any", f"标记包含：{zh_names}", f"flagged with any of: {en_names}"))
    if cond.promise_states is not None:
        zh_names = "、".join(_STATE_ZH[s] for s in cond.promise_states)
        en_names = ", ".join(s.value for s in cond.promise_states)
        out.append(
            Reason("promise_state", f"还款承诺状态：{zh_names}", f"promise state is one of: {en_names}")
        )
    if cond.plan_states is not None:
        zh_names = "、".join(_STATE_ZH[s] for s in cond.plan_states)
        en_names = ", ".join(s.value for s in cond.plan_states)
        out.append(Reason("plan_state", f"还款方案状态：{zh_names}", f"plan state is one of: {en_names}"))
    if cond.time_barred is True:
        out.append(Reason("time_barred", "已超过诉讼时效", "the debt is time-barred"))
    elif cond.time_barred is False:
        out.append(Reason("not_time_barred", "未超过诉讼时效", "the debt is not time-barred"))
    if cond.days_since_rpc_min is not None or cond.days_since_rpc_max is not None:
        zh, en = _range_words(cond.days_since_rpc_min, cond.days_since_rpc_max, " 天", " days")
        never_zh = "（从未接通视为满足下限）" if cond.days_since_rpc_max is None else ""
        never_en = (
            " (never reached counts as meeting a lower bound)" if cond.days_since_rpc_max is None else ""
        )
        out.append(
            Reason(
                "days_since_rpc",
                f"距上次本人接通{zh}{never_zh}",
                f"days since the last right-party contact {en}{never_en}",
            )
        )
    if cond.pinned_stages is not None:
        names = ", ".join(cond.pinned_stages)
        out.append(Reason("pinned", f"主管手工指定阶段：{names}", f"stage set by hand: {names}"))
    if cond.pinned is True:
        out.append(Reason("pinned_any", "主管已手工指定阶段", "a supervisor set the stage by hand"))
    elif cond.pinned is False:
        out.append(Reason("not_pinned", "主管未手工指定阶段", "no stage set by hand"))
    if not out:
        out.append(Reason("always", "无条件", "no condition (always holds)"))
    return tuple(out)
